"""modelctl's declarative verbs: ``apply``, ``diff``, ``export-spec``, and label selectors
for ``ps``, ``stop``, ``start`` and ``restart``.

A models file is ``{"set": "prod", "defaults": {...}, "models": [spec, ...]}``, JSON, or
YAML when PyYAML is importable here (the daemon only ever receives JSON). ``set``
defaults to the file's name without its extension; ``defaults`` is merged into every
spec (the spec wins; maps such as ``env`` and ``labels`` are merged key by key).
"""

import json
import os
import re
import sys
import time

from lib import errors
from lib.cli import spec_flags
from lib.core import vocabulary

EXIT_PARTIAL = 8  # apply: some steps failed or were skipped (the table in lib.cli.modelctl)
APPLY_RETRY = 0.5
DISRUPTIVE = ("delete", "update-restart")


def add_parsers(verbs, json_flag):
    """``apply``, ``diff`` and ``export-spec``."""
    apply = verbs.add_parser(
        "apply", parents=[json_flag], help="apply a models file: plan, then act"
    )
    diff = verbs.add_parser("diff", parents=[json_flag], help="the plan of a models file only")
    for parser in (apply, diff):
        parser.add_argument("-f", "--file", required=True, help="models.json or models.yaml")
        parser.add_argument("--prune", action="store_true", help="delete the set's models absent")
        parser.add_argument(
            "--prune-all", action="store_true", help="with an empty file: prune the whole set"
        )
    apply.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    apply.add_argument("-y", "--yes", action="store_true", help="do not ask before deletes")
    apply.add_argument("--wait", action="store_true", help="until every model touched is ready")
    apply.add_argument("--timeout", type=float, help="seconds for --wait, and for the retries")
    export_spec = verbs.add_parser(
        "export-spec", parents=[json_flag], help="a model's spec, to apply again (secrets kept)"
    )
    export_spec.add_argument("name")


def selector_flags(parser, all_help=None):
    """``-l/--label`` (repeatable) and, for stop, ``--all``; NAME becomes optional."""
    parser.add_argument(
        "-l",
        "--label",
        action="append",
        default=[],
        metavar="SELECTOR",
        help="team=search, key!=value, key; repeat for AND",
    )
    if all_help:
        parser.add_argument("--all", action="store_true", help=all_help)


# -- the models file -----------------------------------------------------------------


def load_models_file(path, prune=False, prune_all=False):
    """The ``POST /apply`` body of a models file (``UsageError`` if it is not one)."""
    document = _read(path)
    if not isinstance(document, dict):
        raise spec_flags.UsageError("%s must hold an object with a models list" % path)
    unknown = set(document) - {"set", "defaults", "models"}
    if unknown:
        raise spec_flags.UsageError(
            "%s: unknown key(s) %s (use set, defaults, models)" % (path, ", ".join(sorted(unknown)))
        )
    models, defaults = document.get("models"), document.get("defaults") or {}
    if not isinstance(models, list) or not isinstance(defaults, dict):
        raise spec_flags.UsageError("%s: models must be a list and defaults an object" % path)
    return {
        "set": document.get("set") or default_set_name(path),
        "models": [merge(defaults, spec) if isinstance(spec, dict) else spec for spec in models],
        "prune": bool(prune or prune_all),
        "prune_all": bool(prune_all),
    }


def default_set_name(path):
    """The file's name without extension, as a model name would be spelled."""
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    return re.sub(r"[^a-z0-9._-]", "-", stem).lstrip("._-")[:63] or "default"


def merge(defaults, spec):
    """``defaults`` under ``spec``: the spec wins; objects are merged key by key."""
    merged = dict(defaults)
    for key, value in spec.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise spec_flags.UsageError("cannot read %s: %s" % (path, error.strerror)) from None
    if path.endswith((".yaml", ".yml")):
        return _yaml(path, text)
    try:
        return json.loads(text)
    except ValueError as error:
        raise spec_flags.UsageError("%s is not valid JSON: %s" % (path, error)) from None


