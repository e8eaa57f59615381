"""Shared fixtures: a home per test, a real supervisor or daemon, and a leftover-process guard.

Every process a test starts carries the test's temporary directory in its
command line (monitors through ``--home``, models through ``--tag``), so the
guard can prove at teardown that nothing is left running, and kill and fail
if something is.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from lib.core import procfs  # noqa: E402 - needs ROOT on sys.path

MODELS = os.path.join(ROOT, "tests", "models")
MODELD = [sys.executable, os.path.join(ROOT, "modeld.py")]
TOKEN = "test-token-0123456789"


def wait_until(predicate, timeout=15.0, interval=0.02, message="the condition"):
    """Poll ``predicate`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %gs waiting for %s" % (timeout, message))
        time.sleep(interval)


def unreachable_url():
    """A URL nothing listens on: a port the kernel just handed out, then closed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return "http://127.0.0.1:%d" % probe.getsockname()[1]


def processes_tagged(tag):
    """Live processes whose command line mentions ``tag``."""
    found = []
    own = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == own:
            continue
        if tag in " ".join(procfs.cmdline(int(entry))) and procfs.alive(int(entry)):
            found.append(int(entry))
    return found


def assert_error(response, status, code, field=None):
    """The one error shape, with this status and code (and field, for a 400)."""
    assert response.status_int == status, response.text
    body = response.json
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    assert response.headers.get("X-Request-Id")
    assert response.content_type == "application/json"
    if field is not None:
        assert body["error"]["details"].get("field") == field, body
    return body["error"]


@pytest.fixture
def tag(tmp_path):
    """A marker for model command lines; teardown fails if a tagged process is left."""
    marker = str(tmp_path)
    yield marker
    # A monitor exits a moment after writing its final state: give stragglers 5 s.
    deadline = time.monotonic() + 5
    while processes_tagged(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    leftovers = processes_tagged(marker)
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not leftovers, "processes left running: %s" % [
        " ".join(procfs.cmdline(pid)) for pid in leftovers
    ]


@pytest.fixture
def home(tag, tmp_path):
    path = tmp_path / "home"
    path.mkdir()
    return str(path)


def model(script, *args, tag):
    """The argv of a test model script, tagged for the leftover guard."""
    return (
        [sys.executable, os.path.join(MODELS, script)] + [str(arg) for arg in args] + ["--tag", tag]
    )


# -- deploying through the WSGI app (the api fixture) -------------------------------


def deploy(api, tag, name, script, *args, **extra):
    """Deploy a tagged test model through ``api``; its status payload (201 asserted)."""
    body = {"name": name, "command": model(script, *args, tag=tag), "health": {"start_period": 0}}
    body.update(extra)
    response = api.post_json("/models", body)
    assert response.status_int == 201, response.text
    return response.json


def status(api, name):
    return api.get("/models/%s" % name).json


def wait_status(api, name, *wanted, timeout=20):
    def check():
        body = status(api, name)
        return body if body["status"] in wanted else None

    return wait_until(check, timeout=timeout, message="%s to be %s" % (name, "/".join(wanted)))


# -- the OS seam's recording fake --------------------------------------------------


@pytest.fixture
def system():
    """A ``tests/fakes.FakeSystem``; monitors a test appends to ``system.monitors`` are
    closed after it."""
    from fakes import FakeSystem

    fake = FakeSystem()
    fake.monitors = []
    yield fake
    for monitor in fake.monitors:
        monitor.writer.close()
        monitor.selector.close()
    fake.close()


@pytest.fixture
def supervisor(home):
    from lib.core import paths
    from lib.daemon.supervisor import Supervisor

    instance = Supervisor(paths.Home(home), sample_interval=0.2)
    instance.start()
    yield instance
    instance.shutdown(stop_models=True, timeout=10)


@pytest.fixture
def api(supervisor):
    import webtest

    from lib.api import app as api_module

    settings = api_module.Settings(token=TOKEN, version="test")
    app = api_module.make_app(supervisor, settings)
    return webtest.TestApp(
        app,
        extra_environ={"HTTP_AUTHORIZATION": "Bearer " + TOKEN, "REMOTE_ADDR": "127.0.0.1"},
    )


class LiveServer:
    """The real app on cheroot in this process, on a free port (for streaming tests)."""

    def __init__(self, supervisor, **settings):
        import threading

        from lib.api import app as api_module
        from lib.api import server as server_module

        self.settings = api_module.Settings(token=TOKEN, version="test", **settings)
        app = api_module.make_app(supervisor, self.settings)
        self.server = server_module.ApiServer(app, ("127.0.0.1", 0), "test", threads=12)
        self.server.bind()
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()
        self.url = self.server.url
        self.stopping = False

    def client(self):
        from lib.cli.client import Client

        return Client(self.url, TOKEN)

    def stop(self):
        self.stopping = True
        self.server.stop()
        self.thread.join(timeout=30)


@pytest.fixture
def live(supervisor):
    server = LiveServer(supervisor, should_stop=lambda: server.stopping, max_followers=4)
    yield server
    server.stop()


class RunningDaemon:
    """A real ``modeld start`` in the background, for tests of the whole program."""

    def __init__(self, home, extra=(), rate_limit="off"):
        self.home = home
        self.environ = None  # the daemon's environment: this process's unless a test sets it
        # Tests poll every 20 ms, which is the default limit: off, unless a test is about it.
        self.extra = list(extra) + (["--rate-limit", rate_limit] if rate_limit else [])

    def start(self, check=True):
        result = subprocess.run(
            MODELD + ["start", "--home", self.home, "--port", "0"] + self.extra,
            capture_output=True,
            text=True,
            timeout=60,
            env=self.environ,
        )
        if check:
            assert result.returncode == 0, result.stderr
            self.reload()
        return result

    def reload(self):
        with open(os.path.join(self.home, "daemon.json")) as handle:
            self.info = json.load(handle)
        with open(os.path.join(self.home, "token")) as handle:
            self.token = handle.read().strip()
        self.url = self.info["url"]
        self.pid = self.info["pid"]

    def client(self):
        from lib.cli.client import Client

        return Client(self.url, self.token)

    def kill(self):
        os.kill(self.pid, signal.SIGKILL)
        wait_until(lambda: not procfs.alive(self.pid), message="the daemon to die")

    def stop(self, models=True):
        args = ["stop", "--home", self.home] + (["--models"] if models else [])
        return subprocess.run(
            MODELD + args, capture_output=True, text=True, timeout=120, env=self.environ
        )


@pytest.fixture
def daemon(home):
    from lib.core import fsutil

    running = RunningDaemon(home)
    yield running
    gone = not fsutil.is_locked(os.path.join(home, "modeld.lock"))
    if gone and os.path.isdir(os.path.join(home, "models")):
        running.start(check=False)  # a test killed it: bring it back to stop the models
    running.stop(models=True)
    if os.path.exists(os.path.join(home, "daemon.json")):
        try:
            os.kill(running.pid, signal.SIGKILL)
        except (ProcessLookupError, AttributeError):
            pass
