"""Which record a line belongs to, so a continuation line takes its record's level.

``lib.logs.levels`` reads one line alone; a model's records often span several:
a logging call's traceback (and its chained parts), a multi-line exception
message (pydantic's ``x.0`` / ``  Input should ...`` details, a ``ValueError``
whose text has newlines), the source line under a Python warning, gunicorn's
configuration dump, TGI's dump of a failed shard's stderr. None of these
continuation lines carries a level of its own, and a person reading the log
gives them the record's.

``LevelTracker`` keeps that memory per stream, and per writing process inside
a stream where lines name it (Ray's ``(ServeReplica:app:Dep pid=12) `` prefix,
vLLM's ``(APIServer pid=1) ``): Ray interleaves several processes on one pipe.

The rules, in the order they apply (tests/test_levels.py; the real-output corpus
in tests/data/server_output/ is the judge):

1. Inside a traceback (after ``Traceback (most recent call last):``, whether the
   line starts with it or a logging header ends with it): indented lines, blank
   lines, the chain markers (``During handling of the above exception ...``) and
   further ``Traceback`` lines continue it; a line with a logging header starts a
   new record; any other line is the exception line.
2. After the exception line, the message continues on indented and blank lines,
   on unindented lines when the exception line ends with ``:`` or is pydantic's
   ``N validation error(s) for X``, and on a line that repeats the message
   (gunicorn prints ``No module named 'x'`` again); a chain marker or a new
   ``Traceback`` resumes rule 1.
3. After a header at warning level or above that ends with ``:`` (TGI's ``Shard
   complete standard error output:``), every line without a logging header
   continues it: the dump's lines keep the record's level.
4. Otherwise: a line with a level starts a record at that level; an indented or
   blank line continues the record; so do a Java exception line or a known second
   line (LitServe's ``Please check the error trace for more details.``) after a
   warning or error; anything else is a new record at info (``print`` output).

A bare traceback (no header before it) is an error. The decision for a line is
the same whether it arrives alone or in a batch (``codes_of`` is the monitor's
hot path, with the common case inlined; a test holds the two paths equal).
"""

import re

from lib.logs import levels
from lib.logs.levels import CODE, ERROR, INFO, LEVELS, RANK, WARNING

TRACEBACK = b"Traceback (most recent call last):"
CHAIN_MARKERS = (
    b"During handling of the above exception, another exception occurred:",
    b"The above exception was the direct cause of the following exception:",
)
# Second lines that servers write without a header, known to continue the record before.
KNOWN_CONTINUATIONS = (
    b"Please check the error trace for more details.",  # LitServe's "LitAPI ran into an error"
)
_JAVA_EXCEPTION = re.compile(rb"(?:[a-z]\w*\.)+[A-Z]\w*(?:Exception|Error)\b")
_PYDANTIC = re.compile(rb"\d+ validation errors? for ")
MAX_PROCESSES = 64

NORMAL, IN_TRACEBACK, AFTER_EXCEPTION, IN_DUMP = range(4)

_CODE_OF = {level: CODE[level].encode() for level in LEVELS}
# Lines starting with these need the tracker's slow path (continuations, prefixes, colour).
_SPECIAL_FIRST = {b" ", b"\t", b"T", b"\x1b", b"(", b""}
_ERROR_RANK = RANK[ERROR]
_WARNING_RANK = RANK[WARNING]


