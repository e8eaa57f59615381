"""The log store and its query language, after Docker's logger conformance tests.

Written with the real writer and read with the real reader; only the clock is
controlled, so every window and ordering is exact.
"""

import errno
import os

import pytest

from lib.errors import ValidationError
from lib.logs import query as logquery
from lib.logs import reader as logread
from lib.logs import store as logstore

LEVELS = "diwec"


class Clock:
    def __init__(self, start=1_700_000_000_000_000):
        self.now = start

    def __call__(self):
        return self.now


def write(writer, count, clock=None, step=1000, stream="o", level="i", text="line"):
    """``count`` entries, one per call (so one ts each), ``step`` µs apart."""
    for number in range(count):
        if clock is not None:
            clock.now += step
        writer.append([(stream, level, False, b"%s %d" % (text.encode(), number))])


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    directory = str(tmp_path / "logs")
    writer = logstore.LogWriter(directory, 4096, 1000, clock)
    yield writer, logread.LogReader(directory)
    writer.close()


def query(reader, **params):
    parsed = logquery.parse_log_query({k: str(v) for k, v in params.items()}, 2_000_000_000_000_000)
    return logquery.run_query(reader, parsed)


def messages(page):
    return [entry.msg.decode() for entry in page.entries]


# -- tail ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tail, expected", [(5, 5), (20, 20), (50, 20)], ids=["fewer", "exact", "more"]
)
def test_tail(store, clock, tail, expected):
    writer, reader = store
    write(writer, 20, clock)
    page = query(reader, tail=tail)
    assert messages(page) == ["line %d" % n for n in range(20 - expected, 20)]
    assert page.has_more is False


def test_tail_zero_and_empty_log(store):
    writer, reader = store
    assert query(reader, tail=3).entries == []
    assert query(reader).entries == []


def test_tail_with_a_filter_counts_matches_only(store, clock):
    writer, reader = store
    for number in range(30):
        clock.now += 1
        level = "e" if number % 3 == 0 else "i"
        writer.append([("o", level, False, b"n%d" % number)])
    page = query(reader, tail=4, level="error")
    assert messages(page) == ["n18", "n21", "n24", "n27"]


def test_tail_larger_than_a_page_continues_with_the_cursor(store, clock):
    writer, reader = store
    write(writer, 50, clock)
    first = query(reader, tail=30, limit=10)
    assert messages(first) == ["line %d" % n for n in range(20, 30)] and first.has_more
    cursor = logquery.encode_cursor(reader.log_id(), first.next_seq)
    second = query(reader, cursor=cursor, limit=10)
    assert messages(second) == ["line %d" % n for n in range(30, 40)]


# -- time windows ----------------------------------------------------------------


def test_since_until_and_both_are_inclusive(store, clock):
    writer, reader = store
    write(writer, 100, clock, step=1_000_000)  # one entry a second
    entries = list(reader.forward(1))
    t = [entry.ts for entry in entries]
    since = query(reader, since="%f" % (t[90] / 1e6), limit=1000)
    assert messages(since) == ["line %d" % n for n in range(90, 100)]
    until = query(reader, until="%f" % (t[9] / 1e6), limit=1000)
    assert messages(until) == ["line %d" % n for n in range(0, 10)]
    both = query(reader, since="%f" % (t[40] / 1e6), until="%f" % (t[44] / 1e6))
    assert messages(both) == ["line %d" % n for n in range(40, 45)]
    both_tail = query(reader, since="%f" % (t[40] / 1e6), until="%f" % (t[44] / 1e6), tail=2)
    assert messages(both_tail) == ["line 43", "line 44"]


def test_since_accepts_rfc3339_and_relative_times(store, clock):
    writer, reader = store
    write(writer, 10, clock, step=60_000_000)  # one a minute
    from lib.core import timefmt

    last = list(reader.backward(None))[0].ts
    text = timefmt.format_us(last - 120_000_000)
    assert messages(query(reader, since=text)) == ["line 7", "line 8", "line 9"]
    relative = logquery.parse_log_query({"since": "2m"}, last)
    assert relative.since == last - 120_000_000


