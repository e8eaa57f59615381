"""Helpers shared by the benchmarks: the machine's description, statistics, a throwaway daemon."""

import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
MODELD = [sys.executable, os.path.join(ROOT, "modeld.py")]


def machine():
    """One line that says where the figures come from."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return "%s, %d cores, %.0f GiB RAM, Linux %s, Python %s" % (
        cpu,
        os.cpu_count(),
        memory,
        platform.release(),
        platform.python_version(),
    )


def median(values):
    return statistics.median(values)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def header(title):
    print("# %s" % title)
    print("machine: %s" % machine())
    print("date: %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))


class Daemon:
    """``modeld start`` on a free port in a temporary home; ``stop()`` stops it and its models."""

    def __init__(self, *extra):
        self.home = tempfile.mkdtemp(prefix="modeld-bench-")
        result = subprocess.run(
            MODELD
            + ["start", "--home", self.home, "--port", "0", "--rate-limit", "off"]
            + list(extra),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise SystemExit("modeld did not start: %s" % result.stderr)
        with open(os.path.join(self.home, "daemon.json")) as handle:
            info = json.load(handle)
        with open(os.path.join(self.home, "token")) as handle:
            self.token = handle.read().strip()
        self.url = info["url"]
        self.host, self.port = self.url.split("//")[1].split(":")
        self.port = int(self.port)

    def connection(self):
        return Connection(self.host, self.port, self.token)

    def stop(self):
        subprocess.run(MODELD + ["stop", "--models", "--home", self.home], capture_output=True)


class Connection:
    """A keep-alive HTTP connection that answers JSON."""

    def __init__(self, host, port, token):
        self.connection = http.client.HTTPConnection(host, port, timeout=600)
        self.headers = {"Authorization": "Bearer " + token}

    def request(self, method, path, body=None):
        headers = dict(self.headers)
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers["Content-Type"] = "application/json"
        self.connection.request(method, path, payload, headers)
        response = self.connection.getresponse()
        data = response.read()
        if response.status >= 400:
            raise RuntimeError("%s %s -> %d %s" % (method, path, response.status, data[:300]))
        return json.loads(data) if data else None

    def timed(self, method, path, body=None):
        started = time.perf_counter()
        result = self.request(method, path, body)
        return time.perf_counter() - started, result

    def wait_status(self, name, wanted, timeout=600):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.request("GET", "/models/" + name)
            if status["status"] in wanted:
                return status
            time.sleep(0.1)
        raise SystemExit("%s never became %s" % (name, wanted))
