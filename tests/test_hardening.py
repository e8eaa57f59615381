"""API hardening: rate limits, size limits, socket and TLS, access log, redaction, bad input."""

import json
import os
import socket
import stat
import subprocess
import urllib.parse

import pytest

from conftest import MODELD, TOKEN, RunningDaemon, assert_error, model, wait_until
from lib import errors
from lib.api import openapi, ratelimit

# -- rate limiting -------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_burst_of_1000_in_two_seconds_is_throttled():
    clock = Clock()
    limiter = ratelimit.RateLimiter(*ratelimit.parse_setting(None), clock=clock)
    allowed = refused = 0
    for _ in range(1000):
        clock.now += 0.002
        try:
            limiter.check({"REMOTE_ADDR": "10.0.0.1"})
            allowed += 1
        except errors.RateLimitedError as error:
            refused += 1
            assert 0 < error.details["retry_after"] <= 1
            assert int(error.headers["Retry-After"]) >= 1
    assert allowed == pytest.approx(300, abs=5)  # the burst of 200 plus 50 a second for 2 s
    assert refused == 1000 - allowed


def test_a_script_polling_every_second_is_never_throttled():
    clock = Clock()
    limiter = ratelimit.RateLimiter(*ratelimit.parse_setting(None), clock=clock)
    for _ in range(3600):
        clock.now += 1.0
        for _ in range(5):  # ps, status and three log queries each second
            limiter.check({"REMOTE_ADDR": "10.0.0.1"})


def test_clients_have_their_own_buckets():
    clock = Clock()
    limiter = ratelimit.RateLimiter(1, 2, clock=clock)
    limiter.check({"REMOTE_ADDR": "a"})
    limiter.check({"REMOTE_ADDR": "a"})
    with pytest.raises(errors.RateLimitedError):
        limiter.check({"REMOTE_ADDR": "a"})
    limiter.check({"REMOTE_ADDR": "b"})


@pytest.mark.parametrize(
    "text, parsed",
    [(None, (50.0, 200.0)), ("10/30", (10.0, 30.0)), ("5", (5.0, 10.0)), ("off", None)],
)
def test_rate_limit_settings(text, parsed):
    assert ratelimit.parse_setting(text) == parsed


@pytest.mark.parametrize("text", ["fast", "0.0/x", "-1", "5/0"])
def test_bad_rate_limit_settings(text):
    with pytest.raises(ratelimit.ConfigError):
        ratelimit.parse_setting(text)


@pytest.fixture
def limited_api(supervisor):
    import webtest

    from lib.api import app as api_module

    frozen = ratelimit.RateLimiter(1, 3, clock=lambda: 1000.0)  # no refill between requests
    settings = api_module.Settings(token=TOKEN, version="t", rate_limiter=frozen)
    return webtest.TestApp(
        api_module.make_app(supervisor, settings),
        extra_environ={"HTTP_AUTHORIZATION": "Bearer " + TOKEN, "REMOTE_ADDR": "127.0.0.1"},
    )


def test_429_with_retry_after_on_every_path(limited_api):
    for path in ("/health", "/models", "/no-such-route"):
        limited_api.get(path, status="*")
    response = limited_api.get("/no-such-route", status="*")
    error = assert_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1 and error["details"]["retry_after"] > 0
    guesses = [
        limited_api.get("/models", headers={"Authorization": "Bearer wrong"}, status="*")
        for _ in range(4)
    ]  # guessing the token is throttled too, in the bucket of requests without a valid token
    assert [guess.status_int for guess in guesses] == [401, 401, 401, 429]


def test_a_real_daemon_throttles_by_default(home):
    daemon = RunningDaemon(home, rate_limit=None)
    try:
        daemon.start()
        host, port = daemon.url.split("//")[1].split(":")
        statuses = []
        with socket.create_connection((host, int(port))) as connection:
            request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            for _ in range(400):
                connection.sendall(request)
                head = b""
                while b"\r\n\r\n" not in head:
                    head += connection.recv(4096)
                statuses.append(int(head.split()[1]))
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = head.split(b"\r\n\r\n", 1)[1]
                while len(body) < length:
                    body += connection.recv(4096)
        assert statuses[:150] == [200] * 150  # a person or a polling script never sees a 429
        assert statuses.count(429) >= 50  # but 400 requests in well under two seconds do
    finally:
        daemon.stop()


# -- size limits -------------------------------------------------------------------