def _yaml(path, text):
    try:
        import yaml  # optional: only for YAML models files, never needed by the daemon
    except ImportError:
        raise spec_flags.UsageError(
            "%s is YAML but PyYAML is not installed: pip install pyyaml, or use JSON" % path
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise spec_flags.UsageError("%s is not valid YAML: %s" % (path, error)) from None


# -- verbs ---------------------------------------------------------------------------


def cmd_diff(client, args, out):
    body = load_models_file(args.file, args.prune, args.prune_all)
    plan = client.apply(body, dry_run=True)
    _show(out, plan, args.json)
    return 0


def cmd_apply(client, args, out):
    body = load_models_file(args.file, args.prune, args.prune_all)
    plan = client.apply(body, dry_run=True)
    if args.dry_run:
        _show(out, plan, args.json)
        return 0
    if not args.json:
        _show(out, plan, False)
    if _disruptive(plan) and not args.yes and _ask_allowed(args):
        if not _confirm(plan, out):
            out.write("nothing applied\n")
            return 0
    result = _apply_retrying(client, body, args.wait, args.timeout, args.err)
    if args.json:
        _emit(out, result)
    else:
        _show_outcomes(out, result)
    return EXIT_PARTIAL if result["result"] == "partial" else 0


def cmd_export_spec(client, args, out):
    exported = client.model_spec(args.name)
    out.write(json.dumps(exported if args.json else exported["spec"], indent=2, sort_keys=True))
    out.write("\n")
    return 0


def _apply_retrying(client, body, wait, timeout, err):
    """Apply, retrying while another apply runs (409 apply_in_progress)."""
    deadline = time.monotonic() + (timeout if timeout is not None else 600)
    told = False
    while True:
        try:
            return client.apply(body, wait=wait, timeout=timeout)
        except errors.ApplyInProgressError:
            if time.monotonic() >= deadline:
                raise
            if not told:
                err.write("modelctl: another apply is in progress; waiting for it\n")
                told = True
            time.sleep(APPLY_RETRY)


def _disruptive(plan):
    return [step for step in plan["plan"] if step["kind"] in DISRUPTIVE]


def _ask_allowed(args):
    return sys.stdin is not None and sys.stdin.isatty() and not args.json


def _confirm(plan, out):
    names = ", ".join("%s (%s)" % (s["name"], s["kind"]) for s in _disruptive(plan))
    out.write("this stops running models: %s. Go on? [y/N] " % names)
    out.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def _show(out, plan, as_json):
    if as_json:
        _emit(out, plan)
        return
    out.write("set %s:\n" % plan["set"])
    for step in plan["plan"]:
        out.write("  %-16s %s%s\n" % (step["kind"], step["name"], _detail(step)))
    counts = ", ".join("%d %s" % (n, kind) for kind, n in plan["summary"].items() if n)
    out.write("plan: %s\n" % (counts or "nothing to do"))


def _detail(step):
    parts = []
    if step.get("paths"):
        parts.append(", ".join(step["paths"]))
    if step.get("reason"):
        parts.append(step["reason"])
    if "adopted_from" in step:
        parts.append("adopted from %s" % (step["adopted_from"] or "a hand deploy"))
    return "  (%s)" % "; ".join(parts) if parts else ""


def _show_outcomes(out, result):
    for step in result["plan"]:
        outcome = step.get("outcome", "-")
        text = (step.get("error") or {}).get("message") or step.get("reason") or ""
        status = step.get("status") or ""
        out.write(
            "  %-16s %-20s %-8s %s %s\n" % (step["kind"], step["name"], outcome, status, text)
        )
    out.write("%s\n" % result["result"])


def _emit(out, payload):
    out.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")


# -- selectors -----------------------------------------------------------------------


def targets(client, args, verb):
    """The names a verb acts on: NAME, the models matching ``-l``, or ``--all`` (stop)."""
    chosen = [bool(args.name), bool(args.label), bool(getattr(args, "all", False))]
    if sum(chosen) != 1:
        more = ", -l SELECTOR or --all" if hasattr(args, "all") else " or -l SELECTOR"
        raise spec_flags.UsageError("%s takes NAME%s (one of them)" % (verb, more))
    if args.name:
        return [args.name]
    models = client.list(labels=args.label or None)
    # stop and restart act on the running ones, start on the others: no 409 per model
    wanted_active = verb != "start"
    return [m["name"] for m in models if (m["status"] in vocabulary.ACTIVE) == wanted_active]


def for_each(client, args, out, verb, action, show):
    """Run ``action(name)`` on every target; report each result; exit 1 if any failed."""
    names = targets(client, args, verb)
    if args.name:
        show(out, action(args.name), args)
        return 0
    results, failed = [], False
    for name in names:
        try:
            results.append(action(name))
        except errors.ModeldError as error:
            failed = True
            results.append({"name": name, "error": {"code": error.code, "message": str(error)}})
    if args.json:
        _emit(out, {"results": results})
    else:
        for result in results:
            if "error" in result:
                out.write("%s: failed: %s\n" % (result["name"], result["error"]["message"]))
            else:
                out.write("%s: %s\n" % (result["name"], result["status"]))
        if not names:
            out.write("no model matches\n")
    return 1 if failed else 0
