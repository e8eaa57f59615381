"""The daemon's handle on its monitor template (``lib.monitor.zygote``).

``Template.spawn`` asks the template for a monitor and returns a
``TemplateLaunch``, which answers the few ``Popen`` calls the launcher makes
(``poll``, ``kill``, ``wait``), so ``lib.daemon.launcher`` treats a forked
monitor like one started afresh. The template is started on first use and
again if it died; ``close`` ends it (EOF on its stdin) and reaps it. Supervisor
thread only; every OS call goes through ``lib.core.system``.
"""

import os
import signal
import subprocess

from lib.core import protocol


class Template:
    """The template process of one daemon, and the launches it has not answered yet."""

    def __init__(self, command, environ, system):
        self.command = command  # argv that runs ``modeld monitor-zygote``
        self.environ = environ
        self.system = system
        self.process = None
        self.next_number = 0
        self.pending = {}  # request number -> TemplateLaunch
        self.buffer = b""

    def spawn(self, home_root, name, run, recover, monitor_log):
        """Ask for a monitor; a Popen-like ``TemplateLaunch``."""
        if self.process is None or self.process.poll() is not None:
            self._start()
        launch = TemplateLaunch(self)
        try:
            self.process.stdin.write(
                protocol.template_request(home_root, name, run, recover, monitor_log)
            )
            self.process.stdin.flush()
        except OSError:
            launch.returncode = protocol.EXIT_FAILED  # the template died under us: retried
            return launch
        self.pending[self.next_number] = launch
        self.next_number += 1
        return launch

    def _start(self):
        self._fail_pending()
        self.process = self.system.spawn(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            cwd="/",
            env=self.environ,
        )
        os.set_blocking(self.process.stdout.fileno(), False)

    def _fail_pending(self):
        for launch in self.pending.values():
            launch.returncode = protocol.EXIT_FAILED  # its template died before it answered
        self.pending, self.next_number, self.buffer = {}, 0, b""

    def read_answers(self):
        try:
            chunk = os.read(self.process.stdout.fileno(), 65536)
        except BlockingIOError:
            return
        if not chunk:  # the template is gone: nothing pending will ever answer
            self.process.wait()
            self._fail_pending()
            return
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            kind, number, value = protocol.read_template_answer(line)
            launch = self.pending.get(number)
            if launch is None:
                continue
            if kind == "started":
                launch.pid = value
            else:
                launch.returncode = value
                del self.pending[number]

    def close(self, timeout=5):
        """End the template (its monitors carry on) and reap it."""
        if self.process is None:
            return
        try:
            self.process.stdin.close()
            self.process.wait(timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()  # it did not see EOF in time: it holds no model, kill is safe
            self.process.wait()
        self.process.stdout.close()
        self.process = None


class TemplateLaunch:
    """A monitor being forked by the template, seen through the Popen calls the launcher makes."""

    def __init__(self, template):
        self.template = template
        self.pid = None
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            self.template.read_answers()
        return self.returncode

    def kill(self):
        if self.pid is not None:
            try:
                self.template.system.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it exited meanwhile; its answer is on the way

    def wait(self):
        # The launcher calls this only after kill(): the answer (or the template's
        # death) follows at once, but never block the supervisor thread on it.
        self.poll()
        return protocol.EXIT_FAILED if self.returncode is None else self.returncode