def test_body_over_1_mib_is_413(api):
    body = json.dumps({"name": "big", "command": ["x"], "labels": {"pad": "x" * (1024 * 1024)}})
    error = assert_error(
        api.post("/models", body, content_type="application/json", status="*"),
        413,
        "payload_too_large",
    )
    assert error["details"]["limit"] == 1024 * 1024


def test_a_body_that_is_json_is_accepted_whatever_its_type(api, tag):
    body = json.dumps({"name": "typed", "command": model("sleeper.py", tag=tag)})
    for content_type in ("text/plain", "application/octet-stream", ""):
        api.delete("/models/typed", status="*")
        response = api.post("/models", body, content_type=content_type, status="*")
        assert response.status_int in (201, 409), response.text
    assert_error(
        api.post(
            "/models",
            "name=x&command=y",
            content_type="application/x-www-form-urlencoded",
            status="*",
        ),
        400,
        "bad_request",
    )


def test_long_url_and_large_headers_are_refused_as_json(api):
    error = assert_error(api.get("/models?" + "a" * 9000, status="*"), 414, "uri_too_long")
    assert error["details"]["limit"] == 8192
    assert_error(
        api.get("/models", headers={"X-Big": "b" * 17000}, status="*"), 431, "headers_too_large"
    )


# -- listen modes --------------------------------------------------------------------


def test_unix_socket_mode_no_token_and_no_stealing(tmp_path, tag):
    import grp

    from lib.cli.client import Client

    path = str(tmp_path / "modeld.sock")
    group = grp.getgrgid(os.getgid()).gr_name
    first = RunningDaemon(str(tmp_path / "home1"), ["--socket", path, "--socket-group", group])
    second = RunningDaemon(str(tmp_path / "home2"), ["--socket", path])
    try:
        result = first.start(check=False)
        assert result.returncode == 0, result.stderr
        assert "unix:" + path in result.stdout
        mode = os.stat(path)
        assert stat.S_ISSOCK(mode.st_mode) and stat.S_IMODE(mode.st_mode) == 0o660
        assert mode.st_gid == os.getgid()
        client = Client(path, token=None, environ={})
        assert client.info()["name"] == "modeld"  # the socket's permissions stand in for the token
        deployed = client.deploy({"name": "viasock", "command": model("sleeper.py", tag=tag)})
        assert deployed["status"] in ("starting", "running")
        refused = second.start(check=False)
        assert (
            refused.returncode == 1
            and "another process is listening on %s" % path in refused.stderr
        )
        assert client.health() == {"status": "ok"}  # still ours
    finally:
        first.stop(models=True)
    assert not os.path.exists(path)


def test_unix_socket_default_mode_is_0600(tmp_path):
    path = str(tmp_path / "s.sock")
    daemon = RunningDaemon(str(tmp_path / "home"), ["--socket", path])
    try:
        assert daemon.start(check=False).returncode == 0
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    finally:
        daemon.stop()


