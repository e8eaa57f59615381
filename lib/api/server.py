"""Serving the WSGI app with cheroot, in a way that can be stopped.

bottle's cheroot adapter can neither bind a Unix socket nor be stopped, so
this drives ``cheroot.wsgi.Server`` directly: ``bind()`` (binds and starts the
worker threads: never fork after it), ``serve()`` on one thread, ``stop()``
from another. The only module that imports cheroot.
"""

import errno
import grp
import logging
import os
import socket

import cheroot.wsgi

log = logging.getLogger("modeld.server")

DEFAULT_THREADS = 32
# cheroot's default backlog of 5 made p99 reach ~500 ms at 100 connections.
BACKLOG = 1024
MAX_HEADER_BYTES = 64 * 1024


class _Server(cheroot.wsgi.Server):
    def error_log(self, msg="", level=logging.INFO, traceback=False):
        # cheroot writes to stderr by default; the daemon keeps its own log.
        log.log(level, "cheroot: %s", msg, exc_info=traceback)


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
        self.server.max_request_header_size = MAX_HEADER_BYTES
        # cheroot keeps only 10 idle keep-alive connections by default: too few for a
        # fleet of pollers, which would then pay a new connection per request.
        self.server.keep_alive_conn_limit = max(256, 4 * threads)
        if max_body:
            # The app gives the friendly 413; this is the backstop for chunked bodies.
            self.server.max_request_body_size = max_body + 64 * 1024
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
