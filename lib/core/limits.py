"""A model's resource limits: which mechanism enforces each one (decided), then rlimits (done).

``enforcement`` is the decision, pure: given the spec's ``limits``, what the host's
cgroups offer (``lib.core.cgroups.CgroupHost``) and the uid the model runs as, it
maps every limit to ``cgroup_v2``, ``cgroup_v1`` or ``rlimit``, or raises a
``ValidationError`` naming the limit that nothing here can enforce. The daemon calls
it at deploy (a 400 before anything runs) and for the status; the monitor calls it
again before every spawn and does what it says.

What each mechanism can express:

- ``memory_bytes``: a cgroup only. Never ``RLIMIT_AS``: CUDA reserves terabytes of
  virtual address space, so an address-space limit kills every GPU model at start.
- ``cpu`` (a fraction of cores, 1.5 = one and a half): a cgroup only.
- ``tasks``: the cgroup's ``pids.max``; without one, ``RLIMIT_NPROC``, and only for a
  model that runs as a user other than root (root ignores it; it counts every process
  of that user, so give each model its own user).
- ``open_files`` (``RLIMIT_NOFILE``) and ``core_bytes`` (``RLIMIT_CORE``): rlimits,
  always (a cgroup has no such knob).
"""

from lib.core import vocabulary
from lib.errors import ValidationError

FIELDS = ("memory_bytes", "tasks", "open_files", "core_bytes", "cpu")
# The cgroup controller each limit needs.
CONTROLLERS = {"memory_bytes": "memory", "tasks": "pids", "cpu": "cpu"}
# Names of the ``resource`` constants (the module loads only where a limit is applied).
RLIMITS = {"open_files": "RLIMIT_NOFILE", "core_bytes": "RLIMIT_CORE", "tasks": "RLIMIT_NPROC"}
_WHY_NOT = {
    "memory_bytes": "rlimits cannot express it (RLIMIT_AS would break CUDA)",
    "cpu": "rlimits cannot express it",
    "tasks": "RLIMIT_NPROC does not bind a model that runs as root (set user)",
}


def enforcement(limits, host, uid):
    """``{limit: mechanism}`` for every limit set in ``limits``; a 400 for one that cannot be.

    ``host``: a ``CgroupHost`` (``None``: no cgroups); ``uid``: whom the model runs as.
    """
    decided = {}
    for field in FIELDS:
        if (limits or {}).get(field) is None:
            continue
        decided[field] = _mechanism(field, host, uid)
    return decided


def _mechanism(field, host, uid):
    controller = CONTROLLERS.get(field)
    if controller is not None and host is not None and host.has(controller):
        return host.mechanism
    if field in RLIMITS and (field != "tasks" or uid != 0):
        return vocabulary.ENFORCED_BY_RLIMIT
    why_cgroup = host.missing(controller) if host is not None else "no cgroup support"
    raise ValidationError(
        "limits." + field,
        "cannot be enforced on this host: %s; %s" % (why_cgroup, _WHY_NOT[field]),
    )


def cgroup_values(limits, decided):
    """``{limit: value}`` of the limits a cgroup enforces."""
    return {
        field: limits[field]
        for field, how in decided.items()
        if how != vocabulary.ENFORCED_BY_RLIMIT
    }


def rlimit_values(limits, decided):
    """``[(resource, value)]`` of the limits rlimits enforce (soft = hard = value)."""
    return [
        (RLIMITS[field], limits[field])
        for field, how in decided.items()
        if how == vocabulary.ENFORCED_BY_RLIMIT
    ]


def apply_rlimits(pairs):
    """In the model's child, before privileges are dropped: set each rlimit."""
    import resource

    for name, value in pairs:
        resource.setrlimit(getattr(resource, name), (value, value))
