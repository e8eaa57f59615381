"""The pure state machine: events in, actions out, time passed in."""

import pytest

from lib.core import protocol, spec, vocabulary
from lib.monitor import lifecycle
from lib.monitor.lifecycle import Finish, KillAll, Lifecycle, Signal, Spawn


def make(policy="on-failure", max_retries=3, start_period=0, probe=None, **restart):
    body = {
        "name": "m",
        "command": ["x"],
        "restart": dict({"policy": policy, "max_retries": max_retries, "backoff": 1,
                         "backoff_max": 8, "reset_after": 60}, **restart),
        "stop": {"timeout": 10},
        "health": dict({"start_period": start_period}, **(probe or {})),
    }  # fmt: skip
    if probe and ("http" in probe or "tcp" in probe):
        body["port"] = 9000
    return Lifecycle(spec.parse_spec(body))


def started(life, now=0.0, pid=100):
    assert life.begin(now) == [Spawn()]
    life.spawned(pid, now)
    return life


def test_backoff_doubles_and_is_capped():
    delays = [lifecycle.restart_delay(attempt, 1, 8) for attempt in range(1, 7)]
    assert delays == [1, 2, 4, 8, 8, 8]
    assert lifecycle.restart_delay(0, 1, 8) == 0


def test_start_period_then_running():
    life = started(make(start_period=2))
    assert life.status == vocabulary.STARTING and not life.ready
    assert life.next_deadline() == 2
    assert life.tick(1.9) == [] and life.status == vocabulary.STARTING
    life.tick(2.0)
    assert life.status == vocabulary.RUNNING and life.ready


def test_crash_restarts_with_growing_backoff_then_fails():
    life = started(make(max_retries=3))
    now, delays = 0.0, []
    for attempt in range(3):
        now += 0.5
        life.exited(1, None, "exit_code", now, leftovers=False)
        assert life.status == vocabulary.BACKOFF
        delays.append(life.next_start_at - now)
        assert life.tick(life.next_start_at - 0.01) == []
        now = life.next_start_at
        assert life.tick(now) == [Spawn()]
        life.spawned(200 + attempt, now)
    assert delays == [1, 2, 4]
    assert life.restarts == 3
    actions = life.exited(1, None, "exit_code", now + 0.5, leftovers=False)
    assert actions == [Finish()]
    assert life.status == vocabulary.FAILED
    assert "gave up after 3 restarts" in life.reason


def test_a_stable_run_resets_the_retry_count():
    life = started(make(max_retries=1))
    life.exited(1, None, "exit_code", 1.0, False)
    life.tick(life.next_start_at)
    life.spawned(101, 2.0)
    assert life.retries == 1
    life.exited(1, None, "exit_code", 2.0 + 61, False)  # ran longer than reset_after
    assert life.status == vocabulary.BACKOFF and life.retries == 1


@pytest.mark.parametrize(
    "policy, code, expected",
    [
        ("no", 1, vocabulary.EXITED),
        ("no", 0, vocabulary.EXITED),
        ("on-failure", 0, vocabulary.EXITED),
        ("on-failure", 3, vocabulary.BACKOFF),
        ("always", 0, vocabulary.BACKOFF),
    ],
)
def test_restart_policies(policy, code, expected):
    life = started(make(policy=policy))
    life.exited(code, None, "x", 1.0, False)
    assert life.status == expected


def test_unlimited_retries():
    life = started(make(max_retries=None))
    for attempt in range(50):
        life.exited(1, None, "x", attempt, False)
        assert life.status == vocabulary.BACKOFF
        life.tick(life.next_start_at)
        life.spawned(attempt, life.next_start_at or attempt)


def test_stop_signals_then_kills_after_the_grace_period():
    life = started(make())
    assert life.request_stop(5, 1.0) == [Signal("SIGTERM")]
    assert life.status == vocabulary.STOPPING
    assert life.tick(5.9) == []
    assert life.tick(6.0) == [KillAll()]
    life.exited(None, "SIGKILL", "stopped", 6.1, leftovers=False)
    assert life.status == vocabulary.STOPPED


def test_stopped_only_when_leftovers_are_gone():
    life = started(make())
    life.request_stop(None, 1.0)
    assert life.kill_at == 11.0  # the spec's stop.timeout
    assert life.exited(0, None, "stopped", 2.0, leftovers=True) == []
    assert life.status == vocabulary.STOPPING
    assert life.all_gone(3.0) == [Finish()]
    assert life.status == vocabulary.STOPPED


def test_leftovers_after_a_crash_are_stopped_before_the_restart():
    life = started(make())
    actions = life.exited(1, None, "exit_code", 1.0, leftovers=True)
    assert actions == [Signal("SIGTERM")] and life.status == vocabulary.STOPPING
    life.all_gone(1.5)
    assert life.status == vocabulary.BACKOFF


def test_stop_during_backoff_is_immediate():
    life = started(make())
    life.exited(1, None, "x", 1.0, False)
    assert life.request_stop(None, 1.2) == [Finish()]
    assert life.status == vocabulary.STOPPED


