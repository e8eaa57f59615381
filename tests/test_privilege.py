"""Least privilege (issue 17): token scopes on every route, run as a user, the allow-list,
resource limits through a cgroup or rlimits."""

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from conftest import MODELS, TOKEN, assert_error, model, wait_until
from lib.api import scopes
from lib.core import allowexec, cgroups, identity, paths, tokens, vocabulary
from lib.errors import ExecNotAllowedError, ValidationError

ROOT = os.geteuid() == 0


def _bottle_app(wsgi):
    import bottle

    while not isinstance(wsgi, bottle.Bottle):
        wsgi = wsgi.app
    return wsgi


def _settings(home, **extra):
    from lib.api import app as api_module

    store = tokens.TokenStore(paths.Home(home).tokens)
    return api_module.Settings(token=TOKEN, version="test", tokens=store, **extra)


def _named(home, scope):
    _, token = tokens.create_named(
        paths.Home(home).tokens, "t-" + scope, scope, vocabulary.SCOPES, time.time()
    )
    return token


@pytest.fixture
def scoped(supervisor, home):
    import webtest

    from lib.api import app as api_module

    wsgi = api_module.make_app(supervisor, _settings(home))
    return wsgi, webtest.TestApp(wsgi, extra_environ={"REMOTE_ADDR": "127.0.0.1"})


def _routes(wsgi):
    return [(route.method, route.rule) for route in _bottle_app(wsgi).routes]


def test_every_route_declares_its_scope(scoped):
    wsgi, _ = scoped
    undeclared = [route for route in _routes(wsgi) if not scopes.declared(*route)]
    assert undeclared == [], "add these routes to lib.api.scopes.ROUTE_SCOPES: %s" % undeclared


def test_an_undeclared_route_needs_admin():
    assert scopes.required("GET", "/brand-new") == vocabulary.SCOPE_ADMIN
    assert scopes.required("DELETE", "/models/<name>") == vocabulary.SCOPE_OPERATE
    assert scopes.required("DELETE", "/models/<name>", {"purge": "true"}) == "admin"
    assert scopes.required("DELETE", "/models/<name>", {"purge": "maybe"}) == "admin"


def _concrete(rule):
    return rule.replace("<name>", "nosuch").replace("<filename>", "index.html")


def test_each_scope_against_every_route(scoped, home):
    wsgi, client = scoped
    for scope in vocabulary.SCOPES:
        token = _named(home, scope)
        for method, rule in _routes(wsgi):
            needed = scopes.required(method, rule)
            response = client.request(
                _concrete(rule),
                method=method,
                headers={"Authorization": "Bearer " + token},
                body=b"{}" if method in ("POST", "PUT") else None,
                status="*",
            )
            where = "%s %s with %s" % (method, rule, scope)
            if scopes.allows(scope, needed):
                assert response.status_int not in (401, 403), where
            else:
                assert_error(response, 403, "forbidden")
                assert response.json["error"]["details"]["scope"] == needed, where


def test_a_read_token_scrapes_metrics_and_reads_but_cannot_deploy(scoped, home, tag):
    _, client = scoped
    auth = {"Authorization": "Bearer " + _named(home, "read")}
    assert client.get("/metrics", headers=auth).status_int == 200
    assert client.get("/models", headers=auth).status_int == 200
    body = {"name": "m1", "command": model("sleeper.py", tag=tag)}
    response = client.post_json("/models", body, headers=auth, status="*")
    assert_error(response, 403, "forbidden")
    assert response.json["error"]["details"] == {"scope": "admin", "token": "t-read"}
    purge = client.delete("/models/nosuch?purge=true", headers=auth, status="*")
    assert_error(purge, 403, "forbidden")


