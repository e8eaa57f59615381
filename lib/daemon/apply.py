"""Carrying out ``PUT /models/{name}`` and ``POST /apply`` (the plan is ``applyplan``).

An ``Applier`` belongs to one ``Supervisor`` for its whole life. It runs one apply at
a time (a second one is ``ApplyInProgressError``, 409: the client retries), and uses
the supervisor's own operations, so every start goes through ``deploy`` under the
model's lock and its "already running" check: no model is ever started twice, even
by a ``POST /models`` racing an apply.

The order is the plan's (deletes, restarts stop-before-start, in-place, creates).
Every stop of the deletes and restarts finishes before the first start, so a GPU
freed by one model is free before another needs it; if any of those stops fails,
the starts are skipped (``skipped``), since the GPU may still be held.

In place: the new spec is written to ``deployment.json`` with its ``generation``
bumped and the monitor is sent ``SIGUSR1`` (``lib.core.protocol``, "Reload"); the
answer waits briefly for the monitor to report that generation.
"""

import copy
import logging
import signal
import threading

from lib import errors
from lib.core import redact, specdiff, vocabulary
from lib.core import spec as specs
from lib.daemon import applyplan

log = logging.getLogger("modeld.apply")

RELOAD_WAIT = 5.0
APPLIED, PARTIAL, PLANNED = "applied", "partial", "planned"


