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
