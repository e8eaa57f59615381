"""What the NVIDIA driver says about the host's GPUs, through ``nvidia-smi``'s CSV queries.

Two queries, both ``--format=csv,noheader,nounits``:

- ``--query-gpu=index,uuid,name,memory.total,memory.used,memory.free,utilization.gpu``:
  one row per device (``Gpu``);
- ``--query-compute-apps=pid,gpu_uuid,used_memory``: one row per process holding
  memory on a device (``ComputeApp``).

The parsers are pure and never guess: ``[N/A]`` (and every other bracketed note
the driver prints, such as ``[Not Supported]``) becomes ``None``, never 0. The
adapter (``NvidiaSmi.snapshot``) runs the program with a timeout, because a
wedged driver hangs it, and reports a failure as data (``Snapshot.error``)
instead of raising: a caller shows "unknown", it never falls over.

Used by the daemon's sampler and by the monitor's VRAM gate; standard library only.
"""

import collections
import csv
import io
import os
import subprocess
import time

MIB = 1024 * 1024
# The daemon tells each monitor which nvidia-smi to run through this variable.
MONITOR_ENV = "MODELD_NVIDIA_SMI"
DEFAULT_TIMEOUT = 5.0
GPU_FIELDS = (
    "index",
    "uuid",
    "name",
    "memory.total",
    "memory.used",
    "memory.free",
    "utilization.gpu",
)
APP_FIELDS = ("pid", "gpu_uuid", "used_memory")

Gpu = collections.namedtuple(
    "Gpu",
    "index uuid name memory_total_bytes memory_used_bytes memory_free_bytes utilization_percent",
)
ComputeApp = collections.namedtuple("ComputeApp", "pid gpu_uuid used_memory_bytes")
# ``taken_at``: time.time() of the query; ``error``: why there is nothing (None when fine).
Snapshot = collections.namedtuple("Snapshot", "gpus apps taken_at error")


class QueryError(Exception):
    """nvidia-smi could not answer: missing, timed out, failed, or printed nonsense."""


def empty_snapshot(error):
    return Snapshot((), (), time.time(), error)


def _value(text):
    """A field as printed: stripped, with ``[N/A]``-like notes as ``None``."""
    text = text.strip()
    if not text or (text.startswith("[") and text.endswith("]")) or text == "N/A":
        return None
    return text


def _integer(text):
    value = _value(text)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _mib(text):
    value = _integer(text)
    return None if value is None else value * MIB


def _index(text):
    """A device index: an int for a whole GPU; a MIG-style ``0:1`` stays a string."""
    value = _value(text)
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def _rows(text, width):
    """The CSV rows of ``width`` fields; blank lines are skipped, a malformed row is an error."""
    rows = []
    for row in csv.reader(io.StringIO(text), skipinitialspace=True):
        if not row or not "".join(row).strip():
            continue
        if len(row) != width:
            raise QueryError(
                "unexpected nvidia-smi row (%d fields, not %d): %r" % (len(row), width, row)
            )
        rows.append(row)
    return rows


def parse_gpus(text):
    """``Gpu`` rows of a ``--query-gpu`` answer in ``GPU_FIELDS`` order."""
    gpus = []
    for row in _rows(text, len(GPU_FIELDS)):
        uuid = _value(row[1])
        if uuid is None:
            continue  # a device without a UUID cannot be pinned or attributed
        gpus.append(
            Gpu(
                index=_index(row[0]),
                uuid=uuid,
                name=_value(row[2]),
                memory_total_bytes=_mib(row[3]),
                memory_used_bytes=_mib(row[4]),
                memory_free_bytes=_mib(row[5]),
                utilization_percent=_integer(row[6]),
            )
        )
    return gpus


def parse_compute_apps(text):
    """``ComputeApp`` rows of a ``--query-compute-apps`` answer in ``APP_FIELDS`` order."""
    apps = []
    for row in _rows(text, len(APP_FIELDS)):
        pid = _integer(row[0])
        if pid is None:
            continue  # the driver could not name the process: nothing to attribute
        apps.append(ComputeApp(pid, _value(row[1]), _mib(row[2])))
    return apps


def find(configured=None, environ=None):
    """The nvidia-smi to run: ``configured`` (checked) or the one on ``PATH``; None if none."""
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    environ = os.environ if environ is None else environ
    # Not shutil.which: shutil loads bz2, lzma and zlib, and the monitor runs this.
    for folder in environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(folder or os.curdir, "nvidia-smi")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


class NvidiaSmi:
    """Runs ``nvidia-smi`` (at ``path``; None = there is none) with a timeout."""

    def __init__(self, path, timeout=DEFAULT_TIMEOUT):
        self.path = path
        self.timeout = timeout

    @property
    def available(self):
        return self.path is not None

    def run(self, query, fields):
        """The stdout of one CSV query; ``QueryError`` saying why not."""
        if self.path is None:
            raise QueryError("nvidia-smi not found")
        argv = [self.path, "--%s=%s" % (query, ",".join(fields)), "--format=csv,noheader,nounits"]
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.timeout,
                text=True,
                errors="replace",
            )
        except subprocess.TimeoutExpired:
            raise QueryError("nvidia-smi did not answer within %gs" % self.timeout) from None
        except OSError as error:
            raise QueryError("cannot run %s: %s" % (self.path, error.strerror or error)) from None
        if done.returncode != 0:
            said = (done.stdout + done.stderr).strip().splitlines()
            raise QueryError(
                "nvidia-smi exited with code %d%s"
                % (done.returncode, ": %s" % said[0] if said else "")
            )
        return done.stdout

    def snapshot(self):
        """Devices and compute processes now; a failure is ``Snapshot.error``, never raised."""
        try:
            gpus = parse_gpus(self.run("query-gpu", GPU_FIELDS))
            apps = parse_compute_apps(self.run("query-compute-apps", APP_FIELDS)) if gpus else []
        except QueryError as error:
            return empty_snapshot(str(error))
        return Snapshot(tuple(gpus), tuple(apps), time.time(), None if gpus else "no GPU found")


def gpu_dict(gpu):
    return {
        "index": gpu.index,
        "uuid": gpu.uuid,
        "name": gpu.name,
        "memory_total_bytes": gpu.memory_total_bytes,
        "memory_used_bytes": gpu.memory_used_bytes,
        "memory_free_bytes": gpu.memory_free_bytes,
        "utilization_percent": gpu.utilization_percent,
    }
