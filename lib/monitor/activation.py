"""When an on-demand model starts and unloads: a pure state machine, time an argument.

The relay (``lib.monitor.relay``) tells it what happened to connections
(``arrive``, ``abandon``, ``opened``, ``closed``); the monitor loop gives it the
model's status once per iteration (``turn``) and carries out what it returns:
start the model, unload it, relay the queued connections, close the queued
ones that waited ``load_timeout``. No I/O, no clock of its own.

The rules (and the failures of other tools each one avoids):

- **Idle means no open connection**, not "no request started": the idle timer
  runs from the last close, or from the first ``ready`` without traffic; an
  open connection (a stream) holds the model however long it lasts.
- **A load is never aborted by its clients**: a queued connection that goes
  away, or that waited ``load_timeout``, is closed; the load carries on.
- **A connection during an unload** queues; once the model is idle again the
  next turn starts it. Decided here, in the loop, never from a stale snapshot.
- At most ``max_pending`` connections queue; beyond that they are refused.
"""

import collections

from lib.core import vocabulary

RELAY = "relay"  # connect it to the model now
QUEUE = "queue"  # hold it until the model is ready
REFUSE = "refuse"  # too many queued: close it (or answer 503)

# What the monitor does after a turn: start the model, unload it, connection ids to relay
# now, connection ids to close (they waited load_timeout).
Turn = collections.namedtuple("Turn", "start unload relay expire")
NOTHING = Turn(False, False, (), ())


def phase_of(status, ready):
    """The relay's phase (``vocabulary.ACTIVATION_*``) for a model status."""
    if ready:
        return vocabulary.ACTIVATION_READY
    if status == vocabulary.IDLE or status in vocabulary.TERMINAL or status is None:
        return vocabulary.ACTIVATION_IDLE
    if status == vocabulary.STOPPING:
        return vocabulary.ACTIVATION_UNLOADING
    return vocabulary.ACTIVATION_LOADING  # starting, running not yet healthy, backoff


class Activation:
    """The connection bookkeeping and the idle timer of one on-demand model.

    Lives as long as its monitor. ``pending``: queued connection ids and when
    each arrived; ``connections``: connections relayed and still open.
    """

    def __init__(self, idle_timeout, load_timeout, max_pending):
        self.idle_timeout = idle_timeout
        self.load_timeout = load_timeout
        self.max_pending = max_pending
        self.phase = vocabulary.ACTIVATION_IDLE
        self.pending = collections.OrderedDict()  # id -> arrived at
        self.connections = 0
        self.idle_since = None  # the idle timer's start; None while traffic flows
        self.last_activity = None
        self.unloads = 0

    # -- what happened to connections ---------------------------------------

    def arrive(self, connection_id, now):
        """A client connected: ``RELAY``, ``QUEUE`` or ``REFUSE`` it."""
        self.last_activity = now
        if self.phase == vocabulary.ACTIVATION_READY:
            self.opened(now)
            return RELAY
        if len(self.pending) >= self.max_pending:
            return REFUSE
        self.pending[connection_id] = now
        return QUEUE

    def abandon(self, connection_id, now):
        """A queued client went away: forget it (the load, if any, goes on)."""
        if self.pending.pop(connection_id, None) is not None:
            self.last_activity = now

    def opened(self, now):
        """A connection is relayed: the idle timer stops."""
        self.connections += 1
        self.idle_since = None

    def closed(self, now):
        """A relayed connection ended; the last one starts the idle timer."""
        self.connections = max(0, self.connections - 1)
        self.last_activity = now
        if self.connections == 0 and not self.pending:
            self.idle_since = now

    # -- the loop's turn ----------------------------------------------------

    def turn(self, now, status, ready):
        """What to do now that the model is ``status`` (``ready``): a ``Turn``."""
        phase = phase_of(status, ready)
        relay = ()
        if phase == vocabulary.ACTIVATION_READY and self.phase != vocabulary.ACTIVATION_READY:
            relay = tuple(self.pending)
            self.pending.clear()
            self.connections += len(relay)
            # The first ready without traffic starts the timer too.
            self.idle_since = None if self.connections else now
        start = status == vocabulary.IDLE and bool(self.pending)
        if start:
            phase = vocabulary.ACTIVATION_LOADING
        self.phase = phase
        expire = self._expired(now)
        unload = self._idle_expired(now)
        if unload:
            self.unloads += 1
            self.phase = vocabulary.ACTIVATION_UNLOADING
            self.idle_since = None
        if not (start or unload or relay or expire):
            return NOTHING
        return Turn(start, unload, relay, expire)

    def unloaded(self):
        """Count an unload the monitor did on request (manual, evicted)."""
        self.unloads += 1
        self.idle_since = None

    def _expired(self, now):
        if self.phase == vocabulary.ACTIVATION_READY or not self.pending:
            return ()
        late = [key for key, at in self.pending.items() if now - at >= self.load_timeout]
        for key in late:
            del self.pending[key]
        return tuple(late)

    def _idle_expired(self, now):
        return (
            self.phase == vocabulary.ACTIVATION_READY
            and self.connections == 0
            and not self.pending
            and self.idle_since is not None
            and now >= self.idle_since + self.idle_timeout
        )

    def next_deadline(self):
        """When ``turn`` next has something to do by the clock alone (``None``: nothing)."""
        candidates = []
        if self.pending and self.phase != vocabulary.ACTIVATION_READY:
            candidates.append(next(iter(self.pending.values())) + self.load_timeout)
        if self.phase == vocabulary.ACTIVATION_READY and self.idle_since is not None:
            candidates.append(self.idle_since + self.idle_timeout)
        return min(candidates) if candidates else None

    def describe(self):
        """``state``, ``pending``, ``connections``, ``last_activity`` (seconds), ``unloads``."""
        return {
            "state": self.phase,
            "pending": len(self.pending),
            "connections": self.connections,
            "last_activity": self.last_activity,
            "unloads": self.unloads,
        }
