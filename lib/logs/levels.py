"""Log level detection: which of debug/info/warning/error/critical a raw line carries.

Works on bytes (the monitor never decodes a model's output). ``detect(line)``
looks at one line alone; ``lib.logs.records.LevelTracker`` adds what needs the
previous lines of the same stream (continuations, tracebacks, dumps).

Formats recognized (real sample lines in tests/test_levels.py, and the real-output
corpus in tests/data/server_output/):
Python logging (``WARNING:root:``, ``2026-11-25 12:00:00,123 ERROR ...``,
``... - name - INFO - ...``), uvicorn (``INFO:     ...``), vLLM
(``INFO 11-25 12:00:00 [file.py:1] ...``, with an optional ``(APIServer pid=1)``
prefix), llama.cpp (``0.00.123.456 W ...``, ``E main: ...`` and
``func: error ...``), glog (``E1125 12:00:00.123456 ...``), MLflow
(``2026/11/25 12:00:00 INFO ...``), logfmt (``level=error``), JSON lines with a
``level``/``levelname``/``severity`` field (names or pino/bunyan numbers),
syslog ``<3>`` prefixes, gunicorn/log4j/BentoML/Rust ``[ERROR]``-style brackets,
LitServe (``... - MainProcess[12] - litserve.server - ERROR - file:line - ...``), Ray
(``...,924\tINFO``, ``SUCC``, ``INFO 2026-11-27 02:26:41,285 proxy ...``), Triton's
ISO 8601 glog (``2026-11-27T02:31:09Z E 1 file.cc:1]``), uvicorn's ``TRACE:``. Lines with a
level but no header: Python warnings (``app.py:15: UserWarning: ...``), ``bash: ...``,
``Error: ...``, llama.cpp's ``func: failed to ...``. A process prefix (Ray's
``(ServeReplica:app:Dep pid=12) ``, vLLM's ``(APIServer pid=1) ``) and ANSI colours are
skipped for detection; the stored message keeps them.
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
    b"succ": INFO,
}
_LETTERS = {b"D": DEBUG, b"I": INFO, b"W": WARNING, b"E": ERROR, b"F": CRITICAL, b"C": CRITICAL}
_SYSLOG = [CRITICAL, CRITICAL, CRITICAL, ERROR, WARNING, INFO, INFO, DEBUG]

_NAME = rb"(?:TRACE|DEBUG|INFO|NOTICE|WARNING|WARN|ERROR|CRITICAL|FATAL|SEVERE|SUCC)"
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
# Groups named ``weak_*`` recognize a line that has a level but no logging header
# (a Python warning, a shell error, ``Error: ...``): inside a block that is being
# dumped (TGI's shard output), such a line continues the block instead of starting one.
_ANCHORED_PATTERNS = (
    # Python logging's default format and uvicorn: "WARNING:root:..." / "INFO:     ..." / "TRACE:"
    (b"DIWECT", rb"(?P<colon>" + _LOGGING + rb"|TRACE):"),
    # vLLM: "INFO 11-25 12:00:00 [...]"; Ray Serve: "INFO 2026-11-27 02:26:41,285 proxy ..."
    (b"DIWEC", rb"(?P<vllm>" + _LOGGING + rb") (?:\d{2}|\d{4}-\d{2})-\d{2} "),
    # glog: "E1125 12:00:00.123456 1234 file.cc:12] ..." (glog 0.7 adds the year)
    (b"DIWEF", rb"(?P<glog>[DIWEF])(?:\d{4})?\d{4} \d{2}:\d{2}:\d{2}\.\d{6}"),
    # Triton's ISO 8601 option: "2026-11-27T02:31:09Z E 1 model_lifecycle.cc:654] ..."
    (_DIGITS, rb"\d{4}-\d{2}-\d{2}T[\d:.]+Z (?P<iso_letter>[DIWEF]) \d+ "),
    # llama.cpp's log prefix, with or without its timestamp: "0.00.123.456 W load: ..."
    (_DIGITS, rb"\d{1,4}\.\d{2}\.\d{3}\.\d{3} (?P<llama>[DIWE]) "),
    (b"DIWE", rb"(?P<llama_bare>[DIWE]) (?=[\w.]+: )"),
    # syslog priority prefix "<3>"
    (b"<", rb"<(?P<syslog>[0-7])>"),
    # a timestamp, optional separators/pids/brackets, then the level word:
    # "2026-11-25 12:00:00,123 INFO x", "... - app - ERROR - x", "[...] [123] [INFO] x",
    # "2026-11-25T12:00:00Z  WARN crate: x", "[2026-11-25T12:00:00Z ERROR crate] x",
    # LitServe's "... - MainProcess[9468] - litserve.server - ERROR - ..."
    (
        _DIGITS + b"[",
        _STAMP + rb"(?:\s+[-|]?\s*(?:\[\d+\]|[\w.\-\[\]]+(?: -)?)){0,2}\s+[-|]?\s*\["
        rb"?(?P<stamped>" + _NAME + rb")\b",
    ),
    # a bracketed level at the start: "[ERROR] x", "[WARN ] x"
    (b"[", rb"\[(?P<bracket>" + _NAME + rb")\s*\]"),
    # Python's warnings module: "/srv/app.py:15: UserWarning: ..." (the source line follows)
    (
        _LETTERS_ + b"/.<",
        rb"[^\s:]*\.py:\d+: (?P<weak_warning>\w*Warning): ",
    ),
    # "Error: x", "warning: x", "FATAL: x" at the start of the line (click's errors)
    (b"EeWwFfCcPp", rb"(?P<weak_word>(?i:error|warning|warn|fatal|critical|panic))(?::|!)\s"),
    # a shell that could not run the command: "bash: line 1: exec: uvicorn: not found"
    (b"bdsz", rb"(?:ba|da|z)?sh: (?P<weak_shell>)"),
    # llama.cpp/ggml without prefixes: "llama_model_load: error loading model",
    # "gguf_init_from_file: failed to open ...", "srv    send_error: task id = 1, error: ..."
    (_LETTERS_, rb"[A-Za-z_][\w.]*: (?P<weak_func>error|warning|fatal)\b"),
    (
        b"gsmlc",
        rb"(?:(?:srv|slot)\s+)?(?:main|[a-z]+_\w+): (?=.*?\b(?:failed to|error)\b)"
        rb"(?P<weak_llama_error>)",
    ),
    # Ray's warnings printed without a header by its workers and raylet
    (b"U", rb"User exception type .* can't be subclassed!(?P<weak_ray_warning>)"),
    (b"T", rb"Task \S+ failed\. There are .* retries remaining(?P<weak_ray_retry>)"),
)

_WEAK_LEVELS = {
    "weak_warning": WARNING,
    "weak_shell": ERROR,
    "weak_llama_error": ERROR,
    "weak_ray_warning": WARNING,
    "weak_ray_retry": WARNING,
}


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
_ANSI = re.compile(rb"\x1b\[[0-9;]*m")
_PROCESS_PREFIX = re.compile(
    rb"\(([\w:.\-]+(?: \w+=[\w.]+,?)* pid=\d+(?:, ?ip=[\w.:]+)?"
    rb"|raylet|autoscaler|gcs_server|monitor|dashboard)\) "
)


def detect(line):
    """The level this line announces, or ``None`` when it announces none."""
    return classify(line)[0]


def classify(line):
    """``(level, header)``: the level this line announces (or ``None``), and whether it
    announces it with a logging header (``False`` for a Python warning, ``Error: ...``, ...)."""
    if b"\x1b" in line:
        line = strip_ansi(line)  # colored output (uvicorn, llama.cpp, Ray on a terminal)
    if line[:1] == b"(":
        line = split_process_prefix(line)[1]
    matcher = _MATCH_BY_FIRST.get(line[:1])
    match = matcher(line) if matcher is not None else None
    if match is not None:
        return _from_match(match), not match.lastgroup.startswith("weak_")
    if b"=" in line:
        found = _LOGFMT.search(line)
        if found is not None:
            return _WORDS.get(found.group(1).lower()), True
    if line[:1] == b"{":
        level = _from_json(line)
        return level, level is not None
    return None, False


def split_process_prefix(line):
    """``(prefix, rest)`` for a line that names the process that wrote it, as Ray
    (``(ServeReplica:app:Dep pid=12) ``, ``(raylet) ``) and vLLM (``(APIServer pid=1) ``)
    put before each line of their processes; ``(None, line)`` for any other line."""
    found = _PROCESS_PREFIX.match(line)
    if found is None:
        return None, line
    return found.group(1), line[found.end() :]


def strip_ansi(line):
    """``line`` without its ANSI SGR codes (detection only: stored messages keep them)."""
    return _ANSI.sub(b"", line)


def _from_match(match):
    group = match.lastgroup
    value = match.group(group)
    if group in ("glog", "llama", "llama_bare", "iso_letter"):
        return _LETTERS[value]
    if group == "syslog":
        return _SYSLOG[int(value)]
    if group in _WEAK_LEVELS:
        return _WEAK_LEVELS[group]
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
