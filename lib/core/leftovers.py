"""What a monitor left running: found by pid AND start time, stopped through the OS seam.

A monitor records ``[pid, start time]`` of every process of its model in
``state.json`` (``protocol.MonitorState.processes``). Whoever finds that monitor
dead finishes its job with these functions: a replacement monitor
(``lib.monitor.loop``), or the daemon when the monitor died during a stop or purge
(``lib.daemon.supervisor``). A pid alone is never trusted: pids are reused.
"""

import signal

POLL = 0.05
KILL_WAIT = 30.0


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


def still_alive(system, candidates):
    """The (pid, start time) pairs of ``candidates`` that are still alive, sorted."""
    return sorted((pid, start) for pid, start in candidates if system.alive(pid, start))
