"""Imports point downward, and the client and the monitor never load bottle or cheroot."""

import ast
import os
import subprocess
import sys

import pytest

from conftest import ROOT

# Every module of lib/, lowest first: a module may import only those before it.
ORDER = [
    "errors",
    "states",
    "timefmt",
    "params",
    "paths",
    "redact",
    "fsutil",
    "procfs",
    "levels",
    "forensics",
    "events",
    "spec",
    "logstore",
    "logread",
    "logquery",
    "lifecycle",
    "probes",
    "proctree",
    "capture",
    "monitor",
    "registry",
    "preflight",
    "launcher",
    "status",
    "metrics",
    "supervisor",
    "ratelimit",
    "openapi",
    "middleware",
    "api",
    "server",
    "config",
    "daemon",
    "cli_modeld",
    "client",
    "render",
    "cli_spec",
    "cli_modelctl",
    "entry",
]
THIRD_PARTY = {"bottle": {"api"}, "cheroot": {"server"}}


def imports_of(module):
    with open(os.path.join(ROOT, "lib", module + ".py")) as handle:
        tree = ast.parse(handle.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "lib":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("lib."):
                found.add(node.module.split(".")[1])
            else:
                found.add("!" + node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update("!" + alias.name.split(".")[0] for alias in node.names)
    return found


def test_the_order_lists_every_module():
    modules = {name[:-3] for name in os.listdir(os.path.join(ROOT, "lib")) if name.endswith(".py")}
    assert modules - {"__init__"} == set(ORDER)


@pytest.mark.parametrize("module", ORDER)
def test_imports_point_downward(module):
    below = set(ORDER[: ORDER.index(module)]) | {"__version__"}
    own = {name for name in imports_of(module) if not name.startswith("!")}
    assert own <= below, "%s imports %s from above it" % (module, sorted(own - below))
    for package, allowed in THIRD_PARTY.items():
        if "!" + package in imports_of(module):
            assert module in allowed, "only %s may import %s" % (sorted(allowed), package)


@pytest.mark.parametrize("module", ["lib.cli_modelctl", "lib.client", "lib.monitor", "lib.entry"])
def test_client_and_monitor_paths_stay_light(module):
    code = (
        "import sys, %s; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('bottle', 'cheroot')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code % module], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
