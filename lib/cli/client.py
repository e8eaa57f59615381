"""A small client library for modeld's API (urllib only; never imports bottle or cheroot).

    from lib.cli.client import Client
    client = Client()                       # $MODELD_HOST, $MODELD_TOKEN, or the local home
    client.deploy({"name": "echo", "command": ["python3", "-m", "http.server", "{port}"],
                   "port": "auto"}, wait=True)
    client.get("echo")["status"]

Every error the daemon reports is raised as the class the server used
(``lib.errors.ModelNotFoundError`` and so on); a daemon that does not answer
raises ``DaemonUnreachableError``.
"""

import http.client
import json
import os
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request

from lib import errors
from lib.core import params, paths, tokens

DEFAULT_URL = "http://127.0.0.1:8000"
HOST_FORMS = "give an http(s)://HOST:PORT URL or a Unix socket path (--host or $MODELD_HOST)"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class _UnixHandler(urllib.request.AbstractHTTPHandler):
    """Lets urllib speak HTTP over a Unix socket: URLs ``unix://localhost/...``."""

    def __init__(self, socket_path):
        super().__init__()
        self.socket_path = socket_path

    def unix_open(self, request):
        return self.do_open(
            lambda host, timeout=None, **_: _UnixConnection(self.socket_path, timeout), request
        )

    unix_request = urllib.request.AbstractHTTPHandler.do_request_


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the API never redirects; a redirect is not followed with the token


def resolve_host(host=None, environ=None):
    """``--host``, else ``$MODELD_HOST``, else the local home's daemon, else the default URL."""
    environ = os.environ if environ is None else environ
    host = host or environ.get("MODELD_HOST")
    if host:
        return host
    info = _local_daemon(environ)
    return info.get("url") or DEFAULT_URL


def _local_daemon(environ):
    try:
        with open(paths.Home(paths.default_home(environ)).daemon_json) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def resolve_token(token=None, environ=None):
    """``--token``, else ``$MODELD_TOKEN``, else the token file in the daemon's home."""
    environ = os.environ if environ is None else environ
    token = token or environ.get("MODELD_TOKEN")
    if token:
        return token.strip()
    try:
        return tokens.read_token(paths.Home(paths.default_home(environ)))
    except OSError:
        return None  # an unreadable home: the daemon will answer 401, which says what to do


