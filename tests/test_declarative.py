"""Declarative models end to end, with real model processes: PUT, POST /apply, prune, labels.

The ``live`` server runs the real app on cheroot in this process; the GPU test runs a
whole daemon with one fake GPU (tests/fakes/nvidia-smi).
"""

import threading

import pytest
from gpufakes import FAKE_SMI, FakeGpus, gpu

from conftest import model, processes_tagged, wait_until
from lib import errors


def sleeper(name, tag, **fields):
    spec = {"name": name, "command": model("sleeper.py", tag=tag), "stop": {"timeout": 5}}
    spec.update(fields)
    return spec


def pids(client, *names):
    return {name: wait_until(lambda name=name: client.get(name)["pid"]) for name in names}


def model_processes(tag):
    from lib.core import procfs

    return [pid for pid in processes_tagged(tag) if "sleeper.py" in " ".join(procfs.cmdline(pid))]


def read(path):
    with open(path) as handle:
        return handle.read()


def kinds(answer):
    return {step["name"]: step["kind"] for step in answer["plan"]}


def test_the_same_file_twice_restarts_nothing(live, tag):
    client = live.client()
    body = {"set": "prod", "models": [sleeper("a", tag), sleeper("b", tag, env={"X": "1"})]}
    first = client.apply(body)
    assert kinds(first) == {"a": "create", "b": "create"} and first["result"] == "applied"
    before = pids(client, "a", "b")
    second = client.apply(body)
    assert kinds(second) == {"a": "unchanged", "b": "unchanged"}
    assert second["summary"]["unchanged"] == 2
    assert pids(client, "a", "b") == before


def test_labels_in_place_keep_the_pid_and_env_restarts(live, tag, home):
    client = live.client()
    client.apply({"set": "prod", "models": [sleeper("a", tag)]})
    pid = pids(client, "a")["a"]
    plan = client.replace("a", sleeper("a", tag, labels={"team": "search"}), dry_run=True)
    assert plan["kind"] == "update-in-place" and plan["paths"] == ["labels.team"]
    step = client.replace("a", sleeper("a", tag, labels={"team": "search"}, stop={"timeout": 3}))
    assert step["kind"] == "update-in-place" and step["outcome"] == "done"
    assert pids(client, "a")["a"] == pid
    assert client.get("a")["spec"]["labels"] == {"team": "search"}
    state = live_state(home, "a")
    assert state.spec_generation == 2  # the monitor took the new settings
    unchanged = client.replace(
        "a", sleeper("a", tag, labels={"team": "search"}, stop={"timeout": 3})
    )
    assert unchanged["kind"] == "unchanged"
    answer = client.apply(
        {"set": "prod", "models": [sleeper("a", tag, labels={"team": "search"}, env={"Y": "2"})]}
    )
    step = answer["plan"][0]
    assert step["kind"] == "update-restart" and "env.Y" in step["paths"]
    new_pid = pids(client, "a")["a"]
    assert new_pid != pid
    assert client.list(labels=["team=search"])[0]["name"] == "a"
    assert client.list(labels=["team!=search"]) == []


def live_state(home, name):
    from lib.core import paths, protocol

    return protocol.read_state(paths.Home(home).model(name))


def test_prune_deletes_only_the_sets_own_models(live, tag):
    client = live.client()
    client.deploy(sleeper("hand", tag))
    client.apply({"set": "other", "models": [sleeper("theirs", tag)]})
    client.apply({"set": "prod", "models": [sleeper("a", tag), sleeper("b", tag)]})
    answer = client.apply({"set": "prod", "models": [sleeper("a", tag)], "prune": True})
    assert kinds(answer) == {"a": "unchanged", "b": "delete"}
    names = {m["name"] for m in client.list()}
    assert names == {"hand", "theirs", "a"}
    with pytest.raises(errors.ValidationError, match="prune_all"):
        client.apply({"set": "prod", "models": [], "prune": True})
    answer = client.apply({"set": "prod", "models": [], "prune_all": True}, dry_run=True)
    assert kinds(answer) == {"a": "delete"} and answer["dry_run"] is True
    assert {m["name"] for m in client.list()} == {"hand", "theirs", "a"}


