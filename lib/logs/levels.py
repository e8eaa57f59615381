"""Log level detection: which of debug/info/warning/error/critical a raw line carries.

Works on bytes (the monitor never decodes a model's output). ``detect(line)``
looks at one line alone; ``LevelTracker`` adds what needs the previous lines
of the same stream: an indented line, or a Python traceback, continues the
entry that started it and takes its level.

Formats recognized (real sample lines in tests/test_levels.py):
Python logging (``WARNING:root:``, ``2026-11-25 12:00:00,123 ERROR ...``,
``... - name - INFO - ...``), uvicorn (``INFO:     ...``), vLLM
(``INFO 11-25 12:00:00 [file.py:1] ...``, with an optional ``(APIServer pid=1)``
prefix), llama.cpp (``0.00.123.456 W ...``, ``E main: ...`` and
``func: error ...``), glog (``E1125 12:00:00.123456 ...``), MLflow
(``2026/11/25 12:00:00 INFO ...``), logfmt (``level=error``), JSON lines with a
``level``/``levelname``/``severity`` field (names or pino/bunyan numbers),
syslog ``<3>`` prefixes, gunicorn/log4j/BentoML/Rust ``[ERROR]``-style brackets.
ANSI colors are ignored.
"""

import json
import re

DEBUG, INFO, WARNING, ERROR, CRITICAL = "debug", "info", "warning", "error", "critical"
LEVELS = (DEBUG, INFO, WARNING, ERROR, CRITICAL)
RANK = {level: rank for rank, level in enumerate(LEVELS)}
CODE = {DEBUG: "d", INFO: "i", WARNING: "w", ERROR: "e", CRITICAL: "c"}
FROM_CODE = {code: level for level, code in CODE.items()}

_WORDS = {
    b"trace": DEBUG,
    b"debug": DEBUG,
    b"dbg": DEBUG,
    b"info": INFO,
    b"information": INFO,
    b"notice": INFO,
    b"warn": WARNING,
    b"warning": WARNING,
    b"err": ERROR,
    b"error": ERROR,
    b"crit": CRITICAL,
    b"critical": CRITICAL,
    b"fatal": CRITICAL,
    b"panic": CRITICAL,
    b"alert": CRITICAL,
    b"emerg": CRITICAL,
    b"emergency": CRITICAL,
    b"severe": ERROR,
}
_LETTERS = {b"D": DEBUG, b"I": INFO, b"W": WARNING, b"E": ERROR, b"F": CRITICAL, b"C": CRITICAL}
_SYSLOG = [CRITICAL, CRITICAL, CRITICAL, ERROR, WARNING, INFO, INFO, DEBUG]

_NAME = rb"(?:TRACE|DEBUG|INFO|NOTICE|WARNING|WARN|ERROR|CRITICAL|FATAL|SEVERE)"
_STAMP = (
    rb"(?:\[?\d{4}[-/]\d{2}[-/]\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?"
    rb"(?: ?(?:Z|[+-]\d{2}:?\d{2}))?\]?"
    rb"|\d{2}:\d{2}:\d{2}(?:[.,]\d+)?)"
)
_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LETTERS_ = _UPPER + _UPPER.lower() + b"_"
_DIGITS = b"0123456789"
_LOGGING = rb"(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)"

# (the bytes a line can start with, the pattern), in the order they are tried.
_ANCHORED_PATTERNS = (
    # Python logging's default format and uvicorn: "WARNING:root:..." / "INFO:     ..."
    (b"DIWEC", rb"(?P<colon>" + _LOGGING + rb"):"),
    # vLLM: "INFO 11-25 12:00:00 [...]", or after "(APIServer pid=1) "
    (b"(", rb"\([\w ]+pid=\d+\) (?P<vllm_pid>" + _LOGGING + rb") \d{2}-\d{2} "),
    (b"DIWEC", rb"(?P<vllm>" + _LOGGING + rb") \d{2}-\d{2} "),
    # glog: "E1125 12:00:00.123456 1234 file.cc:12] ..." (glog 0.7 adds the year)
    (b"DIWEF", rb"(?P<glog>[DIWEF])(?:\d{4})?\d{4} \d{2}:\d{2}:\d{2}\.\d{6}"),
    # llama.cpp's log prefix, with or without its timestamp: "0.00.123.456 W load: ..."
    (_DIGITS, rb"\d{1,4}\.\d{2}\.\d{3}\.\d{3} (?P<llama>[DIWE]) "),
    (b"DIWE", rb"(?P<llama_bare>[DIWE]) (?=[\w.]+: )"),
    # syslog priority prefix "<3>"
    (b"<", rb"<(?P<syslog>[0-7])>"),
    # a timestamp, optional separators/pids/brackets, then the level word:
    # "2026-11-25 12:00:00,123 INFO x", "... - app - ERROR - x", "[...] [123] [INFO] x",
    # "2026-11-25T12:00:00Z  WARN crate: x", "[2026-11-25T12:00:00Z ERROR crate] x"
    (
        _DIGITS + b"[",
        _STAMP + rb"(?:\s+[-|]?\s*(?:\[\d+\]|[\w.\-\[\]]+(?: -)?))?\s+[-|]?\s*\["
        rb"?(?P<stamped>" + _NAME + rb")\b",
    ),
    # a bracketed level at the start: "[ERROR] x", "[WARN ] x"
    (b"[", rb"\[(?P<bracket>" + _NAME + rb")\s*\]"),
    # "Error: x", "warning: x", "FATAL: x" at the start of the line
    (b"EeWwFfCcPp", rb"(?P<word>(?i:error|warning|warn|fatal|critical|panic))(?::|!)\s"),
    # llama.cpp/ggml without prefixes: "llama_model_load: error loading model"
    (_LETTERS_, rb"[A-Za-z_][\w.]*: (?P<func>error|warning|fatal)\b"),
)


