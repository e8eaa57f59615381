"""Input fuzzing beyond the OpenAPI contract (issue 10, item 28).

schemathesis (tests/test_contract.py) explores what the OpenAPI document
describes; this file goes where it does not: strings no schema mentions (lone
surrogates, NUL, a trailing newline, bidi controls, 100 KiB), nesting depth,
every numeric bound of ``lib.core.spec.BOUNDS`` and the values just past it,
query strings and paths, and raw bytes on the wire. Against the WSGI app
(fast: ``api``, with ``?dry_run=true`` so nothing is spawned) and a live
daemon (real deploys of fuzzed labels and arguments; raw requests on a socket).

The promise checked everywhere: a success, or the one JSON error shape with a
documented status; a 400 names the field; never a 500; the daemon still answers.

Known item 8 of issue 10 (lone surrogates; being fixed on another branch):
while it is in ``chaos_harness.KNOWN_OPEN`` the strategies leave surrogates out
and ``test_lone_surrogates_are_refused`` is an expected failure. Remove 8 from
that set once the fix is merged and surrogates are fuzzed everywhere.
"""

import json
import socket
import time
import urllib.parse

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import chaos_harness
from conftest import assert_error, model
from lib.core import spec as specs


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """One WSGI app for the module's hundreds of cases: they deploy nothing (dry runs,
    refusals), so they can share it, and the per-case supervisor start and shutdown
    (half a second each) is not paid 300 times."""
    import webtest

    from conftest import TOKEN
    from lib.api import app as api_module
    from lib.core import paths
    from lib.daemon.supervisor import Supervisor

    supervisor = Supervisor(paths.Home(str(tmp_path_factory.mktemp("home"))))
    supervisor.start()
    settings = api_module.Settings(token=TOKEN, version="test")
    yield webtest.TestApp(
        api_module.make_app(supervisor, settings),
        extra_environ={"HTTP_AUTHORIZATION": "Bearer " + TOKEN, "REMOTE_ADDR": "127.0.0.1"},
    )
    assert supervisor.names() == [], "a fuzz case deployed something"
    supervisor.shutdown(stop_models=True, timeout=10)


SURROGATES_FIXED = 8 not in chaos_harness.known_open()
FAST = settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
JSON_HEADERS = {"Content-Type": "application/json"}

# -- strategies --------------------------------------------------------------------

SPECIAL = [
    "\x00",
    "\n",
    "\r\n",
    "\r",
    "\t",
    "\x1b[31m",
    "\u202e",  # right-to-left override
    "\u2066",  # left-to-right isolate
    "\u200f",  # right-to-left mark
    "\u200b",  # zero width space
    "\ufeff",  # byte order mark
    "\u0085",  # next line
    "\u2028",  # line separator
    "\U0001f600",
    "%s",
    "{port}",
    "***",
    "..",
    "/",
    "$(id)",
    "'\"",
]
if SURROGATES_FIXED:
    SPECIAL += ["\ud800", "\udfff", "\udc80"]


def nasty_text():
    """Short strings of awkward characters, a trailing newline, or 100 KiB."""
    pieces = st.one_of(st.sampled_from(SPECIAL), st.text(max_size=8))
    short = st.lists(pieces, max_size=6).map("".join)
    return st.one_of(
        short,
        short.map(lambda text: "a" + text + "\n"),  # `$` matches before a final newline
        st.sampled_from(SPECIAL).map(lambda piece: "x" * (100 * 1024) + piece),
    )


