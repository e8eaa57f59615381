"""Issue 10 A: never losing control of a model (purge, dead monitors, races, full disks,
bad records, surrogates). Real processes where the failure is about real processes."""

import json
import os
import signal
import threading
import time

import pytest

from conftest import assert_error, model, processes_tagged, wait_until
from lib.core import procfs


def deploy(api, tag, name, script, *args, **extra):
    body = {"name": name, "command": model(script, *args, tag=tag), "health": {"start_period": 0}}
    body.update(extra)
    response = api.post_json("/models", body)
    assert response.status_int == 201, response.text
    return response.json


def status(api, name):
    return api.get("/models/%s" % name).json


def wait_status(api, name, *wanted, timeout=20):
    def check():
        body = status(api, name)
        return body if body["status"] in wanted else None

    return wait_until(check, timeout=timeout, message="%s to be %s" % (name, "/".join(wanted)))


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
