"""Crash reasons on real processes: each captured crash of the corpus is replayed under the
real monitor (same lines, same streams, same exit code or signal) and must get the reason a
person gave it, with its first error block in ``last_exit``."""

import json
import os

import pytest

from conftest import model, wait_until
from lib.core import vocabulary
from lib.logs import records, store
from lib.monitor import forensics

CRASH = os.path.join(os.path.dirname(__file__), "data", "server_output", "crash")
CASES = sorted(name[:-5] for name in os.listdir(CRASH) if name.endswith(".json"))
NEVER_EXITS = {"bentoml_missing_file_crashloop"}  # BentoML respawns its failing worker forever


def meta_of(case):
    with open(os.path.join(CRASH, case + ".json"), encoding="utf-8") as handle:
        return json.load(handle)


def entries_of(case):
    """The case's lines as the monitor stores them (levels from the tracker)."""
    trackers, entries = {}, []
    with open(os.path.join(CRASH, case + ".jsonl"), encoding="utf-8") as handle:
        for seq, raw in enumerate(handle, 1):
            record = json.loads(raw)
            line = record["line"].encode()
            tracker = trackers.setdefault(record["stream"], records.LevelTracker())
            code = tracker.codes_of([line[:-1] if line.endswith(b"\r") else line])[0].decode()
            stream = store.STREAM_CODES[record["stream"]]
            entries.append(store.Entry(seq, seq, stream, code, False, line))
    return entries


@pytest.mark.parametrize("case", CASES)
def test_the_classifier_gives_each_case_its_reason(case):
    meta = meta_of(case)
    entries = entries_of(case)
    if case in NEVER_EXITS:
        cause, first_error = forensics.probe_failure_cause(entries)
        assert cause == meta["expected_reason"]
    else:
        ready = meta["signal"] == "SIGKILL"
        found = forensics.classify_exit(meta["exit_code"], meta["signal"], entries, False, ready)
        assert found.reason == meta["expected_reason"]
        first_error = found.first_error
    assert any(meta["first_error_contains"] in line for line in first_error), first_error


def test_sigkill_after_ready_is_killed_whatever_was_logged_before():
    entries = entries_of("uvicorn_killed_after_fnf")
    found = forensics.classify_exit(None, "SIGKILL", entries, was_ready=True, oom=True)
    assert (found.reason, found.cause, found.oom_killer) == ("killed", "model_file_missing", True)


def test_after_ready_an_old_request_error_does_not_explain_an_exit():
    entries = entries_of("uvicorn_killed_after_fnf")
    later = [
        store.Entry(len(entries) + n, 0, "e", "i", False, b'INFO:     "POST /predict" 200 OK')
        for n in range(1, 101)
    ]
    found = forensics.classify_exit(1, None, entries + later, was_ready=True)
    assert found.reason == vocabulary.REASON_EXIT_CODE
    before_ready = forensics.classify_exit(1, None, entries + later, was_ready=False)
    assert before_ready.reason == vocabulary.REASON_MODEL_FILE_MISSING


def test_oom_evidence_from_the_kernel_log_and_the_cgroup():
    kmsg = b"6,1,2,-;Out of memory: Killed process 4242 (python) total-vm:1kB\n"
    assert forensics.oom_kills_in_kernel_log(kmsg, [4242])
    assert not forensics.oom_kills_in_kernel_log(kmsg, [42])
    assert forensics.oom_kills_in_kernel_log(b"oom-kill:constraint=X,task=p,pid=7,uid=0", [7])
    assert forensics.parse_memory_events("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n") == 2
    assert forensics.parse_memory_events(None) is None
    assert forensics.read_kernel_log("/nonexistent/kmsg") is None


def deploy_replay(api, tag, case, **extra):
    meta = meta_of(case)
    args = ["--hold", "1.5"] if meta["signal"] == "SIGKILL" else []
    if case in NEVER_EXITS:
        args = ["--forever"]
    body = {
        "name": case.replace("_", "-")[:60],
        "command": model("replay.py", case, *args, tag=tag),
        "restart": {"policy": "no"},
        "health": {"start_period": 0.5},
    }
    body.update(extra)
    response = api.post_json("/models", body)
    assert response.status_int == 201
    return body["name"]


def last_exit_of(api, name, timeout=30):
    def check():
        body = api.get("/models/%s" % name).json
        return body if body["status"] in (vocabulary.EXITED, vocabulary.FAILED) else None

    return wait_until(check, timeout=timeout, message="%s to end" % name)["last_exit"]


@pytest.mark.parametrize("case", [c for c in CASES if c not in NEVER_EXITS])
def test_a_replayed_crash_gets_its_reason_under_the_real_monitor(api, tag, case):
    meta = meta_of(case)
    name = deploy_replay(api, tag, case)
    last_exit = last_exit_of(api, name)
    assert last_exit["reason"] == meta["expected_reason"], last_exit
    assert any(meta["first_error_contains"] in line for line in last_exit["first_error"])
    assert last_exit["last_lines"]
    if meta["signal"]:
        assert last_exit["signal"] == meta["signal"]
    else:
        assert last_exit["code"] == meta["exit_code"]


def test_a_server_that_never_exits_times_out_with_the_cause_from_its_output(api, tag):
    case = "bentoml_missing_file_crashloop"
    meta = meta_of(case)
    health = {"tcp": True, "start_period": 1.5, "interval": 0.3, "retries": 1}
    name = deploy_replay(api, tag, case, health=health, port="auto", stop={"timeout": 2})
    last_exit = last_exit_of(api, name)
    assert last_exit["reason"] == vocabulary.REASON_HEALTH_TIMEOUT
    assert last_exit["cause"] == meta["expected_reason"]
    assert any(meta["first_error_contains"] in line for line in last_exit["first_error"])


def test_wait_timeout_shows_status_reason_so_far_and_last_lines(api, tag):
    case = "bentoml_missing_file_crashloop"
    health = {"tcp": True, "start_period": 60, "interval": 0.3}
    body = {
        "name": "crashloop-wait",
        "command": model("replay.py", case, "--forever", tag=tag),
        "port": "auto",
        "health": health,
    }
    response = api.post_json("/models?wait=true&timeout=2", body, expect_errors=True)
    assert response.status_int == 504
    details = response.json["error"]["details"]
    assert details["status"] == vocabulary.STARTING
    assert details["reason"] == "model_file_missing"
    assert details["last_lines"] and details["first_error"]
    api.delete("/models/crashloop-wait")
