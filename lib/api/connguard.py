"""Connection guard: no worker thread waits for a client that has not finished its request head.

cheroot hands every accepted connection to a worker thread at once, and the worker then
blocks reading the request head with a per-read timeout: a client sending one header line
every few seconds held a thread forever, 36 of them held them all, and idle connections
held one each for 30 s. Here one thread (``HeadGate``) reads every request head without
blocking, with a deadline for the whole head (``head_timeout``, from the connection's first
wait); only a connection whose head is complete goes to a worker. An idle or slow
connection costs a descriptor and a few KiB, never a thread.

Caps (``ConnectionLedger``): at most ``max_connections`` open connections, and
``max_connections_per_client`` from one address. At a cap, the connection of that client
(or of anyone, for the total) that has waited longest for its head is closed to make room;
only when none is waiting is the new connection refused. A flood of idle connections from
one address thus churns its own connections and never locks out a new request.

Refusals (408, 414, 431, 503) are written without blocking in the JSON error shape, then the
connection is drained briefly before it is closed, so the client reads the answer instead
of a reset. ``AcceptBackoff`` handles running out of descriptors in the accept loop.
Standard library only: ``lib.api.server`` adapts cheroot to it.
"""

import collections
import errno
import logging
import resource
import secrets
import selectors
import socket
import ssl
import threading
import time

from lib import errors

log = logging.getLogger("modeld.server")

