"""The log query language of ``GET /models/{name}/logs``: parse, run, render, follow.

Parameters (DESIGN §5): ``since``/``until`` (inclusive; RFC 3339, epoch
seconds or relative like ``10m``), ``level`` (``warning`` = warning and above,
or a range ``info..error``), ``stream`` (``stdout``, ``stderr``, ``modeld``,
``both`` = stdout and stderr; default all), ``grep`` (substring; ignores case
when the pattern is all lower-case), ``tail`` (the last N entries of the
window), ``limit`` (page size), ``cursor`` (from ``next_cursor``),
``follow=true``, ``format=json|text``, ``probes`` (``exclude``, the default: lines a
health probe of modeld caused are hidden; ``include``; ``only``).

A cursor is a position (a seq) in one generation of the log, so pages never
overlap or leave gaps, whatever rotates in between; a purge starts a new
generation and old cursors are refused.

A page is bounded in bytes as well as in entries: once its messages reach
``MAX_PAGE_BYTES`` it ends with ``has_more`` and a cursor (at least one entry
always comes back). ``limit=10000`` of 16 KiB lines was a 164 MB answer, and
eight at once took the daemon to 4.3 GB.
"""

import base64
import collections
import time

from lib.core import params as params_
from lib.core import timefmt
from lib.errors import ValidationError
from lib.logs import levels, store

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_TAIL = 1_000_000
MAX_GREP = 1024
SCAN_BUDGET_SECONDS = 2.0
MAX_PAGE_BYTES = 4 * 1024 * 1024
# What an entry costs in a JSON page beyond its message (seq, ts, stream, level, keys).
ENTRY_OVERHEAD_BYTES = 96
PARAMETERS = (
    "since",
    "until",
    "level",
    "stream",
    "grep",
    "tail",
    "limit",
    "cursor",
    "follow",
    "format",
    "probes",
)
PROBE_CHOICES = ("exclude", "include", "only")
STREAM_CHOICES = {
    "stdout": {"o"},
    "stderr": {"e"},
    "modeld": {"m"},
    "both": {"o", "e"},
    "all": {"o", "e", "m"},
}

LogQuery = collections.namedtuple(
    "LogQuery",
    "since until min_rank max_rank streams grep ignore_case tail limit cursor follow format probes",
)
Page = collections.namedtuple("Page", "entries next_seq has_more skipped")


def parse_log_query(params, now_us):
    """Validate query parameters (a mapping of str to str) into a ``LogQuery``."""
    for key, value in params.items():
        if key not in PARAMETERS:
            raise ValidationError(key, "unknown parameter (allowed: %s)" % ", ".join(PARAMETERS))
        if value == "":
            raise ValidationError(key, "must not be empty")
    since = params_.moment(params, "since", now_us)
    until = params_.moment(params, "until", now_us)
    if since is not None and until is not None and since > until:
        raise ValidationError("until", "is before since")
    min_rank, max_rank = _levels(params.get("level"))
    grep = params.get("grep")
    if grep is not None and (not grep or len(grep) > MAX_GREP or "\x00" in grep):
        raise ValidationError("grep", "must be 1 to %d characters" % MAX_GREP)
    ignore_case = grep is not None and grep == grep.lower()
    tail = params_.integer(params, "tail", 0, MAX_TAIL)
    limit = params_.integer(params, "limit", 1, MAX_LIMIT)
    if limit is None:
        limit = min(tail, MAX_LIMIT) if tail else DEFAULT_LIMIT
    return LogQuery(
        since=since,
        until=until,
        min_rank=min_rank,
        max_rank=max_rank,
        streams=_streams(params.get("stream")),
        grep=None if grep is None else grep.encode("utf-8"),
        ignore_case=ignore_case,
        tail=tail,
        limit=limit,
        cursor=decode_cursor(params["cursor"]) if params.get("cursor") else None,
        follow=params_.boolean(params, "follow"),
        format=params_.choice(params, "format", ("json", "text"), "json"),
        probes=params_.choice(params, "probes", PROBE_CHOICES, "exclude"),
    )


def _levels(text):
    if not text:
        return 0, len(levels.LEVELS) - 1
    low, separator, high = text.lower().partition("..")
    for part in (low, high) if separator else (low,):
        if part and part not in levels.RANK:
            raise ValidationError(
                "level", "unknown level %r (use %s)" % (part, ", ".join(levels.LEVELS))
            )
    min_rank = levels.RANK[low] if low else 0
    max_rank = levels.RANK[high] if separator and high else len(levels.LEVELS) - 1
    if min_rank > max_rank:
        raise ValidationError("level", "the range is empty")
    return min_rank, max_rank


def _streams(text):
    if not text:
        return STREAM_CHOICES["all"]
    chosen = set()
    for part in text.split(","):
        if part not in STREAM_CHOICES:
            raise ValidationError("stream", "must be stdout, stderr, modeld, both or all")
        chosen |= STREAM_CHOICES[part]
    return chosen


# -- cursors -------------------------------------------------------------------


