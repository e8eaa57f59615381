"""Starting monitors, and knowing when to stop trying.

A monitor detaches itself (``lib.monitor.loop.detach``): the process started here
is a short-lived launcher that exits 0 once the monitor holds its lock, 75 if
another monitor already holds it, anything else if it died
(``lib.core.protocol``). ``Launcher``
starts launchers without waiting for them and ``poll`` collects their
outcomes, so many monitors come up side by side (concurrent deploys, a restore
after a reboot). It also records why a monitor cannot start, and counts the
replacements of monitors that died (``lib.daemon.reconcile`` decides when to
give up). All of it runs on the supervisor thread only, through the OS seam
``lib.core.system``.
"""

import collections
import concurrent.futures
import logging
import os
import subprocess
import sys

from lib.core import fsutil, protocol
from lib.daemon import reconcile, template

START_TIMEOUT = 15.0
START_ATTEMPTS = 3
MONITOR_LOG_MAX = 1 << 20
TITLE_ROOM = 1024

log = logging.getLogger("modeld.launcher")


def entry_command():
    """The same interpreter and code as this daemon."""
    # lib/daemon/launcher.py -> the checkout, or modeld.pyz itself
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.isfile(root):  # running from modeld.pyz
        return [sys.executable, "-I", root] if sys.flags.isolated else [sys.executable, root]
    return [sys.executable, os.path.join(root, "modeld.py")]


def monitor_command(home, name, run, recover):
    """How to start a monitor afresh."""
    command = entry_command() + ["monitor", "--home", home.root, "--name", name, "--run", str(run)]
    return command + (["--recover"] if recover else [])


def template_command():
    """How to start the monitor template.

    No ``--home`` in its argv: it is not a process of any model (what names the
    home in its argv is taken for one by tools and tests); it is the daemon's child.
    The blank argument is room: a forked monitor writes its own command line over
    the template's (``lib.core.system.set_title``), and it cannot grow.
    """
    return entry_command() + ["monitor-zygote", " " * TITLE_ROOM]


class Launch:
    """A monitor on its way up: its launcher process and the Future of the outcome."""

    def __init__(self, popen, name, run, recover, now):
        self.popen = popen
        self.name = name
        self.run = run
        self.recover = recover
        self.deadline = now + START_TIMEOUT
        self.outcome = concurrent.futures.Future()


class Launcher:
    """Starts monitors for the supervisor and remembers how their starts went.

    Lives as long as the supervisor; its tables are per model name.
    """

    def __init__(self, home, environ, system):
        self.home = home
        self.environ = environ
        self.system = system
        self.launching = {}  # name -> Launch, while its monitor comes up
        self.failures = {}  # name -> why its monitor cannot start or keeps dying
        self.attempts = {}  # name -> failed starts of its current run
        self.recoveries = {}  # name -> times its monitor was replaced lately
        self.template = None  # monitors forked from a warm template (lib.monitor.zygote)
        if protocol.template_enabled(environ):
            self.template = template.Template(template_command(), environ, system)

    def reset(self, name):
        """A fresh start asked for by the operator: forget past trouble."""
        self.failures.pop(name, None)
        self.recoveries.pop(name, None)
        self.attempts[name] = 0

    def forget(self, name):
        for table in (self.failures, self.recoveries, self.attempts):
            table.pop(name, None)

    def spawn(self, name, run, recover):
        """Start a monitor; a Future of True once it holds its lock (False if it cannot)."""
        pending = self.launching.get(name)
        if pending is not None:
            return pending.outcome
        model_paths = self.home.model(name)
        fsutil.ensure_directory(model_paths.root)
        _rotate(model_paths.monitor_log)
        if self.template is not None:
            popen = self.template.spawn(self.home.root, name, run, recover, model_paths.monitor_log)
        else:
            popen = self._spawn_fresh(name, run, recover, model_paths.monitor_log)
        launch = self.launching[name] = Launch(popen, name, run, recover, self.system.monotonic())
        return launch.outcome

    def _spawn_fresh(self, name, run, recover, log_path):
        with open(log_path, "ab") as monitor_log:
            return self.system.spawn(
                monitor_command(self.home, name, run, recover),
                stdin=subprocess.DEVNULL,
                stdout=monitor_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                cwd="/",
                env=self.environ,
            )

    def close(self):
        """End the template, if any (the monitors it made carry on)."""
        if self.template is not None:
            self.template.close()

    def outcomes(self):
        return [launch.outcome for launch in self.launching.values()]

    def poll(self):
        """Collect the launchers that finished (or timed out)."""
        for launch in list(self.launching.values()):
            code = launch.popen.poll()
            if code is None:
                if self.system.monotonic() < launch.deadline:
                    continue
                launch.popen.kill()
                code = launch.popen.wait()
            del self.launching[launch.name]
            launch.outcome.set_result(self._launched(launch, code))

    def _launched(self, launch, code):
        name = launch.name
        if protocol.monitor_is_up(code):
            log.info(
                "monitor of %r is up (run %d%s)",
                name,
                launch.run,
                ", recovering" if launch.recover else "",
            )
            return True
        self.attempts[name] = self.attempts.get(name, 0) + 1
        tail = self.tail(name)
        log.error("the monitor of %r did not start (exit %s): %s", name, code, tail)
        if self.attempts[name] >= START_ATTEMPTS:
            self.failures[name] = "its monitor could not start: %s" % tail
        return False

    def recent_recoveries(self, name):
        """How many times the monitor of ``name`` was replaced in the recovery window."""
        now = self.system.monotonic()
        times = self.recoveries.setdefault(name, collections.deque())
        while times and now - times[0] > reconcile.RECOVERY_WINDOW:
            times.popleft()
        return len(times)

    def since_last_recovery(self, name):
        """Seconds since the monitor of ``name`` was last replaced (``None``: not lately)."""
        times = self.recoveries.get(name)
        return self.system.monotonic() - times[-1] if times else None

    def note_recovery(self, name):
        self.recoveries.setdefault(name, collections.deque()).append(self.system.monotonic())

    def give_up(self, name, why):
        """Record that the monitor of ``name`` will not be replaced again (until a reset)."""
        self.failures[name] = "%s: %s" % (why, self.tail(name))
        log.error("giving up on %r: %s", name, self.failures[name])

    def tail(self, name, lines=3):
        """The last lines of a monitor's own log, for a failure message."""
        try:
            with open(self.home.model(name).monitor_log, "rb") as handle:
                handle.seek(max(0, os.fstat(handle.fileno()).st_size - 4096))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return "no monitor log"
        kept = [line for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(kept) or "no output"


def _rotate(path):
    try:
        if os.path.getsize(path) > MONITOR_LOG_MAX:
            os.replace(path, path + ".1")
    except FileNotFoundError:
        pass  # the first start of this model
