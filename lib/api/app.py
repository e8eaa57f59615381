"""The HTTP API: a Bottle app built by ``make_app``. The only module that imports bottle.

Routes are thin: they read the request, call the supervisor, return a dict.
One plugin (``JsonPlugin``) checks the token, maps every ``ModeldError`` (and
any unexpected exception) to the JSON error shape and serializes dicts. A WSGI
middleware (``RequestContext``) sees every request, bottle's own 404/405
included: it gives each an ``X-Request-Id``, refuses oversized URLs and headers
and clients over their rate, and writes the access log line.
"""

import contextlib
import json
import logging
import threading
import time
import traceback

import bottle

from lib import errors
from lib.api import access, declarative, metrics, middleware, observe, openapi
from lib.core import labelselect, params, presets, timefmt, vocabulary
from lib.core import spec as specs
from lib.export import targets as export_targets
from lib.logs import query as logquery
from lib.logs import reader as logread

log = logging.getLogger("modeld.api")

MAX_BODY = 1024 * 1024
MAX_FOLLOWERS = 16
WAIT_TIMEOUT_MAX = params.WAIT_TIMEOUT_MAX
# The last line of a JSON follow stream that the daemon's shutdown ended (a stream that
# ends without it ended because the model stopped or the window's `until` passed).
SHUTDOWN_END = {"end": "shutdown", "message": "modeld is shutting down"}
# Requests that hold a worker thread while a model loads or stops (?wait=true, restart).
MAX_WAITERS = 8


class Settings:
    """What the app needs beyond the supervisor."""

    def __init__(
        self,
        token=None,
        version="0",
        max_body=MAX_BODY,
        max_followers=MAX_FOLLOWERS,
        should_stop=None,
        rate_limiter=None,
        max_waiters=MAX_WAITERS,
        metrics_no_auth=False,
        tokens=None,
    ):
        self.token = token
        # Named tokens with a scope (``lib.core.tokens.TokenStore``; None: only the token).
        self.tokens = tokens
        self.max_waiters = max_waiters
        self.version = version
        self.max_body = max_body
        self.max_followers = max_followers
        self.should_stop = should_stop or (lambda: False)
        self.rate_limiter = rate_limiter
        self.metrics_no_auth = metrics_no_auth
        self.started_at = time.time()


def to_json(payload):
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def error_response(error, request_id=None):
    """A bottle response carrying ``error`` in the one error shape."""
    response = bottle.HTTPResponse(error.to_json(request_id), status=error.status)
    response.content_type = "application/json"
    for key, value in error.headers.items():
        response.set_header(key, value)
    return response


class JsonPlugin:
    """Auth, error mapping and JSON serialization for every route."""

    name = "modeld-json"
    api = 2

    def __init__(self, settings):
        self.settings = settings

    def apply(self, callback, route):
        needs_auth = route.config.get("auth", True)
        settings = self.settings

        def wrapper(*args, **kwargs):
            request_id = bottle.request.environ.get("modeld.request_id")
            try:
                if needs_auth:
                    environ = bottle.request.environ
                    identity = access.authenticate(settings, environ)
                    access.authorize(identity, route.method, route.rule, bottle.request.query)
                result = callback(*args, **kwargs)
            except errors.ModeldError as error:
                return error_response(error, request_id)
            except bottle.HTTPResponse:
                raise
            except Exception:  # noqa: BLE001 - mapped to a 500 with no internals
                log.error("request %s failed:\n%s", request_id, traceback.format_exc())
                internal = errors.InternalError("internal error: see the daemon log")
                return error_response(internal, request_id)
            if isinstance(result, dict):
                bottle.response.content_type = "application/json"
                return to_json(result)
            return result

        return wrapper


def has_valid_token(settings, environ):
    """Whether the request carries a token the daemon accepts (any scope), comes over a
    Unix socket, or the daemon runs without auth (``lib.api.access`` decides).

    Compared in constant time on every request; nothing about a supplied token is kept.
    """
    return access.identify(settings, environ) is not None


