"""The log store's format and its one writer (the monitor).

A model's log directory holds ``current.log`` and rotated segments named by
the seq of their first entry (``00000000000000012345.log``), so a segment is
never renamed twice and a reader can find any seq from the directory listing.
Rotation renames ``current.log``; it never copies or truncates.

One entry per line, the message last so it needs no escaping (a message never
holds a newline: lines are split on it)::

    <seq> <ts> <stream><level><part> <msg>\\n
    12 1764072000123456 oi. Uvicorn running on http://127.0.0.1:8000

``ts`` is UTC microseconds and never decreases; ``seq`` is gapless per model and
continues across monitor restarts; ``part`` is ``+`` for every piece of a split
line but the last, ``.`` otherwise. Messages are stored as the model wrote them
(bytes); readers decode them as UTF-8, replacing what is not.

Optional flag letters may follow ``part`` (issue 11); today one: ``p``, a line that
a health probe of modeld caused (the model's access-log line for it)::

    13 1764072000223456 oi.p INFO:     127.0.0.1:50104 - "GET /health HTTP/1.1" 200 OK

A line without flags (every line written before the change) reads as before, with
``probe`` false; readers ignore flag letters they do not know.
"""

import collections
import errno
import os
import re

from lib.core import fsutil, timefmt

CURRENT = "current.log"
LOG_ID_FILE = "logid"
SEGMENT_PATTERN = re.compile(r"^(\d{20})\.log$")
MAX_LINE_BYTES = 16 * 1024

STREAM_CODES = {"stdout": "o", "stderr": "e", "modeld": "m"}
STREAM_NAMES = {code: name for name, code in STREAM_CODES.items()}

Entry = collections.namedtuple("Entry", "seq ts stream level partial msg probe", defaults=(False,))
PROBE_FLAG = b"p"


def segment_name(first_seq):
    return "%020d.log" % first_seq


def encode_entries(first_seq, ts, stream_code, level_codes, msgs, partials=None, probes=None):
    """Stored lines (bytes, newlines included) for consecutive entries of one stream.

    ``level_codes`` are one-byte ``bytes`` (as ``lib.logs.levels`` detects them). The one
    encoder of the format above. It is also the capture's hot path, hence one
    ``%`` per line and no per-line branch when no line was split (``partials`` None)
    and no line was caused by a probe (``probes`` None).
    """
    middle = b" %d %s" % (ts, stream_code.encode())
    seqs = range(first_seq, first_seq + len(msgs))
    if probes is not None:
        partials = partials or [False] * len(msgs)
        return [
            b"%d%s%s%s%s %s\n"
            % (seq, middle, level, b"+" if cut else b".", PROBE_FLAG if probe else b"", msg)
            for seq, level, cut, probe, msg in zip(seqs, level_codes, partials, probes, msgs)
        ]
    if partials is None:
        return [
            b"%d%s%s. %s\n" % (seq, middle, level, msg)
            for seq, level, msg in zip(seqs, level_codes, msgs)
        ]
    return [
        b"%d%s%s%s %s\n" % (seq, middle, level, b"+" if cut else b".", msg)
        for seq, level, cut, msg in zip(seqs, level_codes, partials, msgs)
    ]


def encode_entry(seq, ts, stream_code, level_code, partial, msg):
    """One stored line (bytes, newline included)."""
    return encode_entries(seq, ts, stream_code, [level_code.encode()], [msg], [partial])[0]


def parse_header(raw):
    """``(seq, ts)`` from the start of a stored line, or ``None`` if it is not one."""
    parts = raw.split(b" ", 2)
    if len(parts) < 3:
        return None
    try:
        return int(parts[0]), int(parts[1])
    except ValueError:
        return None


def parse_line(raw):
    """An ``Entry`` from a stored line (without its newline), or ``None`` if malformed."""
    parts = raw.split(b" ", 3)
    if len(parts) != 4 or len(parts[2]) < 3:
        return None
    try:
        seq, ts = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    flags = parts[2].decode("ascii", "replace")
    probe = len(flags) > 3 and "p" in flags[3:]
    return Entry(seq, ts, flags[0], flags[1], flags[2] == "+", parts[3], probe)


