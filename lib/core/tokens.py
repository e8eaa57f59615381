"""The API token file in the daemon's home: the one place that reads and writes it.

The daemon creates it on first start (mode 0600) and re-reads it on SIGHUP; ``modeld token``
shows or rotates it; the client falls back to it when neither ``--token`` nor
``$MODELD_TOKEN`` is given.
"""

import os


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
