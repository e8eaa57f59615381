"""Query-string parameters: one parser per kind of value, each a 400 naming the parameter.

``params`` is a dict of str to str; a parameter that is absent gives ``None``
(or the default). Used by the API's routes and by the log query language.
"""

from lib.core import timefmt
from lib.errors import ValidationError

# Bounds of the routes' parameters, shared by the app and its OpenAPI document.
STOP_TIMEOUT_MAX = 3600  # ?timeout= of DELETE and restart: seconds before SIGKILL
WAIT_TIMEOUT_MAX = 86400  # ?timeout= with wait=true
EVENTS_LIMIT_MAX = 10_000


def boolean(params, key):
    """Exactly ``true`` or ``false`` (absent: false); anything else is a 400 naming ``key``.

    ``0``, ``1``, ``yes`` and ``no`` are refused rather than guessed: ``dry_run=0``
    read as true (or ``wait=1`` as false) would deploy when the caller did not mean to.
    """
    text = params.get(key)
    if text in (None, "false"):
        return False
    if text == "true":
        return True
    raise ValidationError(key, "must be true or false")


def integer(params, key, low, high):
    text = params.get(key)
    if text in (None, ""):
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValidationError(key, "must be an integer") from None
    if not low <= value <= high:
        raise ValidationError(key, "must be between %d and %d" % (low, high))
    return value


def seconds(params, key, high):
    """A number of seconds from 0 to ``high`` (NaN and infinities refused)."""
    if key not in params:
        return None
    try:
        value = float(params[key])
    except ValueError:
        raise ValidationError(key, "must be a number of seconds") from None
    if not 0 <= value <= high:
        raise ValidationError(key, "must be between 0 and %s seconds" % high)
    return value


def moment(params, key, now_us):
    """RFC 3339, epoch seconds, or relative (``10m``): microseconds."""
    if params.get(key) in (None, ""):
        return None
    try:
        return timefmt.parse_moment_us(params[key], now_us)
    except ValueError as error:
        raise ValidationError(key, str(error)) from None


def choice(params, key, choices, default):
    value = params.get(key) or default
    if value not in choices:
        raise ValidationError(key, "must be one of: %s" % ", ".join(choices))
    return value
