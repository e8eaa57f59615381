"""The monitor's GPU duties: a VRAM gate before a start, a release check after a stop.

- ``VramGate``: with ``gpus.min_free_mib``, a start (the first, or a restart after
  a crash) waits in ``starting`` (``waiting_for: "gpu"``) until every assigned GPU
  has that much memory free, for at most ``gpus.wait`` seconds, then fails with
  ``gpu_busy`` naming the processes holding the memory. A state machine with time
  as an input: ``begin(now)``, then ``tick(now, snapshot)`` says open, wait or fail.
- ``released_after``: after a stop, poll until no process of the model holds GPU
  memory any more (bounded), so the next start does not crash into CUDA OOM.
- ``describe_holders``: who holds memory on a set of GPUs, and whether modeld manages
  them (a holder below a modeld monitor belongs to that monitor's model).

``GpuGuard`` bundles them for the monitor loop. Light: the standard library,
``lib.core.nvidia`` and ``/proc``; nvidia-smi is run only while the model has no
process running (gate, release check, after a crash), never on its steady path.
"""

import collections
import time

from lib.core import nvidia, procfs, vocabulary
from lib.monitor import lifecycle

MIB = nvidia.MIB
GATE_POLL = 1.0
RELEASE_TIMEOUT = 10.0
RELEASE_POLL = 0.2
MAX_ANCESTORS = 64

OPEN, WAIT, FAIL = "open", "wait", "fail"
GateResult = collections.namedtuple("GateResult", "outcome short")
# What the monitor does after the gate's turn: lifecycle actions, spawn now, the exit to
# stamp (failed), lines for the model's log, and an event to append.
Turn = collections.namedtuple("Turn", "actions spawn failed notes event")
NO_TURN = Turn([], False, False, [], None)


def shortfall(snapshot, assignment, min_free_bytes):
    """``[(entry, free bytes or None)]`` of the assigned GPUs with less than ``min_free_bytes``.

    A GPU missing from the snapshot, or with unknown free memory, counts as short:
    the gate never opens on a guess.
    """
    by_uuid = {gpu.uuid: gpu for gpu in snapshot.gpus} if snapshot.error is None else {}
    short = []
    for entry in assignment:
        gpu = by_uuid.get(entry["uuid"])
        free = gpu.memory_free_bytes if gpu is not None else None
        if free is None or free < min_free_bytes:
            short.append((entry, free))
    return short


class VramGate:
    """Wait until each assigned GPU has ``min_free_bytes`` free, at most ``wait`` seconds."""

    def __init__(self, min_free_bytes, wait, assignment, poll=GATE_POLL):
        self.min_free_bytes = min_free_bytes
        self.wait = wait
        self.assignment = assignment
        self.poll = poll
        self.active = False
        self.deadline = None
        self.next_check = None
        self.first_wait = False  # the last tick was the first to wait: announce it

    def begin(self, now):
        self.active = True
        self.checks = 0
        self.deadline = now + self.wait
        self.next_check = now

    def due(self, now):
        return self.active and now >= self.next_check

    def tick(self, now, snapshot):
        """``GateResult``: open (start now), wait (look again at ``next_check``) or fail."""
        short = shortfall(snapshot, self.assignment, self.min_free_bytes)
        if not short:
            self.active = False
            return GateResult(OPEN, [])
        if now >= self.deadline:
            self.active = False
            return GateResult(FAIL, short)
        self.next_check = now + self.poll
        self.checks += 1
        self.first_wait = self.checks == 1
        return GateResult(WAIT, short)

    def cancel(self):
        self.active = False


def managed_by(pid):
    """The model whose monitor ``pid`` runs under, or None (not modeld's, or not visible)."""
    current = pid
    for _ in range(MAX_ANCESTORS):
        stat = procfs.read_stat(current)
        if stat is None or stat.ppid <= 1:
            return None
        argv = procfs.cmdline(stat.ppid)
        if "monitor" in argv and "--name" in argv[:-1]:
            return argv[argv.index("--name") + 1]
        current = stat.ppid
    return None


