"""Fault injection with real processes (after Docker's restart tests).

{daemon SIGKILL, daemon SIGTERM} x {restart policy no, on-failure, always} x
{model still starting (probe pending), model ready}: after the daemon starts
again, the same pids, the right status, probes that resume, no duplicate
process and no port conflict. Then a full disk, corrupt state files, and a
leak check over 200 deploy/stop cycles.
"""

import os
import resource
import signal

import pytest

from conftest import model, processes_tagged, wait_until
from lib.core import fsutil, procfs

POLICIES = ("no", "on-failure", "always")


def http_spec(tag, name, control, policy):
    return {
        "name": name,
        "command": model("http_model.py", "{port}", "--control", control, tag=tag),
        "port": "auto",
        "health": {
            "http": "/health",
            "interval": 0.2,
            "timeout": 1,
            "start_period": 60,
            "retries": 2,
        },
        "restart": {"policy": policy, "backoff": 0.1},
        "stop": {"timeout": 2},
    }


def model_processes(tag, daemon_pid):
    return sorted(pid for pid in processes_tagged(tag) if pid != daemon_pid)


@pytest.mark.parametrize("phase", ["starting", "ready"])
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_daemon_restart_loses_nothing(daemon, tag, tmp_path, how, phase):
    daemon.start()
    client = daemon.client()
    controls = {}
    for policy in POLICIES:
        name = "m-" + policy
        controls[name] = tmp_path / name
        controls[name].write_text("ok" if phase == "ready" else "fail")
        client.deploy(http_spec(tag, name, str(controls[name]), policy))
    if phase == "ready":
        wait_until(lambda: all(m["ready"] for m in client.list()), message="three ready models")
    else:
        wait_until(lambda: all(m["pid"] for m in client.list()), message="three started models")
    before = {
        m["name"]: (m["pid"], m["monitor"]["pid"], m["port"], m["status"]) for m in client.list()
    }
    processes = model_processes(tag, daemon.pid)
    assert len(processes) == 6  # a monitor and a model each

    if how == "SIGKILL":
        daemon.kill()
    else:
        assert daemon.stop(models=False).returncode == 0
    assert all(procfs.alive(pid) for pid, _, _, _ in before.values())
    daemon.start()
    client = daemon.client()

    after = {
        m["name"]: (m["pid"], m["monitor"]["pid"], m["port"], m["status"]) for m in client.list()
    }
    assert after == before, "a model was restarted, lost or duplicated"
    assert model_processes(tag, daemon.pid) == processes
    expected_health = "healthy" if phase == "ready" else "starting"
    assert {m["health"] for m in client.list()} == {expected_health}

    # Probes resume under the new daemon.
    if phase == "starting":
        for control in controls.values():
            control.write_text("ok")
        wait_until(
            lambda: all(m["ready"] for m in client.list()), message="probes after the restart"
        )
        return
    for control in controls.values():
        control.write_text("fail")

    def settled():
        models = {m["name"]: m for m in client.list()}
        if models["m-no"]["status"] != "exited":
            return None
        return all(models[n]["restarts"] >= 1 for n in ("m-on-failure", "m-always")) and models

    models = wait_until(settled, message="unhealthy models handled per policy")
    assert models["m-no"]["last_exit"]["reason"] == "unhealthy"
    for name in ("m-on-failure", "m-always"):
        controls[name].write_text("ok")
    wait_until(
        lambda: all(m["ready"] for m in client.list() if m["name"] != "m-no"),
        message="restarted models ready again",
    )
    for m in client.list():
        if m["name"] != "m-no":
            assert m["port"] == before[m["name"]][2] and m["pid"] != before[m["name"]][0]
    # no duplicate, no orphan: a monitor and a model for each of the two still running
    wait_until(
        lambda: len(model_processes(tag, daemon.pid)) == 4, message="one process pair per model"
    )


def test_a_full_disk_drops_lines_with_a_note_and_the_model_keeps_running(daemon, tag, tmp_path):
    daemon.start()
    client = daemon.client()
    progress = tmp_path / "progress"
    spec = {
        "name": "t",
        "command": model("ticker.py", 0.01, "--progress", progress, tag=tag),
        "health": {"start_period": 0},
    }
    body = client.deploy(spec)
    wait_until(
        lambda: len(client.logs("t", stream="stdout")["entries"]) >= 20, message="some lines"
    )
    current = os.path.join(daemon.home, "models", "t", "logs", "current.log")
    monitor = body["monitor"]["pid"]
    # The disk is full for the monitor: no file of it may grow past its size now.
    resource.prlimit(
        monitor, resource.RLIMIT_FSIZE, (os.path.getsize(current), resource.RLIM_INFINITY)
    )
    last_kept = int(client.logs("t", stream="stdout", tail=1)["entries"][0]["msg"].split()[1])
    wait_until(
        lambda: progress.exists() and int(progress.read_text()) >= last_kept + 30,
        message="30 lines printed while nothing can be written",
    )
    assert client.get("t")["status"] == "running" and procfs.alive(body["pid"])
    assert client.health() == {"status": "ok"}  # the daemon stays up
    resource.prlimit(
        monitor, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    )

    def noted():
        notes = client.logs("t", stream="modeld", grep="dropped")["entries"]
        return notes[0] if notes else None

    note = wait_until(noted, message="the drop note")
    assert note["level"] == "warning" and "File too large" in note["msg"]
    assert int(note["msg"].split("dropped ")[1].split()[0]) >= 20
    entries = client.logs("t", limit=10_000)["entries"]
    seqs = [entry["seq"] for entry in entries]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # gapless across the drop
    wait_until(
        lambda: client.logs("t", stream="stdout", tail=1)["entries"][0]["seq"] > note["seq"],
        message="lines written again after the note",
    )
    resumed = client.logs("t", stream="stdout", tail=1)["entries"][0]
    assert int(resumed["msg"].split()[1]) > last_kept + 30
    assert procfs.alive(body["pid"]) and procfs.alive(monitor)


