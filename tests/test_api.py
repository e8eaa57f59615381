"""Every endpoint through the WSGI app (webtest): success paths, every kind of error, one shape."""

import json
import os
import re
import socket

import pytest

from conftest import TOKEN, assert_error, model, wait_until
from lib.api import openapi


def deploy(api, tag, name="m1", script="sleeper.py", args=(), **extra):
    body = {"name": name, "command": model(script, *args, tag=tag), "health": {"start_period": 0}}
    body.update(extra)
    return api.post_json("/models", body, status="*")


def status_when(api, name, predicate, message):
    """Poll the model's status until ``predicate(status)``; return that status."""

    def check():
        body = api.get("/models/%s" % name).json
        return body if predicate(body) else None

    return wait_until(check, message=message)


def running(api, name):
    return status_when(api, name, lambda body: body["status"] == "running", "%s to run" % name)


# -- auth and the basics --------------------------------------------------------


def test_health_needs_no_token(api):
    response = api.get("/health", headers={"Authorization": ""})
    assert response.json == {"status": "ok"}
    assert response.headers["X-Request-Id"]


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/"),
        ("GET", "/openapi.json"),
        ("GET", "/models"),
        ("POST", "/models"),
        ("GET", "/models/x"),
        ("DELETE", "/models/x"),
        ("POST", "/models/x/start"),
        ("POST", "/models/x/restart"),
        ("GET", "/models/x/logs"),
        ("GET", "/models/x/events"),
        ("GET", "/events"),
        ("GET", "/logs"),
        ("GET", "/metrics"),
    ],
)
def test_every_route_but_health_needs_the_token(api, method, path):
    response = api.request(path, method=method, headers={"Authorization": ""}, status="*")
    error = assert_error(response, 401, "unauthorized")
    assert "Bearer" in response.headers["WWW-Authenticate"]
    assert "token" in error["message"]
    wrong = {"Authorization": "Bearer " + TOKEN[:-1] + "x"}
    assert_error(api.request(path, method=method, headers=wrong, status="*"), 401, "unauthorized")


def test_index(api):
    body = api.get("/").json
    assert body["name"] == "modeld" and body["version"] == "test"
    assert body["models"] == 0 and body["uptime_s"] >= 0
    assert body["links"]["openapi"] == "/openapi.json"


