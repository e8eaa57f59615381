"""Operations on a process tree: the OS side of keeping a model's processes together.

The monitor is a child subreaper, so every descendant of its model stays in
its subtree whatever it does (``setsid``, double forks); these functions find,
signal and kill that subtree, and stop what a dead monitor left behind, always
matching a process by pid AND start time. Every OS call goes through the
``lib.core.system.System`` passed in, so tests can replay a tree.
"""

import signal

POLL = 0.05
KILL_WAIT = 30.0


def signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return "SIG%d" % number


def descendants(system):
    """Every live process below this one."""
    return system.descendants(system.getpid())


def signal_groups(system, number):
    """Send ``number`` to every process group below this process; how many groups."""
    groups = {stat.pgrp for stat in descendants(system)}
    groups.discard(system.getpgrp())
    for group in groups:
        try:
            system.killpg(group, number)
        except (ProcessLookupError, PermissionError):
            continue  # the group ended in the meantime
    return len(groups)


def kill_all(system):
    """SIGKILL every process below this one; True when none is left."""
    for stat in descendants(system):
        try:
            system.kill(stat.pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    return not descendants(system)


def recorded(state, system):
    """(pid, start time) of every process a monitor's ``MonitorState`` says its model had.

    Empty for a state from another boot: start times would mean nothing.
    """
    if state is None or state.boot_id != system.boot_id():
        return set()
    candidates = {tuple(pair) for pair in state.processes}
    if state.pid and state.pid_starttime:
        candidates.add((state.pid, state.pid_starttime))
        session = state.pid  # the model leads its own session
        candidates.update(
            (stat.pid, stat.starttime)
            for stat in system.all_processes()
            if stat.session == session and stat.starttime >= state.pid_starttime
        )
    return candidates


def stop_processes(system, candidates, number, timeout):
    """``number`` to those still alive, SIGKILL after ``timeout``; returns once all are gone."""
    for sig, wait in ((number, timeout), (signal.SIGKILL, KILL_WAIT)):
        for pid, start in candidates:
            if system.alive(pid, start):
                try:
                    system.kill(pid, sig)
                except ProcessLookupError:
                    continue
        deadline = system.monotonic() + wait
        while system.monotonic() < deadline:
            if not any(system.alive(pid, start) for pid, start in candidates):
                return
            system.sleep(POLL)
