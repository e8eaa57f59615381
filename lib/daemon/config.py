"""The daemon's configuration, from the command line, checked before anything starts."""

import ipaddress
import os

from lib.core import paths
from lib.core import spec as specs

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


class ConfigError(Exception):
    """A configuration that must not start (said to the operator as is)."""


class DaemonConfig:
    def __init__(
        self,
        home=None,
        host=DEFAULT_HOST,
        port=DEFAULT_PORT,
        socket=None,
        socket_group=None,
        tls_cert=None,
        tls_key=None,
        no_auth=False,
        threads=None,
        rate_limit=None,
        log_max_bytes=None,
        log_backups=None,
        max_followers=None,
        nvidia_smi=None,
        head_timeout=None,
        max_connections=None,
        max_connections_per_client=None,
        max_waiters=None,
        metrics_no_auth=False,
        default_user=None,
        allow_exec=(),
    ):
        self.home = os.path.abspath(home or paths.default_home())
        self.host = host
        self.port = port
        self.socket = os.path.abspath(socket) if socket else None
        self.socket_group = socket_group
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.no_auth = no_auth
        self.threads = threads
        self.rate_limit = rate_limit
        self.log_max_bytes = log_max_bytes or specs.DEFAULT_LOG_MAX_BYTES
        self.log_backups = specs.DEFAULT_LOG_BACKUPS if log_backups is None else log_backups
        self.max_followers = max_followers
        self.nvidia_smi = os.path.abspath(nvidia_smi) if nvidia_smi else None
        # HTTP connection limits (None: the server's defaults, see lib/api/connguard.py).
        self.head_timeout = head_timeout
        self.max_connections = max_connections
        self.max_connections_per_client = max_connections_per_client
        self.max_waiters = max_waiters
        self.metrics_no_auth = metrics_no_auth
        # Least privilege (lib.daemon.privilege): whom models run as, which programs may run.
        self.default_user = default_user
        self.allow_exec = list(allow_exec or ())

    @property
    def bind(self):
        return self.socket if self.socket else (self.host, self.port)

    @property
    def tls(self):
        return (self.tls_cert, self.tls_key) if self.tls_cert else None

    @property
    def log_defaults(self):
        return {"max_bytes": self.log_max_bytes, "backups": self.log_backups}

    def check(self):
        """Refuse what would be unsafe or cannot work, with a message that says why."""
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("--tls-cert and --tls-key go together")
        if self.socket and self.tls_cert:
            raise ConfigError("TLS is for TCP; a Unix socket is protected by its file mode")
        for path in filter(None, (self.tls_cert, self.tls_key)):
            if not os.path.isfile(path):
                raise ConfigError("no such file: %s" % path)
        if self.nvidia_smi and not os.access(self.nvidia_smi, os.X_OK):
            raise ConfigError("--nvidia-smi: %s is not an executable file" % self.nvidia_smi)
        if not 0 <= self.port <= 65535:
            raise ConfigError("--port must be between 0 and 65535")
        if self.no_auth and not self.socket and not is_loopback(self.host):
            raise ConfigError(
                "refusing to listen on %s without authentication: anyone who reaches it "
                "could run programs as this user (drop --no-auth, or bind 127.0.0.1)" % self.host
            )
        if self.metrics_no_auth and not self.socket and not is_loopback(self.host):
            raise ConfigError(
                "refusing --metrics-no-auth on %s: GET /metrics without a token is allowed "
                "only on a loopback address or a Unix socket (give Prometheus the token "
                "with credentials_file instead)" % self.host
            )
        for pattern in self.allow_exec:
            if not pattern.startswith("/"):
                raise ConfigError("--allow-exec %s: a pattern is an absolute path" % pattern)
        if self.default_user is not None:
            self._check_default_user()
        if self.socket and len(self.socket.encode()) > 107:
            raise ConfigError("the socket path is too long for a Unix socket (max 107 bytes)")
        if self.head_timeout is not None and not 0 < self.head_timeout <= 3600:
            raise ConfigError("--head-timeout must be above 0 and at most 3600 seconds")
        for flag, value in (
            ("--max-connections", self.max_connections),
            ("--max-connections-per-client", self.max_connections_per_client),
            ("--max-waiters", self.max_waiters),
        ):
            if value is not None and value < 1:
                raise ConfigError("%s must be at least 1" % flag)

    def _check_default_user(self):
        from lib.core import identity
        from lib.errors import ValidationError

        try:
            run_as = identity.resolve(
                {"user": identity.parse_run_as({"user": self.default_user})["user"]}
            )
            identity.check_may_switch({}, run_as)
        except ValidationError as error:
            raise ConfigError("--default-user: %s" % error.message) from None


def is_loopback(host):
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