class Client:
    """One method per endpoint.

    ``host``: an http(s) URL or a Unix socket path; ``cafile`` (else
    ``$MODELD_CACERT``): the CA that signed an https daemon's certificate.
    """

    def __init__(self, host=None, token=None, timeout=60.0, environ=None, cafile=None):
        environ = os.environ if environ is None else environ
        self.host = resolve_host(host, environ)
        self.token = resolve_token(token, environ)
        self.timeout = timeout
        cafile = cafile or environ.get("MODELD_CACERT")
        socket_path = _socket_path(self.host)
        if socket_path is not None:
            self.base = "unix://localhost"
            self.opener = urllib.request.build_opener(_UnixHandler(socket_path), _NoRedirect)
        else:
            self.base = self.host.rstrip("/")
            if "://" not in self.base:
                self.base = "http://" + self.base
            if not self.base.startswith(("http://", "https://")):
                raise errors.BadHostError(
                    "%r is not a daemon address: %s" % (self.host, HOST_FORMS), host=self.host
                )
            handlers = [_NoRedirect]
            if cafile and self.base.startswith("https:"):
                import ssl  # only for HTTPS: it is slow to import

                context = ssl.create_default_context(cafile=cafile)
                handlers.append(urllib.request.HTTPSHandler(context=context))
            self.opener = urllib.request.build_opener(*handlers)

    # -- transport -----------------------------------------------------------

    def request(self, method, path, query=None, body=None, timeout=None):
        """Send a request; the JSON reply as a dict, or the error it carried raised."""
        response = self._open(method, path, query, body, timeout)
        try:
            with response:
                raw = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise transport_error(self.host, error, timeout or self.timeout) from None
        if not raw:
            return {}
        return json.loads(raw)

    def _open(self, method, path, query=None, body=None, timeout=None):
        url = self.base + path
        query = {key: _text(value) for key, value in (query or {}).items() if value is not None}
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", "Bearer " + self.token)
        timeout = timeout or self.timeout
        try:
            return self.opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            raise _server_error(error) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as error:
            raise transport_error(self.host, error, timeout) from None

    # -- endpoints -------------------------------------------------------------

    def health(self):
        return self.request("GET", "/health")

    def info(self):
        return self.request("GET", "/")

    def openapi(self):
        return self.request("GET", "/openapi.json")

    def deploy(self, spec, wait=False, timeout=None, dry_run=False):
        query = {"wait": wait or None, "timeout": timeout, "dry_run": dry_run or None}
        http_timeout = None if timeout is None else timeout + 30
        if wait and timeout is None:
            # The daemon may wait this long: the socket must not give up first.
            http_timeout = params.WAIT_TIMEOUT_MAX + 30
        return self.request("POST", "/models", query, spec, timeout=http_timeout)

    def list(self, status=None, labels=None):
        """Models by status and label selector (``["team=search", "tier!=canary"]``: AND)."""
        query = {
            "status": ",".join(status) if status else None,
            "label": ",".join(labels) if labels else None,
        }
        return self.request("GET", "/models", query)["models"]

    def replace(self, name, spec, dry_run=False, wait=False, timeout=None):
        """``PUT /models/{name}``: the plan step and what was done."""
        query = {"dry_run": dry_run or None, "wait": wait or None, "timeout": timeout}
        return self.request("PUT", "/models/" + _quote(name), query, spec, timeout=3700)

    def apply(self, body, dry_run=False, wait=False, timeout=None):
        """``POST /apply``: ``{"set", "models", "prune", "prune_all"}``; the plan and outcomes."""
        query = {"dry_run": dry_run or None, "wait": wait or None, "timeout": timeout}
        http_timeout = 3700 + (
            params.WAIT_TIMEOUT_MAX if wait and timeout is None else timeout or 0
        )
        return self.request("POST", "/apply", query, body, timeout=http_timeout)

    def model_spec(self, name):
        """``GET /models/{name}/spec``: a spec to apply again, secrets as references."""
        return self.request("GET", "/models/%s/spec" % _quote(name))

    def get(self, name):
        return self.request("GET", "/models/" + _quote(name))

    def stop(self, name, timeout=None, purge=False):
        query = {"timeout": timeout, "purge": purge or None}
        http_timeout = None if timeout is None else timeout + 30
        return self.request(
            "DELETE", "/models/" + _quote(name), query, timeout=http_timeout or 3700
        )

    def start(self, name, wait=False, timeout=None):
        query = {"wait": wait or None, "timeout": timeout}
        http_timeout = 3700
        if wait:
            http_timeout = (params.WAIT_TIMEOUT_MAX if timeout is None else timeout) + 3700
        return self.request("POST", "/models/%s/start" % _quote(name), query, timeout=http_timeout)

    def restart(self, name, timeout=None):
        return self.request(
            "POST", "/models/%s/restart" % _quote(name), {"timeout": timeout}, timeout=3700
        )

    def unload(self, name, reason=None):
        """Unload an on-demand model (back to ``idle``); ``reason``: manual or evicted."""
        query = {"reason": reason} if reason else None
        return self.request("POST", "/models/%s/unload" % _quote(name), query, timeout=3700)

    def logs(self, name, **params):
        """One page: ``{"entries": [...], "next_cursor": ..., "has_more": ...}``.

        ``name=None``: every model's entries merged by time, each naming its ``model``."""
        return self.request("GET", _logs_path(name), params)

    def follow(self, name, **params):
        """Entries (dicts) as they are written, until the model stops; blank heartbeats skipped.

        The daemon's shutdown (its last line ``{"end": "shutdown"}``), a reset or a cut
        connection raise ``DaemonUnreachableError``: the caller learns the stream was lost.
        """
        params = dict(params, follow="true", format="json")
        return self._lines("GET", _logs_path(name), params)

    def follow_events(self, since=None, limit=None):
        """Every model's events: the newest (or those since ``since``), then new ones."""
        return self._lines("GET", "/events", {"follow": "true", "since": since, "limit": limit})

    def _lines(self, method, path, params):
        """JSON lines of a streaming response, until it ends; blank heartbeats skipped."""
        response = self._open(method, path, params, timeout=3600 * 24)
        try:
            with response:
                for line in response:
                    line = line.strip()
                    if not line:
                        continue
                    entry = json.loads(line)
                    if "end" in entry and "seq" not in entry:
                        raise _stream_ended(self.host, entry)
                    yield entry
        except (OSError, http.client.HTTPException) as error:
            raise errors.DaemonUnreachableError(
                "lost the connection to modeld at %s (%s)" % (self.host, error), host=self.host
            ) from None

    def gpus(self):
        return self.request("GET", "/gpus")

    def export(self, name, **query):
        """``GET /models/{name}/export``: ``to``, ``image``, ``k8s_version``, ``port``."""
        return self.request("GET", "/models/%s/export" % _quote(name), query)

    def events(self, name=None, limit=None, since=None):
        path = "/models/%s/events" % _quote(name) if name else "/events"
        return self.request("GET", path, {"limit": limit, "since": since})["events"]


