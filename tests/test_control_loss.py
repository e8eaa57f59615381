"""Issue 10 A: never losing control of a model (purge, dead monitors, races, full disks,
bad records, surrogates). Real processes where the failure is about real processes."""

import json
import os
import signal
import threading
import time

import pytest

from conftest import assert_error, deploy, model, processes_tagged, status, wait_status, wait_until
from lib.core import procfs

# -- item 8: a lone surrogate is refused, and a spawn failure ends in failed -------------


@pytest.mark.parametrize(
    "extra, field",
    [
        ({"command": ["python3", "\ud800"]}, "command[1]"),
        ({"env": {"A": "x\ud800"}}, "env.A"),
        ({"labels": {"team": "\udfff"}}, "labels.team"),
        ({"cwd": "/tmp/\ud800"}, "cwd"),
    ],
)
def test_a_lone_surrogate_is_refused_naming_the_field(api, tag, extra, field):
    body = dict({"name": "s", "command": model("sleeper.py", tag=tag)}, **extra)
    raw = json.dumps(body)  # valid JSON: the surrogate travels as \\ud800
    response = api.post("/models", raw, content_type="application/json", status="*")
    assert_error(response, 400, "validation_error", field)
    assert api.get("/models").status_int == 200
    assert processes_tagged(tag) == []


def test_a_surrogate_in_a_key_is_refused_with_an_answerable_field(api, tag):
    body = {"name": "s", "command": model("sleeper.py", tag=tag), "labels": {"\ud800": "x"}}
    response = api.post("/models", json.dumps(body), content_type="application/json", status="*")
    error = assert_error(response, 400, "validation_error")
    assert error["details"]["field"] == "labels.\\ud800"


# -- items 1-3: a purge is crash-safe; a stop whose monitor died still ends the model ------


def test_a_purge_interrupted_by_a_crash_never_brings_the_model_back(home, tag):
    """kill -9 of the daemon in the middle of the purge's removal: what is left on disk is
    the renamed directory holding only the previous generation (desired running)."""
    from lib.core import paths
    from lib.daemon.supervisor import Supervisor

    first = Supervisor(paths.Home(home), sample_interval=0.2)
    first.start()
    try:
        first.deploy({"name": "m", "command": model("sleeper.py", tag=tag)})
        first.stop("m", timeout=5)
    finally:
        first.shutdown()
    models = os.path.join(home, "models")
    doomed = os.path.join(models, ".purged-m-0123abcd")
    os.rename(os.path.join(models, "m"), doomed)
    os.remove(os.path.join(doomed, "deployment.json"))  # rmtree got that far
    assert os.path.exists(os.path.join(doomed, "deployment.json.prev"))

    second = Supervisor(paths.Home(home), sample_interval=0.2)
    second.start()
    try:
        assert second.names() == []
        assert not os.path.exists(doomed), "the purge is completed at start"
        time.sleep(1.5)  # a reconcile round: nothing may be started
        assert processes_tagged(tag) == []
    finally:
        second.shutdown(stop_models=True, timeout=5)


@pytest.mark.parametrize("purge", [False, True], ids=["stop", "purge"])
def test_a_stop_whose_monitor_dies_still_ends_every_process(api, tag, supervisor, purge):
    deploy(api, tag, "m", "ignore_term.py", stop={"timeout": 3})
    body = wait_until(lambda: status(api, "m")["pid"] and status(api, "m"), message="a pid")
    model_pid, monitor_pid = body["pid"], body["monitor"]["pid"]
    answers = []
    path = "/models/m" + ("?purge=true" if purge else "")
    stopper = threading.Thread(target=lambda: answers.append(api.delete(path, status="*")))
    stopper.start()
    wait_status(api, "m", "stopping")
    os.kill(monitor_pid, signal.SIGKILL)  # the model ignores SIGTERM: it outlives its monitor
    stopper.join(60)
    (answer,) = answers
    assert answer.status_int == 200, answer.text
    assert not procfs.alive(model_pid), "DELETE answered while the model still runs"
    assert processes_tagged(tag) == []
    if purge:
        assert api.get("/models/m", status="*").status_int == 404
        assert not os.path.exists(supervisor.home.model("m").root)
    else:
        assert status(api, "m")["status"] == "stopped"