def describe_holders(snapshot, uuids, exclude=()):
    """One phrase per process holding memory on ``uuids``: pid, size, owner."""
    phrases = []
    for app in snapshot.apps:
        if app.gpu_uuid not in uuids or app.pid in exclude:
            continue
        stat = procfs.read_stat(app.pid)
        size = "?" if app.used_memory_bytes is None else "%d MiB" % (app.used_memory_bytes // MIB)
        if stat is None:
            owner = "not visible here"
        else:
            model = managed_by(app.pid)
            owner = "model %r, managed by modeld" % model if model else "not managed by modeld"
        name = " %s" % stat.comm if stat else ""
        phrases.append("pid %d%s holds %s (%s)" % (app.pid, name, size, owner))
    return phrases


def gate_message(short, snapshot, min_free_bytes):
    parts = [
        "GPU %s has %s MiB free" % (entry["index"], "?" if free is None else free // MIB)
        for entry, free in short
    ]
    text = "%s; %d MiB needed" % (", ".join(parts), min_free_bytes // MIB)
    if snapshot.error:
        return text + " (%s)" % snapshot.error
    holders = describe_holders(snapshot, {entry["uuid"] for entry, _ in short})
    return text + ("; " + "; ".join(holders) if holders else "; no process holds it")


def still_holding(snapshot, seen):
    """The compute processes that are the model's: pid seen in its tree, with its start time
    (a process gone from /proc but still listed by the driver is still being cleaned up)."""
    held = []
    for app in snapshot.apps:
        if app.pid in seen and procfs.start_time(app.pid) in (None, seen[app.pid]):
            held.append(app)
    return held


def released_after(query, seen, timeout=RELEASE_TIMEOUT, clock=time.monotonic, sleep=time.sleep):
    """Poll ``query()`` (a snapshot) until none of ``seen`` holds GPU memory.

    Returns ``(seconds, [])`` once released, or ``(None, holders)`` after ``timeout``
    (or when nvidia-smi fails: then ``holders`` is ``[error]``).
    """
    started = clock()
    while True:
        snapshot = query()
        if snapshot.error is not None:
            return None, [snapshot.error]
        held = still_holding(snapshot, seen)
        if not held:
            return round(clock() - started, 3), []
        if clock() - started >= timeout:
            return None, describe_holders(snapshot, {app.gpu_uuid for app in held})
        sleep(RELEASE_POLL)


class GpuGuard:
    """The monitor's GPU companion for one deployment (inert without nvidia-smi or GPUs)."""

    def __init__(self, deployment, smi):
        request = deployment.spec.get("gpus") or {}
        self.assignment = deployment.gpus or []
        self.smi = smi
        self.seen = {}  # pid -> start time of every process the model had in this monitor
        self.gate = None
        if request.get("min_free_mib") is not None and self.assignment:
            self.gate = VramGate(request["min_free_mib"] * MIB, request["wait"], self.assignment)

    @property
    def waiting_for(self):
        return vocabulary.WAITING_FOR_GPU if self.gate is not None and self.gate.active else None

    def hold(self, now):
        """Must this start wait for the gate? (It begins the wait.)"""
        if self.gate is None:
            return False
        self.gate.begin(now)
        return True

    def next_deadline(self):
        return self.gate.next_check if self.gate is not None and self.gate.active else None

    def turn(self, now, life):
        """The gate's turn in the monitor loop (``life``: the model's ``Lifecycle``)."""
        if self.gate is None or not self.gate.active:
            return NO_TURN
        if life.status == vocabulary.STOPPING:
            self.gate.cancel()  # stopped while waiting: no process to stop, so it is done
            return NO_TURN._replace(
                actions=life.exited(None, None, vocabulary.REASON_STOPPED, now, False)
            )
        if not self.gate.due(now):
            return NO_TURN
        snapshot = self.smi.snapshot()
        result = self.gate.tick(now, snapshot)
        if result.outcome == OPEN:
            return NO_TURN._replace(spawn=True)
        message = gate_message(result.short, snapshot, self.gate.min_free_bytes)
        if result.outcome == FAIL:
            text = "not enough free GPU memory after %gs: %s" % (self.gate.wait, message)
            actions = life.spawn_failed(vocabulary.REASON_GPU_BUSY, text, now)
            return Turn(actions, False, True, [("error", text)], None)
        if not self.gate.first_wait:
            return NO_TURN
        text = "waiting for GPU memory (up to %gs): %s" % (self.gate.wait, message)
        event = lifecycle.Event(now, life.status, life.status, text, None, life.cause)
        return Turn([], False, False, [("warning", text)], event)

    def observe(self, processes):
        """Remember the model's (pid, start time) pairs for the release check."""
        for pid, start in processes:
            self.seen[pid] = start

    def after_changes(self, changes):
        """If ``changes`` end in a stop: the release check. ``(event fields, notes)``."""
        # An unload (-> idle) frees the memory for another model: check it like a stop.
        stopped = any(event.new in (vocabulary.STOPPED, vocabulary.IDLE) for event in changes)
        if not stopped or not self.smi.available or not self.seen:
            return None, []
        seconds, holders = released_after(self.smi.snapshot, dict(self.seen))
        if seconds is not None:
            note = ("info", "GPU memory released %.2fs after the stop" % seconds)
            return {"gpu_released_after_s": seconds}, [note]
        note = ("warning", "GPU memory still held after the stop: %s" % "; ".join(holders))
        return {"gpu_released_after_s": None, "gpu_still_held": holders}, [note]

    def oom_holders(self):
        """After a CUDA out-of-memory exit: who holds memory on the model's GPUs."""
        if not self.smi.available:
            return []
        snapshot = self.smi.snapshot()
        if snapshot.error:
            return [snapshot.error]
        uuids = {entry["uuid"] for entry in self.assignment} or {gpu.uuid for gpu in snapshot.gpus}
        return describe_holders(snapshot, uuids, exclude=set(self.seen))
