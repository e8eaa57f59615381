"""API throughput and latency, at 1 and 10 concurrent clients, next to supervisord's XML-RPC.

  GET /models/{name}                    one model's status
  GET /models                           100 models deployed
  deploy + stop                         POST /models then DELETE, a cycle per client
  supervisord getProcessInfo            XML-RPC on supervisord 4.x's HTTP server, one program
  hello world                           a bare bottle + cheroot app (same threads and backlog)
  GET /metrics, GET /events?limit=100   100 models, each with --event-history past events

Targets (issue 14): GET /models/{name} at 10 clients >= 0.5x the hello world;
GET /models and GET /metrics with 100 models p99 < 20 ms at 1 client;
GET /events?limit=100 with 100 models < 20 ms.

Clients are processes with one keep-alive connection each (bench/load.py); the
daemon runs with --rate-limit off. Targets (issue 6): >= 2,000 req/s for
GET /models/{name} at 10 clients on 2 cores, p99 under 20 ms, >= 2x supervisord.

    python3 bench/api.py [--seconds 5] [--skip-supervisord]
"""

import argparse
import http.client
import json
import multiprocessing
import shutil
import socket
import subprocess
import tempfile
import time

import load
from common import Daemon, header, install_supervisord, median, percentile, start_supervisord

MODELS = 100
HELLO = """
import sys, bottle, cheroot.wsgi
app = bottle.Bottle()
@app.get("/hello")
def hello():
    return {"hello": "world"}
server = cheroot.wsgi.Server(("127.0.0.1", int(sys.argv[1])), app, numthreads=32,
                             request_queue_size=128, server_name="hello")
server.safe_start()
"""


def show(name, clients, rps, latencies, errors, statuses):
    print(
        "%-30s %2d client%s  %7.0f req/s   p50 %6.2f ms   p99 %6.2f ms%s"
        % (
            name,
            clients,
            " " if clients == 1 else "s",
            rps,
            1000 * median(latencies),
            1000 * percentile(latencies, 0.99),
            ""
            if not errors and set(statuses) <= {200}
            else "   errors %d statuses %s" % (errors, statuses),
        )
    )


def deploy_stop_worker(host, port, token, client, duration, results):
    connection = http.client.HTTPConnection(host, port, timeout=60)
    headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
    spec = json.dumps(
        {"name": "cycle-%d" % client, "command": ["sleep", "100000"], "stop": {"timeout": 5}}
    )
    cycles, deadline = [], time.monotonic() + duration
    while time.monotonic() < deadline:
        started = time.perf_counter()
        connection.request("POST", "/models", spec, headers)
        created = connection.getresponse()
        created.read()
        connection.request("DELETE", "/models/cycle-%d" % client, headers=headers)
        stopped = connection.getresponse()
        stopped.read()
        if created.status != 201 or stopped.status != 200:
            raise SystemExit("cycle failed: %d %d" % (created.status, stopped.status))
        cycles.append(time.perf_counter() - started)
    results.put(cycles)


def deploy_stop(daemon, clients, duration):
    results = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(
            target=deploy_stop_worker,
            args=(daemon.host, daemon.port, daemon.token, n, duration, results),
        )
        for n in range(clients)
    ]
    for worker in workers:
        worker.start()
    cycles = []
    for _ in workers:
        cycles += results.get()
    for worker in workers:
        worker.join()
    return len(cycles) / duration, cycles


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def supervisord_serving(workdir):
    """supervisord over TCP with one running program; (its port, the supervisorctl argv)."""
    venv = install_supervisord(workdir)
    port = free_port()
    ctl = start_supervisord(venv, workdir, ("sleeper", "sleep 100000"), inet_port=port)
    deadline = time.monotonic() + 30
    while "RUNNING" not in subprocess.run(ctl + ["status"], capture_output=True, text=True).stdout:
        if time.monotonic() > deadline:
            raise SystemExit("supervisord did not start its program")
        time.sleep(0.2)
    return port, ctl


