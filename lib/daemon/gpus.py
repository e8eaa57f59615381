"""GPU decisions of the daemon, all pure: which GPUs a model gets, whose memory is whose.

- ``assign``: a spec's ``gpus`` request against the host's devices and the other
  models' reservations. Pinned ids are honoured as given (by index or UUID);
  a count takes GPUs no other model reserved first, then those with the most
  free memory. An earlier assignment is kept when it still fits (sticky), so a
  model keeps its GPUs across redeploys, restarts and daemon restarts. Two
  models share a GPU only when both say ``shared``.
- ``attribute``: which model each compute process belongs to. A process counts
  for a model when its pid is in the model's process tree AND its start time is
  the one recorded there (a reused pid is somebody else). A pid the driver
  reports but this pid namespace cannot see makes the numbers unknowable: the
  model's memory is then ``None`` with a reason, never a wrong number.
- ``model_view`` / ``inventory_view``: the ``gpus`` fields of a model's status and
  the body of ``GET /gpus``.

An assignment is a list of ``{"index", "uuid", "name"}``, persisted with the deployment.
"""

import collections

from lib import errors
from lib.core import nvidia, timefmt, vocabulary

Attribution = collections.namedtuple("Attribution", "owners invisible")


def reservations(records, exclude):
    """``{uuid: [(model, shared)]}`` of the deployments that want to run, but ``exclude``."""
    reserved = collections.defaultdict(list)
    for record in records:
        if (
            record.name == exclude
            or not record.gpus
            or record.desired != vocabulary.DESIRED_RUNNING
        ):
            continue
        shared = bool((record.spec.get("gpus") or {}).get("shared"))
        for gpu in record.gpus:
            reserved[gpu["uuid"]].append((record.name, shared))
    return dict(reserved)


def assign(request, devices, reserved, previous=None, error=None):
    """The GPUs for a spec's ``gpus`` ``request`` (None: no GPUs asked, None returned).

    ``devices``: the host's ``nvidia.Gpu`` list (``error``: why it is empty).
    ``reserved``: from ``reservations``. ``previous``: this model's last assignment.
    Raises ``ValidationError`` (the request cannot fit this host) or ``GpuInUseError``.
    """
    if request is None:
        return None
    if not devices:
        raise errors.ValidationError(
            "gpus", "no GPU was found on this host (%s)" % (error or "nvidia-smi lists none")
        )
    if request.get("ids"):
        chosen = [_find(devices, wanted, "gpus.ids") for wanted in request["ids"]]
        _check_free_of_others(chosen, reserved, request.get("shared", False))
        return [_entry(gpu) for gpu in chosen]
    return _choose(request["count"], devices, reserved, request.get("shared", False), previous)


def _entry(gpu):
    return {"index": gpu.index, "uuid": gpu.uuid, "name": gpu.name}


def _find(devices, wanted, field):
    for gpu in devices:
        if wanted == gpu.uuid or wanted == str(gpu.index):
            return gpu
    known = ", ".join("%s (%s)" % (gpu.index, gpu.uuid) for gpu in devices)
    raise errors.ValidationError(field, "unknown GPU %r; this host has %s" % (wanted, known))


def _blocks(holders, shared):
    """Do the models reserving a GPU keep a model (``shared`` or not) off it?"""
    return any(not (shared and theirs) for _, theirs in holders)


def _check_free_of_others(chosen, reserved, shared):
    for gpu in chosen:
        holders = reserved.get(gpu.uuid, [])
        if _blocks(holders, shared):
            raise errors.GpuInUseError(
                "GPU %s is reserved by %s; share it only with gpus.shared on both models"
                % (gpu.index, ", ".join(name for name, _ in holders)),
                gpu=gpu.uuid,
                models=[name for name, _ in holders],
            )


def _choose(count, devices, reserved, shared, previous):
    if count > len(devices):
        raise errors.ValidationError(
            "gpus.count", "asks for %d GPUs; this host has %d" % (count, len(devices))
        )
    usable = [gpu for gpu in devices if not _blocks(reserved.get(gpu.uuid, []), shared)]
    kept = _still_fits(previous, usable, count)
    if kept is not None:
        return kept
    if len(usable) < count:
        taken = sorted({name for gpu in devices for name, _ in reserved.get(gpu.uuid, [])})
        raise errors.GpuInUseError(
            "asks for %d GPUs; %d are free of other models (reserved by %s)"
            % (count, len(usable), ", ".join(taken)),
            models=taken,
        )
    ranked = sorted(usable, key=lambda gpu: _preference(gpu, reserved))
    return [_entry(gpu) for gpu in ranked[:count]]


