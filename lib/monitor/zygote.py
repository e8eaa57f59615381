"""The monitor template ("zygote"): monitors forked from a warm process, so they share its pages.

A fresh monitor is a fresh interpreter: ~10 MiB RSS of its own, nearly all of
it the same bytes in every monitor (imported modules, interned strings). The
template is one long-lived process per daemon that has imported the monitor's
code and frozen it (``gc.freeze()``: the collector never writes to those
objects again, so their pages stay shared). For each monitor it forks a child
that starts a new session and detaches exactly as ``modeld monitor`` does: the
child is the short-lived launcher and the grandchild is the monitor, owned by
init (or a subreaper), never by the template or the daemon. So a monitor
outlives the daemon and the template alike.

The wire format (one request line in, ``started``/``exited`` answers out) is
``lib.core.protocol``'s; the daemon's side is ``lib.daemon.template``. Several
monitors come up side by side: the template never waits for one launcher.
A forked monitor shows the command line of a monitor started afresh
(``... modeld.py monitor --home HOME --name NAME --run N``) and ``mon:NAME``
as its name, and a crash in it is written to its ``monitor.log`` before it
exits 1.
"""

import gc
import os
import select
import sys

from lib.core import protocol
from lib.core.system import set_title

POLL = 0.05


def serve():
    """The template's loop: one forked monitor per request line, until stdin ends."""
    import ctypes  # noqa: F401 - every monitor calls prctl: load it once, shared

    from lib.monitor import loop  # everything a monitor runs, imported once, here

    set_title(_entry() + ["monitor-zygote"])  # hide the blank room the launcher gave its argv
    gc.freeze()
    buffer, number, launching = b"", 0, {}
    while True:
        timeout = POLL if launching else None
        readable, _, _ = select.select([0], [], [], timeout)
        if readable:
            chunk = os.read(0, 65536)
            if not chunk:
                return protocol.EXIT_OK  # the daemon is gone; its monitors carry on
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                pid = _fork(loop, protocol.read_template_request(line))
                launching[pid] = number
                _answer("started", number, pid)
                number += 1
        _reap(launching)


def _fork(loop, request):
    pid = os.fork()
    if pid == 0:
        _child(loop, *request)
    return pid


def _reap(launching):
    """Answer for every launcher that exited (they exit once their monitor holds its lock)."""
    while launching:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        number = launching.pop(pid, None)
        if number is not None:
            _answer("exited", number, os.waitstatus_to_exitcode(status))


def _answer(kind, number, value):
    os.write(1, protocol.template_answer(kind, number, value))


def _child(loop, home, name, run, recover, monitor_log):
    """In the forked child: become what ``Popen(start_new_session=True)`` would have made.

    Never returns: neither the launcher child nor the monitor may fall back into
    the template's loop, whatever is raised (then the exit status is 1, and the
    traceback is in monitor.log: nobody else would ever see it).
    """
    code = protocol.EXIT_FAILED
    try:
        os.setsid()
        _redirect(monitor_log)
        set_title(_monitor_argv(home, name, run, recover), "mon:" + name)
        code = loop.launch(home, name, run, recover)
    except SystemExit as exit_request:
        code = exit_request.code if isinstance(exit_request.code, int) else protocol.EXIT_FAILED
    except BaseException:  # noqa: BLE001 - reported below; a forked child must never return
        _report_crash()
    finally:
        _flush()
        os._exit(code)


def _entry():
    """This interpreter and this code, as ``lib.daemon.launcher.entry_command`` wrote them."""
    return [sys.executable] + (["-I"] if sys.flags.isolated else []) + sys.argv[:1]


def _monitor_argv(home, name, run, recover):
    """The command line of a monitor started afresh, shown by one forked from here."""
    argv = _entry() + ["monitor", "--home", home, "--name", name, "--run", str(run)]
    return argv + (["--recover"] if recover else [])


def _redirect(monitor_log):
    null = os.open(os.devnull, os.O_RDONLY)
    log = os.open(monitor_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)


def _report_crash():
    try:
        import traceback

        sys.stderr.write("monitor[%d] crashed:\n%s" % (os.getpid(), traceback.format_exc()))
    except BaseException:  # noqa: BLE001 - stderr itself is broken: nothing more can be said
        pass


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed or full log: exiting matters more
