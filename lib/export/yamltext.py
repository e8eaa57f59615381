"""YAML text from dicts, lists and scalars, without PyYAML (the runtime is stdlib only).

Every string is written as a JSON string, which is a valid YAML double-quoted scalar, so no
value can be read back as another type (``"on"``, ``"0755"``, ``"null"``) or break the syntax.
"""

import json
import re


def dump_documents(documents):
    """Several documents, each after a ``---`` line."""
    return "".join("---\n" + dump(document) for document in documents)


def dump(value, indent=0):
    """One value as block YAML, ending with a newline."""
    return "\n".join(_lines(value, indent)) + "\n"


def scalar(value):
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(str(value), ensure_ascii=False)


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def _key(key):
    """A key plainly when YAML cannot misread it (``app.kubernetes.io/name``), else quoted."""
    text = str(key)
    if _PLAIN_KEY.match(text) and text.lower() not in _YAML_WORDS:
        return text
    return scalar(text)


def _lines(value, indent):
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return [pad + "{}"]
        lines = []
        for key, item in value.items():
            lines += _entry(pad + _key(key) + ":", item, indent)
        return lines
    if isinstance(value, list):
        if not value:
            return [pad + "[]"]
        lines = []
        for item in value:
            lines += _item(pad, item, indent)
        return lines
    return [pad + scalar(value)]


def _entry(head, item, indent):
    if isinstance(item, (dict, list)) and item:
        return [head] + _lines(item, indent + 2)
    return [head + " " + _lines(item, 0)[0]]


def _item(pad, item, indent):
    if isinstance(item, dict) and item:
        inner = _lines(item, indent + 2)
        return [pad + "- " + inner[0].lstrip()] + inner[1:]
    if isinstance(item, list) and item:
        return [pad + "-"] + _lines(item, indent + 2)
    return [pad + "- " + _lines(item, 0)[0]]
