"""Reading a model's log store without scanning it: seek by seq or time, iterate both ways.

Every position is a seq. A segment's first seq is in its name (``current.log``
keeps it in its first line), so the directory listing says which file holds a
seq; within a file, a binary search over byte offsets finds the line, because
a stored line never holds a newline except its last byte.

Readers race with the writer's rotation (a file renamed, the oldest deleted):
each step re-lists the directory and continues from the next seq, so an
iteration neither skips nor repeats an entry while files move under it.
"""

import collections
import os

from lib.logs import store

BLOCK = 65536
# Below this many bytes a linear scan beats more seeks.
SCAN_SPAN = 16384

Segment = collections.namedtuple("Segment", "path first_seq")


def list_segments(directory):
    """Rotated segments then ``current.log`` (if it has entries), oldest first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    rotated = []
    for name in names:
        match = store.SEGMENT_PATTERN.fullmatch(name)
        if match:
            rotated.append(Segment(os.path.join(directory, name), int(match.group(1))))
    rotated.sort(key=lambda segment: segment.first_seq)
    current = os.path.join(directory, store.CURRENT)
    header = _first_header(current)
    if header is not None:
        rotated.append(Segment(current, header[0]))
    return rotated


def _first_header(path):
    try:
        with open(path, "rb") as handle:
            return store.parse_header(handle.read(128))
    except FileNotFoundError:
        return None


def _line_start_at_or_after(handle, offset):
    """The offset of the first line that starts at or after ``offset`` (None at EOF)."""
    if offset == 0:
        return 0
    position = offset - 1
    handle.seek(position)
    while True:
        chunk = handle.read(4096)
        if not chunk:
            return None
        cut = chunk.find(b"\n")
        if cut >= 0:
            return position + cut + 1
        position += len(chunk)


def _header_at(handle, offset):
    handle.seek(offset)
    return store.parse_header(handle.read(64))


def bisect_file(handle, size, key, target):
    """Offset of the first line whose ``key`` (0 seq, 1 ts) is >= ``target``; ``size`` if none."""
    low, high = 0, size
    while high - low > SCAN_SPAN:
        middle = (low + high) // 2
        start = _line_start_at_or_after(handle, middle)
        header = _header_at(handle, start) if start is not None and start < high else None
        if header is not None and header[key] < target:
            low = start
        else:
            high = middle
    handle.seek(low)
    offset = low
    for raw in _lines(handle, size - low):
        header = store.parse_header(raw)
        if header is not None and header[key] >= target:
            return offset
        offset += len(raw) + 1
    return size


def _lines(handle, limit=None):
    """Complete lines (without newline) from the handle's position; a torn tail is left."""
    pending = b""
    remaining = limit
    while remaining is None or remaining > 0:
        chunk = handle.read(BLOCK if remaining is None else min(BLOCK, remaining))
        if not chunk:
            return
        if remaining is not None:
            remaining -= len(chunk)
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        yield from lines


class LogReader:
    """Queries one model's log directory. Cheap to create: one per request."""

    def __init__(self, directory):
        self.directory = directory

    def log_id(self):
        try:
            with open(os.path.join(self.directory, store.LOG_ID_FILE)) as handle:
                return handle.read().strip()
        except FileNotFoundError:
            return None

    def segments(self):
        return list_segments(self.directory)

    def first_seq(self):
        segments = self.segments()
        return segments[0].first_seq if segments else None

    def last_entry(self):
        """The newest entry, or ``None`` for an empty log."""
        for entry in self.backward(None):
            return entry
        return None

    def next_seq(self):
        """The seq the next written entry will get."""
        last = self.last_entry()
        return last.seq + 1 if last else 1

    def seq_at_ts(self, ts):
        """The first seq whose entry has ``ts`` at or after ``ts`` (past the end if none)."""
        segments = self.segments()
        for index in range(len(segments) - 1, -1, -1):
            header = _first_header(segments[index].path)
            if header is not None and header[1] < ts:
                found = self._seq_in_file(segments[index].path, 1, ts)
                if found is not None:
                    return found
                return segments[index + 1].first_seq if index + 1 < len(segments) else None
        return segments[0].first_seq if segments else None

    def _seq_in_file(self, path, key, target):
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                offset = bisect_file(handle, size, key, target)
                if offset >= size:
                    return None
                return _header_at(handle, offset)[0]
        except FileNotFoundError:
            return None

    def forward(self, seq, on_skip=None):
        """Entries with seq >= ``seq``, oldest first, up to the newest written now.

        If entries from ``seq`` on were already rotated away, iteration starts
        at the oldest kept one and ``on_skip(count)`` hears how many were lost.
        """
        while True:
            segments = self.segments()
            index = _segment_for(segments, seq)
            if index is None:
                return
            if seq < segments[index].first_seq:
                if on_skip is not None:
                    on_skip(segments[index].first_seq - seq)
                seq = segments[index].first_seq
            emitted = None
            for entry in self._forward_in(segments[index].path, seq):
                emitted = entry.seq
                yield entry
            if emitted is not None:
                seq = emitted + 1
            elif index == len(segments) - 1:
                return  # nothing newer than seq exists yet
            else:
                seq = max(seq, segments[index + 1].first_seq)

    def _forward_in(self, path, seq):
        try:
            handle = open(path, "rb")
        except FileNotFoundError:
            return
        with handle:
            size = os.fstat(handle.fileno()).st_size
            offset = bisect_file(handle, size, 0, seq)
            handle.seek(offset)
            for raw in _lines(handle):
                entry = store.parse_line(raw)
                if entry is not None and entry.seq >= seq:
                    yield entry

    def backward(self, before_seq):
        """Entries with seq < ``before_seq`` (all if ``None``), newest first."""
        segments = self.segments()
        for segment in reversed(segments):
            if before_seq is not None and segment.first_seq >= before_seq:
                continue
            try:
                handle = open(segment.path, "rb")
            except FileNotFoundError:
                return  # pruned by rotation: nothing older remains
            with handle:
                size = os.fstat(handle.fileno()).st_size
                end = size
                if before_seq is not None:
                    end = bisect_file(handle, size, 0, before_seq)
                for raw in _lines_backward(handle, end):
                    entry = store.parse_line(raw)
                    if entry is not None:
                        yield entry

    def total_bytes(self):
        total = 0
        for segment in self.segments():
            try:
                total += os.path.getsize(segment.path)
            except FileNotFoundError:
                continue
        return total


def _segment_for(segments, seq):
    """Index of the segment holding ``seq`` (the oldest if older), ``None`` if empty."""
    if not segments:
        return None
    for index in range(len(segments) - 1, -1, -1):
        if segments[index].first_seq <= seq:
            return index
    return 0


def _lines_backward(handle, end):
    """Complete lines ending before ``end``, last first (a torn last line is left out)."""
    position, pending = _last_line_end(handle, end), b""
    while position > 0:
        step = min(BLOCK, position)
        position -= step
        handle.seek(position)
        lines = (handle.read(step) + pending).split(b"\n")
        pending = lines[0]
        for line in reversed(lines[1:]):
            if line:
                yield line
    if pending:
        yield pending


def _last_line_end(handle, end):
    """The offset just past the last newline before ``end`` (0 if there is none)."""
    position = end
    while position > 0:
        step = min(BLOCK, position)
        position -= step
        handle.seek(position)
        cut = handle.read(step).rfind(b"\n")
        if cut >= 0:
            return position + cut + 1
    return 0
