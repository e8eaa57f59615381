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
    """``modeld start`` on a free port in a temporary home; ``stop()`` stops it and its models.

    ``command`` runs another build of modeld, e.g. ``[python, "-I", "dist/modeld.pyz"]``.
    """

    def __init__(self, *extra, command=MODELD, env=None):
        self.command = list(command)
        self.home = tempfile.mkdtemp(prefix="modeld-bench-")
        result = subprocess.run(
            self.command
            + ["start", "--home", self.home, "--port", "0", "--rate-limit", "off"]
            + list(extra),
            capture_output=True,
            text=True,
            env=env,
        )
        if result.returncode != 0:
            raise SystemExit("modeld did not start: %s" % result.stderr)
        with open(os.path.join(self.home, "daemon.json")) as handle:
            info = json.load(handle)
        with open(os.path.join(self.home, "token")) as handle:
            self.token = handle.read().strip()
        self.pid = info["pid"]
        self.url = info["url"]
        self.host, self.port = self.url.split("//")[1].split(":")
        self.port = int(self.port)

    def connection(self):
        return Connection(self.host, self.port, self.token)

    def stop(self):
        subprocess.run(
            self.command + ["stop", "--models", "--home", self.home], capture_output=True
        )


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


def install_supervisord(workdir):
    """supervisord 4.x from PyPI into a venv of its own (not ours to depend on); the venv."""
    venv = os.path.join(workdir, "venv")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    pip = os.path.join(venv, "bin", "pip")
    subprocess.run(
        [pip, "install", "--quiet", "--disable-pip-version-check", "supervisor>=4,<5"],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    return venv


def start_supervisord(venv, workdir, program, options=(), inet_port=None):
    """supervisord with one program named ``program[0]``; returns the supervisorctl argv."""
    name, command = program
    if inet_port:
        server = "[inet_http_server]\nport=127.0.0.1:%d\n" % inet_port
        url = "http://127.0.0.1:%d" % inet_port
    else:
        server = "[unix_http_server]\nfile=%s/supervisor.sock\n" % workdir
        url = "unix://%s/supervisor.sock" % workdir
    config = os.path.join(workdir, "supervisord.conf")
    with open(config, "w") as handle:
        handle.write(
            "[supervisord]\nlogfile=%s/supervisord.log\npidfile=%s/supervisord.pid\n%s"
            "[supervisorctl]\nserverurl=%s\n[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
            "[program:%s]\ncommand=%s\n%s"
            % (workdir, workdir, server, url, name, command, "".join(o + "\n" for o in options))
        )
    subprocess.run([os.path.join(venv, "bin", "supervisord"), "-c", config], check=True)
    return [os.path.join(venv, "bin", "supervisorctl"), "-c", config]


def supervisord_version(venv):
    binary = os.path.join(venv, "bin", "supervisord")
    return subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