def _dispatch_table():
    """For each first byte, one regex of the patterns that can start with it."""
    compiled, table = {}, {}
    for byte in range(256):
        first = bytes([byte])
        parts = tuple(pattern for firsts, pattern in _ANCHORED_PATTERNS if first in firsts)
        if parts:
            if parts not in compiled:
                compiled[parts] = re.compile(rb"(?:" + rb"|".join(parts) + rb")")
            table[first] = compiled[parts].match
    return table


_MATCH_BY_FIRST = _dispatch_table()
_LOGFMT = re.compile(rb'(?:^|\s)(?:level|lvl|severity|loglevel)=(?:"?)([A-Za-z]+)')
_JSON_KEYS = ("level", "levelname", "severity", "lvl", "log.level", "loglevel")
_TRACEBACK = b"Traceback (most recent call last):"
_CHAIN_MARKERS = (
    b"During handling of the above exception, another exception occurred:",
    b"The above exception was the direct cause of the following exception:",
)


_ANSI = re.compile(rb"\x1b\[[0-9;]*m")


def detect(line):
    """The level this line announces, or ``None`` when it announces none."""
    if line[:1] == b"\x1b":
        line = _ANSI.sub(b"", line)  # colored output (uvicorn, llama.cpp on a terminal)
    matcher = _MATCH_BY_FIRST.get(line[:1])
    match = matcher(line) if matcher is not None else None
    if match is not None:
        return _from_match(match)
    if b"=" in line:
        found = _LOGFMT.search(line)
        if found is not None:
            return _WORDS.get(found.group(1).lower())
    if line[:1] == b"{":
        return _from_json(line)
    return None


def _from_match(match):
    group = match.lastgroup
    value = match.group(group)
    if group in ("glog", "llama", "llama_bare"):
        return _LETTERS[value]
    if group == "syslog":
        return _SYSLOG[int(value)]
    return _WORDS.get(value.lower())


def _from_json(line):
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    for key in _JSON_KEYS:
        value = record.get(key)
        if isinstance(value, str):
            return _WORDS.get(value.strip().lower().encode())
        if isinstance(value, int) and not isinstance(value, bool):
            return _from_number(value)
    return None


def _from_number(value):
    # pino and bunyan: 10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal
    if value >= 60:
        return CRITICAL
    if value >= 50:
        return ERROR
    if value >= 40:
        return WARNING
    if value >= 30:
        return INFO
    return DEBUG


_CODE_OF = {level: CODE[level].encode() for level in LEVELS}
# Lines starting with these need the tracker's memory (continuations, tracebacks).
_SPECIAL_FIRST = {b" ", b"\t", b"T", b"\x1b", b""}


class LevelTracker:
    """Per-stream memory so continuation lines inherit the level of their entry."""

    def __init__(self):
        self.last_level = INFO
        self.in_traceback = False

    def codes_of(self, lines):
        """One-byte level codes for a batch of lines: the monitor's hot path.

        Same answers as calling ``level_of`` line by line, with the common
        case (an ordinary line, outside a traceback) inlined.
        """
        by_first, codes, level_of = _MATCH_BY_FIRST, [], self.level_of
        code_of, info = _CODE_OF, _CODE_OF[INFO]
        for line in lines:
            first = line[:1]
            if self.in_traceback or first in _SPECIAL_FIRST:
                codes.append(code_of[level_of(line)])
                continue
            matcher = by_first.get(first)
            found = matcher(line) if matcher is not None else None
            if found is not None:
                level = _from_match(found) or INFO
            elif b"=" in line or line[:1] == b"{":
                level = detect(line) or INFO
            else:
                self.last_level = INFO
                codes.append(info)
                continue
            self.last_level = level
            codes.append(code_of[level])
        return codes

    def level_of(self, line):
        """The level for ``line``, given the lines of this stream before it."""
        if self.in_traceback:
            return self._traceback_line(line)
        if line.startswith(_TRACEBACK):
            # "logging.exception" writes its message line, then the traceback.
            self.in_traceback = True
            if RANK[self.last_level] < RANK[WARNING]:
                self.last_level = ERROR
            return self.last_level
        if line[:1] in (b" ", b"\t"):
            explicit = detect(line.lstrip())
            return self.last_level if explicit is None else explicit
        level = detect(line) or INFO
        self.last_level = level
        return level

    def _traceback_line(self, line):
        if not line or line[:1] in (b" ", b"\t") or line.startswith(_CHAIN_MARKERS):
            return self.last_level
        if line.startswith(_TRACEBACK):
            return self.last_level
        # The first unindented line is the exception itself ("ValueError: x"): it ends the block.
        self.in_traceback = False
        return self.last_level
