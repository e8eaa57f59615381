"""The whole program: ``modeld start|stop|status|run``, kill -9 and restart, signals."""

import json
import logging
import os
import re
import signal
import socket
import subprocess

import pytest

from conftest import MODELD, RunningDaemon, model, processes_tagged, wait_until
from lib import errors
from lib.cli.client import Client
from lib.core import fsutil, procfs
from lib.logs import reader


def modeld(*args, timeout=60):
    return subprocess.run(MODELD + list(args), capture_output=True, text=True, timeout=timeout)


def read(path):
    with open(path) as handle:
        return handle.read()


def deploy(client, tag, name, script="ticker.py", *args, **extra):
    spec = {"name": name, "command": model(script, *args, tag=tag), "health": {"start_period": 0}}
    spec.update(extra)
    return client.deploy(spec)


def running_pids(client):
    return {item["name"]: item["pid"] for item in client.list() if item["status"] == "running"}


def last_seq(client, name):
    entries = client.logs(name, tail=1, stream="stdout")["entries"]
    return entries[0]["seq"] if entries else 0


def test_start_status_stop(daemon, home):
    result = daemon.start()
    assert "modeld is running at http://127.0.0.1:" in result.stdout
    assert modeld("status", "--home", home).returncode == 0
    with open(os.path.join(home, "modeld.pid")) as handle:
        assert int(handle.read()) == daemon.pid
    assert os.stat(os.path.join(home, "token")).st_mode & 0o777 == 0o600
    assert os.stat(home).st_mode & 0o777 == 0o700
    assert daemon.client().health() == {"status": "ok"}
    again = daemon.start(check=False)
    assert again.returncode == 1 and "already running" in again.stderr
    assert str(daemon.pid) in again.stderr
    stopped = daemon.stop(models=False)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    status = modeld("status", "--home", home)
    assert status.returncode == 3 and "not running" in status.stdout
    assert not os.path.exists(os.path.join(home, "modeld.pid"))
    assert "serving at" in read(os.path.join(home, "daemon.log"))


def test_start_reports_a_port_in_use(home):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        result = modeld("start", "--home", home, "--port", str(port))
    assert result.returncode == 1
    assert "cannot listen on 127.0.0.1:%d" % port in result.stderr
    assert "address already in use" in result.stderr
    assert not fsutil.is_locked(os.path.join(home, "modeld.lock"))


def test_start_reports_an_unusable_home(tmp_path, tag):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = modeld("start", "--home", str(blocker / "home"), "--port", "0")
    assert result.returncode == 1
    assert "cannot use home" in result.stderr


def test_refuses_a_public_address_without_auth(home):
    result = modeld("start", "--home", home, "--host", "0.0.0.0", "--no-auth")
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without authentication" in result.stderr


def test_kill_9_and_start_again_loses_nothing(daemon, tag):
    daemon.start()
    client = daemon.client()
    for name in ("a", "b"):
        deploy(client, tag, name)
    deploy(client, tag, "quiet", "sleeper.py", restart={"policy": "no"})
    wait_until(lambda: len(running_pids(client)) == 3, message="three running models")
    before = running_pids(client)
    seq_before = last_seq(client, "a")
    daemon.kill()
    logs = reader.LogReader(os.path.join(daemon.home, "models", "a", "logs"))
    wait_until(lambda: logs.last_entry().seq > seq_before + 5, message="logging with no daemon")
    daemon.start()
    client = daemon.client()
    assert running_pids(client) == before, "a model was restarted or lost"
    expected = _model_and_monitor_pids(client) + [daemon.pid]
    assert sorted(processes_tagged(tag)) == sorted(expected), "a duplicate process"
    wait_until(lambda: last_seq(client, "a") > seq_before + 5, message="a to keep logging")
    seqs = [entry["seq"] for entry in client.logs("a", stream="stdout", limit=10000)["entries"]]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) or _gapless_with_notes(client, "a")


def _gapless_with_notes(client, name):
    seqs = [entry["seq"] for entry in client.logs(name, limit=10000)["entries"]]
    return seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def _model_and_monitor_pids(client):
    pids = []
    for item in client.list():
        pids += [item["pid"], item["monitor"]["pid"]]
    return pids


def test_sigterm_leaves_models_running_and_they_are_adopted(daemon, tag):
    daemon.start()
    client = daemon.client()
    deploy(client, tag, "a")
    wait_until(lambda: running_pids(client), message="a running model")
    before = running_pids(client)
    assert daemon.stop(models=False).returncode == 0
    assert procfs.alive(before["a"])
    daemon.start()
    assert running_pids(daemon.client()) == before


def test_stop_with_models_stops_them_and_they_stay_stopped(daemon, tag):
    daemon.start()
    client = daemon.client()
    deploy(client, tag, "a")
    deploy(client, tag, "b", "ignore_term.py", stop={"timeout": 0.5})
    wait_until(lambda: len(running_pids(client)) == 2, message="two running models")
    result = daemon.stop(models=True)
    assert result.returncode == 0 and "with its models" in result.stdout
    wait_until(lambda: not processes_tagged(tag), message="every model process to end")
    daemon.start()
    statuses = {item["name"]: item["status"] for item in daemon.client().list()}
    assert statuses == {"a": "stopped", "b": "stopped"}
    assert processes_tagged(tag) == [daemon.pid]


