"""Every failure modeld reports, one class each, with a stable code and HTTP status.

The server turns these into the one JSON error shape::

    {"error": {"code": "model_not_found", "message": "...", "details": {...}}}

and the client library turns that shape back into the same class, so a script
using ``lib.cli.client`` catches ``ModelNotFoundError`` whether it runs in the
daemon or talks to it over HTTP. Standard library only.
"""

import json


class ModeldError(Exception):
    """Base of every error modeld reports on purpose."""

    code = "error"
    status = 500
    headers = {}

    def __init__(self, message, **details):
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self):
        """The body of an error response."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}

    def to_json(self, request_id=None):
        """The encoded body of an error response: the one renderer every answer uses.

        An internal error carries the request id, so an operator can find its traceback in
        the daemon log; the message itself never shows internals.
        """
        body = self.to_dict()
        if isinstance(self, InternalError) and request_id:
            body["error"]["details"] = dict(self.details, request_id=request_id)
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


class BadRequestError(ModeldError):
    """The request cannot be understood (for example malformed JSON)."""

    code = "bad_request"
    status = 400


class ValidationError(BadRequestError):
    """A field of the request is wrong; ``details["field"]`` names it."""

    code = "validation_error"

    def __init__(self, field, message, **details):
        super().__init__("%s: %s" % (field, message), field=field, **details)
        self.field = field


class UnauthorizedError(ModeldError):
    code = "unauthorized"
    status = 401
    headers = {"WWW-Authenticate": 'Bearer realm="modeld"'}


class ForbiddenError(ModeldError):
    """The token is valid but its scope does not allow this; ``details["scope"]`` is needed."""

    code = "forbidden"
    status = 403


class ExecNotAllowedError(ForbiddenError):
    """The program is not on the daemon's ``--allow-exec`` list; ``details["field"]`` is
    ``command[0]``."""

    code = "exec_not_allowed"


class NotFoundError(ModeldError):
    """No such route."""

    code = "not_found"
    status = 404


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"

    def __init__(self, name):
        super().__init__("no model named %r" % name, name=name)


class MethodNotAllowedError(ModeldError):
    code = "method_not_allowed"
    status = 405


class ConflictError(ModeldError):
    code = "conflict"
    status = 409


class ModelAlreadyRunningError(ConflictError):
    """Deploying or starting a name whose model is starting or running."""

    code = "already_running"

    def __init__(self, name, status):
        super().__init__(
            "model %r is %s: stop it first, or choose another name" % (name, status),
            name=name,
            status=status,
        )


class ModelBusyError(ConflictError):
    """Another operation on this model is still in progress."""

    code = "model_busy"


class NotOnDemandError(ConflictError):
    """An unload asked of a model without ``activation`` (stop it instead)."""

    code = "not_on_demand"


class ModelNotActiveError(ConflictError):
    """An operation that needs a live monitor (an unload) on a stopped, exited or failed model."""

    code = "model_not_active"


class StopIncompleteError(ModeldError):
    """A stop ended with processes of the model still alive (``details.processes``)."""

    code = "stop_incomplete"
    status = 503


class InsufficientStorageError(ModeldError):
    """The model's directory cannot be written (a full disk, a read-only file system).

    ``details``: ``cause`` (the system's words, such as "No space left on device"),
    ``path``, and what was done anyway (a stop still reaches the monitor).
    """

    code = "insufficient_storage"
    status = 507

    @classmethod
    def from_os_error(cls, error, doing, **details):
        """The error for an ``OSError`` raised while ``doing`` (its words become the cause)."""
        cause = error.strerror or str(error)
        message = "cannot %s: %s" % (doing, cause)
        return cls(message, cause=cause, path=error.filename, **details)


class ApplyInProgressError(ConflictError):
    """Another ``POST /apply`` is running: applies run one at a time (retry after it)."""

    code = "apply_in_progress"

    def __init__(self, set_name):
        super().__init__(
            "an apply (set %r) is in progress: retry when it has finished" % set_name,
            set=set_name,
        )
        self.headers = {"Retry-After": "2"}


class PortInUseError(ConflictError):
    code = "port_in_use"


class GpuInUseError(ConflictError):
    """The GPUs a spec asks for are reserved by other models (and not shared by both)."""

    code = "gpu_in_use"


class RequestTimeoutError(ModeldError):
    """The request head (or body) did not arrive in time; the connection is closed."""

    code = "request_timeout"
    status = 408


class PayloadTooLargeError(ModeldError):
    code = "payload_too_large"
    status = 413


class UriTooLongError(ModeldError):
    code = "uri_too_long"
    status = 414


class HeadersTooLargeError(ModeldError):
    code = "headers_too_large"
    status = 431


class RateLimitedError(ModeldError):
    code = "rate_limited"
    status = 429

    def __init__(self, message, retry_after, **details):
        super().__init__(message, retry_after=retry_after, **details)
        self.headers = {"Retry-After": str(max(1, int(retry_after + 0.999)))}


class DeploymentError(ModeldError):
    """The model was deployed but exited or failed before it became ready.

    ``details`` carry ``exit_code``, ``signal``, ``reason`` and ``last_lines``.
    """

    code = "deployment_failed"
    status = 422


class WaitTimeoutError(ModeldError):
    """``wait=true`` ran out of time while the model was still starting."""

    code = "wait_timeout"
    status = 504


class InternalError(ModeldError):
    """Anything unexpected. The message never carries internals."""

    code = "internal_error"
    status = 500


class UnavailableError(ModeldError):
    code = "unavailable"
    status = 503


class TooManyFollowersError(UnavailableError):
    code = "too_many_followers"

    def __init__(self, limit):
        super().__init__(
            "too many log followers (limit %d): retry later" % limit,
            limit=limit,
        )
        self.headers = {"Retry-After": "5"}


class TooManyWaitersError(UnavailableError):
    """Too many ``?wait=true`` deploys and starts, or restarts, hold a worker thread already."""

    code = "too_many_waiters"

    def __init__(self, limit):
        super().__init__(
            "too many requests waiting for a model (limit %d): retry later, or leave out"
            " wait=true and poll GET /models/{name}" % limit,
            limit=limit,
        )
        self.headers = {"Retry-After": "5"}


class TooManyConnectionsError(UnavailableError):
    """A connection over the daemon's caps (per client or in all); it is closed."""

    code = "too_many_connections"

    def __init__(self):
        super().__init__("too many open connections: close idle ones, then retry")
        self.headers = {"Retry-After": "1"}


class DaemonUnreachableError(ModeldError):
    """Client side only: nothing answered at the daemon's address."""

    code = "daemon_unreachable"
    status = 0


class DaemonTimeoutError(DaemonUnreachableError):
    """Client side only: the daemon took the connection but did not answer in time."""

    code = "daemon_timeout"


class BadHostError(DaemonUnreachableError):
    """Client side only: the daemon's address is wrong (no such host, not a URL, http vs https,
    an untrusted certificate): the command line or ``$MODELD_HOST`` must change."""

    code = "bad_host"


def all_error_classes():
    """Every concrete error class, for the error-code table and the client."""
    found, pending = [], [ModeldError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def class_for_code(code):
    """The error class with this code, or ``ModeldError`` for an unknown one."""
    for cls in all_error_classes():
        if cls.code == code:
            return cls
    return ModeldError


def from_dict(body, status):
    """Rebuild the error a server sent (the inverse of ``to_dict``)."""
    error = (body or {}).get("error") or {}
    cls = class_for_code(error.get("code"))
    message = error.get("message") or "HTTP %d" % status
    details = error.get("details") or {}
    instance = cls.__new__(cls)
    ModeldError.__init__(instance, message, **details)
    if isinstance(instance, ValidationError):
        instance.field = details.get("field")
    instance.status = status
    return instance
