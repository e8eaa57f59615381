"""The model spec: strict validation of a POST /models body into a normalized dict.

``parse_spec`` either returns a complete spec (every default filled in, so
what is persisted is what runs) or raises ``ValidationError`` naming the field.
Pure: no file system, no network; the checks that need the machine (is the
executable there, is the port free) live in ``lib.daemon.preflight``.
"""

import collections
import math
import re
import shlex
import signal

from lib.core import identity, vocabulary
from lib.errors import ValidationError

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
ENV_KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LABEL_KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")

STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGKILL")
PORT_PLACEHOLDER = "{port}"
GPUS_PLACEHOLDER = "{gpus}"
MAX_GPUS = 64
DEFAULT_GPU_WAIT = 30.0

DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_LOG_BACKUPS = 5
# Without a probe a model counts as started once it stayed up this long (as
# supervisord's startsecs); with one, this is the grace while weights load.
DEFAULT_START_PERIOD_NO_PROBE = 1.0
DEFAULT_START_PERIOD_PROBE = 300.0


class Bound(collections.namedtuple("Bound", "low high default integer")):
    """A numeric field's range (inclusive), its default (``None``: none, or it depends), kind."""

    __slots__ = ()

    def __new__(cls, low, high, default=None, integer=False):
        return super().__new__(cls, low, high, default, integer)


# The one table of the spec's numeric bounds: the parser checks them and the OpenAPI
# document (lib.api.openapi) is generated from them. Keys are the fields' dotted paths.
BOUNDS = {
    "port": Bound(1, 65535, integer=True),
    "health.interval": Bound(0.1, 3600, 2.0),
    "health.timeout": Bound(0.1, 3600, 5.0),
    # default: DEFAULT_START_PERIOD_PROBE with a probe, DEFAULT_START_PERIOD_NO_PROBE without
    "health.start_period": Bound(0, 86400),
    "health.retries": Bound(1, 100, 3, integer=True),
    "restart.max_retries": Bound(0, 1_000_000, 5, integer=True),  # null: retry forever
    "restart.backoff": Bound(0, 3600, 1.0),
    "restart.backoff_max": Bound(0, 86400, 60.0),
    "restart.reset_after": Bound(0, 86400, 60.0),
    "stop.timeout": Bound(0, 3600, 30),
    "logs.max_bytes": Bound(1024, 2**40, DEFAULT_LOG_MAX_BYTES, integer=True),
    "logs.backups": Bound(0, 10_000, DEFAULT_LOG_BACKUPS, integer=True),
    "gpus.count": Bound(1, MAX_GPUS, integer=True),
    "gpus.min_free_mib": Bound(0, 2**30, integer=True),
    "gpus.wait": Bound(0, 86400, DEFAULT_GPU_WAIT),
    # limits: see lib.core.limits for what enforces each
    "limits.memory_bytes": Bound(1024 * 1024, 2**50, integer=True),
    "limits.tasks": Bound(1, 4_194_304, integer=True),
    "limits.open_files": Bound(16, 2**30, integer=True),
    "limits.core_bytes": Bound(0, 2**62, integer=True),
    "limits.cpu": Bound(0.01, 4096),
    "activation.listen": Bound(1, 65535, integer=True),  # or "auto" (the default)
    "activation.idle_timeout": Bound(0.1, 7 * 86400, 300.0),
    "activation.load_timeout": Bound(0.1, 86400, 600.0),
    # the relay holds at most 512 connections in all (lib.monitor.relay.MAX_CONNECTIONS)
    # at least 1: the connection that starts an idle model is queued while it loads
    "activation.max_pending": Bound(1, 512, 100, integer=True),
}
ACTIVATION_DEFAULT_HOST = "127.0.0.1"
# Longest string, in characters, of each string field ("env.*": every value of env).
MAX_LENGTHS = {
    "command": 32 * 1024,  # the string form, and each argument of the list form
    "env.*": 32 * 1024,
    "labels.*": 256,
    "cwd": 4096,
    "health.http": 2048,
    "health.log": 1024,
}
# Most entries of each list or object field.
MAX_ITEMS = {"command": 1024, "env": 1024, "labels": 64}
MAX_STRING = MAX_LENGTHS["command"]
MAX_ARGS = MAX_ITEMS["command"]
MAX_ENV = MAX_ITEMS["env"]
MAX_LABELS = MAX_ITEMS["labels"]

TOP_LEVEL_FIELDS = (
    "name",
    "command",
    "env",
    "cwd",
    "port",
    "health",
    "restart",
    "stop",
    "logs",
    "labels",
    "gpus",
    "preset",
    "user",
    "group",
    "extra_groups",
    "limits",
    "activation",
)


