"""Observing every model at once: /metrics (parsed by prometheus_client and checked by
promtool), counters that survive a daemon restart, /logs merged across models with
cursors, /events from the tail and followed, and modelctl logs --all / events -f / top."""

import io
import json
import os
import shutil
import subprocess
import threading
import urllib.request

import pytest

from conftest import TOKEN, model, wait_until
from lib.api import metrics
from lib.cli import modelctl
from lib.daemon import eventfeed, telemetry

WEIRD = 'q"u\\o\nte \u00e9\u6f22 <b>'


def deploy(api, tag, name, script, *args, labels=None):
    spec = {"name": name, "command": model(script, *args, tag=tag), "health": {"start_period": 0}}
    if labels:
        spec["labels"] = labels
    return api.post_json("/models", spec).json


def parse(text):
    from prometheus_client.parser import text_string_to_metric_families

    return {family.name: family for family in text_string_to_metric_families(text)}


def sample_value(families, name, **labels):
    for family in families.values():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError("no sample %s%s" % (name, labels))


# -- the exposition, unit by unit -------------------------------------------------


def test_escaping_round_trips_through_the_prometheus_parser():
    family = metrics.Family("modeld_model_info", "info", 'help with \\ and\nnewline "quotes"')
    family.add({"model": "m", "label_x": WEIRD}, 1)
    parsed = parse(metrics.render([family]))
    sample = parsed["modeld_model_info"].samples[0]
    assert sample.labels["label_x"] == WEIRD
    assert parsed["modeld_model_info"].documentation == 'help with \\ and\nnewline "quotes"'


@pytest.mark.parametrize(
    "name, kind",
    [
        ("model_up", "gauge"),  # no prefix
        ("modeld_restarts", "counter"),  # a counter without _total
        ("modeld_up_total", "gauge"),  # _total on a gauge
        ("modeld_modeld_up", "gauge"),  # the prefix twice
        ("modeld_build", "info"),  # an info series without _info
    ],
)
def test_names_that_break_the_rules_are_refused(name, kind):
    with pytest.raises(ValueError):
        metrics.Family(name, kind, "x")


def test_values_render_as_the_format_wants():
    assert [metrics.format_value(v) for v in (True, 3, 0.5, None, float("inf"))] == [
        "1",
        "3",
        "0.5",
        "NaN",
        "+Inf",
    ]


def test_tally_counts_exits_restarts_and_startup_from_events(tmp_path):
    path = str(tmp_path / "events.jsonl")
    rows = [
        ("2026-01-01T00:00:00.000000Z", None, "starting", None),
        ("2026-01-01T00:00:02.500000Z", "starting", "running", None),
        ("2026-01-01T00:00:03.000000Z", "running", "backoff", "cuda_out_of_memory"),
        ("2026-01-01T00:00:04.000000Z", "backoff", "starting", None),
    ]
    with open(path, "w") as handle:
        for at, old, new, reason in rows:
            event = {"at": at, "from": old, "to": new, "exit": reason and {"reason": reason}}
            handle.write(json.dumps(event) + "\n")
        handle.write('{"at": "torn')
    tally = telemetry.Tally()
    assert tally.read_events(path)
    assert tally.exits == {"cuda_out_of_memory": 1} and tally.restarts == 1
    assert tally.startup_seconds == 2.5
    os.replace(path, path + ".1")  # a rotation: the torn line was finished before it
    with open(path + ".1", "a") as handle:
        handle.write('", "from": "starting", "to": "failed", "exit": {"reason": "killed"}}\n')
    with open(path, "w") as handle:
        handle.write(json.dumps({"at": "x", "from": "a", "to": "exited", "exit": None}) + "\n")
    tally = telemetry.Tally(json.loads(json.dumps(tally.to_json())))  # as saved and loaded
    assert tally.read_events(path)
    assert tally.exits == {"cuda_out_of_memory": 1, "killed": 1}
    assert not tally.read_events(path)


