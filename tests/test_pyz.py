"""modeld.pyz: a reproducible single file that plays every role, on Python 3.9 and 3.11."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT, processes_tagged, unreachable_url, wait_until
from lib.core import procfs


@pytest.fixture(scope="module")
def pyz(tmp_path_factory):
    output = str(tmp_path_factory.mktemp("dist") / "modeld.pyz")
    subprocess.run(
        [sys.executable, os.path.join(ROOT, "build_zipapp.py"), "--output", output],
        check=True,
        capture_output=True,
    )
    return output


@pytest.fixture(scope="session")
def python39():
    """A CPython 3.9 from Debian bullseye (tools/get-python3.9.sh); cached in .cache/."""
    if os.environ.get("MODELD_SKIP_PY39"):
        pytest.skip("MODELD_SKIP_PY39 is set")
    result = subprocess.run(
        [
            "bash",
            os.path.join(ROOT, "tools", "get-python3.9.sh"),
            os.path.join(ROOT, ".cache", "python3.9"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        pytest.fail(
            "cannot provision Python 3.9 (set MODELD_SKIP_PY39=1 offline): %s"
            % result.stderr[-2000:]
        )
    return result.stdout.strip()


def test_the_build_is_reproducible_small_and_clean(pyz, tmp_path):
    again = str(tmp_path / "again.pyz")
    subprocess.run(
        [sys.executable, os.path.join(ROOT, "build_zipapp.py"), "--output", again],
        check=True,
        capture_output=True,
    )
    with open(pyz, "rb") as first, open(again, "rb") as second:
        data = first.read()
        assert data == second.read(), "two builds differ"
    assert data.startswith(b"#!/usr/bin/env python3\n")
    assert len(data) < 1024 * 1024
    assert os.stat(pyz).st_mode & 0o111
    with zipfile.ZipFile(pyz) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert not [name for name in names if name.endswith((".pyc", ".pyo")) or "__pycache__" in name]
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    for required in (
        "__main__.py",
        "lib/monitor/loop.py",
        "bottle.py",
        "cheroot/wsgi.py",
        "jaraco/__init__.py",
        "more_itertools/__init__.py",
        "modeld.py",
        "modelctl.py",
    ):
        assert required in names
    assert not [name for name in names if name.startswith(("cheroot/test/", "tests/"))]
    assert ROOT.encode() not in _uncompressed(pyz)


def _uncompressed(path):
    with zipfile.ZipFile(path) as archive:
        return b"".join(archive.read(name) for name in archive.namelist())


def test_ctl_and_a_modelctl_link_run_the_client(pyz, tmp_path):
    nowhere = unreachable_url()
    result = subprocess.run(
        [sys.executable, "-I", pyz, "ctl", "--json", "version"],
        capture_output=True,
        text=True,
        env=dict(os.environ, MODELD_HOST=nowhere),
    )
    assert json.loads(result.stdout)["client"]
    link = tmp_path / "modelctl"
    link.symlink_to(pyz)
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ["PATH"], MODELD_HOST=nowhere)
    result = subprocess.run([str(link), "ps"], capture_output=True, text=True, env=env)
    assert result.returncode == 3
    assert "modeld is not running at %s" % nowhere in result.stderr
    usage = subprocess.run([str(link), "--help"], capture_output=True, text=True, env=env)
    assert usage.stdout.startswith("usage: modelctl")


@pytest.mark.parametrize("interpreter", ["3.11", "3.9"])
def test_end_to_end_smoke(pyz, interpreter, request, home, tag):
    python = sys.executable if interpreter == "3.11" else request.getfixturevalue("python39")
    version = subprocess.run(
        [python, "-I", "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
    ).stdout
    assert version.strip() == str(tuple(int(part) for part in interpreter.split(".")))
    env = dict(os.environ, MODELD_HOME=home)
    env.pop("MODELD_HOST", None)
    env.pop("MODELD_TOKEN", None)

    def run(*args, check=True):
        result = subprocess.run(
            [python, "-I", pyz] + list(args), capture_output=True, text=True, env=env, timeout=120
        )
        if check:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    assert "modeld is running at http://127.0.0.1:" in run("start", "--port", "0").stdout
    try:
        spec = os.path.join(ROOT, "examples", "tiny-model.json")
        deployed = run("ctl", "deploy", "-f", spec, "--wait", "--timeout", "60")
        assert "ready at http://127.0.0.1:" in deployed.stdout
        listed = json.loads(run("ctl", "--json", "ps").stdout)["models"]
        assert [(model["name"], model["status"], model["ready"]) for model in listed] == [
            ("tiny", "running", True)
        ]
        assert "tiny" in run("ctl", "ps").stdout.splitlines()[1]
        monitor_pid, model_pid = listed[0]["monitor"]["pid"], listed[0]["pid"]
        with open("/proc/%d/cmdline" % monitor_pid, "rb") as handle:
            monitor = handle.read().split(b"\0")
        assert monitor[1:4] == [
            b"-I",
            pyz.encode(),
            b"monitor",
        ]  # the monitor runs from the same file
        wait_until(
            lambda: "model loaded" in run("ctl", "logs", "tiny", "-n", "50").stdout,
            message="the log",
        )
        stopped = run("ctl", "stop", "tiny")
        assert "tiny: stopped" in stopped.stdout
    finally:
        result = run("stop", "--models", check=False)
    assert result.returncode == 0
    assert run("status", check=False).returncode == 3
    wait_until(lambda: not processes_tagged(home), message="every process to end")
    assert not procfs.alive(model_pid)


# -- an interpreter too old (issue 10 #22) ----------------------------------------

# Run an entry point as __main__ under a faked version, the way an old python3 would reach it.
_AS_OLD_PYTHON = (
    "import runpy, sys; sys.version_info = (3, 8, 10, 'final', 0); "
    "sys.argv = [sys.argv[1]] + sys.argv[2:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


@pytest.mark.parametrize("entry", ["modeld.py", "modelctl.py", "modeld.pyz", "modelctl-link"])
def test_every_entry_point_refuses_python_older_than_3_9_with_one_line(entry, pyz, tmp_path):
    if entry == "modeld.pyz":
        path = pyz
    elif entry == "modelctl-link":
        path = str(tmp_path / "modelctl")
        os.symlink(pyz, path)
    else:
        path = os.path.join(ROOT, entry)
    for args in (["start", "--home", str(tmp_path / "home")], ["monitor", "--help"], ["ps"]):
        result = subprocess.run(
            [sys.executable, "-c", _AS_OLD_PYTHON, path] + args,
            capture_output=True,
            text=True,
            timeout=60,
        )
        program = "modelctl" if "modelctl" in entry else "modeld"
        assert result.returncode == 1, result.stderr
        assert result.stderr == "%s: needs Python 3.9 or newer; %s is Python 3.8.10\n" % (
            program,
            sys.executable,
        )
        assert result.stdout == ""
    assert not os.path.exists(str(tmp_path / "home"))  # refused before doing anything


def test_the_check_and_what_it_needs_parse_on_old_pythons(pyz):
    import ast

    from lib.core import interpreter

    assert interpreter.refusal("modeld", (3, 9, 0)) is None
    assert interpreter.refusal("modeld", (2, 7, 18), "/usr/bin/python") == (
        "modeld: needs Python 3.9 or newer; /usr/bin/python is Python 2.7.18"
    )
    with zipfile.ZipFile(pyz) as archive:
        sources = {"__main__.py": archive.read("__main__.py").decode()}
    for name in ("modeld.py", "modelctl.py", "lib/__init__.py", "lib/core/__init__.py"):
        with open(os.path.join(ROOT, name)) as handle:
            sources[name] = handle.read()
    with open(interpreter.__file__) as handle:
        sources["lib/core/interpreter.py"] = handle.read()
    for name, source in sources.items():
        ast.parse(source, name, feature_version=(3, 4))  # the oldest grammar ast knows
