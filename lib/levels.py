"""Log level detection: which of debug/info/warning/error/critical a raw line carries.

Works on bytes (the monitor never decodes a model's output). ``detect(line)``
looks at one line alone; ``LevelTracker`` adds what needs the previous lines
of the same stream: an indented line, or a Python traceback, continues the
entry that started it and takes its level.

Formats recognized (examples in tests/test_levels.py):
Python logging (``WARNING:root:``, ``2026-11-25 12:00:00,123 ERROR ...``,
``... - name - INFO - ...``), uvicorn (``INFO:     ...``), vLLM
(``INFO 11-25 12:00:00 [file.py:1] ...``, with an optional ``(APIServer pid=1)``
prefix), llama.cpp (``0.00.123.456 W ...`` and ``func: error ...``), glog
(``E1125 12:00:00.123456 ...``), logfmt (``level=error``), JSON lines with a
``level``/``levelname``/``severity`` field (names or pino/bunyan numbers), syslog
``<3>`` prefixes, gunicorn/log4j/env_logger ``[ERROR]``-style brackets.
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

_NAME = rb"(TRACE|DEBUG|INFO|NOTICE|WARNING|WARN|ERROR|CRITICAL|FATAL|SEVERE)"
_STAMP = (
    rb"(?:\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?"
    rb"(?: ?(?:Z|[+-]\d{2}:?\d{2}))?\]?"
    rb"|\d{2}:\d{2}:\d{2}(?:[.,]\d+)?)"
)
_ANCHORED = re.compile(
    rb"(?:"
    # Python logging's default format and uvicorn: "WARNING:root:..." / "INFO:     ..."
    rb"(?P<colon>DEBUG|INFO|WARNING|ERROR|CRITICAL):"
    # vLLM: "INFO 11-25 12:00:00 [...]", optionally after "(APIServer pid=1) "
    rb"|(?:\([\w ]+pid=\d+\) )?(?P<vllm>DEBUG|INFO|WARNING|ERROR|CRITICAL) \d{2}-\d{2} "
    # glog: "E1125 12:00:00.123456 1234 file.cc:12] ..."
    rb"|(?P<glog>[DIWEF])\d{4} \d{2}:\d{2}:\d{2}\.\d{6}"
    # llama.cpp with timestamps: "0.00.123.456 W ..."
    rb"|\d+\.\d{2}\.\d{3}\.\d{3} (?P<llama>[DIWE]) "
    # syslog priority prefix "<3>"
    rb"|<(?P<syslog>[0-7])>"
    # a timestamp, optional separators/pids/brackets, then the level word:
    # "2026-11-25 12:00:00,123 INFO x", "... - app - ERROR - x", "[...] [123] [INFO] x",
    # "2026-11-25T12:00:00Z  WARN crate: x", "[2026-11-25T12:00:00Z ERROR crate] x"
    rb"|" + _STAMP + rb"(?:\s+[-|]?\s*(?:\[\d+\]|[\w.\-\[\]]+(?: -)?))?\s+[-|]?\s*\[?"
    rb"(?P<stamped>TRACE|DEBUG|INFO|NOTICE|WARNING|WARN|ERROR|CRITICAL|FATAL|SEVERE)\b"
    # a bracketed level at the start: "[ERROR] x", "[WARN ] x"
    rb"|\[(?P<bracket>" + _NAME[1:-1] + rb")\s*\]"
    # "Error: x", "warning: x", "FATAL: x" at the start of the line
    rb"|(?P<word>(?i:error|warning|warn|fatal|critical|panic))(?::|!)\s"
    # llama.cpp/ggml without timestamps: "llama_model_load: error loading model"
    rb"|[\w.]+: (?P<func>error|warning|fatal)\b"
    rb")"
)
_LOGFMT = re.compile(rb'(?:^|\s)(?:level|lvl|severity|loglevel)=(?:"?)([A-Za-z]+)')
_JSON_KEYS = ("level", "levelname", "severity", "lvl", "log.level", "loglevel")
_TRACEBACK = b"Traceback (most recent call last):"
_CHAIN_MARKERS = (
    b"During handling of the above exception, another exception occurred:",
    b"The above exception was the direct cause of the following exception:",
)


def detect(line):
    """The level this line announces, or ``None`` when it announces none."""
    match = _ANCHORED.match(line)
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
    if group in ("glog", "llama"):
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


class LevelTracker:
    """Per-stream memory so continuation lines inherit the level of their entry."""

    def __init__(self):
        self.last_level = INFO
        self.in_traceback = False

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
