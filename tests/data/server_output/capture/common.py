"""Tiny harness shared by the capture scripts: run a real server, read its stdout and
stderr line by line (separately), tag each line with the scenario in progress, send
HTTP requests, stop it. Labels (level, probe) are assigned afterwards by label.py and
reviewed by hand.

Run with the venv that has the servers installed, e.g.
    /tmp/corpus-venv/bin/python tests/data/server_output/capture/capture_uvicorn.py
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.dirname(HERE)
RAW = os.path.join(HERE, "raw")
PROBE_UA = "modeld-probe/0.1.0"
BIN = os.path.dirname(sys.executable)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Run:
    def __init__(self, cmd, env=None, cwd=None, scenario="startup"):
        self.cmd = list(cmd)
        self.lines = []  # (seq, stream, text, scenario)
        self.scenario = scenario
        self.lock = threading.Lock()
        self.last = time.monotonic()
        full_env = dict(os.environ)
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
        self.threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, "stdout"), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, "stderr"), daemon=True),
        ]
        for t in self.threads:
            t.start()
        self.returncode = None
        self.timed_out = False

    def _read(self, pipe, stream):
        for raw in iter(pipe.readline, b""):
            text = raw.decode("utf-8", "replace")
            if text.endswith("\n"):
                text = text[:-1]
            with self.lock:
                self.lines.append((len(self.lines), stream, text, self.scenario))
                self.last = time.monotonic()

    def set(self, scenario):
        with self.lock:
            self.scenario = scenario

    def settle(self, quiet=0.8, timeout=20):
        """Wait until no new line arrived for `quiet` seconds."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                idle = time.monotonic() - self.last
            if idle >= quiet:
                return
            time.sleep(0.1)

    def settle_after_request(self, quiet=0.8, timeout=20):
        """Some servers write the access line after the response went out: wait at least
        `quiet` seconds after the request returned, then until output is quiet."""
        with self.lock:
            self.last = time.monotonic()
        self.settle(quiet, timeout)

    def wait_for(self, needle, timeout=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if any(needle in line[2] for line in self.lines):
                    return True
            if self.proc.poll() is not None:
                time.sleep(0.3)
                with self.lock:
                    return any(needle in line[2] for line in self.lines)
            time.sleep(0.1)
        return False

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for t in self.threads:
            t.join(5)
        # make sure nothing of its process group survives
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.returncode = self.proc.returncode
        return self.returncode

    def wait_exit(self, timeout=60, on_timeout=signal.SIGKILL):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.set(self.scenario + "_then_" + signal.Signals(on_timeout).name.lower())
            self.timed_out = True
            return self.stop(on_timeout)
        for t in self.threads:
            t.join(5)
        self.returncode = self.proc.returncode
        return self.returncode

    def dump(self, name, meta=None):
        os.makedirs(RAW, exist_ok=True)
        with open(os.path.join(RAW, name + ".raw.jsonl"), "w") as f:
            for _seq, stream, text, scen in self.lines:
                f.write(json.dumps({"stream": stream, "line": text, "scenario": scen}) + "\n")
        rc = self.returncode
        info = {
            "command": self.cmd,
            "returncode": rc,
            "stopped_by_capture": self.timed_out,
            "exit_code": rc if rc is not None and rc >= 0 else None,
            "signal": signal.Signals(-rc).name if rc is not None and rc < 0 else None,
        }
        info.update(meta or {})
        with open(os.path.join(RAW, name + ".meta.json"), "w") as f:
            json.dump(info, f, indent=1)
        print(f"{name}: {len(self.lines)} lines, rc={rc}")


def request(method, url, body=None, headers=None, timeout=15):
    data = json.dumps(body).encode() if body is not None else None
    h = {"Content-Type": "application/json"} if data is not None else {}
    h.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()[:200]
    except urllib.error.HTTPError as e:
        return e.code, e.read()[:200]
    except Exception as e:  # noqa: BLE001 (connection reset etc: still a scenario)
        return None, repr(e).encode()


def probe(url):
    return request("GET", url, headers={"User-Agent": PROBE_UA})


def wait_port(port, timeout=90, run=None):
    """Wait until something accepts TCP connections on the port (no HTTP request, so
    nothing lands in the access log)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if run is not None and run.proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def hold_port():
    """A listening socket on a free port, to make a server fail with 'address in use'."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s, s.getsockname()[1]


# The standard scenario list for an HTTP server serving capture/apps.py.
STANDARD = [
    ("request_ok", "POST", "/predict", {"x": [1, 2, 3], "name": "a"}, None),
    ("probe", "GET", "/health", None, {"User-Agent": PROBE_UA}),
    ("request_invalid_body", "POST", "/predict", {"x": "nope"}, None),
    ("handler_file_not_found", "GET", "/fnf", None, None),
    ("handler_value_error_multiline", "GET", "/valueerror", None, None),
    ("handler_validation_error", "GET", "/validation", None, None),
    ("user_warnings", "GET", "/warn", None, None),
    ("chained_traceback", "GET", "/chained", None, None),
]


def drive(run, base, steps=STANDARD, prefix=""):
    for name, method, path, body, headers in steps:
        run.set(prefix + name)
        status, _ = request(method, base + path, body, headers)
        print(f"  {prefix + name}: {method} {path} -> {status}")
        run.settle_after_request()