def test_manual_restart_resets_backoff():
    life = started(make())
    life.exited(1, None, "x", 1.0, False)
    assert life.retries == 1
    assert life.request_stop(None, 1.1, restart=True) == [Spawn()]
    assert life.retries == 0 and life.status == vocabulary.STARTING


def test_restart_of_a_running_model_goes_through_stopping():
    life = started(make())
    assert life.request_stop(None, 1.0, restart=True) == [Signal("SIGTERM")]
    actions = life.exited(0, None, "stopped", 1.5, leftovers=False)
    assert actions == [Spawn()] and life.status == vocabulary.STARTING


def test_spawn_failure_fails_at_once():
    life = make()
    life.begin(0.0)
    assert life.spawn_failed("executable_not_found", "cannot start x", 0.1) == [Finish()]
    assert life.status == vocabulary.FAILED
    assert life.last_exit["reason"] == "executable_not_found"


def test_probe_grace_then_healthy():
    life = started(make(start_period=10, probe={"http": "/h"}))
    assert life.health == vocabulary.HEALTH_STARTING
    for now in (1, 2, 3, 4):
        assert life.probe_result(False, now) == []  # in the start period: not counted
    life.probe_result(True, 5)
    assert life.status == vocabulary.RUNNING and life.health == vocabulary.HEALTHY and life.ready


def test_health_timeout_when_never_healthy():
    life = started(make(start_period=2, probe={"http": "/h", "retries": 3}))
    assert life.probe_result(False, 3) == []
    assert life.probe_result(False, 4) == []
    assert life.probe_result(False, 5) == [Signal("SIGTERM")]
    assert life.last_exit["reason"] == "health_timeout"
    life.exited(None, "SIGTERM", "signal", 5.5, False)
    assert life.status == vocabulary.BACKOFF
    assert life.last_exit["reason"] == "health_timeout"


def test_one_slow_probe_does_not_restart_a_busy_model():
    life = started(make(probe={"http": "/h", "retries": 3}))
    life.probe_result(True, 1)
    assert life.probe_result(False, 2) == []
    life.probe_result(True, 3)
    assert life.probe_result(False, 4) == [] and life.probe_result(False, 5) == []
    assert life.status == vocabulary.RUNNING and life.health == vocabulary.HEALTHY
    assert life.probe_result(False, 6) == [Signal("SIGTERM")]
    assert life.last_exit["reason"] == "unhealthy"


def test_recovery_per_policy():
    life = make(policy="no")
    assert life.recovered(0.0, previous_active=True) == [Finish()]
    assert life.status == vocabulary.EXITED and life.last_exit["reason"] == "monitor_died"
    life = make(policy="always")
    assert life.recovered(0.0, previous_active=True) == [Spawn()]
    assert life.restarts == 1
    life = make()
    assert life.recovered(0.0, previous_active=False) == [Finish()]
    assert life.status == vocabulary.STOPPED


def test_every_transition_is_recorded_with_its_exit():
    life = started(make())
    life.exited(2, None, "exit_code", 1.0, False)
    events = life.take_events()
    assert [(event.old, event.new) for event in events] == [
        (None, vocabulary.STARTING),
        (vocabulary.STARTING, vocabulary.BACKOFF),
    ]
    assert events[1].exit["code"] == 2
    assert life.take_events() == []


def test_illegal_transitions_are_refused():
    with pytest.raises(vocabulary.IllegalTransition):
        vocabulary.check_transition(vocabulary.STOPPED, vocabulary.RUNNING)
    with pytest.raises(vocabulary.IllegalTransition):
        vocabulary.check_transition(vocabulary.BACKOFF, vocabulary.RUNNING)


# -- the resume decision: how a new monitor takes over ------------------------------

BEGIN, RECOVER, STAY = lifecycle.RESUME_BEGIN, lifecycle.RESUME_RECOVER, lifecycle.RESUME_STOPPED
EXIT = {"code": 1, "signal": None, "at": 5_000_000, "reason": "exit_code", "last_lines": []}


def previous(deploy_id="d1", status=vocabulary.RUNNING):
    return protocol.MonitorState(
        deploy_id=deploy_id, status=status, restarts=4, retries=2, last_exit=EXIT
    )


@pytest.mark.parametrize(
    "before, recover, wanted, kind, restarts, retries, carried_exit",
    [
        # a fresh run (deploy, start): counters of the same deployment but a new backoff
        (None, False, True, BEGIN, 0, 0, False),
        (previous(), False, True, BEGIN, 4, 0, True),
        (previous(deploy_id="d0"), False, True, BEGIN, 0, 0, False),  # a redeploy
        (previous(), False, False, STAY, 4, 0, True),  # stopped before it started
        # replacing a dead monitor: everything carries over, the policy decides
        (previous(), True, True, RECOVER, 4, 2, True),
        (previous(status=vocabulary.BACKOFF), True, True, RECOVER, 4, 2, True),
        (previous(status=vocabulary.STARTING), True, True, RECOVER, 4, 2, True),
        (None, True, True, RECOVER, 0, 0, False),  # it died before its first state
        (previous(deploy_id="d0"), True, True, RECOVER, 0, 0, False),
        (previous(), True, False, STAY, 4, 2, True),  # the operator stopped it meanwhile
        (previous(status=vocabulary.STOPPED), True, True, STAY, 4, 2, True),
        (previous(status=vocabulary.FAILED), True, True, STAY, 4, 2, True),
    ],
)
def test_decide_resume(before, recover, wanted, kind, restarts, retries, carried_exit):
    decision = lifecycle.decide_resume(before, "d1", recover, wanted)
    assert (decision.kind, decision.restarts, decision.retries) == (kind, restarts, retries)
    if carried_exit:
        assert decision.last_exit == dict(EXIT, at=5.0)  # microseconds in the file, seconds here
    else:
        assert decision.last_exit is None


