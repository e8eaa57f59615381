"""In-place updates through the OS seam: a monitor rereads its settings on SIGUSR1.

The daemon's half is writing ``deployment.json`` with ``generation`` + 1 (``protocol``,
"Reload"); here the test writes it, then calls the monitor's SIGUSR1 handler as its loop
would, and checks the new settings act without a new spawn.
"""

import signal

from test_monitor_unit import make_monitor, published, send, turn

from lib.core import fsutil, protocol, vocabulary
from lib.core import spec as specs
from lib.monitor import reload


def bump(monitor, **changes):
    """The daemon's in-place update: the new spec, the next generation, same run."""
    record = protocol.Deployment.decode(fsutil.read_json(monitor.paths.deployment))
    body = {"name": "m", "command": ["model-server"], "stop": {"timeout": 10}}
    body.update(changes)
    record.spec = specs.parse_spec(body)
    record.generation += 1
    fsutil.write_json_atomic(monitor.paths.deployment, record.encode())
    monitor._reload_settings()
    return record


def test_a_new_generation_changes_the_stop_settings_without_a_spawn(tmp_path, system):
    monitor = make_monitor(tmp_path, system)
    bump(monitor, stop={"signal": "SIGINT", "timeout": 3}, labels={"team": "a"})
    assert len(system.spawned) == 1 and monitor.life.pid == 101
    assert published(monitor).spec_generation == 2
    system.ignore.add(101)
    send(monitor, system, protocol.OP_STOP)
    assert system.signals() == [("killpg", 101, signal.SIGINT)]
    turn(monitor, system, 3.5)
    assert ("kill", 101, signal.SIGKILL) in system.signals()  # after 3 s, not 10


def test_a_new_restart_policy_decides_the_next_exit(tmp_path, system):
    monitor = make_monitor(tmp_path, system, restart={"policy": "always"})
    bump(monitor, restart={"policy": "no"})
    system.exit(101, 1)
    turn(monitor, system, 0.1)
    assert monitor.life.status == vocabulary.EXITED
    assert len(system.spawned) == 1


def test_log_rotation_and_probe_timings_are_taken(tmp_path, system):
    monitor = make_monitor(tmp_path, system, health={"tcp": True}, port=9000)
    bump(
        monitor,
        health={"tcp": True, "interval": 7, "retries": 9},
        port=9000,
        logs={"max_bytes": 4096, "backups": 2},
    )
    assert monitor.prober.health["interval"] == 7 and monitor.life.probe["retries"] == 9
    assert (monitor.writer.max_bytes, monitor.writer.backups) == (4096, 2)


def test_the_same_or_an_older_generation_is_ignored(tmp_path, system):
    monitor = make_monitor(tmp_path, system)
    monitor._reload_settings()  # a SIGUSR1 for a control command: nothing to reload
    assert monitor.deployment.generation == 1
    other = protocol.Deployment(monitor.spec, None, run=3, deploy_id="d1", generation=5)
    assert not reload.newer_deployment(monitor.deployment, other)  # another run: not ours
