"""A monitor runs per model, so what it imports is paid once per model: keep it to a budget.

The import path is the one ``lib.cli.entry`` takes for ``modeld monitor`` and
for the monitor template (``monitor-zygote``), run in a fresh ``python3 -I -S``.
Names are top-level modules; C accelerators (``_json``, ``_sre``, ...) follow
their public module and are left out. Figures: ``bench/footprint.py``.
Also here: the template reports a crash of a forked monitor in its monitor.log.
"""

import json
import subprocess
import sys

import pytest

from conftest import MODELD, ROOT
from lib.core import protocol

# What a monitor runs, and why each is there. Adding a name here is a decision:
# say what it costs (python3 -X importtime, bench/footprint.py) and why it must.
STDLIB_BUDGET = frozenset(
    {
        # the interpreter's own start-up without site (-S), and the os module site would load
        "os", "stat", "posixpath", "genericpath", "atexit",
        # spawning the model, and the one selector loop over its pipes, probe and signals
        "subprocess", "selectors", "select", "signal", "threading", "contextlib", "warnings",
        "locale",
        # the state file, events and control file are JSON; levels, redaction and probes use re
        "json", "re", "enum", "functools", "operator", "collections", "keyword", "reprlib",
        "itertools", "types", "copyreg", "weakref",
        # the HTTP/TCP health probe
        "socket", "array",
        # locks (flock), errno checks, the command split of a string spec (shlex)
        "fcntl", "errno", "shlex",
        # spec: resolving the stop signal and numbers
        "math",
        # the template freezes the collector before it forks (gc.freeze)
        "gc",
        # nvidia-smi answers in CSV (the VRAM gate and the release check run in the monitor)
        "csv",
    }
)  # fmt: skip

# Deliberately absent: argparse (the launcher writes the argv), secrets/hashlib (they map
# libcrypto: +3.8 MiB RSS), calendar/datetime (only log queries parse times), logging
# (+0.8 MiB: lib.monitor.diagnostics writes the few lines), ipaddress and the rate
# limiter (daemon configuration), bottle and cheroot. ctypes (prctl) loads on first use.
LIB_BUDGET = frozenset(
    {
        "lib.cli", "lib.cli.entry", "lib.core", "lib.core.events", "lib.core.fsutil",
        "lib.core.paths", "lib.core.procfs", "lib.core.protocol", "lib.core.redact",
        "lib.core.system", "lib.core.timefmt", "lib.core.vocabulary", "lib.logs",
        "lib.logs.levels", "lib.logs.store", "lib.monitor", "lib.monitor.capture",
        "lib.monitor.diagnostics", "lib.monitor.forensics", "lib.monitor.lifecycle",
        "lib.monitor.loop", "lib.monitor.probes", "lib.monitor.proctree", "lib.monitor.zygote",
        # least privilege before every spawn: the allow-list, the user, limits and cgroups
        # (pure Python; hashlib, glob, shutil and resource load only where they are used)
        "lib.monitor.confinement", "lib.core.identity", "lib.core.limits",
        "lib.core.allowexec", "lib.core.cgroups",
        # spec is imported for three small functions; it brings errors with it
        "lib.core.spec", "lib.errors",
        # the VRAM gate before a start and the release check after a stop
        "lib.core.nvidia", "lib.monitor.gpugate",
        # in-place updates: the settings a monitor rereads on SIGUSR1 (no new stdlib module)
        "lib.monitor.reload",
        # an exit's diagnosis reads the run's output back from the log store; records
        # track which entry a continuation line belongs to
        "lib.logs.diagnosis", "lib.logs.reader", "lib.logs.records",
        # on-demand models: the activation decisions (pure, a few KB); the relay itself
        # (lib.monitor.relay) is imported only by a monitor whose spec has activation
        "lib.monitor.activation",
        # stopping what a dead monitor left: moved out of proctree so the daemon shares it
        "lib.core.leftovers",
        # one datagram after each state write tells the daemon to read it (socket: already
        # here for the probe)
        "lib.core.notify",
    }
)  # fmt: skip

SCRIPT = """
import json, sys
before = set(sys.modules)
sys.path.insert(0, %r)
for module in sys.argv[1:]:
    __import__(module)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def imported_by(*modules):
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", SCRIPT % ROOT, *modules],
        capture_output=True,
        text=True,
        check=True,
    )
    names = json.loads(result.stdout)
    stdlib = {name.split(".")[0] for name in names if not name.startswith(("_", "lib"))}
    return stdlib, {name for name in names if name.startswith("lib.")}


@pytest.mark.parametrize(
    "path",
    [
        ("lib.cli.entry", "lib.monitor.loop"),
        ("lib.cli.entry", "lib.monitor.zygote", "lib.monitor.loop"),
    ],
)
def test_monitor_imports_stay_within_budget(path):
    stdlib, ours = imported_by(*path)
    assert stdlib - STDLIB_BUDGET == set(), "new standard modules on the monitor's path"
    assert ours - LIB_BUDGET == set(), "new lib modules on the monitor's path"


def test_a_crash_in_a_forked_monitor_is_in_its_log(tmp_path):
    """No deployment directory: the monitor fails taking its lock, and says so in monitor.log."""
    monitor_log = tmp_path / "monitor.log"
    template = subprocess.Popen(
        MODELD + ["monitor-zygote"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        request = protocol.template_request(str(tmp_path / "home"), "m", 1, False, str(monitor_log))
        template.stdin.write(request)
        template.stdin.flush()
        answers = [protocol.read_template_answer(template.stdout.readline()) for _ in range(2)]
    finally:
        template.stdin.close()
        assert template.wait(timeout=10) == 0  # EOF ends the template
        template.stdout.close()
    assert [answer[0] for answer in answers] == ["started", "exited"]
    assert answers[1][2] == protocol.EXIT_FAILED
    text = monitor_log.read_text()
    assert "crashed" in text and "Traceback" in text and "monitor.lock" in text
