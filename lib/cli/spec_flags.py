"""modelctl deploy: a spec from the command line's flags, or from a spec file.

Flags build the spec (the working directory defaults to the current one); a
file (or ``-`` for stdin) is read as JSON, a relative ``cwd`` in it taken as
relative to the file, and the flags given with it win over it. Mistakes are
``UsageError`` (modelctl exits 2).
"""

import json
import os
import sys

from lib.core import vocabulary


class UsageError(Exception):
    """The command line or the spec file is wrong (exit status 2)."""


def spec_from_args(args):
    """The spec from ``-f`` (file or stdin) or from the flags and the command after ``--``.

    With ``-f``, the flags given too (NAME, the command after ``--``, ``--port``,
    ``--env``...) are applied over the file's spec: flags win, as with ``docker run``
    over an image's defaults; ``--env`` and ``--label`` add to the file's maps.
    """
    if args.file:
        spec = _read_spec(args.file)
        if not isinstance(spec, dict):
            raise UsageError("%s must hold a JSON object (a model spec)" % args.file)
        return _apply_flags(spec, args)
    if not args.name or not args.command:
        raise UsageError(
            "deploy needs NAME and a command after --, or -f SPEC (see modelctl deploy -h)"
        )
    return _apply_flags({"cwd": os.getcwd()}, args)


def _apply_flags(spec, args):
    spec = dict(spec)
    if args.name:
        spec["name"] = args.name
    if args.command:
        spec["command"] = args.command
    if args.cwd:
        spec["cwd"] = args.cwd
    if args.port is not None:
        spec["port"] = args.port if args.port == "auto" else _int(args.port, "--port")
    if getattr(args, "preset", None):
        spec["preset"] = args.preset
    if getattr(args, "env_file", None):
        spec["env"] = dict(_section(spec, "env"), **read_env_file(args.env_file))
    for key, items, flag in (("env", args.env, "--env"), ("labels", args.label, "--label")):
        if items:
            spec[key] = dict(_section(spec, key), **_pairs(items, flag))
    _merge(spec, "health", _health_flags(args))
    restart = {"policy": args.restart, "max_retries": args.max_retries}
    _merge(spec, "restart", {key: value for key, value in restart.items() if value is not None})
    if args.stop_timeout is not None:
        _merge(spec, "stop", {"timeout": args.stop_timeout})
    return spec


def _health_flags(args):
    health = {}
    for key, value in (
        (vocabulary.PROBE_HTTP, args.health_http),
        (vocabulary.PROBE_LOG, args.health_log),
    ):
        if value:
            health[key] = value
    if args.health_tcp:
        health[vocabulary.PROBE_TCP] = True
    if args.start_period is not None:
        health["start_period"] = args.start_period
    return health


def _section(spec, key):
    section = spec.get(key)
    return section if isinstance(section, dict) else {}


def _merge(spec, key, flags):
    """``flags`` over the spec's section ``key``; a probe flag replaces the file's probe."""
    if not flags:
        return
    section = dict(_section(spec, key))
    if key == "health" and set(vocabulary.PROBE_KINDS) & set(flags):
        for probe in vocabulary.PROBE_KINDS:
            section.pop(probe, None)
    section.update(flags)
    spec[key] = section


def _read_spec(source):
    try:
        if source == "-":
            text = sys.stdin.read()
            base = os.getcwd()
        else:
            with open(source) as handle:
                text = handle.read()
            base = os.path.dirname(os.path.abspath(source))
        spec = json.loads(text)
    except OSError as error:
        raise UsageError("cannot read %s: %s" % (source, error.strerror or error)) from None
    except ValueError as error:
        raise UsageError("%s is not valid JSON: %s" % (source, error)) from None
    if (
        isinstance(spec, dict)
        and isinstance(spec.get("cwd"), str)
        and not spec["cwd"].startswith("/")
    ):
        # A relative cwd in a spec file means: relative to the file.
        spec["cwd"] = os.path.normpath(os.path.join(base, spec["cwd"]))
    return spec


def _pairs(items, flag):
    result = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise UsageError("%s takes KEY=VALUE, not %r" % (flag, item))
        result[key] = value
    return result


def _int(text, flag):
    try:
        return int(text)
    except ValueError:
        raise UsageError("%s takes auto or a number, not %r" % (flag, text)) from None


def read_env_file(path):
    """``KEY=VALUE`` lines of a dotenv file (``#`` comments, blank lines, ``export``,
    quotes around the value); ``UsageError`` naming the line otherwise."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as error:
        raise UsageError("cannot read %s: %s" % (path, error.strerror)) from None
    env = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].strip()
        key, equals, value = line.partition("=")
        if not equals or not key.strip():
            raise UsageError("%s:%d: expected KEY=VALUE" % (path, number))
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env