def test_request_id_is_echoed_or_made(api):
    assert (
        api.get("/health", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    )
    made = api.get("/health", headers={"X-Request-Id": "bad id!"}).headers["X-Request-Id"]
    assert made != "bad id!" and re.match(r"^[0-9a-f]{16}$", made)


def test_unknown_route_and_wrong_method_use_the_error_shape(api):
    assert_error(api.get("/nope", status="*"), 404, "not_found")
    response = api.put("/models", status="*")
    error = assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"] and "POST" in error["details"]["allowed"]


def test_unexpected_exception_is_a_500_without_internals(api, supervisor, monkeypatch, caplog):
    def broken(name):
        raise RuntimeError("secret internals /etc/shadow")

    monkeypatch.setattr(supervisor, "describe", broken)
    response = api.get("/models/m1", status="*", headers={"X-Request-Id": "req-500"})
    error = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text and "Traceback" not in response.text
    assert error["details"]["request_id"] == "req-500"
    assert "secret internals" in caplog.text and "req-500" in caplog.text


# -- deploy -----------------------------------------------------------------------


def test_deploy_returns_201_with_location_and_status(api, tag):
    response = deploy(api, tag, port="auto", labels={"team": "search"})
    assert response.status_int == 201, response.text
    assert response.headers["Location"] == "/models/m1"
    body = response.json
    assert body["name"] == "m1" and body["status"] in ("starting", "running")
    assert isinstance(body["pid"], int) and body["pid"] > 0
    assert 1 <= body["port"] <= 65535 and body["endpoint"] == "http://127.0.0.1:%d" % body["port"]
    assert body["spec"]["labels"] == {"team": "search"}
    assert body["created_at"].endswith("Z")
    assert set(body["metrics"]) == {"cpu_percent", "rss_bytes", "threads", "uptime_s", "log_bytes"}


def test_status_payload_of_a_running_model(api, tag):
    deploy(api, tag, env={"HF_TOKEN": "hunter2", "MODE": "fast"}, args=["--api-key", "k1"])
    body = running(api, "m1")
    assert body["ready"] is True and body["health"] == "none"
    assert body["started_at"] and body["restarts"] == 0 and body["last_exit"] is None
    assert body["spec"]["env"] == {"HF_TOKEN": "***", "MODE": "fast"}
    assert "k1" not in json.dumps(body) and "hunter2" not in json.dumps(body)
    metrics = status_when(
        api, "m1", lambda body: body["metrics"]["cpu_percent"] is not None, "a metrics sample"
    )["metrics"]
    assert metrics["rss_bytes"] > 1_000_000 and metrics["threads"] >= 1
    assert metrics["uptime_s"] >= 0 and metrics["cpu_percent"] is not None


def test_list_and_filter_by_status(api, tag):
    deploy(api, tag, name="a")
    deploy(api, tag, name="b")
    running(api, "a")
    api.delete("/models/b")
    names = [item["name"] for item in api.get("/models").json["models"]]
    assert names == ["a", "b"]
    assert [item["name"] for item in api.get("/models?status=running").json["models"]] == ["a"]
    assert [item["name"] for item in api.get("/models?status=stopped,exited").json["models"]] == [
        "b"
    ]
    assert_error(api.get("/models?status=sleeping", status="*"), 400, "validation_error", "status")


def test_curl_style_form_content_type_is_accepted(api, tag):
    body = json.dumps({"name": "curl", "command": model("sleeper.py", tag=tag)})
    response = api.post("/models", body, content_type="application/x-www-form-urlencoded")
    assert response.status_int == 201


@pytest.mark.parametrize(
    "raw, code, field",
    [
        ("{not json", "bad_request", None),
        ("", "bad_request", None),
        ("[1, 2]", "validation_error", "body"),
        ('{"name": "x"}', "validation_error", "command"),
        ('{"name": "x", "command": ["a"], "extra": 1}', "validation_error", "extra"),
        ('{"name": "x", "command": "sleep 1", "port": "80"}', "validation_error", "port"),
        ('{"name": "../x", "command": ["a"]}', "validation_error", "name"),
        (
            '{"name": "x", "command": ["sleep"], "restart": {"policy": 1}}',
            "validation_error",
            "restart.policy",
        ),
        ('{"name": "x", "command": ["sleep"], "env": {"A": null}}', "validation_error", "env.A"),
    ],
)
def test_bad_deploy_requests_are_400_naming_the_field(api, raw, code, field):
    response = api.post("/models", raw, content_type="application/json", status="*")
    assert_error(response, 400, code, field)
    assert api.get("/models").json["models"] == []


def test_preflight_refuses_what_cannot_start(api, tag, tmp_path):
    body = {"name": "x", "command": ["no-such-program-here"]}
    assert_error(api.post_json("/models", body, status="*"), 400, "validation_error", "command[0]")
    body = {"name": "x", "command": ["sleep", "1"], "cwd": str(tmp_path / "missing")}
    assert_error(api.post_json("/models", body, status="*"), 400, "validation_error", "cwd")
    assert api.get("/models").json["models"] == []


def test_deploying_a_running_name_is_409(api, tag):
    deploy(api, tag)
    error = assert_error(deploy(api, tag), 409, "already_running")
    assert error["details"]["name"] == "m1"


def test_explicit_port_in_use_is_409_naming_the_holder(api, tag):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        response = deploy(api, tag, port=port)
        error = assert_error(response, 409, "port_in_use")
        assert error["details"]["port"] == port
        assert error["details"]["holder"]["pid"] == os.getpid()


def test_dry_run_starts_nothing(api, tag):
    body = {
        "name": "dry",
        "command": model("sleeper.py", "--port", "{port}", tag=tag),
        "port": "auto",
    }
    result = api.post_json("/models?dry_run=true", body).json
    assert result["dry_run"] is True and isinstance(result["port"], int)
    assert result["command"][-3] == str(result["port"])
    assert result["executable"].endswith("python3") or "python" in result["executable"]
    assert api.get("/models").json["models"] == []


def test_bad_query_parameters_are_400(api):
    assert_error(
        api.post_json("/models?wait=maybe", {}, status="*"), 400, "validation_error", "wait"
    )
    assert_error(api.get("/models?colour=red", status="*"), 400, "validation_error", "colour")
    assert_error(api.delete("/models/x?timeout=-1", status="*"), 400, "validation_error", "timeout")
    assert_error(api.get("/models/UPPER", status="*"), 400, "validation_error", "name")


@pytest.mark.parametrize("value", ["yes", "no", "0", "1", "TRUE", "on"])
@pytest.mark.parametrize(
    "method, path, key",
    [
        ("POST", "/models?dry_run=%s", "dry_run"),
        ("POST", "/models?wait=%s", "wait"),
        ("DELETE", "/models/ghost?purge=%s", "purge"),
        ("POST", "/models/ghost/start?wait=%s", "wait"),
        ("GET", "/models/ghost/logs?follow=%s", "follow"),
    ],
)
def test_booleans_are_exactly_true_or_false(api, tag, method, path, key, value):
    # Issue 10 #26: `dry_run=0` deployed the model; only true|false are booleans.
    body = {"name": "ghost", "command": model("sleeper.py", tag=tag)}
    if key in ("follow", "purge") or path.startswith("/models/ghost/start"):
        deploy(api, tag, "ghost")
        body = None
    response = api.request(
        path % value,
        method=method,
        body=json.dumps(body).encode() if body else b"",
        headers={"Content-Type": "application/json"},
        status="*",
    )
    assert_error(response, 400, "validation_error", key)
    if key == "dry_run":
        assert api.get("/models").json["models"] == []


# -- stop, start, restart, purge --------------------------------------------------


def test_unknown_model_is_404_everywhere(api):
    for method, path in [
        ("GET", "/models/ghost"),
        ("DELETE", "/models/ghost"),
        ("POST", "/models/ghost/start"),
        ("POST", "/models/ghost/restart"),
        ("GET", "/models/ghost/logs"),
        ("GET", "/models/ghost/events"),
    ]:
        error = assert_error(api.request(path, method=method, status="*"), 404, "model_not_found")
        assert error["details"]["name"] == "ghost"


def logged(api, name, text):
    """Wait until the model's log has a line containing ``text``."""

    def check():
        entries = api.get("/models/%s/logs?tail=1000" % name).json["entries"]
        return any(text in entry["msg"] for entry in entries)

    wait_until(check, message="%r in the log of %s" % (text, name))


def test_stop_is_graceful_and_idempotent(api, tag):
    pid = deploy(api, tag).json["pid"]
    logged(api, "m1", "sleeper up")
    body = api.delete("/models/m1").json
    assert body["status"] == "stopped" and body["pid"] is None
    assert body["last_exit"]["reason"] == "stopped" and body["last_exit"]["code"] == 0
    assert (
        not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split()[2] == "Z"
    )
    again = api.delete("/models/m1").json
    assert again["status"] == "stopped"


def test_start_and_restart(api, tag):
    deploy(api, tag)
    first = running(api, "m1")["pid"]
    api.delete("/models/m1")
    started = api.post("/models/m1/start").json
    assert started["status"] in ("starting", "running") and started["pid"] != first
    assert_error(api.post("/models/m1/start", status="*"), 409, "already_running")
    second = running(api, "m1")["pid"]
    restarted = api.post("/models/m1/restart?timeout=5").json
    assert restarted["pid"] not in (None, second)
    assert restarted["status"] in ("starting", "running")


def test_redeploying_a_stopped_name_uses_the_new_spec(api, tag):
    deploy(api, tag)
    api.delete("/models/m1")
    response = deploy(api, tag, labels={"v": "2"})
    assert response.status_int == 201
    assert response.json["spec"]["labels"] == {"v": "2"}


def test_purge_removes_record_and_logs(api, tag, supervisor):
    deploy(api, tag)
    running(api, "m1")
    body = api.delete("/models/m1?purge=true").json
    assert body["purged"] is True and body["status"] == "stopped"
    assert_error(api.get("/models/m1", status="*"), 404, "model_not_found")
    assert not os.path.exists(supervisor.home.model("m1").root)


# -- logs and events ----------------------------------------------------------------


def test_logs_tail(api, tag):
    deploy(api, tag, name="flood", script="flood.py", args=["50"], restart={"policy": "no"})
    wait_until(lambda: api.get("/models/flood").json["status"] == "exited")
    page = api.get("/models/flood/logs?tail=5&stream=stdout").json
    assert [entry["msg"].split()[0] for entry in page["entries"]] == [
        "%08d" % n for n in range(45, 50)
    ]
    for entry in page["entries"]:
        assert set(entry) == {"seq", "ts", "stream", "level", "msg"}
        assert entry["stream"] == "stdout" and entry["level"] == "info"
    assert page["next_cursor"] and page["has_more"] is False


def test_events_carry_the_request_that_caused_them(api, tag):
    deploy(api, tag)
    running(api, "m1")
    api.delete("/models/m1", headers={"X-Request-Id": "stop-req-1"})
    events = api.get("/models/m1/events").json["events"]
    assert [event["to"] for event in events] == ["starting", "running", "stopping", "stopped"]
    assert events[0]["cause"]["method"] == "POST" and events[0]["cause"]["path"] == "/models"
    assert events[-1]["cause"]["request_id"] == "stop-req-1"
    assert events[-1]["cause"]["client"] == "127.0.0.1"
    assert api.get("/events?limit=2").json["events"] == events[-2:]


# -- the OpenAPI document -------------------------------------------------------------


def test_openapi_documents_every_route(api):
    document = api.get("/openapi.json").json
    assert document["openapi"].startswith("3.")
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    bottle_app = api.app.app
    routed = {
        (route.method, re.sub(r"<(\w+)>", r"{\1}", route.rule)) for route in bottle_app.routes
    }
    assert routed == documented
    for path, item in document["paths"].items():
        for method, operation in item.items():
            public = path in ("/health", "/ui", "/ui/{filename}")
            assert ("401" in operation["responses"]) != public, (method, path)
            assert "500" in operation["responses"]


def test_openapi_lists_every_error_code():
    codes = openapi._schemas()["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    assert {"model_not_found", "already_running", "validation_error", "rate_limited"} <= set(codes)


# -- secrets (issue 10 #18, #25) ---------------------------------------------------


def _stdout_lines(api, name):
    entries = api.get("/models/%s/logs?stream=stdout&tail=100" % name).json["entries"]
    return [json.loads(entry["msg"]) for entry in entries]


def test_secrets_in_any_form_are_masked_and_a_read_back_spec_redeploys_them(api, tag, supervisor):
    secrets = ["SECRETSHC1", "SECRETONE2", "SECRETDASH3", "SECRETENV4"]
    argv = ["sh -c 'serve --api-key %s'" % secrets[0], "--api-key " + secrets[1]]
    argv += ["--api-key", "-" + secrets[2]]
    body = {
        "name": "secretive",
        "command": model("argv_echo.py", *argv, tag=tag),
        "env": {"HF_TOKEN": secrets[3]},
    }
    assert api.post_json("/models", body).status_int == 201
    wait_until(lambda: _stdout_lines(api, "secretive"), message="the model's output")
    shown = api.get("/models/secretive").json
    modeld_lines = api.get("/models/secretive/logs?stream=modeld").text
    for secret in secrets:
        assert secret not in json.dumps(shown) and secret not in modeld_lines
    # GET -> POST: a new name cannot take secrets back from anyone: refused, field named.
    response = api.post_json("/models", dict(shown["spec"], name="copy"), status="*")
    assert_error(response, 400, "validation_error", "env.HF_TOKEN")
    # The same name, redeployed from what GET showed, runs with the stored secrets.
    api.delete("/models/secretive")
    assert api.post_json("/models", shown["spec"]).status_int == 201

    def second_run():
        lines = _stdout_lines(api, "secretive")
        return lines[1] if len(lines) > 1 else None

    assert wait_until(second_run, message="the second run's output") == argv
    assert supervisor.records["secretive"].spec["env"] == {"HF_TOKEN": secrets[3]}
