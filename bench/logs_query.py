"""Log queries on a 1 GiB log across rotated files, through the daemon's HTTP API.

Fills a stopped model's log store with ~10.7 million entries (about 100 bytes
each; 1 ms apart, so ~3 hours; 1% errors, 5% warnings; 64 MiB files), then
times, over a keep-alive connection:

  tail=100                        the newest 100 entries
  window                          a one-minute window in the middle (first page, 100)
  level=error&limit=100           the first 100 errors
  paging                          100,000 entries, 1,000 a page, with cursors
  grep -c                         GNU grep counting ERROR over the same files, for scale
  follow latency                  from a model's print() to a follower receiving it

Targets (issue 3): tail and window under 50 ms.

    python3 bench/logs_query.py [--gib 1.0] [--rounds 21]
"""

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse

from common import Daemon, header, median, percentile

from lib.core import timefmt
from lib.logs import reader as logread
from lib.logs import store as logstore

ENTRY_BYTES = 100


def fill(logs_dir, gib):
    """Write ``gib`` GiB of entries with the real writer; return (first ts, last ts)."""
    start = timefmt.now_us() - 4 * 3600 * 1_000_000
    clock = [start]
    writer = logstore.LogWriter(logs_dir, 64 << 20, 1000, lambda: clock[0])
    header_len = len(b"10000000 1764000000000000 oi. \n")
    pad = b"x" * (ENTRY_BYTES - header_len - 24)
    total = int(gib * (1 << 30)) // ENTRY_BYTES
    batch = 1000
    for first in range(0, total, batch):
        msgs, codes = [], []
        for number in range(first, min(first + batch, total)):
            if number % 100 == 7:
                codes.append(b"e")
                msgs.append(b"ERROR request %09d failed %s" % (number, pad[:-6]))
            elif number % 20 == 3:
                codes.append(b"w")
                msgs.append(b"WARNING slow request %09d %s" % (number, pad[:-5]))
            else:
                codes.append(b"i")
                msgs.append(b"INFO request %09d served %s" % (number, pad))
        clock[0] += 1000 * batch  # 1 ms per entry; one timestamp per batch, as a real burst
        writer.append_batch("o", codes, msgs)
    writer.close()
    return start, clock[0]


def timed_rounds(connection, path, rounds):
    times = []
    for _ in range(rounds):
        elapsed, body = connection.timed("GET", path)
        times.append(elapsed)
    return times, body


def show(name, times, extra=""):
    print(
        "%-26s median %7.1f ms   p90 %7.1f ms%s"
        % (name, 1000 * median(times), 1000 * percentile(times, 0.9), extra)
    )


def follow_latency(daemon, samples=200):
    connection = daemon.connection()
    program = "import time\nwhile True:\n    print('t %.6f' % time.time(), flush=True)\n"
    spec = {
        "name": "ticker",
        "command": [sys.executable, "-c", program + "    time.sleep(0.05)"],
        "health": {"start_period": 0},
    }
    connection.request("POST", "/models", spec)
    import http.client

    stream = http.client.HTTPConnection(daemon.host, daemon.port, timeout=60)
    stream.request(
        "GET",
        "/models/ticker/logs?follow=true&stream=stdout&tail=0",
        headers={"Authorization": "Bearer " + daemon.token},
    )
    response = stream.getresponse()
    delays = []
    while len(delays) < samples:
        line = response.readline()
        if not line.strip():
            continue
        written = float(line.split(b'"msg":"t ')[1].split(b'"')[0])
        delays.append(time.time() - written)
    stream.close()
    connection.request("DELETE", "/models/ticker")
    return delays


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    header("log queries on %.1f GiB across rotated files, %d rounds each" % (args.gib, args.rounds))
    daemon = Daemon()
    try:
        connection = daemon.connection()
        spec = {"name": "big", "command": ["sleep", "1000"], "restart": {"policy": "no"}}
        connection.request("POST", "/models", spec)
        connection.request("DELETE", "/models/big?timeout=0")
        logs_dir = os.path.join(daemon.home, "models", "big", "logs")
        # Start from an empty store: the writer never lets ts go back behind what it holds.
        shutil.rmtree(logs_dir)
        started = time.monotonic()
        first_ts, last_ts = fill(logs_dir, args.gib)
        reader = logread.LogReader(logs_dir)
        files = [segment.path for segment in reader.segments()]
        size = sum(os.path.getsize(path) for path in files)
        print(
            "filled %.2f GiB in %d files in %.0f s"
            % (size / 2**30, len(files), time.monotonic() - started)
        )

        times, body = timed_rounds(connection, "/models/big/logs?tail=100", args.rounds)
        assert len(body["entries"]) == 100
        show("tail=100", times)

        middle = (first_ts + last_ts) // 2
        window = "since=%s&until=%s" % (
            urllib.parse.quote(timefmt.format_us(middle)),
            urllib.parse.quote(timefmt.format_us(middle + 60_000_000)),
        )
        times, body = timed_rounds(connection, "/models/big/logs?" + window, args.rounds)
        assert len(body["entries"]) == 100 and body["has_more"]
        show("one-minute window", times)

        times, body = timed_rounds(
            connection, "/models/big/logs?level=error&limit=100", args.rounds
        )
        assert len(body["entries"]) == 100 and {e["level"] for e in body["entries"]} == {"error"}
        show("level=error limit=100", times)

        page_times, cursor, total = [], None, 0
        while total < 100_000:
            path = "/models/big/logs?limit=1000" + ("&cursor=" + cursor if cursor else "")
            elapsed, body = connection.timed("GET", path)
            page_times.append(elapsed)
            total += len(body["entries"])
            cursor = body["next_cursor"]
        show(
            "paging (per 1,000-entry page)",
            page_times,
            "   100,000 entries in %.2f s" % sum(page_times),
        )

        grep_times = []
        for _ in range(3):
            began = time.perf_counter()
            subprocess.run(["grep", "-c", "ERROR"] + files, capture_output=True)
            grep_times.append(time.perf_counter() - began)
        show("grep -c ERROR (3 rounds)", grep_times)

        delays = follow_latency(daemon)
        print(
            "%-26s median %7.1f ms   p99 %7.1f ms   max %.1f ms (200 lines)"
            % (
                "follow latency",
                1000 * median(delays),
                1000 * percentile(delays, 0.99),
                1000 * max(delays),
            )
        )
    finally:
        daemon.stop()
        subprocess.run(["rm", "-rf", daemon.home])


if __name__ == "__main__":
    threading.stack_size(1 << 20)
    main()
