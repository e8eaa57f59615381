"""GPU decisions as tables: the spec field, assignment, attribution, and the status views."""

import pytest
from gpufakes import MIB

from lib import errors
from lib.core import nvidia, vocabulary
from lib.core import spec as specs
from lib.daemon import gpus, registry

A, B, C = "GPU-aaaa", "GPU-bbbb", "GPU-cccc"


def device(index, uuid, free_mib):
    return nvidia.Gpu(index, uuid, "Fake", 81920 * MIB, (81920 - free_mib) * MIB, free_mib * MIB, 0)


HOST = [device(0, A, 1000), device(1, B, 80000), device(2, C, 40000)]


def spec_with(gpus_field, **extra):
    body = {"name": "m", "command": ["serve", "--devices", "{gpus}"], "gpus": gpus_field}
    body.update(extra)
    return specs.parse_spec(body)


# -- the spec field --------------------------------------------------------------


def test_a_count_gets_defaults():
    assert spec_with({"count": 2})["gpus"] == {
        "count": 2,
        "ids": None,
        "min_free_mib": None,
        "wait": specs.DEFAULT_GPU_WAIT,
        "shared": False,
    }


def test_ids_by_index_or_uuid():
    assert spec_with({"ids": [0, "GPU-aaaa"], "shared": True})["gpus"]["ids"] == ["0", "GPU-aaaa"]


@pytest.mark.parametrize(
    "gpus_field, field",
    [
        ({}, "gpus"),
        ({"count": 1, "ids": ["0"]}, "gpus"),
        ({"count": 0}, "gpus.count"),
        ({"count": True}, "gpus.count"),
        ({"ids": []}, "gpus.ids"),
        ({"ids": "0"}, "gpus.ids"),
        ({"ids": ["0", "0"]}, "gpus.ids"),
        ({"ids": [""]}, "gpus.ids[0]"),
        ({"count": 1, "min_free_mib": -1}, "gpus.min_free_mib"),
        ({"count": 1, "wait": "soon"}, "gpus.wait"),
        ({"count": 1, "shared": "yes"}, "gpus.shared"),
        ({"count": 1, "memory": 1}, "gpus.memory"),
        ("all", "gpus"),
    ],
)
def test_bad_gpus_fields_are_named(gpus_field, field):
    with pytest.raises(errors.ValidationError) as caught:
        spec_with(gpus_field)
    assert caught.value.field == field


def test_cuda_visible_devices_in_env_conflicts_with_gpus():
    with pytest.raises(errors.ValidationError) as caught:
        spec_with({"count": 1}, env={"CUDA_VISIBLE_DEVICES": "0"})
    assert caught.value.field == "env.CUDA_VISIBLE_DEVICES"
    # without gpus it is the operator's business
    assert specs.parse_spec({"name": "m", "command": ["x"], "env": {"CUDA_VISIBLE_DEVICES": "1"}})


def test_the_gpus_placeholder_needs_gpus():
    with pytest.raises(errors.ValidationError, match="uses {gpus}") as caught:
        specs.parse_spec({"name": "m", "command": ["serve", "--device", "{gpus}"]})
    assert caught.value.field == "gpus"


def test_environment_and_placeholder_from_the_assignment():
    spec = spec_with({"count": 2})
    assignment = [{"index": 1, "uuid": B, "name": "x"}, {"index": 2, "uuid": C, "name": "x"}]
    env = specs.model_environment({"PATH": "/bin"}, spec, None, assignment)
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-bbbb,GPU-cccc"
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert specs.resolve_command(spec, None, assignment) == ["serve", "--devices", "1,2"]
    assert "CUDA_VISIBLE_DEVICES" not in specs.model_environment({}, spec, None, None)


# -- assignment ------------------------------------------------------------------


def request(**fields):
    base = {"count": None, "ids": None, "min_free_mib": None, "wait": 30, "shared": False}
    return dict(base, **fields)


def uuids(assignment):
    return [entry["uuid"] for entry in assignment]


@pytest.mark.parametrize(
    "req, reserved, previous, expected",
    [
        # the most free memory first
        (request(count=1), {}, None, [B]),
        (request(count=2), {}, None, [B, C]),
        # unreserved first, even with less free memory
        (request(count=1), {B: [("other", True)]}, None, [C]),
        # an exclusive reservation keeps everyone off; a shared one keeps non-sharers off
        (request(count=1, shared=True), {B: [("other", False)]}, None, [C]),
        (request(count=1, shared=True), {B: [("o", True)], C: [("p", True)]}, None, [A]),
        (request(count=3, shared=True), {B: [("o", True)]}, None, [C, A, B]),
        # sticky: the previous assignment is kept while it fits
        (request(count=1), {}, [{"index": 0, "uuid": A, "name": "x"}], [A]),
        (request(count=1), {A: [("other", False)]}, [{"index": 0, "uuid": A}], [B]),
        (request(count=2), {}, [{"index": 0, "uuid": A}], [B, C]),
        # pinned ids are honoured as given, by index or UUID, in the order given
        (request(ids=["2", A]), {}, None, [C, A]),
        (request(ids=["1"], shared=True), {B: [("other", True)]}, None, [B]),
    ],
)
def test_assign(req, reserved, previous, expected):
    assert uuids(gpus.assign(req, HOST, reserved, previous)) == expected