def parse_spec(body, log_defaults=None):
    """Validate a deploy request body; return the normalized spec dict."""
    if not isinstance(body, dict):
        raise ValidationError("body", "must be a JSON object")
    from lib.core import presets  # here: the monitor imports this module, never parses a spec

    check_encodable(body, "")
    body = presets.apply(body)  # a preset's defaults, where the body sets nothing
    _reject_unknown(body, TOP_LEVEL_FIELDS, "")
    log_defaults = log_defaults or {}
    spec = {
        "name": parse_name(body.get("name", None)),
        "command": _command(body.get("command")),
        "env": _string_map(body.get("env"), "env", ENV_KEY_PATTERN),
        "cwd": _cwd(body.get("cwd")),
        "port": _port(body.get("port")),
        "health": _health(body.get("health")),
        "restart": _restart(body.get("restart")),
        "stop": _stop(body.get("stop")),
        "logs": _logs(body.get("logs"), log_defaults),
        "labels": _string_map(body.get("labels"), "labels", LABEL_KEY_PATTERN),
        "gpus": _gpus(body.get("gpus")),
        "preset": body.get("preset"),
        **identity.parse_run_as(body),
        "limits": _limits(body.get("limits")),
        "activation": _activation(body.get("activation")),
    }
    _check_gpu_env(spec)
    if spec["port"] is None and _uses_port(spec["command"]):
        raise ValidationError("port", "the command uses {port} but no port is set")
    if spec["gpus"] is None and any(GPUS_PLACEHOLDER in arg for arg in spec["command"]):
        raise ValidationError("gpus", "the command uses {gpus} but no gpus are set")
    _check_activation(spec)
    kind = probe_kind(spec["health"])
    if kind in ("http", "tcp") and spec["port"] is None:
        raise ValidationError("health", "an %s probe needs a port" % kind)
    return spec


