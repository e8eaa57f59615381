"""Supervision with real processes: stopping whole trees, restart policy, monitor death."""

import os
import signal
import time

import pytest

from conftest import deploy, processes_tagged, status, wait_status, wait_until
from lib.core import fsutil, procfs
from lib.monitor import lifecycle


def log_lines(api, name, stream="stdout"):
    return [
        entry["msg"]
        for entry in api.get("/models/%s/logs?tail=1000&stream=%s" % (name, stream)).json["entries"]
    ]


def wait_logged(api, name, prefix):
    def check():
        return [line for line in log_lines(api, name) if line.startswith(prefix)]

    return wait_until(check, message="%r in %s's log" % (prefix, name))[0]


def test_stop_leaves_no_process_of_the_model(api, tag):
    pid = deploy(api, tag, "m", "sleeper.py")["pid"]
    wait_logged(api, "m", "sleeper up")
    assert pid in processes_tagged(tag)
    api.delete("/models/m")
    assert processes_tagged(tag) == []


@pytest.mark.parametrize("setsid", [False, True], ids=["same-group", "own-session"])
def test_grandchildren_are_stopped_too(api, tag, setsid):
    args = ["--setsid"] if setsid else []
    deploy(api, tag, "tree", "grandchild.py", *args)
    grandchild = int(wait_logged(api, "tree", "grandchild ").split()[1])
    stat = procfs.read_stat(grandchild)
    assert stat is not None and (stat.session == grandchild) == setsid
    body = api.delete("/models/tree?timeout=5").json
    assert body["status"] == "stopped"
    assert not procfs.alive(grandchild)
    assert processes_tagged(tag) == []


def test_a_model_ignoring_sigterm_is_killed_after_the_grace_period(api, tag):
    deploy(api, tag, "stubborn", "ignore_term.py", stop={"timeout": 0.5})
    wait_logged(api, "stubborn", "ignoring SIGTERM")
    started = time.monotonic()
    body = api.delete("/models/stubborn").json
    elapsed = time.monotonic() - started
    assert body["status"] == "stopped"
    assert body["last_exit"]["signal"] == "SIGKILL"
    assert elapsed >= 0.5, "killed before the grace period ended"
    assert processes_tagged(tag) == []
    messages = log_lines(api, "stubborn", "modeld")
    assert any("sending SIGKILL" in line for line in messages)


def test_request_timeout_overrides_the_spec(api, tag):
    deploy(api, tag, "stubborn", "ignore_term.py", stop={"timeout": 60})
    wait_logged(api, "stubborn", "ignoring SIGTERM")
    started = time.monotonic()
    body = api.delete("/models/stubborn?timeout=0.2").json
    assert body["last_exit"]["signal"] == "SIGKILL"
    assert time.monotonic() - started < 30


def test_crash_loop_backs_off_then_fails(api, tag):
    restart = {"policy": "on-failure", "max_retries": 3, "backoff": 0.2, "backoff_max": 0.8}
    deploy(api, tag, "crashy", "crasher.py", 3, restart=restart)
    body = wait_status(api, "crashy", "failed")
    assert body["restarts"] == 3
    assert body["last_exit"]["code"] == 3 and body["last_exit"]["reason"] == "exit_code"
    assert "gave up after 3 restarts" in body["reason"]
    assert body["last_exit"]["last_lines"] == ["crasher will exit with 3"]
    events = api.get("/models/crashy/events").json["events"]
    backoffs = [event for event in events if event["to"] == "backoff"]
    starts = [event for event in events if event["to"] == "starting"]
    assert len(backoffs) == 3 and len(starts) == 4
    gaps = [
        _seconds(start["at"]) - _seconds(backoff["at"])
        for backoff, start in zip(backoffs, starts[1:])
    ]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 0.8
    assert gaps[0] < gaps[1] < gaps[2]
    assert all(event["exit"]["code"] == 3 for event in backoffs)
    wait_until(lambda: not processes_tagged(tag), message="the monitor to exit after failing")