HEAD_TIMEOUT = 10.0
MAX_HEAD_BYTES = 64 * 1024
MAX_CONNECTIONS = 4096
MAX_CONNECTIONS_PER_CLIENT = 256
# Descriptors kept free of connections: logs, model state files, pipes, the listening socket.
DESCRIPTOR_RESERVE = 256
DRAIN_SECONDS = 2.0
DRAIN_BYTES = 4 * 1024 * 1024
EPISODE_QUIET_SECONDS = 60.0
DESCRIPTORS_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_REASONS = {
    408: "Request Timeout",
    413: "Payload Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def raise_descriptor_limit():
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as error:  # a container may forbid it: keep the old one
            log.warning("cannot raise the open files limit to %d: %s", target, error)
    return soft


def default_max_connections():
    """The total cap that leaves ``DESCRIPTOR_RESERVE`` descriptors for everything else."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(64, min(MAX_CONNECTIONS, soft - DESCRIPTOR_RESERVE))


def head_state(data, max_bytes):
    """``"complete"``, ``"partial"``, ``"line_too_long"`` or ``"too_large"`` for a head so far."""
    if b"\r\n\r\n" in data or b"\n\n" in data:
        end = min(i for i in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if i >= 0)
        if end <= max_bytes:
            return "complete"
    if len(data) <= max_bytes:
        return "partial"
    return "too_large" if b"\n" in data[:max_bytes] else "line_too_long"


def error_bytes(error):
    """A whole HTTP/1.1 response carrying ``error`` in the JSON error shape; it closes."""
    body = error.to_json().encode()
    lines = [
        "HTTP/1.1 %d %s" % (error.status, _REASONS.get(error.status, "Error")),
        "Content-Type: application/json",
        "Content-Length: %d" % len(body),
        "Connection: close",
        "X-Request-Id: %s" % secrets.token_hex(8),
    ]
    lines += ["%s: %s" % item for item in error.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Episode:
    """Logs a condition once per episode: hits closer than ``quiet`` seconds are one episode."""

    def __init__(self, quiet=EPISODE_QUIET_SECONDS, clock=time.monotonic):
        self.quiet = quiet
        self.clock = clock
        self.last_hit = None

    def hit(self, message, *args):
        now = self.clock()
        if self.last_hit is None or now - self.last_hit > self.quiet:
            log.warning(message, *args)
        self.last_hit = now


class AcceptBackoff:
    """What the accept loop does when the process is out of descriptors.

    Sleep (10 ms, doubling up to 0.5 s) instead of spinning on a listening socket that
    stays readable, and say so in one log line per episode instead of a traceback each time.
    """

    FIRST_DELAY = 0.01
    MAX_DELAY = 0.5

    def __init__(self, sleep=time.sleep, clock=time.monotonic):
        self.sleep = sleep
        self.delay = self.FIRST_DELAY
        self.episode = Episode(clock=clock)

    def exhausted(self, error):
        self.episode.hit(
            "out of file descriptors (%s): not accepting connections for now, backing off"
            " (raise the open files limit or lower --max-connections)",
            errno.errorcode.get(error.errno, error.errno),
        )
        self.sleep(self.delay)
        self.delay = min(self.MAX_DELAY, self.delay * 2)

    def accepted(self):
        self.delay = self.FIRST_DELAY


class ConnectionLedger:
    """Open connections counted by client address; thread-safe."""

    def __init__(self, max_total, max_per_client):
        self.max_total = max_total
        self.max_per_client = max_per_client
        self.by_client = collections.Counter()
        self.total = 0
        self.lock = threading.Lock()

    def open_count(self, client):
        return self.by_client[client]

    def over(self, client):
        """Which cap a new connection from ``client`` would break: None, "client" or "total"."""
        with self.lock:
            if self.by_client[client] >= self.max_per_client:
                return "client"
            if self.total >= self.max_total:
                return "total"
            return None

    def add(self, client):
        with self.lock:
            self.by_client[client] += 1
            self.total += 1

    def remove(self, client):
        with self.lock:
            self.by_client[client] -= 1
            if self.by_client[client] <= 0:
                del self.by_client[client]
            self.total -= 1


class HeadGate:
    """The thread that reads request heads; see the module docstring.

    A connection handed to ``submit`` needs ``socket``, ``client``, ``primed`` (a bytearray
    the head is read into, which the worker's reader returns first), ``ledgered`` (False
    until counted) and ``finish_close()``. ``dispatch(conn)`` gives it to a worker.
    """

    def __init__(self, dispatch, ledger, head_timeout=HEAD_TIMEOUT, max_head=MAX_HEAD_BYTES):
        self.dispatch = dispatch
        self.ledger = ledger
        self.head_timeout = head_timeout
        self.max_head = max_head
        self.selector = selectors.DefaultSelector()
        self.waiting = collections.OrderedDict()  # conn -> deadline, oldest first
        self.by_client = collections.defaultdict(collections.OrderedDict)
        self.draining = {}  # conn -> (deadline, bytes left)
        self.arrivals = collections.deque()
        self.lock = threading.Lock()
        self.wake_read, self.wake_write = socket.socketpair()
        self.wake_read.setblocking(False)
        self.wake_write.setblocking(False)
        self.selector.register(self.wake_read, selectors.EVENT_READ, None)
        self.caps = Episode()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="http-heads", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping = True
        self._wake()
        if self.thread.is_alive():
            self.thread.join(timeout=10)
        for conn in list(self.waiting) + list(self.draining):
            self._forget(conn)
            conn.finish_close()
        self.selector.close()
        self.wake_read.close()
        self.wake_write.close()

    def submit(self, conn):
        """Take a new or newly readable connection (any thread)."""
        with self.lock:
            self.arrivals.append(conn)
        self._wake()

    def drain(self, conn):
        """Close ``conn`` after reading away what the client is still sending (any thread)."""
        conn.draining = True
        self.submit(conn)

    def _wake(self):
        try:
            self.wake_write.send(b"x")
        except OSError:  # the pipe is full (a wake-up is pending anyway) or closed at stop
            pass

    # -- the thread --------------------------------------------------------------

    def _run(self):
        while not self.stopping:
            try:
                self._turn()
            except Exception:  # this thread must outlive any one connection
                log.exception("the request head reader failed; going on")

    def _turn(self):
        now = time.monotonic()
        deadlines = [next(iter(self.waiting.values()))] if self.waiting else []
        deadlines += [deadline for deadline, _ in self.draining.values()]
        timeout = min([1.0] + [max(0.0, deadline - now) for deadline in deadlines])
        for key, _ in self.selector.select(timeout):
            if key.data is None:
                self._take_arrivals()
            elif key.data in self.draining:
                self._read_away(key.data)
            else:
                self._read_head(key.data)
        self._expire(time.monotonic())

    def _take_arrivals(self):
        try:
            while self.wake_read.recv(4096):
                pass
        except OSError:  # drained (EAGAIN)
            pass
        with self.lock:
            arrivals, self.arrivals = list(self.arrivals), collections.deque()
        for conn in arrivals:
            if getattr(conn, "draining", False):
                self._start_draining(conn)
            elif conn.ledgered or self._admit(conn):
                self._wait_for_head(conn)

    def _admit(self, conn):
        over = self.ledger.over(conn.client)
        if over is not None:
            victim = self._longest_waiting(conn.client if over == "client" else None)
            self.caps.hit(
                "connection cap reached (%s): closing the connections that waited longest"
                " for a request head",
                "%d from %s" % (self.ledger.max_per_client, conn.client)
                if over == "client"
                else "%d in all" % self.ledger.max_total,
            )
            if victim is None:
                self._refuse(conn, _too_many(), drain=False)
                return False
            self._refuse(victim, _too_many())
        self.ledger.add(conn.client)
        conn.ledgered = True
        return True

    def _longest_waiting(self, client):
        waiting = self.by_client.get(client) if client is not None else self.waiting
        return next(iter(waiting), None) if waiting else None

    def _wait_for_head(self, conn):
        try:
            conn.socket.setblocking(False)
        except OSError:
            self._close(conn)
            return
        self.waiting[conn] = time.monotonic() + self.head_timeout
        self.by_client[conn.client][conn] = True
        if head_state(conn.primed, self.max_head) != "partial":
            self._judge(conn)  # a pipelined request already read in full
            return
        self.selector.register(conn.socket, selectors.EVENT_READ, conn)

    def _read_head(self, conn):
        try:
            while True:
                data = conn.socket.recv(65536)
                if not data:
                    self._close(conn)  # the client went away
                    return
                conn.primed += data
                if len(conn.primed) > self.max_head or not _tls_pending(conn.socket):
                    break
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except OSError:
            self._close(conn)
            return
        self._judge(conn)

    def _judge(self, conn):
        state = head_state(conn.primed, self.max_head)
        if state == "complete":
            self._forget(conn)
            self.dispatch(conn)
        elif state == "too_large":
            message = "the request head is over %d bytes" % self.max_head
            self._refuse(conn, errors.HeadersTooLargeError(message, limit=self.max_head))
        elif state == "line_too_long":
            message = "the request line is over %d bytes" % self.max_head
            self._refuse(conn, errors.UriTooLongError(message, limit=self.max_head))

    def _expire(self, now):
        while self.waiting:
            conn, deadline = next(iter(self.waiting.items()))
            if deadline > now:
                break
            if conn.primed:
                self._refuse(conn, _timed_out(self.head_timeout))
            else:
                self._close(conn)  # idle: nothing was asked, nothing to answer
        for conn, (deadline, _) in list(self.draining.items()):
            if deadline <= now:
                self._close(conn)

    def _refuse(self, conn, error, drain=True):
        try:
            conn.socket.setblocking(False)
            conn.socket.send(error_bytes(error))
        except OSError:  # best effort: the client may be gone, or its window full
            pass
        if drain:
            self._start_draining(conn)
        else:
            self._close(conn)

    def _start_draining(self, conn):
        """Stop writing, read away what is in flight for a moment, then close (no reset)."""
        self._forget(conn)
        self._release(conn)
        try:
            conn.socket.setblocking(False)
            conn.socket.shutdown(socket.SHUT_WR)
            self.selector.register(conn.socket, selectors.EVENT_READ, conn)
        except (OSError, ValueError):
            conn.finish_close()
            return
        self.draining[conn] = (time.monotonic() + DRAIN_SECONDS, DRAIN_BYTES)

    def _read_away(self, conn):
        deadline, left = self.draining[conn]
        try:
            data = conn.socket.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data or len(data) >= left:
            self._close(conn)
        else:
            self.draining[conn] = (deadline, left - len(data))

    def _close(self, conn):
        self._forget(conn)
        self._release(conn)
        conn.finish_close()

    def _forget(self, conn):
        self.waiting.pop(conn, None)
        self.draining.pop(conn, None)
        mine = self.by_client.get(conn.client)
        if mine is not None:
            mine.pop(conn, None)
            if not mine:
                del self.by_client[conn.client]
        try:
            self.selector.unregister(conn.socket)
        except (KeyError, ValueError, OSError):  # it was not registered (or is closed)
            pass

    def _release(self, conn):
        if conn.ledgered:
            conn.ledgered = False
            self.ledger.remove(conn.client)


def _tls_pending(sock):
    pending = getattr(sock, "pending", None)
    return bool(pending and pending())


def _too_many():
    error = errors.TooManyConnectionsError()
    return error


def _timed_out(seconds):
    return errors.RequestTimeoutError(
        "the request head did not arrive within %gs" % seconds, limit_s=seconds
    )
