"""Turn the raw captures (raw/*.raw.jsonl, written by capture_*.py) into the labelled corpus:
../<server>.jsonl and ../crash/<case>.jsonl + .json.

Levels are a person's judgment, written down as the rules below plus per-line overrides
(OVERRIDES) after reading every line; see ../README.md for the judgment calls.
The rules are record-based, per stream: a line that starts a record (it carries a level
of its own, or is a `file.py:N: XxxWarning:` line, or a bare `Traceback` / `Error:` line)
sets the level; every other line continues the previous record of the same stream and
takes its level (traceback frames, exception messages, pydantic error details, the
source line under a warning). Under Ray, lines of different worker processes (the
`(ServeReplica:app:Dep pid=N)` prefix) are separate streams for this purpose. A stream's
first line with no level of its own is info.
"""

import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.dirname(HERE)
RAW = os.path.join(HERE, "raw")

ANSI = re.compile(r"\x1b\[[0-9;]*m")
RAY_PREFIX = re.compile(r"^\((?:[\w:.-]+ pid=\d+|raylet|gcs_server)(?:, ip=[\d.]+)?\) ")
NAMES = {
    "TRACE": "debug",
    "DEBUG": "debug",
    "INFO": "info",
    "SUCC": "info",
    "WARNING": "warning",
    "WARN": "warning",
    "ERROR": "error",
    "CRITICAL": "critical",
    "FATAL": "critical",
}
LV = "(TRACE|DEBUG|INFO|SUCC|WARNING|WARN|ERROR|CRITICAL|FATAL)"
HEADERS = [
    re.compile(r"^" + LV + r":\s"),  # uvicorn
    re.compile(
        r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[" + LV + r"\] "
    ),  # gunicorn
    re.compile(r"^\d{4}-\d\d-\d\dT\S+ \[" + LV + r"\] "),  # bentoml
    re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ - .*? - " + LV + r" - "),  # litserve
    re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d " + LV + r" "),  # mlflow
    re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\t" + LV + r" "),  # ray CLI
    re.compile(r"^" + LV + r" \d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ "),  # ray serve
]
WARNING_LINE = re.compile(r"^\S.*:\d+: \w*Warning: ")
GUNICORN_ACCESS = re.compile(r'^\S+ - \S+ \[\d\d/\w{3}/\d{4}:[\d:]+ [+-]\d{4}\] "')
ACCESS = re.compile(
    r'"(GET|POST) \S+ HTTP/1\.1" \d{3}|\(scheme=http,method=|-- (GET|POST) \S+ \d{3} '
)
PROBE_PATHS = ("/health", "/readyz", "/ping", "/-/healthz")

# raw run -> (server file, crash case or None). Order = order in the server file.
RUNS = [
    ("uvicorn_plain", "uvicorn", None),
    ("uvicorn_color", "uvicorn", None),
    ("uvicorn_trace", "uvicorn", None),
    ("crash_uvicorn_wrong_module", "uvicorn", "uvicorn_wrong_module"),
    ("crash_uvicorn_import_inside_app", "uvicorn", "uvicorn_import_inside_app"),
    ("crash_uvicorn_port_in_use", "uvicorn", "uvicorn_port_in_use"),
    ("crash_uvicorn_killed_after_fnf", "uvicorn", "uvicorn_killed_after_fnf"),
    ("gunicorn_sync", "gunicorn", None),
    ("gunicorn_uvworker", "gunicorn", None),
    ("gunicorn_debug", "gunicorn", None),
    ("crash_gunicorn_wrong_module", "gunicorn", "gunicorn_wrong_module"),
    ("crash_gunicorn_port_in_use", "gunicorn", "gunicorn_port_in_use"),
    ("bentoml_plain", "bentoml", None),
    ("crash_bentoml_missing_model", "bentoml", "bentoml_missing_model"),
    ("crash_bentoml_missing_file", "bentoml", "bentoml_missing_file_crashloop"),
    ("crash_bentoml_port_in_use", "bentoml", "bentoml_port_in_use"),
    ("litserve_plain", "litserve", None),
    ("crash_litserve_missing_model_file", "litserve", "litserve_missing_model_file"),
    ("crash_litserve_port_in_use", "litserve", "litserve_port_in_use"),
    ("mlflow_plain", "mlflow", None),
    ("crash_mlflow_missing_model_path", "mlflow", "mlflow_missing_model_path"),
    ("crash_mlflow_port_in_use", "mlflow", "mlflow_port_in_use"),
    ("crash_mlflow_uvicorn_not_on_path", "mlflow", "mlflow_uvicorn_not_on_path"),
    ("ray_serve_plain", "ray_serve", None),
]

# (raw run, substring of the line) -> level, for lines whose level the rules get wrong.
# Each is a judgment call explained in ../README.md.
OVERRIDES = {
    # Ray: a raylet notice with no level word; a retried task failure is a warning
    ("ray_serve_plain", "Task ServeController.graceful_shutdown failed"): "warning",
    # Ray: printed by the proxy with no level; it is a warning about exception wrapping
    ("ray_serve_plain", "in RayTaskError can't be subclassed!"): "warning",
    # bash's own message when the command mlflow execs is missing: an error, no level word
    ("crash_mlflow_uvicorn_not_on_path", "bash: line 1: exec: uvicorn: not found"): "error",
}

