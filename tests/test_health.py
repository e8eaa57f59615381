"""Health probes, readiness, deploy?wait=true and why a model failed, with real processes."""

import json
import socket
import sys

import pytest

from conftest import assert_error, model, wait_until


def status(api, name):
    return api.get("/models/%s" % name).json


def wait_for(api, name, predicate, message, timeout=20):
    def check():
        body = status(api, name)
        return body if predicate(body) else None

    return wait_until(check, timeout=timeout, message=message)


def probe_requests(api, name):
    """The model's access lines for probes (stored tagged, hidden unless asked for)."""
    url = "/models/%s/logs?stream=stdout&grep=GET /health&limit=10000&probes=include" % name
    return len(api.get(url).json["entries"])


def http_model(api, tag, name, control, health, restart=None, wait=""):
    body = {
        "name": name,
        "command": model("http_model.py", "{port}", "--control", control, tag=tag),
        "port": "auto",
        "health": dict({"http": "/health", "interval": 0.2, "timeout": 1}, **health),
        "restart": restart or {"policy": "on-failure", "backoff": 0.1},
        "stop": {"timeout": 2},
    }
    return api.post_json("/models" + wait, body, status="*")


def test_http_probe_starting_until_healthy(api, tag, tmp_path):
    control = tmp_path / "health"
    control.write_text("fail")
    http_model(api, tag, "web", str(control), {"start_period": 30})
    first = wait_for(api, "web", lambda body: probe_requests(api, "web") >= 2, "probes that fail")
    assert (first["status"], first["health"], first["ready"]) == ("starting", "starting", False)
    control.write_text("ok")
    ready = wait_for(api, "web", lambda body: body["ready"], "readiness")
    assert (ready["status"], ready["health"]) == ("running", "healthy")


def test_tcp_probe(api, tag):
    body = {
        "name": "tcp",
        "command": model("sleeper.py", "--port", "{port}", tag=tag),
        "port": "auto",
        "health": {"tcp": True, "interval": 0.2},
    }
    api.post_json("/models", body)
    ready = wait_for(api, "tcp", lambda body: body["ready"], "the port to accept")
    assert ready["health"] == "healthy"


def test_log_probe(api, tag, tmp_path):
    control = tmp_path / "health"
    control.write_text("fail")  # the HTTP side never matters: the log line does
    body = {
        "name": "logged",
        "command": model("http_model.py", "{port}", "--control", str(control), tag=tag),
        "port": "auto",
        "health": {"log": "Uvicorn running on", "interval": 0.2},
    }
    api.post_json("/models", body)
    assert (
        wait_for(api, "logged", lambda body: body["ready"], "the log line")["health"] == "healthy"
    )


def test_unhealthy_for_retries_probes_is_restarted_with_reason(api, tag, tmp_path):
    control = tmp_path / "health"
    control.write_text("ok")
    http_model(api, tag, "flaky", str(control), {"start_period": 0, "retries": 3})
    first = wait_for(api, "flaky", lambda body: body["ready"], "readiness")
    control.write_text("fail")
    restarted = wait_for(api, "flaky", lambda body: body["restarts"] >= 1, "a restart")
    assert restarted["last_exit"]["reason"] == "unhealthy"
    control.write_text("ok")
    again = wait_for(api, "flaky", lambda body: body["ready"], "readiness after the restart")
    assert again["pid"] != first["pid"]
    events = api.get("/models/flaky/events").json["events"]
    stopping = [event for event in events if event["to"] == "stopping"]
    assert stopping and stopping[0]["reason"].startswith("unhealthy")


def test_one_slow_probe_does_not_restart_a_busy_model(api, tag, tmp_path):
    control = tmp_path / "health"
    control.write_text("ok")
    http_model(api, tag, "busy", str(control), {"start_period": 0, "retries": 3, "timeout": 1})
    healthy = wait_for(api, "busy", lambda body: body["ready"], "readiness")
    control.write_text("slow-once")
    wait_until(lambda: control.read_text() == "ok", message="the slow probe")
    seen = probe_requests(api, "busy")
    wait_until(lambda: probe_requests(api, "busy") >= seen + 3, message="three more probes")
    after = status(api, "busy")
    assert (after["restarts"], after["pid"], after["ready"]) == (0, healthy["pid"], True)


def test_deploy_wait_answers_when_ready(api, tag, tmp_path):
    control = tmp_path / "health"
    control.write_text("ok")
    response = http_model(
        api, tag, "w", str(control), {"start_period": 30}, wait="?wait=true&timeout=30"
    )
    assert response.status_int == 201
    assert response.json["ready"] is True and response.json["health"] == "healthy"


@pytest.fixture
def held_port():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield holder.getsockname()[1]


def bind_script(port):
    return "import socket; socket.socket().bind(('127.0.0.1', %d))" % port


FAILURES = [
    ("import_error", ["crasher.py", 1, "--say", "ModuleNotFoundError: No module named 'vllm'"]),
    (
        "cuda_out_of_memory",
        [
            "crasher.py",
            1,
            "--say",
            "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
        ],
    ),
    (
        "model_file_missing",
        [
            "crasher.py",
            1,
            "--say",
            "FileNotFoundError: [Errno 2] No such file or directory: '/models/x.gguf'",
        ],
    ),
    (
        "permission_denied",
        ["crasher.py", 1, "--say", "PermissionError: [Errno 13] Permission denied: '/dev/nvidia0'"],
    ),
    ("exit_code", ["crasher.py", 3]),
]