def add_event_history(home, count):
    """Append ``count`` past state changes to each model's events (a busy fleet's history)."""
    import os

    models = os.path.join(home, "models")
    for name in os.listdir(models):
        lines = []
        for number in range(count):
            at = "2026-01-01T%02d:%02d:%02d.%06dZ" % (
                number // 3600 % 24,
                number // 60 % 60,
                number % 60,
                number,
            )
            event = {
                "at": at,
                "model": name,
                "from": "running",
                "to": "backoff",
                "reason": "exit code 1",
                "exit": {"code": 1, "signal": None, "reason": "exit_code"},
                "cause": None,
            }
            lines.append(json.dumps(event, sort_keys=True) + "\n")
        path = os.path.join(models, name, "events.jsonl")
        with open(path) as handle:
            current = handle.read()
        with open(path, "w") as handle:
            handle.write("".join(lines) + current)


def hello_world(seconds):
    """The bare bottle + cheroot reference, measured at 10 clients."""
    import sys

    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", HELLO, str(port)])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        request = load.http_get("127.0.0.1", port, "/hello")
        outcome = load.run("127.0.0.1", port, request, 10, seconds)
        show("bottle+cheroot hello world", 10, *outcome)
        return outcome
    finally:
        server.terminate()
        server.wait(timeout=10)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--skip-supervisord", action="store_true")
    parser.add_argument("--event-history", type=int, default=1000, help="past events per model")
    args = parser.parse_args()
    header("API throughput, %g s per run" % args.seconds)
    daemon = Daemon()
    workdir = tempfile.mkdtemp(prefix="modeld-api-")
    ctl = None
    try:
        connection = daemon.connection()
        results = {}
        for number in range(MODELS):
            connection.request(
                "POST", "/models", {"name": "m%03d" % number, "command": ["sleep", "100000"]}
            )
        add_event_history(daemon.home, args.event_history)
        time.sleep(2.5)  # one metrics sample, as in steady state
        hello = hello_world(args.seconds)
        results[("hello", 10)] = hello
        one = load.http_get(daemon.host, daemon.port, "/models/m000", daemon.token)
        every = load.http_get(daemon.host, daemon.port, "/models", daemon.token)
        for clients in (1, 10):
            results[("one", clients)] = load.run(
                daemon.host, daemon.port, one, clients, args.seconds
            )
            show("GET /models/{name}", clients, *results[("one", clients)])
        for clients in (1, 10):
            show(
                "GET /models (100 models)",
                clients,
                *load.run(daemon.host, daemon.port, every, clients, args.seconds),
            )
        print(
            "%-30s %2d clients  GET /models/{name} is %.2fx the hello world (target >= 0.5x)"
            % ("", 10, results[("one", 10)][0] / hello[0])
        )
        for path, label in (
            ("/metrics", "GET /metrics (100 models)"),
            ("/events?limit=100", "GET /events?limit=100"),
        ):
            request = load.http_get(daemon.host, daemon.port, path, daemon.token)
            show(label, 1, *load.run(daemon.host, daemon.port, request, 1, args.seconds))
        for clients in (1, 10):
            rate, cycles = deploy_stop(daemon, clients, args.seconds)
            show("deploy + stop cycle", clients, rate, cycles, 0, {200: 1})
        if not args.skip_supervisord:
            port, ctl = supervisord_serving(workdir)
            body = (
                b"<?xml version='1.0'?><methodCall>"
                b"<methodName>supervisor.getProcessInfo</methodName><params><param>"
                b"<value><string>sleeper</string></value></param></params></methodCall>"
            )
            request = load.http_post("127.0.0.1", port, "/RPC2", body, "text/xml")
            for clients in (1, 10):
                outcome = load.run("127.0.0.1", port, request, clients, args.seconds)
                show("supervisord getProcessInfo", clients, *outcome)
                print(
                    "%-30s %2d clients  modeld GET /models/{name} is %.1fx supervisord"
                    % ("", clients, results[("one", clients)][0] / outcome[0])
                )
    finally:
        daemon.stop()
        if ctl:
            subprocess.run(ctl + ["shutdown"], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(daemon.home, ignore_errors=True)


if __name__ == "__main__":
    main()