def json_values(max_leaves=20):
    """Any JSON value, nested a few levels: where a scalar belongs."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False),
        nasty_text(),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(nasty_text(), inner, max_size=3)
        ),
        max_leaves=max_leaves,
    )


def base_spec():
    return {"name": "fz", "command": ["true"]}


STRING_FIELDS = {
    "name": lambda spec, text: spec.update(name=text),
    "command[1]": lambda spec, text: spec.update(command=["true", text]),
    "command": lambda spec, text: spec.update(command="true " + text),
    "env.key": lambda spec, text: spec.update(env={text: "v"}),
    "env.value": lambda spec, text: spec.update(env={"V": text}),
    "labels.key": lambda spec, text: spec.update(labels={text: "v"}),
    "labels.value": lambda spec, text: spec.update(labels={"k": text}),
    "cwd": lambda spec, text: spec.update(cwd=text),
    "health.http": lambda spec, text: spec.update(port="auto", health={"http": text}),
    "health.log": lambda spec, text: spec.update(health={"log": text}),
    "stop.signal": lambda spec, text: spec.update(stop={"signal": text}),
    "restart.policy": lambda spec, text: spec.update(restart={"policy": text}),
    "preset": lambda spec, text: spec.update(preset=text),
    "port": lambda spec, text: spec.update(port=text),
    "unknown field": lambda spec, text: spec.update({text: 1}),
}


def encode(body):
    """JSON text that may carry lone surrogates as escapes (valid JSON, as a client sends)."""
    return json.dumps(body, ensure_ascii=True).encode()


def check_answer(answer, allowed=(200, 201, 400, 404, 409, 413, 422)):
    """Success or the error shape with a documented status; never a 500."""
    assert answer.status_int in allowed, (answer.status_int, answer.text[:300])
    if answer.status_int >= 400:
        return assert_error(answer, answer.status_int, answer.json["error"]["code"])
    assert isinstance(answer.json, dict)
    return None


# -- the WSGI app ------------------------------------------------------------------


@FAST
@given(field=st.sampled_from(sorted(STRING_FIELDS)), text=nasty_text())
@example(field="name", text="fz\n")
@example(field="env.key", text="A\n")
@example(field="labels.key", text="k\n")
def test_strings_in_every_field(api, field, text):
    body = base_spec()
    STRING_FIELDS[field](body, text)
    answer = api.post(
        "/models?dry_run=true", encode(body), headers=JSON_HEADERS, expect_errors=True
    )
    error = check_answer(answer)
    if text.endswith("\n") and field in ("name", "env.key", "labels.key"):
        assert error is not None, "a key ending in a newline passed (item 24)"
    if error is not None and answer.status_int == 400 and error["code"] == "validation_error":
        assert "field" in error["details"], error


@FAST
@given(field=st.sampled_from(sorted(STRING_FIELDS)), value=json_values())
def test_any_json_value_in_every_field(api, field, value):
    body = base_spec()
    STRING_FIELDS[field](body, "placeholder")
    target = _where(body, field)
    target[0][target[1]] = value
    answer = api.post(
        "/models?dry_run=true", encode(body), headers=JSON_HEADERS, expect_errors=True
    )
    check_answer(answer)


def _where(body, field):
    """The (container, key) a field of ``STRING_FIELDS`` was written to."""
    if field == "command[1]":
        return body["command"], 1
    if field == "unknown field":
        return body, next(key for key in body if key not in ("name", "command"))
    section, _, key = field.partition(".")
    if not key:
        return body, section
    if key in ("key", "value"):
        inner = body[section]
        return inner, next(iter(inner))
    return body[section], key


@pytest.mark.parametrize("depth", [1, 10, 100, 1000, 100_000])
@pytest.mark.parametrize("where", ["body", "labels", "command", "health"])
def test_nesting_depth(api, depth, where):
    opened, closed = {"body": ("[", "]"), "labels": ('{"a":', "}")}.get(where, ("[", "]"))
    nested = opened * depth + "1" + closed * depth
    text = {
        "body": nested,
        "labels": '{"name": "fz", "command": ["true"], "labels": %s}' % nested,
        "command": '{"name": "fz", "command": %s}' % nested,
        "health": '{"name": "fz", "command": ["true"], "health": %s}' % nested,
    }[where]
    answer = api.post("/models?dry_run=true", text, headers=JSON_HEADERS, expect_errors=True)
    assert_error(answer, 400, answer.json["error"]["code"])


def _bound_cases():
    """(field, value as JSON text, in bounds?) for every bound of the spec's one table."""
    for field, bound in sorted(specs.BOUNDS.items()):
        step = 1 if bound.integer else 0.001
        values = [
            (bound.low, True),
            (bound.high, True),
            (bound.low - step, False),
            (bound.high + step, False),
        ]
        if bound.integer:
            values += [(float(bound.low) + 0.5, False), (bound.high * 10**20, False)]
        else:
            values += [(-0.0 if bound.low == 0 else bound.low, True), (1e308, False)]
        for value, fits in values:
            yield field, json.dumps(value), fits
        for token in ("NaN", "Infinity", "-Infinity", "1e400", "true", '"1"', "null", "[]"):
            yield field, token, token == "null"


