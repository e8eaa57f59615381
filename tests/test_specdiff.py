"""Spec comparison, apply planning and label selectors: pure, table-driven."""

import pytest

from lib.core import labelselect, protocol, specdiff
from lib.core import spec as specs
from lib.daemon import applyplan
from lib.errors import ValidationError

BASE = {"name": "m", "command": ["serve", "--port", "{port}"], "port": 8001}


def spec(**changes):
    body = dict(BASE, **changes)
    return specs.parse_spec(body)


@pytest.mark.parametrize(
    "changes, kind, paths",
    [
        ({}, specdiff.UNCHANGED, []),
        ({"labels": {"team": "a"}}, specdiff.IN_PLACE, ["labels.team"]),
        ({"restart": {"policy": "always"}}, specdiff.IN_PLACE, ["restart.policy"]),
        ({"stop": {"timeout": 5}}, specdiff.IN_PLACE, ["stop.timeout"]),
        ({"logs": {"backups": 2}}, specdiff.IN_PLACE, ["logs.backups"]),
        ({"health": {"interval": 9}}, specdiff.IN_PLACE, ["health.interval"]),
        ({"env": {"A": "1"}}, specdiff.RESTART, ["env.A"]),
        ({"command": ["serve2", "{port}"]}, specdiff.RESTART, ["command"]),
        ({"cwd": "/tmp"}, specdiff.RESTART, ["cwd"]),
        ({"port": 8002}, specdiff.RESTART, ["port"]),
        ({"labels": {"x": "1"}, "env": {"A": "1"}}, specdiff.RESTART, ["env.A", "labels.x"]),
    ],
)
def test_classify(changes, kind, paths):
    change = specdiff.classify(spec(), spec(**changes))
    assert (change.kind, change.paths) == (kind, paths)


def test_asking_for_gpus_restarts():
    change = specdiff.classify(spec(), spec(gpus={"count": 1}))
    assert change.kind == specdiff.RESTART and "gpus.count" in change.paths


def test_switching_the_probe_kind_restarts():
    change = specdiff.classify(spec(), spec(health={"tcp": True}))
    assert change.kind == specdiff.RESTART and "health" in change.restart_paths


def test_a_new_default_changes_nothing(monkeypatch):
    record = protocol.Deployment(spec(), 8001, submitted=dict(BASE))
    monkeypatch.setitem(specs.BOUNDS, "stop.timeout", specs.Bound(0, 3600, 45))
    new = specs.parse_spec(dict(BASE))
    assert record.spec["stop"]["timeout"] != new["stop"]["timeout"]  # the stored one is old
    assert specdiff.classify(specdiff.current_spec(record), new).kind == specdiff.UNCHANGED


def test_submitted_form_keeps_secrets_not_masks():
    stored = spec(env={"HF_TOKEN": "s3cret"}, command=["serve", "--api-key", "k1", "{port}"])
    body = dict(BASE, env={"HF_TOKEN": "***"}, command=["serve", "--api-key", "***", "{port}"])
    kept = specdiff.submitted_form(body, stored)
    assert kept["env"]["HF_TOKEN"] == "s3cret" and kept["command"][2] == "k1"


def test_export_shows_references_that_resolve_to_masks():
    body = dict(BASE, env={"HF_TOKEN": "s3cret", "A": "1"})
    record = protocol.Deployment(specs.parse_spec(body), 8001, submitted=body)
    shown = specdiff.exportable(record)
    assert shown["env"] == {"HF_TOKEN": specdiff.SECRET_REFERENCE, "A": "1"}
    assert specdiff.resolve_references(shown)["env"]["HF_TOKEN"] == "***"


def test_export_of_a_record_without_submitted_parses_again():
    record = protocol.Deployment(spec(gpus={"ids": [0]}), 8001)
    assert specs.parse_spec(specdiff.exportable(record))["gpus"]["ids"] == ["0"]


# -- planning ---------------------------------------------------------------------


def current(owner="prod", active=True, **changes):
    return applyplan.Current(spec(**changes), owner, active)


def test_plan_orders_deletes_restarts_in_place_creates():
    wanted = {"a": spec(env={"X": "1"}), "b": spec(labels={"t": "1"}), "c": spec(), "d": spec()}
    now = {"a": current(), "b": current(), "d": current(), "old": current(), "hand": current(None)}
    steps = applyplan.plan("prod", wanted, now, prune=True)
    assert [(step.kind, step.name) for step in steps] == [
        ("delete", "old"),
        ("update-restart", "a"),
        ("update-in-place", "b"),
        ("create", "c"),
        ("unchanged", "d"),
    ]


def test_without_prune_nothing_is_deleted_and_other_sets_are_never_pruned():
    now = {"x": current("prod"), "y": current("staging")}
    assert applyplan.plan("prod", {}, now, prune=False) == []
    assert [step.name for step in applyplan.plan("prod", {}, now, prune=True)] == ["x"]


def test_a_stopped_model_restarts_and_a_hand_deployed_one_is_adopted():
    steps = applyplan.plan("prod", {"m": spec()}, {"m": current(None, active=False)}, False)
    assert steps[0].kind == specdiff.RESTART and steps[0].reason == applyplan.NOT_RUNNING
    assert steps[0].encode()["adopted_from"] is None and steps[0].adopt == ""


def test_an_empty_prune_needs_prune_all_and_names_are_unique():
    with pytest.raises(ValidationError):
        applyplan.check_request("prod", [], True, False)
    applyplan.check_request("prod", [], True, True)
    with pytest.raises(ValidationError, match="second time"):
        applyplan.check_request("prod", ["a", "a"], False, False)


# -- selectors --------------------------------------------------------------------


@pytest.mark.parametrize(
    "texts, labels, expected",
    [
        (["team=search"], {"team": "search"}, True),
        (["team=search"], {"team": "ads"}, False),
        (["team=search", "tier=prod"], {"team": "search"}, False),
        (["team=search,tier=prod"], {"team": "search", "tier": "prod"}, True),
        (["tier!=canary"], {}, True),
        (["tier!=canary"], {"tier": "canary"}, False),
        (["gpu"], {"gpu": ""}, True),
        (["!gpu"], {"gpu": ""}, False),
    ],
)
def test_selectors(texts, labels, expected):
    assert labelselect.matches(labelselect.parse(texts), labels) is expected


def test_a_bad_selector_names_the_parameter():
    with pytest.raises(ValidationError, match="label"):
        labelselect.parse(["=x"])
