"""The daemon's side of supervision: deployments in, monitors out, state read back.

The daemon never holds a model's output and never signals a model itself: it
persists what the operator wants (``lib.daemon.registry``), starts one monitor per
model (``lib.monitor.loop``), tells a monitor to stop or restart through
``control.json`` plus ``SIGUSR1``, and reads each monitor's ``state.json``.

Every monitor is spawned from one long-lived thread (the supervisor thread),
never from an HTTP worker. The same thread reconciles once a second: it asks
``lib.daemon.reconcile.decide`` what to do about each model and does it: a
monitor that died is replaced (the replacement stops what its predecessor left
and applies the restart policy); a live monitor found after a daemon restart
is adopted (and logged), never duplicated. A monitor is alive while it holds
``monitor.lock``; its identity (pid AND start time) is checked before it is
signalled. The files and their rules are ``lib.core.protocol``; every OS call
goes through ``lib.core.system``.
"""

import concurrent.futures
import logging
import os
import queue
import signal
import threading

from lib import errors
from lib.core import leftovers, notify, nvidia, protocol, redact, specdiff, timefmt, vocabulary
from lib.core import spec as specs
from lib.core.system import System
from lib.daemon import (
    apply,
    eventfeed,
    gpus,
    gpusampler,
    launcher,
    preflight,
    privilege,
    reconcile,
    registry,
    sampler,
    statecache,
    status,
    telemetry,
)
from lib.logs import reader

log = logging.getLogger("modeld.supervisor")

RECONCILE_INTERVAL = 1.0
LAUNCH_POLL = 0.005
POLL = 0.02
# A waiter that heard nothing for this long reads the file itself (no datagrams?).
WAIT_RELOAD = 0.1


