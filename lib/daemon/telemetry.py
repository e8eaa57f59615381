"""Per-model counters for ``GET /metrics``, kept up to date in the background.

A scrape must be cheap and must never walk /proc, so every value it shows is
already in memory: the status payloads (what ``GET /models`` returns), the
sampler's last /proc sample, and the tallies kept here.

A ``Tally`` counts what a model's files say happened, reading only what was
appended since the last look: log lines by stream and level (and the lines the
writer says it dropped) from the log store, exits by reason, restarts and
probe-caused stops from ``events.jsonl``. Tallies are saved to
``<model>/counters.json`` after each change, so a counter survives a daemon
restart (it resumes where it stopped reading) and a model restart (the files
go on). A purge removes the directory, and the counters start again from zero,
which Prometheus reads as a counter reset.

GPU series are one function away: ``gpu_families`` returns nothing until the
daemon knows per-model GPU memory.
"""

import json
import logging
import os
import re

from lib.api import metrics
from lib.core import fsutil, timefmt, vocabulary
from lib.logs import levels, reader, store

log = logging.getLogger("modeld.telemetry")

MAX_ENTRIES_PER_REFRESH = 200_000
_DROP_NOTICE = re.compile(rb"^modeld dropped (\d+) lines")
_RESTART_EDGES = frozenset({vocabulary.BACKOFF, vocabulary.STOPPING})
_PROBE_STOPS = frozenset({vocabulary.REASON_UNHEALTHY, vocabulary.REASON_HEALTH_TIMEOUT})


