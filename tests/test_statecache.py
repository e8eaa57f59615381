"""The daemon's in-memory model states (``lib.daemon.statecache``) and the change
notification that keeps them current (``lib.core.notify``), without a daemon.

The cache reads real state files in ``tmp_path`` (written as a monitor writes
them); its clock is a fake, so staleness and the lost-notification bound are
exact. The notification tests use real sockets.
"""

import json
import os
import threading
import time

import pytest

from lib.core import notify, paths, protocol, vocabulary
from lib.core.system import System
from lib.daemon import statecache


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Home:
    """A home whose state files a test writes as a monitor would; counts the reads."""

    def __init__(self, root):
        self.home = paths.Home(root)
        self.reads = 0

    def write(self, name, generation, status=vocabulary.RUNNING, monitor_pid=500, run=1):
        model_paths = self.home.model(name)
        os.makedirs(model_paths.root, exist_ok=True)
        state = protocol.MonitorState(
            name=name,
            run=run,
            monitor_pid=monitor_pid,
            status=status,
            generation=generation,
            updated_at=generation,
        )
        protocol.write_state(model_paths, state, durable=False)
        return state

    def read(self, name):
        self.reads += 1
        return protocol.read_state(self.home.model(name))

    def cache(self, clock=None):
        return statecache.StateCache(self.read, clock or FakeClock())


@pytest.fixture
def files(tmp_path):
    return Home(str(tmp_path))


def test_an_entry_is_read_once_then_served_from_memory(files):
    files.write("m", 1)
    cache = files.cache()
    assert cache.get("m").generation == 1
    for _ in range(10):
        cache.get("m")
    assert files.reads == 1


def test_a_notification_reads_the_file_again_once(files):
    files.write("m", 1)
    cache = files.cache()
    cache.get("m")
    files.write("m", 2, status=vocabulary.STOPPING)
    assert cache.get("m").generation == 1  # no news yet: memory
    assert cache.note("m", 500, 2) is True
    assert cache.get("m").status == vocabulary.STOPPING
    assert cache.note("m", 500, 2) is False  # held already: no read
    assert cache.note("m", 500, 1) is False  # an older datagram, late
    assert files.reads == 2


def test_a_new_monitor_is_read_whatever_its_generation(files):
    files.write("m", 9, monitor_pid=500)
    cache = files.cache()
    cache.get("m")
    files.write("m", 1, monitor_pid=777)  # a successor that could not read its predecessor
    assert cache.note("m", 777, 1) is True
    assert cache.get("m").monitor_pid == 777


def test_a_notification_for_a_model_never_asked_for_reads_nothing(files):
    files.write("m", 1)
    cache = files.cache()
    assert cache.note("m", 500, 1) is False
    assert files.reads == 0
    assert cache.get("m").generation == 1


def test_stale_entries_are_read_again_and_fresh_ones_are_not(files):
    clock = FakeClock()
    files.write("old", 1)
    files.write("new", 1)
    cache = files.cache(clock)
    cache.get("old")
    clock.now += statecache.STALE_AFTER / 2
    cache.get("new")
    clock.now += statecache.STALE_AFTER / 2
    assert cache.stale() == ["old"]
    files.write("old", 2)
    cache.refresh_stale()
    assert cache.get("old").generation == 2
    assert cache.stale() == []


def test_a_lost_notification_costs_at_most_the_bound(files):
    """The refresher sweeps every SWEEP_INTERVAL; a change whose datagram is lost is
    in memory within LOST_NOTIFICATION_BOUND seconds of the write, wherever it falls."""
    for offset in (0.0, 0.01, 0.26, statecache.STALE_AFTER - 0.01, statecache.STALE_AFTER):
        clock = FakeClock()
        files.write("m", 1)
        cache = files.cache(clock)
        cache.get("m")  # read at 100.0; sweeps at 100.0 + k * SWEEP_INTERVAL
        clock.now += offset
        files.write("m", 2)  # ... and its datagram is lost
        written_at = clock.now
        while cache.get("m").generation != 2:
            sweeps = int((clock.now - 100.0) / statecache.SWEEP_INTERVAL) + 1
            clock.now = 100.0 + sweeps * statecache.SWEEP_INTERVAL
            cache.refresh_stale()
        assert clock.now - written_at <= statecache.LOST_NOTIFICATION_BOUND + 1e-9


def test_an_older_reading_never_replaces_a_newer_one(files):
    files.write("m", 5)
    cache = files.cache()
    cache.get("m")
    files.write("m", 4)  # a read that started before the newer write finished after it
    cache.reload("m")
    assert cache.get("m").generation == 5


