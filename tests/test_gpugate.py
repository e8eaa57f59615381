"""The monitor's VRAM gate and release check, with time and nvidia-smi as inputs."""

import os

from gpufakes import MIB

from lib.core import nvidia, procfs, protocol, vocabulary
from lib.core import spec as specs
from lib.monitor import gpugate, lifecycle

A, B = "GPU-aaaa", "GPU-bbbb"
ASSIGNED = [{"index": 0, "uuid": A, "name": "Fake"}]


def snap(free_mib, apps=(), error=None):
    gpu = nvidia.Gpu(0, A, "Fake", 1000 * MIB, (1000 - free_mib) * MIB, free_mib * MIB, 0)
    return nvidia.Snapshot((gpu,) if error is None else (), tuple(apps), 0.0, error)


def test_the_gate_opens_at_once_when_memory_is_free():
    gate = gpugate.VramGate(500 * MIB, 10, ASSIGNED)
    gate.begin(100.0)
    assert gate.due(100.0)
    assert gate.tick(100.0, snap(600)).outcome == gpugate.OPEN
    assert not gate.active


def test_the_gate_waits_then_fails_at_its_deadline():
    gate = gpugate.VramGate(500 * MIB, 3, ASSIGNED, poll=1.0)
    gate.begin(100.0)
    first = gate.tick(100.0, snap(100))
    assert first.outcome == gpugate.WAIT and gate.first_wait
    assert first.short == [(ASSIGNED[0], 100 * MIB)]
    assert not gate.due(100.5) and gate.due(101.0)
    assert gate.tick(101.0, snap(100)).outcome == gpugate.WAIT and not gate.first_wait
    assert gate.tick(103.0, snap(100)).outcome == gpugate.FAIL
    assert not gate.active


def test_the_gate_opens_when_memory_comes_back():
    gate = gpugate.VramGate(500 * MIB, 30, ASSIGNED)
    gate.begin(0.0)
    assert gate.tick(0.0, snap(0)).outcome == gpugate.WAIT
    assert gate.tick(1.0, snap(900)).outcome == gpugate.OPEN


def test_unknown_free_memory_or_a_failing_driver_never_opens_the_gate():
    unknown = nvidia.Snapshot((nvidia.Gpu(0, A, "Fake", None, None, None, None),), (), 0.0, None)
    assert gpugate.shortfall(unknown, ASSIGNED, 0) == [(ASSIGNED[0], None)]
    assert gpugate.shortfall(snap(0, error="nvidia-smi did not answer"), ASSIGNED, 0)
    gate = gpugate.VramGate(1, 0, ASSIGNED)
    gate.begin(5.0)
    assert gate.tick(5.0, snap(0, error="boom")).outcome == gpugate.FAIL


def test_the_message_names_the_holder_and_whether_modeld_manages_it():
    holder = nvidia.ComputeApp(os.getpid(), A, 900 * MIB)
    text = gpugate.gate_message([(ASSIGNED[0], 100 * MIB)], snap(100, [holder]), 500 * MIB)
    assert "GPU 0 has 100 MiB free; 500 MiB needed" in text
    assert "pid %d" % os.getpid() in text and "holds 900 MiB" in text
    assert "not managed by modeld" in text


class FakeSmi:
    available = True

    def __init__(self, snapshots):
        self.snapshots = list(snapshots)

    def snapshot(self):
        return self.snapshots.pop(0) if len(self.snapshots) > 1 else self.snapshots[0]


def deployment(min_free_mib=500, wait=2):
    body = {"name": "m", "command": ["x"], "gpus": {"count": 1, "min_free_mib": min_free_mib}}
    spec = specs.parse_spec(body)
    spec["gpus"]["wait"] = wait
    return protocol.Deployment(spec, None, gpus=ASSIGNED)


def test_the_guard_holds_a_start_announces_once_then_fails_with_gpu_busy():
    guard = gpugate.GpuGuard(deployment(), FakeSmi([snap(100)]))
    life = lifecycle.Lifecycle(deployment().spec)
    actions = life.begin(0.0)
    assert isinstance(actions[-1], lifecycle.Spawn) and guard.hold(0.0)
    assert guard.waiting_for == vocabulary.WAITING_FOR_GPU
    first = guard.turn(0.0, life)
    assert not first.spawn and first.event is not None and first.notes[0][0] == "warning"
    assert "waiting for GPU memory" in first.event.reason
    assert guard.turn(1.0, life).event is None
    last = guard.turn(2.0, life)
    assert last.failed and life.status == vocabulary.FAILED
    assert life.last_exit["reason"] == vocabulary.REASON_GPU_BUSY
    assert guard.waiting_for is None


