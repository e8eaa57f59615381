"""The change notification: one datagram from a monitor to its daemon per state write.

A monitor rewrites ``state.json`` on every change (``lib.core.protocol``); the
daemon keeps each model's state in memory (``lib.daemon.statecache``) and needs
to hear that the file changed without reading it on every request. So, after
each write, the monitor sends one datagram ``b"<model> <monitor pid>
<generation>"`` to a Unix datagram socket bound by the daemon.

The datagram is a hint, never the truth: the daemon reads the file again when
one arrives, and re-reads any file it has not read for ``statecache.STALE_AFTER``
seconds anyway, so a lost datagram delays the news by that much at most.

- **Address**: an abstract socket (Linux), named after the home directory's
  device and inode (``address``). Nothing is left on disk when the daemon dies
  (a ``kill -9`` leaves no stale file to remove, and no path-length limit
  applies), and a second home on the same host gets another name.
- **Never blocking, never fatal**: the monitor's socket is non-blocking; a daemon
  that is away (``ECONNREFUSED``), busy (``EAGAIN``: its queue is full) or
  anything else makes ``Notifier.send`` drop the datagram and carry on.
- **Who may send**: anyone on the host can reach an abstract socket, so the
  daemon asks the kernel for each sender's credentials (``SO_PASSCRED``) and
  ignores datagrams from other users than its own (and root). A datagram can
  only make the daemon re-read the named model's file, so even an accepted
  forgery shows nothing that the file does not say.
"""

import os
import socket
import sys

MAX_DATAGRAM = 256  # a model name is at most 63 characters
_CREDENTIALS_SIZE = 12  # struct ucred: pid, uid, gid (32 bits each)


def address(home_root):
    """The abstract socket address of the daemon of ``home_root``, or ``None`` (no home)."""
    try:
        info = os.stat(home_root)
    except OSError:
        return None
    return b"\0modeld-state-%x-%x" % (info.st_dev, info.st_ino)


def encode(name, monitor_pid, generation):
    return b"%s %d %d" % (name.encode(), monitor_pid or 0, generation or 0)


def decode(payload):
    """``(name, monitor pid, generation)`` of a datagram, or ``None`` for anything else."""
    try:
        name, pid, generation = payload.decode("ascii").split(" ")
        return name, int(pid), int(generation)
    except ValueError:  # includes UnicodeDecodeError: not one of ours
        return None


class Notifier:
    """The monitor's side: ``send`` after each state write, through the OS seam
    (``system.datagram_socket``), created on first use."""

    def __init__(self, system, home_root):
        self.system = system
        self.address = address(home_root)
        self.socket = None

    def send(self, name, monitor_pid, generation):
        """Send one notification; False if it was dropped (never raises, never blocks)."""
        if self.address is None:
            return False
        try:
            if self.socket is None:
                self.socket = self.system.datagram_socket()
            self.socket.sendto(encode(name, monitor_pid, generation), self.address)
            return True
        except OSError:
            # No daemon, a full queue, no socket: the daemon re-reads stale files anyway.
            return False

    def close(self):
        if self.socket is not None:
            self.socket.close()
            self.socket = None


class Listener:
    """The daemon's side: bound at ``address(home_root)``; ``OSError`` if it cannot be."""

    def __init__(self, home_root):
        self.allowed = {os.getuid(), 0}
        found = address(home_root)
        if found is None:
            raise FileNotFoundError("no home at %s" % home_root)
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            self.socket.bind(found)
        except OSError:
            self.socket.close()
            raise

    def receive(self, timeout):
        """The notifications that arrive within ``timeout`` seconds: waits for the first,
        then takes whatever else is queued. ``[(name, monitor pid, generation)]``."""
        found = []
        self.socket.settimeout(timeout)
        while True:
            try:
                payload, ancillary, _, _ = self.socket.recvmsg(
                    MAX_DATAGRAM, socket.CMSG_SPACE(_CREDENTIALS_SIZE)
                )
            except (socket.timeout, BlockingIOError, InterruptedError):
                return found
            message = decode(payload) if self._trusted(ancillary) else None
            if message is not None:
                found.append(message)
            self.socket.settimeout(0)

    def _trusted(self, ancillary):
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                return int.from_bytes(data[4:8], sys.byteorder) in self.allowed
        return False

    def wake(self):
        """End a ``receive`` that is waiting now: an empty datagram, which carries no news."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as once:
                once.sendto(b"", self.socket.getsockname())
        except OSError:
            pass  # a full queue wakes it just as well; the wait ends within a sweep anyway

    def close(self):
        self.socket.close()
