"""The daemon process: one per home, detached by a double fork, stopped by a signal.

``start`` forks, the child starts a session and forks again; the grandchild
(the daemon) takes the home's lock, binds, restores deployments and only then
reports "ready" (or the real error) up a pipe to the launching command, which
prints it and exits 0 or 1. Nothing forks after cheroot has started threads.

Signals: SIGTERM/SIGINT stop accepting, finish in-flight requests and exit,
leaving models running; SIGUSR2 (``modeld stop --models``) also stops every
model first; SIGHUP reopens the daemon log. Handlers only record the signal;
the main thread acts.
"""

import json
import logging
import logging.handlers
import os
import signal
import sys
import threading
import time

from lib import __version__
from lib.core import fsutil, paths, procfs, protocol, tokens

log = logging.getLogger("modeld.daemon")

LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 5
STARTUP_TIMEOUT = 60


class StartupError(Exception):
    """The daemon cannot start; the message is for the operator."""


def prepare_home(root):
    """Create the home (0700) and prove it is writable."""
    try:
        fsutil.ensure_directory(root)
        if os.stat(root).st_mode & 0o077:
            # It holds the API token and the models' environments: keep it private.
            os.chmod(root, 0o700)
        probe = os.path.join(root, ".write-test.%d" % os.getpid())
        with open(probe, "w"):
            pass
        os.unlink(probe)
    except OSError as error:
        raise StartupError("cannot use home %s: %s" % (root, error.strerror or error)) from None
    return paths.Home(root)


class DaemonLogHandler(logging.handlers.RotatingFileHandler):
    """Size rotation decided from a byte count kept in memory.

    The stock check stats the file twice and formats every record twice before
    each write; with an access line per request that was a sixth of a request's cost.
    """

    def _open(self):
        stream = super()._open()
        self.written = stream.seek(0, os.SEEK_END)
        return stream

    def emit(self, record):
        try:
            if self.stream is None:
                self.stream = self._open()
            if self.written >= self.maxBytes:
                self.doRollover()
            line = self.format(record) + self.terminator
            self.stream.write(line)
            self.stream.flush()
            self.written += len(line)
        except Exception:  # noqa: BLE001 - logging must never take the daemon down
            self.handleError(record)


