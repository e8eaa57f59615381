"""Secrets never leave the daemon: env values and flag values that look secret become ``***``.

The model still receives them; only what the daemon shows or writes itself
(responses, events, its own log lines) is redacted.

A secret in a command is found in every form it takes:

- ``--api-key X`` as two arguments (whatever ``X`` looks like, even ``-X``),
- ``--api-key=X`` as one,
- inside one argument that holds several words, as ``sh -c "serve --api-key X"`` or the
  single argument ``"--api-key X"``: ``--api-key X``, ``--api-key=X``, ``'quoted words'``
  and ``HF_TOKEN=X`` assignments there are masked too.

It errs on the side of hiding: the argument after a secret-looking flag is masked even
when it is another flag.

A spec read back (``***`` in it) and deployed again is unmasked with ``unmask_spec``:
each ``***`` that stands where the stored spec of the same model had a secret takes
that secret back; one with nothing to take back is refused (``ValidationError``).
"""

import re

from lib.errors import ValidationError

MASK = "***"
_SECRET_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")
_WORDS = "token|key|secret|password|passwd|credential|auth"
_SECRET_FLAG = re.compile(r"--?[A-Za-z0-9_.-]*(?:%s)[A-Za-z0-9_.-]*" % _WORDS, re.IGNORECASE)
_VALUE = r"""(?:'[^']*'?|"[^"]*"?|\S+)"""
# Within one argument: a secret flag and its value, or an assignment NAME=value.
_IN_TEXT = re.compile(
    r"(?<!\S)(?:(?P<flag>--?[A-Za-z0-9_.-]*(?:%s)[A-Za-z0-9_.-]*)(?:=|\s+)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)=)(?P<value>%s)" % (_WORDS, _VALUE),
    re.IGNORECASE,
)


def is_secret_name(name):
    """Does an env key or flag name look like it holds a secret?"""
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS)


def redact_env(env):
    return {key: (MASK if is_secret_name(key) else value) for key, value in env.items()}


def secret_spans(argv):
    """``(index, start, end)`` of every secret value in ``argv``: ``argv[index][start:end]``."""
    spans, hide_next = [], False
    for index, arg in enumerate(argv):
        if hide_next:
            spans.append((index, 0, len(arg)))
            hide_next = False
            continue
        flag, equals, _ = arg.partition("=")
        if _SECRET_FLAG.fullmatch(flag):
            if equals:
                spans.append((index, len(flag) + 1, len(arg)))
            else:
                hide_next = True
            continue
        spans.extend((index, start, end) for start, end in _spans_in_text(arg))
        words = arg.split()
        # "sh -c 'serve --api-key'" "X": the flag ends one argument, its value is the next.
        hide_next = len(words) > 1 and bool(_SECRET_FLAG.fullmatch(words[-1]))
    return spans


def _spans_in_text(text):
    for match in _IN_TEXT.finditer(text):
        if match.group("name") and not is_secret_name(match.group("name")):
            continue
        if match.group("value"):
            yield match.span("value")


def redact_argv(argv):
    """``argv`` with every secret value (see ``secret_spans``) replaced by ``***``."""
    result = list(argv)
    for index, start, end in reversed(secret_spans(argv)):
        arg = result[index]
        result[index] = arg[:start] + MASK + arg[end:]
    return result


def redact_spec(spec):
    """A copy of a normalized spec fit to show: secret env values and flag values masked."""
    shown = dict(spec)
    shown["env"] = redact_env(spec.get("env") or {})
    shown["command"] = redact_argv(spec.get("command") or [])
    return shown


def unmask_spec(spec, stored=None):
    """``spec`` with each ``***`` where a secret stands put back from ``stored``.

    ``stored`` is the normalized spec this model runs under (``None`` for a new name). A
    mask is put back only where the stored spec, shown, reads the same: the env key, or the
    argument at the same position. A mask left over is a ``ValidationError`` naming it, so
    the literal ``***`` never reaches a model as its secret.
    """
    stored = stored or {}
    spec = dict(spec, env=_unmask_env(spec["env"], stored.get("env") or {}))
    spec["command"] = _unmask_argv(spec["command"], stored.get("command") or [])
    return spec


def _unmask_env(env, stored):
    result = dict(env)
    for key, value in env.items():
        if value != MASK or not is_secret_name(key):
            continue
        if key not in stored:
            raise ValidationError(
                "env." + key,
                "is the mask %s, not a value: give the secret (no model of this name holds one)"
                % MASK,
            )
        result[key] = stored[key]
    return result


def _unmask_argv(argv, stored):
    result, shown_stored = list(argv), redact_argv(stored)
    for index, start, end in secret_spans(argv):
        if argv[index][start:end] != MASK:
            continue
        if index < len(stored) and shown_stored[index] == argv[index]:
            result[index] = stored[index]
            continue
        raise ValidationError(
            "command[%d]" % index,
            "holds the mask %s where a secret goes: give the secret (the stored spec of this "
            "model has none at this argument)" % MASK,
        )
    return result
