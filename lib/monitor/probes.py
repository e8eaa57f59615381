"""Health probes run inside the monitor's event loop, without threads.

The monitor stays single-threaded (it forks the model with a ``preexec_fn``,
which is only safe without threads), so an HTTP or TCP probe is a small
non-blocking state machine on the monitor's selector: connect, send, read the
status line, decide. A log probe watches the captured lines for a pattern.

An HTTP probe says who it is (``User-Agent: modeld-probe/VERSION``) and is
remembered for a few seconds, so the capture can tag the model's access-log line
for it (``caused_by_probe``): stored with the probe flag, hidden from queries by
default, never dropped.
"""

import collections
import errno
import re
import selectors
import socket

from lib import __version__
from lib.core import spec as specs
from lib.core import vocabulary

PROBE_HOST = "127.0.0.1"
FIRST_PROBE_AFTER = 0.2
USER_AGENT = "modeld-probe/%s" % __version__
# A server logs a request's access line after answering it: within this long after the
# probe's answer (or its timeout), a matching line is the probe's.
ACCESS_LINE_WINDOW = 3.0


class Prober:
    """Schedules probes every ``interval`` and reports each outcome to ``report(ok, detail)``."""

    def __init__(self, health, port, selector, report):
        self.health = health
        self.port = port
        self.selector = selector
        self.report = report
        self.kind = specs.probe_kind(health)
        log_probe = self.kind == vocabulary.PROBE_LOG
        self.pattern = re.compile(health["log"].encode()) if log_probe else None
        self.next_at = None
        self.attempt = None
        self.log_seen = False
        # When the HTTP probes not yet matched to an access-log line were sent.
        self.sent = collections.deque(maxlen=8)
        self.needle = ("GET %s" % health["http"]).encode() if self.kind == "http" else None

    def start(self, now):
        """A new run of the model: probe soon, forget the last run's log match."""
        self.cancel()
        self.log_seen = False
        if self.kind is not None:
            self.next_at = now + min(FIRST_PROBE_AFTER, self.health["interval"])

    def cancel(self):
        if self.attempt is not None:
            self.attempt.close()
            self.attempt = None
        self.next_at = None

    def hurry(self, now, within):
        """A client waits for this model (on demand): probe within ``within`` seconds,
        not at the next interval, so it is relayed as soon as the model answers."""
        if self.attempt is None and self.next_at is not None:
            self.next_at = min(self.next_at, now + within)

    def next_deadline(self):
        if self.attempt is not None:
            return self.attempt.deadline
        return self.next_at

    def saw_line(self, msg, now):
        """Every captured line passes here; the log probe succeeds on its first match."""
        if self.pattern is not None and not self.log_seen and self.pattern.search(msg):
            self.log_seen = True
            self.next_at = now  # report it without waiting for the interval

    def expecting_access_line(self, now):
        """True while a probe sent lately has not yet been matched to its access-log line."""
        while self.sent and now - self.sent[0] > self.health["timeout"] + ACCESS_LINE_WINDOW:
            self.sent.popleft()
        return bool(self.sent)

    def caused_by_probe(self, line, now):
        """Is ``line`` the access-log line of a probe just sent (its path, in time)? One line
        per probe: a user's request to the same path a second later is not hidden."""
        if not self.sent:
            return False
        start = line.find(self.needle)
        if start < 0:
            return False
        after = line[start + len(self.needle) : start + len(self.needle) + 1]
        if after not in (b" ", b"?", b'"', b""):
            return False  # "/health" must not match "/healthz"
        self.sent.popleft()
        return True

    def tick(self, now):
        attempt = self.attempt
        if attempt is not None and attempt.immediate is not None:
            self.attempt_done(attempt, *attempt.immediate, now)
        elif attempt is not None and now >= attempt.deadline:
            self.attempt_done(attempt, False, "timed out after %gs" % self.health["timeout"], now)
        if self.next_at is None or now < self.next_at or self.attempt is not None:
            return
        if self.kind == vocabulary.PROBE_LOG:
            self._finish(self.log_seen, None if self.log_seen else "pattern not seen yet", now)
        else:
            self.next_at = None
            self.attempt = _Attempt(self, now)

    def _finish(self, ok, detail, now):
        self.next_at = now + self.health["interval"]
        self.report(ok, detail)

    def attempt_done(self, attempt, ok, detail, now):
        if attempt is self.attempt:
            self.attempt = None
            attempt.close()
            self._finish(ok, detail, now)


class _Attempt:
    """One HTTP or TCP probe in flight."""

    def __init__(self, prober, now):
        self.prober = prober
        self.deadline = now + prober.health["timeout"]
        self.received = b""
        self.state = "connecting"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.registered = False
        code = self.sock.connect_ex((PROBE_HOST, prober.port))
        if code not in (0, errno.EINPROGRESS):
            self.sock.close()
            self.sock = None
            self.immediate = (False, "connect: %s" % errno.errorcode.get(code, code))
            return
        self.immediate = None
        prober.selector.register(self.sock, selectors.EVENT_WRITE, self._on_event)
        self.registered = True

    def _on_event(self, now):
        if self.immediate is not None:
            return
        try:
            self._step(now)
        except OSError as error:
            self.prober.attempt_done(self, False, "%s" % (error.strerror or error), now)

    def _step(self, now):
        prober = self.prober
        if self.state == "connecting":
            error = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, "connect: %s" % errno.errorcode.get(error, error))
            if prober.kind == vocabulary.PROBE_TCP:
                prober.attempt_done(self, True, None, now)
                return
            request = "GET %s HTTP/1.0\r\nHost: %s:%d\r\nUser-Agent: %s\r\n" % (
                prober.health["http"],
                PROBE_HOST,
                prober.port,
                USER_AGENT,
            )
            request += "Connection: close\r\n\r\n"
            self.sock.sendall(request.encode())
            prober.sent.append(now)
            prober.selector.modify(self.sock, selectors.EVENT_READ, self._on_event)
            self.state = "reading"
            return
        chunk = self.sock.recv(4096)
        self.received += chunk
        if b"\r\n" in self.received or b"\n" in self.received or not chunk:
            prober.attempt_done(self, *_judge(self.received), now)

    def close(self):
        if self.sock is not None:
            if self.registered:
                self.prober.selector.unregister(self.sock)
                self.registered = False
            self.sock.close()
            self.sock = None


def _judge(received):
    """``(ok, detail)`` from the start of an HTTP response."""
    status_line = received.split(b"\n", 1)[0].strip()
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return False, "not an HTTP response"
    code = int(parts[1])
    if 200 <= code < 300:
        return True, None
    return False, "HTTP %d" % code
