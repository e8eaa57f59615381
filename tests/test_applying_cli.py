"""modelctl's declarative verbs: the models file, dotenv files, and apply/diff end to end."""

import io
import json
import sys

import pytest

from conftest import model, wait_until
from lib.cli import applying, modelctl, spec_flags


def test_a_models_file_merges_defaults_and_names_its_set(tmp_path):
    path = tmp_path / "Prod Models.json"
    path.write_text(
        json.dumps(
            {
                "defaults": {"labels": {"team": "a"}, "env": {"A": "1"}},
                "models": [
                    {"name": "m", "command": "x", "env": {"B": "2"}, "labels": {"team": "b"}}
                ],
            }
        )
    )
    body = applying.load_models_file(str(path), prune=True)
    assert body["set"] == "prod-models" and body["prune"] and not body["prune_all"]
    assert body["models"][0]["env"] == {"A": "1", "B": "2"}
    assert body["models"][0]["labels"] == {"team": "b"}


def test_yaml_without_pyyaml_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "models.yaml"
    path.write_text("models: []\n")
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(spec_flags.UsageError, match="pip install pyyaml, or use JSON"):
        applying.load_models_file(str(path))


def test_an_env_file_is_read_and_flags_win(tmp_path):
    path = tmp_path / "web.env"
    path.write_text("# comment\nexport A=1\nB='two words'\nC=3\n")
    assert spec_flags.read_env_file(str(path)) == {"A": "1", "B": "two words", "C": "3"}
    args = modelctl.build_parser().parse_args(
        ["deploy", "web", "--env-file", str(path), "--env", "C=flag"]
    )
    args.command = ["serve"]
    assert spec_flags.spec_from_args(args)["env"] == {"A": "1", "B": "two words", "C": "flag"}
    path.write_text("no equals here\n")
    with pytest.raises(spec_flags.UsageError, match="web.env:1"):
        spec_flags.read_env_file(str(path))


def run_cli(live, *argv):
    out, err = io.StringIO(), io.StringIO()
    code = modelctl.main(
        ["--host", live.url, "--token", live.client().token] + list(argv), out, err
    )
    return code, out.getvalue(), err.getvalue()


def test_apply_diff_and_selectors_from_the_cli(live, tag, tmp_path):
    spec = {"name": "m", "command": model("sleeper.py", tag=tag), "stop": {"timeout": 5}}
    path = tmp_path / "prod.json"
    path.write_text(json.dumps({"models": [dict(spec, labels={"team": "x"})]}))
    code, out, _ = run_cli(live, "apply", "-f", str(path), "--yes")
    assert code == 0 and "create" in out and "applied" in out
    pid = wait_until(lambda: live.client().get("m")["pid"])
    code, out, _ = run_cli(live, "diff", "-f", str(path))
    assert code == 0 and "unchanged" in out
    code, out, _ = run_cli(live, "--json", "ps", "-l", "team=x")
    assert [m["name"] for m in json.loads(out)["models"]] == ["m"]
    code, out, _ = run_cli(live, "export-spec", "m")
    assert json.loads(out)["labels"] == {"team": "x"}
    assert live.client().get("m")["pid"] == pid
    code, out, _ = run_cli(live, "stop", "-l", "team=x")
    assert code == 0 and "m: stopped" in out
    code, out, _ = run_cli(live, "stop", "--all")
    assert code == 0 and "no model matches" in out
    code, _, err = run_cli(live, "stop")
    assert code == modelctl.EXIT_USAGE and "NAME" in err


def test_modeld_run_apply_adopts_running_models(home, tag, tmp_path):
    import os
    import signal
    import subprocess

    from conftest import MODELD
    from lib.cli.client import Client

    spec = {"name": "boot", "command": model("sleeper.py", tag=tag), "stop": {"timeout": 5}}
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"set": "boot", "models": [spec]}))

    def run_daemon():
        command = MODELD + ["run", "--home", home, "--port", "0", "--apply", str(path)]
        return subprocess.Popen(command, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def client():
        with open(os.path.join(home, "daemon.json")) as handle:
            url = json.load(handle)["url"]
        with open(os.path.join(home, "token")) as handle:
            return Client(url, handle.read().strip())

    daemon = run_daemon()
    try:
        pid = wait_until(
            lambda: os.path.exists(os.path.join(home, "daemon.json")) and _pid(client(), "boot"),
            timeout=30,
        )
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
    daemon = run_daemon()  # a restart of the daemon: the model runs on and is adopted
    try:
        wait_until(lambda: os.path.exists(os.path.join(home, "daemon.json")), timeout=30)
        wait_until(lambda: _adopted_at_restart(home), timeout=30)
        assert client().get("boot")["pid"] == pid
    finally:
        client().stop("boot")
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)


def _pid(client, name):
    try:
        return client.get(name)["pid"]
    except Exception:  # noqa: BLE001 - not deployed yet
        return None


def _adopted_at_restart(home):
    import os

    with open(os.path.join(home, "daemon.log")) as handle:
        return handle.read().count("boot unchanged") == 1