def transport_error(host, error, timeout):
    """The error to raise when talking to the daemon at ``host`` failed below HTTP.

    Each cause gets its own message: nothing listening ("start it"), no answer in
    time (it is running), a wrong address (no such host, bad port, http vs https, an
    untrusted certificate), or a connection lost on the way.
    """
    reason = getattr(error, "reason", error)
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return errors.DaemonTimeoutError(
            "modeld at %s did not answer within %gs: it is running and may still complete "
            "the request (check with `modelctl status` or `modelctl ps`)" % (host, timeout),
            host=host,
            timeout=timeout,
        )
    if isinstance(reason, socket.gaierror):
        return errors.BadHostError(
            "cannot find the host of %s (%s): %s" % (host, reason.strerror or reason, HOST_FORMS),
            host=host,
        )
    if isinstance(reason, (http.client.InvalidURL, ValueError)):
        return errors.BadHostError(
            "%r is not a daemon address (%s): %s" % (host, reason, HOST_FORMS), host=host
        )
    tls = _tls_problem(host, reason)
    if tls:
        return errors.BadHostError(tls, host=host)
    if isinstance(reason, (ConnectionRefusedError, FileNotFoundError)):
        return errors.DaemonUnreachableError(
            "modeld is not running at %s: start it with `modeld start` (%s)" % (host, reason),
            host=host,
        )
    if isinstance(reason, str) or not isinstance(reason, (OSError, http.client.HTTPException)):
        return errors.DaemonUnreachableError(
            "cannot reach modeld at %s (%s): is it running? (`modeld status`)" % (host, reason),
            host=host,
        )
    return errors.DaemonUnreachableError(
        "lost the connection to modeld at %s (%s)" % (host, reason or type(reason).__name__),
        host=host,
    )


def _tls_problem(host, reason):
    """A message for a TLS failure, or ``None``. ``ssl`` is imported only by https clients."""
    ssl = sys.modules.get("ssl")
    if ssl is None or not isinstance(reason, ssl.SSLError):
        return None
    if isinstance(reason, ssl.SSLCertVerificationError):
        return (
            "the certificate of %s is not trusted (%s): pass the CA with --cacert FILE "
            "or $MODELD_CACERT" % (host, reason.verify_message or reason)
        )
    if "WRONG_VERSION_NUMBER" in str(reason) or "record layer" in str(reason):
        return "%s does not speak TLS (%s): the daemon serves plain HTTP, use http://" % (
            host,
            reason.reason or reason,
        )
    return "TLS with %s failed (%s)" % (host, reason.reason or reason)


def _stream_ended(host, end):
    """The daemon ended a follow stream for its own reason (its shutdown): the stream is lost."""
    return errors.DaemonUnreachableError(
        "modeld at %s ended the log stream: %s (start it again with `modeld start`)"
        % (host, end.get("message") or end.get("end")),
        host=host,
    )


def _logs_path(name):
    return "/logs" if name is None else "/models/%s/logs" % _quote(name)


def _socket_path(host):
    if host.startswith("unix:"):
        return host[len("unix:") :]
    if host.startswith("/") or host.startswith("./"):
        return host
    return None


def _quote(name):
    return urllib.parse.quote(name, safe="")


def _text(value):
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _server_error(error):
    try:
        body = json.loads(error.read() or b"{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict) or "error" not in body:
        # Not modeld's shape (a proxy's page, say): keep the status, say what came back.
        failure = errors.ModeldError("HTTP %d %s" % (error.code, error.reason))
        failure.status = error.code
        return failure
    return errors.from_dict(body, error.code)