# -- item 4: concurrent restarts and a stop: the stop wins, the desired state is enforced ----


def test_concurrent_restarts_and_a_stop_never_lose_the_stop(api, tag, supervisor):
    deploy(api, tag, "m", "sleeper.py", stop={"timeout": 5})
    wait_status(api, "m", "running")
    answers, barrier = [], threading.Barrier(7)

    def restart():
        barrier.wait()
        answers.append(api.post("/models/m/restart", status="*"))

    def stop():
        barrier.wait()
        time.sleep(0.02)  # among the restarts, not before them
        answers.append(("stop", api.delete("/models/m", status="*")))

    threads = [threading.Thread(target=restart) for _ in range(6)]
    threads.append(threading.Thread(target=stop))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    stops = [answer for kind, answer in (a for a in answers if isinstance(a, tuple))]
    restarts = [answer for answer in answers if not isinstance(answer, tuple)]
    assert stops[0].status_int == 200, stops[0].text
    assert all(answer.status_int in (200, 409) for answer in restarts), [
        answer.text for answer in restarts if answer.status_int not in (200, 409)
    ]

    # Whatever the order, the persisted desired state is what runs, once reconcile looked.
    def settled():
        body = status(api, "m")
        running = body["status"] in ("starting", "running", "backoff", "stopping")
        return body if running == (body["desired"] == "running") else None

    body = wait_until(settled, timeout=20, message="the desired state to be enforced")
    if body["desired"] == "stopped":
        wait_until(lambda: processes_tagged(tag) == [], message="no process of a stopped model")


def test_reconcile_stops_a_model_whose_stop_was_lost(api, tag, supervisor):
    """desired=stopped persisted while the model runs (a stop overtaken by a restart)."""
    deploy(api, tag, "m", "sleeper.py", stop={"timeout": 5})
    wait_status(api, "m", "running")
    record = supervisor.record("m")
    record.desired = "stopped"
    supervisor.registry.save(record)  # as if the stop's control.json had been replaced
    wait_status(api, "m", "stopped", timeout=10)
    wait_until(lambda: processes_tagged(tag) == [], message="no process of a stopped model")


# -- item 5: a full disk or a read-only model directory: a stop still reaches the model -----


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (root only: CI runs as root); skipped where it cannot be mounted."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)])
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield str(mount)
    subprocess.run(["umount", "-l", str(mount)])


