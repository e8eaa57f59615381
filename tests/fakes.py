"""A recording fake of ``lib.core.system.System``: processes, signals, locks and a clock in memory.

The monitor and the supervisor run against it unchanged, so their decisions are
tested without a real process. ``calls`` records every OS call in order, e.g.
``("killpg", 101, SIGTERM)``; time moves only when a test (or ``sleep``) moves it.

A fake process dies on any signal unless its pid is in ``ignore`` (then only
SIGKILL kills it). A dead child of the monitor is reported by ``waitpid``;
``leftovers`` are processes of a dead predecessor (not our descendants).
"""

import collections
import os
import signal
import subprocess

Stat = collections.namedtuple("Stat", "pid pgrp session starttime")


class FakePopen:
    """What ``spawn`` returns: a model (with real, empty pipes) or a monitor launcher."""

    def __init__(self, pid, argv, options, launcher_exit):
        self.pid = pid
        self.argv = argv
        self.options = options
        self.returncode = None
        self.launcher_exit = launcher_exit
        self.stdout = self.stderr = None
        if options.get("stdout") == subprocess.PIPE:
            self.stdout = self._pipe()
            self.stderr = self._pipe()

    def _pipe(self):
        reader, writer = os.pipe()
        os.close(writer)  # the fake model writes nothing: EOF at once
        return os.fdopen(reader, "rb")

    # The launcher's side: a launcher that exits with ``launcher_exit`` at its first poll.
    def poll(self):
        return self.launcher_exit

    def kill(self):
        pass

    def wait(self):
        return self.launcher_exit

    def close(self):
        for pipe in (self.stdout, self.stderr):
            if pipe is not None:
                pipe.close()


class FakeLock:
    def __init__(self, system, path):
        self.system, self.path = system, path

    def release(self):
        self.system.locks.discard(self.path)


class FakeDatagramSocket:
    """Records each datagram as ``("sendto", payload, address)`` in the system's calls."""

    def __init__(self, system):
        self.system = system

    def sendto(self, payload, address):
        self.system.calls.append(("sendto", payload, address))
        if self.system.datagram_error is not None:
            raise self.system.datagram_error

    def close(self):
        pass


class FakeSystem:
    def __init__(self, now=1000.0, pid=4242):
        self.now = now
        self.pid = pid
        self.calls = []
        self.children = {}  # pid -> Stat: the monitor's descendants
        self.leftovers = {}  # pid -> Stat: processes outside our tree (a dead predecessor's)
        self.ignore = set()  # pids that survive every signal but SIGKILL
        self.exits = []  # (pid, raw wait status) not reaped yet
        self.locks = set()  # paths whose flock is held
        self.spawned = []
        self.launcher_exit = 0  # what a spawned monitor launcher exits with
        self.next_pid = 101
        self.datagram_error = None  # what sendto raises (an OSError), if anything

    # -- clock
    def time(self):
        return self.now

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.calls.append(("sleep", seconds))
        self.now += seconds

    def advance(self, seconds):
        self.now += seconds

    # -- processes
    def getpid(self):
        return self.pid

    def getpgrp(self):
        return self.pid

    def spawn(self, argv, **options):
        pid = self.next_pid
        self.next_pid += 1
        self.calls.append(("spawn", list(argv)))
        popen = FakePopen(pid, list(argv), options, self.launcher_exit)
        self.spawned.append(popen)
        if options.get("start_new_session") and options.get("stdout") == subprocess.PIPE:
            self.children[pid] = Stat(pid, pid, pid, int(self.now * 100))  # a model
        return popen

    def kill(self, pid, number):
        self.calls.append(("kill", pid, number))
        if pid not in self.children and pid not in self.leftovers:
            raise ProcessLookupError(pid)
        self._deliver(pid, number)

    def killpg(self, group, number):
        self.calls.append(("killpg", group, number))
        members = [stat.pid for stat in self.children.values() if stat.pgrp == group]
        if not members:
            raise ProcessLookupError(group)
        for pid in members:
            self._deliver(pid, number)

    def _deliver(self, pid, number):
        if pid in self.ignore and number != signal.SIGKILL:
            return
        if self.children.pop(pid, None) is not None:
            self.exits.append((pid, number))  # raw status of a death by signal
        self.leftovers.pop(pid, None)

    def exit(self, pid, code):
        """The model ``pid`` exits by itself with ``code``."""
        del self.children[pid]
        self.exits.append((pid, code << 8))

    def waitpid(self, pid, flags):
        self.calls.append(("waitpid", pid))
        if self.exits:
            return self.exits.pop(0)
        if not self.children:
            raise ChildProcessError()
        return 0, 0

    def descendants(self, pid):
        return list(self.children.values()) if pid == self.pid else []

    def alive(self, pid, starttime=None):
        stat = self.children.get(pid) or self.leftovers.get(pid)
        return stat is not None and (starttime is None or stat.starttime == starttime)

    def start_time(self, pid):
        stat = self.children.get(pid) or self.leftovers.get(pid)
        return stat.starttime if stat else None

    def all_processes(self):
        return list(self.children.values()) + list(self.leftovers.values())

    def boot_id(self):
        return "fake-boot"

    def become_subreaper(self):
        self.calls.append(("become_subreaper",))
        return 0

    # -- locks
    def try_lock(self, path):
        if path in self.locks:
            return None
        self.locks.add(path)
        return FakeLock(self, path)

    def is_locked(self, path):
        return path in self.locks

    # -- the change notification
    def datagram_socket(self):
        return FakeDatagramSocket(self)

    # -- what happened
    def signals(self):
        """``(kind, target, signal)`` of every signal sent, in order."""
        return [call for call in self.calls if call[0] in ("kill", "killpg")]

    def close(self):
        for popen in self.spawned:
            popen.close()
