"""Levels over the real-output corpus (tests/data/server_output/): every line as a person
labelled it, per server, with the share printed (``pytest -s``) and 100% required."""

import json
import os

import pytest

from lib.logs import levels, records

CORPUS = os.path.join(os.path.dirname(__file__), "data", "server_output")
SERVERS = sorted(name[:-6] for name in os.listdir(CORPUS) if name.endswith(".jsonl"))


def corpus_lines(server):
    with open(os.path.join(CORPUS, server + ".jsonl"), encoding="utf-8") as handle:
        return [json.loads(raw) for raw in handle]


def stored_form(record):
    """The line as the monitor's splitter hands it over: bytes, a trailing CR removed."""
    line = record["line"].encode()
    return line[:-1] if line.endswith(b"\r") else line


def classify_one_by_one(records_of_run):
    trackers = {}
    for record in records_of_run:
        tracker = trackers.setdefault(record["stream"], records.LevelTracker())
        yield tracker.level_of(stored_form(record))


def classify_in_batches(records_of_run, size):
    """The capture's hot path: ``codes_of`` over consecutive lines of one stream."""
    trackers, out, pending = {}, [], []

    def flush():
        if pending:
            stream = pending[0]["stream"]
            tracker = trackers.setdefault(stream, records.LevelTracker())
            codes = tracker.codes_of([stored_form(record) for record in pending])
            out.extend(levels.FROM_CODE[code.decode()] for code in codes)
            pending.clear()

    for record in records_of_run:
        if pending and (record["stream"] != pending[0]["stream"] or len(pending) >= size):
            flush()
        pending.append(record)
    flush()
    return out


@pytest.mark.parametrize("server", SERVERS)
def test_every_corpus_line_gets_the_level_a_person_gave_it(server):
    lines = corpus_lines(server)
    got = classify_in_batches(lines, 64)
    wrong = [
        (record["scenario"], record["level"], level, record["line"][:120])
        for record, level in zip(lines, got)
        if level != record["level"]
    ]
    share = 100.0 * (len(lines) - len(wrong)) / len(lines)
    print("\n%-14s %4d lines, %5.1f%% classified as labelled" % (server, len(lines), share))
    assert not wrong, "%s: %.1f%%; first misses: %r" % (server, share, wrong[:5])


@pytest.mark.parametrize("server", SERVERS)
def test_the_batched_hot_path_equals_line_by_line(server):
    lines = corpus_lines(server)
    assert classify_in_batches(lines, 7) == list(classify_one_by_one(lines))


def test_ansi_codes_are_ignored_for_detection_only():
    colored = b"\x1b[31mERROR\x1b[0m:    Exception in ASGI application \x1b[1mbold\x1b[0m"
    assert levels.detect(colored) == "error"
    ray = b"\x1b[36m(ServeReplica:default:Dummy pid=7)\x1b[0m WARNING 2026-11-27 02:32:52,577 x"
    assert levels.detect(ray) == "warning"
