"""The spec parser: every kind of bad input names its field; good input is normalized."""

import json
import os

import pytest

from lib.core import spec
from lib.errors import ValidationError


def valid(**extra):
    body = {"name": "m1", "command": ["python3", "-m", "http.server"]}
    body.update(extra)
    return body


def test_minimal_spec_gets_every_default():
    parsed = spec.parse_spec(valid())
    assert parsed["command"] == ["python3", "-m", "http.server"]
    assert parsed["env"] == {} and parsed["labels"] == {}
    assert parsed["cwd"] == "/"
    assert parsed["port"] is None
    assert parsed["restart"] == {
        "policy": "on-failure",
        "max_retries": 5,
        "backoff": 1.0,
        "backoff_max": 60.0,
        "reset_after": 60.0,
    }
    assert parsed["stop"] == {"signal": "SIGTERM", "timeout": 30}
    assert parsed["logs"] == {"max_bytes": spec.DEFAULT_LOG_MAX_BYTES, "backups": 5}
    assert parsed["health"]["start_period"] == spec.DEFAULT_START_PERIOD_NO_PROBE
    assert spec.probe_kind(parsed["health"]) is None


def test_a_normalized_spec_parses_to_itself():
    parsed = spec.parse_spec(valid(port="auto", health={"http": "/health"}, env={"A": "1"}))
    assert spec.parse_spec(parsed) == parsed


def test_string_command_is_split_like_a_shell_without_running_one():
    parsed = spec.parse_spec(valid(command="python3 -c 'print(1); print(2)' ; rm -rf /"))
    assert parsed["command"] == ["python3", "-c", "print(1); print(2)", ";", "rm", "-rf", "/"]


def test_log_defaults_come_from_the_daemon():
    parsed = spec.parse_spec(valid(), {"max_bytes": 4096, "backups": 2})
    assert parsed["logs"] == {"max_bytes": 4096, "backups": 2}


def test_stop_signal_is_normalized():
    assert spec.parse_spec(valid(stop={"signal": "int"}))["stop"]["signal"] == "SIGINT"


def test_port_placeholder_and_environment():
    parsed = spec.parse_spec(valid(command=["srv", "--port={port}"], port=8123, env={"X": "1"}))
    assert spec.resolve_command(parsed, 8123) == ["srv", "--port=8123"]
    daemon_env = {"PATH": "/bin", "MODELD_TOKEN": "secret", "PYTHONHOME": "/opt/py39"}
    env = spec.model_environment(daemon_env, parsed, 8123)
    assert env == {"PATH": "/bin", "X": "1", "PORT": "8123"}


BAD = [
    ("not an object", [], "body"),
    ("missing name", {"command": ["x"]}, "name"),
    ("name not a string", valid(name=5), "name"),
    ("name with a slash", valid(name="../etc"), "name"),
    ("name upper case", valid(name="Model"), "name"),
    ("name too long", valid(name="a" * 64), "name"),
    ("name empty", valid(name=""), "name"),
    ("missing command", {"name": "m"}, "command"),
    ("empty command", valid(command=[]), "command"),
    ("command not a list", valid(command={"a": 1}), "command"),
    ("command element not a string", valid(command=["x", 1]), "command[1]"),
    ("command with NUL", valid(command=["x\x00y"]), "command[0]"),
    ("unbalanced quotes", valid(command="python3 'oops"), "command"),
    ("empty program", valid(command=[""]), "command[0]"),
    ("unknown field", valid(colour="red"), "colour"),
    ("env not an object", valid(env=["A=1"]), "env"),
    ("env value not a string", valid(env={"A": 1}), "env.A"),
    ("env bad key", valid(env={"A-B": "1"}), "env.A-B"),
    ("relative cwd", valid(cwd="srv"), "cwd"),
    ("port zero", valid(port=0), "port"),
    ("port too big", valid(port=70000), "port"),
    ("port boolean", valid(port=True), "port"),
    ("port string", valid(port="8000"), "port"),
    ("placeholder without port", valid(command=["x", "{port}"]), "port"),
    ("http probe without port", valid(health={"http": "/health"}), "health"),
    ("two probes", valid(port="auto", health={"http": "/h", "tcp": True}), "health"),
    ("probe path", valid(port="auto", health={"http": "health"}), "health.http"),
    ("bad regex", valid(health={"log": "("}), "health.log"),
    ("interval zero", valid(health={"interval": 0}), "health.interval"),
    ("retries float", valid(health={"retries": 1.5}), "health.retries"),
    ("unknown health field", valid(health={"path": "/"}), "health.path"),
    ("bad policy", valid(restart={"policy": "sometimes"}), "restart.policy"),
    ("negative retries", valid(restart={"max_retries": -1}), "restart.max_retries"),
    (
        "backoff max below backoff",
        valid(restart={"backoff": 10, "backoff_max": 1}),
        "restart.backoff_max",
    ),
    ("NaN timeout", valid(stop={"timeout": float("nan")}), "stop.timeout"),
    ("huge timeout", valid(stop={"timeout": 10**9}), "stop.timeout"),
    ("bad signal", valid(stop={"signal": "SIGSEGV"}), "stop.signal"),
    ("tiny log size", valid(logs={"max_bytes": 10}), "logs.max_bytes"),
    ("labels not strings", valid(labels={"a": 1}), "labels.a"),
    ("restart not an object", valid(restart="always"), "restart"),
]


@pytest.mark.parametrize("case, body, field", BAD, ids=[case for case, _, _ in BAD])
def test_bad_specs_name_the_field(case, body, field):
    with pytest.raises(ValidationError) as raised:
        spec.parse_spec(body)
    assert raised.value.field == field
    assert raised.value.details["field"] == field
    assert field in raised.value.message


EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


@pytest.mark.parametrize(
    "name, probe",
    [
        ("vllm.json", "/v1/models"),
        ("llama-server.json", "/health"),
        ("mlflow.json", "/ping"),
        ("bentoml.json", "/readyz"),
        ("tgi.json", "/health"),
        ("gunicorn.json", None),
        ("generic-script.json", None),
        ("tiny-model.json", "/health"),
    ],
)
def test_example_specs_are_valid(name, probe):
    with open(os.path.join(EXAMPLES, name)) as handle:
        body = json.load(handle)
    if body.get("cwd") == ".":
        body["cwd"] = EXAMPLES  # modelctl resolves it against the file
    parsed = spec.parse_spec(body)
    assert parsed["port"] == "auto"
    assert parsed["health"].get("http") == probe
    if spec.probe_kind(parsed["health"]) == "http":
        assert spec.PORT_PLACEHOLDER in " ".join(parsed["command"])  # the server is told its port


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "m1\n"}, "name"),
        ({"env": {"KEY\n": "v"}}, "env.KEY\n"),
        ({"labels": {"team\n": "v"}}, "labels.team\n"),
    ],
    ids=["name", "env key", "label key"],
)
def test_a_trailing_newline_is_not_a_valid_name_or_key(body, field):
    # Issue 10 #24: `$` matches before a final newline; validation matches the whole string.
    with pytest.raises(ValidationError) as caught:
        spec.parse_spec(valid(**body))
    assert caught.value.details["field"] == field
