"""One model's state machine: events in, actions out, time an argument. No I/O.

The monitor (``lib.monitor.loop``) feeds it what happened (spawned, exited, a stop
request, a probe result, the clock) and carries out the actions it returns
(spawn, signal the process groups, kill everything, exit). Every status change
goes through ``_go``, which checks the edge against ``lib.core.vocabulary`` and records
an event.
"""

import collections

from lib.core import spec as specs
from lib.core import vocabulary

Spawn = collections.namedtuple("Spawn", "")
Signal = collections.namedtuple("Signal", "signal")  # the stop signal to every process group
KillAll = collections.namedtuple("KillAll", "")  # SIGKILL to every process left
Finish = collections.namedtuple("Finish", "")  # terminal: the monitor may exit

Event = collections.namedtuple("Event", "at old new reason exit cause")

RESUME_BEGIN = "begin"  # a fresh run: start the model
RESUME_START = "start"  # a manual start of a run that had ended (stopped, exited, failed)
RESUME_RECOVER = "recover"  # the predecessor died while the model was active: policy decides
RESUME_STOPPED = "stopped"  # nothing to run: record the model as stopped
# How a new monitor takes over, and the counters it carries over from its predecessor;
# ``previous_status``: the status its predecessor ended in (for a ``RESUME_START``).
Resume = collections.namedtuple(
    "Resume", "kind restarts retries last_exit previous_status", defaults=(None,)
)

# The cause of a transition no request asked for: the restart policy, a probe, a timer.
POLICY_CAUSE = {"kind": vocabulary.CAUSE_POLICY}


def restart_delay(attempt, initial, cap):
    """Exponential backoff: ``initial * 2**(attempt-1)``, at most ``cap`` seconds."""
    if attempt <= 0:
        return 0.0
    return min(cap, initial * (2 ** min(attempt - 1, 62)))


def is_failure(last_exit):
    """Did this exit fail (a non-zero code, a signal, or a failed probe)?"""
    if last_exit is None:
        return True
    if last_exit.get("reason") in vocabulary.PROBE_FAILURES:
        return True
    return last_exit.get("code") != 0 or last_exit.get("signal") is not None


def decide_resume(previous, deploy_id, recover, wanted):
    """How a new monitor takes over from ``previous`` (a ``protocol.MonitorState`` or ``None``).

    ``recover``: it replaces a monitor that died (the daemon said so);
    ``wanted``: the deployment's desired state is running. Counters carry over
    only from the same deployment: ``restarts`` always, ``retries`` (the backoff
    position) only when recovering; a fresh run starts its backoff afresh. The
    last exit (its time in microseconds in the file) comes back in seconds.
    """
    same = previous is not None and previous.deploy_id == deploy_id
    restarts = previous.restarts if same else 0
    retries = previous.retries if same and recover else 0
    last_exit = dict(previous.last_exit) if same and previous.last_exit else None
    if last_exit is not None:
        last_exit["at"] = (last_exit.get("at") or 0) / 1_000_000
    if recover:
        was_active = previous is None or previous.status in vocabulary.ACTIVE
        kind = RESUME_RECOVER if was_active and wanted else RESUME_STOPPED
        return Resume(kind, restarts, retries, last_exit)
    if not wanted:
        return Resume(RESUME_STOPPED, restarts, retries, last_exit)  # stopped before it started
    if same and previous.status in vocabulary.TERMINAL:
        return Resume(RESUME_START, restarts, retries, last_exit, previous.status)
    return Resume(RESUME_BEGIN, restarts, retries, last_exit)


