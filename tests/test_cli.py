"""modelctl through main(argv) against a real daemon: output, --json shapes, exit codes."""

import io
import json
import os
import re
import sys

import pytest

from conftest import model, unreachable_url, wait_until
from lib.cli import modelctl, render


@pytest.fixture
def ctl(daemon):
    daemon.start()

    def run(*args, stdin=None):
        out, err = io.StringIO(), io.StringIO()
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        try:
            code = modelctl.main(
                ["--host", daemon.url, "--token", daemon.token] + list(args), out, err
            )
        finally:
            sys.stdin = sys.__stdin__
        return code, out.getvalue(), err.getvalue()

    return run


def test_unreachable_daemon_is_exit_3_with_a_hint():
    out, err = io.StringIO(), io.StringIO()
    url = unreachable_url()
    code = modelctl.main(["--host", url, "ps"], out, err)
    assert code == 3
    assert err.getvalue().startswith(
        "modelctl: modeld is not running at %s: start it with `modeld start`" % url
    )
    assert "Traceback" not in err.getvalue() and out.getvalue() == ""


@pytest.mark.parametrize(
    "args, message",
    [
        (["frobnicate"], "invalid choice"),
        (["deploy"], "deploy needs NAME and a command"),
        (["deploy", "x", "--port", "eighty", "--", "sleep", "1"], "--port takes auto or a number"),
        (["deploy", "x", "--env", "NOEQUALS", "--", "sleep", "1"], "--env takes KEY=VALUE"),
        (["deploy", "-f", "/nonexistent.json"], "cannot read /nonexistent.json"),
        (["logs"], "NAME or --all"),
    ],
)
def test_bad_arguments_are_exit_2(args, message, capsys):
    out, err = io.StringIO(), io.StringIO()
    code = modelctl.main(["--host", unreachable_url()] + args, out, err)
    assert code == 2
    assert message in err.getvalue() + capsys.readouterr().err


def test_deploy_with_flags_ps_status_stop_start_restart_rm(ctl, tag, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = ctl(
        "deploy",
        "web",
        "--port",
        "auto",
        "--env",
        "MODE=fast",
        "--env",
        "API_TOKEN=s3cret",
        "--label",
        "team=ml",
        "--restart",
        "always",
        "--stop-timeout",
        "5",
        "--start-period",
        "0",
        "--",
        *model("sleeper.py", "--port", "{port}", tag=tag),
    )
    assert code == 0 and out.startswith("deployed web: ") and "http://127.0.0.1:" in out
    code, out, _ = ctl("--json", "status", "web")
    status = json.loads(out)
    assert status["spec"]["cwd"] == str(tmp_path)  # the current directory by default
    assert status["spec"]["env"] == {"MODE": "fast", "API_TOKEN": "***"}
    assert (
        status["spec"]["labels"] == {"team": "ml"}
        and status["spec"]["restart"]["policy"] == "always"
    )
    port_flag = status["command"].index("--port")
    assert status["command"][port_flag + 1] == str(status["port"])  # {port} resolved
    assert [event["to"] for event in status["events"]][:1] == ["starting"]
    wait_until(lambda: json.loads(ctl("--json", "status", "web")[1])["status"] == "running")
    code, out, _ = ctl("ps")
    header, row = out.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "STATUS", "HEALTH"] and row.split()[:2] == [
        "web",
        "running",
    ]
    code, out, _ = ctl("status", "web")
    assert "status    running (ready)" in out and "recent events:" in out and "-> running" in out
    code, out, _ = ctl("stop", "web", "--timeout", "5")
    assert (code, out) == (0, "web: stopped\n")
    assert "(no running models)" in ctl("ps")[1]
    assert "web" in ctl("ps", "-a")[1]
    code, out, _ = ctl("start", "web", "--json")
    assert code == 0 and json.loads(out)["status"] in ("starting", "running")
    code, out, _ = ctl("restart", "web")
    assert code == 0 and out.startswith("web: ")
    code, out, _ = ctl("rm", "web")
    assert (code, out) == (0, "web: stopped (removed with its logs)\n")
    assert ctl("status", "web")[0] == 4


def test_deploy_from_a_spec_file_and_stdin(ctl, tag, tmp_path):
    spec = {"name": "fromfile", "command": model("sleeper.py", tag=tag), "cwd": "."}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    code, out, _ = ctl("--json", "deploy", "-f", str(path))
    assert code == 0 and json.loads(out)["spec"]["cwd"] == str(tmp_path)  # relative to the file
    spec["name"] = "fromstdin"
    code, out, _ = ctl("deploy", "-f", "-", stdin=json.dumps(spec))
    assert code == 0 and out.startswith("deployed fromstdin")
    assert json.loads(ctl("--json", "ps")[1])["models"][0]["name"] == "fromfile"


