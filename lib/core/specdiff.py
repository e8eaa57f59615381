"""What changes between a model's spec and a new one, and whether the change needs a restart.

Pure: parsing (``lib.core.spec``) and comparison, no files, no processes.

- **Comparison that survives upgrades**: both sides are normalized with the parser of
  this release (``current_spec`` parses the body a model was *submitted* with again), so
  a release that adds a default, or changes a preset's, sees no change and restarts nothing.
- **Changed field paths**: dotted paths of the normalized spec (``env.HF_HOME``,
  ``health.interval``, ``command``); a list is one value.
- **Classification**: a change only to the sections a monitor rereads
  (``protocol.RELOADABLE``: labels, restart policy, stop settings, log rotation, probe
  settings) is applied in place; anything else (command, env, cwd, port, gpus, preset,
  or a field this module does not know) restarts the model. Switching the *kind* of
  health probe (http, tcp, log, none) restarts too: the monitor wires the probe into
  its output capture when the model starts.
"""

import collections
import copy

from lib.core import protocol, redact
from lib.core import spec as specs
from lib.errors import ValidationError

UNCHANGED = "unchanged"
IN_PLACE = "update-in-place"
RESTART = "update-restart"
CREATE = "create"
DELETE = "delete"
KINDS = (CREATE, IN_PLACE, RESTART, UNCHANGED, DELETE)

# A secret shown by ``GET /models/{name}/spec`` (export-spec): the apply keeps the stored one.
SECRET_REFERENCE = "@stored-secret"


class Change(collections.namedtuple("Change", "kind paths restart_paths")):
    """The plan for one existing model: ``kind`` and the changed field paths (sorted)."""

    __slots__ = ()


def changed_paths(old, new):
    """The dotted paths whose values differ between two normalized specs."""
    flat_old, flat_new = _flatten(old), _flatten(new)
    keys = set(flat_old) | set(flat_new)
    return sorted(key for key in keys if flat_old.get(key, _ABSENT) != flat_new.get(key, _ABSENT))


def classify(old, new):
    """The ``Change`` from normalized spec ``old`` to ``new``."""
    paths = changed_paths(old, new)
    restart = [path for path in paths if not _reloadable(path)]
    if specs.probe_kind(old.get("health") or {}) != specs.probe_kind(new.get("health") or {}):
        restart.append("health")
    if not paths:
        return Change(UNCHANGED, [], [])
    return Change(RESTART if restart else IN_PLACE, paths, sorted(set(restart)))


def _reloadable(path):
    return path.split(".", 1)[0] in protocol.RELOADABLE


_ABSENT = object()


def _flatten(value, prefix=""):
    if isinstance(value, dict):  # an empty map adds no path: {} to {"a": "1"} is "x.a"
        flat = {}
        for key, item in value.items():
            flat.update(_flatten(item, "%s.%s" % (prefix, key) if prefix else str(key)))
        return flat
    return {prefix: value}


# -- the stored side -------------------------------------------------------------------


def current_spec(record, log_defaults=None):
    """A deployment's spec normalized by this release's parser.

    The body it was submitted with is parsed again; a record without one (deployed
    before this was kept) or whose body this parser refuses keeps its stored spec.
    """
    if record.submitted is None:
        return record.spec
    try:
        return specs.parse_spec(copy.deepcopy(record.submitted), log_defaults)
    except ValidationError:
        return record.spec  # what runs is still what was normalized then


def submitted_form(body, spec):
    """The body to keep as submitted: as given, with every mask or reference (``***``,
    ``@stored-secret``) replaced by the secret it stood for in the normalized ``spec``."""
    kept = copy.deepcopy(body)
    env = kept.get("env")
    if isinstance(env, dict):
        for key, value in env.items():
            if _is_placeholder(value):
                env[key] = spec["env"].get(key, value)
    command = kept.get("command")
    words = [command] if isinstance(command, str) else command or []
    if any(redact.MASK in str(word) or SECRET_REFERENCE in str(word) for word in words):
        kept["command"] = list(spec["command"])
    return kept


def _is_placeholder(value):
    return value in (redact.MASK, SECRET_REFERENCE)


def resolve_references(body):
    """``body`` with each ``@stored-secret`` turned into ``***``: the mask that
    ``redact.unmask_spec`` puts the stored secret back for (or refuses for a new name)."""
    if not isinstance(body, dict):
        return body
    body = dict(body)
    if isinstance(body.get("env"), dict):
        body["env"] = {
            key: redact.MASK if value == SECRET_REFERENCE else value
            for key, value in body["env"].items()
        }
    command = body.get("command")
    if isinstance(command, list):
        body["command"] = [
            arg.replace(SECRET_REFERENCE, redact.MASK) if isinstance(arg, str) else arg
            for arg in command
        ]
    elif isinstance(command, str):
        body["command"] = command.replace(SECRET_REFERENCE, redact.MASK)
    return body


def exportable(record, log_defaults=None):
    """A body that ``PUT``/``POST /apply`` accepts again for this model: the submitted
    form (else the stored spec without its empty fields), every secret as a reference."""
    body = copy.deepcopy(record.submitted) if record.submitted is not None else None
    if body is None:
        body = _compact(record.spec)
    spec = current_spec(record, log_defaults)
    shown = redact.redact_spec(spec)
    if isinstance(body.get("env"), dict):
        body["env"] = {
            key: SECRET_REFERENCE if shown["env"].get(key) == redact.MASK else value
            for key, value in body["env"].items()
        }
    if shown["command"] != spec["command"]:
        body["command"] = [arg.replace(redact.MASK, SECRET_REFERENCE) for arg in shown["command"]]
    return body


def _compact(spec):
    """A normalized spec fit to parse again: no null fields (``gpus`` has count or ids)."""
    body = {key: value for key, value in copy.deepcopy(spec).items() if value is not None}
    if isinstance(body.get("gpus"), dict):
        body["gpus"] = {key: value for key, value in body["gpus"].items() if value is not None}
    return body
