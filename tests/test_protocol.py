"""The daemon<->monitor protocol: formats unchanged, versions checked, one owner of the keys."""

import json
import os
import re

import pytest

from conftest import ROOT
from lib.core import fsutil, paths, protocol

# state.json as the previous release wrote it (lib/monitor.py, round one): must still be read.
OLD_STATE = {
    "schema": 1,
    "name": "m",
    "deploy_id": "0a1b2c3d4e5f",
    "run": 3,
    "monitor": {"pid": 1234, "starttime": 5678},
    "boot_id": "b",
    "status": "running",
    "health": "healthy",
    "ready": True,
    "reason": "healthy",
    "pid": 1240,
    "pid_starttime": 5700,
    "port": 8080,
    "started_at": 1700000000000000,
    "restarts": 2,
    "retries": 1,
    "next_start_at": None,
    "last_exit": {"code": 1, "signal": None, "at": 1, "reason": "exit_code", "last_lines": []},
    "processes": [[1240, 5700]],
    "control_id": "c1",
    "log_id": "l1",
    "updated_at": 1700000000000001,
}


@pytest.fixture
def model_paths(tmp_path):
    found = paths.Home(str(tmp_path)).model("m")
    os.makedirs(found.root)
    return found


def test_state_round_trips_to_the_same_file(model_paths):
    state = protocol.MonitorState.decode(OLD_STATE)
    # Fields added since (waiting_for with GPU support, activation with on-demand models,
    # spec_generation with in-place updates, generation with the change notification) come
    # back with their empty value.
    assert state.encode() == dict(
        OLD_STATE, waiting_for=None, activation=None, spec_generation=None, generation=0
    )
    assert (state.monitor_pid, state.monitor_starttime, state.run) == (1234, 5678, 3)


def test_state_written_by_the_previous_release_is_read(model_paths):
    with open(model_paths.state, "w") as handle:
        json.dump(OLD_STATE, handle)
    assert protocol.read_state(model_paths).control_id == "c1"


def write(path, data):
    with open(path, "w") as handle:
        json.dump(data, handle)


def test_an_unknown_schema_is_unreadable_with_one_warning(model_paths):
    write(model_paths.state, dict(OLD_STATE, schema=99))
    warnings = []
    assert protocol.read_state(model_paths, warn=warnings.append) is None
    assert protocol.read_state(model_paths, warn=warnings.append) is None
    assert len(warnings) == 1 and "unknown schema 99" in warnings[0]


def test_an_unknown_schema_falls_back_to_the_previous_generation(model_paths):
    write(model_paths.state + ".prev", dict(OLD_STATE, run=2))
    write(model_paths.state, dict(OLD_STATE, schema=2, run=3))
    fallbacks = []
    state = protocol.read_state(model_paths, on_fallback=fallbacks.append)
    assert state.run == 2 and "previous generation" in fallbacks[0]


def test_deployment_round_trips(model_paths):
    spec = {"name": "m", "command": ["x"]}
    record = protocol.Deployment(spec, 9000, run=4, cause={"reason": "test"})
    fsutil.write_json_atomic(model_paths.deployment, record.encode())
    again = protocol.Deployment.decode(fsutil.read_json(model_paths.deployment))
    assert again.encode() == record.encode() and again.wanted
    assert protocol.Deployment.decode({"run": 1}) is None


def test_control_round_trips_and_rejects_what_is_not_a_command(model_paths):
    command = protocol.Control(protocol.OP_RESTART, 5, {"reason": "test"})
    protocol.write_control(model_paths, command)
    read = protocol.read_control(model_paths)
    assert (read.id, read.op, read.timeout, read.restart) == (command.id, "restart", 5, True)
    for junk in ({}, {"op": "reboot", "id": "x"}, {"op": "stop"}):
        assert protocol.Control.decode(junk) is None
    with pytest.raises(ValueError):
        protocol.Control("reboot")


STOP, RESTART = protocol.OP_STOP, protocol.OP_RESTART


@pytest.mark.parametrize(
    "pending_op, handled, new_op, winner",
    [
        (None, None, STOP, "new"),
        (None, None, RESTART, "new"),
        (STOP, "other", RESTART, "pending"),  # a restart never replaces a pending stop
        (STOP, "pending", RESTART, "new"),  # the stop was handled: the restart goes through
        (STOP, "other", STOP, "new"),
        (RESTART, "other", STOP, "new"),  # a stop replaces a pending restart
        (RESTART, "other", RESTART, "new"),
        (RESTART, "pending", STOP, "new"),
    ],
)
def test_which_command_wins(pending_op, handled, new_op, winner):
    pending = protocol.Control(pending_op, control_id="pending") if pending_op else None
    new = protocol.Control(new_op, control_id="new")
    chosen = protocol.command_to_write(pending, "pending" if handled == "pending" else "x", new)
    assert chosen.id == winner


def test_exit_codes_and_ready_bytes():
    assert protocol.launcher_exit_code(protocol.READY) == 0
    assert protocol.launcher_exit_code(protocol.LOCKED) == protocol.EXIT_LOCKED == 75
    assert protocol.launcher_exit_code(b"") == 1
    assert [protocol.monitor_is_up(code) for code in (0, 75, 1, -9)] == [True, True, False, False]


def test_concurrent_writers_never_share_a_temporary(model_paths, monkeypatch):
    names = []
    real_open = os.open

    def recording_open(path, *args, **kwargs):
        names.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    for _ in range(2):
        protocol.write_control(model_paths, protocol.Control(STOP))
    temporaries = [name for name in names if ".tmp." in name]
    assert len(temporaries) == 2 and temporaries[0] != temporaries[1]


# -- one owner ---------------------------------------------------------------------

OWNERS = {"lib/core/protocol.py", "lib/core/events.py"}
# Keys only the protocol's files use: spelling one elsewhere means reading a file by hand.
PROTOCOL_KEYS = [
    "deploy_id",
    "control_id",
    "pid_starttime",
    "boot_id",
    "next_start_at",
    "log_id",
    "schema",
]


def spelled_keys(root):
    """(file, key) for every protocol key spelled as a string literal outside its owners."""
    pattern = re.compile(r"""["'](%s)["']""" % "|".join(PROTOCOL_KEYS))
    found = []
    for folder, _, names in os.walk(os.path.join(root, "lib")):
        for name in names:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, root)
            if not name.endswith(".py") or relative in OWNERS:
                continue
            with open(path) as handle:
                found += [(relative, key) for key in pattern.findall(handle.read())]
    return found


def test_no_module_but_the_protocol_spells_its_keys():
    allowed = {("lib/api/openapi.py", "schema")}  # OpenAPI's own "schema" keyword
    assert set(spelled_keys(ROOT)) - allowed == set()


def test_the_key_check_can_fail(tmp_path):
    (tmp_path / "lib" / "daemon").mkdir(parents=True)
    (tmp_path / "lib" / "daemon" / "x.py").write_text('ok = state.get("control_id")\n')
    assert spelled_keys(str(tmp_path)) == [("lib/daemon/x.py", "control_id")]