def test_an_empty_window(store, clock):
    writer, reader = store
    write(writer, 10, clock)
    assert query(reader, since=str(clock.now / 1e6 + 100)).entries == []


# -- filters -----------------------------------------------------------------------


def mixed(writer, clock):
    for number in range(50):
        clock.now += 10
        writer.append([("oe"[number % 2], LEVELS[number % 5], False, b"Msg %d" % number)])


@pytest.mark.parametrize(
    "level, kept",
    [
        ("warning", {"w", "e", "c"}),
        ("error", {"e", "c"}),
        ("info..error", {"i", "w", "e"}),
        ("..info", {"d", "i"}),
        ("critical..", {"c"}),
    ],
)
def test_level_filters(store, clock, level, kept):
    writer, reader = store
    mixed(writer, clock)
    page = query(reader, level=level, limit=1000)
    assert {entry.level for entry in page.entries} == kept
    assert len(page.entries) == 10 * len(kept)


@pytest.mark.parametrize(
    "stream, kept", [("stdout", {"o"}), ("stderr", {"e"}), ("both", {"o", "e"})]
)
def test_stream_filter(store, clock, stream, kept):
    writer, reader = store
    mixed(writer, clock)
    writer.append([("m", "i", False, b"modeld note")])
    page = query(reader, stream=stream, limit=1000)
    assert {entry.stream for entry in page.entries} == kept
    assert len(query(reader, limit=1000).entries) == 51


def test_grep_is_smart_case(store, clock):
    writer, reader = store
    for text in (b"CUDA out of memory", b"cuda ok", b"nothing", "Über größe".encode()):
        clock.now += 1
        writer.append([("o", "i", False, text)])
    assert messages(query(reader, grep="cuda")) == ["CUDA out of memory", "cuda ok"]
    assert messages(query(reader, grep="CUDA")) == ["CUDA out of memory"]
    assert messages(query(reader, grep="größe")) == ["Über größe"]
    assert messages(query(reader, grep="über")) == ["Über größe"]
    assert messages(query(reader, grep="Über")) == ["Über größe"]


# -- cursors ---------------------------------------------------------------------------


def test_cursor_paging_equals_the_full_listing_while_writing_and_rotating(tmp_path, clock):
    directory = str(tmp_path / "logs")
    writer = logstore.LogWriter(directory, 1024, 10_000, clock)
    reader = logread.LogReader(directory)
    write(writer, 300, clock)
    pages, cursor = [], None
    for round_number in range(1000):
        params = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        page = query(reader, **params)
        pages.extend(page.entries)
        cursor = logquery.encode_cursor(reader.log_id(), page.next_seq)
        if round_number < 40:
            write(writer, 5, clock, text="later")  # the model keeps writing; files rotate
        elif not page.has_more:
            break
    everything = list(reader.forward(1))
    assert [entry.seq for entry in pages] == [entry.seq for entry in everything]
    assert len(everything) == 300 + 40 * 5
    assert len(reader.segments()) > 10  # many rotations happened between pages
    writer.close()


def test_paging_with_a_filter_has_no_gaps_or_duplicates(store, clock):
    writer, reader = store
    mixed(writer, clock)
    seen, cursor = [], None
    while True:
        params = {"limit": 3, "level": "error"}
        if cursor:
            params["cursor"] = cursor
        page = query(reader, **params)
        seen += [entry.seq for entry in page.entries]
        cursor = logquery.encode_cursor(reader.log_id(), page.next_seq)
        if not page.has_more:
            break
    expected = [entry.seq for entry in reader.forward(1) if entry.level in "ec"]
    assert seen == expected


def test_a_cursor_past_rotated_away_entries_reports_the_skip(tmp_path, clock):
    directory = str(tmp_path / "logs")
    writer = logstore.LogWriter(directory, 1024, 2, clock)
    reader = logread.LogReader(directory)
    write(writer, 500, clock)
    page = query(reader, cursor=logquery.encode_cursor(reader.log_id(), 1), limit=5)
    first_kept = reader.first_seq()
    assert page.entries[0].seq == first_kept
    assert page.skipped == first_kept - 1
    writer.close()


