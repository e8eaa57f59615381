"""Label selectors: ``team=search``, ``tier!=canary``, ``gpu`` (the key exists), ``!gpu``.

Several requirements combine with AND, given as repeated ``label=`` parameters or
separated by commas in one (a value holding a comma cannot be selected). Pure.
"""

import collections

from lib.core import spec as specs
from lib.errors import ValidationError

EQUALS, NOT_EQUALS, EXISTS, ABSENT = "=", "!=", "exists", "absent"


class Requirement(collections.namedtuple("Requirement", "key op value")):
    """One condition on a model's labels."""

    __slots__ = ()

    def matches(self, labels):
        if self.op == EXISTS:
            return self.key in labels
        if self.op == ABSENT:
            return self.key not in labels
        if self.op == EQUALS:
            return labels.get(self.key) == self.value
        return labels.get(self.key) != self.value


def parse(texts, field="label"):
    """The requirements in ``texts`` (each one or several, comma-separated)."""
    found = []
    for text in texts:
        for part in text.split(","):
            found.append(_requirement(part.strip(), field))
    return found


def _requirement(text, field):
    if not text:
        raise ValidationError(field, "has an empty requirement (use key=value, key!=value, key)")
    if "!=" in text:
        key, _, value = text.partition("!=")
        op = NOT_EQUALS
    elif "=" in text:
        key, _, value = text.partition("=")
        op = EQUALS
    elif text.startswith("!"):
        key, value, op = text[1:], None, ABSENT
    else:
        key, value, op = text, None, EXISTS
    if not specs.LABEL_KEY_PATTERN.fullmatch(key):
        raise ValidationError(field, "%r: %r is not a label key" % (text, key))
    return Requirement(key, op, value)


def matches(requirements, labels):
    """Does a model with ``labels`` meet every requirement?"""
    labels = labels or {}
    return all(requirement.matches(labels) for requirement in requirements)
