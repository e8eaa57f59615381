"""On-demand models with real processes: the monitor's listener, relay, idle unload.

Each test deploys ``tests/models/ondemand_model.py`` with an ``activation``
section and talks to its listener over loopback. The pure decisions are
table-tested in ``test_activation.py``.
"""

import concurrent.futures
import json
import os
import socket
import sys
import threading
import time

from conftest import MODELS, assert_error, wait_until
from lib.core import paths
from lib.core import vocabulary as v

SERVER = os.path.join(MODELS, "ondemand_model.py")


def on_demand(name, tag, load=0.0, term_delay=0.0, marker=None, **activation):
    command = [sys.executable, SERVER, "{port}", "--load", str(load)]
    command += ["--term-delay", str(term_delay)]
    if marker:
        command += ["--marker", marker]
    return {
        "name": name,
        "command": command + ["--tag", tag],
        "port": "auto",
        "health": {"tcp": True, "interval": 0.5, "start_period": 60},
        "stop": {"timeout": 5},
        "activation": dict({"idle_timeout": 30, "load_timeout": 30}, **activation),
    }


def deploy(supervisor, body):
    result = supervisor.deploy(body)
    assert result["status"] == v.IDLE, result
    return result["activation"]["listen"]


def request(port, path="/", timeout=30):
    """One HTTP/1.1 request with ``Connection: close``: the whole response (b"" if refused)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as client:
        client.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        return read_all(client)


def read_all(client):
    received = b""
    while True:
        try:
            chunk = client.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def events_of(home, name):
    with open(paths.Home(home).model(name).events) as handle:
        return [json.loads(line) for line in handle]


def status(supervisor, name):
    return supervisor.describe(name)["status"]


def test_first_connection_starts_the_model_and_gets_its_answer(supervisor, tag, home):
    listen = deploy(supervisor, on_demand("first", tag, load=0.3))
    assert supervisor.describe("first")["pid"] is None
    answer = request(listen)
    assert answer.startswith(b"HTTP/1.1 200") and b"hello from" in answer
    current = supervisor.describe("first")
    assert current["status"] == v.RUNNING and current["ready"]
    assert current["endpoint"] == "http://127.0.0.1:%d" % listen
    assert current["activation"]["state"] == v.ACTIVATION_READY
    moves = [(event["from"], event["to"]) for event in events_of(home, "first")]
    assert moves[:3] == [(None, v.IDLE), (v.IDLE, v.STARTING), (v.STARTING, v.RUNNING)]


def test_fifty_parallel_connections_during_a_load_are_all_served(supervisor, tag):
    listen = deploy(supervisor, on_demand("fifty", tag, load=1.0))
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: request(listen), range(50)))
    assert all(b"hello from" in answer for answer in answers)
    assert len({answer.rsplit(b" ", 1)[-1] for answer in answers}) == 1  # one model process


def test_connection_beyond_max_pending_gets_a_503(supervisor, tag):
    listen = deploy(supervisor, on_demand("full", tag, load=1.5, max_pending=3, http_503=True))
    queued = []
    for _ in range(3):
        client = socket.create_connection(("127.0.0.1", listen), timeout=30)
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        queued.append(client)
    wait_until(lambda: supervisor.describe("full")["status"] == v.STARTING)
    refused = request(listen, timeout=5)
    assert refused.startswith(b"HTTP/1.1 503") and b"queue is full" in refused
    for client in queued:
        with client:
            assert b"hello from" in read_all(client)


def test_connection_beyond_max_pending_is_closed_without_http_503(supervisor, tag):
    listen = deploy(supervisor, on_demand("closed", tag, load=1.5, max_pending=1))
    with socket.create_connection(("127.0.0.1", listen), timeout=30) as first:
        first.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        wait_until(lambda: supervisor.describe("closed")["status"] == v.STARTING)
        assert request(listen, timeout=5) == b""
        assert b"hello from" in read_all(first)


def test_load_timeout_closes_queued_connections_but_the_model_becomes_ready(supervisor, tag):
    listen = deploy(supervisor, on_demand("slow", tag, load=2.0, load_timeout=0.5))
    started = time.monotonic()
    assert request(listen) == b""  # closed after load_timeout
    assert time.monotonic() - started < 1.9
    wait_until(lambda: supervisor.describe("slow")["ready"], message="the load to finish")
    assert b"hello from" in request(listen)


def test_an_sse_stream_longer_than_idle_timeout_is_not_cut(supervisor, tag):
    listen = deploy(supervisor, on_demand("stream", tag, idle_timeout=0.3))
    answer = request(listen, "/sse?n=12&interval=0.1")
    assert answer.count(b"data: event") == 12
    assert status(supervisor, "stream") == v.RUNNING  # the idle timer starts at the close


def test_the_idle_stop_comes_idle_timeout_after_the_last_close(supervisor, tag, home):
    listen = deploy(supervisor, on_demand("timer", tag, idle_timeout=1.0))
    request(listen)
    request(listen, "/sse?n=3&interval=0.2")
    closed_at = time.time()
    wait_until(lambda: status(supervisor, "timer") == v.IDLE, message="the idle unload")
    unload = [e for e in events_of(home, "timer") if e["reason"] == "unloading (idle_timeout)"]
    assert len(unload) == 1
    at = time.mktime(time.strptime(unload[0]["at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    at += float("0." + unload[0]["at"][20:26])
    assert abs(at - (closed_at + 1.0)) <= 1.0, at - closed_at
    idle = events_of(home, "timer")[-1]
    assert (idle["to"], idle["reason"]) == (v.IDLE, v.UNLOAD_IDLE_TIMEOUT)
    assert supervisor.describe("timer")["activation"]["unloads"] == 1


def test_a_connection_during_an_idle_stop_is_served(supervisor, tag):
    """Each round: a request, then another just after the idle deadline, while the model
    takes 50 ms to exit: it waits for the stop, then the model starts again for it."""
    rounds = int(os.environ.get("MODELD_ONDEMAND_ROUNDS", "200"))
    body = on_demand("race", tag, idle_timeout=0.1, term_delay=0.05)
    body["health"]["interval"] = 0.1
    listen = deploy(supervisor, body)
    for number in range(rounds):
        answer = request(listen, timeout=20)
        assert b"hello from" in answer, (number, answer)
        time.sleep(0.1 + (number % 5) * 0.01)
    unloads = supervisor.describe("race")["activation"]["unloads"]
    assert unloads >= rounds // 2, unloads


def test_a_slow_reader_does_not_grow_the_monitor(supervisor, tag):
    listen = deploy(supervisor, on_demand("slowread", tag))
    assert b"hello from" in request(listen)
    monitor = supervisor.describe("slowread")["monitor"]["pid"]
    before = rss_kib(monitor)
    with socket.create_connection(("127.0.0.1", listen), timeout=30) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        client.sendall(b"GET /bytes?n=300000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(1.5)  # the model writes as fast as it can; the client reads nothing
        grown = rss_kib(monitor) - before
        client.recv(1024)
    assert grown < 4 * 1024, "the monitor grew by %d KiB" % grown


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def test_a_client_closing_mid_response_closes_the_upstream_fast(supervisor, tag, tmp_path):
    marker = str(tmp_path / "closed")
    listen = deploy(supervisor, on_demand("abort", tag, marker=marker))
    client = socket.create_connection(("127.0.0.1", listen), timeout=30)
    client.sendall(b"GET /sse?n=100000&interval=0.005 HTTP/1.1\r\nHost: x\r\n\r\n")
    received = b""
    while received.count(b"data: event") < 5:
        received += client.recv(65536)
    client.close()
    closed_at = time.time()
    wait_until(lambda: os.path.exists(marker), timeout=5, message="the model to see the close")
    with open(marker) as handle:
        seen_at = float(handle.read().split()[1])
    assert seen_at - closed_at < 0.1, seen_at - closed_at
    wait_until(lambda: supervisor.describe("abort")["activation"]["connections"] == 0)


def test_unload_route(api, supervisor, tag, home):
    api.post_json("/models", on_demand("manual", tag))
    listen = supervisor.describe("manual")["activation"]["listen"]
    idle = api.post("/models/manual/unload").json
    assert idle["status"] == v.IDLE  # idempotent
    assert b"hello from" in request(listen)
    unloaded = api.post("/models/manual/unload?reason=evicted").json
    assert unloaded["status"] == v.IDLE and unloaded["activation"]["unloads"] == 1
    assert events_of(home, "manual")[-1]["reason"] == v.UNLOAD_EVICTED
    assert_error(
        api.post("/models/manual/unload?reason=bored", status=400), 400, "validation_error"
    )
    listed = api.get("/models?status=idle").json["models"]
    assert [model["name"] for model in listed] == ["manual"]
    api.post_json("/models", {"name": "always", "command": [sys.executable, "-c", "1"]})
    assert_error(api.post("/models/always/unload", status=409), 409, "not_on_demand")


def test_kill_9_of_the_daemon_during_a_stream_does_not_cut_it(daemon, tag):
    daemon.start()
    client = daemon.client()
    listen = client.deploy(on_demand("survivor", tag))["activation"]["listen"]
    received, done = [], threading.Event()

    def stream():
        received.append(request(listen, "/sse?n=20&interval=0.1"))
        done.set()

    reader = threading.Thread(target=stream)
    reader.start()
    wait_until(lambda: client.get("survivor")["activation"]["connections"] == 1)
    daemon.kill()
    reader.join(timeout=30)
    assert done.is_set() and received[0].count(b"data: event") == 20
