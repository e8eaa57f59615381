"""On-demand relay vs a direct connection to the same model: ``python3 bench/activation.py``.

One model (``tests/models/ondemand_model.py``) deployed with ``activation``; each figure
is measured through the monitor's listener and directly on the model's own port:

- throughput of one 100 MB response (best of 3; target relayed >= 0.5x direct);
- added latency of a small request on a keep-alive connection (p50 of 500; target
  <= 0.3 ms);
- cold start: first connection to first byte while idle, minus the model's own time
  from process start to first byte when run by hand (median of 3; target <= 50 ms).
"""

import os
import socket
import subprocess
import sys
import tempfile
import time

from common import ROOT, header, median, percentile

from lib.core import paths
from lib.daemon.supervisor import Supervisor

SERVER = os.path.join(ROOT, "tests", "models", "ondemand_model.py")
LOAD = 0.5  # the model "loads weights" this long before it binds its port
BIG = 100 * 1000 * 1000
SMALL_REQUESTS = 500
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


def spec(name):
    return {
        "name": name,
        "command": [sys.executable, SERVER, "{port}", "--load", str(LOAD)],
        "port": "auto",
        "health": {"tcp": True, "interval": 1, "start_period": 60},
        "activation": {"idle_timeout": 600, "load_timeout": 60},
    }


def read_response(client, buffer):
    """Read one response with a Content-Length; returns its body length."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += client.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    got = len(rest)
    view = memoryview(buffer)
    while got < length:
        got += client.recv_into(view[: min(len(buffer), length - got)])
    return length


def throughput(port):
    buffer = bytearray(4 * 1024 * 1024)
    best = None
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port)) as client:
            started = time.perf_counter()
            client.sendall(b"GET /bytes?n=%d HTTP/1.1\r\nHost: bench\r\n\r\n" % BIG)
            assert read_response(client, buffer) == BIG
            seconds = time.perf_counter() - started
        best = seconds if best is None else min(best, seconds)
    return BIG / best / 1e6


def latencies(port):
    buffer = bytearray(65536)
    times = []
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for number in range(SMALL_REQUESTS + 20):
            started = time.perf_counter()
            client.sendall(REQUEST)
            read_response(client, buffer)
            if number >= 20:  # warm-up
                times.append((time.perf_counter() - started) * 1000)
    return times


def first_byte(port, deadline=30.0):
    """Seconds until a GET / gets its first byte, retrying refused connections every 1 ms."""
    started = time.perf_counter()
    while time.perf_counter() - started < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port)) as client:
                client.sendall(REQUEST)
                if client.recv(1):
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.001)
    raise RuntimeError("no answer on port %d" % port)


def by_hand():
    """The model's own time to ready: process start to first byte, without modeld."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.perf_counter()
    command = [sys.executable, SERVER, str(port), "--load", str(LOAD)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        first_byte(port)
        return time.perf_counter() - started
    finally:
        process.kill()
        process.wait()


def cold_start(supervisor, name, listen):
    supervisor.unload(name)
    assert supervisor.describe(name)["status"] == "idle"
    return first_byte(listen)


def main():
    header("on-demand relay vs direct (bench/activation.py)")
    home = tempfile.mkdtemp(prefix="modeld-bench-activation-")
    supervisor = Supervisor(paths.Home(home), sample_interval=1.0)
    supervisor.start()
    try:
        current = supervisor.deploy(spec("bench"))
        listen = current["activation"]["listen"]
        first_byte(listen)
        port = supervisor.describe("bench")["port"]
        direct, relayed = throughput(port), throughput(listen)
        print("100 MB transfer: direct %.0f MB/s, relayed %.0f MB/s: %.2fx (target >= 0.5x)"
              % (direct, relayed, relayed / direct))  # fmt: skip
        plain, through = latencies(port), latencies(listen)
        added = median(through) - median(plain)
        print("small request p50: direct %.3f ms, relayed %.3f ms: +%.3f ms (target <= 0.3 ms)"
              % (median(plain), median(through), added))  # fmt: skip
        print("small request p99: direct %.3f ms, relayed %.3f ms"
              % (percentile(plain, 0.99), percentile(through, 0.99)))  # fmt: skip
        own = median([by_hand() for _ in range(3)])
        cold = median([cold_start(supervisor, "bench", listen) for _ in range(3)])
        print("cold start: first byte %.1f ms, model alone %.1f ms: +%.1f ms (target <= 50 ms)"
              % (cold * 1000, own * 1000, (cold - own) * 1000))  # fmt: skip
    finally:
        supervisor.shutdown(stop_models=True, timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
