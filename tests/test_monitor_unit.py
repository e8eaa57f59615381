"""The monitor through the OS seam: control handling, recovery and kill escalation, no process.

A ``Monitor`` runs against ``tests.fakes.FakeSystem`` and a real home in
``tmp_path`` (files are cheap; processes are what the fake replaces). Each test
drives the monitor's own handlers as its loop would: ``_read_control`` for a
SIGUSR1, ``_after_events`` for a turn of the loop, ``_perform`` for what they return.
"""

import os
import signal

from fakes import Stat
from lib.core import fsutil, notify, paths, protocol, vocabulary
from lib.core import spec as specs
from lib.monitor import loop


def make_monitor(tmp_path, system, recover=False, previous=None, **spec_fields):
    home = paths.Home(str(tmp_path))
    model_paths = home.model("m")
    body = {"name": "m", "command": ["model-server"], "stop": {"timeout": 10}}
    body.update(spec_fields)
    record = protocol.Deployment(specs.parse_spec(body), None, run=2, deploy_id="d1")
    os.makedirs(model_paths.root)
    fsutil.write_json_atomic(model_paths.deployment, record.encode())
    if previous is not None:
        protocol.write_state(model_paths, previous, durable=False)
    monitor = loop.Monitor(model_paths, "m", 2, recover, system=system)
    monitor.lock = protocol.hold_monitor_lock(system, model_paths)
    system.monitors.append(monitor)
    monitor._perform(monitor.start_up())
    return monitor


def turn(monitor, system, seconds=0.0):
    """One turn of the loop, ``seconds`` later."""
    system.advance(seconds)
    monitor._perform(monitor._after_events(system.now) or [])


def send(monitor, system, op, timeout=None):
    control = protocol.Control(op, timeout, {"reason": "test"})
    protocol.write_control(monitor.paths, control)
    monitor._read_control(system.now)
    return control


def published(monitor):
    return protocol.read_state(monitor.paths)


def test_a_fresh_monitor_takes_the_lock_and_spawns_the_model(tmp_path, system):
    monitor = make_monitor(tmp_path, system)
    assert [call[0] for call in system.calls].count("spawn") == 1
    assert system.calls[-1][0] != "kill"
    assert monitor.life.status == vocabulary.STARTING and monitor.life.pid == 101
    assert system.is_locked(monitor.paths.lock)
    assert published(monitor).pid == 101


def test_stop_signals_the_group_and_ends_stopped(tmp_path, system):
    monitor = make_monitor(tmp_path, system)
    control = send(monitor, system, protocol.OP_STOP)
    assert system.signals() == [("killpg", 101, signal.SIGTERM)]
    assert monitor.life.status == vocabulary.STOPPING
    turn(monitor, system, 0.1)
    state = published(monitor)
    assert state.status == vocabulary.STOPPED and state.control_id == control.id
    assert len(system.spawned) == 1


def test_the_same_control_id_is_acted_on_once(tmp_path, system):
    monitor = make_monitor(tmp_path, system)
    system.ignore.add(101)
    send(monitor, system, protocol.OP_STOP)
    monitor._read_control(system.now)  # a second SIGUSR1 for the same command
    assert system.signals() == [("killpg", 101, signal.SIGTERM)]


def test_restart_stops_then_spawns_again(tmp_path, system):
    monitor = make_monitor(tmp_path, system)
    send(monitor, system, protocol.OP_RESTART)
    turn(monitor, system, 0.1)
    assert len(system.spawned) == 2 and monitor.life.pid == 102
    assert monitor.life.status == vocabulary.STARTING
    assert monitor.life.restarts == 0  # an operator's restart is not a crash restart


def test_a_stop_after_a_restart_wins(tmp_path, system):
    monitor = make_monitor(tmp_path, system)
    system.ignore.add(101)  # still on its way down when the stop comes
    send(monitor, system, protocol.OP_RESTART)
    send(monitor, system, protocol.OP_STOP)
    system.ignore.discard(101)
    system.killpg(101, signal.SIGTERM)
    turn(monitor, system, 0.1)
    assert monitor.life.status == vocabulary.STOPPED
    assert len(system.spawned) == 1  # never restarted


def test_a_model_that_ignores_the_stop_signal_is_killed_after_the_grace_period(tmp_path, system):
    monitor = make_monitor(tmp_path, system, stop={"signal": "SIGINT", "timeout": 10})
    system.ignore.add(101)
    start = system.now
    send(monitor, system, protocol.OP_STOP)
    turn(monitor, system, 5)
    assert system.signals() == [("killpg", 101, signal.SIGINT)]  # within the grace period
    turn(monitor, system, 5)
    assert system.signals()[-1] == ("kill", 101, signal.SIGKILL)
    assert system.now - start >= 10
    turn(monitor, system, 0.1)
    assert monitor.life.status == vocabulary.STOPPED
    assert monitor.life.last_exit["signal"] == "SIGKILL"