class LineSplitter:
    """Cuts a byte stream into lines; lines over ``MAX_LINE_BYTES`` become several parts.

    ``feed`` returns ``(msg, partial)`` pairs; a trailing line without its
    newline waits for the next chunk (or ``finish``).
    """

    def __init__(self, max_line=MAX_LINE_BYTES):
        self.max_line = max_line
        self.pending = b""

    def feed_batch(self, chunk):
        """``(lines, partials)``; ``partials`` is ``None`` when no line was cut or carried a CR.

        The monitor's hot path: the common case costs a split and two scans in C.
        """
        data = self.pending + chunk if self.pending else chunk
        if b"\r" in data:
            return self._slow_batch(chunk)
        lines = data.split(b"\n")
        if max(map(len, lines)) > self.max_line:
            return self._slow_batch(chunk)
        self.pending = lines.pop()
        return lines, None

    def _slow_batch(self, chunk):
        pairs = self.feed(chunk)
        return [line for line, _ in pairs], [partial for _, partial in pairs]

    def feed(self, chunk):
        data = self.pending + chunk if self.pending else chunk
        lines = data.split(b"\n")
        self.pending = lines.pop()
        out = []
        for line in lines:
            if line[-1:] == b"\r":
                line = line[:-1]
            if len(line) > self.max_line:
                out.extend(self._split(line))
            else:
                out.append((line, False))
        while len(self.pending) > self.max_line:
            out.append((self.pending[: self.max_line], True))
            self.pending = self.pending[self.max_line :]
        return out

    def finish(self):
        """What is left when the stream ends: the last line, if it had no newline."""
        rest, self.pending = self.pending, b""
        return [(rest, False)] if rest else []

    def _split(self, line):
        step = self.max_line
        pieces = [line[start : start + step] for start in range(0, len(line), step)]
        return [(piece, index < len(pieces) - 1) for index, piece in enumerate(pieces)]


def rotated_segments(directory):
    """``(first_seq, path)`` of the rotated segments in ``directory``, oldest first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        match = SEGMENT_PATTERN.fullmatch(name)
        if match:
            found.append((int(match.group(1)), os.path.join(directory, name)))
    return sorted(found)


def last_line_end(handle, end, block=65536):
    """The offset just past the last newline before ``end`` in a binary file (0 if none)."""
    position = end
    while position > 0:
        step = min(block, position)
        position -= step
        handle.seek(position)
        cut = handle.read(step).rfind(b"\n")
        if cut >= 0:
            return position + cut + 1
    return 0


def lines_backward(handle, end, block=65536):
    """Complete lines ending before ``end``, last first (a torn last line is left out)."""
    position, pending = last_line_end(handle, end, block), b""
    while position > 0:
        step = min(block, position)
        position -= step
        handle.seek(position)
        lines = (handle.read(step) + pending).split(b"\n")
        pending = lines[0]
        for line in reversed(lines[1:]):
            if line:
                yield line
    if pending:
        yield pending


def read_log_id(directory):
    """The id of this log's generation (a purge starts a new one), creating it if needed."""
    path = os.path.join(directory, LOG_ID_FILE)
    try:
        with open(path) as handle:
            value = handle.read().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    value = os.urandom(8).hex()  # not secrets: hashlib maps libcrypto into every monitor
    temporary = path + ".tmp.%d" % os.getpid()
    with open(temporary, "w") as handle:
        handle.write(value + "\n")
    os.replace(temporary, path)
    return value


def last_complete_line(path):
    """``(last line without newline, offset just past the last newline)`` of a file."""
    with open(path, "rb") as handle:
        complete_end = last_line_end(handle, handle.seek(0, os.SEEK_END))
        for line in lines_backward(handle, complete_end):
            return line, complete_end
        return None, complete_end


def plan_writes(size, line_sizes, max_bytes):
    """Where to rotate while appending lines: the decision, apart from the writing.

    ``size`` is the current file's size, ``line_sizes`` the lines to append in order.
    Returns ``[(start, end, rotate_first)]``: write ``lines[start:end]`` as one block,
    rotating before it when ``rotate_first``. A file rotates before a line that would take
    it past ``max_bytes``, never in the middle of a line, and never while empty (a line
    longer than ``max_bytes`` gets a file of its own).
    """
    blocks, start, filled, rotate_first = [], 0, size, False
    for index, line_size in enumerate(line_sizes):
        if filled + line_size > max_bytes and filled > 0:
            if index > start:
                blocks.append((start, index, rotate_first))
            start, filled, rotate_first = index, 0, True
        filled += line_size
    if len(line_sizes) > start:
        blocks.append((start, len(line_sizes), rotate_first))
    return blocks