# Each crash case: the substring of its first error block, and (where the capture
# stopped the process itself) a note.
CRASH = {
    "uvicorn_wrong_module": 'Could not import module "nosuchmodule"',
    "uvicorn_import_inside_app": "ModuleNotFoundError: No module named 'numpy_but_misspelled'",
    "uvicorn_port_in_use": "address already in use",
    "uvicorn_killed_after_fnf": "FileNotFoundError: [Errno 2] No such file or directory",
    "gunicorn_wrong_module": "ModuleNotFoundError: No module named 'nosuchmodule'",
    "gunicorn_port_in_use": "Connection in use",
    "bentoml_missing_model": "Model dummy_classifier:latest could not be found locally",
    "bentoml_missing_file_crashloop": "FileNotFoundError: [Errno 2] No such file or directory",
    "bentoml_port_in_use": "Could not bind 127.0.0.1:",
    "litserve_missing_model_file": "FileNotFoundError: [Errno 2] No such file or directory",
    "litserve_port_in_use": "[Errno 98] Address already in use",
    "mlflow_missing_model_path": "No such artifact: 'corpus-no-such-model-dir'",
    "mlflow_port_in_use": "address already in use",
    "mlflow_uvicorn_not_on_path": "exec: uvicorn: not found",
}


def strip(line):
    """Drop colours and Ray's `(ActorName pid=N) ` source prefix; return (source, text)."""
    line = ANSI.sub("", line)
    m = RAY_PREFIX.match(line)
    return (m.group(0) if m else ""), line[m.end() :] if m else line


def header_level(text):
    for rx in HEADERS:
        m = rx.search(text)
        if m:
            return NAMES[m.group(1)]
    if WARNING_LINE.match(text):
        return "warning"
    if GUNICORN_ACCESS.match(text):
        return "info"
    if text.startswith("Error: "):  # click's error line
        return "error"
    return None


def label(run, rows):
    current = {}  # stream -> level of the record in progress
    in_tb = {}
    out = []
    for row in rows:
        source, text = strip(row["line"])
        # records continue per stream, and under Ray per source process too
        stream = (row["stream"], source)
        level = header_level(text)
        if text.startswith("Traceback (most recent call last):") and not in_tb.get(stream):
            # a bare traceback starts an error record, unless it continues a logged record
            level = current.get(stream) if current.get(stream) in ("error", "critical") else "error"
            in_tb[stream] = True
        if level is None:
            level = current.get(stream, "info")
        else:
            in_tb[stream] = text.startswith("Traceback")
        for (r, needle), lv in OVERRIDES.items():
            if r == run and needle in row["line"]:
                level = lv
        current[stream] = level
        probe = (
            row["scenario"].endswith("probe")
            and bool(ACCESS.search(text))
            and any(p in text for p in PROBE_PATHS)
        )
        out.append(
            {
                "stream": row["stream"],
                "line": row["line"],
                "level": level,
                "scenario": row["scenario"],
                "probe": probe,
            }
        )
    return out


def read(run):
    with open(os.path.join(RAW, run + ".raw.jsonl")) as f:
        return [json.loads(line) for line in f]


def write(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main():
    servers = {}
    os.makedirs(os.path.join(OUT, "crash"), exist_ok=True)
    for run, server, case in RUNS:
        if not os.path.exists(os.path.join(RAW, run + ".raw.jsonl")):
            print("missing raw capture:", run)
            continue
        rows = label(run, read(run))
        if case:
            for row in rows:
                if not row["scenario"].startswith("crash_"):
                    row["scenario"] = "crash_" + case.split("_", 1)[1] + "/" + row["scenario"]
            write(os.path.join(OUT, "crash", case + ".jsonl"), rows)
            meta = json.load(open(os.path.join(RAW, run + ".meta.json")))
            first = CRASH[case]
            assert any(first in r["line"] and r["level"] in ("error", "critical") for r in rows), (
                case
            )
            info = {
                "exit_code": meta["exit_code"],
                "signal": meta["signal"],
                "expected_reason": meta["expected_reason"],
                "first_error_contains": first,
                "command": [
                    os.path.basename(c) if c.startswith("/tmp/corpus-venv/") else c
                    for c in meta["command"]
                ],
            }
            if meta.get("stopped_by_capture"):
                info["note"] = (
                    "the server never exited by itself (its worker kept failing and "
                    "being restarted); the capture script sent SIGTERM after 20 s and "
                    "it then exited with the code above"
                )
            if meta.get("note"):
                info["note"] = meta["note"]
            with open(os.path.join(OUT, "crash", case + ".json"), "w") as f:
                json.dump(info, f, indent=1)
                f.write("\n")
        servers.setdefault(server, []).extend(rows)
    for server, rows in servers.items():
        write(os.path.join(OUT, server + ".jsonl"), rows)
        print(f"{server}: {len(rows)} lines")


if __name__ == "__main__":
    main()
