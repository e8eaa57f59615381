"""nvidia-smi's CSV answers parsed without guessing, and the adapter's failures as data."""

import os

import pytest
from gpufakes import FAKE_SMI, MIB, FakeGpus, app, gpu

from lib.core import nvidia

H100 = "0, GPU-aaaa, NVIDIA H100 80GB HBM3, 81559, 1024, 80535, 37\n"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", []),
        ("\n\n", []),
        (
            H100,
            [
                nvidia.Gpu(
                    0, "GPU-aaaa", "NVIDIA H100 80GB HBM3", 81559 * MIB, 1024 * MIB, 80535 * MIB, 37
                )
            ],
        ),
        # [N/A] and other notes are unknown, never 0
        (
            "1, GPU-bbbb, Tesla T4, [N/A], [N/A], [Not Supported], [N/A]\n",
            [nvidia.Gpu(1, "GPU-bbbb", "Tesla T4", None, None, None, None)],
        ),
        # a MIG-like row: an index that is not a number, a MIG UUID
        (
            "0:1, MIG-cccc, NVIDIA A100 MIG 1g.10gb, 9728, 13, 9715, [N/A]\n",
            [
                nvidia.Gpu(
                    "0:1",
                    "MIG-cccc",
                    "NVIDIA A100 MIG 1g.10gb",
                    9728 * MIB,
                    13 * MIB,
                    9715 * MIB,
                    None,
                )
            ],
        ),
        # a device without a UUID cannot be pinned: skipped
        ("2, [N/A], Broken, 1, 1, 0, 0\n", []),
    ],
)
def test_parse_gpus(text, expected):
    assert nvidia.parse_gpus(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", []),
        ("4242, GPU-aaaa, 512\n", [nvidia.ComputeApp(4242, "GPU-aaaa", 512 * MIB)]),
        ("4242, GPU-aaaa, [N/A]\n", [nvidia.ComputeApp(4242, "GPU-aaaa", None)]),
        ("[N/A], GPU-aaaa, 10\n", []),
        (
            "1, GPU-a, 1\n2, GPU-b, 2\n",
            [nvidia.ComputeApp(1, "GPU-a", MIB), nvidia.ComputeApp(2, "GPU-b", 2 * MIB)],
        ),
    ],
)
def test_parse_compute_apps(text, expected):
    assert nvidia.parse_compute_apps(text) == expected


def test_a_row_with_the_wrong_number_of_fields_is_an_error_not_a_guess():
    with pytest.raises(nvidia.QueryError, match="unexpected nvidia-smi row"):
        nvidia.parse_gpus("0, GPU-aaaa, 81559\n")


@pytest.fixture
def fake(tmp_path, monkeypatch):
    fake = FakeGpus(tmp_path / "gpus.json")
    monkeypatch.setenv("FAKE_NVIDIA_SMI", fake.path)
    return fake


def test_snapshot_of_several_gpus_and_processes(fake):
    fake.write(
        gpus=[gpu(0, "GPU-a", used=600), gpu(1, "GPU-b"), gpu("1:0", "MIG-c", total=9728)],
        apps=[app(11, "GPU-a", 512), app(12, "GPU-a", 88)],
    )
    snapshot = nvidia.NvidiaSmi(FAKE_SMI).snapshot()
    assert snapshot.error is None
    assert [g.uuid for g in snapshot.gpus] == ["GPU-a", "GPU-b", "MIG-c"]
    assert snapshot.gpus[0].memory_free_bytes == (81920 - 600) * MIB
    assert snapshot.apps == (
        nvidia.ComputeApp(11, "GPU-a", 512 * MIB),
        nvidia.ComputeApp(12, "GPU-a", 88 * MIB),
    )
    assert fake.calls() == ["query-gpu", "query-compute-apps"]


@pytest.mark.parametrize(
    "config, error",
    [
        ({"gpus": []}, "no GPU found"),
        (
            {"exit": 9, "stderr": "NVIDIA-SMI has failed because it couldn't communicate"},
            "exited with code 9: NVIDIA-SMI has failed",
        ),
        ({"hang": 30, "gpus": [gpu(0, "GPU-a")]}, "did not answer within 0.5s"),
        ({"raw": {"query-gpu": "garbage\n"}}, "unexpected nvidia-smi row"),
    ],
)
def test_failures_are_reported_as_data(fake, config, error):
    fake.write(**config)
    snapshot = nvidia.NvidiaSmi(FAKE_SMI, timeout=0.5).snapshot()
    assert snapshot.gpus == () and snapshot.apps == ()
    assert error in snapshot.error


def test_no_nvidia_smi_at_all():
    smi = nvidia.NvidiaSmi(nvidia.find(None, {"PATH": "/nonexistent"}))
    assert not smi.available
    assert smi.snapshot().error == "nvidia-smi not found"
    assert nvidia.find("/nonexistent/nvidia-smi") is None
    assert nvidia.find(None, {"PATH": FAKE_SMI.rsplit("/", 1)[0]}) == FAKE_SMI


# Captured on an NVIDIA H200 (driver in a container, tools/gpu-check.sh's probe): a process
# holding 512 MiB through cuMemAlloc shows 1030 MiB (its CUDA context included).
H200_GPUS = "0, GPU-e06f7e84-4c64-9e4b-9f4c-1672581aba90, NVIDIA H200, 143771, 1039, 142118, 2\n"
H200_APPS = "429, GPU-e06f7e84-4c64-9e4b-9f4c-1672581aba90, 1030\n"


def test_real_h200_answers():
    (device,) = nvidia.parse_gpus(H200_GPUS)
    assert device.index == 0 and device.name == "NVIDIA H200"
    assert device.memory_free_bytes == 142118 * MIB and device.utilization_percent == 2
    (process,) = nvidia.parse_compute_apps(H200_APPS)
    assert process == nvidia.ComputeApp(429, device.uuid, 1030 * MIB)


def test_the_sampler_asks_once_per_tick_for_all_models_and_checks_monitor_identity(fake):
    import subprocess
    import sys

    from lib.core import procfs
    from lib.daemon import gpusampler

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        fake.write(gpus=[gpu(0, "GPU-a")], apps=[app(child.pid, "GPU-a", 100)])
        me = (os.getpid(), procfs.start_time(os.getpid()))
        targets = {"mine": me, "impostor": (os.getpid(), me[1] + 1), "other": me}
        sampler = gpusampler.GpuSampler(nvidia.NvidiaSmi(FAKE_SMI), lambda: targets)
        sample = sampler.refresh()
        assert fake.calls() == ["query-gpu", "query-compute-apps"]
        assert sample.trees["impostor"] == {}
        assert sample.attribution.owners[child.pid] in ("mine", "other")
        view = sampler.model_view("impostor", None)
        assert view["gpu_memory_bytes"] is None  # no live process of its own
    finally:
        child.kill()
        child.wait()