def test_a_cursor_from_another_log_generation_is_refused(store, clock):
    writer, reader = store
    write(writer, 3, clock)
    with pytest.raises(ValidationError) as raised:
        query(reader, cursor=logquery.encode_cursor("someoneelse", 1))
    assert raised.value.field == "cursor"


# -- the writer's promises -------------------------------------------------------------


def test_seq_is_gapless_and_ts_never_decreases_even_if_the_clock_does(tmp_path):
    times = iter([5, 3, 3, 9, 1, 10, 2, 2, 2, 11])
    writer = logstore.LogWriter(str(tmp_path / "logs"), 200, 100, lambda: next(times))
    for number in range(10):
        writer.append([("o", "i", False, b"entry %d" % number)])
    entries = list(logread.LogReader(str(tmp_path / "logs")).forward(1))
    assert [entry.seq for entry in entries] == list(range(1, 11))
    stamps = [entry.ts for entry in entries]
    assert stamps == sorted(stamps) == [5, 5, 5, 9, 9, 10, 10, 10, 10, 11]
    writer.close()


def test_rotation_renames_and_keeps_n_files(tmp_path, clock):
    directory = str(tmp_path / "logs")
    writer = logstore.LogWriter(directory, 1024, 3, clock)
    write(writer, 5, clock)
    current = os.path.join(directory, "current.log")
    inode, first = os.stat(current).st_ino, writer.first_seq
    rotated = os.path.join(directory, logstore.segment_name(first))
    while not os.path.exists(rotated):
        write(writer, 1, clock)
    assert os.stat(rotated).st_ino == inode, "rotation must rename, never copy"
    write(writer, 200, clock)
    names = os.listdir(directory)
    segments = [name for name in names if logstore.SEGMENT_PATTERN.match(name)]
    assert len(segments) == 3 and "current.log" in names
    for name in segments + ["current.log"]:
        assert os.path.getsize(os.path.join(directory, name)) <= 1024
        with open(os.path.join(directory, name), "rb") as handle:
            assert handle.read().endswith(b"\n")  # rotated at a line boundary
    writer.close()


def test_long_lines_are_split_never_dropped():
    splitter = logstore.LineSplitter(max_line=10)
    pieces = splitter.feed(b"0123456789abcdefghijXYZ\nshort\n")
    assert pieces == [
        (b"0123456789", True),
        (b"abcdefghij", True),
        (b"XYZ", False),
        (b"short", False),
    ]
    assert splitter.feed(b"no newline yet") == [(b"no newline", True)]
    assert splitter.finish() == [(b" yet", False)]
    assert splitter.finish() == []


def test_long_lines_across_chunks():
    splitter = logstore.LineSplitter(max_line=8)
    out = splitter.feed(b"aaaa") + splitter.feed(b"bbbbcccc") + splitter.feed(b"dd\n")
    assert b"".join(piece for piece, _ in out) == b"aaaabbbbccccdd"
    assert [partial for _, partial in out] == [True, False]


def test_crlf_is_one_line_ending():
    assert logstore.LineSplitter().feed(b"windows\r\nunix\n") == [
        (b"windows", False),
        (b"unix", False),
    ]


def test_a_full_disk_drops_lines_with_an_entry_that_says_how_many(tmp_path, clock, monkeypatch):
    directory = str(tmp_path / "logs")
    writer = logstore.LogWriter(directory, 1 << 20, 5, clock)
    write(writer, 3, clock)
    real_write = os.write

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(logstore.os, "write", full)
    write(writer, 7, clock, text="lost")
    monkeypatch.setattr(logstore.os, "write", real_write)
    write(writer, 2, clock, text="after")
    entries = list(logread.LogReader(directory).forward(1))
    assert [entry.seq for entry in entries] == list(range(1, 7))
    notice = entries[3]
    assert notice.stream == "m" and notice.level == "w"
    assert notice.msg == b"modeld dropped 7 lines of output: No space left on device"
    assert [entry.msg for entry in entries[4:]] == [b"after 0", b"after 1"]
    writer.close()


