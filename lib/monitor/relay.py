"""The on-demand listener and its byte relay (layer 4), inside the monitor's selector loop.

``Relay`` binds the public listener (``activation.listen``) once, at the
monitor's start, and keeps it bound across model restarts and idle periods.
Each client connection is a ``Pipe``: queued while the model loads (its first
bytes are read, up to the buffer bound), then connected to the model's
internal port and relayed both ways. Who is queued, relayed, refused or timed
out is decided by ``lib.monitor.activation``; this module only moves bytes.

How it keeps its promises:

- **Bounded memory**: each direction of a pipe buffers at most ``BUFFER_BYTES``:
  a kernel pipe filled and drained with ``os.splice`` (the bytes never enter the
  monitor; Linux, Python 3.10+, the first ``SPLICED_CONNECTIONS``), else a
  bytearray. A full buffer unregisters read interest on its source, so a slow
  reader slows the model's writes (TCP back-pressure) instead of growing the monitor.
- **Half-close**: end of input on one side, once its buffer is drained, is a
  ``shutdown(SHUT_WR)`` on the other; the pipe closes when both directions ended.
- **Errors close both sides**: a reset or a broken pipe on either socket closes
  the other at once. Closing the upstream is what tells a server to stop
  generating for a client that left.
- Protocol-agnostic: bytes pass unchanged (chunked responses, server-sent
  events, WebSockets). ``TCP_NODELAY`` on both sides, so small messages are not
  held back by Nagle's algorithm.

The loop's selector calls a socket's callback without saying whether it is
readable or writable: every socket is non-blocking, and a callback simply tries
what its pipe wants (a ``BlockingIOError`` costs one system call).
"""

import errno
import fcntl
import os
import selectors
import socket

from lib.monitor import activation as decisions

BUFFER_BYTES = 256 * 1024  # per direction and pipe
PASSES = 16  # read-then-write passes per wake-up while bytes keep moving
ACCEPT_BATCH = 64  # connections accepted per wake-up, so the loop stays fair
MAX_CONNECTIONS = 512  # relayed and queued together (two descriptors each)
# The first connections get kernel pipes for their bytes (splice: four more descriptors
# each); the rest are copied through the monitor, so 512 connections fit in 1024 fds.
SPLICED_CONNECTIONS = 96
ACCEPT_PAUSE = 0.1  # out of descriptors: stop accepting this long, not spin on the listener
MAX_LINGERING = 64  # refused connections draining their request before the close
LINGER_SECONDS = 1.0
BACKLOG = 1024
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE

BUSY_TEXT = "the model is loading and its queue is full; retry shortly\n"
LATE_TEXT = "the model did not become ready within activation.load_timeout\n"


def unavailable_response(text):
    """A short ``503 Service Unavailable`` with a text body (``activation.http_503``)."""
    body = text.encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
        "Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n" % len(body)
    )
    return head.encode() + body


