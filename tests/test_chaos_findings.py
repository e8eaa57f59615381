"""Regression tests for defects the chaos harness and the fuzzers found that issue 10's
list did not name (each named in bench/README.md, "Chaos and fuzzing")."""

import os
import signal

from conftest import model, wait_until
from lib.core import procfs


def sleeper_spec(tag, name):
    return {
        "name": name,
        "command": model("sleeper.py", tag=tag),
        "restart": {"policy": "always", "backoff": 0.1},
        "stop": {"timeout": 2},
    }


def test_restart_right_after_the_monitor_died_restarts(daemon, tag):
    """Found by the chaos harness (kill_monitor, then restart): the model outlived its
    monitor, the daemon could not signal one and fell back to a start, which answered 409
    already_running until reconcile had replaced the monitor. A restart takes the model
    over first (as a stop does), then restarts it."""
    daemon.start()
    client = daemon.client()
    client.deploy(sleeper_spec(tag, "m"))
    before = wait_until(lambda: client.get("m")["pid"], message="the model to start")
    os.kill(client.get("m")["monitor"]["pid"], signal.SIGKILL)
    wait_until(lambda: not client.get("m")["monitor"]["alive"], message="the monitor to die")
    answer = client.restart("m")
    assert answer["name"] == "m"
    wait_until(lambda: not procfs.alive(before), message="the old model process to go")
    after = wait_until(lambda: client.get("m")["pid"], message="the model to run again")
    assert after != before
    client.stop("m")


def test_a_deeply_nested_body_is_a_400_not_a_500(api):
    """Found by the fuzzer (nesting depth): the JSON decoder's RecursionError was a 500."""
    from conftest import assert_error

    headers = {"Content-Type": "application/json"}
    for body in (
        "[" * 100_000 + "]" * 100_000,
        '{"name": "x", "command": ["true"], "labels": %s1%s}' % ('{"a": ' * 5000, "}" * 5000),
    ):
        answer = api.post("/models?dry_run=true", body, headers=headers, expect_errors=True)
        error = assert_error(answer, 400, "bad_request")
        assert "nested" in error["message"]


def test_requests_cheroot_refuses_get_the_json_error_shape(daemon):
    """Found by fuzzing raw requests: cheroot's own refusals (a malformed request line, a
    bad chunk, an HTTP version it does not speak, a method it does not know) answered
    text/plain, outside the one error shape."""
    import json

    from test_fuzz import _raw

    daemon.start()
    for payload in (
        b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n",
        b"GET /health\r\n\r\n",
        b"POST /models HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Authorization: Bearer %s\r\n\r\nzz\r\nab\r\n" % daemon.token.encode(),
        b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    ):
        status, headers, body = _raw(daemon.url, payload)
        assert 400 <= status < 500, (payload, status, body)
        assert headers["content-type"] == "application/json", (payload, headers, body)
        assert headers.get("x-request-id"), headers
        error = json.loads(body)["error"]
        assert set(error) == {"code", "message", "details"}
        assert error["code"] == "bad_request", error
