"""A home written by the previous release, with its models and monitors running, is adopted
by this code with the same pids, and the old monitors still obey this daemon.

The previous release is the last commit before lib/ became packages, taken from this
repository's own history (``git archive``), so the fixture is the real old code rather
than a description of it.
"""

import os
import subprocess
import sys
import tarfile

import pytest

from conftest import ROOT, RunningDaemon, model, wait_until
from lib.core import procfs

# The last commit of the flat lib/ layout (round one's release).
PREVIOUS_RELEASE = "4b80710"


@pytest.fixture
def previous_release(tmp_path):
    """A checkout of the previous release in ``tmp_path/old``."""
    archive = tmp_path / "old.tar"
    result = subprocess.run(
        ["git", "-C", ROOT, "archive", "-o", str(archive), PREVIOUS_RELEASE],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("CI needs the git history for this test: %s" % result.stderr.strip())
        pytest.skip("no git history here (%s)" % result.stderr.strip())
    target = tmp_path / "old"
    with tarfile.open(archive) as bundle:
        # The "data" filter where this Python has it (3.12+ warns without a filter).
        options = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        bundle.extractall(target, **options)
    return str(target)


class OldDaemon(RunningDaemon):
    """``modeld start`` of the previous release, on the same home."""

    def __init__(self, root, home):
        super().__init__(home)
        self.command = [sys.executable, os.path.join(root, "modeld.py")]

    def start(self, check=True):
        result = subprocess.run(
            self.command + ["start", "--home", self.home, "--port", "0"] + self.extra,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        self.reload()
        return result

    def stop(self, models=True):
        args = ["stop", "--home", self.home] + (["--models"] if models else [])
        return subprocess.run(self.command + args, capture_output=True, text=True, timeout=120)


def _pids(client):
    return {
        item["name"]: (item["status"], item["pid"], item["monitor"]["pid"])
        for item in client.list()
    }


def test_a_home_of_the_previous_release_is_adopted_with_the_same_pids(
    previous_release, daemon, home, tag
):
    old = OldDaemon(previous_release, home)
    old.start()
    client = old.client()
    for name in ("a", "b"):
        spec = {"name": name, "command": model("ticker.py", 0.2, tag=tag)}
        spec["health"] = {"start_period": 0}
        client.deploy(spec)
    wait_until(
        lambda: {status for status, _, _ in _pids(client).values()} == {"running"},
        message="both models running under the old release",
    )
    before = _pids(client)
    monitor_command = " ".join(procfs.cmdline(before["a"][2]))
    assert previous_release in monitor_command, "the monitor runs the old code"
    assert old.stop(models=False).returncode == 0

    daemon.start()
    client = daemon.client()
    assert _pids(client) == before, "a model or monitor was replaced on upgrade"
    # The old monitor obeys the new daemon: a stop ends its model, a start brings a new one.
    stopped = client.stop("a")
    assert stopped["status"] == "stopped"
    wait_until(lambda: not os.path.exists("/proc/%d" % before["a"][1]), message="a's model gone")
    started = client.start("a", wait=True, timeout=30)
    assert started["status"] == "running" and started["pid"] != before["a"][1]
    assert _pids(client)["b"] == before["b"], "b was touched"
