"""Control groups: what the host lets modeld create, and one model's own group.

``detect`` runs in the daemon at start. It finds the hierarchy this process lives
in (cgroup v2, or the v1 controllers ``memory``, ``pids``, ``cpu`` where the host
mounts those), and checks that it may create groups there (a read-only mount or a
foreign owner says no) for the home's base
group ``modeld-<hash of home>`` under its own (created by the first monitor that needs
it, removed by the last). The result travels to every
monitor in ``$MODELD_CGROUPS`` (``to_environ`` / ``from_environ``), so the daemon's
status and the monitor's actions agree on the mechanism.

cgroup v2 lets a group hand a controller to its children only while it holds no
process itself. The daemon's own group does hold processes (the daemon, the
monitors), so v2 works where the controllers are already enabled in its
``cgroup.subtree_control``, or in a systemd service's group, where the daemon first
moves the group's processes into the leaf ``modeld.daemon`` (what ``Delegate=yes``
expects). Everywhere else the reason is recorded and rlimits remain.

``ModelCgroup`` is one model's group (one directory per v1 controller): ``create``
writes the limits, ``attach`` runs in the model's child before exec, ``pids`` lists
every process in it (the stop uses it), ``oom_kills`` reads the OOM counter, ``remove``
deletes it once empty. Reads never raise; writes raise ``OSError`` to the caller.
"""

import json
import os

from lib.core import vocabulary

ENVIRON = "MODELD_CGROUPS"
WANTED = ("memory", "pids", "cpu")
V1_PERIOD_US = 100_000


class CgroupHost:
    """Where model groups go: ``version`` (1 or 2), ``bases`` (controller -> directory of
    the home's base group; v2 uses the one directory for all), ``reason`` (why some or
    all controllers are missing)."""

    def __init__(self, version, bases, reason=None):
        self.version = version
        self.bases = dict(bases)
        self.reason = reason

    @property
    def mechanism(self):
        if self.version == 2:
            return vocabulary.ENFORCED_BY_CGROUP_V2
        return vocabulary.ENFORCED_BY_CGROUP_V1

    def has(self, controller):
        return controller in self.bases

    def missing(self, controller):
        return self.reason or "the %s controller is not available to modeld" % controller

    def describe(self):
        return {"version": self.version, "controllers": sorted(self.bases), "reason": self.reason}

    def to_environ(self):
        return json.dumps({"version": self.version, "bases": self.bases, "reason": self.reason})

    def model(self, name):
        return ModelCgroup(self, name)


def from_environ(environ):
    """The daemon's ``CgroupHost`` as handed to a monitor (``None``: no cgroups)."""
    try:
        data = json.loads(environ.get(ENVIRON) or "null")
        return CgroupHost(data["version"], data["bases"], data.get("reason")) if data else None
    except (ValueError, KeyError, TypeError):
        return None


def detect(home_root, mountinfo="/proc/self/mountinfo", proc_cgroup="/proc/self/cgroup"):
    """``(host, reason)``: a ``CgroupHost`` with at least one controller, or ``None`` and why."""
    import hashlib  # here: it maps libcrypto, and only the daemon detects

    mounts = _mounts(_read(mountinfo) or "")
    membership = _membership(_read(proc_cgroup) or "")
    suffix = "modeld-" + hashlib.sha256(home_root.encode()).hexdigest()[:8]
    if any(controller in mounts for controller in WANTED):
        return _detect_v1(mounts, membership, suffix)
    if "" in mounts and "" in membership:
        return _detect_v2(os.path.join(mounts[""], membership[""].lstrip("/")), suffix)
    return None, "no cgroup hierarchy is mounted"


def _detect_v1(mounts, membership, suffix):
    bases, problems = {}, []
    for controller in WANTED:
        if controller not in mounts:
            problems.append("cgroup v1: %s is not mounted" % controller)
            continue
        own = membership.get(controller, "/").lstrip("/")
        parent = os.path.join(mounts[controller], own)
        if not os.access(parent, os.W_OK):
            problems.append("cgroup v1: %s is not writable" % parent)
            continue
        bases[controller] = os.path.join(parent, suffix)
    reason = "; ".join(problems) or None
    return (CgroupHost(1, bases, reason) if bases else None), reason


def _detect_v2(own, suffix):
    available = set((_read(os.path.join(own, "cgroup.controllers")) or "").split())
    wanted = [controller for controller in WANTED if controller in available]
    if not wanted:
        return None, "cgroup v2: none of %s is available in %s" % (", ".join(WANTED), own)
    base = os.path.join(own, suffix)
    try:
        _delegate_v2(own, wanted)
    except OSError as error:
        return None, "cgroup v2: cannot delegate %s in %s: %s" % (
            ", ".join(wanted),
            own,
            error.strerror or error,
        )
    return CgroupHost(2, {controller: base for controller in wanted}), None