def test_the_guard_spawns_once_memory_is_free():
    guard = gpugate.GpuGuard(deployment(), FakeSmi([snap(100), snap(800)]))
    life = lifecycle.Lifecycle(deployment().spec)
    life.begin(0.0)
    guard.hold(0.0)
    assert not guard.turn(0.0, life).spawn
    assert guard.turn(1.0, life).spawn and guard.waiting_for is None


def test_a_stop_while_waiting_ends_in_stopped_without_a_process():
    guard = gpugate.GpuGuard(deployment(), FakeSmi([snap(100)]))
    life = lifecycle.Lifecycle(deployment().spec)
    life.begin(0.0)
    guard.hold(0.0)
    guard.turn(0.0, life)
    life.request_stop(None, 0.5)
    turn = guard.turn(0.5, life)
    assert life.status == vocabulary.STOPPED and any(
        isinstance(action, lifecycle.Finish) for action in turn.actions
    )


def test_without_min_free_mib_there_is_no_gate():
    body = {"name": "m", "command": ["x"], "gpus": {"count": 1}}
    guard = gpugate.GpuGuard(
        protocol.Deployment(specs.parse_spec(body), None, gpus=ASSIGNED), FakeSmi([snap(0)])
    )
    assert not guard.hold(0.0) and guard.next_deadline() is None


def test_release_is_timed_and_a_reused_pid_is_not_the_model():
    own = os.getpid()
    clock = iter([0.0, 0.0, 0.2, 0.4, 0.4]).__next__
    snapshots = iter(
        [
            snap(0, [nvidia.ComputeApp(own, A, MIB)]),
            snap(0, [nvidia.ComputeApp(own, A, MIB)]),
            snap(1000),
        ]
    )
    # seen with another start time: a pid the model once had, now somebody else's
    seconds, held = gpugate.released_after(
        snapshots.__next__, {own: -1}, clock=clock, sleep=lambda s: None
    )
    assert seconds == 0.0 and held == []


def test_release_waits_for_a_holder_then_names_it_after_the_timeout():
    own = os.getpid()
    seen = {own: procfs.start_time(own)}
    held = snap(0, [nvidia.ComputeApp(own, A, 2 * MIB)])
    ticks = iter([0.0, 0.2, 0.4, 10.5]).__next__
    seconds, holders = gpugate.released_after(lambda: held, seen, 10, ticks, lambda s: None)
    assert seconds is None and "pid %d" % own in holders[0]
    ticks = iter([0.0, 0.2, 0.6]).__next__
    answers = iter([held, snap(1000)]).__next__
    assert gpugate.released_after(answers, seen, 10, ticks, lambda s: None) == (0.6, [])


def test_after_changes_records_the_release_in_the_stop_event():
    guard = gpugate.GpuGuard(deployment(), FakeSmi([snap(1000)]))
    guard.observe([[os.getpid(), procfs.start_time(os.getpid())]])
    stopped = [lifecycle.Event(0, vocabulary.STOPPING, vocabulary.STOPPED, "stopped", None, None)]
    extra, notes = guard.after_changes(stopped)
    assert extra["gpu_released_after_s"] is not None and notes[0][0] == "info"
    running = [lifecycle.Event(0, vocabulary.STARTING, vocabulary.RUNNING, "started", None, None)]
    assert guard.after_changes(running) == (None, [])


def test_after_a_cuda_oom_the_holders_on_its_gpus_are_named_but_not_itself():
    own, other = os.getpid(), os.getppid()
    apps = [nvidia.ComputeApp(own, A, 10 * MIB), nvidia.ComputeApp(other, A, 900 * MIB)]
    guard = gpugate.GpuGuard(deployment(), FakeSmi([snap(0, apps)]))
    guard.observe([[own, procfs.start_time(own)]])
    (holder,) = guard.oom_holders()
    assert holder.startswith("pid %d" % other) and "holds 900 MiB" in holder