def test_daemon_errors_are_one_line_with_their_code(ctl, tag):
    ctl("deploy", "dup", "--", *model("sleeper.py", tag=tag))
    code, _, err = ctl("deploy", "dup", "--", *model("sleeper.py", tag=tag))
    assert code == 1
    assert re.fullmatch(
        r"modelctl: already_running: model 'dup' is (starting|running): stop it first, "
        r"or choose another name\n",
        err,
    )
    code, _, err = ctl("deploy", "bad", "--", "no-such-program-xyz")
    assert code == 2 and err.startswith(
        "modelctl: validation_error: command[0]: executable 'no-such-program-xyz'"
    )
    code, _, err = ctl("status", "ghost")
    assert code == 4 and err == "modelctl: model_not_found: no model named 'ghost'\n"


def test_a_field_or_parameter_the_daemon_refuses_is_exit_2(ctl, tag, tmp_path):
    # Issue 10 #26: the README says 2 for bad arguments or spec file; these exited 1.
    path = tmp_path / "spec.json"
    spec = {"name": "bad", "command": model("sleeper.py", tag=tag), "health": {"interval": 0}}
    path.write_text(json.dumps(spec))
    code, _, err = ctl("deploy", "-f", str(path))
    assert code == 2 and err.startswith("modelctl: validation_error: health.interval:")
    ctl("deploy", "x", "--", *model("sleeper.py", tag=tag))
    for flag in ("--level", "--stream"):
        code, _, err = ctl("logs", "x", flag, "bogus")
        assert code == 2, (flag, err)
        assert err.startswith("modelctl: validation_error: %s:" % flag[2:])


def test_deploy_wait_shows_progress_until_ready(ctl, tag):
    code, out, _ = ctl(
        "deploy",
        "web",
        "--port",
        "auto",
        "--health-http",
        "/health",
        "--wait",
        "--timeout",
        "30",
        "--",
        *model("http_model.py", "{port}", "0.5", tag=tag),
    )
    lines = out.splitlines()
    assert code == 0
    assert lines[0].startswith("web: starting (health starting)")
    assert lines[-2].startswith("web: running (health healthy)")
    assert lines[-1].startswith("ready at http://127.0.0.1:")


def test_deploy_wait_of_a_crashing_model_is_exit_5_with_its_last_lines(ctl, tag):
    code, out, _ = ctl(
        "deploy",
        "crash",
        "--restart",
        "no",
        "--wait",
        "--",
        *model("crasher.py", 3, "--say", "ModuleNotFoundError: No module named 'vllm'", tag=tag),
    )
    assert code == 5
    assert "last exit: code 3, reason import_error" in out
    assert "  | ModuleNotFoundError: No module named 'vllm'" in out


def test_logs(ctl, tag):
    ctl("deploy", "f", "--restart", "no", "--", *model("flood.py", 30, tag=tag))
    wait_until(lambda: "exited" in ctl("ps", "-a")[1])
    code, out, _ = ctl("logs", "f", "-n", "3", "--stream", "stdout")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert lines[-1].split()[1:4] == ["stdout", "INFO", "00000029"]
    code, out, _ = ctl("logs", "f", "--stream", "stdout", "--json", "--grep", "00000007")
    assert [json.loads(line)["msg"].split()[0] for line in out.splitlines()] == ["00000007"]
    code, out, _ = ctl("logs", "f", "--level", "error")
    assert code == 0 and out == ""
    code, _, err = ctl("logs", "f", "--since", "yesterday")
    assert code == 2 and err.startswith("modelctl: validation_error: since:")


def test_logs_follow_with_n_0_prints_only_new_lines(ctl, tag):
    # Issue 10 #16: `-f -n 0` printed the whole history; the help says "only new".
    ctl("deploy", "f", "--restart", "no", "--", *model("flood.py", 30, tag=tag))
    wait_until(lambda: "exited" in ctl("ps", "-a")[1])
    assert ctl("logs", "f", "-n", "2", "--stream", "stdout")[1].count("\n") == 2
    code, out, _ = ctl("logs", "f", "-f", "-n", "0")  # the model is done: nothing new comes
    assert (code, out) == (0, "")
    code, out, _ = ctl("logs", "f", "-n", "0")
    assert (code, out) == (0, "")


def test_version_and_events(ctl, daemon, tag):
    code, out, _ = ctl("--json", "version")
    versions = json.loads(out)
    assert versions["client"] == versions["daemon"] and versions["host"] == daemon.url
    ctl("deploy", "e", "--", *model("sleeper.py", tag=tag))
    code, out, _ = ctl("events", "e")
    assert code == 0 and "e" in out and "new -> starting" in out
    assert json.loads(ctl("--json", "events")[1])["events"][0]["model"] == "e"


def test_tables_fit_the_terminal():
    rows = [
        {
            "NAME": "a-very-long-model-name",
            "STATUS": "running",
            "PID": 1,
            "REASON": "healthy and fine",
        }
    ]
    columns, optional = ["NAME", "STATUS", "PID", "REASON"], ["REASON", "PID"]
    wide = render.table(rows, columns, optional, 120)
    assert "REASON" in wide
    fits = render.table(rows, columns, optional, 36)
    assert "REASON" not in fits and "PID" in fits  # NAME, STATUS, PID: exactly 36 columns
    narrow = render.table(rows, columns, optional, 33)
    assert "REASON" not in narrow and "PID" not in narrow
    assert max(len(line) for line in narrow.splitlines()) <= 33
    tiny = render.table(rows, columns, optional, 20)
    assert max(len(line) for line in tiny.splitlines()) <= 20


