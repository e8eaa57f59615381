"""Planning an apply: which model is created, updated in place, restarted, left or deleted.

Pure (the decision; ``lib.daemon.apply`` is the action). ``plan`` takes the wanted
specs (normalized, secrets restored) and what runs now, and returns the steps in
the order they must run, which is the GPU-safe order:

1. ``delete`` (prune only: models of the same set that the file no longer names),
2. ``update-restart`` (each stopped before it starts again: never two copies),
3. ``update-in-place`` (the monitor rereads its settings; the pid stays),
4. ``create``,

and last the ``unchanged`` ones, which nothing touches. A model that exists but is
not running (stopped, exited, failed) is restarted even when its spec is unchanged:
the file says it should run. Ownership: a model the file names joins the file's set
(``adopt`` says from where); only models already in the set can be pruned, so a
model deployed by hand or by another set is never deleted.
"""

import collections

from lib.core import specdiff
from lib.errors import ValidationError

ORDER = (specdiff.DELETE, specdiff.RESTART, specdiff.IN_PLACE, specdiff.CREATE, specdiff.UNCHANGED)
NOT_RUNNING = "not running"


class Current(collections.namedtuple("Current", "spec owner active")):
    """What runs now under a name: its spec (by the current parser), set, and whether active."""

    __slots__ = ()


class Step(collections.namedtuple("Step", "kind name paths restart_paths reason adopt")):
    """One model's part of a plan; ``adopt``: the set it leaves (``""``: deployed by hand)."""

    __slots__ = ()

    def encode(self):
        shown = {"name": self.name, "kind": self.kind, "paths": list(self.paths)}
        if self.restart_paths:
            shown["restart_paths"] = list(self.restart_paths)
        if self.reason:
            shown["reason"] = self.reason
        if self.adopt is not None:
            shown["adopted_from"] = self.adopt or None
        return shown


def check_request(set_name, names, prune, prune_all):
    """Refuse what must never run: duplicate names, a prune of everything not insisted on."""
    seen = set()
    for index, name in enumerate(names):
        if name in seen:
            raise ValidationError("models[%d].name" % index, "names %r a second time" % name)
        seen.add(name)
    if prune and not names and not prune_all:
        raise ValidationError(
            "models",
            "is empty and prune is set: that deletes every model of set %r; "
            "send prune_all: true to insist" % set_name,
        )


def plan(set_name, wanted, current, prune):
    """The steps of an apply, in execution order.

    ``wanted``: ``{name: normalized spec}``; ``current``: ``{name: Current}``.
    """
    steps = [_step(set_name, name, spec, current.get(name)) for name, spec in wanted.items()]
    if prune:
        steps += [
            Step(specdiff.DELETE, name, [], [], "not in the file", None)
            for name, now in current.items()
            if now.owner == set_name and name not in wanted
        ]
    return sorted(steps, key=lambda step: (ORDER.index(step.kind), step.name))


def _step(set_name, name, spec, now):
    if now is None:
        return Step(specdiff.CREATE, name, [], [], None, None)
    change = specdiff.classify(now.spec, spec)
    adopt = None if now.owner == set_name else (now.owner or "")
    kind, reason = change.kind, None
    if not now.active:
        kind, reason = specdiff.RESTART, NOT_RUNNING
    return Step(kind, name, change.paths, change.restart_paths, reason, adopt)


def summary(steps):
    """``{kind: count}`` of every kind (zeros included), for the answer and the CLI."""
    counts = {kind: 0 for kind in ORDER}
    for step in steps:
        counts[step.kind] += 1
    return counts