class LevelTracker:
    """Per-stream memory so continuation lines inherit the level of their record."""

    def __init__(self):
        self.last_level = INFO
        self.state = NORMAL
        self.continues = False  # the exception message goes on (rule 2)
        self.message = b""  # the exception's message, to spot it repeated
        self.processes = {}  # process prefix -> its own LevelTracker

    def codes_of(self, lines):
        """One-byte level codes for a batch of lines: the monitor's hot path.

        Same answers as calling ``level_of`` line by line, with the common case
        (a line with a header or none, outside any multi-line record) inlined.
        """
        by_first, codes, level_of = levels._MATCH_BY_FIRST, [], self.level_of
        code_of, info, special = _CODE_OF, _CODE_OF[INFO], _SPECIAL_FIRST
        for line in lines:
            first = line[:1]
            if self.state != NORMAL or first in special:
                codes.append(code_of[level_of(line)])
                continue
            matcher = by_first.get(first)
            found = matcher(line) if matcher is not None else None
            if found is None and b"=" not in line and first != b"{":
                if self.last_level is not INFO:
                    codes.append(code_of[level_of(line)])  # maybe a continuation
                    continue
                codes.append(info)
                continue
            if found is None or line[-1:] == b":" or b" validation error" in line:
                codes.append(code_of[level_of(line)])
                continue
            level = levels._from_match(found) or INFO
            self.last_level = level
            codes.append(code_of[level])
        return codes

    def level_of(self, line):
        """The level for ``line``, given the lines of this stream before it."""
        if line[:1] == b"\x1b":
            line = levels.strip_ansi(line)
        if line[:1] == b"(":
            prefix, rest = levels.split_process_prefix(line)
            if prefix is not None:
                return self._process(prefix).level_of(rest)
        if self.state == IN_TRACEBACK:
            return self._in_traceback(line)
        if self.state == AFTER_EXCEPTION:
            return self._after_exception(line)
        if self.state == IN_DUMP:
            return self._in_dump(line)
        return self._normal(line)

    def _process(self, prefix):
        tracker = self.processes.get(prefix)
        if tracker is None:
            if len(self.processes) >= MAX_PROCESSES:
                self.processes.pop(next(iter(self.processes)))  # the oldest: a bounded memory
            tracker = self.processes[prefix] = LevelTracker()
        return tracker

    def _normal(self, line):
        if line.startswith(TRACEBACK):
            # A bare traceback, or "logging.exception" writing its message line first.
            self.state = IN_TRACEBACK
            if RANK[self.last_level] < _WARNING_RANK:
                self.last_level = ERROR
            return self.last_level
        level, header = levels.classify(line)
        if level is not None:
            return self._start(line, level, header)
        if not line:
            return self.last_level
        if line[:1] in (b" ", b"\t"):
            # Indented: a continuation, unless it announces a level of its own.
            explicit, header = levels.classify(line.lstrip())
            return explicit if header else self.last_level
        if RANK[self.last_level] >= _WARNING_RANK and _continues_a_problem(line):
            return self.last_level
        self.last_level = INFO
        return INFO

    def _start(self, line, level, header):
        """A new record at ``level``; a header ending a traceback or a dump opens it."""
        self.last_level = level
        if line.endswith(TRACEBACK):
            self.state = IN_TRACEBACK
        elif header and line.endswith(b":") and RANK[level] >= _WARNING_RANK:
            self.state = IN_DUMP
        elif header and _PYDANTIC.search(line) is not None:
            # "... ERROR ... Error while handling request: 2 validation errors for Item"
            self.state, self.continues, self.message = AFTER_EXCEPTION, True, b""
        else:
            self.state = NORMAL
        return level

    def _in_traceback(self, line):
        if not line or line[:1] in (b" ", b"\t") or line.startswith(CHAIN_MARKERS):
            return self.last_level
        if line.startswith(TRACEBACK):
            return self.last_level
        level, header = levels.classify(line)
        if header:
            return self._start(line, level, header)
        # The first unindented line is the exception itself ("ValueError: x").
        self.state = AFTER_EXCEPTION
        self.continues = line.endswith(b":") or _PYDANTIC.search(line) is not None
        self.message = line.partition(b": ")[2]
        return self.last_level

    def _after_exception(self, line):
        if not line or line[:1] in (b" ", b"\t"):
            return self.last_level
        if line.startswith(CHAIN_MARKERS) or line.startswith(TRACEBACK):
            self.state = IN_TRACEBACK
            return self.last_level
        level, header = levels.classify(line)
        if level is not None:
            return self._start(line, level, header)
        if self.continues or (self.message and line == self.message):
            return self.last_level
        self.state = NORMAL
        return self._normal(line)

    def _in_dump(self, line):
        level, header = levels.classify(line)
        if level is not None and header:
            return self._start(line, level, header)
        if line.startswith(TRACEBACK):
            self.state = IN_TRACEBACK
        return self.last_level


def _continues_a_problem(line):
    """A headerless line that goes on telling the warning or error before it."""
    return line.startswith(KNOWN_CONTINUATIONS) or _JAVA_EXCEPTION.match(line) is not None
