"""The monitor's own messages to its stderr (``monitor.log``), without the logging package.

A monitor runs per model, so what it imports is paid once per model: ``logging``
(with traceback, tokenize, string, textwrap and locale) was 0.8 MiB of every
monitor for a handful of lines. The format is the one ``logging.basicConfig``
gave: ``2026-01-02 03:04:05,678 ERROR monitor[123] message``. A traceback module
is imported only when there is a traceback to print.
"""

import os
import sys
import time


def _write(level, message, args):
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    text = message % args if args else message
    line = "%s,%03d %s monitor[%d] %s\n" % (stamp, int(now * 1000) % 1000, level, os.getpid(), text)
    try:
        sys.stderr.write(line)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # stderr is gone (a full disk, a closed file): the model must go on regardless


def info(message, *args):
    _write("INFO", message, args)


def warning(message, *args):
    _write("WARNING", message, args)


def error(message, *args):
    _write("ERROR", message, args)


def exception(message, *args):
    """``error`` plus the traceback of the exception being handled."""
    import traceback

    _write("ERROR", message, args)
    _write("ERROR", "%s", (traceback.format_exc().rstrip(),))
