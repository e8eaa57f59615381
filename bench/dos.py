"""GET /health latency while clients without a token try to hold the daemon (issue 10, B).

An attacker process keeps 200 slow clients (slowloris: a request head that gains one
header line every 5 s, reopened whenever the daemon closes it) and 2,000 idle
connections (connect, send nothing, reopened when closed) open against a daemon started
from this checkout, spread over 20 loopback addresses (127.0.1.x), or over one with
--one-address. Meanwhile this process sends GET /health on a fresh connection, one at a
time, and measures connect-to-answer. The same measurement without the attack comes
first, in the same run. Loopback only; bounded in count and time; everything is closed.

    python3 bench/dos.py [--requests 200] [--slow 200] [--idle 2000] [--one-address]

Target: with the attack on, GET /health answers in under 100 ms.
"""

import argparse
import multiprocessing
import resource
import selectors
import socket
import time

from common import Daemon, header, median, percentile

ATTACK_SECONDS_MAX = 120


def raise_own_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 65536
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def attacker(port, slow, idle, addresses, ready, stop, report):
    """Keep ``slow`` slowloris and ``idle`` idle connections open until ``stop`` is set."""
    raise_own_limit()
    selector = selectors.DefaultSelector()
    kinds = {}
    reopened = 0

    def open_one(kind, number):
        connection = socket.socket()
        connection.setblocking(True)
        connection.bind((addresses[number % len(addresses)], 0))
        connection.settimeout(5)
        try:
            connection.connect(("127.0.0.1", port))
        except OSError:
            connection.close()
            return
        connection.setblocking(False)
        if kind == "slow":
            connection.send(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        kinds[connection] = (kind, number)
        selector.register(connection, selectors.EVENT_READ)

    for number in range(slow):
        open_one("slow", number)
    for number in range(idle):
        open_one("idle", number)
    ready.set()
    deadline = time.monotonic() + ATTACK_SECONDS_MAX
    next_line = time.monotonic() + 5
    while not stop.is_set() and time.monotonic() < deadline:
        for key, _ in selector.select(0.2):
            connection = key.fileobj
            try:
                data = connection.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data or b"\r\n\r\n" in data:  # closed, or answered (408 or 503): reopen
                kind, number = kinds.pop(connection)
                selector.unregister(connection)
                connection.close()
                open_one(kind, number)
                reopened += 1
        if time.monotonic() >= next_line:
            next_line += 5
            for connection, (kind, _) in list(kinds.items()):
                if kind == "slow":
                    try:
                        connection.send(b"X-Slow: 1\r\n")
                    except OSError:
                        pass
        report.value = len(kinds) * 1_000_000 + min(reopened, 999_999)
    for connection in kinds:
        connection.close()
    selector.close()


def health_latencies(port, count):
    latencies, failures = [], 0
    request = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    for _ in range(count):
        started = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
                connection.sendall(request)
                answer = b""
                while True:
                    data = connection.recv(4096)
                    if not data:
                        break
                    answer += data
            ok = answer.startswith(b"HTTP/1.1 200")
        except OSError:
            ok = False
        elapsed = time.perf_counter() - started
        if ok:
            latencies.append(elapsed * 1000)
        else:
            failures += 1
        time.sleep(0.01)
    return latencies, failures


def show(label, latencies, failures):
    if not latencies:
        print("| %s | - | - | - | %d |" % (label, failures))
        return
    print(
        "| %s | %.1f ms | %.1f ms | %.1f ms | %d |"
        % (
            label,
            median(latencies),
            percentile(latencies, 0.99),
            max(latencies),
            failures,
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--one-address", action="store_true")
    args = parser.parse_args()
    raise_own_limit()
    header("GET /health under %d slow and %d idle connections" % (args.slow, args.idle))
    addresses = ["127.0.0.1"] if args.one_address else ["127.0.1.%d" % n for n in range(1, 21)]
    daemon = Daemon()
    stop = multiprocessing.Event()
    attack = None
    try:
        print("| attack | median | p99 | max | failed |")
        print("|---|---|---|---|---|")
        show("none", *health_latencies(daemon.port, args.requests))
        ready, report = multiprocessing.Event(), multiprocessing.Value("q", 0)
        attack = multiprocessing.Process(
            target=attacker,
            args=(daemon.port, args.slow, args.idle, addresses, ready, stop, report),
        )
        attack.start()
        if not ready.wait(60):
            raise SystemExit("the attacker could not open its connections in 60 s")
        time.sleep(1.0)  # let the daemon take them all in
        held_before = report.value // 1_000_000
        label = "%d slow + %d idle from %d address(es)" % (args.slow, args.idle, len(addresses))
        show(label, *health_latencies(daemon.port, args.requests))
        print(
            "attack connections open: %d when measuring began, %d at the end; reopened %d"
            % (held_before, report.value // 1_000_000, report.value % 1_000_000)
        )
    finally:
        stop.set()
        if attack is not None:
            attack.join(30)
            if attack.is_alive():
                attack.kill()
                attack.join()
        daemon.stop()


if __name__ == "__main__":
    main()