class Applier:
    """Plans and performs applies and spec replacements for one supervisor."""

    def __init__(self, supervisor):
        self.supervisor = supervisor
        self.parse_request = parse_request  # for the API, which does not import the daemon
        self.lock = threading.Lock()
        self.running_set = None

    # -- reading -------------------------------------------------------------------

    def normalize(self, body, field=""):
        """A body as the model will run it: references resolved, parsed, secrets restored."""
        try:
            body = specdiff.resolve_references(body)
            spec = specs.parse_spec(copy.deepcopy(body), self.supervisor.log_defaults)
            stored = self._records().get(spec["name"])
            return redact.unmask_spec(spec, stored.spec if stored is not None else None)
        except errors.ValidationError as error:
            if not field:
                raise
            raise errors.ValidationError(field + error.field, _message(error)) from None

    def current(self, names):
        """``{name: applyplan.Current}`` of the deployments named."""
        records, found = self._records(), {}
        for name in names:
            record = records.get(name)
            if record is None:
                continue
            spec = specdiff.current_spec(record, self.supervisor.log_defaults)
            found[name] = applyplan.Current(spec, record.owner, self._active(name))
        return found

    def _records(self):
        with self.supervisor.lock:
            return dict(self.supervisor.records)

    def _active(self, name):
        try:
            return self.supervisor.describe(name)["status"] in vocabulary.ACTIVE
        except errors.ModelNotFoundError:
            return False

    # -- PUT /models/{name} --------------------------------------------------------

    def replace(self, name, body, dry_run=False, cause=None):
        """Replace one model's spec; ``(created, answer)``."""
        if not isinstance(body, dict):
            raise errors.ValidationError("body", "must be a JSON object")
        body = dict(body)
        if body.setdefault("name", name) != name:
            raise errors.ValidationError("name", "must be %r, the name in the path" % name)
        spec = self.normalize(body)
        record = self._records().get(name)
        owner = record.owner if record is not None else None
        steps = applyplan.plan(owner, {name: spec}, self.current([name]), prune=False)
        step = steps[0]
        answer = step.encode()
        if dry_run:
            return False, dict(answer, dry_run=True)
        outcome = self._perform_alone(step, body, spec, owner, cause)
        answer.update(outcome)
        return step.kind == specdiff.CREATE, answer

    def _perform_alone(self, step, body, spec, owner, cause):
        if step.kind == specdiff.RESTART:
            failure = self._stop_for_restart(step.name, cause)
            if failure is not None:
                return failure
        return self._perform(step, body, spec, owner, cause)

    # -- POST /apply -----------------------------------------------------------------

    def apply(self, request, dry_run=False, wait=False, timeout=None, cause=None):
        """Plan an apply request (``parse_request``'s result) and, unless ``dry_run``, do it."""
        set_name, bodies, prune, prune_all = request
        wanted = {
            body["name"]: self.normalize(body, "models[%d]." % index)
            for index, body in enumerate(bodies)
        }
        applyplan.check_request(set_name, list(wanted), prune, prune_all)
        if dry_run:
            return self._answer(set_name, self._plan(set_name, wanted, prune), {}, PLANNED)
        if not self.lock.acquire(blocking=False):
            raise errors.ApplyInProgressError(self.running_set)
        self.running_set = set_name
        try:
            steps = self._plan(set_name, wanted, prune)
            bodies_by_name = {body["name"]: body for body in bodies}
            cause = dict(cause or {}, apply=set_name)
            outcomes = self._execute(set_name, steps, bodies_by_name, wanted, cause)
        finally:
            self.running_set = None
            self.lock.release()
        if wait:
            self._wait_all(steps, outcomes, timeout)
        failed = any(outcome["outcome"] != "done" for outcome in outcomes.values())
        return self._answer(set_name, steps, outcomes, PARTIAL if failed else APPLIED)

    def _plan(self, set_name, wanted, prune):
        names = set(wanted)
        if prune:
            names |= {name for name, record in self._records().items() if record.owner == set_name}
        return applyplan.plan(set_name, wanted, self.current(sorted(names)), prune)

    def _answer(self, set_name, steps, outcomes, result):
        shown = []
        for step in steps:
            item = step.encode()
            item.update(outcomes.get(step.name, {}))
            shown.append(item)
        return {
            "set": set_name,
            "result": result,
            "dry_run": result == PLANNED,
            "summary": applyplan.summary(steps),
            "plan": shown,
        }

    def _execute(self, set_name, steps, bodies, wanted, cause):
        outcomes, stop_failed = {}, False
        for step in steps:
            if step.kind == specdiff.DELETE:
                outcomes[step.name] = self._delete(step.name, cause)
            elif step.kind == specdiff.RESTART:
                failure = self._stop_for_restart(step.name, cause)
                if failure is not None:
                    outcomes[step.name] = failure
            stop_failed = stop_failed or step.name in outcomes and _failed(outcomes[step.name])
        for step in steps:
            if step.kind == specdiff.DELETE or step.name in outcomes:
                continue
            if stop_failed and step.kind in (specdiff.RESTART, specdiff.CREATE):
                outcomes[step.name] = _skipped("an earlier stop failed: its GPU may be held")
                continue
            body, spec = bodies[step.name], wanted[step.name]
            outcomes[step.name] = self._perform(step, body, spec, set_name, cause)
        return outcomes

    # -- the steps ---------------------------------------------------------------------

    def _perform(self, step, body, spec, owner, cause):
        """Start, reload or adopt one model (a restart's stop is done already)."""
        try:
            if step.kind in (specdiff.CREATE, specdiff.RESTART):
                model = self.supervisor.deploy(body, cause, owner=owner)
            elif step.kind == specdiff.IN_PLACE:
                model = self._reload(step.name, spec, body, owner)
            else:
                model = self._keep(step.name, spec, body, owner)
        except errors.ModeldError as error:
            return _error_outcome(error)
        return {"outcome": "done", "status": model["status"], "pid": model.get("pid")}

    def _delete(self, name, cause):
        try:
            self.supervisor.stop(name, purge=True, cause=dict(cause, reason="pruned"))
        except errors.ModeldError as error:
            return _error_outcome(error)
        return {"outcome": "done", "status": "deleted"}

    def _stop_for_restart(self, name, cause):
        """Stop a model about to restart; ``None`` when stopped, else the failed outcome."""
        if not self._active(name):
            return None
        try:
            model = self.supervisor.stop(name, cause=dict(cause, reason="spec changed"))
        except errors.ModeldError as error:
            return _error_outcome(error)
        if model["status"] in vocabulary.ACTIVE:
            return _failed_outcome("stop_failed", "it is still %s" % model["status"])
        return None

    def _reload(self, name, spec, body, owner):
        supervisor = self.supervisor
        lock = supervisor._exclusive(name)
        try:
            record = supervisor.record(name)
            record.spec = spec
            record.submitted = specdiff.submitted_form(body, spec)
            record.owner = owner
            record.generation += 1
            supervisor.registry.save(record)
            generation = record.generation
            signalled = self._signal_reload(name)
        finally:
            lock.release()
        if signalled:
            confirmed = supervisor.wait_for(
                name, lambda state: (state.spec_generation or 0) >= generation, RELOAD_WAIT
            )
            if not confirmed:
                log.warning("the monitor of %r did not confirm generation %d", name, generation)
        return supervisor.describe(name)

    def _signal_reload(self, name):
        supervisor = self.supervisor
        state = supervisor.read_state(name)
        if state is None or not supervisor.monitor_alive(name):
            return False
        if not supervisor.system.alive(state.monitor_pid, state.monitor_starttime):
            return False
        try:
            supervisor.system.kill(state.monitor_pid, signal.SIGUSR1)
        except ProcessLookupError:
            return False
        return True

    def _keep(self, name, spec, body, owner):
        """Unchanged: record the set (adoption) and the body as submitted; nothing restarts."""
        supervisor = self.supervisor
        lock = supervisor._exclusive(name)
        try:
            record = supervisor.record(name)
            record.owner = owner
            record.submitted = specdiff.submitted_form(body, spec)
            supervisor.registry.save(record)
        finally:
            lock.release()
        return supervisor.describe(name)

    def _wait_all(self, steps, outcomes, timeout):
        deadline = None if timeout is None else self.supervisor.system.monotonic() + timeout
        for step in steps:
            outcome = outcomes.get(step.name)
            if step.kind == specdiff.DELETE or outcome is None or _failed(outcome):
                continue
            if outcome["outcome"] != "done":
                continue
            left = (
                None
                if deadline is None
                else max(0.1, deadline - self.supervisor.system.monotonic())
            )
            try:
                model = self.supervisor.wait_ready(step.name, left)
            except errors.ModeldError as error:
                outcomes[step.name] = _error_outcome(error)
                continue
            outcome.update(status=model["status"], pid=model.get("pid"), ready=True)