def test_two_concurrent_applies_end_in_the_later_files_state(live, tag):
    client = live.client()
    first = {"set": "prod", "models": [sleeper("a", tag), sleeper("b", tag)]}
    later = {"set": "prod", "models": [sleeper("a", tag, env={"V": "2"}), sleeper("c", tag)]}
    later["prune"] = True
    refused = []

    def apply_with_retry(body, delay):
        threading.Event().wait(delay)
        while True:
            try:
                return live.client().apply(body)
            except errors.ApplyInProgressError:
                refused.append(body)
                threading.Event().wait(0.05)

    threads = [
        threading.Thread(target=apply_with_retry, args=(first, 0)),
        threading.Thread(target=apply_with_retry, args=(later, 0.05)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert refused and all(body is later for body in refused)
    models = {m["name"]: m for m in client.list()}
    assert set(models) == {"a", "c"}
    assert models["a"]["spec"]["env"] == {"V": "2"}
    for name in ("a", "c"):
        starts = [e for e in client.events(name, limit=100) if e["to"] == "starting"]
        running = [e for e in client.events(name, limit=100) if e["to"] == "running"]
        assert len(running) <= len(starts)
    # one process per model: never a second copy
    assert len(model_processes(tag)) == 2


def test_export_spec_applies_again_without_losing_secrets(live, tag):
    client = live.client()
    spec = sleeper("s", tag, env={"HF_TOKEN": "s3cret", "A": "1"})
    client.apply({"set": "prod", "models": [spec]})
    pid = pids(client, "s")["s"]
    exported = client.model_spec("s")
    assert exported["spec"]["env"]["HF_TOKEN"] == "@stored-secret" and exported["set"] == "prod"
    answer = client.apply({"set": "prod", "models": [exported["spec"]]})
    assert kinds(answer) == {"s": "unchanged"}
    assert pids(client, "s")["s"] == pid
    with pytest.raises(errors.ValidationError, match="HF_TOKEN"):
        client.apply({"set": "prod", "models": [dict(exported["spec"], name="new")]})


def test_replacing_a_by_b_on_one_gpu_never_runs_both(daemon, tag, tmp_path, monkeypatch):
    fake = FakeGpus(str(tmp_path / "gpus.json"))
    monkeypatch.setenv("FAKE_NVIDIA_SMI", fake.path)
    fake.write(gpus=[gpu(0, "GPU-0000aaaa", used=1000)])
    daemon.extra += ["--nvidia-smi", FAKE_SMI]
    daemon.start()
    client = daemon.client()
    journal = str(tmp_path / "journal")

    def holder(name):
        command = model("journal.py", "--journal", journal, "--name", name, tag=tag)
        return {"name": name, "command": command, "gpus": {"count": 1}, "stop": {"timeout": 5}}

    client.apply({"set": "prod", "models": [holder("a")]}, wait=True)
    answer = client.apply({"set": "prod", "models": [holder("b")], "prune": True}, wait=True)
    assert [(s["name"], s["kind"], s["outcome"]) for s in answer["plan"]] == [
        ("a", "delete", "done"),
        ("b", "create", "done"),
    ]
    wait_until(lambda: read(journal).count("up") == 2)
    lines = [line.split() for line in read(journal).splitlines()]
    assert [line[:2] for line in lines] == [["up", "a"], ["down", "a"], ["up", "b"]]
    # b's own events: it started once, after a was gone (a's were purged with it)
    down_a = float(lines[1][2])
    starting = [e for e in client.events("b", limit=50) if e["to"] == "starting"]
    assert len(starting) == 1
    from lib.core import timefmt

    assert timefmt.parse_rfc3339(starting[0]["at"]) / 1e6 >= down_a - 0.01
