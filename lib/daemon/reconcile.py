"""The reconcile decision: what the supervisor does about one model's monitor. Pure.

Once a second (and when the daemon starts) the supervisor compares what the
operator wants (the deployment) with what it observes (the monitor's lock and
its state file) and performs the ``Action`` that ``decide`` returns:

=========  ==========================================================================
kind       when
=========  ==========================================================================
wait       a monitor is on its way up, or the model already failed (the operator acts)
adopt      a monitor holds the lock: it lives, whoever started it; never start another
stop       ... but its model is meant to be stopped and is not stopping: a stop always
           wins over a restart that raced it, so reconcile tells the monitor again
finish     the run's monitor died while its model was meant to be stopped: the daemon
           ends what it left (a replacement would read a deployment the disk may not
           have been able to update, and start the model again)
replace    the run's monitor died while its model was active: a new one recovers it
wait       ... but the last one was replaced less than ``replacement_delay`` ago
give_up    ... but monitors of this model died ``RECOVERY_LIMIT`` times in the window
start      the run has no state yet and should run: persisted but never started, or
           its monitor died at birth
idle       nothing to do: the run is over, or the model is meant to be stopped
=========  ==========================================================================
"""

import collections

from lib.core import vocabulary

WAIT, ADOPT, STOP, FINISH, REPLACE, GIVE_UP, START, IDLE = (
    "wait",
    "adopt",
    "stop",
    "finish",
    "replace",
    "give_up",
    "start",
    "idle",
)
RECOVERY_LIMIT = 5
RECOVERY_WINDOW = 60
REPLACEMENT_DELAY_MAX = 30
# Statuses of a live run that a stop has not reached yet.
NOT_STOPPING = frozenset({vocabulary.STARTING, vocabulary.RUNNING, vocabulary.BACKOFF})

Action = collections.namedtuple("Action", "kind reason")


def replacement_delay(recoveries):
    """How long after its last replacement a dying monitor is replaced again (s)."""
    if recoveries <= 0:
        return 0
    return min(REPLACEMENT_DELAY_MAX, 2 ** (recoveries - 1))


def decide(
    record, state, monitor_alive, launching, failure, recent_recoveries, since_last_recovery=None
):
    """The ``Action`` for one model.

    ``record``: its ``protocol.Deployment``; ``state``: its monitor's
    ``protocol.MonitorState`` or ``None`` (needed with a live monitor only when the
    model is meant to be stopped); ``monitor_alive``: the monitor's lock
    is held; ``launching``: a monitor start is under way; ``failure``: why its
    monitor cannot start (already given up), or ``None``; ``recent_recoveries``:
    how many times its monitor was replaced in the last ``RECOVERY_WINDOW`` s;
    ``since_last_recovery``: seconds since the last of those (``None``: none).
    """
    if launching:
        return Action(WAIT, "its monitor is starting")
    if failure:
        return Action(WAIT, "given up: %s" % failure)
    fresh = state is not None and state.run == record.run
    if monitor_alive:
        if not record.wanted and fresh and state.status in NOT_STOPPING:
            return Action(STOP, "it is meant to be stopped but is %s" % state.status)
        return Action(ADOPT, "its monitor holds the lock")
    if fresh and state.active and not record.wanted:
        return Action(FINISH, "its monitor is gone while it was meant to stop")
    if fresh and state.active:
        if recent_recoveries >= RECOVERY_LIMIT:
            return Action(
                GIVE_UP, "its monitor died %d times in %ds" % (RECOVERY_LIMIT, RECOVERY_WINDOW)
            )
        delay = replacement_delay(recent_recoveries)
        if since_last_recovery is not None and since_last_recovery < delay:
            return Action(WAIT, "backing off: replacing its monitor again after %ds" % delay)
        return Action(REPLACE, "its monitor is gone (was %s)" % state.status)
    if not fresh and record.desired == vocabulary.DESIRED_RUNNING:
        return Action(START, "run %d has no monitor" % record.run)
    return Action(IDLE, "run %d is over" % record.run if fresh else "it is meant to be stopped")
