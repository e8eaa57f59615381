"""The daemon's side of supervision: deployments in, monitors out, state read back.

The daemon never holds a model's output and never signals a model itself: it
persists what the operator wants (``lib.daemon.registry``), starts one monitor per
model (``lib.monitor.loop``), tells a monitor to stop or restart through
``control.json`` plus ``SIGUSR1``, and reads each monitor's ``state.json``.

Every monitor is spawned from one long-lived thread (the supervisor thread),
never from an HTTP worker. The same thread reconciles once a second: a monitor
that died is replaced (the replacement stops what its predecessor left and
applies the restart policy); a live monitor found after a daemon restart is
adopted, never duplicated. A monitor is alive while it holds ``monitor.lock``;
its identity (pid AND start time) is checked before it is signalled.
"""

import concurrent.futures
import logging
import os
import queue
import secrets
import signal
import threading
import time

from lib import errors
from lib.core import events, fsutil, procfs, redact, timefmt, vocabulary
from lib.core import spec as specs
from lib.daemon import launcher, preflight, registry, sampler, status
from lib.logs import reader

log = logging.getLogger("modeld.supervisor")

RECONCILE_INTERVAL = 1.0
LAUNCH_POLL = 0.005
POLL = 0.02


class Supervisor:
    def __init__(self, home, log_defaults=None, environ=None, sample_interval=None):
        self.home = home
        self.registry = registry.Registry(home)
        self.log_defaults = log_defaults or {}
        self.environ = dict(os.environ if environ is None else environ)
        self.records = {}
        self.launcher = launcher.Launcher(home, self.environ)
        self.name_locks = {}
        self.lock = threading.RLock()
        self.commands = queue.Queue()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self.sampler = sampler.MetricsSampler(
            self._sample_targets, sample_interval or sampler.SAMPLE_INTERVAL
        )

    # -- life of the supervisor ----------------------------------------------

    def start(self):
        """Load deployments, adopt or replace their monitors, start the background threads."""
        self.records = self.registry.load_all()
        for record in self.records.values():
            self._catch_up(record)
        self.thread.start()
        self._call(self._reconcile)
        # Ready means every model has a live monitor again: wait for the replacements.
        outcomes = self._call(self.launcher.outcomes)
        concurrent.futures.wait(outcomes, timeout=launcher.START_TIMEOUT + 10)
        self.sampler.start()

    def _catch_up(self, record):
        """A record older than its monitor (read from a previous generation after a
        torn write) takes the run the monitor says it is running."""
        state = self.read_state(record.name) or {}
        if state.get("deploy_id") == record.id and (state.get("run") or 0) > record.run:
            log.warning(
                "the deployment of %r is behind its monitor (run %d < %d): catching up",
                record.name,
                record.run,
                state["run"],
            )
            record.run = state["run"]
            if state.get("status") in vocabulary.ACTIVE:
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

    def stop_all(self, timeout=None):
        names = [
            name for name in self.names() if self.describe(name)["status"] in vocabulary.ACTIVE
        ]
        pending = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(16, len(names))))
        with pending:
            for name in names:
                pending.submit(self.stop, name, timeout, False, {"reason": "daemon stop --models"})

    def _run(self):
        next_reconcile = time.monotonic() + RECONCILE_INTERVAL
        while not self.stopping.is_set():
            timeout = max(0.0, next_reconcile - time.monotonic())
            if self.launcher.launching:
                timeout = min(timeout, LAUNCH_POLL)
            try:
                command = self.commands.get(timeout=timeout)
            except queue.Empty:
                command = None
            if command is not None:
                command()
            self._guarded(self.launcher.poll)
            if time.monotonic() >= next_reconcile and not self.stopping.is_set():
                self._guarded(self._reconcile)
                next_reconcile = time.monotonic() + RECONCILE_INTERVAL
        deadline = time.monotonic() + launcher.START_TIMEOUT
        while self.launcher.launching and time.monotonic() < deadline:
            self.launcher.poll()  # reap the launchers still running: no zombie, no warning
            time.sleep(LAUNCH_POLL)

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
        """The monitor's state file (its previous generation if the file is torn).

        Read anew each time: a cache keyed on inode, mtime and size can be fooled,
        since inodes are reused and mtimes move in steps of a few milliseconds.
        """
        return fsutil.read_json_quietly(self.home.model(name).state)

    def monitor_alive(self, name):
        return fsutil.is_locked(self.home.model(name).lock)

    def describe(self, name):
        """The status payload of one model."""
        record = self.record(name)
        state = self.read_state(name)
        monitor = {"alive": self.monitor_alive(name), "failure": self.launcher.failures.get(name)}
        sample = self.sampler.get(name)
        if sample is None:
            sample = {"log_bytes": reader.LogReader(self.home.model(name).logs).total_bytes()}
        return status.model_status(record, state, monitor, sample, timefmt.now_us())

    def list(self, status_filter=None):
        found = []
        for name in self.names():
            try:
                payload = self.describe(name)
            except errors.ModelNotFoundError:
                continue  # purged while we listed
            if status_filter is None or payload["status"] in status_filter:
                found.append(payload)
        return found

    def _sample_targets(self):
        targets = {}
        for name in self.names():
            state = self.read_state(name) or {}
            monitor_pid = (state.get("monitor") or {}).get("pid")
            if state.get("status") in vocabulary.ACTIVE and monitor_pid:
                targets[name] = (monitor_pid, self.home.model(name).logs)
        return targets

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
        spec = specs.parse_spec(body, self.log_defaults)
        preflight.check_cwd(spec)
        executable = preflight.resolve_executable(spec, self.environ)
        port = self._choose_port(spec)
        return spec, port, executable

    def _choose_port(self, spec):
        taken = self._ports_in_use(exclude=spec["name"])
        if spec["port"] == "auto":
            return preflight.pick_free_port(taken)
        if spec["port"] is not None:
            preflight.check_port(spec["port"], taken)
        return spec["port"]

    def _ports_in_use(self, exclude):
        taken = {}
        with self.lock:
            records = list(self.records.values())
        for record in records:
            if (
                record.name != exclude
                and record.port
                and record.desired == vocabulary.DESIRED_RUNNING
            ):
                taken[record.port] = record.name
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
        return {
            "dry_run": True,
            "name": spec["name"],
            "port": port,
            "endpoint": "http://127.0.0.1:%d" % port if port else None,
            "executable": executable,
            "command": redact.redact_argv(specs.resolve_command(spec, port)),
            "spec": shown,
        }

    def deploy(self, body, cause=None):
        """Persist a new deployment and start its monitor; returns once the monitor reported."""
        spec, port, _ = self.prepare(body)
        name = spec["name"]
        lock = self._exclusive(name)
        try:
            with self.lock:
                previous = self.records.get(name)
            if previous is not None:
                current = self.describe(name)["status"]
                if current in vocabulary.ACTIVE:
                    raise errors.ModelAlreadyRunningError(name, current)
            record = registry.Deployment(
                spec, port, run=(previous.run + 1) if previous else 1, cause=cause
            )
            self.registry.save(record)
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
            record.run += 1
            record.desired = vocabulary.DESIRED_RUNNING
            record.cause = cause
            self.registry.save(record)
            self._launch(name, recover=False)
        finally:
            lock.release()
        self.wait_started(name)
        return self.describe(name)

    def restart_model(self, name, timeout=None, cause=None):
        current = self.describe(name)["status"]
        if current not in (vocabulary.STARTING, vocabulary.RUNNING, vocabulary.BACKOFF):
            return self.start_model(name, cause)
        control_id = self._send_control(name, "restart", timeout, cause)
        if control_id is None:
            return self.start_model(name, cause)
        self.wait_for(name, lambda s: s.get("control_id") == control_id, 5)
        stop_timeout = self.record(name).spec["stop"]["timeout"] if timeout is None else timeout

        def restarted(state):
            return state.get("status") != vocabulary.STOPPING

        self.wait_for(name, restarted, stop_timeout + 15)
        return self.describe(name)

    def stop(self, name, timeout=None, purge=False, cause=None):
        """Stop a model gracefully (idempotent); ``purge`` also removes record and logs."""
        lock = self._exclusive(name)
        try:
            record = self.record(name)
            record.desired = vocabulary.DESIRED_STOPPED
            record.cause = cause
            self.registry.save(record)
            control_id = self._send_control(name, "stop", timeout, cause)
            if control_id is None and self._needs_cleanup(name):
                self._start_monitor(name, recover=True)
        finally:
            lock.release()
        stop_timeout = record.spec["stop"]["timeout"] if timeout is None else timeout
        self.wait_for(name, self._stopped, stop_timeout + 15)
        # Stopped means no process is left: not the model's, nor its monitor's.
        deadline = time.monotonic() + 10
        while self.monitor_alive(name) and time.monotonic() < deadline:
            time.sleep(POLL)
        result = self.describe(name)
        if purge:
            self.purge(name)
            result["purged"] = True
        return result

    def _stopped(self, state):
        return state.get("status") in vocabulary.TERMINAL

    def _needs_cleanup(self, name):
        state = self.read_state(name) or {}
        record = self.record(name)
        return state.get("run") == record.run and state.get("status") in vocabulary.ACTIVE

    def purge(self, name):
        lock = self._exclusive(name)
        try:
            if self.monitor_alive(name):
                raise errors.ModelBusyError("model %r is still stopping" % name, name=name)
            with self.lock:
                self.records.pop(name, None)
            self.launcher.forget(name)
            self.sampler.forget(name)
            self.registry.purge(name)
        finally:
            lock.release()

    def _send_control(self, name, op, timeout, cause):
        """Write control.json and signal the live monitor; ``None`` if no monitor lives."""
        state = self.read_state(name) or {}
        monitor = state.get("monitor") or {}
        pid, starttime = monitor.get("pid"), monitor.get("starttime")
        if not (self.monitor_alive(name) and procfs.alive(pid, starttime)):
            return None
        control_id = secrets.token_hex(8)
        control = {"id": control_id, "op": op, "timeout": timeout, "cause": cause}
        fsutil.write_json_atomic(self.home.model(name).control, control, keep_previous=False)
        try:
            os.kill(pid, signal.SIGUSR1)
        except ProcessLookupError:
            return None
        return control_id

    # -- waiting -----------------------------------------------------------------

    def wait_for(self, name, predicate, timeout):
        """Poll the fresh state until ``predicate(state)``; True if it came in time."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.record(name)
            state = self.read_state(name)
            if state is not None and state.get("run") == record.run and predicate(state):
                return True
            if self.launcher.failures.get(name) or time.monotonic() >= deadline:
                return False
            if not self.monitor_alive(name):
                return False  # no monitor lives to change the state
            if self.stopping.wait(POLL):
                raise errors.UnavailableError("modeld is shutting down")

    def wait_ready(self, name, timeout=None):
        """Until the model is ready; ``DeploymentError`` if it exits or fails first."""
        record = self.record(name)
        if timeout is None:
            timeout = min(3600.0, record.spec["health"]["start_period"] + 30.0)
        deadline = time.monotonic() + timeout
        while True:
            current = self.describe(name)
            if current["ready"]:
                return current
            if current["status"] in (
                vocabulary.BACKOFF,
                vocabulary.EXITED,
                vocabulary.FAILED,
                vocabulary.STOPPED,
            ):
                raise status.deployment_error(current)
            if time.monotonic() >= deadline:
                raise status.wait_timeout_error(current, timeout, self.home.model(name).logs)
            if self.stopping.wait(POLL * 5):
                raise errors.UnavailableError("modeld is shutting down")

    def events(self, name=None, limit=100, since=None):
        """The newest ``limit`` state changes of one model (or all), oldest first."""
        names = [name] if name else self.names()
        found = []
        for each in names:
            found.extend(events.read(self.home.model(each).events, since))
        found.sort(key=lambda event: event.get("at") or "")
        return found[-limit:]

    def wait_started(self, name):
        """Until the new monitor has written its first state (or could not start)."""
        return self.wait_for(name, lambda state: True, launcher.START_TIMEOUT)

    # -- the supervisor thread ---------------------------------------------------

    def _spawn_monitor(self, name, recover):
        """Start the monitor of ``name`` (supervisor thread only): a Future of its start."""
        return self.launcher.spawn(name, self.record(name).run, recover)

    def _reconcile(self):
        """Adopt live monitors, replace dead ones."""
        for name in self.names():
            lock = self._name_lock(name)
            if not lock.acquire(blocking=False):
                continue  # an operation on it is under way; look again next round
            try:
                self._reconcile_one(name)
            except errors.ModelNotFoundError:
                pass  # purged meanwhile
            finally:
                lock.release()

    def _reconcile_one(self, name):
        record = self.record(name)
        busy = name in self.launcher.launching or self.launcher.failures.get(name)
        if busy or self.monitor_alive(name):
            return
        state = self.read_state(name)
        fresh = state is not None and state.get("run") == record.run
        if fresh and state.get("status") in vocabulary.ACTIVE:
            if not self.launcher.crash_looping(name):
                log.warning(
                    "the monitor of %r is gone (was %s): replacing it", name, state["status"]
                )
                self._spawn_monitor(name, recover=True)
        elif not fresh and record.desired == vocabulary.DESIRED_RUNNING:
            # Persisted but never started (a crash in between), or its monitor died at birth.
            log.info("starting the monitor of %r (run %d has none)", name, record.run)
            self._spawn_monitor(name, recover=False)