def setup_logging(home, to_stderr):
    handler = DaemonLogHandler(home.daemon_log, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    if to_stderr:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(formatter)
        root.addHandler(stream)
    root.setLevel(logging.INFO)
    return handler


def _connection_limits(config):
    """The server's connection options the operator set (the others keep their defaults)."""
    limits = {
        "head_timeout": config.head_timeout,
        "max_connections": config.max_connections,
        "max_connections_per_client": config.max_connections_per_client,
    }
    return {key: value for key, value in limits.items() if value is not None}


def running_daemon(home):
    """``daemon.json`` of the daemon holding this home's lock, or ``None``."""
    if not fsutil.is_locked(home.lock):
        return None
    info = fsutil.read_json_quietly(home.daemon_json) or {}
    return info


class Daemon:
    """Everything the running daemon owns; ``run`` blocks until it is told to stop."""

    def __init__(self, config, report=None, to_stderr=False):
        self.config = config
        self.report = report or (lambda ok, message: None)
        self.to_stderr = to_stderr
        self.signals = []
        self.wake = threading.Event()
        self.stopping = threading.Event()

    def run(self):
        try:
            self._start()
        except StartupError as error:
            self.report(False, str(error))
            return 1
        self.report(True, self.server.url)
        log.info("modeld %s serving at %s (pid %d)", __version__, self.server.url, os.getpid())
        try:
            return self._wait_for_signal()
        finally:
            self._shutdown()

    def _start(self):
        from lib.api import app, connguard, ratelimit, server
        from lib.daemon import supervisor

        home = self.home = prepare_home(self.config.home)
        self.lock = fsutil.FileLock(home.lock)
        if not self.lock.acquire():
            info = fsutil.read_json_quietly(home.daemon_json) or {}
            raise StartupError(
                "modeld is already running for home %s (pid %s, %s)"
                % (home.root, info.get("pid", "?"), info.get("url", "?"))
            )
        self.log_handler = setup_logging(home, self.to_stderr)
        connguard.raise_descriptor_limit()  # idle connections must not run the daemon out
        token = None if self.config.no_auth else tokens.ensure_token(home)
        from lib.daemon import privilege

        policy = privilege.Policy.for_home(
            home.root, self.config.default_user, self.config.allow_exec
        )
        self.supervisor = supervisor.Supervisor(
            home, self.config.log_defaults, nvidia_smi=self.config.nvidia_smi, policy=policy
        )
        limiter = ratelimit.from_setting(self.config.rate_limit)
        settings = self.settings = app.Settings(
            token=token,
            version=__version__,
            should_stop=self.stopping.is_set,
            rate_limiter=limiter,
            max_followers=self.config.max_followers or app.MAX_FOLLOWERS,
            max_waiters=self.config.max_waiters or app.MAX_WAITERS,
            metrics_no_auth=self.config.metrics_no_auth,
            tokens=tokens.TokenStore(home.tokens),
        )
        threads = self.config.threads or max(server.DEFAULT_THREADS, 2 * settings.max_followers)
        self.server = server.ApiServer(
            app.make_app(self.supervisor, settings),
            self.config.bind,
            __version__,
            threads=threads,
            tls=self.config.tls,
            socket_mode=0o660 if self.config.socket_group else 0o600,
            socket_group=self.config.socket_group,
            max_body=settings.max_body,
            **_connection_limits(self.config),
        )
        try:
            self.server.bind()
        except OSError as error:
            self.lock.release()
            where = self.config.socket or "%s:%d" % (self.config.host, self.config.port)
            raise StartupError("cannot listen on %s: %s" % (where, _os_message(error))) from None
        except Exception as error:  # noqa: BLE001 - TLS and socket-group problems
            self.lock.release()
            raise StartupError("cannot start the server: %s" % error) from None
        self.supervisor.start()
        self._write_runtime_files()
        self._install_signals()
        self.serving = threading.Thread(target=self.server.serve, name="http", daemon=True)
        self.serving.start()

    def _write_runtime_files(self):
        home = self.home
        with open(home.pidfile + ".tmp", "w") as handle:
            handle.write("%d\n" % os.getpid())
        os.replace(home.pidfile + ".tmp", home.pidfile)
        info = {
            "pid": os.getpid(),
            "starttime": procfs.start_time(os.getpid()),
            "url": self.server.url,
            "version": __version__,
            "started_at": time.time(),
            "home": home.root,
        }
        fsutil.write_json_atomic(home.daemon_json, info, keep_previous=False)

    def _install_signals(self):
        def record(number, _frame):
            self.signals.append(number)
            self.wake.set()

        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2, signal.SIGHUP):
            signal.signal(number, record)

    def _wait_for_signal(self):
        while True:
            self.wake.wait(1.0)
            self.wake.clear()
            if not self.serving.is_alive():
                log.error("the HTTP server thread ended unexpectedly; exiting")
                return 1
            while self.signals:
                number = self.signals.pop(0)
                if number == signal.SIGHUP:
                    self._reopen_log()
                    self._reload_token()
                    continue
                self.stop_models = number == signal.SIGUSR2
                log.info(
                    "received %s: shutting down%s",
                    signal.Signals(number).name,
                    " and stopping every model" if self.stop_models else "",
                )
                return 0

    def _reload_token(self):
        if self.settings.token is not None:
            self.settings.token = tokens.ensure_token(self.home)
            log.info("SIGHUP: token re-read")

    def _reopen_log(self):
        log.info("SIGHUP: reopening the log")
        self.log_handler.acquire()
        try:
            self.log_handler.close()
            self.log_handler.stream = self.log_handler._open()
        finally:
            self.log_handler.release()

    def _shutdown(self):
        self.stopping.set()
        stop_models = getattr(self, "stop_models", False)
        if stop_models:
            # Models first, while the API still answers (modelctl can watch it happen).
            self.supervisor.stop_all()
        self.server.stop()
        self.supervisor.shutdown()
        for path in (self.home.pidfile, self.home.daemon_json):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        log.info("modeld stopped")
        self.lock.release()