def test_a_stop_timeout_in_the_command_overrides_the_spec(tmp_path, system):
    monitor = make_monitor(tmp_path, system)
    system.ignore.add(101)
    send(monitor, system, protocol.OP_STOP, timeout=1)
    turn(monitor, system, 1)
    assert system.signals()[-1] == ("kill", 101, signal.SIGKILL)


def previous_state(**fields):
    values = dict(
        name="m",
        deploy_id="d1",
        run=1,
        boot_id="fake-boot",
        status=vocabulary.RUNNING,
        health=vocabulary.HEALTH_NONE,
        pid=50,
        pid_starttime=500,
        restarts=3,
        retries=1,
        processes=[[50, 500], [51, 510], [52, 520]],
        control_id="c-old",
    )
    values.update(fields)
    return protocol.MonitorState(**values)


def test_recovery_stops_leftovers_matched_by_pid_and_start_time(tmp_path, system):
    system.leftovers[50] = Stat(50, 50, 50, 500)
    system.leftovers[51] = Stat(51, 50, 50, 510)
    system.leftovers[52] = Stat(52, 52, 52, 999)  # pid 52 reused by another process since
    monitor = make_monitor(tmp_path, system, recover=True, previous=previous_state())
    stops = [call for call in system.signals() if call[2] == signal.SIGTERM]
    assert sorted(call[1] for call in stops) == [50, 51]
    assert 52 in system.leftovers  # never touched
    # The dead monitor's model was active: the policy restarts it, counters carried over.
    assert monitor.life.status == vocabulary.STARTING and len(system.spawned) == 1
    assert monitor.life.restarts == 4 and monitor.life.retries == 1
    assert monitor.life.last_exit["reason"] == vocabulary.REASON_MONITOR_DIED
    assert monitor.last_control == "c-old"


def test_recovery_escalates_to_sigkill_for_leftovers_that_ignore_the_stop(tmp_path, system):
    system.leftovers[50] = Stat(50, 50, 50, 500)
    system.ignore.add(50)
    start = system.now
    make_monitor(tmp_path, system, recover=True, previous=previous_state(processes=[]))
    assert system.signals() == [("kill", 50, signal.SIGTERM), ("kill", 50, signal.SIGKILL)]
    assert system.now - start >= 10  # the stop timeout of the spec, slept on the fake clock
    assert 50 not in system.leftovers


def test_state_from_another_boot_stops_nothing(tmp_path, system):
    system.leftovers[50] = Stat(50, 50, 50, 500)
    make_monitor(tmp_path, system, recover=True, previous=previous_state(boot_id="earlier"))
    assert system.signals() == [] and 50 in system.leftovers


def test_a_second_monitor_finds_the_lock_taken(tmp_path, system):
    monitor = make_monitor(tmp_path, system)
    assert protocol.hold_monitor_lock(system, monitor.paths) is None
    assert ("sleep", 0.01) in system.calls  # it retried past a daemon's brief check


def test_any_failure_to_spawn_ends_in_failed_with_a_reason(tmp_path, system):
    """A record stored before validation refused it (a lone surrogate): failed, not a crash."""

    def refuse(argv, **options):
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    system.spawn = refuse
    monitor = make_monitor(tmp_path, system)
    state = published(monitor)
    assert state.status == vocabulary.FAILED
    assert state.last_exit["reason"] == vocabulary.REASON_SPAWN_FAILED
    assert "surrogates not allowed" in state.reason


# -- the change notification ------------------------------------------------------


def datagrams(system):
    return [notify.decode(call[1]) for call in system.calls if call[0] == "sendto"]


def test_each_state_write_bumps_the_generation_and_sends_one_datagram(tmp_path, system):
    monitor = make_monitor(tmp_path, system)
    first = published(monitor).generation
    send(monitor, system, protocol.OP_STOP)
    state = published(monitor)
    assert state.generation > first
    assert datagrams(system)[-1] == ("m", state.monitor_pid, state.generation)
    address = notify.address(str(tmp_path))
    assert {call[2] for call in system.calls if call[0] == "sendto"} == {address}
    generations = [message[2] for message in datagrams(system)]
    assert generations == sorted(set(generations)), "one datagram per write, in order"


def test_a_successor_continues_its_predecessors_generation(tmp_path, system):
    monitor = make_monitor(tmp_path, system, recover=True, previous=previous_state(generation=41))
    assert published(monitor).generation > 41


def test_a_failing_datagram_changes_nothing_for_the_monitor(tmp_path, system):
    system.datagram_error = ConnectionRefusedError(111, "no daemon")
    monitor = make_monitor(tmp_path, system)
    control = send(monitor, system, protocol.OP_STOP)
    turn(monitor, system, 0.1)
    state = published(monitor)
    assert state.control_id == control.id and state.status == vocabulary.STOPPED
    assert len(datagrams(system)) >= 2  # each write still tried once, none raised
