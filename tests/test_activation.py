"""The on-demand decisions as tables: ``lib.monitor.activation`` and the lifecycle's idle edges.

Pure: no process, no socket, time an argument. The real relay is tested in
``test_ondemand.py``.
"""

import pytest

from lib.core import spec as specs
from lib.core import vocabulary as v
from lib.monitor import activation, lifecycle

IDLE_TIMEOUT, LOAD_TIMEOUT, MAX_PENDING = 10.0, 30.0, 2


def machine():
    return activation.Activation(IDLE_TIMEOUT, LOAD_TIMEOUT, MAX_PENDING)


def play(steps):
    """Run ``(method, args...)`` steps; return the machine and the last result."""
    decider, result = machine(), None
    for method, *args in steps:
        result = getattr(decider, method)(*args)
    return decider, result


# (steps, expected Turn of the last step, expected phase after it)
TURNS = [
    pytest.param(
        [("turn", 0, v.IDLE, False)], activation.NOTHING, v.ACTIVATION_IDLE, id="idle-no-traffic"
    ),
    pytest.param(
        [("arrive", 1, 0), ("turn", 0, v.IDLE, False)],
        activation.Turn(True, False, (), ()),
        v.ACTIVATION_LOADING,
        id="first-connection-starts",
    ),
    pytest.param(
        [("arrive", 1, 0), ("turn", 0, v.IDLE, False), ("turn", 1, v.STARTING, False)],
        activation.NOTHING,
        v.ACTIVATION_LOADING,
        id="starting-is-not-started-twice",
    ),
    pytest.param(
        [("arrive", 1, 0), ("arrive", 2, 1), ("turn", 5, v.RUNNING, True)],
        activation.Turn(False, False, (1, 2), ()),
        v.ACTIVATION_READY,
        id="ready-relays-the-queue-in-order",
    ),
    pytest.param(
        [("arrive", 1, 0), ("turn", 0, v.IDLE, False), ("turn", 30, v.STARTING, False)],
        activation.Turn(False, False, (), (1,)),
        v.ACTIVATION_LOADING,
        id="load-timeout-closes-the-queued-connection",
    ),
    pytest.param(
        [("arrive", 1, 0), ("turn", 29.9, v.STARTING, False)],
        activation.NOTHING,
        v.ACTIVATION_LOADING,
        id="before-load-timeout-it-waits",
    ),
    pytest.param(
        [("turn", 0, v.RUNNING, True), ("turn", 10, v.RUNNING, True)],
        activation.Turn(False, True, (), ()),
        v.ACTIVATION_UNLOADING,
        id="first-ready-without-traffic-starts-the-timer",
    ),
    pytest.param(
        [("turn", 0, v.RUNNING, True), ("turn", 9.99, v.RUNNING, True)],
        activation.NOTHING,
        v.ACTIVATION_READY,
        id="not-before-idle-timeout",
    ),
    pytest.param(
        [
            ("turn", 0, v.RUNNING, True),
            ("arrive", 1, 5),
            ("turn", 100, v.RUNNING, True),
        ],
        activation.NOTHING,
        v.ACTIVATION_READY,
        id="an-open-stream-holds-the-model",
    ),
    pytest.param(
        [
            ("turn", 0, v.RUNNING, True),
            ("arrive", 1, 5),
            ("closed", 50),
            ("turn", 59.9, v.RUNNING, True),
        ],
        activation.NOTHING,
        v.ACTIVATION_READY,
        id="timer-runs-from-the-last-close",
    ),
    pytest.param(
        [
            ("turn", 0, v.RUNNING, True),
            ("arrive", 1, 5),
            ("closed", 50),
            ("turn", 60, v.RUNNING, True),
        ],
        activation.Turn(False, True, (), ()),
        v.ACTIVATION_UNLOADING,
        id="unload-idle-timeout-after-the-last-close",
    ),
    pytest.param(
        [
            ("turn", 0, v.RUNNING, True),
            ("turn", 10, v.RUNNING, True),
            ("arrive", 1, 10.1),
            ("turn", 10.1, v.STOPPING, False),
        ],
        activation.NOTHING,
        v.ACTIVATION_UNLOADING,
        id="connection-during-an-unload-waits",
    ),
    pytest.param(
        [
            ("turn", 0, v.RUNNING, True),
            ("turn", 10, v.RUNNING, True),
            ("arrive", 1, 10.1),
            ("turn", 10.1, v.STOPPING, False),
            ("turn", 10.5, v.IDLE, False),
        ],
        activation.Turn(True, False, (), ()),
        v.ACTIVATION_LOADING,
        id="then-restarts-the-model",
    ),
    pytest.param(
        [
            ("arrive", 1, 0),
            ("turn", 0, v.IDLE, False),
            ("abandon", 1, 1),
            ("turn", 2, v.RUNNING, True),
        ],
        activation.NOTHING,
        v.ACTIVATION_READY,
        id="a-client-leaving-does-not-abort-the-load",
    ),
    pytest.param(
        [("arrive", 1, 0), ("turn", 1, v.STOPPED, False)],
        activation.NOTHING,
        v.ACTIVATION_IDLE,
        id="stopped-model-is-not-restarted-by-the-queue",
    ),
]


