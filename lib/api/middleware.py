"""WSGI middleware around every request, before any routing (no bottle here).

``RequestContext`` gives each request an id (``X-Request-Id`` on every
response, bottle's own 404/405 included), refuses an oversized URL or header
block and a client over its rate in the JSON error shape, and writes the
access log line (client, method, path, status, duration, request id, the token's
name; never a header, so never the token) when the response is done.
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

    def __init__(self, app, rate_limiter=None, max_body=None, authenticated=None):
        self.app = app
        self.rate_limiter = rate_limiter
        self.max_body = max_body
        # Whether a request carries a valid token: anonymous requests have their own buckets.
        self.authenticated = authenticated or (lambda environ: True)

    def __call__(self, environ, start_response):
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if REQUEST_ID.fullmatch(incoming) else secrets.token_hex(8)
        environ["modeld.request_id"] = request_id
        started = time.monotonic()
        seen = {}

        def start(status, headers, exc_info=None):
            seen["status"] = status.split(" ", 1)[0]
            headers.append(("X-Request-Id", request_id))
            if _must_close(environ, seen["status"]):
                # What is left of the body must not be read as the next request.
                headers.append(("Connection", "close"))
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
            self.rate_limiter.check(environ, self.authenticated(environ))
        length = environ.get("CONTENT_LENGTH") or "0"
        if self.max_body is not None and length.isdigit() and int(length) > self.max_body:
            raise errors.PayloadTooLargeError(
                "the request body is %s bytes; the limit is %d" % (length, self.max_body),
                limit=self.max_body,
            )


def _must_close(environ, status):
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    return chunked or status == "413"


def printable(text):
    """``text`` with every character that is not printable escaped (``\\n``, ``\\x1b``...).

    Backslashes are doubled, so an escape in the log always means the character.
    """
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escape(char) for char in text)


_NAMED_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char):
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    return (
        "\\x%02x" % code
        if code < 0x100
        else "\\u%04x" % code
        if code < 0x10000
        else "\\U%08x" % code
    )


def request_path(environ):
    """The path as the client meant it (UTF-8 where it decodes), safe to log."""
    raw = environ.get("PATH_INFO", "")
    try:
        raw = raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass  # not UTF-8: keep the bytes as latin-1 characters, escaped below
    return printable(raw)


def _refusal(error, start):
    payload = error.to_json().encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    headers += list(error.headers.items())
    start("%d %s" % (error.status, _REASONS.get(error.status, "Error")), headers)
    return [payload]


_REASONS = {
    413: "Payload Too Large",
    414: "URI Too Long",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
}


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
        "%s %s %s %s %.1fms %s token=%s",
        printable(client),
        printable(environ.get("REQUEST_METHOD", "")),
        request_path(environ),
        seen.get("status", "-"),
        (time.monotonic() - started) * 1000,
        request_id,
        environ.get("modeld.token_name", "-"),  # the token's name, never the token
    )