def test_a_torn_last_line_is_cut_on_recovery(tmp_path, clock):
    directory = str(tmp_path / "logs")
    writer = logstore.LogWriter(directory, 1 << 20, 5, clock)
    write(writer, 3, clock)
    writer.close()
    with open(os.path.join(directory, "current.log"), "ab") as handle:
        handle.write(b"4 17000 oi. half a li")
    assert [entry.seq for entry in logread.LogReader(directory).forward(1)] == [1, 2, 3]
    reopened = logstore.LogWriter(directory, 1 << 20, 5, clock)
    assert reopened.seq == 3
    write(reopened, 1, clock)
    assert [entry.seq for entry in logread.LogReader(directory).forward(1)] == [1, 2, 3, 4]
    reopened.close()


def test_seq_continues_across_writers(tmp_path, clock):
    directory = str(tmp_path / "logs")
    for _ in range(3):
        writer = logstore.LogWriter(directory, 512, 100, clock)
        write(writer, 10, clock)
        writer.close()
    seqs = [entry.seq for entry in logread.LogReader(directory).forward(1)]
    assert seqs == list(range(1, 31))


# -- seeking, not scanning -----------------------------------------------------------


def test_seeks_read_a_few_blocks_not_the_file(tmp_path, clock, monkeypatch):
    directory = str(tmp_path / "logs")
    writer = logstore.LogWriter(directory, 64 << 20, 5, clock)
    for _ in range(200):
        clock.now += 1000
        writer.append([("o", "i", False, b"x" * 80)] * 500)  # 100,000 entries, ~10 MB
    writer.close()
    reader = logread.LogReader(directory)
    reads = []
    real_read = logread._lines

    def counting(handle, limit=None):
        for line in real_read(handle, limit):
            reads.append(len(line))
            yield line

    monkeypatch.setattr(logread, "_lines", counting)
    middle = clock.now - 100 * 1000
    page = logquery.run_query(
        reader, logquery.parse_log_query({"since": str(middle / 1e6), "limit": "5"}, clock.now)
    )
    assert len(page.entries) == 5
    assert sum(reads) < 1_000_000, "a time seek scanned %d bytes" % sum(reads)
    reads.clear()
    page = logquery.run_query(reader, logquery.parse_log_query({"tail": "10"}, clock.now))
    assert len(page.entries) == 10 and sum(reads) == 0  # tail reads backwards from the end