def test_a_monitor_that_died_while_the_daemon_was_down_is_replaced(daemon, tag):
    daemon.start()
    client = daemon.client()
    body = deploy(client, tag, "a")
    wait_until(lambda: running_pids(client), message="a running model")
    daemon.kill()
    os.kill(body["monitor"]["pid"], signal.SIGKILL)
    wait_until(lambda: not procfs.alive(body["pid"]), message="the model to follow its monitor")
    daemon.start()
    client = daemon.client()

    def replacement():
        pid = running_pids(client).get("a")
        return pid if pid not in (None, body["pid"]) else None

    replaced = wait_until(replacement, message="a replacement model")
    assert procfs.alive(replaced)
    assert client.get("a")["last_exit"]["reason"] == "monitor_died"
    assert len(processes_tagged(tag)) == 3  # daemon, monitor, model


def test_in_flight_requests_finish_on_sigterm(daemon, tag):
    daemon.start()
    client = daemon.client()
    deploy(client, tag, "slow", "ignore_term.py", stop={"timeout": 1.5})
    wait_until(
        lambda: client.logs("slow", stream="stdout", grep="ignoring SIGTERM")["entries"],
        message="the model to ignore SIGTERM",  # before that, SIGTERM would end it at once
    )
    stopper = subprocess.Popen(
        ["curl", "-s", "-X", "DELETE", "-H", "Authorization: Bearer " + daemon.token,
         daemon.url + "/models/slow"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    wait_until(lambda: client.get("slow")["status"] == "stopping", message="the stop to begin")
    os.kill(daemon.pid, signal.SIGTERM)
    output, _ = stopper.communicate(timeout=30)
    assert json.loads(output)["status"] == "stopped"
    wait_until(lambda: not procfs.alive(daemon.pid), message="the daemon to exit")


def test_run_in_the_foreground(home):
    process = subprocess.Popen(
        MODELD + ["run", "--home", home, "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: os.path.exists(os.path.join(home, "daemon.json")), message="daemon.json")
        running = RunningDaemon(home)
        running.reload()
        assert running.pid == process.pid
        assert running.client().info()["name"] == "modeld"
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
        assert process.returncode == 0
        assert "modeld is running at" in errors and "modeld stopped" in errors
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_sighup_reopens_the_log(daemon, home):
    daemon.start()
    log_path = os.path.join(home, "daemon.log")
    os.rename(log_path, log_path + ".old")
    os.kill(daemon.pid, signal.SIGHUP)
    wait_until(lambda: os.path.exists(log_path), message="a new daemon.log")
    daemon.client().list()
    wait_until(lambda: "GET /models 200" in read(log_path), message="the access line")


def test_daemon_wide_log_defaults(home, tag):
    daemon = RunningDaemon(home, ["--log-max-bytes", "4096", "--log-backups", "2"])
    try:
        daemon.start()
        spec = {"name": "m", "command": model("sleeper.py", tag=tag)}
        assert daemon.client().deploy(spec)["spec"]["logs"] == {"max_bytes": 4096, "backups": 2}
    finally:
        daemon.stop(models=True)


def test_token_rotation_takes_effect_at_once(daemon, home):
    daemon.start()
    old = daemon.client()
    assert old.info()["name"] == "modeld"
    result = modeld("token", "rotate", "--home", home)
    assert result.returncode == 0
    new_token = result.stdout.strip()
    assert new_token != daemon.token
    assert re.fullmatch("[0-9a-f]{64}", new_token)  # never "-...": it would read as an option

    def old_refused():
        try:
            old.info()
        except errors.UnauthorizedError:
            return True
        return False

    wait_until(old_refused, message="the old token to be refused")
    assert Client(daemon.url, new_token).info()["name"] == "modeld"
    assert modeld("token", "--home", home).stdout.strip() == new_token


@pytest.mark.parametrize("verb", ["start", "run"])
def test_bad_flags_are_usage_errors(home, verb):
    result = modeld(verb, "--home", home, "--tls-cert", "/nonexistent")
    assert result.returncode == 2 and "--tls-cert and --tls-key go together" in result.stderr


def test_the_daemon_log_rotates_by_size(tmp_path):
    from lib.daemon.process import DaemonLogHandler

    path = str(tmp_path / "daemon.log")
    handler = DaemonLogHandler(path, maxBytes=1000, backupCount=2)
    logger = logging.getLogger("rotation-test")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for number in range(100):
            logger.warning("line %03d %s", number, "x" * 40)
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert sorted(os.listdir(tmp_path)) == ["daemon.log", "daemon.log.1", "daemon.log.2"]
    for name in os.listdir(tmp_path):
        assert os.path.getsize(tmp_path / name) <= 1000 + 60
    assert read(path).splitlines()[-1].startswith("line 099")


@pytest.mark.parametrize("template", ["0", "1"], ids=["fresh-monitors", "template"])
def test_deploy_kill_9_start_adopts_the_same_monitor(daemon, tag, template):
    """With monitors started afresh and forked from the template (MODELD_MONITOR_ZYGOTE)."""
    daemon.environ = dict(os.environ, MODELD_MONITOR_ZYGOTE=template)
    daemon.start()
    client = daemon.client()
    body = deploy(client, tag, "a")
    wait_until(lambda: running_pids(client), message="a running model")
    before, monitor = running_pids(client), client.get("a")["monitor"]["pid"]
    argv = procfs.cmdline(monitor)
    assert argv[argv.index("monitor") :][:5] == ["monitor", "--home", daemon.home, "--name", "a"]
    daemon.kill()
    assert procfs.alive(monitor) and procfs.alive(body["pid"] or before["a"])
    daemon.start()
    client = daemon.client()
    assert running_pids(client) == before and client.get("a")["monitor"]["pid"] == monitor
    with open(os.path.join(daemon.home, "daemon.log")) as handle:
        assert "adopted the monitor of 'a' (pid %d, run 1)" % monitor in handle.read()
    assert sorted(processes_tagged(tag)) == sorted([daemon.pid, monitor, before["a"]])
