"""How long `modelctl ps` takes, end to end, against a bare interpreter and supervisorctl.

  python3 -I -c pass                 the floor: starting the interpreter
  modelctl ps (modeld.pyz link)      the single-file install, one model deployed
  modelctl ps (checkout)             python3 modelctl.py ps (bytecode cached)
  supervisorctl status               supervisord 4.x with one program (venv from PyPI)

Median of 20 runs each, wall time. Targets (issue 4): under 2x the bare
interpreter start-up, and faster than supervisorctl.

    python3 bench/cli.py [--runs 20]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from common import (
    ROOT,
    Daemon,
    header,
    install_supervisord,
    median,
    percentile,
    start_supervisord,
)


def wall_times(command, runs, env=None):
    times = []
    for _ in range(runs + 2):
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, env=env)
        times.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise SystemExit("%s failed: %s" % (" ".join(command), result.stderr.decode()[-500:]))
    return times[2:]  # the first two warm the page cache


def show(name, times, floor):
    print(
        "%-34s median %6.1f ms   p90 %6.1f ms   %4.2fx the bare interpreter"
        % (name, 1000 * median(times), 1000 * percentile(times, 0.9), median(times) / floor)
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    header("modelctl ps wall time, median of %d runs" % args.runs)
    workdir = tempfile.mkdtemp(prefix="modeld-cli-")
    pyz = os.path.join(workdir, "modeld.pyz")
    subprocess.run(
        [sys.executable, os.path.join(ROOT, "build_zipapp.py"), "--output", pyz],
        check=True,
        capture_output=True,
    )
    link = os.path.join(workdir, "modelctl")
    os.symlink(pyz, link)
    daemon = Daemon()
    supervisorctl = None
    try:
        daemon.connection().request(
            "POST", "/models", {"name": "sleeper", "command": ["sleep", "100000"]}
        )
        env = dict(os.environ, MODELD_HOST=daemon.url, MODELD_TOKEN=daemon.token)
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
        bare = wall_times([sys.executable, "-I", "-c", "pass"], args.runs)
        floor = median(bare)
        show("python3 -I -c pass", bare, floor)
        show("modelctl ps (modeld.pyz link)", wall_times([link, "ps"], args.runs, env), floor)
        show(
            "modelctl ps (checkout)",
            wall_times([sys.executable, os.path.join(ROOT, "modelctl.py"), "ps"], args.runs, env),
            floor,
        )
        venv = install_supervisord(workdir)
        supervisorctl = start_supervisord(venv, workdir, ("sleeper", "sleep 100000"))
        wall_times(supervisorctl + ["status"], 1)
        show("supervisorctl status", wall_times(supervisorctl + ["status"], args.runs), floor)
    finally:
        daemon.stop()
        if supervisorctl:
            subprocess.run(supervisorctl + ["shutdown"], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(daemon.home, ignore_errors=True)


if __name__ == "__main__":
    main()