@pytest.fixture
def certificate(tmp_path):
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            key,
            "-out",
            cert,
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls(home, certificate, tag):
    from lib.cli import modelctl
    from lib.cli.client import Client

    cert, key = certificate
    daemon = RunningDaemon(home, ["--tls-cert", cert, "--tls-key", key])
    try:
        daemon.start()
        assert daemon.url.startswith("https://127.0.0.1:")
        client = Client(daemon.url, daemon.token, cafile=cert)
        assert client.info()["name"] == "modeld"
        with pytest.raises(errors.DaemonUnreachableError) as raised:
            Client(daemon.url, daemon.token, environ={}).info()  # a CA it does not know
        assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
        code = modelctl.main(
            ["--host", daemon.url, "--token", daemon.token, "--cacert", cert, "ps"]
        )
        assert code == 0
        port = int(daemon.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
            plain.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                answer = plain.recv(1000)
            except ConnectionResetError:
                answer = b""
        assert b'"status":"ok"' not in answer  # no cleartext answers
    finally:
        daemon.stop()


# -- access log and redaction ------------------------------------------------------------


def test_access_log_has_a_line_per_request_and_never_the_token(daemon, home, tag):
    daemon.start()
    client = daemon.client()
    client.list()
    with pytest.raises(errors.ModelNotFoundError):
        client.get("ghost")

    def access_lines():
        # A line is written when the server closes the response, just after the client has it.
        with open(os.path.join(home, "daemon.log")) as handle:
            text = handle.read()
        lines = [line for line in text.splitlines() if "modeld.access" in line]
        return (text, lines) if any(" GET /models/ghost 404 " in line for line in lines) else None

    text, lines = wait_until(access_lines, message="the access line")
    assert any(" GET /models 200 " in line for line in lines)
    ghost = [line for line in lines if " GET /models/ghost 404 " in line]
    assert len(ghost) == 1
    fields = ghost[0].split(": ", 1)[1].split()
    client_addr, method, path, status, duration, request_id, token_name = fields
    assert (client_addr, method, status) == ("127.0.0.1", "GET", "404")
    assert token_name == "token=admin"  # the token's name, never the token
    assert duration.endswith("ms") and len(request_id) == 16
    assert daemon.token not in text


def test_secrets_are_masked_everywhere_the_daemon_speaks(daemon, home, tag):
    daemon.start()
    client = daemon.client()
    secrets = ["hf_SECRETVALUE1", "sk-SECRETVALUE2", "SECRETVALUE3", "SECRETVALUE4"]
    spec = {
        "name": "secretive",
        "command": model(
            "argv_echo.py", "--api-key", secrets[1], "--hf-token=" + secrets[2], tag=tag
        ),
        "env": {"HF_TOKEN": secrets[0], "DB_PASSWORD": secrets[3], "MODE": "visible"},
    }
    shown = [client.deploy(spec), client.get("secretive"), client.list()]
    shown.append(client.deploy(dict(spec, name="dry"), dry_run=True))
    wait_until(
        lambda: client.logs("secretive", stream="stdout")["entries"], message="the model's output"
    )
    shown.append(client.events("secretive"))
    daemon_side = json.dumps(shown) + json.dumps(client.logs("secretive", stream="modeld"))
    with open(os.path.join(home, "daemon.log")) as handle:
        daemon_side += handle.read()
    for secret in secrets:
        assert secret not in daemon_side
    assert "visible" in daemon_side and "***" in daemon_side
    received = json.loads(client.logs("secretive", stream="stdout")["entries"][0]["msg"])
    assert received == [
        "--api-key",
        secrets[1],
        "--hf-token=" + secrets[2],
    ]  # the model still gets them


# -- bad input ---------------------------------------------------------------------------


def documented(method, path, status):
    """Is ``status`` listed for this route in the OpenAPI document?"""
    template = path.split("?")[0]
    parts = template.split("/")
    for candidate, item in openapi.paths().items():
        pattern = candidate.split("/")
        if len(pattern) == len(parts) and all(
            p == q or p.startswith("{") for p, q in zip(pattern, parts)
        ):
            return str(status) in item.get(method.lower(), {}).get("responses", {})
    return False


BAD_INPUTS = [
    ("POST", "/models", "{", "bad_request", None),
    ("POST", "/models", '{"name": "x", "command": ["a"]', "bad_request", None),
    ("POST", "/models", "null", "validation_error", "body"),
    ("POST", "/models", '"just a string"', "validation_error", "body"),
    ("POST", "/models", '{"name": 1, "command": ["a"]}', "validation_error", "name"),
    ("POST", "/models", '{"name": "x", "command": [["nested"]]}', "validation_error", "command[0]"),
    (
        "POST",
        "/models",
        '{"name": "x", "command": ["a"], "port": 1e400}',
        "validation_error",
        "port",
    ),
    (
        "POST",
        "/models",
        '{"name": "x", "command": ["a"], "env": {"A": true}}',
        "validation_error",
        "env.A",
    ),
    (
        "POST",
        "/models",
        json.dumps({"name": "x" * 10000, "command": ["a"]}),
        "validation_error",
        "name",
    ),
    (
        "POST",
        "/models",
        json.dumps({"name": "modèle", "command": ["a"]}),
        "validation_error",
        "name",
    ),
    (
        "POST",
        "/models",
        json.dumps({"name": "日本語", "command": ["a"]}),
        "validation_error",
        "name",
    ),
    (
        "POST",
        "/models",
        json.dumps({"name": "x\u0000y", "command": ["a"]}),
        "validation_error",
        "name",
    ),
    (
        "POST",
        "/models",
        json.dumps({"name": "x", "command": ["sl\u0000eep"]}),
        "validation_error",
        "command[0]",
    ),
    (
        "POST",
        "/models",
        json.dumps({"name": "x", "command": ["a" * 40000]}),
        "validation_error",
        "command[0]",
    ),
    (
        "POST",
        "/models",
        json.dumps({"name": "x", "command": ["a"], "cwd": "/tmp/\u0000"}),
        "validation_error",
        "cwd",
    ),
    ("POST", "/models", json.dumps({"name": "..", "command": ["a"]}), "validation_error", "name"),
    (
        "POST",
        "/models",
        json.dumps({"name": "x", "command": ["a"], "stop": {"timeout": -1}}),
        "validation_error",
        "stop.timeout",
    ),
    (
        "POST",
        "/models",
        json.dumps({"name": "x", "command": ["a"], "stop": {"timeout": 1e308}}),
        "validation_error",
        "stop.timeout",
    ),
    ("POST", "/models", b"\xff\xfe{}".decode("latin-1"), "bad_request", None),
    ("POST", "/models?timeout=-5", "{}", "validation_error", "timeout"),
    ("POST", "/models?timeout=1e12", "{}", "validation_error", "timeout"),
    ("POST", "/models?timeout=nan", "{}", "validation_error", "timeout"),
    ("DELETE", "/models/x?timeout=inf", None, "validation_error", "timeout"),
    ("GET", "/models/..%2F..%2Fetc%2Fpasswd", None, "not_found", None),  # decoded: no such route
    ("GET", "/models/%2e%2e", None, "validation_error", "name"),
    ("GET", "/models/x%00y", None, "validation_error", "name"),
    ("GET", "/models/x/logs?cursor=../../etc/passwd", None, "model_not_found", None),
    ("GET", "/models?status=../../etc", None, "validation_error", "status"),
    ("GET", "/models?status=", None, "validation_error", "status"),
    ("GET", "/events?limit=-1", None, "validation_error", "limit"),
    ("GET", "/events?limit=99999999999999999999", None, "validation_error", "limit"),
    (
        "GET",
        "/events?since=" + urllib.parse.quote("'; DROP TABLE"),
        None,
        "validation_error",
        "since",
    ),
    ("GET", "/models?status=running&status=stopped", None, "validation_error", "status"),
]


@pytest.mark.parametrize("method, path, body, code, field", BAD_INPUTS)
def test_bad_input_is_a_documented_4xx_naming_the_problem(api, method, path, body, code, field):
    kwargs = {"method": method, "status": "*"}
    if body is not None:
        kwargs["body"] = body.encode("latin-1" if "\xff" in body else "utf-8")
        kwargs["content_type"] = "application/json"
    response = api.request(path, **kwargs)
    status = response.status_int
    assert 400 <= status < 500, response.text
    error = assert_error(response, status, code, field)
    if field is None and code == "bad_request":
        assert "JSON" in error["message"]
    assert documented(method, path, status), "%s %s -> %d is not in the OpenAPI document" % (
        method,
        path,
        status,
    )
    assert api.get("/health").json == {"status": "ok"}


def test_a_bad_cursor_on_a_real_model_names_the_cursor(api, tag):
    api.post_json("/models", {"name": "m", "command": model("sleeper.py", tag=tag)})
    assert_error(
        api.get("/models/m/logs?cursor=../../etc/passwd", status="*"),
        400,
        "validation_error",
        "cursor",
    )
    assert_error(
        api.get("/models/m/logs?grep=" + "x" * 2000, status="*"), 400, "validation_error", "grep"
    )


SHELL = [
    "$(touch /tmp/pwned)",
    "`id`",
    "; rm -rf /",
    "a && b",
    "x | y",
    "'quoted' \"double\"",
    "*",
    "~",
    "$HOME",
    "> /etc/passwd",
    "\\n",
    "日本語 ✓",
]


def test_shell_metacharacters_reach_the_model_literally(api, tag):
    api.post_json("/models", {"name": "argv", "command": model("argv_echo.py", *SHELL, tag=tag)})

    def received():
        entries = api.get("/models/argv/logs?stream=stdout").json["entries"]
        return json.loads(entries[0]["msg"]) if entries else None

    assert wait_until(received, message="the model's argv") == SHELL
    assert not os.path.exists("/tmp/pwned")


def test_huge_requests_over_the_wire_leave_the_daemon_up(daemon):
    daemon.start()
    host, port = daemon.url.split("//")[1].split(":")
    for raw in (
        b"POST /models HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n{",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"b" * 70000 + b"\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64),
        b"GARBAGE\r\n\r\n",
    ):
        with socket.create_connection((host, int(port)), timeout=30) as connection:
            connection.sendall(raw)
            connection.shutdown(socket.SHUT_WR)  # no more is coming
            try:
                answer = connection.recv(200)
            except ConnectionResetError:
                answer = b""
        assert answer == b"" or answer.split()[1][:1] == b"4", answer
    assert daemon.client().health() == {"status": "ok"}


def test_refuses_to_start_open_to_the_network_without_auth(home):
    for host in ("0.0.0.0", "192.0.2.10", "::"):
        result = subprocess.run(
            MODELD + ["start", "--home", home, "--host", host, "--no-auth"],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 2 and "without authentication" in result.stderr
