"""What a run's output says went wrong: its error blocks and a reason found in their text.

Pure functions over log entries (``lib.logs.store.Entry``), and one reader that
loads a run's entries from the store within a byte bound. Used by the monitor
when a model exits or fails its probe (``lib.monitor.forensics`` puts the signal
and the run's phase first) and by the daemon when a ``?wait=true`` deploy times
out ("the reason so far").

An *error block* is a run of consecutive entries of one stream at error level or
above: a logged error with its traceback, or a bare traceback (the level tracker
gives continuation lines their record's level). modeld's own lines (stream
``modeld``) and lines a probe caused are never part of the evidence.
"""

import re

from lib.core import vocabulary
from lib.logs import levels, store
from lib.logs.reader import LogReader

# How much of a run is read back: its start (where the first error usually is) and its end.
HEAD_BYTES = 2 << 20
TAIL_BYTES = 256 << 10
FIRST_ERROR_LINES = 30
FIRST_ERROR_BYTES = 4096
LINE_CHARS = 1000
LAST_LINES = 20
# After the model was ready, only this many of the last lines may explain an exit:
# an error a request caused an hour ago does not explain a crash now.
TAIL_EVIDENCE = 60

_ERROR_CODES = frozenset({levels.CODE[levels.ERROR], levels.CODE[levels.CRITICAL]})
_OWN = store.STREAM_CODES["modeld"]

# Most specific first: a CUDA OOM traceback also mentions files and modules.
PATTERNS = (
    (
        vocabulary.REASON_CUDA_OUT_OF_MEMORY,
        re.compile(
            r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory|"
            r"cudaMalloc failed|CUBLAS_STATUS_ALLOC_FAILED|"
            r"(?:ggml|cuda|gpu)\w*:? .*out of memory|failed to allocate .*(?:CUDA|GPU)",
            re.IGNORECASE,
        ),
    ),
    (
        vocabulary.REASON_PORT_IN_USE,
        re.compile(
            r"address already in use|EADDRINUSE|error while attempting to bind|"
            r"couldn'?t bind|could not bind|port \d+ is (?:already )?in use|bind\(\) failed|"
            r"Connection in use",
            re.IGNORECASE,
        ),
    ),
    (
        vocabulary.REASON_IMPORT_ERROR,
        re.compile(
            r"ModuleNotFoundError|ImportError|No module named |"
            r"Error loading ASGI app|Could not import module|Failed to find attribute"
        ),
    ),
    (
        # A shell run by the server could not find a program (MLflow execs uvicorn via bash).
        vocabulary.REASON_EXECUTABLE_NOT_FOUND,
        re.compile(
            r"^(?:ba|da|z)?sh: (?:line \d+: |\d+: )?(?:exec: )?\S+: (?:command )?not found",
            re.MULTILINE,
        ),
    ),
    (
        vocabulary.REASON_MODEL_FILE_MISSING,
        re.compile(
            r"FileNotFoundError|No such file or directory|does not exist|"
            r"failed to load model|error loading model|Repository Not Found|"
            r"HFValidationError|is not a directory|does not appear to have a file|"
            r"could not be found|No such artifact|failed to open GGUF|not found in model store",
            re.IGNORECASE,
        ),
    ),
    (
        vocabulary.REASON_PERMISSION_DENIED,
        re.compile(r"Permission denied|PermissionError", re.IGNORECASE),
    ),
)


def read_run(directory, first_seq, head_bytes=HEAD_BYTES, tail_bytes=TAIL_BYTES):
    """Entries of a run (seq >= ``first_seq``): its first ``head_bytes`` and last ``tail_bytes``.

    Oldest first, without duplicates; a very long run loses its middle, never its
    start (the first error) or its end (what preceded the exit).
    """
    log = LogReader(directory)
    head, size = [], 0
    for entry in log.forward(first_seq):
        size += len(entry.msg) + 40
        if size > head_bytes:
            break
        head.append(entry)
    else:
        return head
    tail, size = [], 0
    last_head = head[-1].seq if head else first_seq - 1
    for entry in log.backward(None):
        size += len(entry.msg) + 40
        if entry.seq <= last_head or size > tail_bytes:
            break
        tail.append(entry)
    return head + tail[::-1]


def evidence(entries):
    """The model's own lines: modeld's notes and probe-caused lines left out."""
    return [e for e in entries if e.stream != _OWN and not getattr(e, "probe", False)]


def error_blocks(entries):
    """Lists of consecutive error-level entries of one stream, in order of their start."""
    blocks, open_by_stream = [], {}
    for entry in evidence(entries):
        if entry.level in _ERROR_CODES:
            block = open_by_stream.get(entry.stream)
            if block is None:
                block = open_by_stream[entry.stream] = []
                blocks.append(block)
            block.append(entry)
        else:
            open_by_stream.pop(entry.stream, None)
    return blocks


def first_error(entries):
    """The first error block as text lines, bounded (``FIRST_ERROR_*``); ``[]`` if none."""
    blocks = error_blocks(entries)
    return bounded_text(blocks[0]) if blocks else []


def bounded_text(block):
    """A block as text lines within the bounds; a long one keeps its start and its end
    (a traceback's last lines name the exception), with a line saying what was left out."""
    if len(block) > FIRST_ERROR_LINES:
        keep_head = 5
        keep_tail = FIRST_ERROR_LINES - keep_head - 1
        head, tail = _texts(block[:keep_head]), _texts(block[-keep_tail:])
        left_out = len(block) - keep_head - keep_tail
        return head + ["... (%d lines left out)" % left_out] + tail
    return _texts(block)


def _texts(block):
    lines, size = [], 0
    for entry in block:
        text = entry.msg.decode("utf-8", "replace")[:LINE_CHARS]
        size += len(text) + 1
        if size > FIRST_ERROR_BYTES:
            break
        lines.append(text)
    return lines


def last_lines(entries, count=LAST_LINES):
    """The last ``count`` lines of the model (probe-caused lines skipped), as text."""
    own = evidence(entries)[-count:]
    return [entry.msg.decode("utf-8", "replace") for entry in own]


def text_reason(entries, latest_first=False):
    """``(reason, block)`` from the output's text, or ``(None, None)``.

    Error blocks are tried in order (the first one first, or the latest first
    after the model was ready); then, if no block names a reason, the plain text
    (the whole run, or its last ``TAIL_EVIDENCE`` lines after ready).
    """
    blocks = error_blocks(entries)
    if latest_first:
        blocks = [b for b in reversed(blocks) if b[-1].seq >= _tail_start(entries)]
    for block in blocks:
        reason = reason_in(_text(block))
        if reason is not None:
            return reason, block
    plain = evidence(entries)
    if latest_first:
        plain = plain[-TAIL_EVIDENCE:]
    reason = reason_in(_text(plain))
    return (reason, None) if reason is not None else (None, None)


def reason_in(text):
    """The first reason whose pattern occurs in ``text``, or ``None``."""
    for reason, pattern in PATTERNS:
        if pattern.search(text):
            return reason
    return None


def _tail_start(entries):
    own = evidence(entries)
    return own[-TAIL_EVIDENCE].seq if len(own) > TAIL_EVIDENCE else 0


def _text(entries):
    return "\n".join(entry.msg.decode("utf-8", "replace") for entry in entries)