def _delegate_v2(own, wanted):
    enabled = set((_read(os.path.join(own, "cgroup.subtree_control")) or "").split())
    if set(wanted) <= enabled:
        return
    if own.endswith(".service") and os.geteuid() == 0:
        leaf = os.path.join(own, "modeld.daemon")
        os.makedirs(leaf, exist_ok=True)
        for pid in (_read(os.path.join(own, "cgroup.procs")) or "").split():
            _write(os.path.join(leaf, "cgroup.procs"), pid)
    _enable(own, wanted)  # EBUSY while the group still holds a process


def _enable(directory, controllers):
    enabled = set((_read(os.path.join(directory, "cgroup.subtree_control")) or "").split())
    missing = [c for c in controllers if c not in enabled]
    if missing:
        _write(
            os.path.join(directory, "cgroup.subtree_control"), " ".join("+" + c for c in missing)
        )


class ModelCgroup:
    """One model's group: one directory per controller (v1) or one for all (v2)."""

    def __init__(self, host, name):
        self.host = host
        self.dirs = {c: os.path.join(base, name) for c, base in host.bases.items()}

    def directories(self):
        return sorted(set(self.dirs.values()))

    def create(self, values):
        """Make the group(s) and write ``values`` (``{limit: value}``); raises ``OSError``."""
        if self.host.version == 2:
            base = os.path.dirname(self.directories()[0])
            os.makedirs(base, exist_ok=True)
            _enable(base, sorted(self.dirs))
        for directory in self.directories():
            os.makedirs(directory, exist_ok=True)
        for path, text in self._settings(values):
            _write(path, text)

    def _settings(self, values):
        v2 = self.host.version == 2
        found = []
        if "memory_bytes" in values:
            memory = self.dirs["memory"]
            if v2:
                found += [(os.path.join(memory, "memory.max"), str(values["memory_bytes"]))]
                found += [(os.path.join(memory, "memory.swap.max"), "0")]
            else:
                found += [
                    (os.path.join(memory, "memory.limit_in_bytes"), str(values["memory_bytes"]))
                ]
        if "tasks" in values:
            found.append((os.path.join(self.dirs["pids"], "pids.max"), str(values["tasks"])))
        if "cpu" in values:
            quota = max(1000, int(values["cpu"] * V1_PERIOD_US))
            if v2:
                found.append(
                    (os.path.join(self.dirs["cpu"], "cpu.max"), "%d %d" % (quota, V1_PERIOD_US))
                )
            else:
                found.append(
                    (os.path.join(self.dirs["cpu"], "cpu.cfs_period_us"), str(V1_PERIOD_US))
                )
                found.append((os.path.join(self.dirs["cpu"], "cpu.cfs_quota_us"), str(quota)))
        return [(path, text) for path, text in found if _knob_exists(path, text)]

    def attach(self, pid):
        """Put ``pid`` in every directory of the group (in the child, before exec)."""
        for directory in self.directories():
            _write(os.path.join(directory, "cgroup.procs"), str(pid))

    def pids(self):
        """Every process in the group, in every directory (never raises)."""
        found = set()
        for directory in self.directories():
            text = _read(os.path.join(directory, "cgroup.procs")) or ""
            found.update(int(pid) for pid in text.split() if pid.isdigit())
        return sorted(found)

    def oom_kills(self):
        """The group's OOM kill count (``None`` where the kernel does not say)."""
        memory = self.dirs.get("memory")
        if memory is None:
            return None
        name = "memory.events" if self.host.version == 2 else "memory.oom_control"
        for line in (_read(os.path.join(memory, name)) or "").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return None

    def remove(self):
        """Delete the group's directories; ``False`` while one still holds a process."""
        removed = True
        for directory in self.directories():
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                continue
            except OSError:
                removed = False  # EBUSY: a process is still in it; the next stop retries
                continue
            try:
                os.rmdir(os.path.dirname(directory))  # the home's base, once it is empty
            except OSError:
                pass  # another model's group is still in it
        return removed


def _knob_exists(path, text):
    # memory.swap.max is absent without swap accounting: skip it rather than fail the spawn.
    return os.path.exists(path) or not path.endswith("swap.max")


def _mounts(text):
    """``{controller: mount point}`` for v1 controllers, ``{"": mount point}`` for v2."""
    found = {}
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        if tail[0] == "cgroup2":
            found.setdefault("", fields[4])
        elif tail[0] == "cgroup":
            for option in tail[2].split(","):
                if option in WANTED:
                    found.setdefault(option, fields[4])
    return found


def _membership(text):
    """``{controller: path}`` from ``/proc/self/cgroup`` (``""`` for the v2 line)."""
    found = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            found[controller] = parts[2]
    return found


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def _write(path, text):
    with open(path, "w") as handle:
        handle.write(text)
