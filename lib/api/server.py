"""Serving the WSGI app with cheroot, in a way that can be stopped.

bottle's cheroot adapter can neither bind a Unix socket nor be stopped, so
this drives ``cheroot.wsgi.Server`` directly: ``bind()`` (binds and starts the
worker threads: never fork after it), ``serve()`` on one thread, ``stop()``
from another. The only module that imports cheroot.

Connections go through ``lib.api.connguard`` (the request head is read by one thread
with a deadline, connections are capped): here are the adapters. cheroot calls
``process_conn`` for a new connection and for a kept-alive one that became readable;
``_Server`` hands it to the head gate instead of a worker, and the gate dispatches it
once its head is complete. ``_GuardedConnection`` reads through ``_PrimedSocketIO``,
which returns the head the gate already read, then the socket, with a deadline.
"""

import _pyio
import errno
import grp
import logging
import os
import socket
import ssl
import time

import cheroot.errors
import cheroot.makefile
import cheroot.server
import cheroot.wsgi

from lib import errors
from lib.api import connguard, middleware

log = logging.getLogger("modeld.server")

DEFAULT_THREADS = 32
# cheroot's default backlog of 5 made p99 reach ~500 ms at 100 connections.
BACKLOG = 1024
MAX_HEADER_BYTES = connguard.MAX_HEAD_BYTES
# Once its head is in, a request's body must arrive within this (a slow body holds a worker).
BODY_TIMEOUT = 60.0


class _PrimedSocketIO(socket.SocketIO):
    """A socket's raw reader that first returns the bytes the head gate read, with a deadline."""

    def __init__(self, sock, timeout):
        super().__init__(sock, "rb")
        self.connection_socket = sock
        self.timeout = timeout
        self.primed = bytearray()
        self.deadline = None

    def readinto(self, buffer):
        if self.primed:
            count = min(len(buffer), len(self.primed))
            buffer[:count] = self.primed[:count]
            del self.primed[:count]
            return count
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out")
            self.connection_socket.settimeout(min(self.timeout, left))
        return super().readinto(buffer)


class _PrimedReader(cheroot.makefile.StreamReader):
    """cheroot's buffered socket reader over ``_PrimedSocketIO``."""

    def __init__(self, raw, bufsize):
        # StreamReader's own __init__ builds a plain SocketIO; this one is the same otherwise.
        _pyio.BufferedReader.__init__(self, raw, bufsize)
        self.bytes_read = 0


class _Request(cheroot.server.HTTPRequest):
    def send_headers(self):
        # cheroot ignores an app's "Connection: close"; the app sends it when the rest of a
        # request body must not be read as the next request (a refused or chunked body).
        if any(
            key.lower() == b"connection" and value.lower() == b"close"
            for key, value in self.outheaders
        ):
            self.close_connection = True
        super().send_headers()

    def simple_response(self, status, msg=""):
        """cheroot's own answers (a malformed request line, header or chunk; an HTTP
        version or method it does not take; its backstop limits) in the one JSON error
        shape instead of text/plain. Each closes the connection: what follows is unknown."""
        code = int(str(status).split()[0])
        message = msg if isinstance(msg, str) and msg else ""
        error = _cheroot_error(code, message or str(status))
        self.close_connection = True
        try:
            self.conn.wfile.write(connguard.error_bytes(error))
        except OSError as failure:
            if failure.args[0] not in cheroot.errors.socket_errors_to_ignore:
                raise


def _cheroot_error(code, message):
    """The API's error for a status cheroot answers by itself: a 400 unless mapped (its
    501 and 505, an HTTP method or version it does not speak, are the client's error)."""
    if code == 500:  # its traceback stays out of the answer
        return errors.InternalError("internal error: see the daemon log")
    known = {
        405: errors.MethodNotAllowedError,
        408: errors.RequestTimeoutError,
        413: errors.PayloadTooLargeError,
        414: errors.UriTooLongError,
        431: errors.HeadersTooLargeError,
        503: errors.UnavailableError,
    }
    return known.get(code, errors.BadRequestError)(message)


class _GuardedConnection(cheroot.server.HTTPConnection):
    """A connection the head gate can own: primed reader, client key, ledger flag."""

    RequestHandlerClass = _Request
    client = "unix"
    ledgered = False
    draining = False
    closed = False

    def __init__(self, server, sock, makefile=cheroot.makefile.MakeFile):
        super().__init__(server, sock, makefile)
        self.rfile.close()  # the stock reader; ours returns what the gate read first
        self.reader_io = _PrimedSocketIO(sock, server.timeout)
        self.primed = self.reader_io.primed
        self.rfile = _PrimedReader(self.reader_io, self.rbufsize)

    def close(self):
        if self.closed or self.draining:
            return
        gate = self.server.gate
        if gate is not None and not gate.stopping and _unread_input(self.socket):
            gate.drain(self)  # closing now would reset: the client would lose the answer
            return
        if self.ledgered:
            self.ledgered = False
            self.server.ledger.remove(self.client)
        self.finish_close()

    def finish_close(self):
        if not self.closed:
            self.closed = True
            super().close()


def _unread_input(sock):
    if isinstance(sock, ssl.SSLSocket):
        return False  # no peeking under TLS: close as cheroot would
    try:
        # Non-blocking for the peek: with a timeout set, Python would first wait that long.
        timeout = sock.gettimeout()
        sock.setblocking(False)
        try:
            return bool(sock.recv(1, socket.MSG_PEEK))
        finally:
            sock.settimeout(timeout)
    except OSError:  # nothing waiting (EAGAIN), or the socket is already gone
        return False