def _seconds(text):
    from lib.core import timefmt

    return timefmt.parse_rfc3339(text) / 1e6


def test_exit_zero_with_on_failure_is_exited(api, tag):
    deploy(api, tag, "done", "crasher.py", 0)
    body = wait_status(api, "done", "exited")
    assert body["last_exit"]["code"] == 0 and body["last_exit"]["reason"] == "completed"
    assert body["restarts"] == 0


def test_always_restarts_even_a_clean_exit(api, tag):
    restart = {"policy": "always", "backoff": 0.1, "max_retries": 2}
    deploy(api, tag, "again", "crasher.py", 0, 0.1, restart=restart)
    wait_until(lambda: status(api, "again")["restarts"] >= 1, message="a restart")


@pytest.mark.parametrize("setsid", [False, True], ids=["same-group", "own-session"])
def test_leftovers_of_an_exited_model_are_stopped(api, tag, setsid):
    # The main process exits at once; its grandchild would keep the port: it must go.
    args = ["--exit"] + (["--setsid"] if setsid else [])
    deploy(api, tag, "orphaner", "grandchild.py", *args, restart={"policy": "no"})
    body = wait_status(api, "orphaner", "exited")
    grandchild = int(
        [line for line in log_lines(api, "orphaner") if line.startswith("grandchild")][0].split()[1]
    )
    assert body["last_exit"]["code"] == 1
    assert not procfs.alive(grandchild)
    wait_until(lambda: not processes_tagged(tag), message="the monitor to exit")


def test_spawn_failure_is_failed_with_a_reason(api, tag, tmp_path):
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    body = {"name": "noexec", "command": [str(script)], "cwd": str(tmp_path)}
    response = api.post_json("/models", body, status="*")
    assert response.status_int == 400  # refused before anything is spawned
    assert response.json["error"]["details"]["field"] == "command[0]"


def test_a_killed_monitor_does_not_leave_its_model_running(api, tag, supervisor):
    body = deploy(api, tag, "m", "sleeper.py", restart={"policy": "on-failure"})
    wait_logged(api, "m", "sleeper up")
    old_model, old_monitor = body["pid"], body["monitor"]["pid"]
    os.kill(old_monitor, signal.SIGKILL)
    wait_until(lambda: not procfs.alive(old_model), message="the orphaned model to end")
    body = wait_until(
        lambda: status(api, "m")["pid"] not in (None, old_model) and status(api, "m"),
        message="a replacement model",
    )
    assert body["status"] in ("starting", "running")
    assert body["monitor"]["pid"] != old_monitor and body["monitor"]["alive"]
    assert body["restarts"] == 1 and body["last_exit"]["reason"] == "monitor_died"
    assert len(processes_tagged(tag)) == 2  # one monitor, one model: never two models


def test_a_killed_monitor_with_policy_no_leaves_the_model_exited(api, tag):
    body = deploy(api, tag, "once", "sleeper.py", restart={"policy": "no"})
    wait_logged(api, "once", "sleeper up")
    os.kill(body["monitor"]["pid"], signal.SIGKILL)
    body = wait_status(api, "once", "exited")
    assert body["last_exit"]["reason"] == "monitor_died"
    wait_until(lambda: not processes_tagged(tag), message="every process to end")


def test_monitor_state_is_written_atomically(api, tag, supervisor):
    deploy(api, tag, "m", "sleeper.py")
    wait_status(api, "m", "running")
    paths = supervisor.home.model("m")
    state = fsutil.read_json(paths.state)
    assert state["status"] == "running" and state["pid"] == status(api, "m")["pid"]
    assert os.stat(paths.state).st_mode & 0o777 == 0o600
    assert not [name for name in os.listdir(paths.root) if ".tmp." in name]


def test_restart_delay_is_exponential_with_a_cap():
    assert [lifecycle.restart_delay(n, 0.5, 3) for n in range(1, 6)] == [0.5, 1, 2, 3, 3]