@pytest.mark.parametrize(
    "kind, status, first_actions, restarts",
    [
        (BEGIN, vocabulary.STARTING, [Spawn()], 4),
        (RECOVER, vocabulary.STARTING, [Spawn()], 5),
        (STAY, vocabulary.STOPPED, [Finish()], 4),
    ],
)
def test_resume_performs_the_decision(kind, status, first_actions, restarts):
    decision = lifecycle.Resume(kind, 4, 1, None)
    body = {"name": "m", "command": ["x"]}
    life = Lifecycle.resuming(spec.parse_spec(body), decision)
    assert life.resume(decision, 0.0) == first_actions
    assert life.status == status and life.restarts == restarts


def test_a_recovered_model_with_policy_no_is_exited():
    decision = lifecycle.Resume(RECOVER, 0, 0, None)
    body = {"name": "m", "command": ["x"], "restart": {"policy": "no"}}
    life = Lifecycle.resuming(spec.parse_spec(body), decision)
    assert life.resume(decision, 0.0) == [Finish()]
    assert life.status == vocabulary.EXITED
    assert life.last_exit["reason"] == vocabulary.REASON_MONITOR_DIED


# -- issue 10: health without a process, stable runs, causes of automatic transitions -------


@pytest.mark.parametrize("policy", ["on-failure", "no"])
def test_health_is_none_while_no_process_runs(policy):
    life = started(make(policy=policy, probe={"http": "/health", "retries": 1}))
    life.probe_result(True, 1.0)
    assert life.health == vocabulary.HEALTHY
    life.exited(1, None, "exit_code", 2.0, False)
    assert life.status in (vocabulary.BACKOFF, vocabulary.EXITED)
    assert life.health == vocabulary.HEALTH_NONE


def test_health_is_none_after_a_stop():
    life = started(make(probe={"http": "/health", "retries": 1}))
    life.probe_result(True, 1.0)
    life.request_stop(None, 2.0)
    life.exited(None, "SIGTERM", "signal", 3.0, False)
    assert life.status == vocabulary.STOPPED and life.health == vocabulary.HEALTH_NONE


def test_a_run_that_never_became_ready_is_not_stable():
    """start_period >= reset_after and a probe that never passes: the retries still add up."""
    life = started(make(max_retries=2, start_period=120, probe={"http": "/h", "retries": 1}))
    now = 0.0
    for _ in range(2):
        now += 121
        life.probe_result(False, now)  # health timeout after the start period
        life.exited(None, "SIGTERM", "signal", now, False)
        assert life.status == vocabulary.BACKOFF
        now = life.next_start_at
        life.tick(now)
        life.spawned(300, now)
    now += 121
    life.probe_result(False, now)
    life.exited(None, "SIGTERM", "signal", now, False)
    assert life.status == vocabulary.FAILED, life.reason


def test_a_run_without_a_probe_is_stable_after_reset_after():
    life = started(make(max_retries=1))
    life.exited(1, None, "exit_code", 1.0, False)
    life.tick(life.next_start_at)
    life.spawned(101, 2.0)
    life.tick(2.0 + 61)
    life.exited(1, None, "exit_code", 2.0 + 62, False)
    assert life.status == vocabulary.BACKOFF and life.retries == 1


def test_automatic_transitions_do_not_carry_the_request_cause():
    life = make(max_retries=1)
    life.begin(0.0, cause={"request_id": "r1", "kind": "request"})
    life.spawned(100, 0.0)
    life.take_events()
    life.exited(1, None, "exit_code", 1.0, False)
    life.tick(life.next_start_at)
    causes = [event.cause for event in life.take_events()]
    assert causes and all(cause == {"kind": "policy"} for cause in causes), causes


def test_a_manual_start_of_a_stopped_model_is_recorded_as_started():
    before = previous(status=vocabulary.STOPPED)
    decision = lifecycle.decide_resume(before, "d1", False, True)
    life = Lifecycle.resuming(spec.parse_spec({"name": "m", "command": ["x"]}), decision)
    assert life.resume(decision, 0.0, cause={"request_id": "r2"}) == [Spawn()]
    (event,) = life.take_events()
    assert (event.old, event.new, event.reason) == ("stopped", "starting", "started")
    assert event.cause == {"request_id": "r2"}
