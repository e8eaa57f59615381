"""The one seam between modeld's processes and the operating system.

The monitor (``lib.monitor.loop``) and the daemon's supervisor and launcher
(``lib.daemon``) spawn, signal, reap, lock and read the clock only through a
``System``. Tests hand them a recording fake instead (``tests/fakes.py``), so
control handling, recovery, kill escalation and reconcile are unit-tested
without a real process; the real-process tests keep the real one honest.

Each method is a thin adapter over one call, and raises what that call raises
(``ProcessLookupError``, ``ChildProcessError``, ``OSError``): the decision about
what an error means stays with the caller.
"""

import os
import socket
import subprocess
import time

from lib.core import fsutil, procfs

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36


def _libc():
    import ctypes  # only the monitor calls prctl: keep ctypes out of the daemon

    return ctypes.CDLL(None, use_errno=True)


def child_setup(death_signal, parent_pid, plan=None):
    """Runs in the child between fork and exec: it gets ``death_signal`` if its parent dies.

    ``plan`` (``lib.monitor.confinement.ChildPlan``) first joins the model's cgroup, sets
    its rlimits and drops privileges: the death signal comes after, because the kernel
    clears it when the process's credentials change. A plan that fails ends the child
    with 126 (as a shell does for "cannot execute") and says why on its stderr, which is
    the model's log. Safe only in a parent without threads (the monitor has none).
    """
    if plan is not None:
        try:
            plan.enter()
        except Exception as error:  # noqa: BLE001 - never exec a model with less confinement
            os.write(2, ("modeld: cannot confine the model: %s\n" % error).encode())
            os._exit(126)
    try:
        _libc().prctl(PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)  # the parent died before prctl took effect
    except Exception:  # noqa: BLE001 - nothing can be reported from here; exec anyway
        pass


def set_title(argv, name=None):
    """What ``ps`` shows for this process: its command line ``argv``, and ``name`` as its comm.

    The command line is rewritten in place, in the memory the kernel reads
    ``/proc/self/cmdline`` from (``arg_start``..``arg_end`` in ``/proc/self/stat``),
    so it cannot grow: what does not fit is cut. Used by monitors forked from the
    template, which would otherwise show the template's argv. Best effort.
    """
    import ctypes

    encoded = b"\0".join(part.encode() for part in argv)
    try:
        if name is not None:
            _libc().prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
        with open("/proc/self/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # fields 48 and 49 of proc(5)
    except (OSError, IndexError, ValueError):
        return  # an old kernel, or no /proc: ps keeps showing the template's argv
    size = end - start
    if size > 1:
        shown = encoded[: size - 1]
        ctypes.memmove(start, shown + b"\0" * (size - len(shown)), size)


class System:
    """The real operating system."""

    # -- the clock -------------------------------------------------------------

    def time(self):
        """Wall-clock seconds (what state files and events record)."""
        return time.time()

    def monotonic(self):
        """Seconds for deadlines and windows (never jumps)."""
        return time.monotonic()

    def sleep(self, seconds):
        time.sleep(seconds)

    # -- processes ---------------------------------------------------------------

    def getpid(self):
        return os.getpid()

    def spawn(self, argv, **options):
        """Start a process: ``subprocess.Popen(argv, **options)``."""
        return subprocess.Popen(argv, **options)

    def kill(self, pid, number):
        os.kill(pid, number)

    def killpg(self, group, number):
        os.killpg(group, number)

    def getpgrp(self):
        return os.getpgrp()

    def waitpid(self, pid, flags):
        """``os.waitpid``: ``(0, 0)`` when nothing has exited (``WNOHANG``)."""
        return os.waitpid(pid, flags)

    def descendants(self, pid):
        """``procfs.ProcStat`` of every live process below ``pid``."""
        return procfs.descendants(pid)

    def alive(self, pid, starttime=None):
        """Is ``pid`` alive (not a zombie), and the process that started at ``starttime``?"""
        return procfs.alive(pid, starttime)

    def start_time(self, pid):
        return procfs.start_time(pid)

    def all_processes(self):
        return procfs.all_processes()

    def boot_id(self):
        return procfs.boot_id()

    def become_subreaper(self):
        """Orphaned descendants are re-parented to this process, not to init.

        Returns 0, or the errno that says why not.
        """
        import ctypes

        if _libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0:
            return 0
        return ctypes.get_errno()

    # -- locks -------------------------------------------------------------------

    def try_lock(self, path):
        """An exclusive ``flock`` on ``path`` held until released; ``None`` if it is taken."""
        lock = fsutil.FileLock(path)
        return lock if lock.acquire() else None

    def is_locked(self, path):
        """Does some process hold the ``flock`` on ``path``?"""
        return fsutil.is_locked(path)

    # -- the change notification -------------------------------------------------

    def datagram_socket(self):
        """A non-blocking Unix datagram socket, closed on exec (``lib.core.notify``)."""
        kind = socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
        return socket.socket(socket.AF_UNIX, kind)
