"""WSGI middleware around every request, before any routing (no bottle here).

``RequestContext`` gives each request an id (``X-Request-Id`` on every
response, bottle's own 404/405 included), refuses an oversized URL or header
block and a client over its rate in the JSON error shape, and writes the
access log line (client, method, path, status, duration, request id; never a
header, so never the token) when the response is done.
"""

import logging
import re
import secrets
import time

from lib import errors

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_URL = 8 * 1024
MAX_HEADERS = 16 * 1024

access_log = logging.getLogger("modeld.access")


class RequestContext:
    """WSGI middleware around every request, bottle's own errors included.

    Gives it a request id (``X-Request-Id`` on the response), refuses an
    oversized URL or header block and a client over its rate (in the JSON error
    shape, before any routing: throttling also covers token guessing and 404
    floods), and writes the access log line.
    """

    def __init__(self, app, rate_limiter=None):
        self.app = app
        self.rate_limiter = rate_limiter

    def __call__(self, environ, start_response):
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if REQUEST_ID.fullmatch(incoming) else secrets.token_hex(8)
        environ["modeld.request_id"] = request_id
        started = time.monotonic()
        seen = {}

        def start(status, headers, exc_info=None):
            seen["status"] = status.split(" ", 1)[0]
            headers.append(("X-Request-Id", request_id))
            return start_response(status, headers, exc_info)

        try:
            self._admit(environ)
        except errors.ModeldError as refused:
            body = _refusal(refused, start)
        else:
            body = self.app(environ, start)
        return _Finished(body, lambda: _access(environ, seen, started, request_id))

    def _admit(self, environ):
        if len(environ.get("PATH_INFO", "")) + len(environ.get("QUERY_STRING", "")) > MAX_URL:
            raise errors.UriTooLongError("the URL is longer than %d bytes" % MAX_URL, limit=MAX_URL)
        size = sum(
            len(key) + len(value) for key, value in environ.items() if key.startswith("HTTP_")
        )
        if size > MAX_HEADERS:
            raise errors.HeadersTooLargeError(
                "the headers are larger than %d bytes" % MAX_HEADERS, limit=MAX_HEADERS
            )
        if self.rate_limiter is not None:
            self.rate_limiter.check(environ)


def _refusal(error, start):
    payload = error.to_json().encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    headers += list(error.headers.items())
    start("%d %s" % (error.status, _REASONS.get(error.status, "Error")), headers)
    return [payload]


_REASONS = {414: "URI Too Long", 429: "Too Many Requests", 431: "Request Header Fields Too Large"}


class _Finished:
    """Wraps a response body so the access line is written when it is done."""

    def __init__(self, body, done):
        self.body = body
        self.done = done

    def __iter__(self):
        return iter(self.body)

    def close(self):
        try:
            if hasattr(self.body, "close"):
                self.body.close()
        finally:
            self.done()


def _access(environ, seen, started, request_id):
    client = environ.get("REMOTE_ADDR") or "unix"
    access_log.info(
        "%s %s %s %s %.1fms %s",
        client,
        environ.get("REQUEST_METHOD"),
        environ.get("PATH_INFO"),
        seen.get("status", "-"),
        (time.monotonic() - started) * 1000,
        request_id,
    )
