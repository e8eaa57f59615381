"""The API contract: a valid OpenAPI document that matches the code, fuzzed with schemathesis."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import MODELD, RunningDaemon
from lib.api import openapi

FUZZ_PATH = "/nonexistent-modeld-fuzz"  # generated commands must not resolve real programs


def test_the_document_is_valid_openapi_3():
    from openapi_spec_validator import validate

    validate(openapi.document("test"))


def test_every_error_code_is_documented_in_the_readme():
    from lib import errors

    with open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "README.md")) as handle:
        readme = handle.read()
    for cls in errors.all_error_classes():
        if cls.code != "error":
            assert "`%s`" % cls.code in readme, "README's error table lacks %s" % cls.code


@pytest.fixture
def fuzz_target(home, tag):
    env = dict(os.environ, PATH=FUZZ_PATH)
    result = subprocess.run(
        MODELD + ["start", "--home", home, "--port", "0", "--rate-limit", "off"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    daemon = RunningDaemon(home)
    daemon.reload()
    # The schema's example name, so the fuzzer reaches more than 404s.
    spec = {
        "name": openapi.NAME_EXAMPLE,
        "command": [sys.executable, "-c", "import time; time.sleep(3600)", "--tag", tag],
        "stop": {"timeout": 2},
    }
    daemon.client().deploy(spec)
    yield daemon
    daemon.stop(models=True)


def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzz_target, tmp_path):
    # follow=true streams until the model stops (tests/test_logs_api.py covers it):
    # a fuzzer waiting for the end of each response would only time out.
    (tmp_path / "schemathesis.toml").write_text('[parameters]\n"query.follow" = "false"\n')
    binary = shutil.which("schemathesis") or os.path.join(
        os.path.dirname(sys.executable), "schemathesis"
    )
    command = [
        binary,
        "run",
        fuzz_target.url + "/openapi.json",
        "-H",
        "Authorization: Bearer " + fuzz_target.token,
        "--checks",
        "all",
        # A schema-valid spec whose program is not installed is rightly refused (400):
        # that is a fact about the machine, not one a schema can state.
        "--exclude-checks",
        "positive_data_acceptance",
        "--max-examples",
        "60",
        "--seed",
        "20261125",
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "60",
        "--no-color",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=str(tmp_path), timeout=600)
    output = result.stdout + result.stderr
    generated = re.search(r"(\d+) generated", output)
    assert generated and int(generated.group(1)) >= 500, output[-3000:]
    print(
        "\nschemathesis: %s"
        % [line for line in output.splitlines() if "generated" in line][-1].strip()
    )
    assert result.returncode == 0, output[-6000:]
    assert fuzz_target.client().health() == {"status": "ok"}


# -- the spec's bounds exist once (issue 9 #3) ------------------------------------


def _spec_schema(document, field):
    """The schema of dotted ``field`` (``env.*``: each value) in the document's ModelSpec."""
    schema = document["components"]["schemas"]["ModelSpec"]
    for part in field.split("."):
        schema = schema["additionalProperties"] if part == "*" else schema["properties"][part]
    if "oneOf" in schema:  # port: "auto" or a number; command: a list or a string
        schema = next(option for option in schema["oneOf"] if option["type"] != "string")
    return schema.get("items", schema)


def test_the_documents_bounds_are_the_parsers_table():
    from lib.core import spec

    document = openapi.document("0")
    for field, bound in spec.BOUNDS.items():
        schema = _spec_schema(document, field)
        assert (schema["minimum"], schema["maximum"]) == (bound.low, bound.high), field
        assert schema["type"] == ("integer" if bound.integer else "number"), field
        assert schema.get("default") == bound.default, field
    for field, length in spec.MAX_LENGTHS.items():
        assert _spec_schema(document, field)["maxLength"] == length, field
    for field, count in spec.MAX_ITEMS.items():
        schema = document["components"]["schemas"]["ModelSpec"]["properties"][field]
        schema = schema["oneOf"][0] if "oneOf" in schema else schema
        assert schema["description"] == "at most %d entries" % count, field


def test_changing_the_table_changes_the_document_and_the_parser(monkeypatch):
    from lib.core import spec
    from lib.errors import ValidationError

    bounds = dict(spec.BOUNDS, **{"health.interval": spec.Bound(0.5, 7, 1.5)})
    monkeypatch.setattr(spec, "BOUNDS", bounds)
    monkeypatch.setitem(spec.MAX_LENGTHS, "cwd", 10)
    schema = openapi.document("0")["components"]["schemas"]["ModelSpec"]["properties"]
    interval = schema["health"]["properties"]["interval"]
    assert (interval["minimum"], interval["maximum"], interval["default"]) == (0.5, 7, 1.5)
    assert schema["cwd"]["maxLength"] == 10
    body = {"name": "m", "command": ["x"]}
    assert spec.parse_spec(body)["health"]["interval"] == 1.5
    with pytest.raises(ValidationError, match="between 0.5 and 7"):
        spec.parse_spec(dict(body, health={"interval": 8}))
    with pytest.raises(ValidationError, match="longer than 10"):
        spec.parse_spec(dict(body, cwd="/a/long/path"))
