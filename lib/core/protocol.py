"""The daemon<->monitor protocol: every file, byte and exit code the two processes share.

The daemon and a model's monitor never depend on a socket: they share the
model's directory (``lib.core.paths``), so either can die and come back. (A
datagram tells the daemon that a file changed; losing it only delays the news.) This
module is the only one that spells the keys of those files; the others use
the named types below.

::

    daemon                                              monitor
      | writes deployment.json (Deployment) ----------->  | reads it once at start
      | writes control.json (Control), then SIGUSR1 --->  | acts on a new id
      | bumps deployment.generation, then SIGUSR1 ----->  | rereads in-place settings
      |  <-------------- state.json (MonitorState)        | rewrites it on every change
      |  <-------------- datagram (lib.core.notify)       | then says so, never waiting
      |  <-------------- events.jsonl (lib.core.events)   | appends state changes
      |  is_locked(monitor.lock)?   <-------------------  | holds an exclusive flock for life
      |  launcher exit 0 / 75 / 1   <-------------------  | ready pipe: b"R" / b"L" / EOF

- **Lock**: a monitor holds an exclusive ``flock`` on ``monitor.lock`` for its
  whole life; the kernel drops it however the monitor dies. "A monitor is
  alive" means "the lock is held" (``monitor_alive``), never a pid from a file.
  The daemon's check takes a shared lock for an instant, so a monitor starting
  at that moment retries for ``LOCK_WAIT`` seconds before it gives up.
- **Start-up**: ``modeld monitor`` forks; the parent (the launcher the daemon
  waits for) reads one byte from the ready pipe and exits with
  ``launcher_exit_code``: 0 once the monitor holds its lock, ``EXIT_LOCKED``
  (75) when another monitor already holds it, 1 when it died first. Both 0
  and 75 mean "a monitor is up" (``monitor_is_up``).
- **State**: ``state.json`` carries ``SCHEMA``. A file with another version is
  treated like a torn one: the previous generation is used if it can be read,
  and one warning names the version (``read_state``).
- **Template**: with ``MODELD_MONITOR_ZYGOTE`` not ``0``, monitors are forked
  from one warm template process per daemon (``lib.monitor.zygote``). The
  daemon writes one ``template_request`` line per monitor to its stdin; it
  answers ``started N PID`` then ``exited N CODE`` (the launcher's exit status
  above). The template ends at EOF (the daemon is gone); its monitors do not.
- **Change notification**: after each write of ``state.json`` the monitor sends
  one datagram (model, monitor pid, ``generation``) to the daemon's notification
  socket, without blocking and ignoring every failure; the file stays the truth
  and the datagram only says "read it again" (``lib.core.notify``).
- **Control**: ``control.json`` holds the latest command (stop, restart or unload, an
  id, a timeout, a cause). The monitor acts on an id it has not acted on yet
  and reports the id it handled in ``state.json``. A command not handled yet is
  *pending*; ``command_to_write`` decides what a new command does to it (a
  restart or an unload never replaces a pending stop).
- **Stop by signal**: ``SIGTERM`` (or ``SIGINT``) to a monitor means "stop the
  model" with the spec's timeout, no file needed (``STOP_SIGNAL``). The daemon
  uses it when ``control.json`` cannot be written (a full disk, a read-only
  directory): a stop must reach the monitor even then.
- **Reload** (in-place updates, ``PUT /models/{name}``): the daemon rewrites
  ``deployment.json`` with the new spec and ``generation`` + 1 (same id, same run),
  then sends ``SIGUSR1``. On every ``SIGUSR1`` the monitor compares the file's
  generation with its own; on a newer one it applies the settings that need no
  restart (``RELOADABLE``: restart policy, stop settings, log rotation, probe
  timings) and reports the generation it runs in ``state.json`` (``spec_generation``). It is not a
  control command, so it can never displace a pending stop or restart.
"""

import json
import os
import signal

from lib.core import fsutil, timefmt, vocabulary