class LogWriter:
    """Appends entries for one model, rotating by size at line boundaries.

    Never raises on a write failure (a full disk, a directory made read-only):
    it counts what it could not write and, once writing works again, first
    writes an entry that says how many lines were dropped and why.
    """

    def __init__(self, directory, max_bytes, backups, clock=timefmt.now_us, warn=None):
        self.directory = fsutil.ensure_directory(directory)
        # ``warn(message)``: how a problem the writer works around reaches a person (the
        # monitor's own log); once per episode, never per line.
        self.warn = warn or (lambda message: None)
        self.rotation_failure = None
        self.max_bytes = max_bytes
        self.backups = backups
        self.clock = clock
        self.log_id = read_log_id(directory)
        self.seq, self.ts = self._recover()
        self.fd = None
        self.size = 0
        self.first_seq = self.seq + 1
        self.dropped = 0
        self.drop_reason = None
        self._open_current()

    def _path(self, name):
        return os.path.join(self.directory, name)

    def _recover(self):
        """The last seq and ts written, cutting a torn last line left by a crash."""
        for path in [self._path(CURRENT)] + [s for _, s in reversed(self._segments())]:
            if not os.path.exists(path):
                continue
            line, end = last_complete_line(path)
            if os.path.getsize(path) != end and path.endswith(CURRENT):
                os.truncate(path, end)
            header = parse_header(line) if line else None
            if header is not None:
                return header
        return 0, 0

    def _segments(self):
        return rotated_segments(self.directory)

    def _open_current(self):
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        self.fd = os.open(self._path(CURRENT), flags, 0o600)
        self.size = os.fstat(self.fd).st_size
        if self.size:
            with open(self._path(CURRENT), "rb") as handle:
                header = parse_header(handle.readline())
            self.first_seq = header[0] if header else self.seq + 1
        else:
            self.first_seq = self.seq + 1

    def append_batch(self, stream_code, level_codes, msgs, partials=None, probes=None):
        """Write lines of one stream: the hot path (one format per line, one write)."""
        if not msgs or self._still_dropping(len(msgs)):
            return
        ts = max(self.ts, self.clock())
        first = self.seq + 1
        lines = encode_entries(first, ts, stream_code, level_codes, msgs, partials, probes)
        try:
            self._write_lines(lines, first)
        except OSError as error:
            self._note_drop(len(msgs), error)
            return
        self.seq, self.ts = first + len(msgs) - 1, ts

    def append(self, records):
        """Write ``records``: ``(stream_code, level_code, partial, msg)`` tuples."""
        if not records or self._still_dropping(len(records)):
            return
        ts = max(self.ts, self.clock())
        seq = self.seq
        lines = []
        for stream, level, partial, msg in records:
            seq += 1
            lines.append(encode_entry(seq, ts, stream, level, partial, msg))
        try:
            self._write_lines(lines, self.seq + 1)
        except OSError as error:
            self._note_drop(len(records), error)
            return
        self.seq, self.ts = seq, ts

    def _still_dropping(self, count):
        """After a failed write: say how many lines were lost before writing new ones.

        True if that note cannot be written yet either (``count`` more are lost).
        """
        if self.dropped:
            self._write_drop_notice()
        if self.dropped:
            self.dropped += count
            return True
        return False

    def _write_drop_notice(self):
        message = "modeld dropped %d lines of output: %s" % (self.dropped, self.drop_reason)
        ts = max(self.ts, self.clock())
        line = encode_entry(self.seq + 1, ts, "m", "w", False, message.encode())
        try:
            self._write_lines([line], self.seq + 1)
        except OSError:
            return  # still failing: keep counting
        self.seq, self.ts = self.seq + 1, ts
        self.dropped, self.drop_reason = 0, None

    def _note_drop(self, count, error):
        self.dropped += count
        self.drop_reason = os.strerror(error.errno) if error.errno else str(error)

    def _write_lines(self, lines, first_seq):
        """Write whole lines, rotating where ``plan_writes`` says."""
        block = b"".join(lines)
        if self.size + len(block) <= self.max_bytes:  # the common case: no rotation
            self._write_block(block)
            return
        for start, end, rotate_first in plan_writes(
            self.size, list(map(len, lines)), self.max_bytes
        ):
            if rotate_first:
                self._rotate(first_seq + start)
            self._write_block(b"".join(lines[start:end]))

    def _write_block(self, data):
        if not data:
            return
        start = self.size
        view = memoryview(data)
        try:
            while view:
                written = os.write(self.fd, view)
                view = view[written:]
        except OSError:
            # A torn line would corrupt the file for readers: cut back to the last whole one.
            try:
                os.ftruncate(self.fd, start)
            except OSError:
                pass  # nothing more can be done; recovery trims torn lines at start
            raise
        self.size = start + len(data)

    def _rotate(self, next_first_seq):
        """Rename current.log to its segment name, start a new one, drop old segments."""
        try:
            os.rename(self._path(CURRENT), self._path(segment_name(self.first_seq)))
        except OSError as error:
            if error.errno != errno.ENOENT:
                # The directory cannot change (read-only, permissions): keep appending here,
                # and say so once, not at every line that should have rotated.
                self._rotation_failed(error)
                return
            # current.log was deleted under us: its lines are gone; start a fresh file.
        if self.rotation_failure is not None:
            self.warn("log rotation works again in %s" % self.directory)
            self.rotation_failure = None
        os.close(self.fd)
        self._open_current()
        self.first_seq = next_first_seq
        self._prune()

    def _rotation_failed(self, error):
        reason = os.strerror(error.errno) if error.errno else str(error)
        if self.rotation_failure != reason:
            self.rotation_failure = reason
            self.warn(
                "cannot rotate %s: %s; appending past logs.max_bytes until it can"
                % (self._path(CURRENT), reason)
            )

    def _prune(self):
        segments = self._segments()
        for _, path in segments[: max(0, len(segments) - self.backups)]:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass  # a purge got there first

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
