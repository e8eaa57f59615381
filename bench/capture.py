"""Capture throughput: one model printing 2,000,000 lines of 100 bytes as fast as it can.

Three ways, same program (bench/gen_lines.py), same machine:
  direct       its stdout redirected to a file (``> file``): the ceiling
  modeld       deployed on a daemon, captured by its monitor into the log store
  supervisord  supervisord 4.x, installed from PyPI into a temporary venv

Reports the program's own wall time and the lines per second captured, and
checks that no line was lost. Targets (issue 3): modeld >= 50% of direct
throughput, >= 2x supervisord, 0 lines lost.

    python3 bench/capture.py [--lines N] [--skip-supervisord]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from common import ROOT, Daemon, header, install_supervisord, start_supervisord, supervisord_version

GENERATOR = os.path.join(ROOT, "bench", "gen_lines.py")


def elapsed_from(text):
    for line in text.splitlines():
        if line.startswith("elapsed "):
            return float(line.split()[1])
    raise SystemExit("the generator did not report its time: %r" % text[-300:])


def run_direct(lines, workdir):
    target = os.path.join(workdir, "direct.log")
    with open(target, "wb") as out:
        result = subprocess.run(
            [sys.executable, GENERATOR, str(lines)], stdout=out, stderr=subprocess.PIPE, text=True
        )
    wall = elapsed_from(result.stderr)
    with open(target, "rb") as handle:
        count = sum(1 for _ in handle)
    return {"wall": wall, "captured": count, "capture_seconds": wall}


def run_modeld(lines):
    from lib.logs import reader as logread

    daemon = Daemon()
    try:
        connection = daemon.connection()
        spec = {
            "name": "gen",
            "command": [sys.executable, GENERATOR, str(lines)],
            "restart": {"policy": "no"},
            "health": {"start_period": 0},
            "logs": {"max_bytes": 64 << 20, "backups": 64},
        }
        started = time.time()
        connection.request("POST", "/models", spec)
        connection.wait_status("gen", ("exited", "failed"))
        reader = logread.LogReader(os.path.join(daemon.home, "models", "gen", "logs"))
        count, first_ts, last_ts, wall, seqs_ok, previous = 0, None, None, None, True, None
        for entry in reader.forward(1):
            if previous is not None and entry.seq != previous + 1:
                seqs_ok = False
            previous = entry.seq
            if entry.stream == "o":
                count += 1
                first_ts = first_ts or entry.ts
                last_ts = entry.ts
            elif entry.stream == "e" and entry.msg.startswith(b"elapsed "):
                wall = float(entry.msg.split()[1])
        spawn = float(started)
        return {
            "wall": wall,
            "captured": count,
            "capture_seconds": (last_ts / 1e6) - spawn,
            "gapless": seqs_ok,
        }
    finally:
        daemon.stop()
        shutil.rmtree(daemon.home, ignore_errors=True)


def middle(results):
    """The round with the median program wall time."""
    return sorted(results, key=lambda result: result["wall"])[len(results) // 2]


def run_supervisord(lines, workdir, venv):
    out_log = os.path.join(workdir, "gen.out")
    err_log = os.path.join(workdir, "gen.err")
    for stale in (out_log, err_log):
        if os.path.exists(stale):
            os.unlink(stale)  # a fresh capture each round
    options = [
        "autostart=false",
        "autorestart=false",
        "startsecs=0",
        "stdout_logfile=%s" % out_log,
        "stdout_logfile_maxbytes=0",
        "stderr_logfile=%s" % err_log,
        "stderr_logfile_maxbytes=0",
    ]
    command = "%s %s %d" % (sys.executable, GENERATOR, lines)
    supervisorctl = start_supervisord(venv, workdir, ("gen", command), options)
    try:
        started = time.time()
        subprocess.run(supervisorctl + ["start", "gen"], check=True, capture_output=True)
        status = supervisorctl + ["status", "gen"]
        while "EXITED" not in subprocess.run(status, capture_output=True, text=True).stdout:
            time.sleep(0.2)
        with open(err_log) as handle:
            wall = elapsed_from(handle.read())
        with open(out_log, "rb") as handle:
            count = sum(1 for _ in handle)
        finished = os.path.getmtime(out_log)
    finally:
        subprocess.run(supervisorctl + ["shutdown"], capture_output=True)
    return {
        "wall": wall,
        "captured": count,
        "capture_seconds": finished - started,
        "version": supervisord_version(venv),
    }


def report(name, result, lines, direct_wall):
    rate = result["captured"] / result["capture_seconds"]
    print(
        "%-12s program wall %6.2f s   %9.0f lines/s captured   %5.1f%% of direct   lost %d%s"
        % (
            name,
            result["wall"],
            rate,
            100.0 * direct_wall / result["wall"],
            lines - result["captured"],
            "" if result.get("gapless", True) else "   SEQ GAP",
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--skip-supervisord", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    args = parser.parse_args()
    header("capture: %d lines of 100 bytes, median of %d rounds" % (args.lines, args.repeat))
    workdir = tempfile.mkdtemp(prefix="modeld-capture-")
    try:
        venv = None if args.skip_supervisord else install_supervisord(workdir)
        rounds = {"direct": [], "modeld": [], "supervisord": []}
        for _ in range(args.repeat):
            rounds["direct"].append(run_direct(args.lines, workdir))
            rounds["modeld"].append(run_modeld(args.lines))
            if venv:
                rounds["supervisord"].append(run_supervisord(args.lines, workdir, venv))
        direct, modeld = middle(rounds["direct"]), middle(rounds["modeld"])
        report("direct", direct, args.lines, direct["wall"])
        report("modeld", modeld, args.lines, direct["wall"])
        if venv:
            supervisor = middle(rounds["supervisord"])
            report("supervisord", supervisor, args.lines, direct["wall"])
            print("supervisord version %s" % supervisor["version"])
            print(
                "modeld vs supervisord: %.1fx the program's speed, %.1fx the capture rate"
                % (
                    supervisor["wall"] / modeld["wall"],
                    (modeld["captured"] / modeld["capture_seconds"])
                    / (supervisor["captured"] / supervisor["capture_seconds"]),
                )
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