def _os_message(error):
    text = error.strerror or str(error)
    if "Address already in use" in str(error):
        return "address already in use (is another modeld or server running there?)"
    return text


# -- start and stop from outside: facts only; lib.cli.modeld words them ----------


def start_background(config):
    """Double-fork a daemon; its report once it serves or cannot, ``None`` if it died first.

    The report is ``{"ok": bool, "message": URL or reason, "pid": int}``.
    """
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(reader)
        try:
            os.setsid()
            if os.fork() > 0:
                os._exit(0)
            _detach(config, writer)
            code = Daemon(config, report=_pipe_reporter(writer)).run()
        except BaseException:
            logging.getLogger("modeld").exception("the daemon crashed")
            code = 1
        os._exit(code)
    os.close(writer)
    os.waitpid(child, 0)
    return _read_report(reader)


def _detach(config, keep_fd):
    """In the grandchild: no terminal, no inherited descriptors, a clean cwd and umask."""
    os.chdir("/")
    os.umask(0o077)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    try:
        fsutil.ensure_directory(config.home)
        log_fd = os.open(
            os.path.join(config.home, "daemon.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )
    except OSError:
        log_fd = null  # the daemon itself reports the home problem
    os.dup2(null, 1)
    os.dup2(log_fd, 2)  # a crash's traceback lands in the daemon log
    for fd in {null, log_fd}:
        if fd > 2:
            os.close(fd)
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, 65536)


def _pipe_reporter(fd):
    def report(ok, message):
        payload = {"ok": ok, "message": message, "pid": os.getpid()}
        try:
            os.write(fd, (json.dumps(payload) + "\n").encode())
            os.close(fd)
        except OSError:
            pass  # the launcher went away: nobody to tell

    return report


def _read_report(fd):
    chunks = []
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with os.fdopen(fd, "rb") as pipe:
        while time.monotonic() < deadline:
            chunk = pipe.read1(4096) if hasattr(pipe, "read1") else pipe.read(4096)
            if not chunk:
                break
            chunks.append(chunk)
            if b"\n" in chunk:
                break
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        return None


class NoLiveDaemon(Exception):
    """The home's lock is held, but daemon.json names no live daemon."""


def signal_stop(home, stop_models):
    """Ask the home's daemon to stop (and its models too); its pid, or ``None`` if none runs."""
    info = running_daemon(home)
    if info is None:
        return None
    pid = info.get("pid")
    if not pid or not procfs.alive(pid, info.get("starttime")):
        raise NoLiveDaemon(home.root)
    os.kill(pid, signal.SIGUSR2 if stop_models else signal.SIGTERM)
    return pid


def unstopped_models(home):
    """``{name: why}`` of the models a ``stop --models`` did not stop, read from the home.

    Read-only facts (a full disk cannot hide them): a monitor still holds its lock, or
    the deployment on disk still wants the model running (the next start would run it).
    """
    found = {}
    for name in home.model_names():
        model_paths = home.model(name)
        if fsutil.is_locked(model_paths.lock):
            found[name] = "its monitor is still running"
            continue
        record = protocol.Deployment.decode(fsutil.read_json_quietly(model_paths.deployment))
        state = protocol.read_state(model_paths)
        if record is not None and record.wanted and state is not None and state.active:
            found[name] = "stopped, but its stop could not be recorded (the next start runs it)"
    return found


def wait_released(home, timeout):
    """True once the daemon has released the home's lock, False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while fsutil.is_locked(home.lock):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
