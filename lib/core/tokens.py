"""The API token file in the daemon's home: the one place that reads and writes it.

The daemon creates it on first start (mode 0600) and re-reads it on SIGHUP; ``modeld token``
shows or rotates it; the client falls back to it when neither ``--token`` nor
``$MODELD_TOKEN`` is given.
"""

import json
import os
import re


def read_token(home):
    """The token in ``home`` (a ``lib.core.paths.Home``), or ``None`` if there is none yet."""
    try:
        with open(home.token) as handle:
            return handle.read().strip() or None
    except FileNotFoundError:
        return None


def write_token(home):
    """A new random token, written atomically with mode 0600; returns it."""
    # Hex, not url-safe base64: a token starting with "-" would read as an option
    # in `modelctl --token "$(cat token)"`.
    import secrets  # here, not at the top: it loads OpenSSL, which modelctl never needs

    token = secrets.token_hex(32)
    temporary = home.token + ".tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.replace(temporary, home.token)
    return token


def ensure_token(home):
    """The token, created on first use."""
    return read_token(home) or write_token(home)


# -- named tokens with a scope ----------------------------------------------------------
#
# <home>/tokens.json (0600) holds {"tokens": [{"name", "scope", "sha256", "created_at"}]}:
# a digest, never the token. A token is "mdt_" + 64 hex digits: 256 random bits, so one
# SHA-256 is enough (a slow hash guards guessable passwords, not random keys). The daemon
# re-reads the file whenever it changes (inode, size, mtime), so `modeld token create` and
# `revoke` take effect at the next request, and a follow stream notices a revocation
# at its next poll.

TOKEN_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
# The name of the home's own token (the ``token`` file), which has every scope.
ADMIN_TOKEN_NAME = "admin"


class TokenError(Exception):
    """A token request that cannot be done (said to the operator as is); ``field`` names
    the input at fault."""

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field


def digest(token):
    import hashlib

    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def load_named(path):
    """The entries of ``tokens.json`` (``[]`` when there is none)."""
    try:
        with open(path) as handle:
            return list(json.load(handle).get("tokens", []))
    except FileNotFoundError:
        return []


def _save_named(path, entries):
    temporary = path + ".tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"tokens": entries}, handle, indent=1, sort_keys=True)
        handle.write("\n")
    os.replace(temporary, path)


def create_named(path, name, scope, scopes, now):
    """Add a token; returns ``(entry, token)``: the token is shown this once."""
    import secrets

    if not isinstance(name, str) or not TOKEN_NAME.fullmatch(name) or name == ADMIN_TOKEN_NAME:
        raise TokenError(
            "name",
            "a token name is 1-63 characters of a-z, 0-9, '.', '_' or '-' (and not %r)"
            % ADMIN_TOKEN_NAME,
        )
    if scope not in scopes:
        raise TokenError("scope", "scope must be one of: %s" % ", ".join(scopes))
    entries = load_named(path)
    if any(entry["name"] == name for entry in entries):
        raise TokenError("name", "a token named %r exists: revoke it first" % name)
    token = "mdt_" + secrets.token_hex(32)
    entry = {"name": name, "scope": scope, "sha256": digest(token), "created_at": now}
    _save_named(path, entries + [entry])
    return public(entry), token


def revoke_named(path, name):
    """Remove a token; ``False`` if there is none of that name."""
    entries = load_named(path)
    kept = [entry for entry in entries if entry["name"] != name]
    if len(kept) == len(entries):
        return False
    _save_named(path, kept)
    return True


def public(entry):
    """What may be shown of an entry: everything but the digest."""
    return {key: value for key, value in entry.items() if key != "sha256"}


class TokenStore:
    """The named tokens a daemon accepts, re-read when the file changes.

    ``identify(token)`` answers ``(name, scope)`` or ``None``, comparing the digest with
    every entry in constant time (``hmac.compare_digest``), so timing tells nothing about
    which entry came close.
    """

    def __init__(self, path):
        import threading

        self.path = path
        self.lock = threading.Lock()
        self.seen = None
        self.entries = []

    def _current(self):
        try:
            info = os.stat(self.path)
            seen = (info.st_ino, info.st_size, info.st_mtime_ns)
        except FileNotFoundError:
            seen = None
        with self.lock:
            if seen != self.seen:
                try:
                    self.entries = load_named(self.path) if seen else []
                    self.seen = seen
                except (OSError, ValueError):
                    pass  # torn or unreadable: keep the last good list; retried next request
            return self.entries

    def identify(self, token):
        import hmac

        found = None
        wanted = digest(token).encode()
        for entry in self._current():
            if hmac.compare_digest(wanted, entry.get("sha256", "").encode()):
                found = (entry["name"], entry["scope"])
        return found