def bind_listener(host, port):
    """The public listener, non-blocking (``OSError`` if the address cannot be bound)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(BACKLOG)
        listener.setblocking(False)
    except OSError:
        listener.close()
        raise
    return listener


def _no_delay(sock):
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass  # not TCP (a test's socketpair): nothing to tune


class Relay:
    """The listener and every connection of one on-demand model, for the monitor's life.

    ``activation``: the ``activation.Activation`` that decides; ``upstream``:
    (host, port) of the model; ``clock``: monotonic seconds.
    """

    def __init__(self, listener, upstream, selector, activation, clock, http_503=False):
        self.listener = listener
        self.upstream = upstream
        self.selector = selector
        self.activation = activation
        self.clock = clock
        self.http_503 = http_503
        self.queued = {}  # connection id -> Pipe, waiting for the model
        self.pipes = set()  # every open Pipe, queued or relayed
        self.lingering = {}  # Refusal -> deadline
        self.next_id = 0
        self.changed = False  # counts moved since the loop last published them
        self.refused = 0
        self.paused_until = None
        selector.register(listener, READ, self._on_accept)

    @property
    def listen_port(self):
        return self.listener.getsockname()[1]

    # -- accepting -----------------------------------------------------------

    def _on_accept(self, now):
        for _ in range(ACCEPT_BATCH):
            try:
                client, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE):
                    self._pause_accepting(now)
                return  # ECONNABORTED and the like: the next wake-up tries again
            client.setblocking(False)
            _no_delay(client)
            self._admit(client, now)

    def _pause_accepting(self, now):
        """No descriptor left: the listener would stay readable and spin the loop."""
        self.selector.unregister(self.listener)
        self.paused_until = now + ACCEPT_PAUSE

    def _admit(self, client, now):
        self.changed = True
        if len(self.pipes) >= MAX_CONNECTIONS:
            self.refused += 1
            return self._refuse(client, BUSY_TEXT)
        self.next_id += 1
        verdict = self.activation.arrive(self.next_id, now)
        if verdict == decisions.REFUSE:
            self.refused += 1
            return self._refuse(client, BUSY_TEXT)
        pipe = Pipe(self, client, self.next_id)
        self.pipes.add(pipe)
        if verdict == decisions.RELAY:
            pipe.connect(self.upstream)
        else:
            self.queued[pipe.key] = pipe
            pipe.update()

    def _refuse(self, client, text):
        if not self.http_503 or len(self.lingering) >= MAX_LINGERING:
            client.close()
            return
        refusal = Refusal(self, client, unavailable_response(text))
        if not refusal.done:
            self.lingering[refusal] = self.clock() + LINGER_SECONDS

    # -- the activation's decisions ------------------------------------------

    def perform(self, turn):
        """Relay the connections ``turn`` releases; close the ones that waited too long."""
        for key in turn.relay:
            pipe = self.queued.pop(key, None)
            if pipe is not None:
                pipe.connect(self.upstream)
        for key in turn.expire:
            pipe = self.queued.pop(key, None)
            if pipe is not None:
                pipe.expired = True
                self.pipes.discard(pipe)
                pipe.release()
                self._refuse(pipe.client, LATE_TEXT)
        if turn.relay or turn.expire:
            self.changed = True

    def finished(self, pipe, now):
        """A pipe closed: a relayed one counts toward idle, a queued one is forgotten."""
        self.pipes.discard(pipe)
        self.changed = True
        if self.queued.pop(pipe.key, None) is not None:
            self.activation.abandon(pipe.key, now)
        else:
            self.activation.closed(now)

    def tick(self, now):
        """Close refusals that lingered long enough; accept again after a pause."""
        if self.paused_until is not None and now >= self.paused_until:
            self.paused_until = None
            self.selector.register(self.listener, READ, self._on_accept)
        for refusal, deadline in list(self.lingering.items()):
            if refusal.done or now >= deadline:
                refusal.close()

    def next_deadline(self):
        deadlines = list(self.lingering.values())
        if self.paused_until is not None:
            deadlines.append(self.paused_until)
        return min(deadlines) if deadlines else None

    def buffered_bytes(self):
        return sum(len(pipe.to_model) + len(pipe.to_client) for pipe in self.pipes)

    def close(self):
        """Close the listener and every connection (the monitor is exiting)."""
        for pipe in list(self.pipes):
            pipe.abort()
        for refusal in list(self.lingering):
            refusal.close()
        try:
            self.selector.unregister(self.listener)
        except (KeyError, ValueError):
            pass  # unregistered while accepting was paused
        self.listener.close()


class Pipe:
    """One client connection and, once the model is ready, its upstream connection."""

    def __init__(self, relay, client, key):
        self.relay = relay
        self.client = client
        self.key = key
        self.upstream = None
        self.connecting = False
        splice = len(relay.pipes) < SPLICED_CONNECTIONS
        self.to_model = _direction(splice)
        self.to_client = _direction(splice)
        self.client_eof = False
        self.model_eof = False
        self.model_shut = False
        self.client_shut = False
        self.closed = False
        self.expired = False
        self.masks = {}  # socket -> the events it is registered for

    # -- wiring --------------------------------------------------------------

    def connect(self, address):
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.setblocking(False)
        _no_delay(upstream)
        self.upstream = upstream
        code = upstream.connect_ex(address)
        if code not in (0, errno.EINPROGRESS, errno.EAGAIN):
            return self.abort()
        self.connecting = code != 0
        if not self.connecting:
            return self.pump()
        self.update()

    def _register(self, sock, mask, callback):
        current = self.masks.get(sock, 0)
        if mask == current:
            return
        if not mask:
            self.relay.selector.unregister(sock)
        elif not current:
            self.relay.selector.register(sock, mask, callback)
        else:
            self.relay.selector.modify(sock, mask, callback)
        self.masks[sock] = mask

    def update(self):
        """Register exactly the interest each side has now (back-pressure lives here)."""
        room_up = len(self.to_model) < self.to_model.capacity
        room_down = len(self.to_client) < self.to_client.capacity
        mask = (READ if not self.client_eof and room_up else 0) | (WRITE if self.to_client else 0)
        self._register(self.client, mask, self._on_event)
        if self.upstream is None:
            return
        if self.connecting:
            mask = WRITE
        else:
            mask = (READ if not self.model_eof and room_down else 0) | (
                WRITE if self.to_model else 0
            )
        self._register(self.upstream, mask, self._on_event)

    def release(self):
        """Unregister both sockets (the client is handed to a refusal or closed)."""
        for sock in list(self.masks):
            self._register(sock, 0, None)
        self.closed = True
        self.to_model.close()
        self.to_client.close()

    # -- moving bytes --------------------------------------------------------

    def _on_event(self, now):
        if self.closed:
            return
        if self.connecting:
            failure = self.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if failure == errno.EINPROGRESS:
                return
            if failure:
                return self.abort(now)
            self.connecting = False
        self.pump(now)

    def pump(self, now=None):
        """Move what can be moved without blocking, both ways; then re-register interest."""
        try:
            self._forward(now)
        except OSError:
            return self.abort(now)
        if self._done():
            return self.finish(now)
        self.update()

    def _forward(self, now):
        """Passes until nothing moves (at most ``PASSES``): a bulk transfer is moved in a
        few large steps per wake-up instead of one wake-up per read."""
        for _ in range(PASSES):
            if not self._one_pass():
                return

    def _one_pass(self):
        moved = 0
        connected = self.upstream is not None and not self.connecting
        if not self.client_eof and len(self.to_model) < self.to_model.capacity:
            count = self.to_model.receive(self.client)
            self.client_eof = count == 0
            moved += max(count, 0)
        if connected:
            moved += self.to_model.send(self.upstream)
            if self.client_eof and not self.to_model and not self.model_shut:
                self.upstream.shutdown(socket.SHUT_WR)
                self.model_shut = True
            if not self.model_eof and len(self.to_client) < self.to_client.capacity:
                count = self.to_client.receive(self.upstream)
                self.model_eof = count == 0
                moved += max(count, 0)
        if self.to_client:
            moved += self.to_client.send(self.client)
        if self.model_eof and not self.to_client and not self.client_shut:
            self.client.shutdown(socket.SHUT_WR)
            self.client_shut = True
        return moved

    def _done(self):
        return self.model_shut and self.client_shut

    def finish(self, now=None):
        """Both directions ended (or one failed): close both sockets and report it."""
        if self.closed:
            return
        self.release()
        for sock in (self.client, self.upstream):
            if sock is not None:
                sock.close()
        self.relay.finished(self, self.relay.clock() if now is None else now)

    def abort(self, now=None):
        self.finish(now)


class Bytes:
    """One direction's bytes in flight, in the monitor's memory (at most ``BUFFER_BYTES``)."""

    capacity = BUFFER_BYTES

    def __init__(self):
        self.data = bytearray()

    def __len__(self):
        return len(self.data)

    def receive(self, sock):
        return _receive(sock, self.data)

    def send(self, sock):
        return _send(sock, self.data)

    def close(self):
        self.data = bytearray()


SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
F_SETPIPE_SZ, F_GETPIPE_SZ = 1031, 1032


class Spliced:
    """One direction through a kernel pipe with ``os.splice`` (Linux, Python 3.10+): the
    bytes never enter the monitor; the pipe (``BUFFER_BYTES``) is the bound."""

    def __init__(self):
        self.reader, self.writer = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self.capacity = fcntl.fcntl(self.writer, F_SETPIPE_SZ, BUFFER_BYTES)
        except OSError:
            self.capacity = fcntl.fcntl(self.writer, F_GETPIPE_SZ)  # over the user's pipe quota
        self.pending = 0

    def __len__(self):
        return self.pending

    def receive(self, sock):
        try:
            room = self.capacity - self.pending
            count = os.splice(sock.fileno(), self.writer, room, flags=SPLICE_FLAGS)
        except (BlockingIOError, InterruptedError):
            return -1
        self.pending += count
        return count

    def send(self, sock):
        if not self.pending:
            return 0
        try:
            count = os.splice(self.reader, sock.fileno(), self.pending, flags=SPLICE_FLAGS)
        except (BlockingIOError, InterruptedError):
            return 0
        self.pending -= count
        return count

    def close(self):
        if self.reader is not None:
            os.close(self.reader)
            os.close(self.writer)
            self.reader = self.writer = None


def _direction(splice):
    if splice and hasattr(os, "splice"):
        try:
            return Spliced()
        except OSError:
            pass  # out of descriptors: this connection's bytes go through the monitor
    return Bytes()


def _receive(sock, buffer):
    """Append what ``sock`` has (up to the buffer's room) to ``buffer``: the byte count,
    0 at end of input, -1 when nothing is there yet."""
    try:
        data = sock.recv(BUFFER_BYTES - len(buffer))
    except (BlockingIOError, InterruptedError):
        return -1
    buffer += data
    return len(data)


def _send(sock, buffer):
    """Send what ``sock`` takes of ``buffer`` and drop it from the buffer: the byte count."""
    if not buffer:
        return 0
    try:
        sent = sock.send(buffer)
    except (BlockingIOError, InterruptedError):
        return 0
    del buffer[:sent]
    return sent


class Refusal:
    """A refused connection: a short 503, then its request drained until EOF (so the close is
    a FIN, not a reset that could discard the answer), for at most ``LINGER_SECONDS``."""

    def __init__(self, relay, client, response):
        self.relay = relay
        self.client = client
        self.done = False
        try:
            client.send(response)
            client.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()
            return
        relay.selector.register(client, READ, self._on_event)

    def _on_event(self, now):
        try:
            while self.client.recv(65536):
                pass
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass  # a reset: the client is gone, nothing left to drain
        self.close()

    def close(self):
        if not self.done:
            self.done = True
            try:
                self.relay.selector.unregister(self.client)
            except (KeyError, ValueError):
                pass  # never registered: the send failed
            self.client.close()
        self.relay.lingering.pop(self, None)
