"""modelctl deploy: a spec from the command line's flags, or from a spec file.

Flags build the spec (the working directory defaults to the current one); a
file (or ``-`` for stdin) is read as JSON, a relative ``cwd`` in it taken as
relative to the file. Mistakes are ``UsageError`` (modelctl exits 2).
"""

import json
import os
import sys


class UsageError(Exception):
    """The command line or the spec file is wrong (exit status 2)."""


def spec_from_args(args):
    """The spec from ``-f`` (file or stdin) or from the flags and the command after ``--``."""
    if args.file:
        if args.command or args.name:
            raise UsageError("give either -f SPEC or NAME -- CMD, not both")
        return _read_spec(args.file)
    if not args.name or not args.command:
        raise UsageError(
            "deploy needs NAME and a command after --, or -f SPEC (see modelctl deploy -h)"
        )
    spec = {"name": args.name, "command": args.command, "cwd": args.cwd or os.getcwd()}
    if args.port is not None:
        spec["port"] = args.port if args.port == "auto" else _int(args.port, "--port")
    if getattr(args, "preset", None):
        spec["preset"] = args.preset
    if args.env:
        spec["env"] = _pairs(args.env, "--env")
    if args.label:
        spec["labels"] = _pairs(args.label, "--label")
    health = {}
    for key, value in (("http", args.health_http), ("log", args.health_log)):
        if value:
            health[key] = value
    if args.health_tcp:
        health["tcp"] = True
    if args.start_period is not None:
        health["start_period"] = args.start_period
    if health:
        spec["health"] = health
    restart = {}
    if args.restart:
        restart["policy"] = args.restart
    if args.max_retries is not None:
        restart["max_retries"] = args.max_retries
    if restart:
        spec["restart"] = restart
    if args.stop_timeout is not None:
        spec["stop"] = {"timeout": args.stop_timeout}
    return spec


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
