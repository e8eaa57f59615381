"""The GPU sampling tick: one ``nvidia-smi`` snapshot for all models, attributed to each.

A background thread (never a request) asks the driver every few seconds and
keeps the result; ``GET /models/{name}``, ``GET /gpus`` and a deploy's GPU
assignment read the last sample. The decisions are ``lib.daemon.gpus``'; this
module only gathers the inputs: the snapshot, each model's process tree (the
descendants of its monitor, whose pid AND start time are checked first) and
the current start time of every pid the driver named.
"""

import collections
import logging
import threading

from lib.core import nvidia, procfs
from lib.daemon import gpus

log = logging.getLogger("modeld.gpus")

GPU_SAMPLE_INTERVAL = 2.0

Sample = collections.namedtuple("Sample", "snapshot attribution trees commands")

_NOTHING = gpus.Attribution({}, frozenset())


class GpuSampler:
    """Samples GPUs every ``interval`` seconds for ``targets()`` -> ``{model: (pid, start)}``
    (each live model's monitor). ``smi``: an ``nvidia.NvidiaSmi``; without a path it never
    runs anything and every sample says why."""

    def __init__(self, smi, targets, interval=GPU_SAMPLE_INTERVAL):
        self.smi = smi
        self.targets = targets
        self.interval = interval
        self.latest = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="gpus", daemon=True)

    def start(self):
        if self.smi.available:
            self.thread.start()

    def stop(self):
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=self.smi.timeout * 2 + 5)

    def _run(self):
        while not self.stopping.wait(self.interval):
            try:
                self.refresh()
            except Exception:
                log.exception("sampling GPUs failed")

    def refresh(self):
        """Take one sample now (the thread's tick; also once at daemon start, for discovery)."""
        snapshot = (
            self.smi.snapshot()
            if self.smi.available
            else nvidia.empty_snapshot(
                "nvidia-smi not found (set it with modeld --nvidia-smi PATH)"
            )
        )
        if snapshot.error and (self.latest is None or self.latest.snapshot.error != snapshot.error):
            log.info("GPUs: %s", snapshot.error)
        trees = {name: _tree(pid, start) for name, (pid, start) in self.targets().items()}
        start_times = {app.pid: procfs.start_time(app.pid) for app in snapshot.apps}
        attribution = gpus.attribute(snapshot.apps, trees, start_times)
        commands = {pid: _command(pid) for pid in start_times if start_times[pid] is not None}
        self.latest = Sample(snapshot, attribution, trees, commands)
        return self.latest

    @property
    def devices(self):
        """The host's GPUs as last seen, and why there are none (for assignment)."""
        if self.latest is None:
            return (), "no GPU sample yet"
        return self.latest.snapshot.gpus, self.latest.snapshot.error

    def model_view(self, name, assignment):
        sample = self.latest
        if sample is None:
            return gpus.model_view(name, assignment, None, _NOTHING, False)
        live = bool(sample.trees.get(name))
        return gpus.model_view(name, assignment, sample.snapshot, sample.attribution, live)

    def inventory(self, assignments):
        sample = self.latest
        if sample is None:
            return gpus.inventory_view(None, assignments, _NOTHING)
        return gpus.inventory_view(
            sample.snapshot, assignments, sample.attribution, sample.commands
        )


def _tree(monitor_pid, monitor_start):
    """``{pid: start time}`` below a monitor, or nothing if that pid is another process now."""
    if not procfs.alive(monitor_pid, monitor_start):
        return {}
    return {stat.pid: stat.starttime for stat in procfs.descendants(monitor_pid)}


def _command(pid):
    stat = procfs.read_stat(pid)
    return stat.comm if stat else None
