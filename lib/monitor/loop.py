"""The per-model monitor: one small process per deployed model (the conmon pattern).

It owns the model's pipes and writes its logs, runs the health probe, applies
the restart policy and records exits, and stops the whole process tree on
request. The daemon can die and come back; the monitor and its model carry on.

How it keeps its promises:

- One monitor per model: it holds an ``flock`` on ``monitor.lock`` for life
  (the lock semantics, the files and the exit codes are ``lib.core.protocol``).
- No orphans: it is a child subreaper (``PR_SET_CHILD_SUBREAPER``), so every
  descendant, even one that called ``setsid``, stays in its process subtree and
  is found by walking ``/proc/<pid>/task/*/children``. The model gets the stop
  signal as its parent-death signal, so a ``kill -9`` of the monitor does not
  leave it running, and the pids it recorded let a replacement monitor finish
  the job for the rest of the tree.
- Single-threaded: a selector loop over the pipes, the probe socket and a
  signal wake-up pipe. That makes the ``preexec_fn`` that sets the parent-death
  signal safe, and makes the monitor the only reaper (``waitpid(-1)``) of its
  subtree, so no exit status is ever lost.
- It writes ``state.json`` atomically on every change, and appends events.
- Every OS call (spawn, signal, reap, lock, clock) goes through ``self.system``
  (``lib.core.system``), so tests drive it with a recording fake.

It imports neither bottle nor cheroot.
"""

import os
import selectors
import signal
import subprocess
import sys

from lib.core import events, fsutil, notify, nvidia, paths, protocol, redact, timefmt, vocabulary
from lib.core import spec as specs
from lib.core.system import System, child_setup
from lib.logs import diagnosis, store
from lib.monitor import (
    activation,
    capture,
    confinement,
    forensics,
    gpugate,
    lifecycle,
    probes,
    proctree,
    reload,
)
from lib.monitor import diagnostics as log

SCAN_INTERVAL = 2.0
# The state file is rewritten at least this often, changed or not: a heartbeat
# that also repairs a file torn while the daemon read it back from .prev.
STATE_REFRESH = 5.0
PUBLISH_RETRY = 1.0
STOP_POLL = 0.05
# An on-demand model's connection counts reach state.json this soon after they move
# (not on every connection: each publish is a file write).
COUNTS_PUBLISH = 0.5
# While connections queue for a starting model, it is probed this often (within its start
# period, where a failed probe does not count), so they are relayed as soon as it answers.
HURRY_PROBE = 0.01


def main(argv=None):
    """``modeld monitor --home H --name N --run R [--recover]`` (started by the launcher)."""
    try:
        home, name, run, recover = parse_args(sys.argv[1:] if argv is None else argv)
    except ValueError as error:
        sys.stderr.write("modeld monitor: %s\n" % error)
        return protocol.EXIT_USAGE
    return launch(home, name, run, recover)


def parse_args(argv):
    """(home, name, run, recover) from the launcher's argv; ValueError if it is not that.

    Not argparse: the argv is written by ``launcher.monitor_command`` only, and
    argparse (with gettext) would be imported by every monitor.
    """
    values, recover, rest = {}, False, list(argv)
    while rest:
        flag = rest.pop(0)
        if flag == "--recover":
            recover = True
        elif flag in ("--home", "--name", "--run") and rest and flag not in values:
            values[flag] = rest.pop(0)
        else:
            raise ValueError("unexpected argument %r" % flag)
    missing = [flag for flag in ("--home", "--name", "--run") if flag not in values]
    if missing:
        raise ValueError("missing %s" % ", ".join(missing))
    if not values["--run"].isdigit():
        raise ValueError("--run takes a number, not %r" % values["--run"])
    return values["--home"], values["--name"], int(values["--run"]), recover


