"""The routes for watching every model at once: metrics, merged logs, events, the dashboard.

``GET /metrics``   Prometheus text 0.0.4 from cached values (``lib.api.metrics``)
``GET /logs``      the log query language across models, merged by time
``GET /events?follow=true``  new events of every model as JSON lines
``GET /ui``        the dashboard: one static page (``lib/api/ui/``) over this API

The dashboard's files are read with ``pkgutil`` so they load from ``modeld.pyz``
too. Its Content-Security-Policy allows scripts from this origin only (no
inline script), so a model's log line can never run as code even if some
rendering bug put it in the page as HTML.
"""

import json
import pkgutil
import time

import bottle

from lib.api import access, metrics
from lib.core import timefmt
from lib.logs import merge
from lib.logs import query as logquery
from lib.logs import reader as logread

HEARTBEAT = 5.0
EVENT_POLL = 0.25
UI_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def install(app, supervisor, settings, followers, requests, query_params):
    """Add the routes to ``app``; ``query_params`` is the app's strict parameter reader."""

    @app.get("/metrics", auth=not settings.metrics_no_auth)
    def metrics_text():
        query_params(())
        families = metrics.daemon_families(settings.version, settings.started_at)
        families += supervisor.telemetry.families(supervisor.list(), supervisor.sampler.get)
        families.append(requests.family())
        bottle.response.content_type = metrics.CONTENT_TYPE
        return metrics.render(families)

    @app.get("/logs")
    def all_logs():
        log_query = merge.parse(query_params(logquery.PARAMETERS), timefmt.now_us())
        readers = _readers(supervisor)
        if log_query.follow:
            return _follow_logs(supervisor, settings, followers, log_query, readers)
        page = merge.run(readers, log_query)
        return _merged_page(log_query, page)

    @app.get("/ui", auth=False)
    def dashboard():
        query_params(())
        return _ui_file("index.html")

    @app.get("/ui/<filename>", auth=False)
    def dashboard_file(filename):
        query_params(())
        return _ui_file(filename)


def _ui_file(filename):
    if filename not in UI_FILES:
        bottle.abort(404)
    data = pkgutil.get_data("lib.api", "ui/" + filename)
    bottle.response.content_type = UI_FILES[filename]
    bottle.response.set_header("Content-Security-Policy", CSP)
    bottle.response.set_header("X-Content-Type-Options", "nosniff")
    bottle.response.set_header("Referrer-Policy", "no-referrer")
    bottle.response.set_header("Cache-Control", "no-cache")
    return data


def _readers(supervisor):
    return {
        name: logread.LogReader(supervisor.home.model(name).logs) for name in supervisor.names()
    }


def _merged_page(query, page):
    cursor = merge.encode_cursor(page.positions)
    if query.format == "text":
        bottle.response.content_type = "text/plain; charset=utf-8"
        bottle.response.set_header("X-Next-Cursor", cursor)
        return "".join(merge.entry_text(tagged) + "\n" for tagged in page.entries)
    return {
        "entries": [merge.entry_dict(tagged) for tagged in page.entries],
        "next_cursor": cursor,
        "has_more": page.has_more,
    }


def _follow_logs(supervisor, settings, followers, query, readers):
    followers.enter()
    try:
        if query.tail:
            page = merge.run(readers, query)
            backlog, starts = page.entries, {n: p[1] for n, p in page.positions.items()}
        else:
            backlog, starts = [], merge.start_positions(readers, query)
    except BaseException:
        followers.leave()
        raise
    render = merge.entry_text if query.format == "text" else _json_line(merge.entry_dict)
    should_stop = access.stream_should_stop(settings, bottle.request.environ)

    def stream():
        try:
            yield b"\n"  # send the headers now: bottle holds them until the first bytes
            for tagged in backlog:
                yield (render(tagged) + "\n").encode()
            entries = merge.follow(lambda: _readers(supervisor), query, starts, should_stop)
            for tagged in entries:
                yield b"\n" if tagged is None else (render(tagged) + "\n").encode()
        finally:
            followers.leave()

    bottle.response.content_type = (
        "text/plain; charset=utf-8" if query.format == "text" else "application/x-ndjson"
    )
    return stream()


def follow_events(supervisor, settings, followers, filters, sleep=time.sleep):
    """``GET /events?follow=true``: the newest ``limit`` (or those since ``since``), then
    every new event as it is written, one JSON object a line, a blank line as heartbeat."""
    followers.enter()
    try:
        follower = supervisor.event_follower()  # from now on: no event falls in between
        backlog = supervisor.events(None, **filters)
    except BaseException:
        followers.leave()
        raise
    should_stop = access.stream_should_stop(settings, bottle.request.environ)

    def stream():
        try:
            yield b"\n"
            for event in backlog:
                yield _event_line(event)
            idle_since = time.monotonic()
            while not should_stop():
                fresh = follower.poll()
                for event in fresh:
                    yield _event_line(event)
                if fresh:
                    idle_since = time.monotonic()
                    continue
                if time.monotonic() - idle_since >= HEARTBEAT:
                    idle_since = time.monotonic()
                    yield b"\n"  # a client that left is noticed only on a write
                sleep(EVENT_POLL)
        finally:
            followers.leave()

    bottle.response.content_type = "application/x-ndjson"
    return stream()


def _event_line(event):
    return (json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def _json_line(to_dict):
    def render(item):
        return json.dumps(to_dict(item), separators=(",", ":"), ensure_ascii=False)

    return render
