"""Reading events from the end: ``GET /events`` and its ``follow=true`` stream.

``lib.core.events`` owns the file (``events.jsonl`` plus one rotated
predecessor, ``.1``). The newest ``limit`` events of 100 models must not cost a
read of every file in full (seconds for busy models), so ``newest`` reads
each file backwards in blocks until it holds ``limit`` lines (or reaches
``since``), takes each line's time without decoding it, merges by time, and
decodes only the lines it returns. Times are ``timefmt.format_us`` strings:
fixed width, so they sort as text.
"""

import heapq
import itertools
import json
import os
import re

from lib.core import timefmt

BLOCK = 16 * 1024
_AT = re.compile(rb'"at":\s*"([^"]+)"')


def _at(line):
    match = _AT.search(line)
    return match.group(1).decode() if match else ""


def tail_lines(path, limit, since_text=None):
    """Up to ``limit`` newest raw lines of one model's events, newest first."""
    found = []
    for candidate in (path, path + ".1"):
        for line in _backward(candidate):
            if since_text is not None and _at(line) < since_text:
                return found
            found.append(line)
            if len(found) >= limit:
                return found
    return found


def _backward(path):
    """Complete lines of ``path``, newest first, read in growing blocks from the end."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return
    with handle:
        end = os.fstat(handle.fileno()).st_size
        handle.seek(0)
        carry = b""
        position = end
        block = BLOCK
        first = True
        while position > 0:
            start = max(0, position - block)
            handle.seek(start)
            chunk = handle.read(position - start) + carry
            position = start
            lines = chunk.split(b"\n")
            if first:
                lines.pop()  # after the last newline: empty, or a torn line being written
                first = False
            carry = lines.pop(0) if position > 0 else b""
            for line in reversed(lines):
                if line.strip():
                    yield line
            block = min(block * 4, 1 << 22)
        if carry.strip():
            yield carry


def _timed_backward(path, since_text):
    """``(at, line)`` of one model's events, newest first, down to ``since``."""
    for candidate in (path, path + ".1"):
        for line in _backward(candidate):
            at = _at(line)
            if since_text is not None and at < since_text:
                return
            yield at, line


def newest(paths, limit, since_us=None):
    """The newest ``limit`` events of all ``paths`` (one per model), oldest first.

    A lazy merge, newest first: each file is read (and each line's time taken) only
    as far as the merge consumes it, so ``limit=100`` over 100 models looks at
    about 200 lines, not 10,000.
    """
    since_text = timefmt.format_us(since_us) if since_us is not None else None
    streams = [_timed_backward(path, since_text) for path in paths]
    merged = heapq.merge(*streams, key=lambda pair: pair[0], reverse=True)
    chosen = [line for _, line in itertools.islice(merged, limit)]
    for stream in streams:
        stream.close()  # closes the files of the streams the merge did not finish
    chosen.reverse()
    return [event for event in map(_decode, chosen) if event is not None]


def _decode(line):
    try:
        return json.loads(line)
    except ValueError:
        return None  # a damaged line: skipped, as lib.core.events.read does


def _read_from(path, offset):
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read()
    except FileNotFoundError:
        return b""


class Follower:
    """New events of every model since it was made, by file offsets (one per model)."""

    def __init__(self, paths):
        self.paths = paths  # a callable: the events paths of the models now
        self.offsets = {}
        for path in self.paths():
            self.offsets[path] = self._end(path)

    def _end(self, path):
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return (None, 0)
        return (stat.st_ino, stat.st_size)

    def poll(self):
        """Events appended since the last poll, oldest first."""
        found = []
        for path in self.paths():
            inode, offset = self.offsets.get(path, (None, 0))
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                continue
            if stat.st_ino != inode:
                if inode is not None:
                    found.extend(self._rest_of_rotated(path + ".1", inode, offset))
                offset = 0
            data = _read_from(path, offset)
            complete = data.rfind(b"\n") + 1
            self.offsets[path] = (stat.st_ino, offset + complete)
            found.extend(line for line in data[:complete].splitlines() if line.strip())
        found.sort(key=_at)
        return [event for event in map(_decode, found) if event is not None]

    def _rest_of_rotated(self, path, inode, offset):
        """What was appended to the file we were reading before it was renamed to ``.1``."""
        try:
            if os.stat(path).st_ino != inode:
                return []  # rotated twice since: that part is gone
        except FileNotFoundError:
            return []
        return [line for line in _read_from(path, offset).splitlines() if line.strip()]