SCHEMA = 1

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75  # another monitor holds the lock: not a failure, the model has a monitor
READY, LOCKED = b"R", b"L"  # the bytes of the ready pipe
LOCK_WAIT = 3.0

OP_STOP, OP_RESTART = "stop", "restart"
OP_UNLOAD = "unload"  # an on-demand model back to idle; ``reason``: vocabulary.UNLOAD_REASONS
STOP_SIGNAL = signal.SIGTERM  # to a monitor: stop the model (see "Stop by signal" above)
OPS = (OP_STOP, OP_RESTART, OP_UNLOAD)
# The spec sections a monitor rereads without restarting its model (see "Reload").
RELOADABLE = ("restart", "stop", "logs", "health", "labels")


def launcher_exit_code(answer):
    """The launcher's exit status for what the monitor wrote to the ready pipe (b"" = died)."""
    return {READY: EXIT_OK, LOCKED: EXIT_LOCKED}.get(answer, EXIT_FAILED)


def monitor_is_up(code):
    """Does this launcher exit status mean the model has a live monitor?"""
    return code in (EXIT_OK, EXIT_LOCKED)


TEMPLATE_ENV = "MODELD_MONITOR_ZYGOTE"
TEMPLATE_DEFAULT = "1"


def template_enabled(environ):
    """Are monitors forked from the template? (``MODELD_MONITOR_ZYGOTE=0`` turns it off.)"""
    return environ.get(TEMPLATE_ENV, TEMPLATE_DEFAULT) != "0"


def template_request(home_root, name, run, recover, monitor_log):
    """The line that asks the template for one monitor."""
    return json.dumps([home_root, name, run, bool(recover), monitor_log]).encode() + b"\n"


def read_template_request(line):
    """(home_root, name, run, recover, monitor_log) of a request line."""
    home_root, name, run, recover, monitor_log = json.loads(line)
    return home_root, name, int(run), bool(recover), monitor_log


def template_answer(kind, number, value):
    """``started N PID`` or ``exited N CODE``."""
    return b"%s %d %d\n" % (kind.encode(), number, value)


def read_template_answer(line):
    kind, number, value = line.split()
    return kind.decode(), int(number), int(value)


def new_id(size=8):
    """A random hex id (not ``secrets``: it would load hashlib into every monitor)."""
    return os.urandom(size).hex()


# -- the lock ------------------------------------------------------------------------


def monitor_alive(system, model_paths):
    """Is a monitor alive for this model? True while one holds ``monitor.lock``."""
    return system.is_locked(model_paths.lock)


def hold_monitor_lock(system, model_paths, wait=LOCK_WAIT, poll=0.01):
    """Take the monitor's lock for life, retrying past the daemon's brief checks; or ``None``."""
    deadline = system.monotonic() + wait
    while True:
        lock = system.try_lock(model_paths.lock)
        if lock is not None or system.monotonic() > deadline:
            return lock
        system.sleep(poll)


# -- deployment.json (daemon writes, monitor reads) ---------------------------------