def launch(home_root, name, run, recover):
    """Detach, then run the monitor of ``name``; the exit status of whichever process returns."""
    home = paths.Home(home_root)
    ready_fd = detach()
    return Monitor(home.model(name), name, run, recover, ready_fd).run()


def detach():
    """Fork; the parent exits as ``protocol.launcher_exit_code`` says: 0, 75 or 1.

    So the daemon's own child is short-lived and the monitor is never the
    daemon's child: no zombies to reap, and a daemon restart changes nothing.
    """
    reader, writer = os.pipe()
    if os.fork() > 0:
        os.close(writer)
        answer = os.read(reader, 1)
        os._exit(protocol.launcher_exit_code(answer))
    os.close(reader)
    return writer


class Monitor:
    """The monitor of one model for one run: lives from ``run()`` until the model is terminal.

    It holds the model's lock, resumes from its predecessor's state (stopping
    what that one left behind), then loops: reap, capture output, probe, act on
    control commands and timers, publish state. ``system`` is the OS seam.
    """

    def __init__(self, model_paths, name, run, recover, ready_fd=None, system=None):
        self.paths = model_paths
        self.ready_fd = ready_fd
        self.name = name
        self.run_number = run
        self.recover = recover
        self.system = system or System()
        self.clock = self.system.time
        self.selector = selectors.DefaultSelector()
        self.lock = None
        self.popen = None
        self.run_first_seq = 1
        self.oom_kills_before = None
        self.limit_oom_kills_before = None
        # Replaced in start_up, once the spec is read: no user, no limits until then.
        self.confinement = confinement.Confinement(name, {"cwd": "/"}, {})
        self.pid_starttime = None
        self.killing = False
        self.recorded_processes = []
        self.next_scan = 0.0
        self.next_publish = 0.0
        self.dirty = False
        self.last_control = None
        self.generation = 0  # of the state last published (protocol.MonitorState)
        self.notifier = notify.Notifier(self.system, model_paths.home_root)
        self.boot_id = self.system.boot_id()
        self.relay = None  # an on-demand model's listener and connections (lib.monitor.relay)
        self.own_starttime = self.system.start_time(self.system.getpid())

    # -- start-up ------------------------------------------------------------

    def run(self):
        # Handlers first: a SIGUSR1 from the daemon must never find the default (fatal) action.
        self._install_signals()
        self.lock = protocol.hold_monitor_lock(self.system, self.paths)
        if self.lock is None:
            log.error("another monitor holds %s; exiting", self.paths.lock)
            self._tell_parent(protocol.LOCKED)
            return protocol.EXIT_LOCKED
        actions = self.start_up()
        if actions is None:
            return protocol.EXIT_FAILED
        try:
            return self._loop(actions)
        finally:
            if self.relay is not None:
                self.relay.close()
            self.writer.close()
            self.confinement.remove()
            self.notifier.close()

    def start_up(self):
        """Read the deployment, resume from the predecessor: the first actions (``None``: quit).

        Runs with the lock held; tells the launcher "ready" before it stops
        leftovers, which can take a stop timeout.
        """
        deployment = self._read_deployment()
        if deployment is None or deployment.run != self.run_number:
            log.error("deployment.json is gone or names another run; exiting")
            return None
        self.deployment = deployment
        self.spec = deployment.spec
        self.port = deployment.port
        self.gpu = gpugate.GpuGuard(
            deployment, nvidia.NvidiaSmi(os.environ.get(nvidia.MONITOR_ENV))
        )
        previous = protocol.read_state(self.paths, warn=log.warning, on_fallback=log.warning)
        failed = self.system.become_subreaper()
        if failed:
            log.warning("cannot become a child subreaper: errno %d", failed)
        self.writer = store.LogWriter(
            self.paths.logs,
            self.spec["logs"]["max_bytes"],
            self.spec["logs"]["backups"],
            warn=log.warning,
        )
        decision = lifecycle.decide_resume(previous, deployment.id, self.recover, deployment.wanted)
        self.life = lifecycle.Lifecycle.resuming(self.spec, decision)
        self.confinement = confinement.Confinement(self.name, self.spec, os.environ)
        self.prober = probes.Prober(self.spec["health"], self.port, self.selector, self._on_probe)
        on_line = self.prober.saw_line if self.prober.pattern is not None else None
        http_probe = self.prober if self.prober.needle is not None else None
        self.capture = capture.Capture(self.writer, self.selector, self.clock, on_line, http_probe)
        self.last_control = previous.control_id if previous else None
        self.generation = previous.generation if previous else 0
        self._tell_parent(protocol.READY)
        self._stop_leftovers(previous)
        if self.spec.get("activation") and decision.kind != lifecycle.RESUME_STOPPED:
            failure = self._bind_relay()
            if failure is not None:
                return self.life.spawn_failed(
                    vocabulary.REASON_LISTEN_FAILED, failure, self.clock()
                )
        return self.life.resume(decision, self.clock(), deployment.cause)

    def _bind_relay(self):
        """Bind the on-demand listener (``None``), or say why it cannot be bound."""
        from lib.monitor import relay  # only on-demand monitors pay for it

        section = self.spec["activation"]
        port = self.deployment.listen
        try:
            listener = relay.bind_listener(section["host"], port)
        except OSError as error:
            message = "cannot listen on %s:%s: %s" % (section["host"], port, error.strerror)
            self._note("error", message)
            return message
        decider = activation.Activation(
            section["idle_timeout"], section["load_timeout"], section["max_pending"]
        )
        self.relay = relay.Relay(
            listener, ("127.0.0.1", self.port), self.selector, decider, self.clock,
            section["http_503"],
        )  # fmt: skip
        self._note("info", "listening on %s:%d for connections" % (section["host"], port))
        return None

    def _read_deployment(self):
        try:
            data = fsutil.read_json(self.paths.deployment, warn=log.warning)
        except fsutil.Corrupt as error:
            log.error("cannot read the deployment: %s", error)
            return None
        return protocol.Deployment.decode(data)

    def _tell_parent(self, answer):
        if self.ready_fd is not None:
            os.write(self.ready_fd, answer)
            os.close(self.ready_fd)
            self.ready_fd = None

    def _install_signals(self):
        reader, writer = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wakeup = reader
        signal.set_wakeup_fd(writer, warn_on_full_buffer=False)
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGCHLD):
            # The C handler writes the signal number to the wake-up pipe; the loop acts on it.
            signal.signal(number, lambda *_: None)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        # A file size limit (or quota) must fail the write (EFBIG, counted as dropped
        # lines), not kill the monitor, and its model with it.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        self.selector.register(reader, selectors.EVENT_READ, self._on_wakeup)

    # -- the loop ------------------------------------------------------------

    def _loop(self, actions):
        while True:
            self._perform(actions)
            if self.life.terminal and not self._processes_left():
                break
            actions = []
            for key, _ in self.selector.select(self._timeout()):
                self._guarded(key.data, self.clock())
            actions = self._guarded(self._after_events, self.clock()) or []
        self.capture.drain()
        self._publish(durable=True)
        return 0

    def _guarded(self, handler, now):
        """A bug in one handler must not end the monitor: its model would die with it."""
        try:
            return handler(now)
        except Exception:  # noqa: BLE001 - reported with its traceback, and the loop goes on
            log.exception("monitor step failed; carrying on")
            return None

    def _timeout(self):
        now = self.clock()
        deadlines = [
            self.life.next_deadline(),
            self.prober.next_deadline(),
            self.next_scan,
            self.next_publish,
            self.gpu.next_deadline(),
        ]
        if self.relay is not None:
            deadlines += [self.relay.activation.next_deadline(), self.relay.next_deadline()]
        if self.life.status == vocabulary.STOPPING or self.killing or self.life.terminal:
            deadlines.append(now + STOP_POLL)
        known = [value for value in deadlines if value is not None]
        return max(0.0, min(known) - now) if known else None

    def _after_events(self, now):
        actions = self._reap(now)
        waiting = self.life.status in (vocabulary.STARTING, vocabulary.RUNNING, vocabulary.STOPPING)
        if self.life.exit_seen and waiting and not self._processes_left():
            self.capture.drain()
            actions += self.life.all_gone(now)
        actions += self.life.tick(now)
        actions += self._gpu_tick(now)
        if self.relay is not None:
            actions += self._activation_turn(now)
        self.prober.tick(now)
        if self.killing:
            self._kill_all()
        if now >= self.next_scan:
            self._scan_processes(now)
        # No _flush_events() here: the loop performs ``actions`` next, then flushes, so a
        # restart is never published as "starting" before its process exists.
        if now >= self.next_publish:
            self._publish(durable=False)
        return actions

    def _perform(self, actions):
        for action in actions:
            if isinstance(action, lifecycle.Spawn):
                if self.gpu.hold(self.clock()):
                    self.dirty = True  # the VRAM gate decides when (see _gpu_tick)
                else:
                    self._spawn()
            elif isinstance(action, lifecycle.Signal):
                self._signal_groups(int(getattr(signal, action.signal)))
            elif isinstance(action, lifecycle.KillAll):
                self.killing = True
                self._note("warning", "still running after the grace period: sending SIGKILL")
                self._kill_all()
        self._flush_events()

    # -- the model's processes ----------------------------------------------

    def _spawn(self):
        now = self.clock()
        argv = specs.resolve_command(self.spec, self.port, self.gpu.assignment)
        env = specs.model_environment(os.environ, self.spec, self.port, self.gpu.assignment)
        death_signal = specs.stop_signal_number(self.spec)
        monitor_pid = self.system.getpid()
        try:
            plan = self.confinement.prepare(argv, env)
        except confinement.SpawnRefused as refused:
            self._note("error", "cannot start %s: %s" % (argv[0], refused.message))
            actions = self.life.spawn_failed(refused.reason, refused.message, now)
            self._stamp_exit()
            self._perform(actions)
            return
        try:
            self.popen = self.system.spawn(
                argv,
                cwd=self.spec["cwd"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
                preexec_fn=lambda: child_setup(death_signal, monitor_pid, plan),
            )
        except Exception as error:  # noqa: BLE001 - any failure to spawn ends in failed
            # OSError (exec), ValueError (a NUL or a lone surrogate in a record stored before
            # validation refused them), SubprocessError: retrying would not help.
            reason = forensics.classify_spawn_error(error, self.spec["cwd"])
            detail = getattr(error, "strerror", None) or error
            message = _printable("cannot start %s: %s" % (argv[0], detail))
            self._note("error", message)
            actions = self.life.spawn_failed(reason, message, now)
            self._stamp_exit()
            self._perform(actions)
            return
        self.capture.attach(self.popen)
        self.run_first_seq = self.writer.seq + 1  # the run's output, read back on exit
        self.oom_kills_before = forensics.cgroup_oom_kills()
        self.limit_oom_kills_before = self.confinement.oom_kills()
        self.pid_starttime = self.system.start_time(self.popen.pid)
        self.life.spawned(self.popen.pid, now)
        self.prober.start(now)
        shown = " ".join(redact.redact_argv(argv))
        self._note("info", "started pid %d: %s" % (self.popen.pid, shown))
        self._scan_processes(now)

    def _reap(self, now):
        """Collect every exited child (we are their subreaper); act on the model's own."""
        actions = []
        while True:
            try:
                pid, status = self.system.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return actions
            if pid == 0:
                return actions
            if self.popen is not None and pid == self.popen.pid:
                actions += self._model_exited(status, now)

    def _model_exited(self, status, now):
        self.popen.returncode = os.waitstatus_to_exitcode(status)
        code, signal_name = None, None
        if os.WIFSIGNALED(status):
            signal_name = proctree.signal_name(os.WTERMSIG(status))
        else:
            code = os.WEXITSTATUS(status)
        self.capture.drain(final=False)
        requested = self.life.stop_kind in (
            vocabulary.STOP_REQUESTED,
            vocabulary.STOP_FOR_RESTART,
            vocabulary.STOP_UNLOAD,
        )
        was_ready = self.life.status == vocabulary.RUNNING
        entries = diagnosis.read_run(self.paths.logs, self.run_first_seq)
        oom = None
        if signal_name == "SIGKILL" and not requested:
            oom = forensics.oom_killed([self.popen.pid], self.oom_kills_before)
        found = forensics.classify_exit(code, signal_name, entries, requested, was_ready, oom)
        if not requested and _grew(self.confinement.oom_kills(), self.limit_oom_kills_before):
            found = found._replace(reason=vocabulary.REASON_OOM_KILLED, oom_killer=True)
        self.prober.cancel()
        if found.reason == vocabulary.REASON_CUDA_OUT_OF_MEMORY:
            for holder in self.gpu.oom_holders():
                self._note("error", "CUDA out of memory; GPU memory held by: %s" % holder)
        leftovers = self._processes_left()
        shown = {"code": code, "signal": signal_name, "reason": found.reason}
        text = lifecycle.describe_exit(shown)
        if found.oom_killer:
            text += ": the kernel's OOM killer killed it"
        level = "info" if requested or code == 0 else "error"
        self._note(level, "pid %d %s" % (self.popen.pid, text))
        actions = self.life.exited(code, signal_name, found.reason, now, leftovers)
        self._explain_exit(found, entries)
        if found.reason == vocabulary.REASON_OOM_KILLED:
            self.life.last_exit["limit"] = {"memory_bytes": self.confinement.memory_limit()}
        return actions

    def _explain_exit(self, found, entries):
        """``last_exit`` gets the output's evidence: first error, cause, last lines."""
        last_exit = self.life.last_exit
        cause = found.cause
        if last_exit["reason"] in vocabulary.PROBE_FAILURES:
            cause = last_exit.get("cause") or forensics.probe_failure_cause(entries)[0]
        last_exit["first_error"] = found.first_error
        last_exit["last_lines"] = diagnosis.last_lines(entries)
        if cause is not None:
            last_exit["cause"] = cause
        if found.oom_killer is not None:
            last_exit["oom_killer"] = found.oom_killer

    def _explain_probe_failure(self):
        """A health timeout or an unhealthy model: what the output says so far."""
        entries = diagnosis.read_run(self.paths.logs, self.run_first_seq)
        cause, first_error = forensics.probe_failure_cause(entries)
        self.life.last_exit["first_error"] = first_error
        self.life.last_exit["last_lines"] = diagnosis.last_lines(entries)
        if cause is not None:
            self.life.last_exit["cause"] = cause

    def _stamp_exit(self):
        """Keep the lines that preceded an exit with it (the next run clears the buffer)."""
        if self.life.last_exit is not None and "last_lines" not in self.life.last_exit:
            self.life.last_exit["last_lines"] = list(self.capture.last_lines)

    def _processes_left(self):
        return bool(proctree.descendants(self.system)) or bool(self.confinement.pids())

    def _signal_groups(self, number):
        """The stop signal to every process group of the model's tree."""
        count = proctree.signal_groups(self.system, number)
        self._note("info", "sent %s to %d process group(s)" % (proctree.signal_name(number), count))

    def _kill_all(self):
        for pid in self.confinement.pids():  # the cgroup knows every process of the model
            try:
                self.system.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        if proctree.kill_all(self.system) and not self.confinement.pids():
            self.killing = False

    def _scan_processes(self, now):
        """Record the tree's (pid, start time) pairs, so a successor can clean up after us."""
        self.next_scan = now + SCAN_INTERVAL
        current = sorted([stat.pid, stat.starttime] for stat in proctree.descendants(self.system))
        self.gpu.observe(current)
        if current != self.recorded_processes:
            self.recorded_processes = current
            self._publish(durable=False)

    def _stop_leftovers(self, previous):
        """Stop what a dead predecessor left running (matched by pid AND start time)."""
        candidates = proctree.recorded(previous, self.system)
        alive = [pid for pid, start in candidates if self.system.alive(pid, start)]
        if not alive:
            return
        self._note("warning", "stopping %d process(es) left by a previous monitor" % len(alive))
        number = specs.stop_signal_number(self.spec)
        proctree.stop_processes(self.system, candidates, number, self.spec["stop"]["timeout"])

    def _note(self, level, message):
        """A line of modeld's own in the model's log (stream ``modeld``)."""
        self.capture.note(level, message)

    # -- signals, control and probes ----------------------------------------

    def _on_wakeup(self, now):
        try:
            received = os.read(self.wakeup, 512)
        except BlockingIOError:
            return
        for number in set(received):
            if number in (signal.SIGTERM, signal.SIGINT):
                cause = {"signal": proctree.signal_name(number)}
                self._perform(self.life.request_stop(None, now, cause))
            elif number == signal.SIGUSR1:
                self._read_control(now)
                self._reload_settings()

    def _read_control(self, now):
        """Act on a command in control.json that this monitor has not acted on yet."""
        control = protocol.read_control(self.paths)
        if control is None or control.id == self.last_control:
            return
        self.last_control = control.id
        if control.op == protocol.OP_UNLOAD:
            actions = self.life.unload(
                now, control.reason or vocabulary.UNLOAD_MANUAL, control.cause
            )
            if actions and self.relay is not None:
                self.relay.activation.unloaded()
        else:
            actions = self.life.request_stop(control.timeout, now, control.cause, control.restart)
        self.dirty = True
        self._perform(actions)

    def _reload_settings(self):
        """A newer generation of our deployment (an in-place update): take its settings."""
        deployment = self._read_deployment()
        if not reload.newer_deployment(self.deployment, deployment):
            return
        self.spec = reload.merged_spec(self.spec, deployment.spec)
        reload.apply_settings(self.life, self.prober, self.writer, self.spec)
        self.deployment = deployment
        self._note("info", "settings reloaded (generation %d)" % deployment.generation)
        self._publish(durable=True)

    def _on_probe(self, ok, detail):
        now = self.clock()
        before = self.life.health
        actions = self.life.probe_result(ok, now, detail)
        if self.life.stop_kind == vocabulary.STOP_UNHEALTHY and "first_error" not in (
            self.life.last_exit or {}
        ):
            self._explain_probe_failure()
        if self.life.health != before:
            self.dirty = True
            self._note(
                "info" if ok else "warning",
                "health: %s%s" % (self.life.health, "" if ok else " (%s)" % detail),
            )
        self._perform(actions)

    # -- on demand -------------------------------------------------------------

    def _activation_turn(self, now):
        """The activation's turn (``activation.Activation.turn``): start, unload, relay."""
        self.relay.tick(now)
        phase = self.relay.activation.phase
        turn = self.relay.activation.turn(now, self.life.status, self.life.ready)
        if self.relay.activation.phase != phase:
            self.dirty = True  # published with the next flush
        actions = []
        if turn.start:
            actions += self.life.activate(now)
        if turn.unload:
            actions += self.life.unload(now, vocabulary.UNLOAD_IDLE_TIMEOUT)
        if turn.expire:
            self._note(
                "warning", "closed %d queued connection(s) after load_timeout" % len(turn.expire)
            )
        self.relay.perform(turn)
        if self.relay.activation.pending and self._in_start_period(now):
            self.prober.hurry(now, HURRY_PROBE)
        if self.relay.changed:
            self.relay.changed = False
            self.next_publish = min(self.next_publish, now + COUNTS_PUBLISH)
        return actions

    def _in_start_period(self, now):
        """Starting and within the probe's grace: failed probes do not count yet."""
        life = self.life
        return (
            life.status == vocabulary.STARTING
            and life.started_at is not None
            and now - life.started_at < life.probe["start_period"]
        )

    def _activation_state(self):
        if self.relay is None:
            return None
        shown = self.relay.activation.describe()
        shown["last_activity"] = _us(shown["last_activity"])
        shown["listen"] = self.relay.listen_port
        shown["refused"] = self.relay.refused
        return shown

    # -- GPUs ----------------------------------------------------------------

    def _gpu_tick(self, now):
        """The VRAM gate's turn (``gpugate.GpuGuard.turn``): start, keep waiting, or fail."""
        turn = self.gpu.turn(now, self.life)
        for level, text in turn.notes:
            self._note(level, text)
        if turn.event is not None:
            events.append(self.paths.events, self.name, [turn.event])
            self._publish(durable=False)
        if turn.spawn:
            self._spawn()
        if turn.failed:
            self._stamp_exit()
        return turn.actions

    def _gpu_release(self, changes):
        """After a stop, until the model's GPU memory is free (bounded): the event's fields."""
        extra, notes = self.gpu.after_changes(changes)
        for level, text in notes:
            self._note(level, text)
        return extra

    # -- state and events ---------------------------------------------------

    def _flush_events(self):
        changes = self.life.take_events()
        if not changes and not self.dirty:
            return
        released = self._gpu_release(changes)
        for event in changes:
            self._note(
                events.level(event),
                "status %s -> %s: %s" % (event.old or "new", event.new, event.reason),
            )
        events.append(self.paths.events, self.name, changes, released, warn=log.error)
        self._publish(durable=True)
        self.dirty = False

    def _publish(self, durable):
        self.generation += 1
        state = self._state()
        try:
            protocol.write_state(self.paths, state, durable=durable)
        except OSError as error:
            # A full disk must not take the model down with it: retry shortly.
            log.error("cannot write %s: %s", self.paths.state, error)
            self.next_publish = self.clock() + PUBLISH_RETRY
            return
        self.notifier.send(self.name, state.monitor_pid, self.generation)
        self.next_publish = self.clock() + STATE_REFRESH

    def _state(self):
        life = self.life
        return protocol.MonitorState(
            name=self.name,
            deploy_id=self.deployment.id,
            run=self.run_number,
            monitor_pid=self.system.getpid(),
            monitor_starttime=self.own_starttime,
            boot_id=self.boot_id,
            status=life.status,
            health=life.health,
            ready=life.ready,
            reason=life.reason,
            pid=life.pid,
            pid_starttime=self.pid_starttime if life.pid else None,
            port=self.port,
            started_at=_us(life.started_at),
            restarts=life.restarts,
            retries=life.retries,
            next_start_at=_us(life.next_start_at),
            last_exit=_exit_for_state(life.last_exit),
            processes=self.recorded_processes,
            waiting_for=self.gpu.waiting_for,
            activation=self._activation_state(),
            control_id=self.last_control,
            spec_generation=self.deployment.generation,
            log_id=self.writer.log_id,
            updated_at=timefmt.now_us(),
            generation=self.generation,
        )


def _grew(now, before):
    return now is not None and before is not None and now > before


def _printable(text):
    """``text`` with anything UTF-8 cannot encode (a lone surrogate) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _us(seconds):
    return None if seconds is None else int(seconds * 1_000_000)


def _exit_for_state(last_exit):
    if last_exit is None:
        return None
    shown = dict(last_exit)
    shown["at"] = _us(last_exit["at"])
    shown.setdefault("last_lines", [])
    return shown