# -- parameters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, field",
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "-5"}, "until"),
        ({"since": "10", "until": "5"}, "until"),
        ({"level": "loud"}, "level"),
        ({"level": "error..info"}, "level"),
        ({"stream": "stdin"}, "stream"),
        ({"grep": ""}, "grep"),
        ({"tail": "-1"}, "tail"),
        ({"tail": "ten"}, "tail"),
        ({"limit": "0"}, "limit"),
        ({"limit": "10001"}, "limit"),
        ({"cursor": "garbage!"}, "cursor"),
        ({"follow": "maybe"}, "follow"),
        ({"format": "xml"}, "format"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_parameters_name_themselves(params, field):
    with pytest.raises(ValidationError) as raised:
        logquery.parse_log_query(params, 1_700_000_000_000_000)
    assert raised.value.field == field


def test_text_rendering():
    entry = logstore.Entry(7, 1_764_072_000_123_456, "e", "w", False, "naïve".encode())
    assert logquery.entry_text(entry) == "2025-11-25T12:00:00.123456Z stderr WARNING  naïve"
    assert logquery.entry_dict(entry) == {
        "seq": 7,
        "ts": "2025-11-25T12:00:00.123456Z",
        "stream": "stderr",
        "level": "warning",
        "msg": "naïve",
    }


# -- the rotation decision, apart from the writing ----------------------------------


@pytest.mark.parametrize(
    "size, lines, max_bytes, plan",
    [
        (0, [], 100, []),
        (0, [10, 10], 100, [(0, 2, False)]),
        (90, [10], 100, [(0, 1, False)]),  # exactly full: no rotation yet
        (91, [10], 100, [(0, 1, True)]),  # would overflow: rotate first
        (50, [30, 30, 30], 100, [(0, 1, False), (1, 3, True)]),
        (0, [150], 100, [(0, 1, False)]),  # too long for any file: alone, never split
        (10, [150, 10], 100, [(0, 1, True), (1, 2, True)]),
        (0, [60, 60, 60], 100, [(0, 1, False), (1, 2, True), (2, 3, True)]),
    ],
)
def test_plan_writes(size, lines, max_bytes, plan):
    assert logstore.plan_writes(size, lines, max_bytes) == plan


def test_the_batch_encoder_equals_the_one_line_encoder():
    msgs = [b"first", b"", "zw\u00f6lf".encode(), b"x" * 40]
    levels = ["i", "w", "e", "d"]
    codes = [level.encode() for level in levels]
    for partials in (None, [False, True, False, True]):
        batch = logstore.encode_entries(7, 1764072000123456, "e", codes, msgs, partials)
        single = [
            logstore.encode_entry(
                7 + index, 1764072000123456, "e", level, bool(partials and partials[index]), msg
            )
            for index, (level, msg) in enumerate(zip(levels, msgs))
        ]
        assert batch == single
        assert [logstore.parse_line(line[:-1]).msg for line in batch] == msgs


def test_a_failed_rotation_is_said_once_and_its_recovery_once(tmp_path, monkeypatch):
    warnings = []
    writer = logstore.LogWriter(str(tmp_path), 200, 2, warn=warnings.append)
    real_rename = os.rename

    def refuse(source, target):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(logstore.os, "rename", refuse)
    for index in range(20):
        writer.append_batch("o", [b"i"], [b"line %03d of some length" % index])
    assert len(warnings) == 1 and "cannot rotate" in warnings[0]
    assert "Read-only file system" in warnings[0]
    monkeypatch.setattr(logstore.os, "rename", real_rename)
    writer.append_batch("o", [b"i"], [b"after"])
    writer.close()
    assert len(warnings) == 2 and "works again" in warnings[1]
    assert logstore.rotated_segments(str(tmp_path)), "it rotated once it could"


def test_writing_across_many_rotations_keeps_every_line_in_order(tmp_path):
    writer = logstore.LogWriter(str(tmp_path), 300, 1000)
    msgs = [b"m%04d" % index + b"." * (index % 37) for index in range(500)]
    for start in range(0, 500, 7):
        chunk = msgs[start : start + 7]
        writer.append_batch("o", [b"i"] * len(chunk), chunk)
    writer.close()
    page = query(logread.LogReader(str(tmp_path)), limit=1000)
    assert [entry.msg for entry in page.entries] == msgs
    sizes = [os.path.getsize(path) for _, path in logstore.rotated_segments(str(tmp_path))]
    assert len(sizes) > 10 and max(sizes) <= 300


def test_the_probe_flag_extends_the_format_and_old_lines_still_read():
    old = logstore.parse_line(b"12 1764072000123456 oi. hello")
    assert old.msg == b"hello" and old.probe is False and old.partial is False
    lines = logstore.encode_entries(
        13, 5, "o", [b"i", b"i"], [b'"GET /health HTTP/1.1" 200', b"x"], None, [True, False]
    )
    assert lines[0] == b'13 5 oi.p "GET /health HTTP/1.1" 200\n'
    assert lines[1] == b"14 5 oi. x\n"
    tagged = logstore.parse_line(lines[0][:-1])
    assert tagged.probe is True and tagged.msg == b'"GET /health HTTP/1.1" 200'
    assert logstore.parse_line(b"15 5 oi+zq unknown flags are ignored").probe is False


def test_a_probe_line_is_matched_once_by_path_and_time():
    import selectors

    from lib.monitor import probes

    health = {"http": "/health", "interval": 1, "timeout": 1, "start_period": 0, "retries": 1}
    prober = probes.Prober(health, 1, selectors.DefaultSelector(), lambda *a: None)
    prober.sent.append(100.0)
    assert prober.expecting_access_line(100.5)
    assert not prober.caused_by_probe(b'"GET /healthz HTTP/1.1" 200', 100.5)
    assert prober.caused_by_probe(b'INFO: 127.0.0.1 - "GET /health HTTP/1.1" 200 OK', 100.5)
    assert not prober.caused_by_probe(b'INFO: 127.0.0.1 - "GET /health HTTP/1.1" 200 OK', 100.6)
    prober.sent.append(100.0)
    assert not prober.expecting_access_line(110.0)
