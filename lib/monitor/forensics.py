"""Why did a model stop? A reason code from its exit status, its run's phase and its output.

The decision (``classify_exit``) is pure: the monitor passes the exit, whether the
model had been ready, the run's log entries (read back from the store within a
byte bound, ``lib.logs.diagnosis.read_run``) and what the OOM evidence says. The
reason is a stable snake_case code shown in ``last_exit.reason``, in events, and in
a failed ``deploy --wait``. The thin readers of the OOM evidence (``/dev/kmsg``,
the cgroup's ``memory.events``) sit at the end and never raise.
"""

import collections
import os
import re

from lib.core import vocabulary
from lib.logs import diagnosis

Diagnosis = collections.namedtuple("Diagnosis", "reason cause first_error oom_killer")
Diagnosis.__doc__ = """Why a run ended: ``reason`` (``last_exit.reason``); ``cause``, the reason
the output gives when ``reason`` is a probe failure or the signal (else ``None``);
``first_error``, the run's first error block (lines); ``oom_killer``: ``True`` when the
kernel log or the cgroup says the OOM killer killed it, ``None`` when unknown."""


def classify_exit(code, signal_name, entries, stop_requested=False, was_ready=False, oom=None):
    """A ``Diagnosis`` for an exit. ``entries``: the run's log entries (``diagnosis.read_run``).

    The signal and the run's phase come first: a SIGKILL is ``killed`` whatever the
    output said before it (the OOM killer's way, named when ``oom`` is true); after
    the model was ready, only the latest errors may explain the exit. Then the text:
    error blocks from the first one on (before ready), then the plain output.
    """
    first_error = diagnosis.first_error(entries)
    found, block = diagnosis.text_reason(entries, latest_first=was_ready)
    if block is not None and was_ready:
        first_error = diagnosis.bounded_text(block)
    if stop_requested:
        return Diagnosis(vocabulary.REASON_STOPPED, None, first_error, None)
    if signal_name == "SIGKILL":
        return Diagnosis(vocabulary.REASON_KILLED, found, first_error, oom)
    if code == 0 and signal_name is None:
        return Diagnosis(vocabulary.REASON_COMPLETED, None, first_error, None)
    if signal_name is not None and was_ready:
        return Diagnosis(vocabulary.REASON_SIGNAL, found, first_error, None)
    if found is not None:
        return Diagnosis(found, None, first_error, None)
    return Diagnosis(_from_status(code, signal_name), None, first_error, None)


def _from_status(code, signal_name):
    if code == 127:
        return vocabulary.REASON_EXECUTABLE_NOT_FOUND
    if code == 126:
        return vocabulary.REASON_PERMISSION_DENIED
    if signal_name is not None:
        return vocabulary.REASON_SIGNAL
    return vocabulary.REASON_EXIT_CODE


def probe_failure_cause(entries):
    """``(cause, first_error)`` for a health timeout or an unhealthy model: what the output
    says so far (a server that restarts its failing worker forever never exits)."""
    found, _ = diagnosis.text_reason(entries)
    return found, diagnosis.first_error(entries)


# -- the OOM killer: the kernel log and the cgroup's memory.events ---------------

_KMSG_KILLED = re.compile(
    rb"(?:Killed process|oom-kill:.*?,pid=|Memory cgroup out of memory: Killed process) ?(\d+)"
)


def oom_kills_in_kernel_log(text, pids):
    """True if a kernel log (``/dev/kmsg`` records, bytes) says the OOM killer killed one
    of ``pids``."""
    wanted = {str(pid).encode() for pid in pids}
    return any(match.group(1) in wanted for match in _KMSG_KILLED.finditer(text))


def read_kernel_log(path="/dev/kmsg", limit=1 << 20):
    """What the kernel log holds now (non-blocking), or ``None`` where it is unreadable
    (containers and unprivileged users usually cannot open ``/dev/kmsg``)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    chunks, size = [], 0
    try:
        while size < limit:
            try:
                record = os.read(fd, 8192)
            except BlockingIOError:
                break
            except OSError:
                # EPIPE: records were overwritten while we read; the next read goes on.
                continue
            if not record:
                break
            chunks.append(record)
            size += len(record)
    finally:
        os.close(fd)
    return b"".join(chunks)


def cgroup_oom_kills(proc_self="/proc/self/cgroup", root="/sys/fs/cgroup"):
    """The ``oom_kill`` count of this process's cgroup (v2 ``memory.events``), or ``None``."""
    try:
        with open(proc_self) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            events = os.path.join(root, line[3:].lstrip("/"), "memory.events")
            return parse_memory_events(_read_text(events))
    return None


def parse_memory_events(text):
    if text is None:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None


def _read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def oom_killed(pids, oom_kills_before):
    """Did the OOM killer kill one of ``pids``? ``True``, ``False``, or ``None`` (no way to
    tell: neither the kernel log nor the cgroup's counter could be read)."""
    kernel = read_kernel_log()
    if kernel is not None and oom_kills_in_kernel_log(kernel, pids):
        return True
    now = cgroup_oom_kills()
    if now is not None and oom_kills_before is not None:
        return now > oom_kills_before
    return False if kernel is not None else None


def classify_spawn_error(error, cwd):
    """The reason code for an ``OSError`` raised while executing the model."""
    if isinstance(error, FileNotFoundError):
        if error.filename == cwd:
            return vocabulary.REASON_CWD_NOT_FOUND
        return vocabulary.REASON_EXECUTABLE_NOT_FOUND
    if isinstance(error, PermissionError):
        return vocabulary.REASON_PERMISSION_DENIED
    if isinstance(error, NotADirectoryError):
        return vocabulary.REASON_CWD_NOT_FOUND
    return vocabulary.REASON_SPAWN_FAILED