class _ListeningSocket(socket.socket):
    """The listening socket, whose ``accept`` backs off when descriptors run out.

    cheroot let EMFILE escape its accept loop, logged a traceback and tried again at
    once: 100% CPU and ~0.7 MB/s of log. Here it sleeps (``AcceptBackoff``) and reports
    a timeout, which cheroot takes as "nothing to accept".
    """

    backoff = None

    @classmethod
    def adopt(cls, plain):
        listening = cls(plain.family, plain.type, plain.proto, fileno=plain.detach())
        listening.backoff = connguard.AcceptBackoff()
        return listening

    def accept(self):
        try:
            accepted = super().accept()
        except OSError as error:
            if error.errno not in connguard.DESCRIPTORS_EXHAUSTED:
                raise
            self.backoff.exhausted(error)
            raise socket.timeout("out of file descriptors") from None
        self.backoff.accepted()
        return accepted


class _Server(cheroot.wsgi.Server):
    ConnectionClass = _GuardedConnection
    gate = None
    ledger = None

    def error_log(self, msg="", level=logging.INFO, traceback=False):
        # cheroot writes to stderr by default; the daemon keeps its own log.
        log.log(level, "cheroot: %s", middleware.printable(str(msg)), exc_info=traceback)

    @staticmethod
    def bind_socket(socket_, bind_addr):
        socket_.bind(bind_addr)
        return _ListeningSocket.adopt(socket_)

    def process_conn(self, conn):
        if self.gate is None or not isinstance(conn, _GuardedConnection):
            super().process_conn(conn)
            return
        if conn.rfile.has_data():  # pipelined: hand what cheroot buffered back to the gate
            conn.primed[:0] = conn.rfile.read1(1 << 20)
        if not conn.ledgered:
            conn.client = conn.remote_addr or "unix"
        self.gate.submit(conn)

    def dispatch(self, conn):
        """The gate's way in: a connection whose request head is complete, to a worker."""
        conn.socket.settimeout(self.timeout)
        conn.reader_io.deadline = time.monotonic() + BODY_TIMEOUT
        super().process_conn(conn)


class ApiServer:
    """One listening socket (TCP or Unix) serving ``app``."""

    def __init__(
        self,
        app,
        bind,
        version,
        threads=DEFAULT_THREADS,
        tls=None,
        socket_mode=0o600,
        socket_group=None,
        max_body=None,
        head_timeout=connguard.HEAD_TIMEOUT,
        max_connections=None,
        max_connections_per_client=connguard.MAX_CONNECTIONS_PER_CLIENT,
    ):
        self.unix = isinstance(bind, str)
        self.socket_mode = socket_mode
        self.socket_group = socket_group
        self.server = _Server(
            bind,
            _trust_unix(app) if self.unix else app,
            numthreads=threads,
            server_name="modeld/%s" % version,
            request_queue_size=BACKLOG,
            timeout=30,
            shutdown_timeout=10,
        )
        # The gate refuses a head over MAX_HEADER_BYTES in the JSON shape; cheroot's own
        # check (a text/plain 413) is only a backstop.
        self.server.max_request_header_size = 2 * MAX_HEADER_BYTES
        self.server.ledger = connguard.ConnectionLedger(
            max_connections or connguard.default_max_connections(), max_connections_per_client
        )
        self.gate = self.guard = connguard.HeadGate(
            self.server.dispatch, self.server.ledger, head_timeout, MAX_HEADER_BYTES
        )
        # cheroot keeps only 10 idle keep-alive connections by default: too few for a
        # fleet of pollers, which would then pay a new connection per request.
        self.server.keep_alive_conn_limit = max(256, 4 * threads)
        # No body limit in cheroot (its 413 is text/plain): the app refuses a declared length
        # over the limit before reading, and reads a chunked body only up to it.
        self.server.max_request_body_size = 0
        if tls is not None:
            from cheroot.ssl.builtin import BuiltinSSLAdapter

            self.server.ssl_adapter = BuiltinSSLAdapter(tls[0], tls[1])

    def bind(self):
        """Bind and start the worker threads; raises ``OSError`` (port in use, ...)."""
        if self.unix:
            _refuse_live_socket(self.server.bind_addr)
            previous = os.umask(0o177)
            try:
                self.server.prepare()
            finally:
                os.umask(previous)
            self._set_socket_permissions()
        else:
            self.server.prepare()
        self.server.gate = self.gate
        self.gate.start()

    def _set_socket_permissions(self):
        path = self.server.bind_addr
        if self.socket_group is not None:
            os.chown(path, -1, grp.getgrnam(self.socket_group).gr_gid)
        os.chmod(path, self.socket_mode)

    @property
    def url(self):
        if self.unix:
            return "unix:" + self.server.bind_addr
        host, port = self.server.bind_addr[:2]
        scheme = "https" if self.server.ssl_adapter is not None else "http"
        if ":" in host:
            host = "[%s]" % host
        return "%s://%s:%d" % (scheme, host, port)

    def serve(self):
        self.server.serve()

    def stop(self):
        """Stop accepting, let in-flight requests finish (up to shutdown_timeout)."""
        self.server.stop()
        self.gate.stop()
        if self.unix:
            try:
                os.unlink(self.server.bind_addr)
            except FileNotFoundError:
                pass


def _refuse_live_socket(path):
    """cheroot deletes an existing socket file before binding: never steal a live one."""
    if not os.path.exists(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return  # a stale file from a crash: replacing it is right
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, "another process is listening on %s" % path)


def _trust_unix(app):
    """On a Unix socket the file's permissions are the access control: no token needed."""

    def trusted(environ, start_response):
        environ["modeld.trusted"] = True
        return app(environ, start_response)

    return trusted