def _default_error(http_error):
    """bottle's own errors (no such route, wrong method) in the JSON shape."""
    status = http_error.status_code
    if status == 404:
        error = errors.NotFoundError(
            "no route %s %s" % (bottle.request.method, bottle.request.path)
        )
    elif status == 405:
        allowed = http_error.headers.get("Allow", "")
        error = errors.MethodNotAllowedError(
            "%s is not allowed here (allowed: %s)" % (bottle.request.method, allowed),
            allowed=allowed,
        )
    elif status == 413:
        error = errors.PayloadTooLargeError("the request body is too large")
    elif status >= 500:
        log.error("unhandled error: %s", http_error.traceback or http_error.body)
        error = errors.InternalError("internal error: see the daemon log")
    else:
        error = errors.BadRequestError(str(http_error.body or "bad request"))
    bottle.response.content_type = "application/json"
    return error.to_json(bottle.request.environ.get("modeld.request_id"))


# -- request helpers -----------------------------------------------------------


def query_params(allowed, repeated=()):
    """The query string as a dict; unknown or repeated parameters are a 400 (those named in
    ``repeated`` may come several times: a list each)."""
    found = {key: [] for key in repeated}
    for key, value in bottle.request.query.allitems():
        if key in repeated and value:
            found[key].append(value)
            continue
        if key not in allowed:
            hint = "allowed: %s" % ", ".join(allowed) if allowed else "this route takes none"
            raise errors.ValidationError(key, "unknown parameter (%s)" % hint)
        if key in found:
            raise errors.ValidationError(key, "given more than once")
        if value == "":
            raise errors.ValidationError(key, "must not be empty")
        found[key] = value
    return found


