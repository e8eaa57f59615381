"""Resource use of every model's process tree, sampled from /proc in the background.

Requests read the last sample instead of walking /proc themselves, so
``GET /models/{name}`` stays cheap however many processes a model has; CPU
percent needs two samples anyway.
"""

import logging
import threading
import time

from lib.core import procfs
from lib.logs import reader

log = logging.getLogger("modeld.metrics")

SAMPLE_INTERVAL = 2.0


class MetricsSampler:
    """A thread that samples ``targets()`` -> ``{name: (monitor_pid, logs_dir)}``."""

    def __init__(self, targets, interval=SAMPLE_INTERVAL, clock=time.monotonic, after=None):
        self.targets = targets
        self.after = after  # called after each round, on this thread (counters to refresh)
        self.interval = interval
        self.clock = clock
        self.values = {}
        self.previous = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="metrics", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)

    def get(self, name):
        return self.values.get(name)

    def forget(self, name):
        self.values.pop(name, None)
        self.previous.pop(name, None)

    def _run(self):
        while not self.stopping.wait(self.interval):
            try:
                self.sample_all()
                if self.after is not None:
                    self.after()
            except Exception:
                log.exception("sampling metrics failed")

    def sample_all(self):
        targets = self.targets()
        for name in list(self.values):
            if name not in targets:
                self.forget(name)
        for name, (monitor_pid, logs_dir) in targets.items():
            self.values[name] = self.sample(name, monitor_pid, logs_dir)

    def sample(self, name, monitor_pid, logs_dir):
        now = self.clock()
        stats = procfs.descendants(monitor_pid) if monitor_pid else []
        ticks, rss, threads = procfs.usage(stats)
        cpu = None
        previous = self.previous.get(name)
        if previous is not None and previous[0] == monitor_pid and now > previous[1]:
            used = max(0, ticks - previous[2]) / procfs.CLOCK_TICKS
            cpu = round(100.0 * used / (now - previous[1]), 1)
        self.previous[name] = (monitor_pid, now, ticks)
        return {
            "cpu_percent": cpu,
            "rss_bytes": rss,
            "threads": threads,
            "processes": len(stats),
            "cpu_seconds": round(ticks / procfs.CLOCK_TICKS, 2),
            "log_bytes": reader.LogReader(logs_dir).total_bytes(),
        }