class Supervisor:
    """The daemon's model of every deployment, and the one thread that acts on monitors.

    Lives from ``start()`` (load, adopt or replace, then reconcile once a second)
    to ``shutdown()``; HTTP workers call its operations, which hand every spawn
    to the supervisor thread. ``system`` is the OS seam (a fake in unit tests).
    """

    def __init__(
        self,
        home,
        log_defaults=None,
        environ=None,
        sample_interval=None,
        system=None,
        nvidia_smi=None,
        policy=None,
    ):
        self.home = home
        self.policy = policy or privilege.Policy()  # who runs, which programs, which limits
        self.system = system or System()
        self.registry = registry.Registry(home)
        self.log_defaults = log_defaults or {}
        self.environ = dict(os.environ if environ is None else environ)
        smi = nvidia.NvidiaSmi(nvidia.find(nvidia_smi, self.environ))
        if smi.available:  # monitors run it too: for the VRAM gate and the release check
            self.environ[nvidia.MONITOR_ENV] = smi.path
        self.environ.update(self.policy.monitor_environ())
        self.gpus = gpusampler.GpuSampler(
            smi, self._gpu_targets, sample_interval or gpusampler.GPU_SAMPLE_INTERVAL
        )
        self.records = {}
        self.broken = {}  # name -> why its deployment.json is unusable (listed, never run)
        self.launcher = launcher.Launcher(home, self.environ, self.system)
        self.watched = set()  # names whose live monitor this supervisor knows (adopted or started)
        self.name_locks = {}
        self.finishing = set()  # names whose stop a request thread is seeing through
        self.control_locks = {}
        self.lock = threading.RLock()
        self.commands = queue.Queue()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self.states = statecache.StateCache(self._read_state_file)
        self.state_refresher = statecache.Refresher(self.states, lambda: notify.Listener(home.root))
        self.telemetry = telemetry.Telemetry(self.names, home.model)
        self.sampler = sampler.MetricsSampler(
            self._sample_targets,
            sample_interval or sampler.SAMPLE_INTERVAL,
            after=self.telemetry.refresh,
        )
        self.applier = apply.Applier(self)  # PUT /models/{name}, POST /apply

    # -- life of the supervisor ----------------------------------------------

    def start(self):
        """Load deployments, adopt or replace their monitors, start the background threads."""
        self.state_refresher.start()  # bound before any monitor is started: no news lost
        self.records = self.registry.load_all()
        self.broken = dict(self.registry.broken)
        for record in self.records.values():
            self._catch_up(record)
        self.gpus.refresh()  # discovery: a deploy asking for GPUs needs the inventory
        self.thread.start()
        self._call(self._reconcile)
        # Ready means every model has a live monitor again: wait for the replacements.
        outcomes = self._call(self.launcher.outcomes)
        concurrent.futures.wait(outcomes, timeout=launcher.START_TIMEOUT + 10)
        self.sampler.start()
        self.gpus.start()

    def _catch_up(self, record):
        """A record older than its monitor (read from a previous generation after a
        torn write) takes the run the monitor says it is running."""
        state = self.states.reload(record.name)
        if state is not None and state.deploy_id == record.id and (state.run or 0) > record.run:
            log.warning(
                "the deployment of %r is behind its monitor (run %d < %d): catching up",
                record.name,
                record.run,
                state.run,
            )
            record.run = state.run
            if state.active:
                record.desired = vocabulary.DESIRED_RUNNING
            self.registry.save(record)

    def shutdown(self, stop_models=False, timeout=None):
        """Stop the threads; models keep running unless ``stop_models``."""
        if stop_models:
            self.stop_all(timeout)
        self.stopping.set()
        self.commands.put(None)
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(timeout=10)
        self.sampler.stop()
        self.gpus.stop()
        self.state_refresher.stop()
        self.launcher.close()

    def stop_all(self, timeout=None):
        """Stop every active model; ``{name: error}`` of those whose stop failed (logged)."""
        names = [
            name for name in self.names() if self.describe(name)["status"] in vocabulary.ACTIVE
        ]
        pending = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(16, len(names))))
        cause = {"reason": "daemon stop --models"}
        with pending:
            futures = {
                name: pending.submit(self.stop, name, timeout, False, cause) for name in names
            }
        failures = {}
        for name, future in futures.items():
            error = future.exception()
            if error is not None:
                failures[name] = error
                log.error("stopping %r failed: %s", name, error)
        return failures

    def _run(self):
        clock = self.system.monotonic
        next_reconcile = clock() + RECONCILE_INTERVAL
        while not self.stopping.is_set():
            timeout = max(0.0, next_reconcile - clock())
            if self.launcher.launching:
                timeout = min(timeout, LAUNCH_POLL)
            try:
                command = self.commands.get(timeout=timeout)
            except queue.Empty:
                command = None
            if command is not None:
                command()
            self._guarded(self.launcher.poll)
            if clock() >= next_reconcile and not self.stopping.is_set():
                self._guarded(self._reconcile)
                next_reconcile = clock() + RECONCILE_INTERVAL
        deadline = clock() + launcher.START_TIMEOUT
        while self.launcher.launching and clock() < deadline:
            self.launcher.poll()  # reap the launchers still running: no zombie, no warning
            self.system.sleep(LAUNCH_POLL)

    def _guarded(self, function):
        try:
            function()
        except Exception:
            log.exception("supervisor step failed")

    def _call(self, function, *args):
        """Run ``function`` on the supervisor thread and wait for its result."""
        if threading.current_thread() is self.thread:
            return function(*args)
        future = concurrent.futures.Future()

        def command():
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(function(*args))
                except BaseException as error:  # noqa: BLE001 - handed to the caller
                    future.set_exception(error)

        self.commands.put(command)
        try:
            return future.result(timeout=60)
        except concurrent.futures.TimeoutError:
            raise errors.UnavailableError("the supervisor is not answering") from None

    # -- reading state ---------------------------------------------------------

    def names(self):
        with self.lock:
            return sorted(self.records)

    def record(self, name):
        with self.lock:
            record = self.records.get(name)
        if record is None:
            raise errors.ModelNotFoundError(name)
        return record

    def read_state(self, name):
        """The monitor's ``protocol.MonitorState`` as held in memory (``lib.daemon.statecache``:
        at most ``LOST_NOTIFICATION_BOUND`` seconds behind the file, usually milliseconds)."""
        return self.states.get(name)

    def _read_state_file(self, name):
        """The monitor's state file now (its previous generation if the file is torn)."""
        return protocol.read_state(self.home.model(name), warn=log.warning)

    def monitor_alive(self, name):
        return protocol.monitor_alive(self.system, self.home.model(name))

    def describe(self, name):
        """The status payload of one model."""
        record = self.record(name)
        state = self.read_state(name)
        monitor = {"alive": self.monitor_alive(name), "failure": self.launcher.failures.get(name)}
        sample = self.sampler.get(name)
        if sample is None:
            sample = {"log_bytes": reader.LogReader(self.home.model(name).logs).total_bytes()}
        gpu = self.gpus.model_view(name, record.gpus)
        payload = status.model_status(record, state, monitor, sample, timefmt.now_us(), gpu)
        payload["limits_enforcement"] = self.policy.describe(record.spec)
        return payload

    def list(self, status_filter=None):
        found = []
        for name in self.names():
            try:
                payload = self.describe(name)
            except errors.ModelNotFoundError:
                continue  # purged while we listed
            if status_filter is None or payload["status"] in status_filter:
                found.append(payload)
        with self.lock:
            broken = sorted(self.broken.items())
        for name, reason in broken:
            if status_filter is None or vocabulary.BROKEN in status_filter:
                found.append(self._broken_status(name, reason))
        return found

    def _broken_status(self, name, reason):
        """What GET /models shows of a record that cannot be used: never hidden."""
        return {
            "name": name,
            "status": vocabulary.BROKEN,
            "broken": True,
            "reason": "deployment.json is unusable: %s" % reason,
            "monitor": {"alive": self.monitor_alive(name)},
        }

    def _retire_broken(self, name):
        """Before ``name`` is deployed again: stop a monitor its broken record left running.

        A live monitor would otherwise answer for the new deployment (the new one finds
        the lock taken). It is stopped by signal (``protocol.STOP_SIGNAL``), identified by
        pid AND start time from its state file. Returns the run the new record starts at.
        """
        state = self.read_state(name)
        if self.monitor_alive(name):
            if state is None or not self.system.alive(state.monitor_pid, state.monitor_starttime):
                raise errors.ModelBusyError(
                    "a monitor of the broken record of %r runs and cannot be identified: "
                    "stop it by hand (see %s)" % (name, self.home.model(name).lock),
                    name=name,
                )
            log.warning(
                "%r: stopping the monitor its broken record left (pid %d)", name, state.monitor_pid
            )
            self.system.kill(state.monitor_pid, protocol.STOP_SIGNAL)
            self._wait_monitor_gone(name, launcher.START_TIMEOUT + 60)
            self._check_nothing_left(name, state)
        with self.lock:
            self.broken.pop(name, None)
        return (state.run or 0) + 1 if state is not None else 1

    def _sample_targets(self):
        targets = {}
        for name in self.names():
            state = self.read_state(name)
            if state is not None and state.active and state.monitor_pid:
                targets[name] = (state.monitor_pid, self.home.model(name).logs)
        return targets

    def _gpu_targets(self):
        """``{model: (monitor pid, its start time)}`` of the live models, for GPU attribution."""
        targets = {}
        for name in self.names():
            state = self.read_state(name)
            if state is not None and state.active and state.monitor_pid:
                targets[name] = (state.monitor_pid, state.monitor_starttime)
        return targets

    def gpu_inventory(self):
        """The body of ``GET /gpus``: the last sample, with each model's assignment."""
        with self.lock:
            assignments = {record.name: record.gpus for record in self.records.values()}
        return self.gpus.inventory({name: gpu for name, gpu in assignments.items() if gpu})

    def _assign_gpus(self, spec, previous):
        """The GPUs of a deployment: sticky, unreserved first, then the most free memory."""
        with self.lock:
            records = list(self.records.values())
        devices, error = self.gpus.devices
        reserved = gpus.reservations(records, exclude=spec["name"])
        return gpus.assign(spec.get("gpus"), devices, reserved, previous, error)

    # -- operations ------------------------------------------------------------

    def _name_lock(self, name):
        with self.lock:
            return self.name_locks.setdefault(name, threading.Lock())

    def _exclusive(self, name):
        lock = self._name_lock(name)
        if not lock.acquire(timeout=5):
            raise errors.ModelBusyError(
                "another operation on model %r is in progress: retry shortly" % name, name=name
            )
        return lock

    def prepare(self, body):
        """Validate a deploy request and resolve its port (no side effects)."""
        # export-spec shows a secret as a reference: it means the stored one, like ***.
        spec = specs.parse_spec(specdiff.resolve_references(body), self.log_defaults)
        with self.lock:
            stored = self.records.get(spec["name"])
        # A spec read back from the API carries *** for its secrets: take them back from the
        # same model's stored spec, refuse them for a new name (never run a literal ***).
        spec = redact.unmask_spec(spec, stored.spec if stored is not None else None)
        preflight.check_cwd(spec)
        executable = preflight.resolve_executable(spec, self.environ)
        spec = self.policy.admit(spec, executable, self.environ)
        port = self._choose_port(spec)
        return spec, port, executable

    def _choose_port(self, spec):
        taken = self._ports_in_use(exclude=spec["name"])
        if spec["port"] == "auto":
            return preflight.pick_free_port(taken)
        if spec["port"] is not None:
            preflight.check_port(spec["port"], taken)
        return spec["port"]

    def _choose_listen(self, spec, port, previous):
        """An on-demand model's public port: the spec's, the previous deployment's (sticky,
        so clients keep their address across redeploys), or a free one."""
        section = spec.get("activation")
        if section is None:
            return None
        taken = self._ports_in_use(exclude=spec["name"])
        taken[port] = spec["name"]
        if section["listen"] != "auto":
            preflight.check_port(section["listen"], taken)
            return section["listen"]
        if previous is not None and previous.listen and previous.listen not in taken:
            return previous.listen
        return preflight.pick_free_port(taken)

    def _ports_in_use(self, exclude):
        taken = {}
        with self.lock:
            records = list(self.records.values())
        for record in records:
            if record.name == exclude or record.desired != vocabulary.DESIRED_RUNNING:
                continue
            for claimed in (record.port, record.listen):
                if claimed:
                    taken[claimed] = record.name
        return taken

    def dry_run(self, body):
        """Every check of a deploy, and what it would run, without starting anything."""
        spec, port, executable = self.prepare(body)
        current = self.records.get(spec["name"])
        if current is not None:
            status_now = self.describe(spec["name"])["status"]
            if status_now in vocabulary.ACTIVE:
                raise errors.ModelAlreadyRunningError(spec["name"], status_now)
        shown = redact.redact_spec(spec)
        previous = current.gpus if current is not None else None
        assignment = self._assign_gpus(spec, previous)
        return {
            "dry_run": True,
            "name": spec["name"],
            "port": port,
            "endpoint": "http://127.0.0.1:%d" % port if port else None,
            "executable": executable,
            "command": redact.redact_argv(specs.resolve_command(spec, port, assignment)),
            "gpus": assignment or [],
            "spec": shown,
        }

    def deploy(self, body, cause=None, owner=None):
        """Persist a new deployment and start its monitor; returns once the monitor reported.

        ``owner``: the apply set deploying it (else the previous record's is kept)."""
        spec, port, _ = self.prepare(body)
        name = spec["name"]
        lock = self._exclusive(name)
        try:
            with self.lock:
                previous = self.records.get(name)
                broken = name in self.broken
            first_run = self._retire_broken(name) if broken else 1
            if previous is not None:
                current = self.describe(name)["status"]
                if current in vocabulary.ACTIVE:
                    raise errors.ModelAlreadyRunningError(name, current)
            assignment = self._assign_gpus(spec, previous.gpus if previous else None)
            record = registry.Deployment(
                spec,
                port,
                run=(previous.run + 1) if previous else first_run,
                cause=cause,
                gpus=assignment,
                listen=self._choose_listen(spec, port, previous),
                submitted=specdiff.submitted_form(body, spec),
                owner=owner or (previous.owner if previous else None),
            )
            self._save(record, "deploy %r" % name)
            with self.lock:
                self.records[name] = record
            self._launch(name, recover=False)
        finally:
            lock.release()
        self.wait_started(name)
        return self.describe(name)

    def _launch(self, name, recover):
        """Start a monitor and wait until it holds its lock (or could not start)."""
        self.launcher.reset(name)
        return self._start_monitor(name, recover)

    def _start_monitor(self, name, recover):
        """From any thread: start a monitor, wait until it holds its lock (or cannot)."""
        outcome = self._call(self._spawn_monitor, name, recover)
        return outcome.result(timeout=launcher.START_TIMEOUT + 10)

    def start_model(self, name, cause=None):
        lock = self._exclusive(name)
        try:
            record = self.record(name)
            current = self.describe(name)["status"]
            if current in vocabulary.ACTIVE:
                raise errors.ModelAlreadyRunningError(name, current)
            if record.port and record.spec["port"] is not None:
                preflight.check_port(record.port, self._ports_in_use(exclude=name))
            if record.listen:
                preflight.check_port(record.listen, self._ports_in_use(exclude=name))
            if record.spec.get("gpus") and self.gpus.devices[0]:
                record.gpus = self._assign_gpus(record.spec, record.gpus)  # sticky
            record.run += 1
            record.desired = vocabulary.DESIRED_RUNNING
            record.cause = cause
            self._save(record, "start %r" % name)
            self._launch(name, recover=False)
        finally:
            lock.release()
        self.wait_started(name)
        return self.describe(name)

    def restart_model(self, name, timeout=None, cause=None):
        current = self.describe(name)["status"]
        if current not in (vocabulary.STARTING, vocabulary.RUNNING, vocabulary.BACKOFF):
            return self.start_model(name, cause)
        control_id = self._send_control(name, protocol.OP_RESTART, timeout, cause)
        if control_id is None and self._take_over(name):
            control_id = self._send_control(name, protocol.OP_RESTART, timeout, cause)
        if control_id is None:
            return self.start_model(name, cause)
        self.wait_for(name, lambda state: state.control_id == control_id, 5)
        stop_timeout = self.record(name).spec["stop"]["timeout"] if timeout is None else timeout

        def restarted(state):
            return state.status != vocabulary.STOPPING

        self.wait_for(name, restarted, stop_timeout + 15)
        return self.describe(name)

    def stop(self, name, timeout=None, purge=False, cause=None):
        """Stop a model gracefully (idempotent); ``purge`` also removes record and logs."""
        lock = self._exclusive(name)
        sent_at = self.system.monotonic()
        try:
            record = self.record(name)
            record.desired = vocabulary.DESIRED_STOPPED
            record.cause = cause
            storage = self._save_for_stop(record)
            control_id = self._send_control(name, protocol.OP_STOP, timeout, cause)
            if control_id is None and self._needs_cleanup(name):
                self._start_monitor(name, recover=True)
        finally:
            lock.release()
        stop_timeout = record.spec["stop"]["timeout"] if timeout is None else timeout
        with self.lock:
            self.finishing.add(name)  # reconcile leaves it to us meanwhile
        try:
            self.wait_for(name, self._stopped, stop_timeout + 15)
            self._finish_stop(name, record, sent_at + stop_timeout)
        finally:
            with self.lock:
                self.finishing.discard(name)
        result = self.describe(name)
        if storage is not None:
            # Stopped (or not: ``status`` says), but not recorded: the next daemon would
            # start it again. The operator must hear it, with the system's words.
            raise errors.InsufficientStorageError.from_os_error(
                storage, "record that %r is stopped" % name, name=name, status=result["status"]
            )
        if purge:
            self.purge(name)
            result["purged"] = True
        return result

    def unload(self, name, reason=vocabulary.UNLOAD_MANUAL, cause=None):
        """Unload an on-demand model now (back to ``idle``, listener kept); its status after.

        Idempotent: an idle model stays idle. ``NotOnDemandError`` for a model without
        ``activation``; ``ModelNotActiveError`` when no monitor runs it.
        """
        record = self.record(name)
        if record.spec.get("activation") is None:
            raise errors.NotOnDemandError(
                "model %r has no activation section: stop it instead" % name, name=name
            )
        current = self.describe(name)["status"]
        if current not in vocabulary.ACTIVE:
            raise errors.ModelNotActiveError(
                "model %r is %s: nothing to unload (start it first)" % (name, current),
                name=name,
                status=current,
            )
        control_id = self._send_control(name, protocol.OP_UNLOAD, None, cause, reason)
        if control_id is None:
            raise errors.ModelNotActiveError(
                "model %r has no live monitor to unload it" % name, name=name, status=current
            )
        self.wait_for(name, lambda state: state.control_id == control_id, 5)

        def settled(state):
            return state.status != vocabulary.STOPPING

        self.wait_for(name, settled, record.spec["stop"]["timeout"] + 15)
        return self.describe(name)

    def _save_for_stop(self, record):
        """Persist a stop; the ``OSError`` if the disk refused it (the stop goes on anyway)."""
        try:
            self.registry.save(record)
        except OSError as error:
            log.error(
                "cannot record that %r is stopped: %s; stopping it anyway", record.name, error
            )
            return error
        return None

    def _save(self, record, doing):
        """Persist a deployment; a full or read-only disk is a 507 naming the cause."""
        try:
            self.registry.save(record)
        except OSError as error:
            raise errors.InsufficientStorageError.from_os_error(
                error, doing, name=record.name
            ) from None

    def _take_over(self, name):
        """The model outlived its monitor: start one that recovers it (what reconcile would
        do a moment later), so a restart has a monitor to signal instead of answering 409
        while the model still runs. True once the new monitor's state names it."""
        lock = self._exclusive(name)
        try:
            if not self.monitor_alive(name):  # else reconcile replaced it meanwhile
                if not self._needs_cleanup(name):
                    return False
                self._start_monitor(name, recover=True)
        finally:
            lock.release()

        def taken_over(state):
            return self.system.alive(state.monitor_pid, state.monitor_starttime)

        return self.wait_for(name, taken_over, 5)

    def _stopped(self, state):
        return state.terminal

    def _finish_stop(self, name, record, kill_at):
        """Return only when no process of the model is left, nor its monitor.

        A monitor that died during the stop (``kill -9``, OOM) leaves its model to
        nobody: the daemon ends the processes it recorded itself (pid AND start time,
        through the seam; SIGKILL at ``kill_at``), then starts a monitor that records the
        model as stopped. ``StopIncompleteError`` names what could not be ended.
        """
        self._wait_monitor_gone(name, 10)
        state = self.read_state(name)
        if state is not None and state.run == record.run and state.active:
            grace = max(0.0, kill_at - self.system.monotonic())
            if self._end_leftovers(name, record, state, grace):
                self.wait_for(name, self._stopped, 10)
                self._wait_monitor_gone(name, 10)
        self._check_nothing_left(name, state)

    def _end_leftovers(self, name, record, state, grace):
        """End what a dead monitor of a model meant to be stopped left (any thread).

        Then, only if the deployment on disk says "stopped" (a replacement reads it),
        start a monitor that records the model as stopped. True if one was started.
        """
        candidates = leftovers.recorded(state, self.system)
        alive = leftovers.still_alive(self.system, candidates)
        if alive:
            log.warning("%r: its monitor is gone; ending %d process(es)", name, len(alive))
            number = specs.stop_signal_number(record.spec)
            leftovers.stop_processes(self.system, candidates, number, grace)
        try:
            self.registry.save(record)
        except OSError as error:
            log.error("%r: cannot record it stopped (%s); its state file stays behind", name, error)
            return False
        self._start_monitor(name, recover=True)  # finds nothing left: records "stopped"
        return True

    def _wait_monitor_gone(self, name, timeout):
        deadline = self.system.monotonic() + timeout
        while self.monitor_alive(name) and self.system.monotonic() < deadline:
            self.system.sleep(POLL)

    def _check_nothing_left(self, name, state):
        """``StopIncompleteError`` unless the monitor and every recorded process are gone."""
        alive = leftovers.still_alive(self.system, leftovers.recorded(state, self.system))
        if self.monitor_alive(name):
            alive.append((state.monitor_pid if state else "monitor", None))
        if alive:
            raise errors.StopIncompleteError(
                "model %r: processes are still running after the stop: %s"
                % (name, ", ".join(str(pid) for pid, _ in alive)),
                name=name,
                processes=[pid for pid, _ in alive],
            )

    def _needs_cleanup(self, name):
        state = self.states.reload(name)
        return state is not None and state.run == self.record(name).run and state.active

    def purge(self, name):
        lock = self._exclusive(name)
        try:
            if self.monitor_alive(name):
                raise errors.ModelBusyError("model %r is still stopping" % name, name=name)
            # Never forget a model while a process of it runs: nothing could stop it then.
            self._check_nothing_left(name, self.read_state(name))
            with self.lock:
                self.records.pop(name, None)
            self.launcher.forget(name)
            self.sampler.forget(name)
            self.states.forget(name)
            self.registry.purge(name)
        finally:
            lock.release()

    def _send_control(self, name, op, timeout, cause, reason=None):
        """Write control.json and signal the live monitor; the id it must act on (``None``:
        no monitor lives). A pending stop is kept over a new restart
        (``protocol.command_to_write``), and the id returned is then the stop's."""
        model_paths = self.home.model(name)
        with self._control_lock(name):
            state = self.states.reload(name)  # the control id it handled last, not a cached one
            if state is None or not self.monitor_alive(name):
                return None
            if not self.system.alive(state.monitor_pid, state.monitor_starttime):
                return None
            pending = protocol.read_control(model_paths)
            command = protocol.Control(op, timeout, cause, reason=reason)
            chosen = protocol.command_to_write(pending, state.control_id, command)
            wake = signal.SIGUSR1
            if chosen is command:
                wake = self._write_control(name, model_paths, command)
            else:
                log.info("%r: a stop is pending; the %s does not replace it", name, op)
            try:
                self.system.kill(state.monitor_pid, wake)
            except ProcessLookupError:
                return None
        return chosen.id

    def _write_control(self, name, model_paths, command):
        """Write control.json; the signal that wakes the monitor for it.

        A disk that refuses the file must not keep a stop from the monitor: a stop then
        goes by signal (``protocol.STOP_SIGNAL``); a restart is refused (507).
        """
        try:
            protocol.write_control(model_paths, command)
        except OSError as error:
            if command.op != protocol.OP_STOP:
                raise errors.InsufficientStorageError.from_os_error(
                    error, "%s model %r" % (command.op, name), name=name
                ) from None
            log.error("%r: cannot write control.json (%s): stopping it by signal", name, error)
            return protocol.STOP_SIGNAL
        return signal.SIGUSR1

    def _control_lock(self, name):
        with self.lock:
            return self.control_locks.setdefault(name, threading.Lock())

    # -- waiting -----------------------------------------------------------------

    def wait_for(self, name, predicate, timeout):
        """Until the fresh state satisfies ``predicate(state)``; True if it came in time.

        Woken by the change notifications; a wait that hears nothing for
        ``WAIT_RELOAD`` seconds reads the file itself.
        """
        deadline = self.system.monotonic() + timeout
        heard = True
        while True:
            record = self.record(name)
            seen = self.states.version
            state = self.read_state(name) if heard else self.states.reload(name)
            if state is not None and state.run == record.run and predicate(state):
                return True
            if self.launcher.failures.get(name) or self.system.monotonic() >= deadline:
                return False
            if not self.monitor_alive(name):
                # No monitor lives to change the state; its last write may still be on its way.
                state = self.states.reload(name)
                return state is not None and state.run == record.run and predicate(state)
            if self.stopping.is_set():
                raise errors.UnavailableError("modeld is shutting down")
            remaining = deadline - self.system.monotonic()
            heard = self.states.wait(seen, max(0.0, min(WAIT_RELOAD, remaining))) != seen

    def wait_ready(self, name, timeout=None):
        """Until the model is ready; ``DeploymentError`` if it exits or fails first."""
        record = self.record(name)
        if timeout is None:
            timeout = min(3600.0, record.spec["health"]["start_period"] + 30.0)
        deadline = self.system.monotonic() + timeout
        heard = True
        while True:
            seen = self.states.version
            if not heard:
                self.states.reload(name)  # nothing heard for a while: read the file itself
            current = self.describe(name)
            if current["ready"] or current["status"] == vocabulary.IDLE:
                return current  # idle: an on-demand model is up, waiting for a connection
            if current["status"] in (
                vocabulary.BACKOFF,
                vocabulary.EXITED,
                vocabulary.FAILED,
                vocabulary.STOPPED,
            ):
                raise status.deployment_error(current)
            if self.system.monotonic() >= deadline:
                raise status.wait_timeout_error(current, timeout, self.home.model(name).logs)
            if self.stopping.is_set():
                raise errors.UnavailableError("modeld is shutting down")
            remaining = deadline - self.system.monotonic()
            heard = self.states.wait(seen, max(0.0, min(WAIT_RELOAD, remaining))) != seen

    def events(self, name=None, limit=100, since=None):
        """The newest ``limit`` state changes of one model (or all), oldest first."""
        names = [name] if name else self.names()
        paths = [self.home.model(each).events for each in names]
        return eventfeed.newest(paths, limit, since)  # reads each file's tail only

    def event_follower(self):
        """Events of every model appended from now on (``poll()`` for each batch)."""
        return eventfeed.Follower(lambda: [self.home.model(name).events for name in self.names()])

    def wait_started(self, name):
        """Until the new monitor has written its first state (or could not start)."""
        return self.wait_for(name, lambda state: True, launcher.START_TIMEOUT)

    # -- the supervisor thread ---------------------------------------------------

    def _spawn_monitor(self, name, recover):
        """Start the monitor of ``name`` (supervisor thread only): a Future of its start."""
        self.watched.add(name)  # ours: no "adopted" line when reconcile next sees it alive
        return self.launcher.spawn(name, self.record(name).run, recover)

    def _reconcile(self):
        """Adopt live monitors, replace dead ones."""
        for name in self.names():
            lock = self._name_lock(name)
            if name in self.finishing or not lock.acquire(blocking=False):
                continue  # an operation on it is under way; look again next round
            try:
                self._reconcile_one(name)
            except errors.ModelNotFoundError:
                pass  # purged meanwhile
            finally:
                lock.release()

    def _reconcile_one(self, name):
        record = self.record(name)
        launching = name in self.launcher.launching
        failure = self.launcher.failures.get(name)
        alive = not launching and not failure and self.monitor_alive(name)
        # The state file matters for a model with no monitor, or one meant to be stopped.
        # Read the file, not memory: a dead monitor's last datagram may not be in yet.
        needed = not (launching or failure) and (not alive or not record.wanted)
        state = self.states.reload(name) if needed else None
        recoveries = self.launcher.recent_recoveries(name)
        since = self.launcher.since_last_recovery(name)
        action = reconcile.decide(record, state, alive, launching, failure, recoveries, since)
        self._perform(name, record, action)

    def _perform(self, name, record, action):
        """Carry out a reconcile ``action`` for ``name`` (supervisor thread only)."""
        if action.kind == reconcile.ADOPT:
            if name not in self.watched:
                self.watched.add(name)
                state = self.read_state(name)
                pid = state.monitor_pid if state is not None else None
                log.info("adopted the monitor of %r (pid %s, run %d)", name, pid, record.run)
            return
        if action.kind == reconcile.WAIT:
            return
        if action.kind == reconcile.FINISH:
            log.warning("%r: %s: ending what it left", name, action.reason)
            self._end_leftovers(name, record, self.read_state(name), grace=0.0)
            return
        if action.kind == reconcile.STOP:
            log.warning("%r: %s: stopping it", name, action.reason)
            self._send_control(name, protocol.OP_STOP, None, record.cause)
            return
        self.watched.discard(name)
        if action.kind == reconcile.REPLACE:
            log.warning("the monitor of %r: %s: replacing it", name, action.reason)
            self.launcher.note_recovery(name)
            self._spawn_monitor(name, recover=True)
        elif action.kind == reconcile.START:
            # Persisted but never started (a crash in between), or its monitor died at birth.
            log.info("starting the monitor of %r (%s)", name, action.reason)
            self._spawn_monitor(name, recover=False)
        elif action.kind == reconcile.GIVE_UP:
            self.launcher.give_up(name, action.reason)
