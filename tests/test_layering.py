"""The layout is the architecture: packages by the process that runs them, imports pointing one
way, and the client and the monitor never loading bottle or cheroot.

    lib.cli                  front ends (modeld, modelctl), the Python client
      |
    lib.daemon               the daemon process: supervisor, registry, process shell
      |
    lib.api    lib.monitor   the daemon's HTTP front | the monitor process (siblings: neither
      |          |           imports the other; the daemon reaches monitors through files)
    lib.logs   lib.export    log store: levels, writer, reader, query | translators to other
      |          |           engines (pure text; served by the API, used by modelctl)
    lib.core                 vocabulary, spec, protocol, paths, files, time, /proc
      |
    lib.errors, lib.__version__
"""

import ast
import os
import subprocess
import sys

import pytest

from conftest import ROOT

# Which packages each package may import from (besides itself and lib.errors).
ALLOWED = {
    "core": set(),
    "logs": {"core"},
    "monitor": {"core", "logs"},
    "export": {"core"},
    "api": {"core", "logs", "export"},
    "daemon": {"core", "logs", "api"},
    "cli": {"core", "logs", "api", "daemon", "monitor", "export"},
}
# Inside a package, a module may import only those listed before it.
ORDER = {
    "core": [
        "interpreter",
        "vocabulary",
        "timefmt",
        "params",
        "paths",
        "redact",
        "fsutil",
        "tokens",
        "procfs",
        "system",
        "events",
        "presets",
        "identity",
        "limits",
        "allowexec",
        "spec",
        "labelselect",
        "nvidia",
        "protocol",
        "cgroups",
        "leftovers",
        "specdiff",
        "notify",
    ],
    "logs": ["levels", "records", "store", "reader", "diagnosis", "query", "merge"],
    "export": [
        "common",
        "yamltext",
        "hcltext",
        "source",
        "kubernetes",
        "nomad",
        "systemd",
        "slurm",
        "targets",
    ],
    "monitor": [
        "diagnostics",
        "forensics",
        "lifecycle",
        "activation",
        "relay",
        "probes",
        "proctree",
        "capture",
        "gpugate",
        "confinement",
        "reload",
        "loop",
        "zygote",
    ],
    "api": [
        "scopes",
        "ratelimit",
        "openapi",
        "metrics",
        "middleware",
        "connguard",
        "access",
        "observe",
        "declarative",
        "app",
        "server",
    ],
    "daemon": [
        "reconcile",
        "registry",
        "preflight",
        "privilege",
        "template",
        "launcher",
        "status",
        "statecache",
        "sampler",
        "gpus",
        "gpusampler",
        "telemetry",
        "eventfeed",
        "applyplan",
        "apply",
        "supervisor",
        "config",
        "process",
    ],
    "cli": [
        "client",
        "render",
        "spec_flags",
        "applying",
        "contexts",
        "exporting",
        "top",
        "modelctl",
        "modeld",
        "entry",
    ],
}
THIRD_PARTY = {
    "bottle": {"api.app", "api.observe", "api.access", "api.declarative"},
    "cheroot": {"api.server"},
}
MODULES = ["%s.%s" % (package, module) for package, names in ORDER.items() for module in names]


def imports_of(module):
    """``package.module`` names of lib imported by ``module``, and ``!name`` for the others."""
    with open(os.path.join(ROOT, "lib", *module.split(".")) + ".py") as handle:
        tree = ast.parse(handle.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] != "lib":
                found.add("!" + parts[0])
            elif len(parts) == 1:
                found.update(alias.name for alias in node.names)
            elif len(parts) == 2 and parts[1] in ORDER:
                found.update("%s.%s" % (parts[1], alias.name) for alias in node.names)
            else:
                found.add(".".join(parts[1:3]))
        elif isinstance(node, ast.Import):
            found.update("!" + alias.name.split(".")[0] for alias in node.names)
    return found


def test_the_order_lists_every_module():
    found = []
    for package in os.listdir(os.path.join(ROOT, "lib")):
        folder = os.path.join(ROOT, "lib", package)
        if os.path.isdir(folder) and package != "__pycache__":
            found += [
                "%s.%s" % (package, name[:-3])
                for name in os.listdir(folder)
                if name.endswith(".py") and name != "__init__.py"
            ]
    assert set(found) == set(MODULES)


def test_only_errors_and_the_packages_sit_at_the_top_of_lib():
    top = {
        name
        for name in os.listdir(os.path.join(ROOT, "lib"))
        if name.endswith(".py") or os.path.isdir(os.path.join(ROOT, "lib", name))
    }
    assert top - {"__pycache__"} == {"__init__.py", "errors.py"} | set(ORDER)


@pytest.mark.parametrize("module", MODULES)
def test_imports_point_downward(module):
    package, name = module.split(".")
    siblings = ORDER[package]
    below = {"%s.%s" % (package, other) for other in siblings[: siblings.index(name)]}
    below |= {other for other in MODULES if other.split(".")[0] in ALLOWED[package]}
    own = {found for found in imports_of(module) if not found.startswith("!")}
    assert own - {"errors", "__version__"} <= below, "%s imports %s from above it" % (
        module,
        sorted(own - below - {"errors", "__version__"}),
    )
    for third_party, allowed in THIRD_PARTY.items():
        if "!" + third_party in imports_of(module):
            assert module in allowed, "only %s may import %s" % (sorted(allowed), third_party)


def test_the_rule_catches_an_upward_import(tmp_path, monkeypatch):
    """The check above can fail: a monitor module importing the daemon is caught."""
    fake_root = tmp_path / "root"
    (fake_root / "lib" / "monitor").mkdir(parents=True)
    (fake_root / "lib" / "monitor" / "loop.py").write_text("from lib.daemon import supervisor\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", str(fake_root))
    with pytest.raises(AssertionError, match="from above it"):
        test_imports_point_downward("monitor.loop")


@pytest.mark.parametrize(
    "module", ["lib.cli.modelctl", "lib.cli.client", "lib.monitor.loop", "lib.cli.entry"]
)
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
