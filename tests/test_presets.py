"""Presets: defaults a user did not set, explicit fields winning, GET /presets, dry runs,
and a real gunicorn deployed with only a preset (when gunicorn is installed)."""

import importlib.util
import os
import shutil
import sys

import pytest

from conftest import wait_until
from lib.core import presets
from lib.core import spec as specs
from lib.errors import ValidationError


def resolved(body):
    return specs.parse_spec(dict({"name": "m"}, **body))


def test_vllm_gets_its_readiness_route_start_period_and_port_flag():
    spec = resolved({"preset": "vllm", "command": ["vllm", "serve", "/models/llama3"]})
    assert spec["command"] == ["vllm", "serve", "/models/llama3", "--port", "{port}"]
    assert spec["port"] == "auto"
    assert spec["health"]["http"] == "/v1/models"
    assert spec["health"]["start_period"] == 900
    assert spec["stop"]["timeout"] == 30
    assert spec["preset"] == "vllm"


def test_explicit_fields_always_win():
    spec = resolved(
        {
            "preset": "vllm",
            "command": "vllm serve m --port {port}",
            "port": 9000,
            "health": {"tcp": True, "interval": 7},
            "stop": {"timeout": 5},
        }
    )
    assert spec["command"].count("--port") == 1 and spec["port"] == 9000
    assert spec["health"]["tcp"] is True and "http" not in spec["health"]
    assert spec["health"]["interval"] == 7 and spec["health"]["start_period"] == 900
    assert spec["stop"]["timeout"] == 5


def test_gunicorn_binds_the_chosen_port_and_waits_for_its_worker():
    spec = resolved({"preset": "gunicorn", "command": ["gunicorn", "app:app"]})
    assert spec["command"][-2:] == ["--bind", "127.0.0.1:{port}"]
    assert spec["health"]["log"] == "Booting worker with pid"
    kept = resolved({"preset": "gunicorn", "command": ["gunicorn", "-b=0.0.0.0:80", "app:app"]})
    assert kept["command"] == ["gunicorn", "-b=0.0.0.0:80", "app:app"]


@pytest.mark.parametrize("wrong", ["nope", {}, 3, ["vllm"]])
def test_an_unknown_preset_is_a_validation_error_naming_the_field(wrong):
    with pytest.raises(ValidationError) as caught:
        resolved({"preset": wrong, "command": ["x"]})
    assert caught.value.details["field"] == "preset"


def test_every_preset_says_where_its_values_come_from():
    for name, preset in presets.describe().items():
        assert preset["source"] and preset["health"]["start_period"] > 0, name
        assert len([k for k in ("http", "tcp", "log") if k in preset["health"]]) == 1, name


def test_get_presets_and_a_dry_run_show_the_resolved_spec(api):
    listed = api.get("/presets").json["presets"]
    assert set(listed) == set(presets.NAMES)
    body = {"name": "dry", "preset": "llama.cpp", "command": [sys.executable, "-m", "x.gguf"]}
    shown = api.post_json("/models?dry_run=true", body).json
    assert shown["spec"]["health"]["http"] == "/health"
    assert shown["spec"]["command"][-2:] == ["--port", "{port}"]


def test_modelctl_deploy_preset_flag_builds_the_body():
    from lib.cli import modelctl, spec_flags

    argv, command = modelctl._split_command(
        ["deploy", "--preset", "vllm", "llm", "--", "vllm", "serve", "MODEL"]
    )
    args = modelctl.build_parser().parse_args(argv)
    args.command = command
    body = spec_flags.spec_from_args(args)
    assert body["preset"] == "vllm" and body["command"] == ["vllm", "serve", "MODEL"]


def gunicorn_executable():
    """gunicorn from the test environment (requirements-dev.txt), or from
    ``$TEST_GUNICORN`` (an executable in a throwaway venv), or None."""
    if os.environ.get("TEST_GUNICORN"):
        return os.environ["TEST_GUNICORN"]
    if importlib.util.find_spec("gunicorn") is None:
        return None
    candidate = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    return candidate if os.path.exists(candidate) else shutil.which("gunicorn")


WSGI_APP = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\\n"]
"""


@pytest.mark.skipif(gunicorn_executable() is None, reason="gunicorn is not installed")
def test_a_real_gunicorn_with_its_preset_becomes_ready_without_a_probe_field(api, tag, tmp_path):
    (tmp_path / "wsgi_app.py").write_text(WSGI_APP)
    body = {
        "name": "gunicorn-preset",
        "preset": "gunicorn",
        "command": [gunicorn_executable(), "--workers", "1", "wsgi_app:app", "--name", tag],
        "cwd": str(tmp_path),
    }
    response = api.post_json("/models?wait=true&timeout=60", body)
    assert response.status_int == 201
    assert response.json["ready"] and response.json["port"]
    assert "health" not in body
    lines = api.get("/models/gunicorn-preset/logs?tail=100").json["entries"]
    assert any("Booting worker with pid" in entry["msg"] for entry in lines)
    api.delete("/models/gunicorn-preset")
    wait_until(
        lambda: api.get("/models/gunicorn-preset").json["status"] == "stopped",
        message="gunicorn to stop",
    )
