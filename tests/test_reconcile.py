"""The reconcile decision (a table) and the supervisor performing it through a fake OS."""

import logging

import pytest

from fakes import FakeSystem, Stat
from lib.core import paths, protocol, vocabulary
from lib.core import spec as specs
from lib.daemon import reconcile, supervisor

RUNNING, STOPPED = vocabulary.DESIRED_RUNNING, vocabulary.DESIRED_STOPPED
LIMIT = reconcile.RECOVERY_LIMIT


def record(run=2, desired=RUNNING):
    return protocol.Deployment({"name": "m"}, None, run=run, desired=desired)


def state(run=2, status=vocabulary.RUNNING):
    return protocol.MonitorState(run=run, status=status)


@pytest.mark.parametrize(
    "desired, observed, alive, launching, failure, recoveries, kind",
    [
        # a start under way, or given up already: leave it alone
        (RUNNING, state(), False, True, None, 0, reconcile.WAIT),
        (RUNNING, state(), False, False, "it keeps dying", 0, reconcile.WAIT),
        # a live monitor is adopted, whatever its state says and whatever is desired
        (RUNNING, state(), True, False, None, 0, reconcile.ADOPT),
        (STOPPED, None, True, False, None, 0, reconcile.ADOPT),
        (RUNNING, state(status=vocabulary.STOPPING), True, False, None, LIMIT, reconcile.ADOPT),
        # a stop must win: a live monitor running a model meant to be stopped is told again
        (STOPPED, state(), True, False, None, 0, reconcile.STOP),
        (STOPPED, state(status=vocabulary.STARTING), True, False, None, 0, reconcile.STOP),
        (STOPPED, state(status=vocabulary.BACKOFF), True, False, None, 0, reconcile.STOP),
        (STOPPED, state(status=vocabulary.STOPPING), True, False, None, 0, reconcile.ADOPT),
        (STOPPED, state(run=1), True, False, None, 0, reconcile.ADOPT),
        # the run's monitor died while its model was active
        (RUNNING, state(), False, False, None, 0, reconcile.REPLACE),
        (RUNNING, state(status=vocabulary.BACKOFF), False, False, None, LIMIT - 1, "replace"),
        (STOPPED, state(status=vocabulary.STOPPING), False, False, None, 0, reconcile.FINISH),
        (STOPPED, state(), False, False, None, 0, reconcile.FINISH),
        (RUNNING, state(), False, False, None, LIMIT, reconcile.GIVE_UP),
        # no state for this run yet
        (RUNNING, None, False, False, None, 0, reconcile.START),
        (RUNNING, state(run=1, status=vocabulary.STOPPED), False, False, None, 0, "start"),
        (RUNNING, state(run=1), False, False, None, LIMIT, reconcile.START),
        # nothing to do
        (STOPPED, None, False, False, None, 0, reconcile.IDLE),
        (STOPPED, state(run=1), False, False, None, 0, reconcile.IDLE),
        (RUNNING, state(status=vocabulary.EXITED), False, False, None, 0, reconcile.IDLE),
        (RUNNING, state(status=vocabulary.FAILED), False, False, None, 0, reconcile.IDLE),
        (STOPPED, state(status=vocabulary.STOPPED), False, False, None, 0, reconcile.IDLE),
    ],
)
def test_decide(desired, observed, alive, launching, failure, recoveries, kind):
    action = reconcile.decide(
        record(desired=desired), observed, alive, launching, failure, recoveries
    )
    assert action.kind == kind and action.reason


# -- the supervisor performing it ------------------------------------------------


@pytest.fixture
def rig(tmp_path):
    system = FakeSystem()
    home = paths.Home(str(tmp_path))
    # Monitors started afresh: the launcher path the fake replays (the template has its own).
    sup = supervisor.Supervisor(home, environ={"MODELD_MONITOR_ZYGOTE": "0"}, system=system)
    spec = specs.parse_spec({"name": "m", "command": ["model-server"]})
    deployment = protocol.Deployment(spec, None, run=1)
    sup.registry.save(deployment)
    sup.records = {"m": deployment}
    yield sup, system, home.model("m")
    system.close()


def monitor_starts(system):
    return [call[1] for call in system.calls if call[0] == "spawn"]


def publish(model_paths, status=vocabulary.RUNNING, run=1):
    observed = protocol.MonitorState(run=run, status=status, monitor_pid=777, monitor_starttime=1)
    protocol.write_state(model_paths, observed, durable=False)