@pytest.mark.parametrize("reason, argv", FAILURES, ids=[reason for reason, _ in FAILURES])
def test_a_failed_deploy_says_why(api, tag, reason, argv):
    body = {"name": "broken", "command": model(*argv, tag=tag), "restart": {"policy": "no"}}
    check_failure(api, body, reason, expect_code=int(argv[1]))


def check_failure(api, body, reason, expect_code=None, expect_signal=None):
    response = api.post_json("/models?wait=true&timeout=30", body, status="*")
    error = assert_error(response, 422, "deployment_failed")
    details = error["details"]
    assert details["reason"] == reason, details
    assert details["status"] in ("exited", "failed", "backoff")
    if expect_code is not None:
        assert details["exit_code"] == expect_code
    if expect_signal is not None:
        assert details["signal"] == expect_signal
    assert details["last_lines"], "no last lines"
    assert reason in error["message"] or details["status"] in error["message"]
    last_exit = status(api, body["name"])["last_exit"]
    assert last_exit["reason"] == reason and last_exit["last_lines"] == details["last_lines"]
    return details


def test_port_in_use_is_classified(api, tag, held_port):
    body = {
        "name": "clash",
        "command": [sys.executable, "-c", bind_script(held_port), "--tag", tag],
        "restart": {"policy": "no"},
    }
    details = check_failure(api, body, "port_in_use", expect_code=1)
    assert any("Address already in use" in line for line in details["last_lines"])


def test_executable_not_found_and_permission_denied_from_a_wrapper(api, tag, tmp_path):
    body = {
        "name": "wrapper",
        "command": ["sh", "-c", "exec no-such-binary-xyz", tag],
        "restart": {"policy": "no"},
    }
    check_failure(api, body, "executable_not_found", expect_code=127)
    script = tmp_path / "not-executable.sh"
    script.write_text("echo hi\n")
    script.chmod(0o644)
    body = {
        "name": "wrapper2",
        "command": ["sh", "-c", "exec %s" % script, tag],
        "restart": {"policy": "no"},
    }
    check_failure(api, body, "permission_denied", expect_code=126)


def test_health_timeout_is_classified(api, tag, tmp_path):
    control = tmp_path / "health"
    control.write_text("fail")
    response = http_model(
        api,
        tag,
        "never",
        str(control),
        {"start_period": 0.5, "retries": 2},
        restart={"policy": "no"},
        wait="?wait=true&timeout=30",
    )
    error = assert_error(response, 422, "deployment_failed")
    assert error["details"]["reason"] == "health_timeout"
    assert status(api, "never")["last_exit"]["reason"] == "health_timeout"


def test_wait_timeout_is_504_and_the_model_keeps_starting(api, tag, tmp_path):
    control = tmp_path / "health"
    control.write_text("fail")
    response = http_model(
        api, tag, "slow", str(control), {"start_period": 60}, wait="?wait=true&timeout=1"
    )
    error = assert_error(response, 504, "wait_timeout")
    assert error["details"]["status"] == "starting"
    control.write_text("ok")
    assert wait_for(api, "slow", lambda body: body["ready"], "readiness")


def test_the_port_is_free_right_after_a_stop(api, tag):
    body = {
        "name": "holder",
        "command": model("sleeper.py", "--port", "{port}", tag=tag),
        "port": "auto",
        "health": {"tcp": True, "interval": 0.2},
    }
    port = api.post_json("/models?wait=true&timeout=30", body).json["port"]
    with pytest.raises(OSError):
        socket.create_server(("127.0.0.1", port)).close()
    api.delete("/models/holder")
    socket.create_server(("127.0.0.1", port)).close()  # no leftover holds it


def test_status_shows_why_a_model_is_not_serving(api, tag):
    body = {
        "name": "crashy",
        "command": model("crasher.py", 1, "--say", "ImportError: cannot import name 'x'", tag=tag),
        "restart": {"policy": "on-failure", "max_retries": 1, "backoff": 0.1},
    }
    api.post_json("/models", body)
    failed = wait_for(api, "crashy", lambda body: body["status"] == "failed", "failed")
    assert failed["last_exit"]["reason"] == "import_error"
    assert "gave up after 1 restarts" in failed["reason"]
    assert "ImportError: cannot import name 'x'" in json.dumps(failed["last_exit"]["last_lines"])


def test_probe_access_lines_are_tagged_hidden_by_default_and_never_dropped(api, tag):
    from lib.monitor import probes

    body = {
        "name": "probed",
        "command": model("http_model.py", "{port}", tag=tag),
        "port": "auto",
        "health": {"http": "/health", "interval": 0.2, "start_period": 10},
    }
    assert api.post_json("/models?wait=true&timeout=20", body).status_int == 201

    def probe_lines():
        entries = api.get("/models/probed/logs?tail=1000&probes=only").json["entries"]
        return entries if len(entries) >= 3 else None

    tagged = wait_until(probe_lines, timeout=15, message="three probe lines")
    assert all(entry["probe"] and "/health" in entry["msg"] for entry in tagged)
    assert probes.USER_AGENT.startswith("modeld-probe/")
    hidden = api.get("/models/probed/logs?tail=1000").json["entries"]
    assert not any(entry.get("probe") for entry in hidden)
    everything = api.get("/models/probed/logs?tail=1000&probes=include").json["entries"]
    assert len(everything) >= len(hidden) + len(tagged)
    api.delete("/models/probed")