def test_a_restarted_daemon_starts_from_the_files(files):
    files.write("a", 3, status=vocabulary.RUNNING)
    files.write("b", 7, status=vocabulary.STOPPED)
    first = files.cache()
    assert first.get("a").status == vocabulary.RUNNING
    files.write("a", 4, status=vocabulary.BACKOFF)  # written while no daemon listened
    second = files.cache()  # a new daemon: empty memory
    assert second.get("a").status == vocabulary.BACKOFF
    assert second.get("b").status == vocabulary.STOPPED
    assert second.get("missing") is None


def test_a_file_without_generation_reads_as_zero(files):
    files.write("m", 1)
    path = files.home.model("m").state
    with open(path) as handle:
        data = json.load(handle)
    del data["generation"]
    with open(path, "w") as handle:
        json.dump(data, handle)
    state = files.cache().get("m")
    assert state.generation == 0 and state.status == vocabulary.RUNNING


def test_a_file_of_an_unknown_schema_is_not_trusted(files):
    files.write("m", 1, status=vocabulary.RUNNING)
    files.write("m", 2, status=vocabulary.STOPPING)  # the .prev keeps generation 1
    path = files.home.model("m").state
    with open(path) as handle:
        data = json.load(handle)
    data["schema"] = protocol.SCHEMA + 1
    with open(path, "w") as handle:
        json.dump(data, handle)
    cache = files.cache()
    assert cache.get("m").generation == 1  # the previous, readable generation
    assert cache.note("m", 500, 2) is True  # the datagram cannot vouch for the file
    assert cache.get("m").generation == 1


def test_forget_drops_the_entry_and_a_late_refresh_does_not_bring_it_back(files):
    files.write("m", 1)
    cache = files.cache()
    cache.get("m")
    cache.forget("m")
    cache.reload("m", only_known=True)
    assert "m" not in cache.entries


def test_waiters_wake_on_a_change_and_time_out_without_one(files):
    files.write("m", 1)
    cache = files.cache()
    cache.get("m")
    seen = cache.version
    assert cache.wait(seen, 0.01) == seen
    files.write("m", 2)
    threading.Timer(0.05, cache.note, ("m", 500, 2)).start()
    started = time.monotonic()
    assert cache.wait(seen, 5) != seen
    assert time.monotonic() - started < 2


# -- the datagrams -----------------------------------------------------------------


def test_the_datagram_round_trips_and_garbage_is_ignored():
    assert notify.decode(notify.encode("llama3-8b", 42, 7)) == ("llama3-8b", 42, 7)
    for payload in (b"", b"x", b"a 1", b"a b c", b"\xff\xfe 1 2", b"a 1 2 3"):
        assert notify.decode(payload) is None


def test_a_listener_hears_a_notifier(tmp_path):
    listener = notify.Listener(str(tmp_path))
    notifier = notify.Notifier(System(), str(tmp_path))
    try:
        assert notifier.send("a", 10, 1) and notifier.send("b", 11, 2)
        assert listener.receive(1.0) == [("a", 10, 1), ("b", 11, 2)]
        assert listener.receive(0.01) == []
    finally:
        notifier.close()
        listener.close()


def test_a_notifier_never_blocks_or_raises_without_a_listener(tmp_path):
    notifier = notify.Notifier(System(), str(tmp_path))
    started = time.monotonic()
    assert notifier.send("a", 10, 1) is False  # nobody bound: refused
    squatter = notify.Listener(str(tmp_path))  # bound, but never reads: its queue fills
    try:
        results = [notifier.send("a", 10, n) for n in range(2000)]
        assert results[0] is True and results[-1] is False
    finally:
        squatter.close()
        notifier.close()
    assert time.monotonic() - started < 2
    assert notify.Notifier(System(), str(tmp_path / "no-such-home")).send("a", 1, 1) is False


def test_a_second_listener_on_the_same_home_is_refused(tmp_path):
    first = notify.Listener(str(tmp_path))
    try:
        with pytest.raises(OSError):
            notify.Listener(str(tmp_path))
    finally:
        first.close()
    notify.Listener(str(tmp_path)).close()  # gone with its socket: nothing left on disk


def test_the_refresher_applies_notifications_and_sweeps_without_a_listener(tmp_path):
    files = Home(str(tmp_path))
    files.write("m", 1)
    cache = statecache.StateCache(files.read, stale_after=0.05)
    cache.get("m")

    def no_socket():
        raise OSError("address in use")

    refresher = statecache.Refresher(cache, no_socket, sweep=0.01)
    refresher.start()
    try:
        files.write("m", 2)  # no datagram at all
        deadline = time.monotonic() + 5
        while cache.get("m").generation != 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cache.get("m").generation == 2
    finally:
        refresher.stop()
    assert not refresher.thread.is_alive()