def parse_request(body):
    """``(set, models, prune, prune_all)`` of a ``POST /apply`` body, checked."""
    if not isinstance(body, dict):
        raise errors.ValidationError("body", "must be a JSON object")
    allowed = ("set", "models", "prune", "prune_all")
    for key in body:
        if key not in allowed:
            raise errors.ValidationError(key, "unknown field (allowed: %s)" % ", ".join(allowed))
    set_name = specs.parse_name(body.get("set"), "set")
    models = body.get("models")
    if not isinstance(models, list):
        raise errors.ValidationError("models", "must be a list of model specs")
    for index, model in enumerate(models):
        if not isinstance(model, dict):
            raise errors.ValidationError("models[%d]" % index, "must be a model spec (an object)")
        specs.parse_name(model.get("name"), "models[%d].name" % index)
    flags = []
    for key in ("prune", "prune_all"):
        value = body.get(key, False)
        if not isinstance(value, bool):
            raise errors.ValidationError(key, "must be true or false")
        flags.append(value)
    prune, prune_all = flags
    return set_name, models, prune or prune_all, prune_all


def _message(error):
    return str(error).split(": ", 1)[-1]


def _failed(outcome):
    return outcome["outcome"] == "failed"


def _error_outcome(error):
    return _failed_outcome(error.code, str(error))


def _failed_outcome(code, message):
    return {"outcome": "failed", "error": {"code": code, "message": message}}


def _skipped(reason):
    return {"outcome": "skipped", "reason": reason}