def test_tokens_are_stored_hashed_and_revoked_at_once(scoped, home):
    _, client = scoped
    admin = {"Authorization": "Bearer " + TOKEN}
    created = client.post_json("/tokens", {"name": "grafana", "scope": "read"}, headers=admin)
    token = created.json["token"]
    with open(paths.Home(home).tokens) as handle:
        stored = handle.read()
    assert token not in stored and tokens.digest(token) in stored
    assert oct(os.stat(paths.Home(home).tokens).st_mode & 0o777) == "0o600"
    listed = client.get("/tokens", headers=admin).json["tokens"]
    assert [(t["name"], t["scope"]) for t in listed] == [("grafana", "read")]
    assert "sha256" not in listed[0]
    mine = {"Authorization": "Bearer " + token}
    assert client.get("/models", headers=mine).status_int == 200
    assert_error(client.get("/tokens", headers=mine, status="*"), 403, "forbidden")
    client.delete("/tokens/grafana", headers=admin)
    assert_error(client.get("/models", headers=mine, status="*"), 401, "unauthorized")


def test_the_cli_creates_lists_and_revokes(home, capsys):
    from lib.cli import modeld

    assert modeld.main(["token", "create", "prom", "--scope", "read", "--home", home]) == 0
    token = capsys.readouterr().out.strip()
    store = tokens.TokenStore(paths.Home(home).tokens)
    assert store.identify(token) == ("prom", "read")
    assert modeld.main(["token", "list", "--home", home]) == 0
    assert "prom" in capsys.readouterr().out
    assert modeld.main(["token", "revoke", "prom", "--home", home]) == 0
    assert store.identify(token) is None


def test_a_revoked_tokens_follower_is_cut(supervisor, home):
    from conftest import LiveServer

    server = LiveServer(supervisor, tokens=tokens.TokenStore(paths.Home(home).tokens))
    try:
        token = _named(home, "read")
        request = urllib.request.Request(
            server.url + "/events?follow=true", headers={"Authorization": "Bearer " + token}
        )
        ended = threading.Event()

        def follow():
            with urllib.request.urlopen(request, timeout=30) as stream:
                stream.read()  # until the server ends the stream
            ended.set()

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        time.sleep(0.5)
        assert not ended.is_set()
        tokens.revoke_named(paths.Home(home).tokens, "t-read")
        assert ended.wait(5), "the follow stream outlived its revoked token"
    finally:
        server.stop()


# -- the allow-list ---------------------------------------------------------------------


def test_allow_list_hits_misses_and_symlink_swaps(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = bin_dir / "server"
    real.write_text("#!/bin/sh\n")
    real.chmod(0o755)
    link = bin_dir / "python-link"
    link.symlink_to(real)
    allowed = allowexec.AllowList([str(bin_dir / "s*"), str(link)])
    assert allowed.refusal(str(real)) is None
    assert allowed.refusal(str(link)) is None  # pinned: what it pointed to at start
    assert "matches no" in allowed.refusal("/bin/sh")
    assert "matches no" in allowed.refusal(str(tmp_path / "bin" / "sub" / "server"))
    link.unlink()
    link.symlink_to("/bin/sh")  # swapped after the daemon started
    assert "resolves to" in allowed.refusal(str(link))
    with pytest.raises(ExecNotAllowedError) as refused:
        allowed.check(str(link), {}, "/")
    assert refused.value.details["field"] == "command[0]"
    assert allowexec.AllowList().refusal("/bin/sh") is None  # no flag: as before


def _policy_supervisor(home, **policy):
    from lib.daemon import privilege
    from lib.daemon.supervisor import Supervisor

    instance = Supervisor(paths.Home(home), sample_interval=0.2, policy=privilege.Policy(**policy))
    instance.start()
    return instance


def test_deploy_refuses_a_program_off_the_list(home, tag):
    from lib.daemon import privilege

    allow = allowexec.AllowList([os.path.realpath(sys.executable)])
    supervisor = _policy_supervisor(home, allow_list=allow)
    try:
        with pytest.raises(ExecNotAllowedError) as refused:
            supervisor.deploy({"name": "sh", "command": ["/bin/sh", "-c", "sleep 1"]})
        assert refused.value.status == 403
        assert "command[0]" in refused.value.message and "/bin/sh" in refused.value.message
        # the monitor checks again before every spawn, with the list the daemon hands down
        assert privilege.allowexec.ENVIRON in supervisor.environ
    finally:
        supervisor.shutdown(stop_models=True, timeout=10)


# -- run as a user -----------------------------------------------------------------------


@pytest.fixture
def test_user():
    if not ROOT:
        pytest.skip("creating a user needs root")
    name = "mdt%d" % os.getpid()
    subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/false", name], check=True)
    subprocess.run(["groupadd", "%sx" % name], check=True)
    try:
        import pwd

        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False)
        subprocess.run(["groupdel", "%sx" % name], check=False)