def test_corrupt_state_files_fall_back_to_the_previous_generation(daemon, tag, home):
    daemon.start()
    client = daemon.client()
    client.deploy(
        {"name": "m", "command": model("sleeper.py", tag=tag), "health": {"start_period": 0}}
    )
    client.stop("m")
    started = client.start("m")  # three generations of deployment.json: a previous one exists
    wait_until(lambda: client.get("m")["status"] == "running")
    daemon.kill()
    paths = os.path.join(home, "models", "m")
    for name in ("deployment.json", "state.json"):
        with open(os.path.join(paths, name), "r+b") as handle:
            handle.truncate(os.path.getsize(os.path.join(paths, name)) // 2)  # a torn write
    daemon.start()
    client = daemon.client()
    # The previous generation of state.json was older; the monitor's next refresh repairs it.
    model_now = wait_until(
        lambda: (lambda m: m if m["status"] == "running" else None)(client.get("m")),
        message="the state refreshed",
    )
    assert model_now["pid"] == started["pid"]
    with open(os.path.join(home, "daemon.log")) as handle:
        log_text = handle.read()
    assert "using the previous generation" in log_text and "deployment.json" in log_text
    assert fsutil.read_json(os.path.join(paths, "deployment.json"))["run"] == 2  # repaired
    assert len(model_processes(tag, daemon.pid)) == 2


def test_two_hundred_deploy_stop_cycles_leak_nothing(daemon, tag):
    daemon.start()
    client = daemon.client()
    spec = {"name": "cycle", "command": model("sleeper.py", tag=tag), "stop": {"timeout": 5}}

    def cycles(count):
        for _ in range(count):
            client.deploy(spec)
            client.stop("cycle")

    def measure():
        with open("/proc/%d/status" % daemon.pid) as handle:
            fields = dict(line.split(":", 1) for line in handle)
        return {
            "fds": len(os.listdir("/proc/%d/fd" % daemon.pid)),
            "threads": int(fields["Threads"]),
            "rss_kib": int(fields["VmRSS"].split()[0]),
        }

    cycles(20)  # warm up: caches, thread pool, first imports
    # Background threads (reconcile, metrics) hold a descriptor for a moment now and
    # then: the baseline is the least of a few looks, and a leak never goes back down.
    samples = [measure() for _ in range(20)]
    baseline = {key: min(sample[key] for sample in samples) for key in samples[0]}
    cycles(200)

    def settled():
        now = measure()
        back = now["fds"] <= baseline["fds"] and now["threads"] <= baseline["threads"]
        return now if back else None

    after = wait_until(settled, timeout=10, message="descriptors and threads back to the baseline")
    print("\nleak check over 200 cycles: baseline %s, after %s" % (baseline, after))
    assert after["rss_kib"] - baseline["rss_kib"] < 4096, "RSS grew by %d KiB" % (
        after["rss_kib"] - baseline["rss_kib"]
    )
    assert model_processes(tag, daemon.pid) == []


def test_monitor_death_during_backoff_is_recovered(daemon, tag):
    daemon.start()
    client = daemon.client()
    body = client.deploy(
        {
            "name": "c",
            "command": model("crasher.py", 1, 0.2, tag=tag),
            "restart": {"policy": "on-failure", "backoff": 2, "max_retries": 10},
        }
    )
    wait_until(lambda: client.get("c")["status"] == "backoff", message="backoff")
    os.kill(client.get("c")["monitor"]["pid"], signal.SIGKILL)
    replaced = wait_until(
        lambda: (
            lambda m: (
                m
                if m["monitor"]["alive"] and m["monitor"]["pid"] != body["monitor"]["pid"]
                else None
            )
        )(client.get("c")),
        message="a replacement monitor",
    )
    assert replaced["restarts"] >= 1
    client.stop("c")
    wait_until(lambda: model_processes(tag, daemon.pid) == [], message="nothing left")
