"""Secrets never leave the daemon: env values and flag values that look secret become ``***``.

The model still receives them; only what the daemon shows or writes itself
(responses, events, its own log lines) is redacted.
"""

import re

MASK = "***"
_SECRET_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")
_SECRET_FLAG = re.compile(
    r"^--?[A-Za-z0-9_-]*(?:token|key|secret|password|passwd|credential|auth)[A-Za-z0-9_-]*$",
    re.IGNORECASE,
)


def is_secret_name(name):
    """Does an env key or flag name look like it holds a secret?"""
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS)


def redact_env(env):
    return {key: (MASK if is_secret_name(key) else value) for key, value in env.items()}


def redact_argv(argv):
    """``--api-key X`` and ``--api-key=X`` -> ``--api-key ***`` / ``--api-key=***``."""
    result, hide_next = [], False
    for arg in argv:
        if hide_next and not arg.startswith("-"):
            result.append(MASK)
            hide_next = False
            continue
        hide_next = False
        flag, equals, _ = arg.partition("=")
        if _SECRET_FLAG.match(flag):
            if equals:
                result.append(flag + "=" + MASK)
            else:
                result.append(arg)
                hide_next = True
            continue
        result.append(arg)
    return result


def redact_spec(spec):
    """A copy of a normalized spec fit to show: secret env values and flag values masked."""
    shown = dict(spec)
    shown["env"] = redact_env(spec.get("env") or {})
    shown["command"] = redact_argv(spec.get("command") or [])
    return shown
