"""GPU supervision end to end, on a host with two fake GPUs (tests/fakes/nvidia-smi).

The daemon runs the fake (``--nvidia-smi``); the test rewrites the JSON file it
answers from once it knows the model's real pid, as a driver would list it.
"""

import io
import os
import shutil

import pytest
from gpufakes import FAKE_SMI, MIB, FakeGpus, app, gpu

from conftest import model, wait_until
from lib import errors

A, B = "GPU-0000aaaa", "GPU-1111bbbb"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    fake = FakeGpus(tmp_path / "gpus.json")
    monkeypatch.setenv("FAKE_NVIDIA_SMI", fake.path)  # inherited by the daemon and monitors
    fake.write(gpus=[gpu(0, A, used=60000), gpu(1, B, used=1000)])
    return fake


@pytest.fixture
def gpu_daemon(daemon, fake):
    daemon.extra += ["--nvidia-smi", FAKE_SMI]
    daemon.start()
    return daemon


def log_text(client, name):
    return "\n".join(entry["msg"] for entry in client.logs(name, limit=1000)["entries"])


def test_a_model_gets_one_gpu_keeps_it_across_a_daemon_kill_and_shows_its_memory(
    gpu_daemon, fake, tag
):
    client = gpu_daemon.client()
    spec = {
        "name": "llm",
        "command": model("gpu_env.py", "--device", "{gpus}", tag=tag),
        "gpus": {"count": 1},
        "stop": {"timeout": 5},
    }
    created = client.deploy(spec)
    # the GPU with the most free memory, by UUID, in PCI bus order
    assert [g["uuid"] for g in created["gpus"]] == [B]
    text = wait_until(lambda: "argv=" in log_text(client, "llm") and log_text(client, "llm"))
    assert "CUDA_VISIBLE_DEVICES=%s" % B in text
    assert "CUDA_DEVICE_ORDER=PCI_BUS_ID" in text
    assert "argv=--device 1 " in text

    pid = wait_until(lambda: client.get("llm")["pid"])
    foreign = os.getpid()  # some process of somebody else's, holding memory on the other GPU
    fake.write(
        gpus=[gpu(0, A, used=60000), gpu(1, B, used=1512)],
        apps=[app(pid, B, 512), app(foreign, A, 2048)],
    )
    shown = wait_until(lambda: (client.get("llm")["gpu_memory_bytes"] or 0) == 512 * MIB)
    status = client.get("llm")
    assert status["gpus"] == [
        {"index": 1, "uuid": B, "name": "NVIDIA Fake 80GB", "memory_used_bytes": 512 * MIB}
    ]
    assert shown and status["gpu_memory_reason"] is None

    inventory = client.gpus()
    first, second = inventory["gpus"]
    assert second["models"] == ["llm"] and second["memory_free_bytes"] == (81920 - 1512) * MIB
    assert second["foreign_processes"] == []
    assert [p["pid"] for p in first["foreign_processes"]] == [foreign]
    assert first["models"] == []

    gpu_daemon.kill()
    gpu_daemon.start()
    client = gpu_daemon.client()
    after = client.get("llm")
    assert after["pid"] == pid and [g["uuid"] for g in after["gpus"]] == [B]
    wait_until(lambda: client.get("llm")["gpu_memory_bytes"] == 512 * MIB)

    # a restart of the model keeps its GPU
    client.restart("llm")
    wait_until(lambda: client.get("llm")["pid"] not in (None, pid))
    assert [g["uuid"] for g in client.get("llm")["gpus"]] == [B]

    fake.write(gpus=[gpu(0, A, used=60000), gpu(1, B, used=1000)])  # the driver freed it
    client.stop("llm")
    stopped = [e for e in client.events("llm") if e["to"] == "stopped"][-1]
    assert isinstance(stopped["gpu_released_after_s"], float)