class Deployment:
    """The persisted record of one model: desired state, spec, port and run counter.

    ``run`` is bumped each time a new monitor is started for it, so the daemon
    can tell a monitor's fresh state file from one left by an earlier run.
    """

    def __init__(
        self, spec, port, run=1, deploy_id=None, desired=vocabulary.DESIRED_RUNNING, **extra
    ):
        self.spec = spec
        self.port = port
        self.run = run
        self.id = deploy_id or new_id(6)
        self.desired = desired
        self.created_at = extra.get("created_at") or timefmt.now_us()
        self.updated_at = extra.get("updated_at") or self.created_at
        self.cause = extra.get("cause")
        # The GPUs assigned to it ([{index, uuid, name}] or None), kept until it is redeployed.
        self.gpus = extra.get("gpus")
        # An on-demand model's public port (spec ``activation.listen`` resolved), or None.
        self.listen = extra.get("listen")
        # Bumped by an in-place update (see "Reload"); the monitor reports the one it runs.
        self.generation = extra.get("generation") or 1
        # The body as submitted (secrets in clear, as in ``spec``): compared after parsing
        # it again with the current parser, so a new default restarts nothing.
        self.submitted = extra.get("submitted")
        # The apply set that created it (``POST /apply``), or None when deployed by hand.
        self.owner = extra.get("owner")

    @property
    def name(self):
        return self.spec["name"]

    @property
    def wanted(self):
        return self.desired == vocabulary.DESIRED_RUNNING

    def encode(self):
        return {
            "schema": SCHEMA,
            "id": self.id,
            "run": self.run,
            "desired": self.desired,
            "spec": self.spec,
            "port": self.port,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "cause": self.cause,
            "gpus": self.gpus,
            "listen": self.listen,
            "generation": self.generation,
            "submitted": self.submitted,
            "owner": self.owner,
        }

    @staticmethod
    def problem(data, name):
        """Why ``data`` is not a usable record of model ``name`` (``None``: it is). Pure."""
        spec = data.get("spec")
        if not isinstance(spec, dict):
            return "its spec is %s, not an object" % type(spec).__name__
        if spec.get("name") != name:
            return "its spec names %r, not %r" % (spec.get("name"), name)
        if not isinstance(spec.get("command"), list) or not spec["command"]:
            return "its spec has no command list"
        for key in ("health", "restart", "stop", "logs"):
            if not isinstance(spec.get(key), dict):
                return "its spec has no %s section" % key
        run = data.get("run", 1)
        if not isinstance(run, int) or isinstance(run, bool) or run < 1:
            return "its run is %r, not a positive integer" % (run,)
        if data.get("desired", vocabulary.DESIRED_RUNNING) not in vocabulary.DESIRED_STATES:
            return "its desired state is %r" % (data.get("desired"),)
        try:
            json.dumps(data).encode("utf-8")
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError):
            return "it holds text that is not valid UTF-8"
        return None

    @classmethod
    def decode(cls, data):
        """The record in ``data``, or ``None`` if it has no spec."""
        if data is None or "spec" not in data:
            return None
        return cls(
            data["spec"],
            data.get("port"),
            run=data.get("run", 1),
            deploy_id=data.get("id"),
            desired=data.get("desired", vocabulary.DESIRED_RUNNING),
            created_at=data.get("created_at"),
            updated_at=data.get("updated_at"),
            cause=data.get("cause"),
            gpus=data.get("gpus"),  # absent in homes older than GPU support
            listen=data.get("listen"),  # absent in homes older than on-demand models
            generation=data.get("generation"),  # these three: absent before declarative models
            submitted=data.get("submitted"),
            owner=data.get("owner"),
        )


# -- control.json (daemon writes, monitor reads) ------------------------------------


class Control:
    """One stop, restart or unload command; ``timeout`` overrides the spec's stop timeout;
    ``reason``: why an unload (``vocabulary.UNLOAD_REASONS``)."""

    def __init__(self, op, timeout=None, cause=None, control_id=None, reason=None):
        if op not in OPS:
            raise ValueError("unknown control op %r" % op)
        self.op = op
        self.timeout = timeout
        self.cause = cause
        self.id = control_id or new_id()
        self.reason = reason

    @property
    def restart(self):
        return self.op == OP_RESTART

    def encode(self):
        return {
            "id": self.id,
            "op": self.op,
            "timeout": self.timeout,
            "cause": self.cause,
            "reason": self.reason,
        }

    @classmethod
    def decode(cls, data):
        """The command in ``data``, or ``None`` for anything that is not one."""
        if not data or data.get("op") not in OPS or not data.get("id"):
            return None
        return cls(
            data["op"], data.get("timeout"), data.get("cause"), data["id"], data.get("reason")
        )

    def __repr__(self):
        return "Control(%r, id=%r)" % (self.op, self.id)


def command_to_write(pending, handled_id, new):
    """Which command control.json must hold when ``new`` arrives while ``pending`` is there.

    ``handled_id``: the id the monitor last acted on (``MonitorState.control_id``).
    A pending stop wins over a new restart or unload: the operator's stop must never be
    lost because a restart came before the monitor read it. Anything else: the
    newest command wins (a stop replaces a pending restart; the monitor keeps
    the stricter deadline of two stops it sees).
    """
    is_pending = pending is not None and pending.id != handled_id
    if is_pending and pending.op == OP_STOP and new.op in (OP_RESTART, OP_UNLOAD):
        return pending
    return new