def check_encodable(value, field):
    """Every string in ``value`` (keys too) must be encodable as UTF-8.

    JSON can carry a lone surrogate (``"\\ud800"``); such a string cannot be passed to
    ``exec``, written to a file or sent in a response, so it is refused here, naming
    the field, before anything is stored or spawned.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(field or "body", "must be valid UTF-8 text") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            shown = str(key).encode("utf-8", "backslashreplace").decode()  # safe to answer
            path = "%s.%s" % (field, shown) if field else shown
            check_encodable(key, path)
            check_encodable(item, path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_encodable(item, "%s[%d]" % (field, index))


def parse_name(name, field="name"):
    """A model name: ``^[a-z0-9][a-z0-9._-]{0,62}$``."""
    if name is None:
        raise ValidationError(field, "is required")
    if not isinstance(name, str):
        raise ValidationError(field, "must be a string")
    if not NAME_PATTERN.fullmatch(name):
        raise ValidationError(
            field,
            "must be 1-63 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def resolve_command(spec, port, gpus=None):
    """The argv to execute: ``{port}`` replaced by the chosen port, ``{gpus}`` by the
    assigned GPUs' indices (comma-separated; ``gpus``: the deployment's assignment)."""
    argv = list(spec["command"])
    if port is not None:
        argv = [arg.replace(PORT_PLACEHOLDER, str(port)) for arg in argv]
    if gpus:
        indices = ",".join(str(gpu["index"]) for gpu in gpus)
        argv = [arg.replace(GPUS_PLACEHOLDER, indices) for arg in argv]
    return argv


# The daemon's own: MODELD_* (its token, its home) and PYTHONHOME, which belongs to
# the daemon's interpreter and breaks any other Python a model runs.
_NOT_INHERITED = ("PYTHONHOME",)


def model_environment(base, spec, port, gpus=None):
    """The model's environment: the daemon's (minus its own variables), the spec's, PORT,
    and with an assignment (``gpus``) the GPUs it may see, by UUID in PCI bus order."""
    env = {
        key: value
        for key, value in base.items()
        if not key.startswith("MODELD_") and key not in _NOT_INHERITED
    }
    env.update(spec["env"])
    if port is not None:
        env["PORT"] = str(port)
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpu["uuid"] for gpu in gpus)
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    return env


def probe_kind(health):
    """``"http"``, ``"tcp"``, ``"log"`` or ``None`` for a normalized health section."""
    for kind in vocabulary.PROBE_KINDS:
        if kind in health:
            return kind
    return None


def stop_signal_number(spec):
    return int(getattr(signal, spec["stop"]["signal"]))


def _uses_port(command):
    return any(PORT_PLACEHOLDER in arg for arg in command)


def _reject_unknown(obj, allowed, prefix):
    for key in obj:
        if key not in allowed:
            raise ValidationError(
                prefix + str(key), "unknown field (allowed: %s)" % ", ".join(allowed)
            )


def _text(value, field, max_length=MAX_STRING, allow_empty=False):
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    if "\x00" in value:
        raise ValidationError(field, "must not contain NUL bytes")
    if not allow_empty and not value:
        raise ValidationError(field, "must not be empty")
    if len(value) > max_length:
        raise ValidationError(field, "is longer than %d characters" % max_length)
    return value


def _command(command):
    if command is None:
        raise ValidationError("command", "is required")
    if isinstance(command, str):
        _text(command, "command")
        try:
            command = shlex.split(command)
        except ValueError as error:
            raise ValidationError("command", "cannot be split into arguments: %s" % error) from None
    if not isinstance(command, list):
        raise ValidationError("command", "must be a list of strings (or one string to split)")
    if not command:
        raise ValidationError("command", "must not be empty")
    if len(command) > MAX_ARGS:
        raise ValidationError("command", "has more than %d arguments" % MAX_ARGS)
    for index, arg in enumerate(command):
        _text(arg, "command[%d]" % index, allow_empty=index > 0)
    return list(command)


def _string_map(value, field, key_pattern):
    max_items, max_value = MAX_ITEMS[field], MAX_LENGTHS[field + ".*"]
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(field, "must be an object of strings")
    if len(value) > max_items:
        raise ValidationError(field, "has more than %d entries" % max_items)
    result = {}
    for key, item in value.items():
        if not key_pattern.fullmatch(key):
            raise ValidationError("%s.%s" % (field, key), "is not a valid key")
        result[key] = _text(item, "%s.%s" % (field, key), max_value, allow_empty=True)
    return result


def _cwd(value):
    if value is None:
        return "/"
    _text(value, "cwd", MAX_LENGTHS["cwd"])
    if not value.startswith("/"):
        raise ValidationError("cwd", "must be an absolute path")
    return value


def _port(value):
    if value is None or value == "auto":
        return value
    low, high = BOUNDS["port"].low, BOUNDS["port"].high
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError("port", 'must be "auto" or an integer from %d to %d' % (low, high))
    return value


def number(value, field, low, high, default=None, integer=False):
    """A JSON number in ``[low, high]``; booleans, NaN and infinities are refused."""
    if value is None:
        return default
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
        raise ValidationError(field, "must be %s" % ("an integer" if integer else "a number"))
    if not low <= value <= high:
        raise ValidationError(field, "must be between %s and %s" % (low, high))
    return value


def bounded(section, field, default=None):
    """The number at dotted ``field`` of the spec, checked against ``BOUNDS[field]``.

    ``section`` is the object that holds it; ``default`` overrides the table's.
    """
    bound = BOUNDS[field]
    value = section.get(field.rpartition(".")[2])
    default = bound.default if default is None else default
    return number(value, field, bound.low, bound.high, default, bound.integer)


def _section(value, field, allowed):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(field, "must be an object")
    _reject_unknown(value, allowed, field + ".")
    return value


def _health(value):
    allowed = vocabulary.PROBE_KINDS + ("interval", "timeout", "start_period", "retries")
    section = _section(value, "health", allowed)
    kinds = [kind for kind in vocabulary.PROBE_KINDS if section.get(kind) not in (None, False)]
    if len(kinds) > 1:
        raise ValidationError("health", "choose one probe of http, tcp or log")
    kind = kinds[0] if kinds else None
    start_period = DEFAULT_START_PERIOD_PROBE if kind else DEFAULT_START_PERIOD_NO_PROBE
    health = {
        "interval": bounded(section, "health.interval"),
        "timeout": bounded(section, "health.timeout"),
        "start_period": bounded(section, "health.start_period", start_period),
        "retries": bounded(section, "health.retries"),
    }
    if kind == "http":
        path = _text(section["http"], "health.http", MAX_LENGTHS["health.http"])
        if not path.startswith("/") or any(ch in path for ch in " \r\n"):
            raise ValidationError("health.http", "must be a URL path starting with '/'")
        health["http"] = path
    elif kind == "tcp":
        if section["tcp"] is not True:
            raise ValidationError("health.tcp", "must be true")
        health["tcp"] = True
    elif kind == "log":
        pattern = _text(section["log"], "health.log", MAX_LENGTHS["health.log"])
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValidationError(
                "health.log", "is not a valid regular expression: %s" % error
            ) from None
        health["log"] = pattern
    return health


def _restart(value):
    allowed = ("policy", "max_retries", "backoff", "backoff_max", "reset_after")
    section = _section(value, "restart", allowed)
    policy = section.get("policy", vocabulary.RESTART_ON_FAILURE)
    if policy not in vocabulary.RESTART_POLICIES:
        raise ValidationError("restart.policy", "must be one of: no, on-failure, always")
    restart = {
        "policy": policy,
        # an explicit null: retry forever
        "max_retries": None
        if "max_retries" in section and section["max_retries"] is None
        else bounded(section, "restart.max_retries"),
        "backoff": bounded(section, "restart.backoff"),
        "backoff_max": bounded(section, "restart.backoff_max"),
        "reset_after": bounded(section, "restart.reset_after"),
    }
    if restart["backoff_max"] < restart["backoff"]:
        raise ValidationError("restart.backoff_max", "must not be smaller than restart.backoff")
    return restart


def _stop(value):
    section = _section(value, "stop", ("signal", "timeout"))
    name = section.get("signal", "SIGTERM")
    if not isinstance(name, str):
        raise ValidationError("stop.signal", "must be a signal name such as SIGTERM")
    name = name.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name not in STOP_SIGNALS:
        raise ValidationError("stop.signal", "must be one of: %s" % ", ".join(STOP_SIGNALS))
    return {"signal": name, "timeout": bounded(section, "stop.timeout")}


def _gpus(value):
    """``{"count": N}`` or ``{"ids": [...]}``, plus ``min_free_mib``, ``wait``, ``shared``."""
    if value is None:
        return None
    section = _section(value, "gpus", ("count", "ids", "min_free_mib", "wait", "shared"))
    if ("count" in section) == ("ids" in section):
        raise ValidationError("gpus", "give either count or ids")
    ids = None
    if "ids" in section:
        ids = section["ids"]
        if not isinstance(ids, list) or not ids or len(ids) > MAX_GPUS:
            raise ValidationError(
                "gpus.ids", "must be a list of 1 to %d GPU indices or UUIDs" % MAX_GPUS
            )
        ids = [_gpu_id(item, "gpus.ids[%d]" % n) for n, item in enumerate(ids)]
        if len(set(ids)) != len(ids):
            raise ValidationError("gpus.ids", "names a GPU more than once")
    shared = section.get("shared", False)
    if not isinstance(shared, bool):
        raise ValidationError("gpus.shared", "must be true or false")
    return {
        "count": bounded(section, "gpus.count"),
        "ids": ids,
        "min_free_mib": bounded(section, "gpus.min_free_mib"),
        "wait": bounded(section, "gpus.wait"),
        "shared": shared,
    }


def _activation(value):
    """On-demand: ``listen`` (a port or "auto"), ``host``, ``idle_timeout``, ``load_timeout``,
    ``max_pending``, ``http_503``; ``None`` when absent (the model runs all the time)."""
    if value is None:
        return None
    allowed = ("listen", "host", "idle_timeout", "load_timeout", "max_pending", "http_503")
    section = _section(value, "activation", allowed)
    listen = section.get("listen", "auto")
    if listen != "auto":
        listen = bounded(section, "activation.listen")
    host = section.get("host", ACTIVATION_DEFAULT_HOST)
    if not isinstance(host, str) or not _is_ip_address(host):
        raise ValidationError("activation.host", "must be an IPv4 or IPv6 address")
    http_503 = section.get("http_503", False)
    if not isinstance(http_503, bool):
        raise ValidationError("activation.http_503", "must be true or false")
    return {
        "listen": listen,
        "host": host,
        "idle_timeout": bounded(section, "activation.idle_timeout"),
        "load_timeout": bounded(section, "activation.load_timeout"),
        "max_pending": bounded(section, "activation.max_pending"),
        "http_503": http_503,
    }


def _is_ip_address(text):
    import socket  # here: only a deploy request parses a spec

    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, text)
            return True
        except (OSError, ValueError):
            continue
    return False


def _check_activation(spec):
    section = spec["activation"]
    if section is None:
        return
    if spec["port"] is None:
        raise ValidationError("activation", "an on-demand model needs a port to relay to")
    if section["listen"] != "auto" and section["listen"] == spec["port"]:
        raise ValidationError("activation.listen", "must differ from the model's own port")


def _gpu_id(item, field):
    """An index (``"0"``, or the number 0) or a UUID (``"GPU-..."``, ``"MIG-..."``)."""
    if isinstance(item, int) and not isinstance(item, bool) and item >= 0:
        return str(item)
    return _text(item, field, 256)


def _check_gpu_env(spec):
    if spec["gpus"] is None:
        return
    if "CUDA_VISIBLE_DEVICES" in spec["env"]:
        raise ValidationError(
            "env.CUDA_VISIBLE_DEVICES",
            "conflicts with gpus: modeld sets it to the GPUs it assigns (drop one of the two)",
        )


def _logs(value, defaults):
    section = _section(value, "logs", ("max_bytes", "backups"))
    return {
        "max_bytes": bounded(section, "logs.max_bytes", defaults.get("max_bytes")),
        "backups": bounded(section, "logs.backups", defaults.get("backups")),
    }


def _limits(value):
    """``limits``: every field optional (``None``: no limit); what enforces each is decided
    on the machine (``lib.core.limits``)."""
    section = _section(
        value, "limits", ("memory_bytes", "tasks", "open_files", "core_bytes", "cpu")
    )
    return {key: bounded(section, "limits." + key) for key in sorted(section)}