def test_a_second_model_waits_for_gpu_memory_then_fails_naming_the_holder(gpu_daemon, fake, tag):
    client = gpu_daemon.client()
    first = {
        "name": "holder",
        "command": model("gpu_env.py", tag=tag),
        "gpus": {"ids": ["1"], "shared": True},
        "stop": {"timeout": 5},
    }
    client.deploy(first)
    pid = wait_until(lambda: client.get("holder")["pid"])
    fake.write(gpus=[gpu(0, A, used=60000), gpu(1, B, used=80000)], apps=[app(pid, B, 79000)])
    second = {
        "name": "waiter",
        "command": model("gpu_env.py", tag=tag),
        "gpus": {"ids": [B], "shared": True, "min_free_mib": 40000, "wait": 3},
    }
    client.deploy(second)
    waiting = wait_until(
        lambda: client.get("waiter")["waiting_for"] == "gpu" and client.get("waiter")
    )
    assert waiting["status"] == "starting" and waiting["pid"] is None
    failed = wait_until(lambda: client.get("waiter")["status"] == "failed" and client.get("waiter"))
    assert failed["last_exit"]["reason"] == "gpu_busy"
    assert "pid %d" % pid in failed["reason"]
    assert "model 'holder', managed by modeld" in failed["reason"]
    reasons = [e["reason"] for e in client.events("waiter")]
    assert any("waiting for GPU memory" in reason for reason in reasons)
    client.stop("holder")


@pytest.mark.parametrize(
    "gpus_field, env, field",
    [
        ({"count": 3}, {}, "gpus.count"),
        ({"ids": ["7"]}, {}, "gpus.ids"),
        ({"count": 1}, {"CUDA_VISIBLE_DEVICES": "0"}, "env.CUDA_VISIBLE_DEVICES"),
    ],
)
def test_requests_this_host_cannot_meet_are_400s_naming_the_field(
    gpu_daemon, tag, gpus_field, env, field
):
    spec = {"name": "x", "command": model("gpu_env.py", tag=tag), "gpus": gpus_field, "env": env}
    with pytest.raises(errors.ValidationError) as caught:
        gpu_daemon.client().deploy(spec)
    assert caught.value.details["field"] == field


def test_two_models_share_a_gpu_only_when_both_say_so(gpu_daemon, tag):
    client = gpu_daemon.client()
    spec = {"command": model("gpu_env.py", tag=tag), "stop": {"timeout": 5}}
    client.deploy(dict(spec, name="one", gpus={"ids": ["1"]}))
    with pytest.raises(errors.ModeldError) as caught:
        client.deploy(dict(spec, name="two", gpus={"ids": ["1"], "shared": True}))
    assert caught.value.code == "gpu_in_use"
    # a count goes to the GPU nobody reserved
    assert [
        g["index"] for g in client.deploy(dict(spec, name="three", gpus={"count": 1}))["gpus"]
    ] == [0]

    table = modelctl_output(gpu_daemon, "ps").splitlines()
    header = table[0].split()
    assert "GPU" in header
    cells = {line.split()[0]: line.split()[header.index("GPU")] for line in table[1:]}
    assert cells == {"one": "1", "three": "0"}
    table = modelctl_output(gpu_daemon, "gpus").splitlines()
    assert table[0].split() == ["GPU", "NAME", "UUID", "USED", "TOTAL", "UTIL%", "MODELS", "OTHERS"]
    assert [line.split()[0] for line in table[1:]] == ["0", "1"]
    assert table[2].split()[-2:] == ["one", "-"]


def modelctl_output(daemon, *argv):
    from lib.cli import modelctl

    out = io.StringIO()
    args = ["--host", daemon.url, "--token", daemon.token] + list(argv)
    assert modelctl.main(args, out=out) == 0
    return out.getvalue()


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this host has nvidia-smi")
def test_without_nvidia_smi_everything_works_and_a_gpu_request_says_none_was_found(api):
    assert api.get("/gpus").json["gpus"] == []
    response = api.post_json(
        "/models", {"name": "x", "command": ["true"], "gpus": {"count": 1}}, expect_errors=True
    )
    assert response.status_int == 400
    assert response.json["error"]["details"]["field"] == "gpus"
    assert "no GPU was found" in response.json["error"]["message"]