def encode_cursor(log_id, seq):
    raw = ("v1:%s:%d" % (log_id, seq)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text):
    """``(log_id, seq)`` from a cursor, or a ValidationError naming ``cursor``."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        version, log_id, seq = raw.split(":")
        if version != "v1" or int(seq) < 1:
            raise ValueError
        return log_id, int(seq)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("cursor", "is not a cursor returned by this API") from None


# -- matching and rendering ----------------------------------------------------

_RANK_OF_CODE = {levels.CODE[level]: rank for level, rank in levels.RANK.items()}


def matcher(query):
    """A predicate on ``Entry`` for the level, stream and grep filters."""
    low, high, streams, grep = query.min_rank, query.max_rank, query.streams, query.grep
    all_levels = low == 0 and high == len(levels.LEVELS) - 1
    text_grep = grep.decode("utf-8") if grep is not None and not grep.isascii() else None
    probes = query.probes

    def matches(entry):
        if entry.stream not in streams:
            return False
        if entry.probe and probes == "exclude" or not entry.probe and probes == "only":
            return False
        if not all_levels and not low <= _RANK_OF_CODE.get(entry.level, 1) <= high:
            return False
        if grep is None:
            return True
        if text_grep is not None:
            msg = entry.msg.decode("utf-8", "replace")
            return text_grep in (msg.lower() if query.ignore_case else msg)
        return grep in (entry.msg.lower() if query.ignore_case else entry.msg)

    return matches


def entry_dict(entry):
    shown = {
        "seq": entry.seq,
        "ts": timefmt.format_us(entry.ts),
        "stream": store.STREAM_NAMES.get(entry.stream, entry.stream),
        "level": levels.FROM_CODE.get(entry.level, "info"),
        "msg": entry.msg.decode("utf-8", "replace"),
    }
    if entry.partial:
        shown["partial"] = True
    if entry.probe:
        shown["probe"] = True
    return shown


def entry_text(entry):
    """One line for ``format=text``: time, stream, level, message."""
    return "%s %-6s %-8s %s" % (
        timefmt.format_us(entry.ts),
        store.STREAM_NAMES.get(entry.stream, entry.stream),
        levels.FROM_CODE.get(entry.level, "info").upper(),
        entry.msg.decode("utf-8", "replace"),
    )


# -- running a query -----------------------------------------------------------


def start_seq(reader, query):
    """Where the window begins: the cursor, else ``since``, else the oldest entry."""
    log_id = reader.log_id()
    if query.cursor is not None:
        if log_id is not None and query.cursor[0] != log_id:
            raise ValidationError("cursor", "belongs to an earlier log of this model (purged)")
        start = query.cursor[1]
    else:
        start = reader.first_seq() or 1
    if query.since is not None:
        at = reader.seq_at_ts(query.since)
        start = max(start, at if at is not None else reader.next_seq())
    return start


def run_query(reader, query, clock=time.monotonic):
    """One page of entries for a (non-follow) query."""
    start = start_seq(reader, query)
    if query.tail == 0:  # the last 0 entries: none (not "no tail": that is None)
        return Page([], max(reader.next_seq(), start), False, 0)
    if query.tail:
        return _tail_page(reader, query, start)
    return _forward_page(reader, query, start, clock)


def _window_end(reader, query):
    """The first seq after the window (``None``: the window runs to the newest entry)."""
    if query.until is None:
        return None
    return reader.seq_at_ts(query.until + 1)


def _tail_page(reader, query, start):
    """The oldest entries of the last ``tail`` matches that fit in a page.

    Walking backwards, the newest entries kept are let go as older ones arrive once the
    page is full (``limit`` entries or ``MAX_PAGE_BYTES``): memory stays bounded by one
    page, and the rest comes with the cursor.
    """
    end = _window_end(reader, query)
    matches = matcher(query)
    found, oldest_first, size, cut = 0, collections.deque(), 0, False
    newest = None
    for entry in reader.backward(end):
        if entry.seq < start:
            break
        if newest is None:
            newest = entry.seq
        if matches(entry):
            found += 1
            oldest_first.appendleft(entry)
            size += _cost(entry)
            while len(oldest_first) > query.limit or (
                size > MAX_PAGE_BYTES and len(oldest_first) > 1
            ):
                size -= _cost(oldest_first.pop())
                cut = True
            if found >= query.tail:
                break
    entries = list(oldest_first)
    if cut:
        return Page(entries, entries[-1].seq + 1, True, 0)
    next_seq = end if end is not None else (newest + 1 if newest is not None else start)
    return Page(entries, max(next_seq, start), False, 0)


def _cost(entry):
    return len(entry.msg) + ENTRY_OVERHEAD_BYTES


def _forward_page(reader, query, start, clock):
    matches = matcher(query)
    skipped = []
    entries, next_seq, has_more, size = [], start, False, 0
    deadline = clock() + SCAN_BUDGET_SECONDS
    for scanned, entry in enumerate(reader.forward(start, on_skip=skipped.append)):
        if query.until is not None and entry.ts > query.until:
            break
        next_seq = entry.seq + 1
        if matches(entry):
            entries.append(entry)
            size += _cost(entry)
            if len(entries) >= query.limit or size >= MAX_PAGE_BYTES:
                has_more = True
                break
        if scanned % 4096 == 4095 and clock() > deadline:
            has_more = True  # a sparse filter over a huge log: hand back a cursor, not a stall
            break
    return Page(entries, next_seq, has_more, sum(skipped))


def follow(
    reader, query, start, should_stop, model_done, poll=0.1, heartbeat=5.0, sleep=time.sleep
):
    """Yield matching entries as they are written, ``None`` as a heartbeat when idle.

    Ends when ``should_stop()`` (the server is stopping), when the model is done
    and everything it wrote was sent, or when the window's ``until`` has passed.
    """
    matches = matcher(query)
    seq, idle_since = start, time.monotonic()
    while not should_stop():
        done = model_done()  # read before the entries, so none written before "done" is missed
        progressed = False
        for entry in reader.forward(seq):
            if query.until is not None and entry.ts > query.until:
                return
            seq = entry.seq + 1
            progressed = True
            if matches(entry):
                idle_since = time.monotonic()
                yield entry
        if done and not progressed:
            return
        if query.until is not None and timefmt.now_us() > query.until:
            return
        if time.monotonic() - idle_since >= heartbeat:
            idle_since = time.monotonic()
            yield None
        if not progressed:
            sleep(poll)
