"""The allow-list of programs (``modeld --allow-exec PATTERN``, repeatable).

A pattern is a glob on the absolute path a model's ``command[0]`` resolves to (through
the model's ``PATH`` and ``cwd``): ``/opt/venvs/*/bin/vllm``, ``/usr/bin/python3``. A
``*`` never crosses a ``/``. A program passes when its absolute path matches a pattern
and its real path (every symlink resolved) is allowed too: it matches a pattern, or it
is what a pattern's path resolved to when the daemon started (``pinned``), so
``--allow-exec /usr/bin/python3`` admits the ``python3.11`` that link pointed to then,
and a link swapped later to ``/bin/sh`` does not pass.

The daemon checks at deploy, apply and PUT (a 403 naming ``command[0]``); every monitor
checks again before every spawn with the same list, handed down in
``$MODELD_ALLOW_EXEC``. Without a pattern everything passes (the list is off).
"""

import json
import os

from lib.errors import ExecNotAllowedError

ENVIRON = "MODELD_ALLOW_EXEC"


class AllowList:
    """``patterns`` (globs on absolute paths) and ``pinned`` (real paths admitted at start)."""

    def __init__(self, patterns=(), pinned=None):
        self.patterns = [os.path.normpath(pattern) for pattern in patterns]
        if pinned is None:
            import glob

            pinned = {os.path.realpath(path) for p in self.patterns for path in glob.glob(p)}
        self.pinned = set(pinned)

    @property
    def enabled(self):
        return bool(self.patterns)

    def to_environ(self):
        return json.dumps({"patterns": self.patterns, "pinned": sorted(self.pinned)})

    def matches(self, path):
        return any(_glob_match(pattern, path) for pattern in self.patterns)

    def refusal(self, path):
        """``None`` if the absolute ``path`` may run, else why not."""
        if not self.enabled:
            return None
        path = os.path.normpath(path)
        if not self.matches(path):
            return "%s matches no --allow-exec pattern" % path
        real = os.path.realpath(path)
        if real != path and real not in self.pinned and not self.matches(real):
            return "%s resolves to %s, which no --allow-exec pattern allows" % (path, real)
        return None

    def check(self, program, environ, cwd):
        """Raise ``ExecNotAllowedError`` (403, ``command[0]``) unless ``program`` may run."""
        if not self.enabled:
            return
        path = resolve(program, environ, cwd)
        why = self.refusal(path) if path else "%s is not found in PATH" % program
        if why is not None:
            raise ExecNotAllowedError(
                "command[0]: %s is not allowed: %s" % (program, why),
                field="command[0]",
                program=program,
                path=path,
            )


def from_environ(environ):
    try:
        data = json.loads(environ.get(ENVIRON) or "null")
    except ValueError:
        data = None
    if not data:
        return AllowList()
    return AllowList(data.get("patterns", ()), data.get("pinned", ()))


def resolve(program, environ, cwd):
    """The absolute path ``program`` runs as with the model's ``PATH`` and ``cwd``
    (``None`` when not found)."""
    if "/" in program:
        return os.path.normpath(os.path.join(cwd or "/", program))
    import shutil  # here: it pulls in bz2 and lzma, and only an allow-list needs it

    found = shutil.which(program, path=environ.get("PATH", os.defpath))
    return os.path.normpath(os.path.abspath(found)) if found else None


def _glob_match(pattern, path):
    """A shell glob on a path: ``*``, ``?`` and ``[...]`` match within one component."""
    import fnmatch

    pattern_parts, path_parts = pattern.split("/"), path.split("/")
    if len(pattern_parts) != len(path_parts):
        return False
    return all(fnmatch.fnmatchcase(p, q) for q, p in zip(pattern_parts, path_parts))