@pytest.mark.parametrize("steps, expected, phase", TURNS)
def test_turns(steps, expected, phase):
    decider, result = play(steps)
    assert result == expected
    assert decider.phase == phase


def test_stopped_model_never_starts():
    decider, result = play([("arrive", 1, 0), ("turn", 1, v.STOPPED, False)])
    assert not result.start


def test_admission_queues_up_to_max_pending_then_refuses():
    decider = machine()
    verdicts = [decider.arrive(key, 0) for key in (1, 2, 3)]
    assert verdicts == [activation.QUEUE, activation.QUEUE, activation.REFUSE]
    decider.turn(1, v.RUNNING, True)
    assert decider.arrive(4, 1) == activation.RELAY
    assert decider.describe()["connections"] == 3


def test_next_deadline_is_the_earliest_timer():
    decider = machine()
    assert decider.next_deadline() is None
    decider.arrive(1, 3)
    assert decider.next_deadline() == 3 + LOAD_TIMEOUT
    decider.turn(4, v.RUNNING, True)
    decider.closed(7)
    assert decider.next_deadline() == 7 + IDLE_TIMEOUT


def test_unloads_are_counted():
    decider, _ = play([("turn", 0, v.RUNNING, True), ("turn", 10, v.RUNNING, True)])
    decider.unloaded()
    assert decider.describe()["unloads"] == 2


@pytest.mark.parametrize(
    "status, ready, phase",
    [
        (None, False, v.ACTIVATION_IDLE),
        (v.IDLE, False, v.ACTIVATION_IDLE),
        (v.STARTING, False, v.ACTIVATION_LOADING),
        (v.RUNNING, False, v.ACTIVATION_LOADING),
        (v.BACKOFF, False, v.ACTIVATION_LOADING),
        (v.RUNNING, True, v.ACTIVATION_READY),
        (v.STOPPING, False, v.ACTIVATION_UNLOADING),
        (v.FAILED, False, v.ACTIVATION_IDLE),
    ],
)
def test_phase_of(status, ready, phase):
    assert activation.phase_of(status, ready) == phase


# -- the lifecycle's idle edges ----------------------------------------------------------


def on_demand_life():
    spec = specs.parse_spec(
        {
            "name": "od",
            "command": ["serve", "{port}"],
            "port": 9000,
            "health": {"http": "/health"},
            "activation": {"idle_timeout": 5},
        }
    )
    return lifecycle.Lifecycle(spec)


def statuses(life):
    return [(event.old, event.new, event.reason) for event in life.take_events()]


def test_on_demand_model_begins_idle_and_starts_on_activation():
    life = on_demand_life()
    assert life.begin(0) == []
    assert life.status == v.IDLE
    assert life.activate(1) == [lifecycle.Spawn()]
    assert life.status == v.STARTING
    assert life.activate(2) == []  # already starting


@pytest.mark.parametrize("reason", v.UNLOAD_REASONS)
def test_unload_goes_back_to_idle_with_its_reason(reason):
    life = on_demand_life()
    life.begin(0)
    life.activate(1)
    life.spawned(100, 1)
    life.probe_result(True, 2)
    actions = life.unload(3, reason)
    assert actions == [lifecycle.Signal("SIGTERM")] and life.status == v.STOPPING
    life.exited(None, "SIGTERM", v.REASON_STOPPED, 4, leftovers=False)
    assert life.status == v.IDLE
    assert statuses(life)[-1] == (v.STOPPING, v.IDLE, reason)


def test_stop_during_unload_wins():
    life = on_demand_life()
    life.begin(0)
    life.activate(1)
    life.spawned(100, 1)
    life.unload(2, v.UNLOAD_IDLE_TIMEOUT)
    life.request_stop(None, 2.5)
    life.exited(None, "SIGTERM", v.REASON_STOPPED, 3, leftovers=False)
    assert life.status == v.STOPPED