def test_a_live_monitor_is_adopted_and_said_once(rig, caplog):
    sup, system, model_paths = rig
    publish(model_paths)
    system.locks.add(model_paths.lock)
    with caplog.at_level(logging.INFO, logger="modeld.supervisor"):
        sup._reconcile()
        sup._reconcile()
    assert monitor_starts(system) == []
    adopted = [r.getMessage() for r in caplog.records if "adopted" in r.getMessage()]
    assert adopted == ["adopted the monitor of 'm' (pid 777, run 1)"]


def test_a_dead_monitor_of_an_active_model_is_replaced(rig):
    sup, system, model_paths = rig
    publish(model_paths)
    sup._reconcile()
    (argv,) = monitor_starts(system)
    assert argv[-1] == "--recover" and argv[argv.index("--run") + 1] == "1"
    sup._reconcile()  # its launcher has not answered yet: no second start
    assert len(monitor_starts(system)) == 1


def test_a_deployment_with_no_monitor_yet_is_started(rig):
    sup, system, _ = rig
    sup._reconcile()
    (argv,) = monitor_starts(system)
    assert "--recover" not in argv


def test_a_monitor_that_keeps_dying_is_given_up_on(rig):
    sup, system, model_paths = rig
    publish(model_paths)  # each replacement "comes up" (exit 0) and dies at once
    started_at = []
    for _ in range(40):
        before = len(monitor_starts(system))
        sup._reconcile()
        sup.launcher.poll()
        if len(monitor_starts(system)) > before:
            started_at.append(system.now)
        system.advance(1)
    assert len(monitor_starts(system)) == LIMIT
    gaps = [later - earlier for earlier, later in zip(started_at, started_at[1:])]
    assert gaps == [1, 2, 4, 8]  # replacing a dying monitor backs off
    assert "its monitor died %d times" % LIMIT in sup.launcher.failures["m"]
    assert sup.describe("m")["status"] == vocabulary.FAILED


def test_replacements_outside_the_window_do_not_count(rig):
    sup, system, model_paths = rig
    publish(model_paths)
    for _ in range(LIMIT + 3):
        sup._reconcile()
        sup.launcher.poll()
        system.advance(reconcile.RECOVERY_WINDOW / 4)
    assert len(monitor_starts(system)) == LIMIT + 3 and "m" not in sup.launcher.failures


def test_a_stopped_model_is_left_alone(rig):
    sup, system, model_paths = rig
    publish(model_paths, status=vocabulary.STOPPED)
    sup._reconcile()
    assert monitor_starts(system) == []


def test_stop_writes_control_and_signals_the_monitor_it_checked(rig):
    sup, system, model_paths = rig
    publish(model_paths)
    system.locks.add(model_paths.lock)
    system.leftovers[777] = Stat(777, 777, 777, 1)  # the monitor, as /proc sees it
    system.ignore.add(777)  # it handles SIGUSR1
    control_id = sup._send_control("m", protocol.OP_STOP, 3, None)
    assert protocol.read_control(model_paths).id == control_id
    assert system.signals()[-1][:2] == ("kill", 777)
    # A restart while that stop is pending does not replace it.
    assert sup._send_control("m", protocol.OP_RESTART, None, None) == control_id
    assert protocol.read_control(model_paths).op == protocol.OP_STOP


def test_no_signal_to_a_monitor_whose_start_time_does_not_match(rig):
    sup, system, model_paths = rig
    publish(model_paths)
    system.locks.add(model_paths.lock)
    system.leftovers[777] = Stat(777, 777, 777, 2)  # pid 777 is another process now
    assert sup._send_control("m", protocol.OP_STOP, None, None) is None
    assert system.signals() == []


@pytest.mark.parametrize(
    "recoveries, age, kind",
    [
        (0, None, reconcile.REPLACE),
        (1, 0.5, reconcile.WAIT),  # replaced half a second ago: back off
        (1, 1.0, reconcile.REPLACE),
        (3, 3.9, reconcile.WAIT),
        (3, 4.0, reconcile.REPLACE),
        (LIMIT, 0.0, reconcile.GIVE_UP),
    ],
)
def test_replacing_a_dying_monitor_backs_off(recoveries, age, kind):
    action = reconcile.decide(
        record(), state(), False, False, None, recoveries, since_last_recovery=age
    )
    assert action.kind == kind, action


def test_the_replacement_delay_doubles_with_a_cap():
    delays = [reconcile.replacement_delay(count) for count in range(0, 8)]
    assert delays == [0, 1, 2, 4, 8, 16, 30, 30]