def _system_python():
    """A Python another user may run (this venv's may live under /root)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("no system python3 for the test user")


def _status_ids(pid):
    with open("/proc/%d/status" % pid) as handle:
        fields = dict(line.split(":", 1) for line in handle.read().splitlines() if ":" in line)
    return fields["Uid"].split(), fields["Gid"].split(), fields["Groups"].split()


def _environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as handle:
        pairs = handle.read().split(b"\0")
    return dict(pair.decode().split("=", 1) for pair in pairs if b"=" in pair)


def test_a_model_runs_as_the_user_and_its_logs_are_written(home, tag, test_user):
    import grp

    extra = grp.getgrnam(test_user.pw_name + "x").gr_gid
    supervisor = _policy_supervisor(home, default_user=test_user.pw_name)
    try:
        body = {
            "name": "m1",
            "command": [_system_python()] + model("sleeper.py", tag=tag)[1:],
            "extra_groups": [test_user.pw_name + "x"],
        }
        supervisor.deploy(body)
        wait_until(lambda: supervisor.describe("m1")["status"] == "running")
        pid = supervisor.describe("m1")["pid"]
        uids, gids, groups = _status_ids(pid)
        assert set(uids) == {str(test_user.pw_uid)}
        assert set(gids) == {str(test_user.pw_gid)}
        assert str(extra) in groups and "0" not in groups
        env = _environ(pid)
        assert env["USER"] == env["LOGNAME"] == test_user.pw_name
        assert env["HOME"] == "/nonexistent"
        assert supervisor.describe("m1")["spec"]["user"] == test_user.pw_name
        from lib.logs import reader

        logs = reader.LogReader(paths.Home(home).model("m1").logs)
        wait_until(lambda: logs.total_bytes() > 0, message="the model's log")
    finally:
        supervisor.shutdown(stop_models=True, timeout=10)


def test_preflight_checks_the_user_can_execute_and_enter(home, tmp_path, test_user):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    script = private / "serve"
    script.write_text("#!/bin/sh\nsleep 1\n")
    script.chmod(0o700)
    supervisor = _policy_supervisor(home)
    try:
        with pytest.raises(ValidationError) as refused:
            supervisor.deploy({"name": "a", "command": [str(script)], "user": test_user.pw_name})
        assert refused.value.field == "command[0]"
        with pytest.raises(ValidationError) as refused:
            supervisor.deploy(
                {"name": "b", "command": ["/bin/true"], "cwd": str(private), "user": "nobody"}
            )
        assert refused.value.field == "cwd"
    finally:
        supervisor.shutdown(stop_models=True, timeout=10)


def test_a_daemon_that_is_not_root_refuses_another_user():
    spec = {"user": "root", "group": None, "extra_groups": []}
    run_as = identity.resolve(spec)
    with pytest.raises(ValidationError) as refused:
        identity.check_may_switch(spec, run_as, euid=4321)
    assert refused.value.field == "user"
    identity.check_may_switch(spec, run_as, euid=0)  # root may


# -- limits ------------------------------------------------------------------------------


def test_limits_nothing_can_enforce_are_a_400(home):
    supervisor = _policy_supervisor(home)  # no cgroup host: rlimits only
    try:
        body = {"name": "m", "command": ["/bin/true"], "limits": {"memory_bytes": 2**30}}
        with pytest.raises(ValidationError) as refused:
            supervisor.deploy(body)
        assert refused.value.field == "limits.memory_bytes"
        assert "RLIMIT_AS" in refused.value.message
    finally:
        supervisor.shutdown(stop_models=True, timeout=10)


def test_rlimits_apply_without_a_cgroup(home, tag):
    supervisor = _policy_supervisor(home)
    try:
        body = {
            "name": "r",
            "command": model("sleeper.py", tag=tag),
            "limits": {"open_files": 64, "core_bytes": 0},
        }
        supervisor.deploy(body)
        wait_until(lambda: supervisor.describe("r")["status"] == "running")
        described = supervisor.describe("r")
        assert described["limits_enforcement"] == {"open_files": "rlimit", "core_bytes": "rlimit"}
        with open("/proc/%d/limits" % described["pid"]) as handle:
            text = handle.read()
        assert [line for line in text.splitlines() if "open files" in line][0].split()[3:5] == [
            "64",
            "64",
        ]
    finally:
        supervisor.shutdown(stop_models=True, timeout=10)


@pytest.fixture
def cgroup_host(home):
    host, reason = cgroups.detect(home)
    if host is None or not (host.has("memory") and host.has("pids")):
        pytest.skip("no cgroup with memory and pids that modeld may create here: %s" % reason)
    return host


ALLOCATE = (
    "import sys, time\nprint('allocating', flush=True)\nblocks = []\n"
    "for _ in range(400):\n    blocks.append(bytearray(1 << 20))\n"
    "print('survived', flush=True)\ntime.sleep(30)\n"
)
FORK = (
    "import subprocess, sys, time\nstarted = 0\n"
    "for _ in range(20):\n"
    "    try:\n        subprocess.Popen(['sleep', '30']); started += 1\n"
    "    except OSError:\n        break\n"
    "print('started', started, flush=True)\ntime.sleep(30)\n"
)


def test_memory_limit_oom_kill_is_classified(home, tag, cgroup_host):
    supervisor = _policy_supervisor(home, cgroup_host=cgroup_host)
    try:
        body = {
            "name": "hog",
            "command": [sys.executable, "-c", ALLOCATE, tag],
            "limits": {"memory_bytes": 64 * 1024 * 1024},
            "restart": {"policy": "no"},
        }
        supervisor.deploy(body)
        wait_until(lambda: supervisor.describe("hog")["status"] in vocabulary.TERMINAL, 30)
        described = supervisor.describe("hog")
        assert described["limits_enforcement"]["memory_bytes"] == cgroup_host.mechanism
        assert described["last_exit"]["reason"] == vocabulary.REASON_OOM_KILLED
        assert described["last_exit"]["limit"] == {"memory_bytes": 64 * 1024 * 1024}
    finally:
        supervisor.shutdown(stop_models=True, timeout=10)
    wait_until(lambda: not os.path.exists(cgroup_host.model("hog").dirs["memory"]))


def test_tasks_limit_is_enforced_and_the_stop_empties_the_cgroup(home, tag, cgroup_host):
    supervisor = _policy_supervisor(home, cgroup_host=cgroup_host)
    group = cgroup_host.model("forker")
    try:
        body = {"name": "forker", "command": [sys.executable, "-c", FORK, tag]}
        body["limits"] = {"tasks": 5}
        supervisor.deploy(body)
        wait_until(lambda: supervisor.describe("forker")["status"] == "running")
        with open(os.path.join(group.dirs["pids"], "pids.max")) as handle:
            assert handle.read().strip() == "5"
        pid = supervisor.describe("forker")["pid"]
        assert pid in group.pids()
        wait_until(lambda: len(group.pids()) >= 2, message="children in the cgroup")
        time.sleep(0.5)
        assert len(group.pids()) <= 5
        supervisor.stop("forker", timeout=5)
        assert group.pids() == []
    finally:
        supervisor.shutdown(stop_models=True, timeout=10)


def test_cgroup_detection_parses_v1_and_v2(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "30 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "31 25 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
    )
    assert cgroups._mounts(info.read_text()) == {
        "memory": "/sys/fs/cgroup/memory",
        "": "/sys/fs/cgroup/unified",
    }
    assert cgroups._membership("4:memory:/a/b\n0::/c\n") == {"memory": "/a/b", "": "/c"}
    host = cgroups.CgroupHost(2, {"memory": "/x"})
    assert cgroups.from_environ({cgroups.ENVIRON: host.to_environ()}).bases == {"memory": "/x"}
    assert json.loads(host.to_environ())["version"] == 2
    assert MODELS  # the test models' folder exists for the real-process tests above