def _preference(gpu, reserved):
    """Unreserved first, then the most free memory (unknown counts as none), then index."""
    free = gpu.memory_free_bytes if gpu.memory_free_bytes is not None else -1
    return (len(reserved.get(gpu.uuid, [])), -free, str(gpu.index))


def _still_fits(previous, usable, count):
    if not previous or len(previous) != count:
        return None
    by_uuid = {gpu.uuid: gpu for gpu in usable}
    if not all(entry["uuid"] in by_uuid for entry in previous):
        return None
    return [_entry(by_uuid[entry["uuid"]]) for entry in previous]


# -- attribution -------------------------------------------------------------------


def attribute(apps, trees, start_times):
    """Who owns each compute process.

    ``trees``: ``{model: {pid: start time}}`` of each live model's processes.
    ``start_times``: ``{pid: start time now, or None when /proc has no such pid}``
    for the pids in ``apps``. Returns ``Attribution(owners={pid: model},
    invisible={pids this namespace cannot see})``.
    """
    owners, invisible = {}, set()
    for app in apps:
        now = start_times.get(app.pid)
        if now is None:
            invisible.add(app.pid)
            continue
        for name, tree in trees.items():
            if tree.get(app.pid) == now:
                owners[app.pid] = name
                break
    return Attribution(owners, frozenset(invisible))


def model_view(name, assignment, snapshot, attribution, live):
    """``gpus``, ``gpu_memory_bytes`` and ``gpu_memory_reason`` of a model's status.

    ``snapshot``: the last ``nvidia.Snapshot`` (None before the first);
    ``live``: the model has processes now.
    """
    assignment = assignment or []
    known = snapshot is not None and snapshot.error is None
    mine = [
        app for app in (snapshot.apps if known else ()) if attribution.owners.get(app.pid) == name
    ]
    rows = [
        {
            "index": entry["index"],
            "uuid": entry["uuid"],
            "name": entry.get("name"),
            "memory_used_bytes": _sum(app for app in mine if app.gpu_uuid == entry["uuid"]),
        }
        for entry in assignment
    ]
    total, reason = _model_total(assignment, snapshot, attribution, mine, live)
    if total is None:
        for row in rows:
            row["memory_used_bytes"] = None
    return {"gpus": rows, "gpu_memory_bytes": total, "gpu_memory_reason": reason}


def _sum(apps):
    values = [app.used_memory_bytes for app in apps]
    return None if any(value is None for value in values) else sum(values)


def _model_total(assignment, snapshot, attribution, mine, live):
    if snapshot is None:
        return None, "no GPU sample yet" if assignment else None
    if snapshot.error is not None:
        return None, snapshot.error if assignment else None
    if not live:
        return None, None
    watched = {entry["uuid"] for entry in assignment} or {gpu.uuid for gpu in snapshot.gpus}
    hidden = sorted(
        app.pid
        for app in snapshot.apps
        if app.pid in attribution.invisible and app.gpu_uuid in watched
    )
    if hidden:
        return None, (
            "nvidia-smi reports pid(s) %s that this pid namespace cannot see "
            "(modeld in a container?): memory cannot be attributed" % ", ".join(map(str, hidden))
        )
    total = _sum(mine)
    if total is None:
        return None, "nvidia-smi does not report per-process memory on this host"
    return total, None


def inventory_view(snapshot, assignments, attribution, commands=None):
    """The body of ``GET /gpus``.

    ``assignments``: ``{model: assignment}``; ``commands``: ``{pid: process name}``
    for the foreign processes, when known.
    """
    commands = commands or {}
    if snapshot is None:
        return {"gpus": [], "sampled_at": None, "error": "no GPU sample yet"}
    devices = []
    for gpu in snapshot.gpus:
        holders = [app for app in snapshot.apps if app.gpu_uuid == gpu.uuid]
        devices.append(
            dict(
                nvidia.gpu_dict(gpu),
                models=sorted(
                    name
                    for name, entries in assignments.items()
                    if any(entry["uuid"] == gpu.uuid for entry in entries or ())
                ),
                processes=[_process(app, attribution, commands) for app in holders],
                foreign_processes=[
                    _process(app, attribution, commands)
                    for app in holders
                    if app.pid not in attribution.owners
                ],
            )
        )
    sampled_at = timefmt.format_us(int(snapshot.taken_at * 1_000_000))
    return {"gpus": devices, "sampled_at": sampled_at, "error": snapshot.error}


def _process(app, attribution, commands):
    return {
        "pid": app.pid,
        "used_memory_bytes": app.used_memory_bytes,
        "model": attribution.owners.get(app.pid),
        "command": commands.get(app.pid),
        "visible": app.pid not in attribution.invisible,
    }