class Lifecycle:
    """The status, health, restart bookkeeping and timers of one model."""

    def __init__(self, spec, restarts=0, retries=0, last_exit=None):
        self.restart = spec["restart"]
        self.probe = spec["health"]
        self.has_probe = specs.probe_kind(spec["health"]) is not None
        self.stop_timeout = spec["stop"]["timeout"]
        self.stop_signal = spec["stop"]["signal"]
        self.on_demand = spec.get("activation") is not None
        self.unload_reason = None  # while an unload runs: one of vocabulary.UNLOAD_REASONS
        self.status = None
        self.health = vocabulary.HEALTH_NONE
        self.reason = None
        self.restarts = restarts
        self.retries = retries
        self.last_exit = last_exit
        self.pid = None
        self.started_at = None
        self.running_since = None
        self.next_start_at = None
        self.kill_at = None
        self.stop_kind = None  # None or one of vocabulary.STOP_KINDS
        self.exit_seen = False
        self.failures_in_a_row = 0
        self.ever_healthy = False
        self.cause = None
        self.events = []
        self.unreported_exit = None  # the last exit, until an event carries it

    # -- bookkeeping -------------------------------------------------------

    def _go(self, new, now, reason):
        vocabulary.check_transition(self.status, new)
        exit_info, self.unreported_exit = self.unreported_exit, None
        self.events.append(Event(now, self.status, new, reason, exit_info, self.cause))
        self.status = new
        self.reason = reason
        if new != vocabulary.BACKOFF:
            self.next_start_at = None
        if new == vocabulary.RUNNING:
            self.running_since = now
        if new not in vocabulary.PROCESS_RUNS:
            self.health = vocabulary.HEALTH_NONE  # no process: nothing to be healthy
        if new in vocabulary.TERMINAL:
            return [Finish()]
        return []

    def _record_exit(self, code, signal_name, reason, now):
        self.last_exit = {"code": code, "signal": signal_name, "at": now, "reason": reason}
        self.unreported_exit = dict(self.last_exit)

    def take_events(self):
        events, self.events = self.events, []
        return events

    # -- events ------------------------------------------------------------

    @classmethod
    def resuming(cls, spec, decision):
        """A lifecycle carrying the counters of ``decision`` (a ``Resume``)."""
        return cls(spec, decision.restarts, decision.retries, decision.last_exit)

    def resume(self, decision, now, cause=None):
        """The first actions of a new monitor, as ``decide_resume`` said."""
        if decision.kind == RESUME_BEGIN:
            return self.begin(now, cause)
        if decision.kind == RESUME_START:
            return self.started_again(decision.previous_status, now, cause)
        return self.recovered(now, decision.kind == RESUME_RECOVER, cause)

    def begin(self, now, cause=None):
        """Start the model for the first time in this monitor (an on-demand one waits idle)."""
        self.cause = cause
        if self.on_demand:
            return self._go(vocabulary.IDLE, now, "waiting for a connection")
        return self._start(now, "deployed")

    def activate(self, now):
        """An on-demand model gets a connection while idle: start it."""
        if self.status != vocabulary.IDLE:
            return []
        self.retries = 0
        return self._start(now, "activated by a connection")

    def unload(self, now, reason, cause=None):
        """Back to idle (``reason``: one of ``vocabulary.UNLOAD_REASONS``); no-op unless loaded."""
        if not self.on_demand:
            return []
        if self.status == vocabulary.BACKOFF:
            self.cause = cause
            return self._go(vocabulary.IDLE, now, reason)
        if self.status not in (vocabulary.STARTING, vocabulary.RUNNING):
            return []
        self.cause = cause
        self.unload_reason = reason
        self.stop_kind = vocabulary.STOP_UNLOAD
        self.kill_at = now + self.stop_timeout
        text = "unloading (%s)" % reason
        return self._go(vocabulary.STOPPING, now, text) + [Signal(self.stop_signal)]

    def started_again(self, previous_status, now, cause=None):
        """A manual start of a run that had ended: recorded as ``stopped -> starting``."""
        self.cause = cause
        actions = self._start(now, "started")
        # This monitor's machine begins at None; the event names where the model really was.
        self.events[-1] = self.events[-1]._replace(old=previous_status)
        return actions

    def _start(self, now, reason):
        self.exit_seen = False
        self.pid = None
        self.started_at = now
        self.running_since = None
        self.health = vocabulary.HEALTH_STARTING if self.has_probe else vocabulary.HEALTH_NONE
        self.failures_in_a_row = 0
        self.ever_healthy = False
        return self._go(vocabulary.STARTING, now, reason) + [Spawn()]

    def spawned(self, pid, now):
        self.pid = pid
        self.started_at = now

    def spawn_failed(self, reason, message, now):
        """The program could not be executed: retrying would not help."""
        self._record_exit(None, None, reason, now)
        return self._go(vocabulary.FAILED, now, message)

    def recovered(self, now, previous_active, cause=None):
        """A replacement monitor, after stopping what the dead one left behind."""
        self.cause = cause
        if not previous_active:
            return self._go(vocabulary.STOPPED, now, vocabulary.REASON_STOPPED)
        self.cause = POLICY_CAUSE  # what follows a monitor's death, no request asked for
        if self.on_demand:
            # The listener died with the old monitor: wait idle again; a connection reloads it.
            return self._go(vocabulary.IDLE, now, "its monitor was replaced; waiting idle")
        self._record_exit(None, None, vocabulary.REASON_MONITOR_DIED, now)
        if self.restart["policy"] == vocabulary.RESTART_NO:
            return self._go(vocabulary.EXITED, now, "its monitor died; restart policy is no")
        self.restarts += 1
        return self._start(now, "restarted after its monitor died")

    def exited(self, code, signal_name, reason, now, leftovers):
        """The model's main process ended; ``leftovers``: others of its tree remain."""
        self.exit_seen = True
        if self.stop_kind == vocabulary.STOP_UNHEALTHY:
            reason = self.last_exit["reason"] if self.last_exit else vocabulary.REASON_UNHEALTHY
        self._record_exit(code, signal_name, reason, now)
        self.pid = None
        if leftovers:
            if self.status != vocabulary.STOPPING:
                self.cause = POLICY_CAUSE
                self.kill_at = now + self.stop_timeout
                return self._go(vocabulary.STOPPING, now, "stopping processes left after exit") + [
                    Signal(self.stop_signal)
                ]
            return []
        return self.settle(now)

    def all_gone(self, now):
        """No process of the model is left, and its main process has been reaped."""
        if self.exit_seen and self.status in (
            vocabulary.STARTING,
            vocabulary.RUNNING,
            vocabulary.STOPPING,
        ):
            return self.settle(now)
        return []

    def settle(self, now):
        """Everything is gone: stop, restart, or give up."""
        kind, self.stop_kind, self.kill_at = self.stop_kind, None, None
        if kind == vocabulary.STOP_REQUESTED:
            return self._go(vocabulary.STOPPED, now, vocabulary.REASON_STOPPED)
        if kind == vocabulary.STOP_FOR_RESTART:
            self.retries = 0
            return self._start(now, "restarted")
        if kind == vocabulary.STOP_UNLOAD:
            reason, self.unload_reason = self.unload_reason, None
            self.pid = None
            return self._go(vocabulary.IDLE, now, reason)
        return self._after_exit(now)

    def _after_exit(self, now):
        self.cause = POLICY_CAUSE  # the model ended on its own: the policy decides, no request
        exit_text = describe_exit(self.last_exit)
        policy = self.restart["policy"]
        failed = is_failure(self.last_exit)
        if policy == vocabulary.RESTART_NO or (
            policy == vocabulary.RESTART_ON_FAILURE and not failed
        ):
            return self._go(vocabulary.EXITED, now, exit_text)
        if self._ran_stably(now):
            self.retries = 0
        limit = self.restart["max_retries"]
        if limit is not None and self.retries >= limit:
            return self._go(
                vocabulary.FAILED, now, "%s; gave up after %d restarts" % (exit_text, limit)
            )
        self.retries += 1
        self.restarts += 1
        delay = restart_delay(self.retries, self.restart["backoff"], self.restart["backoff_max"])
        self.next_start_at = now + delay
        of = "" if limit is None else " of %d" % limit
        text = "%s; restart %d%s in %.1fs" % (exit_text, self.retries, of, delay)
        return self._go(vocabulary.BACKOFF, now, text)

    def request_stop(self, timeout, now, cause=None, restart=False):
        """A stop (or restart) asked for through the API or a signal."""
        self.cause = cause
        timeout = self.stop_timeout if timeout is None else timeout
        if self.status in (vocabulary.BACKOFF, vocabulary.IDLE):
            if restart:
                self.retries = 0
                return self._start(now, "restarted")
            return self._go(vocabulary.STOPPED, now, vocabulary.REASON_STOPPED)
        if self.status in (vocabulary.STARTING, vocabulary.RUNNING):
            self.stop_kind = vocabulary.STOP_FOR_RESTART if restart else vocabulary.STOP_REQUESTED
            self.kill_at = now + timeout
            action = "restarting" if restart else "stopping"
            return self._go(vocabulary.STOPPING, now, action) + [Signal(self.stop_signal)]
        if self.status == vocabulary.STOPPING:
            # Already on the way down: the stricter deadline wins; a stop beats a restart.
            if self.stop_kind in (None, vocabulary.STOP_UNHEALTHY, vocabulary.STOP_UNLOAD) or (
                not restart
            ):
                self.stop_kind = (
                    vocabulary.STOP_FOR_RESTART if restart else vocabulary.STOP_REQUESTED
                )
            self.kill_at = min(self.kill_at or now + timeout, now + timeout)
            return []
        return []

    def probe_result(self, healthy, now, detail=None):
        """The outcome of one health probe."""
        if self.status not in (vocabulary.STARTING, vocabulary.RUNNING) or self.exit_seen:
            return []
        if healthy:
            self.failures_in_a_row = 0
            self.ever_healthy = True
            self.health = vocabulary.HEALTHY
            if self.status == vocabulary.STARTING:
                return self._go(vocabulary.RUNNING, now, "healthy")
            return []
        in_grace = now - self.started_at < self.probe["start_period"]
        if in_grace and not self.ever_healthy:
            return []
        self.failures_in_a_row += 1
        if self.failures_in_a_row < self.probe["retries"]:
            return []
        self.health = vocabulary.UNHEALTHY
        reason = (
            vocabulary.REASON_UNHEALTHY if self.ever_healthy else vocabulary.REASON_HEALTH_TIMEOUT
        )
        self._record_exit(None, None, reason, now)
        self.cause = POLICY_CAUSE
        self.stop_kind = vocabulary.STOP_UNHEALTHY
        self.kill_at = now + self.stop_timeout
        text = "%s: %s" % (reason.replace("_", " "), detail or "probe failed")
        return self._go(vocabulary.STOPPING, now, text) + [Signal(self.stop_signal)]

    def tick(self, now):
        """Timers: start period, stable run, backoff end, SIGKILL deadline."""
        if self.status == vocabulary.STARTING and not self.has_probe and self.pid is not None:
            if now - self.started_at >= self.probe["start_period"]:
                return self._go(vocabulary.RUNNING, now, "started")
        if self.status == vocabulary.RUNNING and self.retries and self._ran_stably(now):
            self.retries = 0
        if self.status == vocabulary.BACKOFF and now >= self.next_start_at:
            self.cause = POLICY_CAUSE
            return self._start(now, "restarting")
        if self.status == vocabulary.STOPPING and self.kill_at is not None and now >= self.kill_at:
            self.kill_at = None
            return [KillAll()]
        return []

    def next_deadline(self):
        """When ``tick`` next has something to do (``None``: nothing scheduled)."""
        candidates = [self.next_start_at, self.kill_at]
        if (
            self.status == vocabulary.STARTING
            and not self.has_probe
            and self.started_at is not None
        ):
            candidates.append(self.started_at + self.probe["start_period"])
        if self.status == vocabulary.RUNNING and self.retries and self._stable_from() is not None:
            candidates.append(self._stable_from() + self.restart["reset_after"])
        known = [value for value in candidates if value is not None]
        return min(known) if known else None

    def _stable_from(self):
        """When the current run began to count towards ``reset_after`` (``None``: not yet).

        With a probe, from when it became ready: a run that never passed its probe is
        never stable, however long its start period (``start_period >= reset_after``
        would otherwise reset the retries on every attempt and never reach ``failed``).
        """
        return self.running_since if self.has_probe else self.started_at

    def _ran_stably(self, now):
        since = self._stable_from()
        return since is not None and now - since >= self.restart["reset_after"]

    @property
    def terminal(self):
        return self.status in vocabulary.TERMINAL

    @property
    def ready(self):
        return vocabulary.is_ready(self.status, self.health)


def describe_exit(last_exit):
    """``exited with code 1``, ``killed by SIGKILL``, ``health timeout`` ..."""
    if last_exit is None:
        return "exited"
    reason = last_exit.get("reason")
    if reason in vocabulary.PROBE_FAILURES:
        return reason.replace("_", " ")
    if last_exit.get("signal"):
        text = "killed by %s" % last_exit["signal"]
    else:
        text = "exited with code %s" % last_exit.get("code")
    if reason and reason not in (
        vocabulary.REASON_EXIT_CODE,
        vocabulary.REASON_COMPLETED,
        vocabulary.REASON_SIGNAL,
    ):
        text += " (%s)" % reason.replace("_", " ")
    return text
