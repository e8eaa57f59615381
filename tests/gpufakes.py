"""Helpers for tests with fake GPUs: write the file tests/fakes/nvidia-smi answers from."""

import json
import os

from conftest import ROOT

FAKE_SMI = os.path.join(ROOT, "tests", "fakes", "nvidia-smi")
MIB = 1024 * 1024


def gpu(index, uuid, total=81920, used=0, name="NVIDIA Fake 80GB", util=0):
    return {
        "index": str(index),
        "uuid": uuid,
        "name": name,
        "memory.total": str(total),
        "memory.used": str(used),
        "memory.free": str(total - used),
        "utilization.gpu": str(util),
    }


def app(pid, uuid, used_mib):
    return {"pid": str(pid), "gpu_uuid": uuid, "used_memory": str(used_mib)}


class FakeGpus:
    """The JSON file behind the fake nvidia-smi; ``write`` replaces what it answers."""

    def __init__(self, path):
        self.path = str(path)

    def write(self, **config):
        temporary = self.path + ".tmp"
        with open(temporary, "w") as handle:
            json.dump(config, handle)
        os.replace(temporary, self.path)

    def calls(self):
        try:
            with open(self.path + ".calls") as handle:
                return handle.read().split()
        except FileNotFoundError:
            return []