@pytest.mark.parametrize(
    "req, reserved, devices, error, field",
    [
        (request(count=4), {}, HOST, errors.ValidationError, "gpus.count"),
        (request(ids=["7"]), {}, HOST, errors.ValidationError, "gpus.ids"),
        (request(ids=["GPU-zzzz"]), {}, HOST, errors.ValidationError, "gpus.ids"),
        (request(count=1), {}, [], errors.ValidationError, "gpus"),
        (request(count=3), {A: [("a", False)]}, HOST, errors.GpuInUseError, None),
        (request(ids=["0"]), {A: [("a", False)]}, HOST, errors.GpuInUseError, None),
        (request(ids=["0"], shared=True), {A: [("a", False)]}, HOST, errors.GpuInUseError, None),
    ],
)
def test_assign_refuses(req, reserved, devices, error, field):
    with pytest.raises(error) as caught:
        gpus.assign(req, devices, reserved, None, "nvidia-smi not found")
    if field:
        assert caught.value.field == field
    else:
        assert caught.value.status == 409 and "a" in caught.value.details["models"]


def test_no_gpu_says_why():
    with pytest.raises(errors.ValidationError, match="no GPU was found.*nvidia-smi not found"):
        gpus.assign(request(count=1), [], {}, None, "nvidia-smi not found")
    assert gpus.assign(None, [], {}, None) is None


def test_reservations_come_from_models_that_want_to_run():
    def record(name, assignment, desired=vocabulary.DESIRED_RUNNING, shared=False):
        spec = {"name": name, "gpus": {"count": 1, "shared": shared}}
        return registry.Deployment(spec, None, desired=desired, gpus=assignment)

    records = [
        record("a", [{"index": 0, "uuid": A}]),
        record("b", [{"index": 1, "uuid": B}], shared=True),
        record("c", [{"index": 2, "uuid": C}], desired=vocabulary.DESIRED_STOPPED),
        record("d", None),
    ]
    assert gpus.reservations(records, exclude="x") == {A: [("a", False)], B: [("b", True)]}
    assert gpus.reservations(records, exclude="a") == {B: [("b", True)]}


def test_a_deployment_keeps_its_assignment_through_disk_and_old_homes_still_load():
    assignment = [{"index": 1, "uuid": B, "name": "Fake"}]
    record = registry.Deployment({"name": "m"}, None, gpus=assignment)
    assert registry.Deployment.decode(record.encode()).gpus == assignment
    old = record.encode()
    del old["gpus"]
    assert registry.Deployment.decode(old).gpus is None


# -- attribution -----------------------------------------------------------------


def test_attribution_by_pid_and_start_time():
    apps = [
        nvidia.ComputeApp(100, A, 512 * MIB),  # the model's own process
        nvidia.ComputeApp(200, A, 256 * MIB),  # a pid the model once had, reused by another
        nvidia.ComputeApp(300, B, 64 * MIB),  # somebody else's
        nvidia.ComputeApp(400, B, 32 * MIB),  # a pid this namespace cannot see
    ]
    trees = {"m": {100: 5000, 200: 5001, 101: 5002}}
    start_times = {100: 5000, 200: 9999, 300: 7000, 400: None}
    found = gpus.attribute(apps, trees, start_times)
    assert found.owners == {100: "m"}
    assert found.invisible == {400}


def snapshot(apps, error=None, devices=HOST):
    return nvidia.Snapshot(tuple(devices), tuple(apps), 1.0e9, error)


ASSIGNED = [{"index": 0, "uuid": A, "name": "Fake"}]


def test_model_view_counts_its_own_memory():
    apps = [nvidia.ComputeApp(100, A, 512 * MIB), nvidia.ComputeApp(300, A, 64 * MIB)]
    attribution = gpus.attribute(apps, {"m": {100: 1}}, {100: 1, 300: 2})
    view = gpus.model_view("m", ASSIGNED, snapshot(apps), attribution, live=True)
    assert view == {
        "gpus": [{"index": 0, "uuid": A, "name": "Fake", "memory_used_bytes": 512 * MIB}],
        "gpu_memory_bytes": 512 * MIB,
        "gpu_memory_reason": None,
    }


@pytest.mark.parametrize(
    "apps, start_times, error, reason",
    [
        ([nvidia.ComputeApp(400, A, MIB)], {400: None}, None, "pid namespace"),
        ([nvidia.ComputeApp(100, A, None)], {100: 1}, None, "per-process memory"),
        ([], {}, "nvidia-smi did not answer within 5s", "did not answer"),
    ],
)
def test_model_view_is_null_with_a_reason_never_a_wrong_number(apps, start_times, error, reason):
    attribution = gpus.attribute(apps, {"m": {100: 1}}, start_times)
    view = gpus.model_view("m", ASSIGNED, snapshot(apps, error), attribution, live=True)
    assert view["gpu_memory_bytes"] is None
    assert reason in view["gpu_memory_reason"]
    assert view["gpus"][0]["memory_used_bytes"] is None


def test_a_host_without_gpus_shows_empty_fields():
    empty = nvidia.empty_snapshot("nvidia-smi not found")
    view = gpus.model_view("m", None, empty, gpus.Attribution({}, frozenset()), live=True)
    assert view == {"gpus": [], "gpu_memory_bytes": None, "gpu_memory_reason": None}


def test_inventory_lists_models_and_foreign_processes():
    apps = [nvidia.ComputeApp(100, A, 512 * MIB), nvidia.ComputeApp(300, A, 64 * MIB)]
    attribution = gpus.attribute(apps, {"m": {100: 1}}, {100: 1, 300: 2})
    body = gpus.inventory_view(snapshot(apps), {"m": ASSIGNED}, attribution, {300: "python3"})
    first = body["gpus"][0]
    assert first["models"] == ["m"] and first["memory_free_bytes"] == 1000 * MIB
    assert [p["pid"] for p in first["processes"]] == [100, 300]
    assert first["foreign_processes"] == [
        {
            "pid": 300,
            "used_memory_bytes": 64 * MIB,
            "model": None,
            "command": "python3",
            "visible": True,
        }
    ]
    assert body["gpus"][1]["models"] == [] and body["error"] is None
