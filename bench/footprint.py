"""Idle memory of the monitors and of the daemon, with 1, 30 and 100 sleeping models.

  python3 -I -S sleeping             the floor: a bare interpreter that sleeps
  monitor                            median and max RSS / PSS of one monitor, and
                                     the PSS of all monitors together (what they cost)
  daemon                             RSS / PSS of the daemon

RSS and PSS come from /proc/<pid>/smaps_rollup (PSS splits each shared page
between the processes that map it, so the sum of PSS is what N monitors
really cost). The models are tests/models/sleeper.py, deployed through the
HTTP API one by one; a count is measured once every model is running. The
daemon runs from the checkout and from dist/modeld.pyz (built here, run with
``python3 -I``, as on a server). Targets (Architecture issue): a monitor
<= 10 MiB RSS and <= 5 MiB PSS, the daemon with 100 models <= 40 MiB RSS.

    python3 bench/footprint.py [--counts 1,30,100] [--skip-pyz]
"""

import argparse
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from common import MODELD, ROOT, Daemon, header, median

SLEEPER = os.path.join(ROOT, "tests", "models", "sleeper.py")
DEADLINE = 300.0
MiB = 1 << 20


def memory(pid):
    """(RSS, PSS) in bytes, from /proc/<pid>/smaps_rollup."""
    values = {}
    with open("/proc/%d/smaps_rollup" % pid) as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                values[key] = int(rest.split()[0]) * 1024
    return values["Rss"], values["Pss"]


def bare_reference():
    """A bare interpreter that sleeps: (RSS, PSS) once it says it is up."""
    code = "import sys, time; sys.stdout.write('up\\n'); sys.stdout.flush(); time.sleep(3600)"
    process = subprocess.Popen([sys.executable, "-I", "-S", "-c", code], stdout=subprocess.PIPE)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 30)
        if not ready or process.stdout.readline() != b"up\n":
            raise SystemExit("the bare interpreter did not come up")
        return memory(process.pid)
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


def deploy(connection, home, first, last):
    """Models first..last-1; the home in their argv lets cleanup find any leftover."""
    for number in range(first, last):
        spec = {"name": "idle-%03d" % number, "command": [sys.executable, SLEEPER, home]}
        connection.request("POST", "/models", spec)


def wait_running(connection, count):
    """The models, once all ``count`` of them are running (polled, with a deadline)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        models = connection.request("GET", "/models")["models"]
        running = [m for m in models if m["status"] == "running" and m["monitor"]["pid"]]
        if len(running) == count:
            return running
        if any(m["status"] in ("failed", "exited") for m in models):
            raise SystemExit("a model did not start: %s" % [m["reason"] for m in models])
        time.sleep(0.2)
    raise SystemExit("%d models were not all running after %ds" % (count, DEADLINE))


def show(label, values):
    rss = [value[0] / MiB for value in values]
    pss = [value[1] / MiB for value in values]
    if len(values) == 1:
        print("  %-28s RSS %6.1f MiB   PSS %6.1f MiB" % (label, rss[0], pss[0]))
        return
    print(
        "  %-28s RSS median %5.1f max %5.1f MiB   PSS median %5.1f max %5.1f MiB   "
        "PSS of all %6.1f MiB" % (label, median(rss), max(rss), median(pss), max(pss), sum(pss))
    )


def measure(name, command, counts, zygote):
    env = dict(os.environ, MODELD_MONITOR_ZYGOTE="1" if zygote else "0")
    print("%s%s:" % (name, ", monitors forked from a template" if zygote else ""))
    daemon = Daemon(command=command, env=env)
    try:
        connection = daemon.connection()
        deployed = 0
        for count in counts:
            deploy(connection, daemon.home, deployed, count)
            deployed = count
            models = wait_running(connection, count)
            monitors = [memory(model["monitor"]["pid"]) for model in models]
            show("%3d models: monitor" % count, monitors)
            show("%3d models: daemon" % count, [memory(daemon.pid)])
            for pid in templates_of(daemon.pid):
                show("%3d models: template" % count, [memory(pid)])
    finally:
        daemon.stop()
        leftovers = stop_leftovers(daemon.home)
        shutil.rmtree(daemon.home, ignore_errors=True)
    if leftovers:
        raise SystemExit("%d process(es) outlived modeld stop --models" % leftovers)


def processes_naming(home, *words):
    """Pids of the processes whose argv holds the home (and every one of ``words``)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue  # it ended while we looked
        if home.encode() in argv and all(word in argv for word in words):
            found.append(int(entry))
    return found


def templates_of(daemon_pid):
    """The monitor template: the daemon's child that runs ``monitor-zygote``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % entry, "rb") as handle:
                parent = int(handle.read().rsplit(b")", 1)[1].split()[1])
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                argv = handle.read().split(b"\0")
        except (OSError, ValueError):
            continue  # not a process, or it ended while we looked
        if parent == daemon_pid and b"monitor-zygote" in argv:
            found.append(int(entry))
    return found


def stop_leftovers(home):
    """Kill what still names the home in its argv (none, if modeld stop did its job).

    Monitors forked from the template name the home in their title too.
    """
    deadline = time.monotonic() + 10
    while processes_naming(home) and time.monotonic() < deadline:
        time.sleep(0.05)
    leftovers = processes_naming(home)
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it ended on its own
    return len(leftovers)


def build_pyz(workdir):
    pyz = os.path.join(workdir, "modeld.pyz")
    subprocess.run(
        [sys.executable, os.path.join(ROOT, "build_zipapp.py"), "--output", pyz],
        check=True,
        capture_output=True,
    )
    return pyz


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,30,100")
    parser.add_argument("--skip-pyz", action="store_true")
    parser.add_argument(
        "--zygote",
        choices=("off", "on", "both"),
        default="both",
        help="MODELD_MONITOR_ZYGOTE: monitors started fresh, forked from a template, or both",
    )
    args = parser.parse_args()
    counts = [int(count) for count in args.counts.split(",")]
    header("idle memory of monitors and daemon (RSS / PSS from smaps_rollup)")
    show("python3 -I -S sleeping", [bare_reference()])
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.zygote]
    for zygote in modes:
        measure("checkout (python3 modeld.py)", MODELD, counts, zygote)
    if not args.skip_pyz:
        workdir = tempfile.mkdtemp(prefix="modeld-footprint-")
        try:
            pyz = build_pyz(workdir)
            for zygote in modes:
                measure("modeld.pyz (python3 -I)", [sys.executable, "-I", pyz], counts, zygote)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