def fill(directory):
    """Write until the file system is full."""
    with open(os.path.join(directory, "filler"), "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass


def bind_read_only(directory):
    """The directory as a read-only bind mount of itself (files open already stay open)."""
    import subprocess

    subprocess.run(["mount", "--bind", directory, directory], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", directory], check=True)


def disk_api(home):
    import webtest

    from conftest import TOKEN
    from lib.api import app as api_module
    from lib.core import paths
    from lib.daemon.supervisor import Supervisor

    instance = Supervisor(paths.Home(home), sample_interval=0.2)
    instance.start()
    app = api_module.make_app(instance, api_module.Settings(token=TOKEN, version="test"))
    environ = {"HTTP_AUTHORIZATION": "Bearer " + TOKEN, "REMOTE_ADDR": "127.0.0.1"}
    return instance, webtest.TestApp(app, extra_environ=environ)


@pytest.mark.parametrize("damage", ["full", "read-only"])
def test_a_stop_reaches_the_model_on_a_broken_disk(small_disk, tag, damage):
    home = os.path.join(small_disk, "home")
    os.mkdir(home)
    supervisor, api = disk_api(home)
    try:
        deploy(api, tag, "m", "sleeper.py", stop={"timeout": 5})
        wait_status(api, "m", "running")
        if damage == "full":
            fill(small_disk)
        else:
            bind_read_only(os.path.join(home, "models", "m"))
        restart = api.post("/models/m/restart", status="*")
        assert_error(restart, 507, "insufficient_storage")
        answer = api.delete("/models/m", status="*")
        error = assert_error(answer, 507, "insufficient_storage")
        cause = "No space left on device" if damage == "full" else "Read-only file system"
        assert cause in error["message"] and error["details"]["cause"] == cause
        assert processes_tagged(tag) == [], "the stop must reach the model anyway"
        assert api.get("/models").status_int == 200
    finally:
        import subprocess

        if damage == "read-only":
            subprocess.run(["umount", os.path.join(home, "models", "m")])
        if os.path.exists(os.path.join(small_disk, "filler")):
            os.remove(os.path.join(small_disk, "filler"))
        supervisor.shutdown(stop_models=True, timeout=5)


def test_modeld_stop_models_reports_each_model_it_could_not_stop(small_disk, tag):
    from conftest import RunningDaemon

    home = os.path.join(small_disk, "home")
    os.mkdir(home)
    running = RunningDaemon(home)
    running.start()
    try:
        client = running.client()
        client.deploy({"name": "m", "command": model("sleeper.py", tag=tag)})
        wait_until(lambda: client.get("m")["status"] == "running", message="m running")
        bind_read_only(os.path.join(home, "models", "m"))
        done = running.stop(models=True)
        assert done.returncode != 0, done.stdout + done.stderr
        assert "'m'" in done.stderr and "could not be recorded" in done.stderr
        assert processes_tagged(tag) == [], "the stop still reached the model"
    finally:
        import subprocess

        subprocess.run(["umount", os.path.join(home, "models", "m")])
        if fsutil_locked(home):
            running.stop(models=True)


def fsutil_locked(home):
    from lib.core import fsutil

    return fsutil.is_locked(os.path.join(home, "modeld.lock"))


# -- item 6: a bad deployment record is skipped, reported, and never hides a live monitor ----


def test_a_bad_record_is_skipped_reported_and_its_monitor_stopped_on_redeploy(home, tag):
    from lib.core import paths
    from lib.daemon.supervisor import Supervisor

    first = Supervisor(paths.Home(home), sample_interval=0.2)
    first.start()
    try:
        first.deploy({"name": "good", "command": model("sleeper.py", tag=tag)})
        first.deploy({"name": "bad", "command": model("sleeper.py", "old", tag=tag)})
        old_pid = wait_until(lambda: first.describe("bad")["pid"], message="bad's pid")
    finally:
        first.shutdown()  # the models keep running
    record = os.path.join(home, "models", "bad", "deployment.json")
    with open(record, "w") as handle:
        json.dump({"spec": None, "run": "1"}, handle)  # valid JSON, wrong shape
    if os.path.exists(record + ".prev"):
        os.remove(record + ".prev")  # a damaged first generation

    second = Supervisor(paths.Home(home), sample_interval=0.2)
    second.start()  # never fatal to the others
    try:
        assert second.names() == ["good"]
        listed = {entry["name"]: entry for entry in second.list()}
        assert listed["good"]["status"] in ("starting", "running")
        assert listed["good"]["monitor"]["alive"]
        assert listed["bad"]["status"] == "broken" and listed["bad"]["broken"]
        assert "spec" in listed["bad"]["reason"]
        second.deploy({"name": "bad", "command": model("sleeper.py", "new", tag=tag)})
        assert not procfs.alive(old_pid), "the old process must not answer for the new deploy"
        body = wait_until(lambda: second.describe("bad")["pid"], message="the new model")
        assert body != old_pid
        assert "new" in " ".join(procfs.cmdline(body))
    finally:
        second.shutdown(stop_models=True, timeout=5)