def test_stop_of_an_idle_model_and_unload_of_a_stopped_one():
    life = on_demand_life()
    life.begin(0)
    assert life.unload(1, v.UNLOAD_MANUAL) == []
    assert life.request_stop(None, 1) == [lifecycle.Finish()]
    assert life.status == v.STOPPED


def test_unload_in_backoff_is_immediate():
    life = on_demand_life()
    life.begin(0)
    life.activate(1)
    life.spawned(100, 1)
    life.exited(1, None, v.REASON_EXIT_CODE, 2, leftovers=False)
    assert life.status == v.BACKOFF
    assert life.unload(3, v.UNLOAD_MANUAL) == []
    assert life.status == v.IDLE


def test_recovered_on_demand_model_waits_idle():
    life = on_demand_life()
    life.recovered(0, previous_active=True)
    assert life.status == v.IDLE


def test_a_model_without_activation_never_unloads():
    spec = specs.parse_spec({"name": "x", "command": ["serve"]})
    life = lifecycle.Lifecycle(spec)
    life.begin(0)
    assert life.unload(1, v.UNLOAD_MANUAL) == []
    assert life.status == v.STARTING


@pytest.mark.parametrize(
    "body, field",
    [
        ({"activation": {"listen": 0}}, "activation.listen"),
        ({"activation": {"host": "localhost"}}, "activation.host"),
        ({"activation": {"idle_timeout": 0}}, "activation.idle_timeout"),
        ({"activation": {"max_pending": 513}}, "activation.max_pending"),
        ({"activation": {"http_503": "yes"}}, "activation.http_503"),
        ({"activation": {"bogus": 1}}, "activation.bogus"),
        ({"activation": {"listen": 9000}}, "activation.listen"),
        ({"port": None, "command": ["serve"], "activation": {}}, "activation"),
    ],
)
def test_activation_spec_is_validated(body, field):
    from lib.errors import ValidationError

    full = {"name": "od", "command": ["serve", "{port}"], "port": 9000}
    full.update(body)
    with pytest.raises(ValidationError) as caught:
        specs.parse_spec(full)
    assert caught.value.field == field


def test_activation_defaults():
    spec = specs.parse_spec(
        {"name": "od", "command": ["serve", "{port}"], "port": "auto", "activation": {}}
    )
    assert spec["activation"] == {
        "listen": "auto",
        "host": "127.0.0.1",
        "idle_timeout": 300.0,
        "load_timeout": 600.0,
        "max_pending": 100,
        "http_503": False,
    }


# -- the relay in this process: both buffer kinds, half-close --------------------------


@pytest.mark.parametrize("spliced", [96, 0], ids=["splice", "bytes"])
def test_relay_moves_bytes_and_propagates_half_close(monkeypatch, spliced):
    import selectors
    import socket
    import threading
    import time

    from lib.monitor import relay

    monkeypatch.setattr(relay, "SPLICED_CONNECTIONS", spliced)
    upstream = socket.create_server(("127.0.0.1", 0))

    def echo_until_eof():
        conn, _ = upstream.accept()
        with conn:
            received = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                received += chunk
            conn.sendall(received[::-1] * 1000)  # answer after the client's half-close

    threading.Thread(target=echo_until_eof, daemon=True).start()
    selector = selectors.DefaultSelector()
    decider = activation.Activation(60, 60, 4)
    decider.turn(0, v.RUNNING, True)
    listener = relay.bind_listener("127.0.0.1", 0)
    hub = relay.Relay(listener, upstream.getsockname(), selector, decider, time.time)
    client = socket.create_connection(("127.0.0.1", hub.listen_port))
    client.sendall(b"abc" * 1000)
    client.shutdown(socket.SHUT_WR)
    answer, deadline = b"", time.monotonic() + 10
    client.setblocking(False)
    while time.monotonic() < deadline:
        for key, _ in selector.select(0.01):
            key.data(time.time())
        try:
            chunk = client.recv(1 << 20)
        except BlockingIOError:
            continue
        if not chunk:
            break
        answer += chunk
    assert answer == (b"cba" * 1000) * 1000
    deadline = time.monotonic() + 5
    while hub.pipes and time.monotonic() < deadline:
        for key, _ in selector.select(0.01):
            key.data(time.time())
    assert not hub.pipes and decider.connections == 0 and decider.idle_since is not None
    hub.close()
    client.close()
    upstream.close()
