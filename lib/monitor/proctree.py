"""Operations on a process tree: the OS side of keeping a model's processes together.

The monitor is a child subreaper, so every descendant of its model stays in
its subtree whatever it does (``setsid``, double forks); these functions find,
signal and kill that subtree, and stop what a dead monitor left behind, always
matching a process by pid AND start time.
"""

import ctypes
import logging
import os
import signal
import time

from lib.core import procfs

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
POLL = 0.05
KILL_WAIT = 30.0

log = logging.getLogger("modeld.proctree")


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def become_subreaper():
    """Orphaned descendants are re-parented to this process, not to init."""
    if _libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log.warning("cannot become a child subreaper: errno %d", ctypes.get_errno())


def child_setup(death_signal, parent_pid):
    """Runs in the child between fork and exec: it gets ``death_signal`` if its parent dies.

    Safe only in a parent without threads (the monitor has none).
    """
    try:
        _libc().prctl(PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)  # the parent died before prctl took effect
    except Exception:  # noqa: BLE001 - nothing can be reported from here; exec anyway
        pass


def signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return "SIG%d" % number


def descendants():
    """Every live process below this one."""
    return procfs.descendants(os.getpid())


def signal_groups(number):
    """Send ``number`` to every process group below this process; how many groups."""
    groups = {stat.pgrp for stat in descendants()}
    groups.discard(os.getpgrp())
    for group in groups:
        try:
            os.killpg(group, number)
        except (ProcessLookupError, PermissionError):
            continue  # the group ended in the meantime
    return len(groups)


def kill_all():
    """SIGKILL every process below this one; True when none is left."""
    for stat in descendants():
        try:
            os.kill(stat.pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    return not descendants()


def recorded(state):
    """(pid, start time) of every process a monitor's state file says its model had.

    Empty for a state from another boot: start times would mean nothing.
    """
    if not state or state.get("boot_id") != procfs.boot_id():
        return set()
    candidates = {tuple(pair) for pair in state.get("processes") or []}
    if state.get("pid") and state.get("pid_starttime"):
        candidates.add((state["pid"], state["pid_starttime"]))
        session = state["pid"]  # the model leads its own session
        candidates.update(
            (stat.pid, stat.starttime)
            for stat in procfs.all_processes()
            if stat.session == session and stat.starttime >= state["pid_starttime"]
        )
    return candidates


def stop_processes(candidates, number, timeout):
    """``number`` to those still alive, SIGKILL after ``timeout``; returns once all are gone."""
    for sig, wait in ((number, timeout), (signal.SIGKILL, KILL_WAIT)):
        for pid, start in candidates:
            if procfs.alive(pid, start):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not any(procfs.alive(pid, start) for pid, start in candidates):
                return
            time.sleep(POLL)
