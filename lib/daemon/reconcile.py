"""The reconcile decision: what the supervisor does about one model's monitor. Pure.

Once a second (and when the daemon starts) the supervisor compares what the
operator wants (the deployment) with what it observes (the monitor's lock and
its state file) and performs the ``Action`` that ``decide`` returns:

=========  ==========================================================================
kind       when
=========  ==========================================================================
wait       a monitor is on its way up, or the model already failed (the operator acts)
adopt      a monitor holds the lock: it lives, whoever started it; never start another
replace    the run's monitor died while its model was active: a new one recovers it
give_up    ... but monitors of this model died ``RECOVERY_LIMIT`` times in the window
start      the run has no state yet and should run: persisted but never started, or
           its monitor died at birth
idle       nothing to do: the run is over, or the model is meant to be stopped
=========  ==========================================================================
"""

import collections

from lib.core import vocabulary

WAIT, ADOPT, REPLACE, GIVE_UP, START, IDLE = "wait", "adopt", "replace", "give_up", "start", "idle"
RECOVERY_LIMIT = 5
RECOVERY_WINDOW = 60

Action = collections.namedtuple("Action", "kind reason")


def decide(record, state, monitor_alive, launching, failure, recent_recoveries):
    """The ``Action`` for one model.

    ``record``: its ``protocol.Deployment``; ``state``: its monitor's
    ``protocol.MonitorState`` or ``None``; ``monitor_alive``: the monitor's lock
    is held; ``launching``: a monitor start is under way; ``failure``: why its
    monitor cannot start (already given up), or ``None``; ``recent_recoveries``:
    how many times its monitor was replaced in the last ``RECOVERY_WINDOW`` s.
    """
    if launching:
        return Action(WAIT, "its monitor is starting")
    if failure:
        return Action(WAIT, "given up: %s" % failure)
    if monitor_alive:
        return Action(ADOPT, "its monitor holds the lock")
    fresh = state is not None and state.run == record.run
    if fresh and state.active:
        if recent_recoveries >= RECOVERY_LIMIT:
            return Action(
                GIVE_UP, "its monitor died %d times in %ds" % (RECOVERY_LIMIT, RECOVERY_WINDOW)
            )
        return Action(REPLACE, "its monitor is gone (was %s)" % state.status)
    if not fresh and record.desired == vocabulary.DESIRED_RUNNING:
        return Action(START, "run %d has no monitor" % record.run)
    return Action(IDLE, "run %d is over" % record.run if fresh else "it is meant to be stopped")
