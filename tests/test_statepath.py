"""The fast status path with real processes: the daemon answers from memory, the
monitors' datagrams keep it current, and the files stay the truth.

Each test compares what ``GET /models/{name}`` says with the monitor's
``state.json`` (read here with ``protocol.read_state``, as the daemon would).
"""

import os
import time

from conftest import model, wait_until
from lib.core import notify, paths, protocol, vocabulary
from lib.daemon import statecache

# Well under the safety net's bound: a change seen this fast came by its datagram.
PROMPTLY = 1.0
# A loaded test machine schedules the sweep late: what the bound may stretch to here.
SLACK = 1.5


def deploy(client, tag, name, script, *args, **extra):
    spec = {"name": name, "command": model(script, *args, tag=tag), "health": {"start_period": 0}}
    spec.update(extra)
    return client.deploy(spec)


def file_status(home, name):
    state = protocol.read_state(paths.Home(home).model(name))
    return None if state is None else state.status


def seconds_until_shown(client, home, name, status):
    """Wait for the file to say ``status``, then: how long until the API says it too."""
    wait_until(lambda: file_status(home, name) == status, message="%s in the file" % status)
    written = time.monotonic()
    wait_until(
        lambda: client.get(name)["status"] == status,
        timeout=statecache.LOST_NOTIFICATION_BOUND + SLACK + 5,
        interval=0.01,
        message="%s through the API" % status,
    )
    return time.monotonic() - written


def test_a_state_change_is_visible_through_the_api_promptly(daemon, home, tag):
    daemon.start()
    client = daemon.client()
    deploy(client, tag, "crash", "crasher.py", 3, 1.0, restart={"policy": "no"})
    assert client.get("crash")["status"] == vocabulary.RUNNING
    assert seconds_until_shown(client, home, "crash", vocabulary.EXITED) < PROMPTLY
    assert client.get("crash")["last_exit"]["code"] == 3


def test_after_kill_9_a_new_daemon_reports_from_the_files(daemon, home, tag):
    daemon.start()
    client = daemon.client()
    deploy(client, tag, "steady", "sleeper.py")
    deploy(client, tag, "crash", "crasher.py", 3, 1.5, restart={"policy": "no"})
    monitors = {item["name"]: item["monitor"]["pid"] for item in client.list()}
    daemon.kill()
    # The crash happens while no daemon listens: its datagram goes nowhere.
    wait_until(lambda: file_status(home, "crash") == vocabulary.EXITED, message="the crash")
    daemon.start()
    client = daemon.client()
    listed = {item["name"]: item for item in client.list()}  # at once: no wait
    assert listed["crash"]["status"] == vocabulary.EXITED
    assert listed["crash"]["last_exit"]["code"] == 3
    assert listed["steady"]["status"] == vocabulary.RUNNING
    assert listed["steady"]["monitor"]["pid"] == monitors["steady"]  # adopted, not restarted


def test_a_monitor_whose_datagrams_fail_still_shows_its_state_within_the_bound(daemon, home, tag):
    # Someone else holds the notification address and never reads: the daemon cannot
    # bind it, and every monitor's datagram is dropped (refused or queue full).
    squatter = notify.Listener(home)
    try:
        daemon.start()
        client = daemon.client()
        deploy(client, tag, "crash", "crasher.py", 3, 1.0, restart={"policy": "no"})
        deploy(client, tag, "steady", "sleeper.py")
        took = seconds_until_shown(client, home, "crash", vocabulary.EXITED)
        assert took < statecache.LOST_NOTIFICATION_BOUND + SLACK
        assert client.get("steady")["status"] == vocabulary.RUNNING  # its monitor lives on
        stopped = client.stop("steady")  # the wait paths work without datagrams too
        assert stopped["status"] == vocabulary.STOPPED
        with open(os.path.join(home, "daemon.log")) as handle:
            assert "no change notifications" in handle.read()
    finally:
        squatter.close()


def test_with_no_sweep_a_change_arrives_by_its_datagram(supervisor, tag):
    """The safety net off, and a monitor that stays alive (reconcile reads the file of a
    dead one): only the monitor's datagram can bring the news of the crash."""
    supervisor.states.stale_after = 3600.0
    command = model("crasher.py", 3, 2.0, tag=tag)
    spec = {"name": "crash", "command": command, "health": {"start_period": 0}}
    supervisor.deploy(dict(spec, restart={"policy": "on-failure", "max_retries": 5}))
    assert supervisor.describe("crash")["last_exit"] is None
    wait_until(
        lambda: (supervisor.describe("crash")["last_exit"] or {}).get("code") == 3,
        timeout=10,
        message="the exit, by datagram",
    )
