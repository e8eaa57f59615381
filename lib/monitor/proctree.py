"""Operations on a process tree: the OS side of keeping a model's processes together.

The monitor is a child subreaper, so every descendant of its model stays in
its subtree whatever it does (``setsid``, double forks); these functions find,
signal and kill that subtree, and stop what a dead monitor left behind, always
matching a process by pid AND start time. Every OS call goes through the
``lib.core.system.System`` passed in, so tests can replay a tree.
"""

import signal

from lib.core import leftovers


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


# The daemon finishes a stop whose monitor died with the same two functions: they live in core.
recorded = leftovers.recorded
stop_processes = leftovers.stop_processes
