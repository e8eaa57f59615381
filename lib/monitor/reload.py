"""In-place updates: a monitor rereads the settings that need no restart of its model.

The daemon bumps ``generation`` in ``deployment.json`` and sends ``SIGUSR1``
(``lib.core.protocol``, "Reload"). ``newer_deployment`` decides whether the file holds
a newer generation of this monitor's own deployment and run; ``apply_settings`` hands
the new sections to the parts that use them:

- the lifecycle: restart policy, stop signal and timeout, probe timings,
- the prober: interval, timeout, HTTP path or log pattern (never the probe's kind:
  that change restarts the model, see ``lib.core.specdiff``),
- the log writer: rotation size and backups (from its next write on).

The stop signal the model got as its parent-death signal at spawn stays the old one
until its next start: the kernel offers no way to change another process's.
"""

import re

from lib.core import protocol
from lib.core import spec as specs


def newer_deployment(current, candidate):
    """Is ``candidate`` (read from the file) a newer generation of ``current``'s run?"""
    if candidate is None:
        return False
    same_run = candidate.id == current.id and candidate.run == current.run
    return same_run and candidate.generation > current.generation


def apply_settings(life, prober, writer, spec):
    """Give the reloadable sections of ``spec`` to the lifecycle, prober and writer."""
    life.restart = spec["restart"]
    life.probe = spec["health"]
    life.stop_timeout = spec["stop"]["timeout"]
    life.stop_signal = spec["stop"]["signal"]
    if specs.probe_kind(spec["health"]) == prober.kind:
        prober.health = spec["health"]
        if prober.needle is not None:
            prober.needle = ("GET %s" % spec["health"]["http"]).encode()
        if prober.pattern is not None:
            prober.pattern = re.compile(spec["health"]["log"].encode())
    writer.max_bytes = spec["logs"]["max_bytes"]
    writer.backups = spec["logs"]["backups"]


def merged_spec(running, new):
    """The spec a monitor runs after a reload: its own, with the reloadable sections of
    ``new`` (an in-place update changes nothing else; a restart starts a new monitor)."""
    spec = dict(running)
    for section in protocol.RELOADABLE:
        if section in new:
            spec[section] = new[section]
    return spec
