"""Connection-level protections against clients without a token (issue 10, B and item 29).

A deadline for a request head, caps on connections per client and in total, the descriptor
soft limit raised at start, EMFILE answered with back-off, waiters capped like followers,
log pages bounded in bytes, anonymous traffic in its own rate-limit bucket, request fields
escaped in the log, and oversized requests answered in the JSON error shape.
"""

import contextlib
import json
import logging
import os
import resource
import select
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import MODELD, TOKEN, RunningDaemon, assert_error, wait_until
from lib import errors
from lib.api import ratelimit
from lib.logs import query as logquery
from lib.logs import reader as logread
from lib.logs import store as logstore

# -- helpers -------------------------------------------------------------------------


@contextlib.contextmanager
def serving(supervisor, threads=4, **options):
    """The real app on cheroot in this process, with the given connection options."""
    from lib.api import app as api_module
    from lib.api import server as server_module

    settings = api_module.Settings(token=TOKEN, version="test")
    server = server_module.ApiServer(
        api_module.make_app(supervisor, settings),
        ("127.0.0.1", 0),
        "test",
        threads=threads,
        max_body=settings.max_body,
        **options,
    )
    server.bind()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server, server.server.bind_addr[1]
    finally:
        server.stop()
        thread.join(timeout=30)


class Sockets:
    """Client sockets a test opens, all closed at the end."""

    def __init__(self):
        self.open = []

    def connect(self, port, source="127.0.0.1", timeout=5):
        connection = socket.socket()
        connection.settimeout(timeout)
        connection.bind((source, 0))
        connection.connect(("127.0.0.1", port))
        self.open.append(connection)
        return connection

    def close(self):
        for connection in self.open:
            connection.close()


@pytest.fixture
def sockets():
    opened = Sockets()
    yield opened
    opened.close()


