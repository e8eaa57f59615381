"""Each model's monitor state held in memory, refreshed when the monitor changes it.

``GET /models``, ``GET /models/{name}``, ``GET /metrics`` and the samplers read
``StateCache.get``: no file is read on a request's path once a model has been
seen. The monitor's ``state.json`` stays the truth (``lib.core.protocol``):

- **On change**: the monitor sends a datagram after every write
  (``lib.core.notify``); the ``Refresher`` thread hears it and reads that one
  file again (``StateCache.note``), then wakes the waiters (``wait``).
- **Safety net**: a datagram can be lost (the daemon's queue was full, it was
  restarting, the socket could not be bound). So the refresher also reads again
  every file not read for ``STALE_AFTER`` seconds, looking every
  ``SWEEP_INTERVAL``: a change is in memory at most ``LOST_NOTIFICATION_BOUND``
  seconds after it was written, datagram or not.
- **After a restart**: the cache starts empty and each entry is read from its
  file the first time it is asked for.
- **Decisions read the file**: what must not act on news a datagram has not
  brought yet (reconcile, control commands, the end of a wait) calls ``reload``.

Not keyed on file metadata: inodes are reused and mtimes move in steps of a few
milliseconds, so (inode, mtime, size) can be fooled; the monitor's ``generation``
counter cannot.
"""

import logging
import threading
import time

log = logging.getLogger("modeld.statecache")

STALE_AFTER = 2.0
SWEEP_INTERVAL = 0.5
LOST_NOTIFICATION_BOUND = STALE_AFTER + SWEEP_INTERVAL


def identity(state):
    """What tells two readings of a state file apart (``None``: no file)."""
    if state is None:
        return None
    return (state.run, state.monitor_pid, state.generation, state.updated_at)


def is_older(candidate, current):
    """Is ``candidate`` an earlier write of the same monitor than ``current``? (Two reads
    that finish out of order must not put the older one back.)"""
    if candidate is None or current is None:
        return False
    same_monitor = (candidate.run, candidate.monitor_pid) == (current.run, current.monitor_pid)
    return same_monitor and candidate.generation < current.generation


class _Entry:
    __slots__ = ("state", "read_at")

    def __init__(self, state, read_at):
        self.state = state
        self.read_at = read_at


class StateCache:
    """``{model: MonitorState}`` in memory; lives as long as its supervisor.

    ``read(name)`` reads one model's file (``MonitorState`` or ``None``); ``clock``
    is monotonic seconds. Thread-safe: requests read, the refresher writes.
    """

    def __init__(self, read, clock=time.monotonic, stale_after=STALE_AFTER):
        self.read = read
        self.clock = clock
        self.stale_after = stale_after
        self.entries = {}
        self.changed = threading.Condition()
        self.version = 0  # bumped whenever any entry changes: what waiters compare

    def get(self, name):
        """The state held for ``name``, read from its file the first time."""
        entry = self.entries.get(name)
        if entry is None:
            return self.reload(name)
        return entry.state

    def reload(self, name, only_known=False):
        """Read ``name``'s file now and hold what it says; ``only_known``: unless the
        name was forgotten meanwhile (a purge)."""
        state = self.read(name)
        with self.changed:
            entry = self.entries.get(name)
            if entry is None and only_known:
                return state
            if entry is not None and is_older(state, entry.state):
                entry.read_at = self.clock()
                return entry.state
            self.entries[name] = _Entry(state, self.clock())
            if entry is None or identity(entry.state) != identity(state):
                self.version += 1
                self.changed.notify_all()
        return state

    def note(self, name, monitor_pid, generation):
        """A monitor says it wrote ``generation``: read the file unless that is held
        already. True if it was read."""
        entry = self.entries.get(name)
        if entry is None:
            return False  # never asked for: its first ``get`` reads the file
        held = entry.state
        if held is not None and held.monitor_pid == monitor_pid and held.generation >= generation:
            return False
        self.reload(name, only_known=True)
        return True

    def stale(self):
        """The names whose file has not been read for ``stale_after`` seconds."""
        oldest = self.clock() - self.stale_after
        with self.changed:
            entries = list(self.entries.items())
        return [name for name, entry in entries if entry.read_at <= oldest]

    def refresh_stale(self):
        for name in self.stale():
            self.reload(name, only_known=True)

    def forget(self, name):
        with self.changed:
            self.entries.pop(name, None)

    def wait(self, seen, timeout):
        """Until some entry changes after ``seen`` (a ``version``), or ``timeout``
        seconds; the version then."""
        with self.changed:
            if self.version == seen:
                self.changed.wait(timeout)
            return self.version


class Refresher:
    """The thread that keeps a ``StateCache`` current: notifications, then stale entries.

    ``listen()`` returns a ``lib.core.notify.Listener`` or raises ``OSError``; without
    one (the address is taken, say) the cache is refreshed by the sweep alone.
    """

    def __init__(self, cache, listen, sweep=SWEEP_INTERVAL):
        self.cache = cache
        self.listen = listen
        self.sweep = sweep
        self.listener = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="statecache", daemon=True)

    def start(self):
        try:
            self.listener = self.listen()
        except OSError as error:
            log.warning(
                "no change notifications (%s): model states are read again every %gs",
                error,
                self.cache.stale_after,
            )
        self.thread.start()

    def stop(self):
        self.stopping.set()
        if self.listener is not None:
            self.listener.wake()  # it may be waiting for a datagram: do not wait out the sweep
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        if self.listener is not None:
            self.listener.close()

    def _run(self):
        while not self.stopping.is_set():
            try:
                self.step()
            except Exception:  # the cache must keep being refreshed: log, go on
                log.exception("refreshing model states failed")
                self.stopping.wait(self.sweep)

    def step(self):
        """Apply the notifications that come within one sweep interval, then the sweep."""
        if self.listener is None:
            self.stopping.wait(self.sweep)
            notes = []
        else:
            notes = self.listener.receive(self.sweep)
        for name, monitor_pid, generation in notes:
            self.cache.note(name, monitor_pid, generation)
        self.cache.refresh_stale()
