"""The oldest Python modeld runs on, checked by every entry point before it imports the rest.

Python 3.8 would start, then lose its monitors on ``os.waitstatus_to_exitcode``; 3.6
and 3.7 fail later with a traceback in ``daemon.log``. So ``modeld.py``,
``modelctl.py`` and the pyz's ``__main__`` (which also starts every monitor) call
``require_python`` first and refuse with one line.

Keep this file, ``lib/__init__.py`` and ``lib/core/__init__.py`` in syntax that any
Python 2.7 or 3.x can parse (no f-strings, annotations, walrus, keyword-only
arguments): an old interpreter must get this far to say why it cannot go further.
A test parses them with ``feature_version=(3, 4)``.
"""

import sys

MINIMUM = (3, 9)


def refusal(program, version_info=None, executable=None):
    """The line refusing this interpreter, or ``None`` when it is new enough."""
    version_info = sys.version_info if version_info is None else version_info
    if tuple(version_info[:2]) >= MINIMUM:
        return None
    return "%s: needs Python %d.%d or newer; %s is Python %s" % (
        program,
        MINIMUM[0],
        MINIMUM[1],
        executable or sys.executable or "this interpreter",
        ".".join(str(part) for part in version_info[:3]),
    )


def require_python(program):
    """For entry points only: exit 1 with one line on stderr if the interpreter is too old."""
    message = refusal(program)
    if message is not None:
        sys.stderr.write(message + "\n")
        sys.exit(1)