def _body_with(field, value_text):
    section, _, key = field.partition(".")
    # What the field needs beside it: gpus a count, backoff_max a backoff no larger.
    extra = {
        "gpus": '"count": 1, ' if key != "count" else "",
        "restart": '"backoff": 0, ' if key == "backoff_max" else "",
    }.get(section, "")
    if not key:
        inner = value_text
    else:
        inner = "{%s%s: %s}" % (extra, json.dumps(key), value_text)
    return '{"name": "fz", "command": ["true"], %s: %s}' % (json.dumps(section), inner)


@pytest.mark.parametrize("field, value, fits", list(_bound_cases()))
def test_numbers_at_every_bound(api, field, value, fits):
    answer = api.post(
        "/models?dry_run=true", _body_with(field, value), headers=JSON_HEADERS, expect_errors=True
    )
    error = check_answer(answer)
    named = error is not None and error["details"].get("field") == field
    if fits:
        # A limit this host cannot enforce (no cgroup here) is refused for the host, not
        # for the bound: that 400 says so.
        host_refusal = named and "cannot be enforced" in error["message"]
        assert not named or host_refusal, "%s = %s is within %s: %s" % (
            field,
            value,
            specs.BOUNDS[field],
            error,
        )
    else:
        assert named, "%s = %s is out of bounds, answered %s" % (field, value, answer.text[:300])


QUERIES = {
    "DELETE /models/nope": ("timeout", "purge"),
    "POST /models": ("wait", "timeout", "dry_run"),
    "GET /models": ("status",),
    "POST /models/nope/restart": ("timeout",),
    "GET /events": ("since", "limit", "follow"),
    "GET /logs": ("since", "until", "level", "stream", "grep", "tail", "limit", "cursor"),
}


@FAST
@given(
    route=st.sampled_from(sorted(QUERIES)),
    values=st.lists(nasty_text().filter(lambda text: len(text) < 4096), min_size=1, max_size=3),
    extra=st.booleans(),
)
def test_query_strings(api, route, values, extra):
    method, path = route.split(" ")
    names = list(QUERIES[route]) + (["bogus\n"] if extra else [])
    pairs = [(names[n % len(names)], value) for n, value in enumerate(values)]
    query = urllib.parse.urlencode(pairs, encoding="utf-8", errors="surrogatepass")
    body = encode(base_spec()) if method == "POST" else None
    answer = api.request(
        path + "?" + query, method=method, body=body, headers=JSON_HEADERS, expect_errors=True
    )
    allowed = (200, 201, 400, 404, 409, 413, 414, 422)
    if route == "GET /events" and answer.status_int == 200:
        return  # follow=true streams: nothing more to check here
    check_answer(answer, allowed)


@FAST
@given(
    text=nasty_text().filter(lambda text: len(text) < 4096),
    suffix=st.sampled_from(["", "/logs", "/events", "/start", "/restart", "/export"]),
)
def test_names_in_paths(api, text, suffix):
    quoted = urllib.parse.quote(text.encode("utf-8", "surrogatepass"), safe="")
    method = "POST" if suffix in ("/start", "/restart") else "GET"
    answer = api.request("/models/" + quoted + suffix, method=method, expect_errors=True)
    check_answer(answer, (400, 404, 405, 414))


@pytest.mark.xfail(not SURROGATES_FIXED, reason="issue 10 item 8, fixed on another branch")
@pytest.mark.parametrize("field", ["unknown field", "health.log", "labels.value", "env.value"])
def test_lone_surrogates_are_refused(api, field):
    body = base_spec()
    STRING_FIELDS[field](body, "a\ud800")
    answer = api.post(
        "/models?dry_run=true", encode(body), headers=JSON_HEADERS, expect_errors=True
    )
    assert_error(answer, 400, "validation_error")


# -- a live daemon -----------------------------------------------------------------


