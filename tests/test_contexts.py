"""Contexts: named daemons in a 0600 config file, and one ``ps`` over several real daemons."""

import json
import os
import stat

import pytest

from conftest import RunningDaemon, model, unreachable_url
from lib.cli import contexts, modelctl


@pytest.fixture
def config_home(tmp_path, monkeypatch):
    folder = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    for name in ("MODELD_CONTEXT", "MODELD_HOST", "MODELD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return folder


@pytest.fixture
def two_daemons(tmp_path, tag):
    daemons = [RunningDaemon(str(tmp_path / name)) for name in ("one", "two")]
    for daemon in daemons:
        os.makedirs(daemon.home)
        daemon.start()
    yield daemons
    for daemon in daemons:
        daemon.stop(models=True)


def run(capsys, *argv):
    code = modelctl.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def add(capsys, tmp_path, name, daemon):
    token_file = tmp_path / ("%s.token" % name)
    token_file.write_text(daemon.token + "\n")
    code, _, err = run(capsys, "context", "add", name, daemon.url, "--token-file", str(token_file))
    assert code == 0, err


def test_the_config_file_is_private_and_holds_no_token(config_home, tmp_path, capsys):
    token_file = tmp_path / "t"
    token_file.write_text("secret-token")
    assert run(capsys, "context", "add", "a", "http://h:1", "--token-file", str(token_file))[0] == 0
    assert run(capsys, "context", "use", "a")[0] == 0
    path = contexts.config_path()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as handle:
        text = handle.read()
    assert "secret-token" not in text
    assert json.loads(text)["current"] == "a"
    code, out, _ = run(capsys, "context", "ls")
    assert code == 0 and out.startswith("* a")
    assert run(capsys, "context", "use", "nope")[0] == modelctl.EXIT_USAGE


def test_which_daemon_a_command_uses(config_home, tmp_path, capsys, monkeypatch):
    run(capsys, "context", "add", "a", "http://a:1")
    run(capsys, "context", "add", "b", "http://b:1")
    run(capsys, "context", "use", "a")
    parser = modelctl.build_parser()

    def host(*argv):
        return contexts.client_for(parser.parse_args(list(argv) + ["ps"])).host

    assert host() == "http://a:1"
    assert host("--context", "b") == "http://b:1"
    assert host("--host", "http://c:1") == "http://c:1"
    monkeypatch.setenv("MODELD_CONTEXT", "b")
    assert host() == "http://b:1"
    monkeypatch.setenv("MODELD_TOKEN", "the-local-daemons")
    assert contexts.client_for(parser.parse_args(["ps"])).token is None
    assert run(capsys, "--context", "a", "--host", "http://c:1", "ps")[0] == modelctl.EXIT_USAGE


def test_ps_over_all_contexts_shows_both_daemons_and_reports_a_silent_one(
    config_home, tmp_path, capsys, two_daemons, tag
):
    one, two = two_daemons
    add(capsys, tmp_path, "one", one)
    add(capsys, tmp_path, "two", two)
    for daemon, name in ((one, "alpha"), (two, "beta")):
        daemon.client().deploy({"name": name, "command": model("sleeper.py", tag=tag)})
    code, out, err = run(capsys, "ps", "--all-contexts")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["HOST", "NAME"]
    assert {tuple(line.split()[:2]) for line in lines[1:]} == {("one", "alpha"), ("two", "beta")}

    run(capsys, "context", "add", "gone", unreachable_url())
    code, out, err = run(capsys, "ps", "--contexts", "one,gone,two", "--json")
    assert code == modelctl.EXIT_UNREACHABLE
    answer = json.loads(out)
    assert sorted(m["context"] for m in answer["models"]) == ["one", "two"]
    assert [item["context"] for item in answer["unreachable"]] == ["gone"]
    assert "context gone: modeld is not running" in err

    code, out, _ = run(capsys, "--context", "two", "ps")
    assert code == 0 and "beta" in out and "alpha" not in out
    code, out, _ = run(capsys, "--context", "one", "export", "alpha", "--to", "nomad")
    assert code == 0 and 'job "alpha"' in out
