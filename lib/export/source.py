"""Specs to export, from a spec file, an apply file or a live model (already normalized).

An apply file is ``{"set": NAME, "defaults": {...}, "models": [spec, ...]}``: ``defaults`` are
merged into every spec (a section such as ``health`` key by key, the spec winning). Every
spec goes through ``parse_spec``, so an export takes exactly what a deploy would.
"""

import os

from lib.core import spec as specs
from lib.errors import ValidationError


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
    """``parse_spec``, with a relative cwd taken from ``base``."""
    if not isinstance(body, dict):
        raise ValidationError("body", "must be a JSON object")
    body = dict(body)
    cwd = body.get("cwd")
    if base and isinstance(cwd, str) and not cwd.startswith("/"):
        body["cwd"] = os.path.normpath(os.path.join(base, cwd))
    return specs.parse_spec(body)
