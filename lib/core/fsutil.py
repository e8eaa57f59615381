"""Files that survive crashes: atomic JSON writes with a kept previous generation, and locks.

``write_json_atomic`` writes a temporary file, fsyncs it, moves the current
file to ``<path>.prev``, renames the temporary file into place and fsyncs the
directory. A crash at any point leaves either the new file or the previous
generation readable, and ``read_json`` falls back to ``.prev`` (saying so).
"""

import errno
import fcntl
import json
import os

PREVIOUS_SUFFIX = ".prev"


class Corrupt(Exception):
    """Neither a file nor its previous generation could be read."""


def write_json_atomic(path, data, keep_previous=True, durable=True):
    """Replace ``path`` with ``data`` as JSON, atomically (mode 0600)."""
    directory = os.path.dirname(path) or "."
    # Unique per writer: two daemon threads writing the same file never share a temporary.
    temporary = "%s.tmp.%d.%s" % (path, os.getpid(), os.urandom(4).hex())
    payload = json.dumps(data, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        _write_all(fd, payload)
        if durable:
            os.fsync(fd)
    except OSError:
        os.close(fd)
        os.unlink(temporary)  # a full disk must not also collect half-written temporaries
        raise
    else:
        os.close(fd)
    if keep_previous:
        try:
            os.replace(path, path + PREVIOUS_SUFFIX)
        except FileNotFoundError:
            pass  # the first generation has no predecessor
    os.replace(temporary, path)
    if durable:
        fsync_directory(directory)


def _write_all(fd, payload):
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_directory(directory):
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path, warn=None, check=None):
    """The JSON object at ``path``; its previous generation if it is missing or corrupt.

    Returns ``None`` when neither exists. Raises ``Corrupt`` when what exists
    cannot be parsed. ``warn(message)`` hears about every fallback. ``check(data)``
    returns why a parsed object is unusable (then it counts as corrupt), or ``None``.
    """
    problems = []
    for candidate in (path, path + PREVIOUS_SUFFIX):
        try:
            with open(candidate, "rb") as handle:
                data = json.loads(handle.read())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as error:
            problems.append("%s: %s" % (candidate, error))
            continue
        if not isinstance(data, dict):
            problems.append("%s: not a JSON object" % candidate)
            continue
        problem = check(data) if check is not None else None
        if problem is not None:
            problems.append("%s: %s" % (candidate, problem))
            continue
        if candidate != path and warn is not None:
            reason = problems[0] if problems else "%s is missing" % path
            warn("using the previous generation %s (%s)" % (candidate, reason))
        return data
    if problems:
        raise Corrupt("; ".join(problems))
    return None


def read_json_quietly(path):
    """Like ``read_json`` but ``None`` for anything unreadable (for status reads)."""
    try:
        return read_json(path)
    except Corrupt:
        return None


def ensure_directory(path, mode=0o700):
    os.makedirs(path, mode=mode, exist_ok=True)
    return path


class FileLock:
    """An exclusive ``flock`` held for the life of a process.

    The lock, not a file's existence, says "somebody owns this": the kernel
    drops it when the holder dies, however it dies.
    """

    def __init__(self, path):
        self.path = path
        self.fd = None

    def acquire(self):
        """Take the lock or return False if another process holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EACCES):
                return False
            raise
        self.fd = fd
        return True

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def is_locked(path):
    """Does some process hold the ``flock`` on ``path``? (Never creates the file.)"""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EACCES):
            return True
        raise
    finally:
        # Closing drops the shared lock if we got it.
        os.close(fd)
    return False