def read_json(max_body):
    """The request body parsed as JSON, whatever the content type says.

    Read from the server's input directly (cheroot has already undone a chunked encoding;
    bottle would try again), never more than ``max_body + 1`` bytes.
    """
    length = bottle.request.content_length
    if length > max_body:
        raise errors.PayloadTooLargeError(
            "the request body is %d bytes; the limit is %d" % (length, max_body), limit=max_body
        )
    stream = bottle.request.environ["wsgi.input"]
    try:
        raw = stream.read(length if length >= 0 else max_body + 1)
    except OSError:  # the body's deadline passed (a client sending it slowly)
        raise errors.RequestTimeoutError("the request body did not arrive in time") from None
    except ValueError as error:  # a malformed chunked encoding
        raise errors.BadRequestError("the request body is malformed: %s" % error) from None
    if len(raw) > max_body:
        raise errors.PayloadTooLargeError(
            "the request body is over %d bytes" % max_body, limit=max_body
        )
    if not raw.strip():
        raise errors.BadRequestError("the request body is empty: send the model spec as JSON")
    try:
        return json.loads(raw)
    except RecursionError:  # the decoder recurses per level: [[[[... is not a 500
        raise errors.BadRequestError("the request body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise errors.BadRequestError("the request body is not valid JSON: %s" % error) from None


def model_name(name):
    return specs.parse_name(name, "name")


def cause():
    environ = bottle.request.environ
    return {
        "method": environ.get("REQUEST_METHOD"),
        "path": middleware.request_path(environ),
        "client": environ.get("REMOTE_ADDR") or "unix",
        "request_id": environ.get("modeld.request_id"),
        "token": environ.get(access.ENVIRON_NAME),
    }


# -- the app -------------------------------------------------------------------


def make_app(supervisor, settings):
    """The WSGI application: the Bottle app wrapped in ``RequestContext``."""
    app = bottle.Bottle(catchall=True)
    app.uninstall(True)  # bottle's own JSON and template plugins: JsonPlugin does the work
    app.default_error_handler = _default_error
    app.install(JsonPlugin(settings))
    followers = _Slots(settings.max_followers, errors.TooManyFollowersError)
    waiters = _Slots(settings.max_waiters, errors.TooManyWaitersError)
    requests = metrics.RequestCounter()

    @app.get("/health", auth=False)
    def health():
        return {"status": "ok"}

    @app.get("/")
    def index():
        query_params(())
        return {
            "name": "modeld",
            "version": settings.version,
            "started_at": timefmt.format_us(int(settings.started_at * 1_000_000)),
            "uptime_s": round(time.time() - settings.started_at, 3),
            "models": len(supervisor.names()),
            "links": {
                "models": "/models",
                "events": "/events",
                "gpus": "/gpus",
                "logs": "/logs",
                "metrics": "/metrics",
                "ui": "/ui",
                "openapi": "/openapi.json",
                "health": "/health",
            },
        }

    @app.get("/openapi.json")
    def openapi_document():
        query_params(())
        return openapi.document(settings.version)

    @app.get("/presets")
    def list_presets():
        query_params(())
        return {"presets": presets.describe()}

    @app.post("/models")
    def deploy():
        query = query_params(("wait", "timeout", "dry_run"))
        wait, dry_run = params.boolean(query, "wait"), params.boolean(query, "dry_run")
        timeout = params.seconds(query, "timeout", WAIT_TIMEOUT_MAX)
        body = read_json(settings.max_body)
        if dry_run:
            return supervisor.dry_run(body)
        with waiters.held(wait):  # refused before anything is deployed
            result = supervisor.deploy(body, cause())
            if wait:
                result = supervisor.wait_ready(result["name"], timeout)
        bottle.response.status = 201
        bottle.response.set_header("Location", "/models/%s" % result["name"])
        return result

    @app.get("/models")
    def list_models():
        query = query_params(("status", "label"), repeated=("label",))
        selector = labelselect.parse(query["label"])
        wanted = None
        if "status" in query:
            wanted = set(query["status"].split(","))
            unknown = wanted - set(vocabulary.STATUSES)
            if unknown:
                message = "unknown status %s (use %s)" % (
                    ", ".join(sorted(unknown)),
                    ", ".join(vocabulary.STATUSES),
                )
                raise errors.ValidationError("status", message)
        found = supervisor.list(wanted)
        labels = [(model["spec"].get("labels") or {}) for model in found]
        return {
            "models": [m for m, own in zip(found, labels) if labelselect.matches(selector, own)]
        }

    @app.get("/models/<name>")
    def get_model(name):
        query_params(())
        return supervisor.describe(model_name(name))

    @app.delete("/models/<name>")
    def stop_model(name):
        query = query_params(("timeout", "purge"))
        timeout = params.seconds(query, "timeout", params.STOP_TIMEOUT_MAX)
        return supervisor.stop(model_name(name), timeout, params.boolean(query, "purge"), cause())

    @app.post("/models/<name>/start")
    def start_model(name):
        query = query_params(("wait", "timeout"))
        wait = params.boolean(query, "wait")  # a bad parameter is refused before the start
        timeout = params.seconds(query, "timeout", WAIT_TIMEOUT_MAX)
        with waiters.held(wait):
            result = supervisor.start_model(model_name(name), cause())
            if wait:
                result = supervisor.wait_ready(name, timeout)
        return result

    @app.post("/models/<name>/restart")
    def restart_model(name):
        query = query_params(("timeout",))
        timeout = params.seconds(query, "timeout", params.STOP_TIMEOUT_MAX)
        name = model_name(name)
        with waiters.held(True):  # a restart waits for the old process to stop
            return supervisor.restart_model(name, timeout, cause())

    @app.post("/models/<name>/unload")
    def unload_model(name):
        query = query_params(("reason",))
        reason = query.get("reason", vocabulary.UNLOAD_MANUAL)
        if reason not in (vocabulary.UNLOAD_MANUAL, vocabulary.UNLOAD_EVICTED):
            raise errors.ValidationError("reason", "must be manual or evicted")
        name = model_name(name)
        with waiters.held(True):  # an unload waits for the process to stop
            return supervisor.unload(name, reason, cause())

    @app.get("/models/<name>/logs")
    def model_logs(name):
        name = model_name(name)
        supervisor.record(name)  # 404 before parsing parameters
        log_query = logquery.parse_log_query(query_params(logquery.PARAMETERS), timefmt.now_us())
        reader = logread.LogReader(supervisor.home.model(name).logs)
        if log_query.follow:
            return _follow(supervisor, settings, followers, name, reader, log_query)
        page = logquery.run_query(reader, log_query)
        return _page_response(reader, log_query, page)

    @app.get("/gpus")
    def list_gpus():
        query_params(())
        return supervisor.gpu_inventory()

    @app.get("/models/<name>/export")
    def export_model(name):
        query = query_params(export_targets.QUERY_PARAMETERS)
        record = supervisor.record(model_name(name))
        return export_targets.export_live(record.spec, record.port, query)

    @app.get("/models/<name>/events")
    def model_events(name):
        query = query_params(("limit", "since"))
        name = model_name(name)
        supervisor.record(name)
        return {"events": supervisor.events(name, **_event_filters(query))}

    @app.get("/events")
    def all_events():
        query = query_params(("limit", "since", "follow"))
        filters = _event_filters(query)
        if params.boolean(query, "follow"):
            return observe.follow_events(supervisor, settings, followers, filters)
        return {"events": supervisor.events(None, **filters)}

    observe.install(app, supervisor, settings, followers, requests, query_params)
    access.install(app, settings, read_json, query_params)
    helpers = (query_params, read_json, cause, model_name)
    declarative.install(app, supervisor, settings, waiters, helpers)
    return middleware.RequestContext(
        requests.wrap(app),
        settings.rate_limiter,
        max_body=settings.max_body,
        authenticated=lambda environ: has_valid_token(settings, environ),
    )


def _event_filters(query):
    return {
        "limit": params.integer(query, "limit", 1, params.EVENTS_LIMIT_MAX) or 100,
        "since": params.moment(query, "since", timefmt.now_us()),
    }


def _page_response(reader, query, page):
    log_id = reader.log_id() or "none"
    next_cursor = logquery.encode_cursor(log_id, max(1, page.next_seq))
    if query.format == "text":
        bottle.response.content_type = "text/plain; charset=utf-8"
        bottle.response.set_header("X-Next-Cursor", next_cursor)
        bottle.response.set_header("X-Has-More", "true" if page.has_more else "false")
        return "".join(logquery.entry_text(entry) + "\n" for entry in page.entries)
    body = {
        "entries": [logquery.entry_dict(entry) for entry in page.entries],
        "next_cursor": next_cursor,
        "has_more": page.has_more,
    }
    if page.skipped:
        body["skipped"] = page.skipped
    return body


class _Slots:
    """A cap on requests that hold a worker thread for long (log followers, waiters)."""

    def __init__(self, limit, refusal):
        self.limit = limit
        self.refusal = refusal
        self.count = 0
        self.lock = threading.Lock()

    def enter(self):
        with self.lock:
            if self.count >= self.limit:
                raise self.refusal(self.limit)
            self.count += 1

    def leave(self):
        with self.lock:
            self.count -= 1

    @contextlib.contextmanager
    def held(self, needed=True):
        if not needed:
            yield
            return
        self.enter()
        try:
            yield
        finally:
            self.leave()


def _follow(supervisor, settings, followers, name, reader, query):
    """Stream entries as JSON lines (or text) until the model stops or the client leaves."""
    followers.enter()
    try:
        if query.tail == 0:
            start = reader.next_seq()  # tail=0: only entries written from now on
        elif query.tail:
            start = _tail_start(reader, query)
        else:
            start = logquery.start_seq(reader, query)
    except BaseException:
        followers.leave()
        raise
    render = logquery.entry_text if query.format == "text" else _json_line
    should_stop = access.stream_should_stop(settings, bottle.request.environ)

    def model_done():
        try:
            return supervisor.describe(name)["status"] in vocabulary.TERMINAL
        except errors.ModelNotFoundError:
            return True

    def stream():
        try:
            yield b"\n"  # send the headers now: bottle holds them until the first bytes
            entries = logquery.follow(reader, query, start, should_stop, model_done)
            for entry in entries:
                yield b"\n" if entry is None else (render(entry) + "\n").encode()
            if settings.should_stop() and query.format != "text":
                # Say why the stream ends: a clean end alone reads as "the model stopped".
                yield (to_json(SHUTDOWN_END) + "\n").encode()
        finally:
            followers.leave()

    bottle.response.content_type = (
        "text/plain; charset=utf-8" if query.format == "text" else "application/x-ndjson"
    )
    return stream()


def _tail_start(reader, query):
    """The seq of the oldest of the last ``tail`` matches (the window's end if none)."""
    page = logquery.run_query(reader, query._replace(limit=1))
    return page.entries[0].seq if page.entries else page.next_seq


def _json_line(entry):
    return json.dumps(logquery.entry_dict(entry), separators=(",", ":"), ensure_ascii=False)