def read_response(connection):
    """(status, headers, body) of one response; reads until the body is complete or EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length", -1))
    while len(body) < length or length < 0:
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def get_health(port, timeout=3):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, _, body = read_response(connection)
    return status, json.loads(body), time.monotonic() - started


def closed_by_server(connection, timeout=3.0):
    """True once the server closed ``connection`` (EOF or a reset), polled up to ``timeout``.

    The close follows the answer by a moment: waiting for it is not a race, reading once is.
    """
    deadline = time.monotonic() + timeout
    while True:
        remaining = max(0.0, deadline - time.monotonic())
        readable, _, _ = select.select([connection], [], [], remaining)
        if not readable:
            return False
        try:
            if not connection.recv(65536):
                return True
        except ConnectionResetError:
            return True


def assert_json_error(status, headers, body, expected_status, code):
    assert status == expected_status, (status, body[:200])
    assert headers["content-type"].startswith("application/json"), headers
    assert "x-request-id" in headers
    assert json.loads(body)["error"]["code"] == code
    return json.loads(body)["error"]


# -- 9: the request head has a deadline; slow heads never hold a worker --------------


def test_slow_request_heads_never_hold_a_worker_thread(supervisor, sockets):
    with serving(supervisor, threads=4, head_timeout=30) as (_, port):
        slow = [sockets.connect(port) for _ in range(24)]
        for connection in slow:
            connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        for connection in slow:
            connection.sendall(b"X-Slow: 1\r\n")  # one more header line, the head goes on
        status, body, elapsed = get_health(port, timeout=3)
        assert status == 200 and body == {"status": "ok"}
        assert elapsed < 1.0


def test_a_request_head_must_arrive_within_the_deadline(supervisor, sockets):
    with serving(supervisor, head_timeout=0.5) as (_, port):
        connection = sockets.connect(port)
        started = time.monotonic()
        connection.sendall(b"GET /health HTTP/1.1\r\n")
        for _ in range(4):  # a header line now and then never extends the deadline
            time.sleep(0.1)
            connection.sendall(b"X-Slow: 1\r\n")
        status, headers, body = read_response(connection)
        assert_json_error(status, headers, body, 408, "request_timeout")
        assert time.monotonic() - started < 3.0
        assert closed_by_server(connection)


def test_a_head_in_many_pieces_within_the_deadline_is_served(supervisor, sockets):
    with serving(supervisor, head_timeout=5) as (_, port):
        connection = sockets.connect(port)
        for piece in (b"GET /hea", b"lth HTTP/1.1\r\nHo", b"st: x\r\n", b"\r\n"):
            connection.sendall(piece)
            time.sleep(0.02)
        status, _, body = read_response(connection)
        assert status == 200 and json.loads(body) == {"status": "ok"}
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive still works
        assert read_response(connection)[0] == 200


def test_connection_close_is_answered_then_closed_at_once(supervisor, sockets):
    with serving(supervisor) as (_, port):
        connection = sockets.connect(port, timeout=3)
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while True:
            data = connection.recv(4096)  # EOF must come now, not after a timeout
            if not data:
                break
            answer += data
        assert answer.startswith(b"HTTP/1.1 200")


# -- 10: connection caps, the descriptor limit, EMFILE ---------------------------------


def test_idle_connections_over_the_per_client_cap_are_closed_and_new_ones_served(
    supervisor, sockets
):
    with serving(supervisor, head_timeout=30, max_connections_per_client=8) as (server, port):
        idle = [sockets.connect(port) for _ in range(40)]
        wait_until(
            lambda: sum(closed_by_server(c, timeout=0) for c in idle) >= 32,
            message="the connections over the cap to be closed",
        )
        status, _, elapsed = get_health(port)
        assert status == 200 and elapsed < 1.0
        assert server.guard.ledger.open_count("127.0.0.1") <= 8


def test_the_total_cap_holds_across_clients(supervisor, sockets):
    with serving(supervisor, head_timeout=30, max_connections=16) as (server, port):
        idle = [sockets.connect(port, source="127.0.0.%d" % (2 + n % 20)) for n in range(60)]
        wait_until(
            lambda: sum(closed_by_server(c, timeout=0) for c in idle) >= 44,
            message="the connections over the total cap to be closed",
        )
        assert get_health(port)[0] == 200
        assert server.guard.ledger.total <= 16


def daemon_with_limits(home, soft, hard, *extra):
    """``modeld start`` run under the given RLIMIT_NOFILE."""
    lower = "import resource, sys, os; resource.setrlimit(resource.RLIMIT_NOFILE, (%d, %d)); " % (
        soft,
        hard,
    )
    launcher = [sys.executable, "-c", lower + "os.execv(sys.argv[1], sys.argv[1:])"]
    command = launcher + MODELD + ["start", "--home", home, "--port", "0", "--rate-limit", "off"]
    return subprocess.run(command + list(extra), capture_output=True, text=True, timeout=60)


def open_files_limit(pid):
    with open("/proc/%d/limits" % pid) as handle:
        for line in handle:
            if line.startswith("Max open files"):
                return int(line.split()[3]), int(line.split()[4])
    raise AssertionError("no open files limit")


def test_the_descriptor_soft_limit_is_raised_to_the_hard_limit_at_start(home):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    daemon = RunningDaemon(home)
    result = daemon_with_limits(home, 256, hard)
    try:
        assert result.returncode == 0, result.stderr
        daemon.reload()
        assert open_files_limit(daemon.pid) == (hard, hard)
    finally:
        daemon.stop()


def test_running_out_of_descriptors_backs_off_with_one_log_line(home, sockets):
    daemon = RunningDaemon(home)
    result = daemon_with_limits(home, 128, 128, "--max-connections", "1000", "--head-timeout", "60")
    try:
        assert result.returncode == 0, result.stderr
        daemon.reload()
        port = int(daemon.url.rsplit(":", 1)[1])
        for _ in range(200):  # past the 128 descriptors: the kernel queues, accept() fails
            sockets.connect(port)
        time.sleep(1.0)  # let the accept loop meet EMFILE for a while (the flood is what we check)
        cpu_before = _cpu_seconds(daemon.pid)
        time.sleep(1.0)
        assert _cpu_seconds(daemon.pid) - cpu_before < 0.5  # backing off, not spinning
        sockets.close()
        sockets.open = []
        status, _, _ = get_health(port, timeout=10)
        assert status == 200
        with open(os.path.join(home, "daemon.log")) as handle:
            log = handle.read()
        assert log.count("descriptors") == 1, log[-2000:]
        assert "Traceback" not in log
    finally:
        daemon.stop()


def _cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- 11: anonymous traffic has its own buckets ------------------------------------------


def test_an_anonymous_flood_never_throttles_the_operator(supervisor):
    import webtest

    from lib.api import app as api_module

    frozen = ratelimit.RateLimiter(1, 3, clock=lambda: 1000.0)  # no refill between requests
    settings = api_module.Settings(token=TOKEN, version="t", rate_limiter=frozen)
    api = webtest.TestApp(
        api_module.make_app(supervisor, settings), extra_environ={"REMOTE_ADDR": "127.0.0.1"}
    )
    statuses = [api.get("/no-such-route", status="*").status_int for _ in range(20)]
    assert statuses.count(429) == 17
    guesses = [
        api.get("/models", headers={"Authorization": "Bearer wrong"}, status="*").status_int
        for _ in range(3)
    ]
    assert guesses == [429, 429, 429]  # a wrong token is no token: the anonymous bucket
    operator = {"Authorization": "Bearer " + TOKEN}
    assert [api.get("/models", headers=operator, status="*").status_int for _ in range(4)] == [
        200,
        200,
        200,
        429,
    ]  # the operator's own bucket, throttled on its own


# -- 12: waiters are capped ---------------------------------------------------------------


def test_wait_requests_are_capped_like_followers(supervisor, monkeypatch, tag):
    import webtest

    from conftest import model
    from lib.api import app as api_module

    release, entered = threading.Event(), threading.Event()

    def wait_ready(name, timeout=None):
        entered.set()
        release.wait(30)
        return supervisor.describe(name)

    monkeypatch.setattr(supervisor, "wait_ready", wait_ready)
    settings = api_module.Settings(token=TOKEN, version="t", max_waiters=1)
    api = webtest.TestApp(
        api_module.make_app(supervisor, settings),
        extra_environ={"HTTP_AUTHORIZATION": "Bearer " + TOKEN, "REMOTE_ADDR": "127.0.0.1"},
    )
    spec = {"name": "waited", "command": model("sleeper.py", tag=tag)}
    first = threading.Thread(target=lambda: api.post_json("/models?wait=true", spec, status="*"))
    first.start()
    try:
        assert entered.wait(15)
        other = dict(spec, name="other")
        response = api.post_json("/models?wait=true", other, status="*")
        error = assert_error(response, 503, "too_many_waiters")
        assert int(response.headers["Retry-After"]) >= 1 and error["details"]["limit"] == 1
        assert_error(api.get("/models/other", status="*"), 404, "model_not_found")  # not deployed
        assert_error(
            api.post("/models/waited/start?wait=true", status="*"), 503, "too_many_waiters"
        )
        assert_error(api.post("/models/waited/restart", status="*"), 503, "too_many_waiters")
        assert api.get("/health").status_int == 200
    finally:
        release.set()
        first.join(30)
    assert (
        api.post_json("/models?wait=true", dict(spec, name="third"), status="*").status_int == 201
    )


# -- 13: log pages are bounded in bytes --------------------------------------------------


@pytest.fixture
def big_lines(tmp_path):
    directory = str(tmp_path / "logs")
    writer = logstore.LogWriter(directory, 64 * 1024 * 1024, 2)
    line = b"x" * (logstore.MAX_LINE_BYTES - 16)
    for number in range(600):
        writer.append([("o", "i", False, b"%06d " % number + line)])
    writer.close()
    return logread.LogReader(directory)


def _query(reader, **params):
    parsed = logquery.parse_log_query({k: str(v) for k, v in params.items()}, 2 * 10**15)
    return logquery.run_query(reader, parsed)


@pytest.mark.parametrize("first", [{"limit": 10000}, {"tail": 600, "limit": 10000}])
def test_a_log_page_is_bounded_in_bytes_and_pages_on(big_lines, first):
    seen, params = [], dict(first)
    while True:
        page = _query(big_lines, **params)
        size = sum(len(entry.msg) for entry in page.entries)
        assert size <= logquery.MAX_PAGE_BYTES + logstore.MAX_LINE_BYTES
        seen += [entry.seq for entry in page.entries]
        if not page.has_more:
            break
        params = {
            "limit": 10000,
            "cursor": logquery.encode_cursor(big_lines.log_id(), page.next_seq),
        }
    assert seen == list(range(1, 601))  # every entry once, in order, across pages


def test_modelctl_logs_pages_on_after_a_tail_page():
    from lib.cli import modelctl

    pages = [
        {"entries": [{"seq": 1}], "next_cursor": "c1", "has_more": True},
        {"entries": [{"seq": 2}], "next_cursor": "c2", "has_more": False},
    ]
    asked = []

    class Client:
        def logs(self, name, **params):
            asked.append(params)
            return pages[len(asked) - 1]

    args = modelctl.build_parser().parse_args(["logs", "m", "-n", "5", "--json"])

    class Out:
        lines = []

        def write(self, text):
            self.lines.append(text)

    assert modelctl.cmd_logs(Client(), args, Out()) == 0
    assert asked[0]["tail"] == 5 and asked[1] == {"limit": 10000, "cursor": "c1"}
    assert [json.loads(line)["seq"] for line in "".join(Out.lines).splitlines()] == [1, 2]


# -- 14: request fields are escaped in the log -------------------------------------------


def test_a_request_can_never_forge_a_log_line(api, caplog):
    caplog.set_level(logging.INFO, logger="modeld.access")
    forged = "2026-01-01 00:00:00,000 INFO modeld.api: model deleted"
    api.get("/x%0A" + forged.replace(" ", "%20") + "%0D%1B[2J%E2%80%A8", status="*")
    lines = [record.getMessage() for record in caplog.records if record.name == "modeld.access"]
    assert len(lines) == 1
    assert lines[0].isprintable(), lines[0]
    assert "/x\\n2026-01-01" in lines[0] and "\\r\\x1b[2J\\u2028" in lines[0]


# -- 23: oversized requests get the JSON error shape -------------------------------------


def test_oversized_bodies_and_heads_are_answered_in_the_json_shape(supervisor, sockets):
    with serving(supervisor) as (_, port):
        auth = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
        declared = sockets.connect(port)
        declared.sendall(
            b"POST /models HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: 2000000\r\n\r\n{"
        )
        assert_json_error(*read_response(declared), 413, "payload_too_large")

        chunked = sockets.connect(port)
        chunked.sendall(b"POST /models HTTP/1.1\r\nHost: x\r\n" + auth)
        chunked.sendall(b"Transfer-Encoding: chunked\r\n\r\n")
        with contextlib.suppress(OSError):  # the server may close before it has read it all
            for _ in range(40):
                chunked.sendall(b"10000\r\n" + b"a" * 0x10000 + b"\r\n")
        assert_json_error(*read_response(chunked), 413, "payload_too_large")

        headers = sockets.connect(port)
        with contextlib.suppress(OSError):
            headers.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX: " + b"b" * 70000 + b"\r\n\r\n")
        assert_json_error(*read_response(headers), 431, "headers_too_large")

        line = sockets.connect(port)
        with contextlib.suppress(OSError):
            line.sendall(b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert_json_error(*read_response(line), 414, "uri_too_long")
        assert get_health(port)[0] == 200


def test_a_small_chunked_body_is_read(supervisor, sockets, tag):
    from conftest import model

    spec = json.dumps({"name": "chunky", "command": model("sleeper.py", tag=tag)}).encode()
    with serving(supervisor) as (_, port):
        connection = sockets.connect(port)
        connection.sendall(
            b"POST /models?dry_run=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(spec), spec)
        )
        status, _, body = read_response(connection)
        assert status == 200, body


def test_every_new_error_code_is_an_error_class():
    for code in ("request_timeout", "too_many_waiters", "too_many_connections"):
        assert errors.class_for_code(code).code == code
