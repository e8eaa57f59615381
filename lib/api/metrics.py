"""The Prometheus text exposition format 0.0.4, written by hand (no runtime dependency).

A scrape renders ``Family`` objects that the daemon assembled from values it
already holds (see ``lib.daemon.telemetry``): nothing here reads a file or /proc.

Naming rules kept by construction and checked by ``check_name``: one prefix
(``modeld_``), base units (seconds, bytes), ``_total`` on counters and on
nothing else, ``_info`` on info series (a gauge of 1 carrying labels). Label
values are escaped as the format requires (backslash, double quote, newline);
HELP text escapes backslash and newline. Neither is otherwise restricted: any
UTF-8 goes through.

``RequestCounter`` counts HTTP requests by method, route template (never the
raw path, which would carry model names and unbounded garbage) and status code.
"""

import collections
import re
import sys
import threading

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "modeld_"
TYPES = ("counter", "gauge", "info", "stateset")

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


class Family:
    """One metric: its name, kind, help, and samples ``(labels dict, value)``.

    ``kind`` is ``counter`` or ``gauge``; ``info`` and ``stateset`` are gauges in
    0.0.4 (OpenMetrics would type them), named and shaped by the usual conventions.
    """

    def __init__(self, name, kind, help_text, samples=None):
        check_name(name, kind)
        self.name, self.kind, self.help = name, kind, help_text
        self.samples = list(samples or [])

    def add(self, labels, value):
        self.samples.append((labels, value))


def check_name(name, kind):
    """Raise ``ValueError`` for a name that breaks the naming rules (a bug, never input)."""
    if kind not in TYPES:
        raise ValueError("unknown metric kind %r" % kind)
    if not _NAME.match(name) or not name.startswith(PREFIX) or name.count(PREFIX) != 1:
        raise ValueError("metric %r must match %s and start with %r" % (name, _NAME, PREFIX))
    if (kind == "counter") != name.endswith("_total"):
        raise ValueError("metric %r: _total is for counters, and counters only" % name)
    if (kind == "info") != name.endswith("_info"):
        raise ValueError("metric %r: _info is for info series, and those only" % name)


def escape_label_value(value):
    text = str(value)
    if "\\" not in text and '"' not in text and "\n" not in text:
        return text  # the usual case, on a scrape's hot path
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value):
    if value is None:
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


_checked_label_names = set()  # names already checked: a scrape checks each once


def _check_label_name(key):
    if key in _checked_label_names:
        return
    if not _LABEL.match(key) or key.startswith("__"):
        raise ValueError("bad label name %r" % key)
    if len(_checked_label_names) < 10_000:  # spec labels are operator input: stay bounded
        _checked_label_names.add(key)


def _labels_text(labels):
    if not labels:
        return ""
    parts = []
    for key, value in labels.items():
        _check_label_name(key)
        parts.append('%s="%s"' % (key, escape_label_value(value)))
    return "{" + ",".join(parts) + "}"


def render(families):
    """The exposition text of ``families`` (one HELP and TYPE line each, then samples)."""
    lines = []
    for family in families:
        exposed = "gauge" if family.kind in ("info", "stateset") else family.kind
        lines.append("# HELP %s %s" % (family.name, escape_help(family.help)))
        lines.append("# TYPE %s %s" % (family.name, exposed))
        for labels, value in family.samples:
            lines.append("%s%s %s" % (family.name, _labels_text(labels), format_value(value)))
    return "\n".join(lines) + "\n"


def sanitize_label_name(key):
    """A spec label key as a Prometheus label name (``team.name`` -> ``label_team_name``)."""
    return "label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)


class RequestCounter:
    """HTTP requests counted by (method, route template, code); thread-safe."""

    def __init__(self):
        self.counts = collections.Counter()
        self.lock = threading.Lock()

    def observe(self, method, route, code):
        method = method if method in _METHODS else "other"
        with self.lock:
            self.counts[(method, route or _UNMATCHED, str(code))] += 1

    def family(self):
        family = Family(
            "modeld_http_requests_total",
            "counter",
            "HTTP requests answered by the API, by method, route template and status code.",
        )
        with self.lock:
            items = sorted(self.counts.items())
        for (method, route, code), count in items:
            family.add({"method": method, "route": route, "code": code}, count)
        return family

    def wrap(self, app):
        """A WSGI wrapper that counts every response of ``app`` (bottle's own errors too)."""
        return CountedApp(app, self)


class CountedApp:
    """``app`` with every response counted; other attributes are the app's."""

    def __init__(self, app, counter):
        self.app, self.counter = app, counter

    def __getattr__(self, name):
        return getattr(self.app, name)

    def __call__(self, environ, start_response):
        def start(status, headers, exc_info=None):
            rule = getattr(environ.get("bottle.route"), "rule", None)
            self.counter.observe(environ.get("REQUEST_METHOD", ""), rule, status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def daemon_families(version, started_at):
    """The daemon's own series: build info and start time."""
    python = "%d.%d.%d" % sys.version_info[:3]
    return [
        Family(
            "modeld_build_info",
            "info",
            "The daemon's version and Python version (always 1).",
            [({"version": version, "python": python}, 1)],
        ),
        Family(
            "modeld_daemon_start_time_seconds",
            "gauge",
            "When the daemon started, as a Unix time.",
            [({}, started_at)],
        ),
    ]