class Tally:
    """The counters of one model and where its files were last read up to."""

    def __init__(self, saved=None):
        saved = saved or {}
        self.log_generation = saved.get("log_generation")
        self.next_seq = saved.get("next_seq", 1)
        self.lines = dict(saved.get("lines") or {})  # "stdout/info" -> count
        self.dropped = saved.get("dropped", 0)
        self.events_inode = saved.get("events_inode")
        self.events_offset = saved.get("events_offset", 0)
        self.exits = dict(saved.get("exits") or {})
        self.restarts = saved.get("restarts", 0)
        self.probe_stops = saved.get("probe_stops", 0)
        self.starting_at = saved.get("starting_at")
        self.startup_seconds = saved.get("startup_seconds")

    def to_json(self):
        return dict(self.__dict__)

    # -- logs ------------------------------------------------------------------

    def read_logs(self, log_reader, budget=MAX_ENTRIES_PER_REFRESH):
        """Count the entries written since the last call; True if anything changed."""
        generation = log_reader.log_id()
        if generation != self.log_generation:
            if self.log_generation is not None:
                self.next_seq = 1  # a new generation (a purge and redeploy): count it from 1
            self.log_generation = generation
        changed = False
        for count, entry in enumerate(log_reader.forward(self.next_seq)):
            self.count_entry(entry)
            changed = True
            if count + 1 >= budget:
                break  # a flood: the rest next time, the sampler has other models to do
        return changed

    def count_entry(self, entry):
        self.next_seq = entry.seq + 1
        if entry.partial:
            return  # a split line is one line: count its last piece only
        key = "%s/%s" % (
            store.STREAM_NAMES.get(entry.stream, "stdout"),
            levels.FROM_CODE.get(entry.level, "info"),
        )
        self.lines[key] = self.lines.get(key, 0) + 1
        if entry.stream == store.STREAM_CODES["modeld"]:
            notice = _DROP_NOTICE.match(entry.msg)
            if notice:
                self.dropped += int(notice.group(1))

    # -- events ----------------------------------------------------------------

    def read_events(self, path):
        """Count the events appended since the last call, across one rotation."""
        changed = False
        try:
            inode = os.stat(path).st_ino
        except FileNotFoundError:
            return False
        if inode != self.events_inode:
            try:
                rotated = os.stat(path + ".1").st_ino
            except FileNotFoundError:
                rotated = None
            if rotated is not None and rotated == self.events_inode:
                changed = self._read_events_from(path + ".1", self.events_offset)
            self.events_inode, self.events_offset = inode, 0
        return self._read_events_from(path, self.events_offset) or changed

    def _read_events_from(self, path, offset):
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            return False
        complete = data.rfind(b"\n") + 1  # a torn last line waits for its end
        for line in data[:complete].splitlines():
            try:
                self.count_event(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue  # a damaged line counts for nothing
        if path.endswith(".1"):
            return complete > 0
        self.events_offset = offset + complete
        return complete > 0

    def count_event(self, event):
        new, old = event.get("to"), event.get("from")
        exit_info = event.get("exit") or {}
        if new == vocabulary.STARTING:
            self.starting_at = event["at"]
            if old in _RESTART_EDGES:
                self.restarts += 1
        if new == vocabulary.RUNNING and self.starting_at:
            began = timefmt.parse_rfc3339(self.starting_at)
            self.startup_seconds = (timefmt.parse_rfc3339(event["at"]) - began) / 1_000_000
        reason = exit_info.get("reason")
        if reason and new in (vocabulary.BACKOFF,) + tuple(vocabulary.TERMINAL):
            self.exits[reason] = self.exits.get(reason, 0) + 1
        if reason in _PROBE_STOPS and new == vocabulary.STOPPING:
            self.probe_stops += 1


class Telemetry:
    """The tallies of every model, refreshed by the sampler thread, read by scrapes.

    ``names()`` lists the models; ``paths(name)`` gives a model's ``ModelPaths``.
    """

    def __init__(self, names, paths):
        self.names = names
        self.paths = paths
        self.tallies = {}

    def refresh(self):
        """Read what every model appended since the last call (sampler thread only)."""
        wanted = set(self.names())
        for name in list(self.tallies):
            if name not in wanted:
                self.tallies.pop(name, None)
        for name in sorted(wanted):
            try:
                self._refresh_one(name)
            except OSError as error:
                log.warning("cannot count the logs of %r: %s", name, error)

    def _refresh_one(self, name):
        paths = self.paths(name)
        tally = self.tallies.get(name)
        if tally is None:
            tally = self.tallies[name] = Tally(fsutil.read_json_quietly(self._saved(paths)))
        changed = tally.read_logs(reader.LogReader(paths.logs))
        changed = tally.read_events(paths.events) or changed
        if changed:
            fsutil.write_json_atomic(
                self._saved(paths), tally.to_json(), keep_previous=False, durable=False
            )

    def _saved(self, paths):
        return paths.counters

    def tally(self, name):
        return self.tallies.get(name) or Tally()

    def families(self, models, sample_of):
        """The per-model families of a scrape: ``models`` are status payloads, ``sample_of(name)``
        the sampler's last sample (cached; nothing here reads /proc)."""
        samples = {model["name"]: sample_of(model["name"]) for model in models}
        return model_families(models, samples, dict(self.tallies))


# -- the exposition ------------------------------------------------------------


def model_families(models, samples, tallies):
    """Families of per-model series from status payloads, /proc samples and tallies."""
    build = _Builder()
    for model in models:
        name = model["name"]
        one = {"model": name}
        tally = tallies.get(name) or Tally()
        sample = samples.get(name) or {}
        build.gauge(
            "modeld_model_up", "1 if the model is ready (running and healthy).", one, model["ready"]
        )
        for status in vocabulary.STATUSES:
            build.stateset(
                "modeld_model_status",
                "The model's status (one of them is 1).",
                dict(one, status=status),
                model["status"] == status,
            )
        for health in vocabulary.HEALTH_VALUES:
            build.stateset(
                "modeld_model_health",
                "The model's health (one of them is 1).",
                dict(one, health=health),
                model["health"] == health,
            )
        build.counter(
            "modeld_model_restarts_total",
            "Restarts of the model: automatic ones after a crash and manual ones.",
            one,
            tally.restarts,
        )
        for reason in sorted(tally.exits):
            build.counter(
                "modeld_model_exits_total",
                "Exits of the model's process, by classified reason.",
                dict(one, reason=reason),
                tally.exits[reason],
            )
        build.counter(
            "modeld_model_probe_failures_total",
            "Times the health probe failed its retries in a row and the model was stopped for it.",
            one,
            tally.probe_stops,
        )
        build.counter(
            "modeld_model_log_dropped_lines_total",
            "Lines of output the log writer could not store (a full disk).",
            one,
            tally.dropped,
        )
        for key in sorted(tally.lines):
            stream, level = key.split("/")
            build.counter(
                "modeld_model_log_lines_total",
                "Lines of output logged, by stream and detected level.",
                dict(one, stream=stream, level=level),
                tally.lines[key],
            )
        if tally.startup_seconds is not None:
            build.gauge(
                "modeld_model_startup_duration_seconds",
                "How long the last start took, from starting to running (ready).",
                one,
                tally.startup_seconds,
            )
        started_at = model.get("started_at")
        if started_at and model["status"] in vocabulary.ACTIVE:
            build.gauge(
                "modeld_model_start_time_seconds",
                "When the model's current process started, as a Unix time.",
                one,
                timefmt.parse_rfc3339(started_at) / 1_000_000,
            )
        if sample.get("cpu_seconds") is not None:
            build.counter(
                "modeld_model_cpu_seconds_total",
                "CPU time used by the model's live processes (user and system).",
                one,
                sample["cpu_seconds"],
            )
        if sample.get("rss_bytes") is not None:
            build.gauge(
                "modeld_model_resident_memory_bytes",
                "Resident memory of the model's processes.",
                one,
                sample["rss_bytes"],
            )
            build.gauge(
                "modeld_model_processes",
                "Processes in the model's process tree.",
                one,
                sample.get("processes", 0),
            )
        build.gauge(
            "modeld_model_log_bytes",
            "Bytes held by the model's log files.",
            one,
            (model.get("metrics") or {}).get("log_bytes", 0),
        )
        labels = dict(one)
        for key, value in sorted(((model.get("spec") or {}).get("labels") or {}).items()):
            labels.setdefault(metrics.sanitize_label_name(key), value)
        build.info(
            "modeld_model_info", "The model's spec labels, as label_<key> (sanitized).", labels
        )
    return build.families() + gpu_families(models)


def gpu_families(models):
    """GPU memory per model and GPU: none until the daemon attributes GPU memory."""
    return []


class _Builder:
    """Families in the order their first sample came."""

    def __init__(self):
        self.by_name = {}

    def _add(self, name, kind, help_text, labels, value):
        family = self.by_name.get(name)
        if family is None:
            family = self.by_name[name] = metrics.Family(name, kind, help_text)
        family.add(labels, value)

    def gauge(self, name, help_text, labels, value):
        self._add(name, "gauge", help_text, labels, value)

    def counter(self, name, help_text, labels, value):
        self._add(name, "counter", help_text, labels, value)

    def stateset(self, name, help_text, labels, value):
        self._add(name, "stateset", help_text, labels, value)

    def info(self, name, help_text, labels):
        self._add(name, "info", help_text, labels, 1)

    def families(self):
        return list(self.by_name.values())
