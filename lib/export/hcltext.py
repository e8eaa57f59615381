"""HCL text (Nomad job files) from nested blocks, without a third-party library.

A block is ``Block(type, labels, body)``; a body is a list of ``(key, value)`` pairs and
blocks, in order. Strings are escaped for HCL, and ``${`` / ``%{`` (interpolation and template
directives) are written ``$${`` / ``%%{`` so a model's argument is never interpolated. Values
that must be interpolated (``${NOMAD_PORT_http}``) are passed as ``Raw``.
"""

import json


class Raw(str):
    """A string written as is between quotes: the caller wants Nomad to interpolate it."""


class Block:
    def __init__(self, kind, labels=(), body=()):
        self.kind = kind
        self.labels = list(labels)
        self.body = list(body)


def escape(text):
    """A literal string's content: JSON escapes, then ``${`` and ``%{`` doubled."""
    inner = json.dumps(text, ensure_ascii=False)[1:-1]
    return inner.replace("${", "$${").replace("%{", "%%{")


def string(value):
    if isinstance(value, Raw):
        return '"%s"' % value
    return '"%s"' % escape(value)


def value_text(value):
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(value_text(item) for item in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(
            "%s = %s" % (string(key), value_text(item)) for key, item in value.items()
        )
        return "{ " + items + " }" if items else "{}"
    return string(value)


def dump(block, indent=0):
    pad = "  " * indent
    head = " ".join([block.kind] + [string(label) for label in block.labels])
    lines = [pad + head + " {"]
    for item in block.body:
        if isinstance(item, Block):
            lines.append(dump(block=item, indent=indent + 1))
        else:
            key, value = item
            lines.append("%s  %s = %s" % (pad, key, value_text(value)))
    lines.append(pad + "}")
    return "\n".join(lines)