def _raw(url, payload, timeout=10.0):
    """Send raw bytes, read until the server closes: (status or None, headers, body)."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        try:
            connection.sendall(payload)
            connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may close first (a refused head): read what it said
        chunks = []
        try:
            while True:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (ConnectionResetError, socket.timeout):
            pass
    data = b"".join(chunks)
    if not data:
        return None, {}, b""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    if "content-length" in headers:  # the first answer only (garbage may make a second)
        body = body[: int(headers["content-length"])]
    return status, headers, body


def _check_wire_answer(status, headers, body):
    if status is None:
        return  # closed without an answer: allowed for garbage
    assert status != 500 and status < 600, (status, body[:300])
    if status >= 400:
        assert headers.get("content-type", "").startswith("application/json"), (status, body)
        if headers.get("transfer-encoding") == "chunked":
            return  # a streamed error body: the shape is checked by the WSGI tests
        error = json.loads(body.decode())["error"]
        assert set(error) == {"code", "message", "details"}, error


def raw_requests():
    method = st.sampled_from([b"GET", b"POST", b"DELETE", b"PUT", b"PATCH", b"G\x00T", b"get"])
    path = st.one_of(
        st.sampled_from([b"/health", b"/models", b"/models/x", b"/", b"*", b"http://x/models"]),
        st.binary(max_size=40).map(lambda raw: b"/models/" + raw.replace(b" ", b"%20")),
        st.binary(max_size=40),
    )
    version = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/9", b"", b"HTTP/1.1x"])
    header = st.tuples(
        st.sampled_from([b"Host", b"Content-Length", b"Transfer-Encoding", b"X-\x00", b"X-Bidi"]),
        st.one_of(
            st.sampled_from([b"-1", b"99999999999999999999", b"chunked", b"\xe2\x80\xae", b"0"]),
            st.binary(max_size=30).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"")),
        ),
    )
    body = st.one_of(st.binary(max_size=200), st.sampled_from([b"0\r\n\r\n", b"zz\r\nab\r\n"]))
    return st.tuples(method, path, version, st.lists(header, max_size=4), body).map(
        lambda parts: (
            b"%s %s %s\r\n%s\r\nConnection: close\r\n\r\n%s"
            % (
                parts[0],
                parts[1],
                parts[2],
                b"\r\n".join(b"%s: %s" % pair for pair in parts[3]),
                parts[4],
            )
        )
    )


@settings(FAST, max_examples=80)
@given(payload=raw_requests())
@example(payload=b"GET /models/%ED%A0%80 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
@example(payload=b"POST /models HTTP/1.1\r\nContent-Length: 5\r\n\r\n[[[[[")
@example(payload=b"GET /\xff\xfe HTTP/1.1\r\n\r\n")
@example(payload=b"GET / HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n")
def test_raw_requests_on_the_wire(daemon, payload):
    if not hasattr(daemon, "url"):
        daemon.start()
    token = b"Authorization: Bearer %s\r\n" % daemon.token.encode()
    for authorized in (False, True):
        sent = payload.replace(b"\r\n", b"\r\n" + token, 1) if authorized else payload
        _check_wire_answer(*_raw(daemon.url, sent))
    started = time.monotonic()
    status, _, _ = _raw(daemon.url, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200 and time.monotonic() - started < 5


@settings(FAST, max_examples=15)
@given(
    label=nasty_text().filter(lambda text: len(text) <= 256),
    argument=nasty_text().filter(lambda text: "\x00" not in text),
)
def test_fuzzed_deploys_keep_the_listing_whole(daemon, tag, label, argument):
    """Real deploys of fuzzed labels and arguments: whatever is stored, every listing and
    every GET of it stays JSON, and the model stops."""
    if not hasattr(daemon, "url"):
        daemon.start()
    client = daemon.client()
    body = {
        "name": "fz",
        "command": model("sleeper.py", argument, tag=tag),
        "labels": {"k": label},
        "stop": {"timeout": 2},
    }
    status, headers, answer = _raw(
        daemon.url,
        b"POST /models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
        % (daemon.token.encode(), len(encode(body)), encode(body)),
    )
    _check_wire_answer(status, headers, answer)
    assert status in (201, 400), answer[:300]
    listing = client.list()
    assert all(isinstance(entry["name"], str) for entry in listing)
    if status == 201:
        shown = client.get("fz")
        assert shown["spec"]["labels"]["k"] == label
        client.stop("fz", purge=True)