@pytest.mark.parametrize(
    "seconds, text", [(None, "-"), (5, "5s"), (187, "3m07s"), (18720, "5h12m"), (183600, "2d03h")]
)
def test_durations(seconds, text):
    assert render.human_duration(seconds) == text


def test_every_verb_is_in_the_readme():
    with open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "README.md")) as handle:
        readme = handle.read()
    verbs = modelctl.build_parser()._subparsers._group_actions[0].choices
    for verb in verbs:
        assert "modelctl %s" % verb in readme, "README does not show `modelctl %s`" % verb


def _parser_verbs(parser):
    return set(parser._subparsers._group_actions[0].choices)


def test_each_cli_has_a_function_for_every_verb_of_its_parser():
    from lib.cli import modeld

    assert _parser_verbs(modelctl.build_parser()) == set(modelctl.VERBS)
    assert _parser_verbs(modeld.build_parser()) == set(modeld.VERBS)


def test_flags_given_with_a_spec_file_win_over_it(tmp_path):
    # Issue 10 #19: the flags were ignored and the deploy exited 0.
    from lib.cli import spec_flags

    path = tmp_path / "spec.json"
    spec = {
        "name": "fromfile",
        "command": ["serve", "--port", "{port}"],
        "port": "auto",
        "env": {"A": "file", "KEEP": "1"},
        "health": {"http": "/health", "start_period": 60},
        "restart": {"policy": "always", "max_retries": 3},
    }
    path.write_text(json.dumps(spec))
    argv = ["deploy", "-f", str(path), "--port", "9", "--env", "A=B", "--restart", "no"]
    argv += ["--health-tcp", "--label", "team=x"]
    args = modelctl.build_parser().parse_args(argv)
    args.command = []
    built = spec_flags.spec_from_args(args)
    assert built["port"] == 9
    assert built["env"] == {"A": "B", "KEEP": "1"}
    assert built["restart"] == {"policy": "no", "max_retries": 3}
    assert built["health"] == {"tcp": True, "start_period": 60}
    assert built["labels"] == {"team": "x"} and built["name"] == "fromfile"
    args = modelctl.build_parser().parse_args(["deploy", "renamed", "-f", str(path)])
    args.command = ["other", "{port}"]
    built = spec_flags.spec_from_args(args)
    assert (built["name"], built["command"]) == ("renamed", ["other", "{port}"])


# -- the daemon's address and time (issue 10 #21) -------------------------------------


@pytest.fixture
def silent_server():
    """A port that takes connections and never answers."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield "http://127.0.0.1:%d" % listener.getsockname()[1]
    listener.close()


@pytest.fixture
def plain_http_server():
    import http.server
    import threading

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_slow_answer_is_a_timeout_not_a_daemon_to_start(silent_server):
    from lib import errors
    from lib.cli.client import Client

    with pytest.raises(errors.DaemonTimeoutError) as caught:
        Client(silent_server, "t", timeout=0.3, environ={}).list()
    assert "did not answer within 0.3s" in caught.value.message
    assert "start it" not in caught.value.message
    assert modelctl.exit_status(caught.value) == modelctl.EXIT_TIMEOUT == 6


def test_deploy_wait_does_not_give_up_before_the_daemon_does(monkeypatch):
    from lib.cli.client import Client
    from lib.core import params

    client = Client("http://127.0.0.1:9", "t", timeout=5, environ={})
    seen = []
    monkeypatch.setattr(client, "request", lambda *args, **kwargs: seen.append(kwargs["timeout"]))
    client.deploy({}, wait=True)
    client.start("x", wait=True)
    assert len(seen) == 2
    assert min(seen) > params.WAIT_TIMEOUT_MAX


@pytest.mark.parametrize(
    "host, message",
    [
        ("notaurl", "cannot find the host of notaurl"),
        ("ftp://127.0.0.1", "is not a daemon address"),
        ("http://127.0.0.1:port", "is not a daemon address"),
    ],
)
def test_a_wrong_host_is_a_usage_error_with_its_own_message(host, message):
    out, err = io.StringIO(), io.StringIO()
    code = modelctl.main(["--host", host, "ps"], out, err)
    assert code == 2, err.getvalue()
    assert err.getvalue().startswith("modelctl: ") and message in err.getvalue()
    assert "start it" not in err.getvalue() and err.getvalue().count("\n") == 1


def test_https_against_a_plain_http_daemon_says_so(plain_http_server):
    out, err = io.StringIO(), io.StringIO()
    code = modelctl.main(["--host", "https://127.0.0.1:%d" % plain_http_server, "ps"], out, err)
    assert code == 2, err.getvalue()
    assert "does not speak TLS" in err.getvalue() and "use http://" in err.getvalue()
    assert "start it" not in err.getvalue()