def test_event_tail_equals_reading_everything(tmp_path):
    paths = []
    for index in range(3):
        path = str(tmp_path / ("e%d.jsonl" % index))
        with open(path + ".1", "w") as old, open(path, "w") as new:
            for second in range(400):
                handle = old if second < 200 else new
                at = "2026-01-01T00:%02d:%02d.%06dZ" % (second // 60, second % 60, index)
                handle.write(json.dumps({"at": at, "model": "m%d" % index, "to": "x"}) + "\n")
        paths.append(path)
    everything = []
    for path in paths:
        for name in (path + ".1", path):
            with open(name) as handle:
                everything.extend(json.loads(line) for line in handle)
    everything.sort(key=lambda event: event["at"])
    assert eventfeed.newest(paths, 100) == everything[-100:]
    assert eventfeed.newest(paths, 1000) == everything[-1000:]
    since = 1767225600 * 1_000_000 + 390 * 1_000_000  # 00:06:30
    assert eventfeed.newest(paths, 10_000, since) == [
        event for event in everything if event["at"] >= "2026-01-01T00:06:30"
    ]


# -- through the app --------------------------------------------------------------


@pytest.fixture
def two_models(api, supervisor, tag):
    deploy(api, tag, "alpha", "ticker.py", "0.02", labels={"team.name": WEIRD})
    deploy(api, tag, "beta", "weird.py")
    wait_until(lambda: supervisor.sampler.get("beta") is not None, message="a sample")
    return api


def test_metrics_describe_every_model_and_parse(two_models, supervisor):
    wait_until(lambda: "beta" in supervisor.telemetry.tallies, message="the first tally")
    response = two_models.get("/metrics")
    assert response.headers["Content-Type"] == metrics.CONTENT_TYPE
    families = parse(response.text)
    assert sample_value(families, "modeld_model_up", model="alpha") == 1
    assert sample_value(families, "modeld_model_status", model="beta", status="running") == 1
    assert sample_value(families, "modeld_model_status", model="beta", status="failed") == 0
    info = sample_value(families, "modeld_model_info", model="alpha", label_team_name=WEIRD)
    assert info == 1
    assert (
        sample_value(families, "modeld_model_log_lines_total", model="beta", stream="stderr") >= 1
    )
    assert sample_value(families, "modeld_build_info", version="test") == 1
    assert sample_value(families, "modeld_model_resident_memory_bytes", model="alpha") > 0
    requests = families["modeld_http_requests"].samples
    assert any(s.labels == {"method": "POST", "route": "/models", "code": "201"} for s in requests)
    for family in families.values():
        for sample in family.samples:
            assert not set(sample.labels) & {"pid", "port", "path", "code"} or (
                family.name == "modeld_http_requests"
            )


def test_metrics_need_the_token_unless_told(supervisor):
    import webtest

    from lib.api import app as api_module

    for no_auth, status in ((False, 401), (True, 200)):
        settings = api_module.Settings(token=TOKEN, version="t", metrics_no_auth=no_auth)
        app = webtest.TestApp(api_module.make_app(supervisor, settings))
        assert app.get("/metrics", status="*").status_int == status
        assert app.get("/models", status="*").status_int == 401


def test_metrics_no_auth_is_refused_off_loopback():
    from lib.daemon import config

    with pytest.raises(config.ConfigError, match="metrics-no-auth"):
        config.DaemonConfig(host="0.0.0.0", metrics_no_auth=True).check()
    config.DaemonConfig(host="127.0.0.1", metrics_no_auth=True).check()


def test_counters_survive_a_new_supervisor(two_models, supervisor, home):
    from lib.core import paths
    from lib.daemon.supervisor import Supervisor

    wait_until(lambda: supervisor.telemetry.tally("beta").lines.get("stdout/info"), message="n")
    before = dict(supervisor.telemetry.tally("beta").lines)
    again = telemetry.Telemetry(supervisor.names, paths.Home(home).model)
    again.refresh()
    after = again.tally("beta").lines
    assert after["stdout/info"] == before["stdout/info"] and after == before
    del Supervisor


def test_promtool_accepts_the_metrics(two_models, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing in CI: tests/run.sh installs Debian's prometheus")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    text = two_models.get("/metrics").text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_logs_across_models_merge_by_time_and_page_without_gaps(two_models, supervisor):
    wait_until(lambda: supervisor.describe("alpha")["metrics"]["log_bytes"] > 2000, message="logs")
    first = two_models.get("/logs?limit=7").json
    pages, cursor = [first["entries"]], first["next_cursor"]
    for _ in range(5):
        page = two_models.get("/logs", {"limit": "7", "cursor": cursor}).json
        pages.append(page["entries"])
        cursor = page["next_cursor"]
    seen = [(entry["model"], entry["seq"]) for page in pages for entry in page]
    assert len(seen) == len(set(seen)) == 42
    times = [entry["ts"] for page in pages for entry in page]
    assert times == sorted(times)
    for name in ("alpha", "beta"):
        seqs = [seq for owner, seq in seen if owner == name]
        assert seqs == list(range(1, len(seqs) + 1))  # no gap in either model
    found = two_models.get("/logs", {"grep": "known line", "tail": "5"}).json["entries"]
    assert [(e["model"], e["msg"]) for e in found] == [("beta", "known line 42")]
    assert two_models.get("/logs?cursor=bogus", status=400).json["error"]["details"]


def test_events_follow_streams_new_events(live, supervisor, tag):
    client = live.client()
    client.deploy({"name": "one", "command": model("sleeper.py", tag=tag)})
    request = urllib.request.Request(
        live.url + "/events?follow=true&limit=1", headers={"Authorization": "Bearer " + TOKEN}
    )
    seen, done = [], threading.Event()

    def read():
        with urllib.request.urlopen(request, timeout=30) as response:
            for line in response:
                if line.strip():
                    seen.append(json.loads(line))
                    if seen[-1]["to"] == "stopped":
                        done.set()
                        return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    wait_until(lambda: seen, message="the backlog")
    client.stop("one")
    assert done.wait(15), seen
    assert [event["to"] for event in seen][-2:] == ["stopping", "stopped"]


def test_modelctl_logs_all_events_and_top(live, supervisor, tag):
    client = live.client()
    for name in ("m1", "m2"):
        client.deploy({"name": name, "command": model("weird.py", tag=tag)})
    wait_until(lambda: "known line" in str(client.logs("m2", tail=5)), message="the line")

    def run(*args):
        out, err = io.StringIO(), io.StringIO()
        code = modelctl.main(["--host", live.url, "--token", TOKEN] + list(args), out, err)
        assert code == 0, err.getvalue()
        return out.getvalue()

    text = run("logs", "--all", "--grep", "known line")
    assert "m1" in text and "m2" in text and "known line 42" in text
    assert [
        json.loads(line)["model"]
        for line in run("logs", "--all", "--json", "-n", "2").split("\n")
        if line
    ]
    assert "m1 " in run("events", "--since", "1h")
    table = run("top", "--once")
    assert "m1" in table and "running" in table and "GPU MEM" in table
