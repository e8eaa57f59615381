"""Readers of Linux's /proc: process identity, descendants and resource use.

A process is identified by (pid, start time), never a bare pid: pids are
reused. A zombie (state ``Z``) counts as dead, because in some sandboxes pid 1
reaps slowly and ``kill(pid, 0)`` still succeeds on a zombie.
"""

import collections
import os

ProcStat = collections.namedtuple(
    "ProcStat",
    "pid comm state ppid pgrp session utime stime num_threads starttime rss_pages",
)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
PROC = "/proc"


def read_stat(pid):
    """The parsed ``/proc/<pid>/stat``, or ``None`` if there is no such process."""
    try:
        with open("%s/%d/stat" % (PROC, pid), "rb") as handle:
            raw = handle.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return parse_stat(raw)


def parse_stat(raw):
    """Parse the text of a stat file. The command name may hold spaces and parentheses."""
    head, _, rest = raw.rpartition(")")
    pid_text, _, comm = head.partition(" (")
    fields = rest.split()
    # fields[0] is field 3 of proc(5): state; the numbers below are proc(5)'s minus 3.
    return ProcStat(
        pid=int(pid_text),
        comm=comm,
        state=fields[0],
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        session=int(fields[3]),
        utime=int(fields[11]),
        stime=int(fields[12]),
        num_threads=int(fields[17]),
        starttime=int(fields[19]),
        rss_pages=int(fields[21]),
    )


def is_running(stat):
    """True for a live process; zombies and dead ones are not."""
    return stat is not None and stat.state not in ("Z", "X", "x")


def alive(pid, starttime=None):
    """Is ``pid`` a live process, and (if given) the one that started at ``starttime``?"""
    if not pid:
        return False
    stat = read_stat(pid)
    if not is_running(stat):
        return False
    return starttime is None or stat.starttime == starttime


def start_time(pid):
    """The start time of ``pid`` in clock ticks since boot, or ``None``."""
    stat = read_stat(pid)
    return stat.starttime if stat else None


def boot_id():
    """This boot's id: start times from another boot mean nothing."""
    try:
        with open(PROC + "/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return "unknown"


def cmdline(pid):
    """The argv of ``pid`` as a list of strings (empty if gone)."""
    try:
        with open("%s/%d/cmdline" % (PROC, pid), "rb") as handle:
            raw = handle.read()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def children(pid):
    """Direct children of ``pid``, from every thread's ``children`` file."""
    found = set()
    try:
        tasks = os.listdir("%s/%d/task" % (PROC, pid))
    except OSError:
        return found
    for task in tasks:
        try:
            with open("%s/%d/task/%s/children" % (PROC, pid, task)) as handle:
                found.update(int(part) for part in handle.read().split())
        except OSError:
            # The thread ended between listdir and open: it has no children now.
            continue
    return found


def descendants(pid):
    """Every live process below ``pid`` in the process tree (``pid`` excluded)."""
    found, pending, seen = [], [pid], {pid}
    while pending:
        for child in children(pending.pop()):
            if child in seen:
                continue
            seen.add(child)
            stat = read_stat(child)
            if is_running(stat):
                found.append(stat)
            pending.append(child)
    return found


def all_processes():
    """Every process on the machine (a full scan: for rare paths only)."""
    result = []
    for entry in os.listdir(PROC):
        if entry.isdigit():
            stat = read_stat(int(entry))
            if is_running(stat):
                result.append(stat)
    return result


def usage(stats):
    """Summed CPU ticks, resident bytes and threads of a set of processes."""
    ticks = sum(stat.utime + stat.stime for stat in stats)
    rss = sum(stat.rss_pages for stat in stats) * PAGE_SIZE
    threads = sum(stat.num_threads for stat in stats)
    return ticks, rss, threads
