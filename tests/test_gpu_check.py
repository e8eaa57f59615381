"""tools/gpu-check.sh, run against fakes (nvidia-smi and a libcuda.so.1 built here), so the
script for real GPU machines does not rot between the times someone runs it on one."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from gpufakes import gpu

from conftest import ROOT


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler for the fake libcuda")
def test_gpu_check_passes_against_fakes(tmp_path):
    library = tmp_path / "libcuda.so.1"
    source = os.path.join(ROOT, "tests", "fakes", "libcuda.c")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(library), source], check=True)
    config = tmp_path / "gpus.json"
    config.write_text(
        json.dumps(
            {
                "gpus": [gpu(0, "GPU-0000aaaa"), gpu(1, "GPU-1111bbbb")],
                "scan": {"match": str(config), "used_memory": "1030"},
            }
        )
    )
    env = dict(
        os.environ,
        PATH=os.path.join(ROOT, "tests", "fakes") + os.pathsep + os.environ["PATH"],
        LD_LIBRARY_PATH=str(tmp_path),
        FAKE_NVIDIA_SMI=str(config),
        PYTHON=sys.executable,
        TMPDIR=str(tmp_path),  # its temporary home, so the scan matches only this test's model
    )
    result = subprocess.run(
        ["bash", os.path.join(ROOT, "tools", "gpu-check.sh"), "16"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gpu-check: PASS" in result.stdout
    assert "modeld attributes 1030 MiB, nvidia-smi 1030 MiB" in result.stdout
    assert not [name for name in os.listdir(tmp_path) if name.startswith("modeld-gpu-check")]
