"""Timestamps: integer microseconds since the epoch, shown as RFC 3339 in UTC.

Pure functions; the clock is always passed in. Python 3.9's
``datetime.fromisoformat`` does not accept ``Z``, so RFC 3339 is parsed here.
"""

import re
import time

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(Z|z|[+-]\d{2}:\d{2})?$"
)
_DATE_ONLY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)(us|ms|s|m|h|d|w)$")
_EPOCH = re.compile(r"^\d+(?:\.\d+)?$")
_UNIT_US = {
    "us": 1,
    "ms": 1000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
    "w": 604_800_000_000,
}

# The largest moment accepted anywhere: year 9999.
MAX_US = 253402300799_999_999


def now_us():
    """The wall clock in integer microseconds."""
    return time.time_ns() // 1000


def format_us(us):
    """Integer microseconds -> ``2026-11-25T12:00:00.123456Z``; ``None`` stays ``None``."""
    if us is None:
        return None
    seconds, micros = divmod(int(us), 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".%06dZ" % micros


def parse_rfc3339(text):
    """RFC 3339 (or a bare date, meaning midnight UTC) -> microseconds; ``ValueError`` if not."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        date = _DATE_ONLY.fullmatch(text)
        if date is None:
            raise ValueError("not an RFC 3339 time: %r" % text)
        return _to_us(*(int(part) for part in date.groups()), 0, 0, 0, "0", "Z")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    return _to_us(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second),
        fraction or "0",
        offset or "Z",
    )


def _to_us(year, month, day, hour, minute, second, fraction, offset):
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise ValueError("not a valid date or time")
    import calendar  # only queries parse times: keep it off the monitor's import path

    seconds = calendar.timegm((year, month, day, hour, minute, min(second, 59), 0, 0, 0))
    micros = int((fraction + "000000")[:6])
    if offset not in ("Z", "z"):
        sign = -1 if offset[0] == "+" else 1
        seconds += sign * (int(offset[1:3]) * 3600 + int(offset[4:6]) * 60)
    return seconds * 1_000_000 + micros


def parse_duration_us(text):
    """``30s``, ``10m``, ``2h``, ``1d``, ``500ms`` -> microseconds; ``ValueError`` if not."""
    match = _RELATIVE.fullmatch(text)
    if match is None:
        raise ValueError("not a duration: %r" % text)
    return int(float(match.group(1)) * _UNIT_US[match.group(2)])


def parse_moment_us(text, now):
    """A moment given as RFC 3339, epoch seconds, or a duration ago (``10m``).

    ``now`` is the current time in microseconds. Raises ``ValueError`` with a
    message fit for the user.
    """
    text = text.strip()
    if _EPOCH.fullmatch(text):
        value = int(float(text) * 1_000_000)
    elif _RELATIVE.fullmatch(text):
        value = now - parse_duration_us(text)
    else:
        try:
            value = parse_rfc3339(text)
        except ValueError:
            raise ValueError(
                "expected RFC 3339 (2026-11-25T12:00:00Z), epoch seconds, "
                "or a relative time such as 30s, 10m, 2h, 1d"
            ) from None
    if not 0 <= value <= MAX_US:
        raise ValueError("out of range")
    return value
