"""Specs to export, from a spec file, an apply file or a live model (already normalized).

An apply file is ``{"set": NAME, "defaults": {...}, "models": [spec, ...]}``: ``defaults`` are
merged into every spec (a section such as ``health`` key by key, the spec winning). Fields the
exporters know but this release's ``parse_spec`` does not (``gpus``, issue 12) are checked
loosely here and carried through, so an export never drops them silently.
"""

import os

from lib.core import spec as specs
from lib.errors import ValidationError

CARRIED = ("gpus",)


def specs_from_document(document, base=None):
    """Normalized specs of a spec or an apply file (``base``: the file's folder, for ``cwd``)."""
    if isinstance(document, dict) and "models" in document:
        models = document["models"]
        if not isinstance(models, list) or not models:
            raise ValidationError("models", "must be a non-empty list of specs")
        defaults = document.get("defaults") or {}
        return [normalize(merge(defaults, model), base) for model in models]
    return [normalize(document, base)]


def merge(defaults, model):
    if not isinstance(model, dict):
        raise ValidationError("models", "every entry must be an object")
    merged = dict(defaults)
    for key, value in model.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = dict(merged[key], **value)
        else:
            merged[key] = value
    return merged


def normalize(body, base=None):
    """``parse_spec``, with a relative cwd taken from ``base`` and ``gpus`` carried."""
    if not isinstance(body, dict):
        raise ValidationError("body", "must be a JSON object")
    body = dict(body)
    carried = {}
    for key in CARRIED:
        if key in body and key not in specs.TOP_LEVEL_FIELDS:
            carried[key] = _gpus(body.pop(key))
    cwd = body.get("cwd")
    if base and isinstance(cwd, str) and not cwd.startswith("/"):
        body["cwd"] = os.path.normpath(os.path.join(base, cwd))
    spec = specs.parse_spec(body)
    spec.update(carried)
    return spec


def _gpus(value):
    """Issue 12's shape, checked enough to translate: {count} or {ids}, min_free_mib, wait."""
    if value is None:
        return None
    allowed = ("count", "ids", "min_free_mib", "wait", "shared")
    if not isinstance(value, dict) or set(value) - set(allowed):
        raise ValidationError("gpus", "must be an object of %s" % ", ".join(allowed))
    if ("count" in value) == ("ids" in value):
        raise ValidationError("gpus", "give either count or ids")
    if "count" in value:
        specs.number(value["count"], "gpus.count", 1, 64, integer=True)
    elif not isinstance(value["ids"], list) or not all(isinstance(i, str) for i in value["ids"]):
        raise ValidationError("gpus.ids", "must be a list of strings")
    return dict(value)