def read_control(model_paths):
    """The command in control.json, or ``None``."""
    return Control.decode(fsutil.read_json_quietly(model_paths.control))


def write_control(model_paths, control):
    fsutil.write_json_atomic(model_paths.control, control.encode(), keep_previous=False)


# -- state.json (monitor writes, daemon reads) ----------------------------------------


class MonitorState:
    """What a monitor observed: the content of ``state.json``.

    Times are microseconds since the epoch. ``processes``: ``[pid, start time]``
    of every process of the model's tree, so a successor can stop what is left.
    ``last_exit``: ``code``, ``signal``, ``at``, ``reason``, ``last_lines``.
    ``waiting_for``: what a ``starting`` model waits for before its process is started
    (``vocabulary.WAITING_FOR_GPU``), else ``None``. ``activation``: an on-demand model's
    relay (``listen``, ``state``, ``pending``, ``connections``, ``last_activity``,
    ``unloads``, ``refused``), else ``None``. ``spec_generation``: the deployment
    generation (see "Reload") whose settings it runs. ``generation``: bumped by the
    monitor on every write (a successor continues its predecessor's count); a file written
    before the field existed reads as 0. The change notification carries it
    (``lib.core.notify``).
    """

    FIELDS = (
        "name deploy_id run monitor_pid monitor_starttime boot_id status health ready reason "
        "pid pid_starttime port started_at restarts retries next_start_at last_exit processes "
        "control_id log_id updated_at waiting_for activation spec_generation generation"
    ).split()
    __slots__ = FIELDS

    def __init__(self, **values):
        unknown = set(values) - set(self.FIELDS)
        if unknown:
            raise TypeError("unknown state fields %s" % sorted(unknown))
        for field in self.FIELDS:
            setattr(self, field, values.get(field))
        self.restarts = self.restarts or 0
        self.retries = self.retries or 0
        self.processes = self.processes or []
        self.generation = self.generation or 0

    @property
    def active(self):
        return self.status in vocabulary.ACTIVE

    @property
    def terminal(self):
        return self.status in vocabulary.TERMINAL

    def encode(self):
        data = {field: getattr(self, field) for field in self.FIELDS}
        pid, starttime = data.pop("monitor_pid"), data.pop("monitor_starttime")
        data["monitor"] = {"pid": pid, "starttime": starttime}
        data["schema"] = SCHEMA
        return data

    @classmethod
    def decode(cls, data):
        values = {field: data.get(field) for field in cls.FIELDS}
        monitor = data.get("monitor") or {}
        values["monitor_pid"] = monitor.get("pid")
        values["monitor_starttime"] = monitor.get("starttime")
        return cls(**values)


_warned_versions = set()


def _check_schema(path, warn):
    def check(data):
        version = data.get("schema")
        if version == SCHEMA:
            return None
        problem = "unknown schema %r (this modeld reads %d)" % (version, SCHEMA)
        if warn is not None and (path, version) not in _warned_versions:
            _warned_versions.add((path, version))
            warn("%s: %s; treating it as unreadable" % (path, problem))
        return problem

    return check


def read_state(model_paths, warn=None, on_fallback=None):
    """The monitor's ``MonitorState`` (its previous generation if the file is torn), or ``None``.

    A file of an unknown schema version counts as unreadable: its previous
    generation is used if that one is readable. ``warn`` hears about it once per
    version; ``on_fallback`` about every use of the previous generation.
    """
    try:
        check = _check_schema(model_paths.state, warn)
        data = fsutil.read_json(model_paths.state, warn=on_fallback, check=check)
    except fsutil.Corrupt:
        return None
    return None if data is None else MonitorState.decode(data)


def write_state(model_paths, state, durable):
    fsutil.write_json_atomic(model_paths.state, state.encode(), durable=durable)
