"""Logs through the real server: follow, bursts with 1 KiB files, the follower cap, the CLI."""

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request

import pytest

from conftest import ROOT, TOKEN, model, wait_until
from lib import errors


def deploy(client, tag, name, script, *args, **extra):
    spec = {"name": name, "command": model(script, *args, tag=tag), "health": {"start_period": 0}}
    spec.update(extra)
    return client.deploy(spec)


def modelctl(url, token, *args):
    """modelctl as its own process, its output readable as text."""
    command = [sys.executable, os.path.join(ROOT, "modelctl.py"), "--host", url, "--token", token]
    return subprocess.Popen(
        command + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


class Follower(threading.Thread):
    """Reads a follow stream in the background, keeping every entry."""

    def __init__(self, client, name, **params):
        super().__init__(daemon=True)
        self.client, self.name, self.params = client, name, params
        self.entries, self.error, self.ended = [], None, False

    def run(self):
        try:
            for entry in self.client.follow(self.name, **self.params):
                self.entries.append(entry)
        except Exception as error:  # noqa: BLE001 - reported by the test
            self.error = error
        self.ended = True

    def ticks(self):
        return [
            int(entry["msg"].split()[1])
            for entry in self.entries
            if entry["msg"].startswith("tick")
        ]

    def wait_for(self, count, what="ticks"):
        wait_until(lambda: len(self.ticks()) >= count, message="%d %s" % (count, what))
        return self.ticks()


def consecutive(numbers):
    return numbers == list(range(numbers[0], numbers[0] + len(numbers)))


def test_follow_from_an_empty_log(live, tag):
    client = live.client()
    deploy(client, tag, "t", "ticker.py", 0.05, "--delay", 0.5)
    follower = Follower(client, "t", stream="stdout")
    follower.start()
    ticks = follower.wait_for(5)
    assert ticks[:5] == [0, 1, 2, 3, 4]
    client.stop("t")
    wait_until(lambda: follower.ended, message="the stream to end with the model")
    assert follower.error is None and consecutive(follower.ticks())


def test_follow_mid_stream_gets_only_new_lines(live, tag):
    client = live.client()
    deploy(client, tag, "t", "ticker.py", 0.02)
    wait_until(lambda: len(client.logs("t", stream="stdout", tail=20)["entries"]) >= 20)
    last_before = int(client.logs("t", stream="stdout", tail=1)["entries"][0]["msg"].split()[1])
    follower = Follower(client, "t", stream="stdout", since="0s")
    follower.start()
    ticks = follower.wait_for(10)
    assert ticks[0] > last_before - 5 and consecutive(ticks)


def test_follow_with_tail(live, tag):
    client = live.client()
    deploy(client, tag, "t", "ticker.py", 0.02)
    wait_until(lambda: len(client.logs("t", stream="stdout", tail=10)["entries"]) >= 10)
    follower = Follower(client, "t", stream="stdout", tail=3)
    follower.start()
    ticks = follower.wait_for(10)
    assert consecutive(ticks)
    assert follower.entries[0]["seq"] < follower.entries[3]["seq"]


def test_two_followers_see_the_same_lines(live, tag):
    client = live.client()
    deploy(client, tag, "t", "ticker.py", 0.02, "--delay", 0.3)
    first = Follower(client, "t", stream="stdout")
    second = Follower(live.client(), "t", stream="stdout")
    first.start()
    second.start()
    first.wait_for(20)
    second.wait_for(20)
    assert first.ticks()[:20] == second.ticks()[:20] == list(range(20))


def test_follow_across_rotations_loses_no_line(live, tag, supervisor):
    client = live.client()
    follower = Follower(client, "burst", stream="stdout")
    deploy(
        client,
        tag,
        "burst",
        "flood.py",
        3000,
        40,
        logs={"max_bytes": 1024, "backups": 10_000},
        restart={"policy": "no"},
    )
    follower.start()
    wait_until(lambda: follower.ended, timeout=60, message="the stream to end when the model exits")
    numbers = [int(entry["msg"].split()[0]) for entry in follower.entries]
    assert numbers == list(range(3000))
    assert len(os.listdir(supervisor.home.model("burst").logs)) > 20  # it did rotate, often


def test_a_10000_line_burst_with_1_kib_files_loses_nothing(live, tag):
    client = live.client()
    deploy(
        client,
        tag,
        "burst",
        "flood.py",
        10_000,
        30,
        logs={"max_bytes": 1024, "backups": 10_000},
        restart={"policy": "no"},
    )
    wait_until(
        lambda: client.get("burst")["status"] == "exited", timeout=60, message="the burst to end"
    )
    entries, cursor = [], None
    while True:
        page = client.logs(
            "burst", stream="stdout", limit=997, **({"cursor": cursor} if cursor else {})
        )
        entries += page["entries"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert [int(entry["msg"].split()[0]) for entry in entries] == list(range(10_000))
    every = client.logs("burst", limit=10_000)["entries"]
    seqs = [entry["seq"] for entry in every]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    stamps = [entry["ts"] for entry in every]
    assert stamps == sorted(stamps)


def test_the_follower_cap_answers_503_and_others_still_get_through(live, tag):
    client = live.client()
    deploy(client, tag, "t", "ticker.py", 0.1)
    followers = [Follower(live.client(), "t") for _ in range(4)]
    for follower in followers:
        follower.start()
    wait_until(lambda: all(follower.entries for follower in followers), message="4 followers")
    with pytest.raises(errors.TooManyFollowersError) as raised:
        next(iter(live.client().follow("t")))
    assert raised.value.status == 503
    assert client.get("t")["status"] == "running"  # followers never block other requests
    assert len(client.list()) == 1
    client.stop("t")
    wait_until(lambda: all(follower.ended for follower in followers), message="followers to end")
    assert next(iter(live.client().follow("t", tail=1)))  # the slots are free again


def test_text_format_for_curl_and_grep(live, tag):
    client = live.client()
    deploy(client, tag, "f", "flood.py", 5, restart={"policy": "no"})
    wait_until(lambda: client.get("f")["status"] == "exited")
    request = urllib.request.Request(
        live.url + "/models/f/logs?format=text&stream=stdout",
        headers={"Authorization": "Bearer " + TOKEN},
    )
    with urllib.request.urlopen(request) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        assert response.headers["X-Next-Cursor"]
        lines = response.read().decode().splitlines()
    assert len(lines) == 5
    timestamp, stream, level, message = lines[0].split(None, 3)
    assert timestamp.endswith("Z") and stream == "stdout" and level == "INFO"
    assert message.startswith("00000000")


def test_logs_of_a_stopped_model_stay_readable_until_purge(live, tag):
    client = live.client()
    deploy(client, tag, "t", "ticker.py", 0.02)
    wait_until(lambda: len(client.logs("t", stream="stdout")["entries"]) >= 5)
    client.stop("t")
    assert len(client.logs("t", stream="stdout")["entries"]) >= 5
    client.stop("t", purge=True)
    with pytest.raises(errors.ModelNotFoundError):
        client.logs("t")


def test_modelctl_logs_follow_stops_cleanly_on_ctrl_c(live, tag):
    client = live.client()
    deploy(client, tag, "t", "ticker.py", 0.02, logs={"max_bytes": 1024, "backups": 1000})
    process = modelctl(live.url, TOKEN, "logs", "t", "-f", "--stream", "stdout", "--json")
    lines = []
    try:
        for line in process.stdout:
            lines.append(json.loads(line))
            if len(lines) >= 150:  # 150 lines of ~60 bytes: several 1 KiB rotations
                break
        process.send_signal(signal.SIGINT)
        rest, errors_text = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert "Traceback" not in errors_text
    ticks = [int(entry["msg"].split()[1]) for entry in lines]
    assert consecutive(ticks)


def test_a_long_line_is_split_into_parts(live, tag):
    client = live.client()
    spec = {
        "name": "long",
        "command": [sys.executable, "-c", "print('a' * 40000); print('after')", "--tag", tag],
        "restart": {"policy": "no"},
    }
    client.deploy(spec)
    wait_until(lambda: client.get("long")["status"] == "exited")
    entries = client.logs("long", stream="stdout")["entries"]
    assert [len(entry["msg"]) for entry in entries] == [16384, 16384, 40000 - 32768, 5]
    assert [entry.get("partial", False) for entry in entries] == [True, True, False, False]
    assert "".join(entry["msg"] for entry in entries[:3]) == "a" * 40000


def test_a_follower_that_goes_away_frees_its_slot(live, tag):
    import socket

    client = live.client()
    deploy(client, tag, "t", "ticker.py", 0.05)
    followers = [Follower(live.client(), "t") for _ in range(3)]
    for follower in followers:
        follower.start()
    host, port = live.url.split("//")[1].split(":")
    raw = socket.create_connection((host, int(port)))
    raw.sendall(
        b"GET /models/t/logs?follow=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
        % TOKEN.encode()
    )
    assert raw.recv(100).startswith(b"HTTP/1.1 200")
    with pytest.raises(errors.TooManyFollowersError):
        next(iter(live.client().follow("t")))
    raw.close()  # the client goes away; the next write tells the server

    def slot_free():
        try:
            return next(iter(live.client().follow("t", tail=1)))
        except errors.TooManyFollowersError:
            return None

    assert wait_until(slot_free, message="the abandoned follower's slot")


def test_modelctl_logs_follow_says_so_when_the_daemon_goes_away(daemon, tag):
    daemon.start()
    daemon.client().deploy({"name": "t", "command": model("ticker.py", 0.05, tag=tag)})
    process = modelctl(daemon.url, daemon.token, "logs", "t", "-f", "--stream", "stdout")
    try:
        assert process.stdout.readline().split()[1:3] == ["stdout", "INFO"]
        daemon.kill()
        _, errors_text = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 3
    assert (
        "modeld is not running at %s" % daemon.url in errors_text
        or "lost the connection" in errors_text
    )
    assert "Traceback" not in errors_text


def test_a_follow_ended_by_the_daemons_shutdown_is_a_lost_stream(live, tag):
    # Issue 10 #17: a shutdown ended the stream cleanly, so `modelctl logs -f` exited 0.
    deploy(live.client(), tag, "t", "ticker.py", 0.05)
    follower = Follower(live.client(), "t")
    follower.start()
    follower.wait_for(2)
    live.stopping = True  # what SIGTERM does: the server stops, the model keeps running
    follower.join(timeout=10)
    assert follower.ended and isinstance(follower.error, errors.DaemonUnreachableError)
    assert "ended the log stream: modeld is shutting down" in follower.error.message


@pytest.mark.parametrize("attempt", range(3))
def test_modelctl_logs_follow_exits_3_on_modeld_stop(daemon, tag, attempt):
    # Issue 10 #17: `modeld stop` (models keep running) ended the follow with exit 0 in
    # most tries: the stream ended cleanly and the daemon still answered the check.
    daemon.start()
    daemon.client().deploy({"name": "t", "command": model("ticker.py", 0.05, tag=tag)})
    process = modelctl(daemon.url, daemon.token, "logs", "t", "-f", "--stream", "stdout")
    try:
        assert process.stdout.readline().split()[1:3] == ["stdout", "INFO"]
        assert daemon.stop(models=False).returncode == 0
        _, errors_text = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 3, errors_text
    assert errors_text.startswith("modelctl: ") and "Traceback" not in errors_text
    assert errors_text.count("\n") == 1
