"""A model's state changes, one JSON object a line in ``events.jsonl``.

This module owns the event line format, part of the daemon<->monitor protocol
(``lib.core.protocol`` owns the other files): ``record`` encodes a line, ``read``
and ``newest`` decode them; no other module spells its keys. The monitor is
the only writer (``append``); the daemon reads for ``GET /models/{name}/events``
and ``GET /events``. The file is rotated once it passes 1 MiB, keeping one
predecessor (``events.jsonl.1``).
"""

import json
import os

from lib.core import timefmt, vocabulary

MAX_BYTES = 1 << 20


def record(name, event):
    """The stored form of a ``lifecycle.Event`` (its time in seconds)."""
    exit_info = None
    if event.exit:
        exit_info = {key: event.exit.get(key) for key in ("code", "signal", "reason")}
    return {
        "at": timefmt.format_us(int(event.at * 1_000_000)),
        "model": name,
        "from": event.old,
        "to": event.new,
        "reason": event.reason,
        "exit": exit_info,
        "cause": event.cause,
    }


def level(event):
    """How loud the event's line in the model's log is."""
    if event.new == vocabulary.FAILED:
        return "error"
    if event.new == vocabulary.BACKOFF or event.reason and "unhealthy" in event.reason:
        return "warning"
    return "info"


def append(path, name, events, extra=None, warn=None):
    """Add ``events`` (``extra``: more fields for the last one); a full disk is told to
    ``warn(message)``, never raised (the model must go on)."""
    if not events:
        return
    records = [record(name, event) for event in events]
    records[-1].update(extra or {})
    lines = "".join(json.dumps(each, sort_keys=True) + "\n" for each in records)
    try:
        if os.path.getsize(path) > MAX_BYTES:
            os.replace(path, path + ".1")
    except FileNotFoundError:
        pass  # the first event of this model
    try:
        with open(path, "a") as handle:
            handle.write(lines)
    except OSError as error:
        if warn is not None:
            warn("cannot append events to %s: %s" % (path, error))


def read(path, since=None):
    """The events of one model, oldest first, at or after ``since`` (microseconds)."""
    found = []
    for candidate in (path + ".1", path):
        try:
            with open(candidate) as handle:
                lines = handle.readlines()
        except FileNotFoundError:
            continue
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a torn last line from a crash
            if since is None or timefmt.parse_rfc3339(event["at"]) >= since:
                found.append(event)
    return found
