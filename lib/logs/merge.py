"""``GET /logs``: the log query language over every model at once, merged by time.

Each model's log is queried as ``lib.logs.query`` does for one model; the
streams are merged by ``(ts, model, seq)``, so the order is total and the same
on every call. A cursor holds one position per model (its log generation and
the next seq to read), so a page never repeats or skips an entry of any model,
whatever the others do; it is JSON, deflated and base64url-encoded to stay
short at 100 models. A model missing from a cursor (deployed since) is read
from its beginning (or ``since``); a purged one is read from its new beginning.
"""

import base64
import collections
import heapq
import json
import time
import zlib

from lib.errors import ValidationError
from lib.logs import query as logquery

SCAN_BUDGET_SECONDS = logquery.SCAN_BUDGET_SECONDS

Tagged = collections.namedtuple("Tagged", "model entry")
MergedPage = collections.namedtuple("MergedPage", "entries positions has_more")


def encode_cursor(positions):
    """``positions``: ``{model: (log_id, next_seq)}`` -> an opaque string."""
    raw = json.dumps({"v": 2, "p": positions}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(zlib.compress(raw.encode(), 9)).decode().rstrip("=")


def decode_cursor(text):
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        body = json.loads(raw)
        if body.get("v") != 2:
            raise ValueError
        return {str(name): (str(pos[0]), int(pos[1])) for name, pos in body["p"].items()}
    except (ValueError, TypeError, KeyError, IndexError, zlib.error, AttributeError):
        raise ValidationError("cursor", "is not a cursor returned by GET /logs") from None


def parse(params, now_us):
    """A ``LogQuery`` whose ``cursor`` is a dict of positions (or ``None``)."""
    params = dict(params)
    cursor = params.pop("cursor", None)
    log_query = logquery.parse_log_query(params, now_us)
    return log_query._replace(cursor=decode_cursor(cursor) if cursor else None)


def start_positions(readers, query):
    """Where each model's window begins: ``{model: seq}``."""
    starts = {}
    for name, reader in readers.items():
        own = None
        if query.cursor and name in query.cursor:
            log_id, seq = query.cursor[name]
            if log_id == (reader.log_id() or "none"):
                own = (log_id, seq)
        starts[name] = logquery.start_seq(reader, query._replace(cursor=own))
    return starts


def run(readers, query, clock=time.monotonic):
    """One page across ``readers`` (``{model: LogReader}``)."""
    starts = start_positions(readers, query)
    if query.tail:
        return _tail_page(readers, query, starts)
    return _forward_page(readers, query, starts, clock)


def _positions(readers, next_seqs):
    return {name: (readers[name].log_id() or "none", seq) for name, seq in next_seqs.items()}


def _window_ends(readers, query):
    """The first seq after each model's window, fixed before reading (no race with writers)."""
    ends = {}
    for name, reader in readers.items():
        end = reader.seq_at_ts(query.until + 1) if query.until is not None else None
        ends[name] = end if end is not None else reader.next_seq()
    return ends


def _matching_forward(name, reader, query, start, end, cut, deadline, clock):
    matches = logquery.matcher(query)
    for scanned, entry in enumerate(reader.forward(start)):
        if entry.seq >= end:
            return
        if matches(entry):
            yield (entry.ts, name, entry.seq), Tagged(name, entry)
        if scanned % 4096 == 4095 and clock() > deadline:
            cut.add(name)  # a sparse filter over a huge log: a cursor, not a stall
            return


def _forward_page(readers, query, starts, clock):
    deadline = clock() + SCAN_BUDGET_SECONDS
    ends, cut = _window_ends(readers, query), set()
    streams = [
        _matching_forward(name, reader, query, starts[name], ends[name], cut, deadline, clock)
        for name, reader in readers.items()
    ]
    next_seqs = dict(starts)
    entries, has_more = [], False
    for _, tagged in heapq.merge(*streams, key=lambda pair: pair[0]):
        if len(entries) >= query.limit:
            has_more = True
            break
        entries.append(tagged)
        next_seqs[tagged.model] = tagged.entry.seq + 1
    if not has_more and not cut:
        # Every window was read to its end: each model goes on from there.
        for name in readers:
            next_seqs[name] = max(next_seqs[name], ends[name])
    return MergedPage(entries, _positions(readers, next_seqs), has_more or bool(cut))


def _tail_page(readers, query, starts):
    matches = logquery.matcher(query)
    ends = _window_ends(readers, query)
    candidates = []
    for name, reader in readers.items():
        found = 0
        for entry in reader.backward(ends[name]):
            if entry.seq < starts[name] or found >= query.tail:
                break
            if matches(entry):
                found += 1
                candidates.append(Tagged(name, entry))
    candidates.sort(key=lambda tagged: (tagged.entry.ts, tagged.model, tagged.entry.seq))
    window = candidates[-query.tail :]
    shown = window[: query.limit]
    next_seqs = {name: max(starts[name], ends[name]) for name in readers}
    if len(window) > len(shown):
        # The rest of the tail comes next: each model resumes at its first entry not shown.
        for tagged in reversed(window[len(shown) :]):
            next_seqs[tagged.model] = tagged.entry.seq
    for tagged in shown:
        next_seqs[tagged.model] = max(next_seqs[tagged.model], tagged.entry.seq + 1)
    return MergedPage(shown, _positions(readers, next_seqs), len(window) > len(shown))


def follow(readers_of, query, starts, should_stop, poll=0.25, heartbeat=5.0, sleep=time.sleep):
    """Yield ``Tagged`` entries of every model as they are written, ``None`` when idle.

    ``readers_of()`` gives the current ``{model: LogReader}`` (models come and go);
    ``starts`` the first seq of each model known now (new models start at 1).
    """
    matches = logquery.matcher(query)
    positions = dict(starts)
    idle_since = time.monotonic()
    while not should_stop():
        fresh = []
        for name, reader in readers_of().items():
            seq = positions.get(name, 1)
            for entry in reader.forward(seq):
                seq = entry.seq + 1
                if matches(entry):
                    fresh.append(Tagged(name, entry))
            positions[name] = seq
        fresh.sort(key=lambda tagged: (tagged.entry.ts, tagged.model, tagged.entry.seq))
        yield from fresh
        if fresh:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= heartbeat:
            idle_since = time.monotonic()
            yield None
        if not fresh:
            sleep(poll)


def entry_dict(tagged):
    shown = logquery.entry_dict(tagged.entry)
    shown["model"] = tagged.model
    return shown


def entry_text(tagged):
    return "%s %s" % (tagged.model, logquery.entry_text(tagged.entry))
