"""The model spec: strict validation of a POST /models body into a normalized dict.

``parse_spec`` either returns a complete spec (every default filled in, so
what is persisted is what runs) or raises ``ValidationError`` naming the field.
Pure: no file system, no network; the checks that need the machine (is the
executable there, is the port free) live in ``lib.daemon.preflight``.
"""

import math
import re
import shlex
import signal

from lib.core import presets, vocabulary
from lib.errors import ValidationError

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
ENV_KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LABEL_KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")

MAX_ARGS = 1024
MAX_STRING = 32 * 1024
MAX_ENV = 1024
MAX_LABELS = 64
STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGKILL")
PORT_PLACEHOLDER = "{port}"

DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_LOG_BACKUPS = 5
# Without a probe a model counts as started once it stayed up this long (as
# supervisord's startsecs); with one, this is the grace while weights load.
DEFAULT_START_PERIOD_NO_PROBE = 1.0
DEFAULT_START_PERIOD_PROBE = 300.0

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
    "preset",
)


def parse_spec(body, log_defaults=None):
    """Validate a deploy request body; return the normalized spec dict."""
    if not isinstance(body, dict):
        raise ValidationError("body", "must be a JSON object")
    body = presets.apply(body)  # a preset's defaults, where the body sets nothing
    _reject_unknown(body, TOP_LEVEL_FIELDS, "")
    log_defaults = log_defaults or {}
    spec = {
        "name": parse_name(body.get("name", None)),
        "command": _command(body.get("command")),
        "env": _string_map(body.get("env"), "env", ENV_KEY_PATTERN, MAX_ENV),
        "cwd": _cwd(body.get("cwd")),
        "port": _port(body.get("port")),
        "health": _health(body.get("health")),
        "restart": _restart(body.get("restart")),
        "stop": _stop(body.get("stop")),
        "logs": _logs(body.get("logs"), log_defaults),
        "labels": _string_map(body.get("labels"), "labels", LABEL_KEY_PATTERN, MAX_LABELS, 256),
        "preset": body.get("preset"),
    }
    if spec["port"] is None and _uses_port(spec["command"]):
        raise ValidationError("port", "the command uses {port} but no port is set")
    kind = probe_kind(spec["health"])
    if kind in ("http", "tcp") and spec["port"] is None:
        raise ValidationError("health", "an %s probe needs a port" % kind)
    return spec


def parse_name(name, field="name"):
    """A model name: ``^[a-z0-9][a-z0-9._-]{0,62}$``."""
    if name is None:
        raise ValidationError(field, "is required")
    if not isinstance(name, str):
        raise ValidationError(field, "must be a string")
    if not NAME_PATTERN.match(name):
        raise ValidationError(
            field,
            "must be 1-63 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def resolve_command(spec, port):
    """The argv to execute: ``{port}`` replaced by the chosen port."""
    if port is None:
        return list(spec["command"])
    return [arg.replace(PORT_PLACEHOLDER, str(port)) for arg in spec["command"]]


# The daemon's own: MODELD_* (its token, its home) and PYTHONHOME, which belongs to
# the daemon's interpreter and breaks any other Python a model runs.
_NOT_INHERITED = ("PYTHONHOME",)


def model_environment(base, spec, port):
    """The model's environment: the daemon's (minus its own variables), the spec's, PORT."""
    env = {
        key: value
        for key, value in base.items()
        if not key.startswith("MODELD_") and key not in _NOT_INHERITED
    }
    env.update(spec["env"])
    if port is not None:
        env["PORT"] = str(port)
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


def _string_map(value, field, key_pattern, max_items, max_value=MAX_STRING):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(field, "must be an object of strings")
    if len(value) > max_items:
        raise ValidationError(field, "has more than %d entries" % max_items)
    result = {}
    for key, item in value.items():
        if not key_pattern.match(key):
            raise ValidationError("%s.%s" % (field, key), "is not a valid key")
        result[key] = _text(item, "%s.%s" % (field, key), max_value, allow_empty=True)
    return result


def _cwd(value):
    if value is None:
        return "/"
    _text(value, "cwd", 4096)
    if not value.startswith("/"):
        raise ValidationError("cwd", "must be an absolute path")
    return value


def _port(value):
    if value is None or value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValidationError("port", 'must be "auto" or an integer from 1 to 65535')
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
    health = {
        "interval": number(section.get("interval"), "health.interval", 0.1, 3600, 2.0),
        "timeout": number(section.get("timeout"), "health.timeout", 0.1, 3600, 5.0),
        "start_period": number(
            section.get("start_period"),
            "health.start_period",
            0,
            86400,
            DEFAULT_START_PERIOD_PROBE if kind else DEFAULT_START_PERIOD_NO_PROBE,
        ),
        "retries": number(section.get("retries"), "health.retries", 1, 100, 3, integer=True),
    }
    if kind == "http":
        path = _text(section["http"], "health.http", 2048)
        if not path.startswith("/") or any(ch in path for ch in " \r\n"):
            raise ValidationError("health.http", "must be a URL path starting with '/'")
        health["http"] = path
    elif kind == "tcp":
        if section["tcp"] is not True:
            raise ValidationError("health.tcp", "must be true")
        health["tcp"] = True
    elif kind == "log":
        pattern = _text(section["log"], "health.log", 1024)
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
    max_retries = section.get("max_retries", 5)
    if max_retries is not None:
        max_retries = number(max_retries, "restart.max_retries", 0, 1_000_000, integer=True)
    restart = {
        "policy": policy,
        "max_retries": max_retries,
        "backoff": number(section.get("backoff"), "restart.backoff", 0, 3600, 1.0),
        "backoff_max": number(section.get("backoff_max"), "restart.backoff_max", 0, 86400, 60.0),
        "reset_after": number(section.get("reset_after"), "restart.reset_after", 0, 86400, 60.0),
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
    return {"signal": name, "timeout": number(section.get("timeout"), "stop.timeout", 0, 3600, 30)}


def _logs(value, defaults):
    section = _section(value, "logs", ("max_bytes", "backups"))
    return {
        "max_bytes": number(
            section.get("max_bytes"),
            "logs.max_bytes",
            1024,
            2**40,
            defaults.get("max_bytes", DEFAULT_LOG_MAX_BYTES),
            integer=True,
        ),
        "backups": number(
            section.get("backups"),
            "logs.backups",
            0,
            10_000,
            defaults.get("backups", DEFAULT_LOG_BACKUPS),
            integer=True,
        ),
    }
