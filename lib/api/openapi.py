"""The OpenAPI 3.0 document of the API, served at ``GET /openapi.json``.

Built from data here, and checked against the app's routes by a test, so a
route cannot exist undocumented. Standard library only.
"""

from lib import errors
from lib.core import identity, params, presets, spec, specdiff, vocabulary
from lib.export import targets as export_targets
from lib.logs import levels, query

_ERROR_STATUSES = {
    400: "Bad input: malformed JSON, an unknown or wrong field or parameter (details.field)",
    401: "Missing or wrong bearer token",
    403: "The token's scope does not allow this (details.scope), or the program is not on "
    "the --allow-exec list (details.field: command[0])",
    404: "No such model, or no such route",
    405: "Method not allowed on this path",
    409: "Conflict: the model is already running, busy, or its port is in use",
    408: "The request head did not arrive within the head timeout (or the body in 60 s)",
    413: "Request body too large (a declared length, or a chunked body past the limit)",
    414: "URL too long",
    422: "The model exited or failed before it was ready (wait=true)",
    429: "Rate limited; see Retry-After",
    431: "Request headers too large (16 KiB; a whole request head over 64 KiB)",
    500: "Internal error; details.request_id finds it in the daemon log",
    503: "Shutting down, or too many log followers, waiters or connections; see Retry-After",
    507: "The model's directory cannot be written (details.cause); a stop still reached it",
    504: "wait=true timed out while the model was still starting",
}
_COMMON = (401, 403, 405, 408, 413, 414, 429, 431, 500, 503)


def _ref(name):
    return {"$ref": "#/components/schemas/%s" % name}


def _nullable(schema):
    return dict(schema, nullable=True)


# The counts of spec.MAX_ITEMS are said in words, not as maxItems/maxProperties: a body
# over them is mostly over the body limit too, and fuzzers then meet a 413, not the 400.
def _at_most(field):
    return "at most %d entries" % spec.MAX_ITEMS[field]


def _string_map(field):
    return {
        "type": "object",
        "description": _at_most(field),
        "additionalProperties": _string(field + ".*"),
    }


def _string(field, **extra):
    return dict({"type": "string", "maxLength": spec.MAX_LENGTHS[field]}, **extra)


def _number(minimum, maximum, integer=False):
    return {"type": "integer" if integer else "number", "minimum": minimum, "maximum": maximum}


def _bounded(field):
    """The schema of a numeric spec field, from ``spec.BOUNDS`` (the parser's own table)."""
    bound = spec.BOUNDS[field]
    schema = _number(bound.low, bound.high, bound.integer)
    if bound.default is not None:
        schema["default"] = bound.default
    return schema


def _principal(description):
    return {
        "oneOf": [{"type": "string"}, {"type": "integer", "minimum": 0}],
        "description": description,
    }


def _schemas():
    health = {
        "type": "object",
        "additionalProperties": False,
        "description": "At most one probe of http, tcp or log.",
        "properties": {
            "http": _string("health.http", pattern="^/", description="path; 2xx is healthy"),
            "tcp": {"type": "boolean", "enum": [True]},
            "log": _string("health.log", description="a regex seen in the model's output"),
            "interval": _bounded("health.interval"),
            "timeout": _bounded("health.timeout"),
            "start_period": dict(
                _bounded("health.start_period"),
                description="default %g with a probe, %g without"
                % (spec.DEFAULT_START_PERIOD_PROBE, spec.DEFAULT_START_PERIOD_NO_PROBE),
            ),
            "retries": _bounded("health.retries"),
        },
    }
    model_spec = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "command"],
        "properties": {
            "name": {"type": "string", "pattern": spec.NAME_PATTERN.pattern},
            "command": {
                "oneOf": [
                    {
                        "type": "array",
                        "items": _string("command"),
                        "minItems": 1,
                        "description": _at_most("command"),
                    },
                    _string("command", minLength=1, description="split with shlex"),
                ]
            },
            "env": _string_map("env"),
            "cwd": _string("cwd", pattern="^/"),
            "port": {
                "oneOf": [{"type": "string", "enum": ["auto"]}, _bounded("port")],
                "nullable": True,
            },
            "health": _nullable(health),
            "restart": _nullable(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "policy": {"type": "string", "enum": list(vocabulary.RESTART_POLICIES)},
                        "max_retries": _nullable(_bounded("restart.max_retries")),
                        "backoff": _bounded("restart.backoff"),
                        "backoff_max": _bounded("restart.backoff_max"),
                        "reset_after": _bounded("restart.reset_after"),
                    },
                }
            ),
            "stop": _nullable(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "signal": {"type": "string", "enum": list(spec.STOP_SIGNALS)},
                        "timeout": _bounded("stop.timeout"),
                    },
                }
            ),
            "logs": _nullable(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "max_bytes": _bounded("logs.max_bytes"),
                        "backups": _bounded("logs.backups"),
                    },
                }
            ),
            "labels": _string_map("labels"),
            "gpus": _nullable(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "description": "count (modeld chooses) or ids (pinned), not both",
                    "properties": {
                        "count": _bounded("gpus.count"),
                        "ids": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": spec.MAX_GPUS,
                            "items": {"type": "string", "description": "an index or a UUID"},
                        },
                        "min_free_mib": _nullable(_bounded("gpus.min_free_mib")),
                        "wait": _bounded("gpus.wait"),
                        "shared": {"type": "boolean"},
                    },
                }
            ),
            "preset": _nullable(
                {
                    "type": "string",
                    "enum": list(presets.NAMES),
                    "description": "fills defaults the spec does not set (GET /presets)",
                }
            ),
            "user": _nullable(_principal("the user the model runs as (root daemons only)")),
            "group": _nullable(_principal("its primary group (default: the user's)")),
            "extra_groups": {
                "type": "array",
                "maxItems": identity.MAX_EXTRA_GROUPS,
                "items": _principal("a supplementary group, e.g. video or render"),
            },
            "limits": {
                "type": "object",
                "additionalProperties": False,
                "description": "a cgroup per model where modeld may create one, else rlimits; "
                "a limit nothing can enforce is a 400 (status: limits_enforcement)",
                "properties": {
                    "memory_bytes": _nullable(_bounded("limits.memory_bytes")),
                    "tasks": _nullable(_bounded("limits.tasks")),
                    "open_files": _nullable(_bounded("limits.open_files")),
                    "core_bytes": _nullable(_bounded("limits.core_bytes")),
                    "cpu": _nullable(
                        dict(_bounded("limits.cpu"), description="cores (a cgroup only)")
                    ),
                },
            },
            "activation": _nullable(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "description": "on demand: a listener that starts the model on the first "
                    "connection and unloads it after idle_timeout with no open connection",
                    "properties": {
                        "listen": {
                            "oneOf": [
                                {"type": "string", "enum": ["auto"]},
                                _bounded("activation.listen"),
                            ],
                            "default": "auto",
                        },
                        "host": {
                            "type": "string",
                            "default": spec.ACTIVATION_DEFAULT_HOST,
                            "description": "an IPv4 or IPv6 address",
                        },
                        "idle_timeout": _bounded("activation.idle_timeout"),
                        "load_timeout": _bounded("activation.load_timeout"),
                        "max_pending": _bounded("activation.max_pending"),
                        "http_503": {
                            "type": "boolean",
                            "default": False,
                            "description": "answer a refused connection with a short 503",
                        },
                    },
                }
            ),
        },
    }
    last_exit = {
        "type": "object",
        "nullable": True,
        "properties": {
            "code": _nullable({"type": "integer"}),
            "signal": _nullable({"type": "string"}),
            "at": _nullable({"type": "string", "format": "date-time"}),
            "reason": _nullable({"type": "string"}),
            "cause": _nullable({"type": "string", "description": "the reason the output gives"}),
            "oom_killer": _nullable({"type": "boolean"}),
            "limit": {"type": "object", "description": "oom_killed: the limit that was hit"},
            "first_error": {"type": "array", "items": {"type": "string"}},
            "last_lines": {"type": "array", "items": {"type": "string"}},
        },
    }
    model_status = {
        "type": "object",
        "required": ["name", "status", "health", "ready", "spec", "metrics"],
        "properties": {
            "name": {"type": "string"},
            "status": {"type": "string", "enum": list(vocabulary.STATUSES)},
            "health": {"type": "string", "enum": list(vocabulary.HEALTH_VALUES)},
            "ready": {"type": "boolean"},
            "reason": _nullable({"type": "string"}),
            "desired": {"type": "string", "enum": list(vocabulary.DESIRED_STATES)},
            "pid": _nullable({"type": "integer"}),
            "port": _nullable({"type": "integer"}),
            "endpoint": _nullable({"type": "string"}),
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": _nullable({"type": "string", "format": "date-time"}),
            "restarts": {"type": "integer"},
            "next_restart_at": _nullable({"type": "string", "format": "date-time"}),
            "last_exit": last_exit,
            "metrics": {
                "type": "object",
                "properties": {
                    "cpu_percent": _nullable({"type": "number"}),
                    "rss_bytes": _nullable({"type": "integer"}),
                    "threads": _nullable({"type": "integer"}),
                    "uptime_s": _nullable({"type": "number"}),
                    "log_bytes": {"type": "integer"},
                },
            },
            "monitor": {
                "type": "object",
                "properties": {
                    "pid": _nullable({"type": "integer"}),
                    "alive": {"type": "boolean"},
                },
            },
            "command": {
                "type": "array",
                "items": {"type": "string"},
                "description": "the argv that runs: {port} resolved, secrets masked",
            },
            "spec": {"type": "object", "description": "the normalized spec, secrets masked"},
            "purged": {"type": "boolean"},
            "waiting_for": _nullable(
                {
                    "type": "string",
                    "enum": [vocabulary.WAITING_FOR_GPU],
                    "description": "in starting",
                }
            ),
            "gpus": {"type": "array", "items": _ref("ModelGpu")},
            "limits_enforcement": {
                "type": "object",
                "description": "each limit's mechanism: cgroup_v2, cgroup_v1 or rlimit",
                "additionalProperties": {"type": "string"},
            },
            "gpu_memory_bytes": _nullable({"type": "integer"}),
            "gpu_memory_reason": _nullable(
                {"type": "string", "description": "why gpu_memory_bytes is null"}
            ),
            "activation": _nullable(
                {
                    "type": "object",
                    "description": "an on-demand model's relay (null without activation)",
                    "properties": {
                        "listen": _nullable({"type": "integer"}),
                        "state": _nullable(
                            {"type": "string", "enum": list(vocabulary.ACTIVATION_STATES)}
                        ),
                        "pending": {"type": "integer"},
                        "connections": {"type": "integer"},
                        "last_activity": _nullable({"type": "string", "format": "date-time"}),
                        "unloads": {"type": "integer"},
                        "refused": {"type": "integer"},
                    },
                }
            ),
        },
    }
    model_gpu = {
        "type": "object",
        "required": ["index", "uuid"],
        "properties": {
            "index": _GPU_INDEX,
            "uuid": {"type": "string"},
            "name": _nullable({"type": "string"}),
            "memory_used_bytes": _nullable({"type": "integer"}),
        },
    }
    gpu_process = {
        "type": "object",
        "properties": {
            "pid": {"type": "integer"},
            "used_memory_bytes": _nullable({"type": "integer"}),
            "model": _nullable({"type": "string"}),
            "command": _nullable({"type": "string"}),
            "visible": {"type": "boolean", "description": "in this pid namespace"},
        },
    }
    device = {
        "type": "object",
        "required": ["index", "uuid", "models", "processes", "foreign_processes"],
        "properties": {
            "index": _GPU_INDEX,
            "uuid": {"type": "string"},
            "name": _nullable({"type": "string"}),
            "memory_total_bytes": _nullable({"type": "integer"}),
            "memory_used_bytes": _nullable({"type": "integer"}),
            "memory_free_bytes": _nullable({"type": "integer"}),
            "utilization_percent": _nullable({"type": "integer"}),
            "models": {"type": "array", "items": {"type": "string"}},
            "processes": {"type": "array", "items": gpu_process},
            "foreign_processes": {"type": "array", "items": gpu_process},
        },
    }
    log_entry = {
        "type": "object",
        "required": ["seq", "ts", "stream", "level", "msg"],
        "properties": {
            "seq": {"type": "integer", "minimum": 1},
            "ts": {"type": "string", "format": "date-time"},
            "stream": {"type": "string", "enum": ["stdout", "stderr", "modeld"]},
            "level": {"type": "string", "enum": list(levels.LEVELS)},
            "msg": {"type": "string"},
            "partial": {"type": "boolean", "description": "a piece of a line over 16 KiB"},
            "model": {"type": "string", "description": "GET /logs only: whose entry it is"},
            "probe": {
                "type": "boolean",
                "description": "the model's access-log line for a health probe of modeld",
            },
        },
    }
    event = {
        "type": "object",
        "required": ["at", "model", "to"],
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "model": {"type": "string"},
            "from": _nullable({"type": "string"}),
            "to": {"type": "string"},
            "reason": _nullable({"type": "string"}),
            "exit": {"type": "object", "nullable": True},
            "cause": {"type": "object", "nullable": True},
        },
    }
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "details"],
                "properties": {
                    "code": {
                        "type": "string",
                        "enum": sorted({cls.code for cls in errors.all_error_classes()}),
                    },
                    "message": {"type": "string"},
                    "details": {"type": "object"},
                },
            }
        },
    }
    return {
        "ModelSpec": model_spec,
        "ModelStatus": model_status,
        "ModelList": {
            "type": "object",
            "required": ["models"],
            "properties": {"models": {"type": "array", "items": _ref("ModelStatus")}},
        },
        "ModelGpu": model_gpu,
        **_declarative_schemas(),
        "GpuList": {
            "type": "object",
            "required": ["gpus"],
            "properties": {
                "gpus": {"type": "array", "items": device},
                "sampled_at": _nullable({"type": "string", "format": "date-time"}),
                "error": _nullable({"type": "string", "description": "why there is no GPU"}),
            },
        },
        "DryRun": {
            "type": "object",
            "required": ["dry_run", "name", "command", "spec"],
            "properties": {
                "dry_run": {"type": "boolean"},
                "name": {"type": "string"},
                "port": _nullable({"type": "integer"}),
                "endpoint": _nullable({"type": "string"}),
                "executable": {"type": "string"},
                "command": {"type": "array", "items": {"type": "string"}},
                "gpus": {"type": "array", "items": _ref("ModelGpu")},
                "spec": {"type": "object"},
            },
        },
        "LogEntry": log_entry,
        "LogPage": {
            "type": "object",
            "required": ["entries", "next_cursor", "has_more"],
            "properties": {
                "entries": {"type": "array", "items": _ref("LogEntry")},
                "next_cursor": {"type": "string"},
                "has_more": {"type": "boolean"},
                "skipped": {"type": "integer", "description": "entries rotated away"},
            },
        },
        "Event": event,
        "EventList": {
            "type": "object",
            "required": ["events"],
            "properties": {"events": {"type": "array", "items": _ref("Event")}},
        },
        "Error": error,
        "Export": {
            "type": "object",
            "required": ["target", "files", "unmapped", "notes", "renames", "complete"],
            "properties": {
                "target": {"type": "string"},
                "files": {"type": "object", "additionalProperties": {"type": "string"}},
                "unmapped": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "field": {"type": "string"},
                            "value": {},
                            "why": {"type": "string"},
                        },
                    },
                },
                "notes": {"type": "array", "items": {"type": "string"}},
                "renames": {"type": "array", "items": {"type": "object"}},
                "complete": {"type": "boolean"},
            },
        },
    }


_GPU_INDEX = {
    "oneOf": [{"type": "integer"}, {"type": "string"}],
    "nullable": True,
    "description": "the nvidia-smi index (a string for a MIG-style id)",
}


def _param(name, description, schema=None, where="query", required=False):
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


NAME_EXAMPLE = "tiny"
_NAME = _param(
    "name",
    "the model's name",
    {"type": "string", "pattern": spec.NAME_PATTERN.pattern, "example": NAME_EXAMPLE},
    "path",
    True,
)
_STATUS_LIST = {
    "type": "string",
    "pattern": "^(%s)(,(%s))*$" % (("|".join(vocabulary.STATUSES),) * 2),
}
_LEVEL_NAMES = "|".join(levels.LEVELS)
_LEVEL = {"type": "string", "pattern": "^(%s)?(\\.\\.(%s)?)?$" % (_LEVEL_NAMES, _LEVEL_NAMES)}
_STREAMS = "stdout|stderr|modeld|both|all"
_STREAM = {"type": "string", "pattern": "^(%s)(,(%s))*$" % (_STREAMS, _STREAMS)}
_BOOL = {"type": "string", "enum": ["true", "false"]}


def _json(schema_name):
    return {"application/json": {"schema": _ref(schema_name)}}


def _operation(
    summary, ok, statuses, parameters=(), body=None, ok_status=200, content=None, auth=True
):
    responses = {str(ok_status): {"description": "OK", "content": content or _json(ok)}}
    common = set(_COMMON) if auth else set(_COMMON) - {401, 403}
    for status in sorted(set(statuses) | common):
        responses[str(status)] = {"description": _ERROR_STATUSES[status], "content": _json("Error")}
    operation = {"summary": summary, "parameters": list(parameters), "responses": responses}
    if body:
        operation["requestBody"] = {"required": True, "content": _json(body)}
    return operation


def _log_parameters():
    return [
        _NAME,
        _param("since", "inclusive start: RFC 3339, epoch seconds, or relative (30s, 10m, 2h)"),
        _param("until", "inclusive end, same forms as since"),
        _param(
            "level", "minimum level (warning = warning and above) or a range info..error", _LEVEL
        ),
        _param("stream", "stdout, stderr, modeld, both (stdout+stderr) or all (default)", _STREAM),
        _param(
            "grep",
            "substring; case-insensitive when all lower-case",
            {"type": "string", "minLength": 1, "maxLength": query.MAX_GREP},
        ),
        _param("tail", "the last N entries of the window", _number(0, query.MAX_TAIL, True)),
        _param("limit", "page size (default 100)", _number(1, query.MAX_LIMIT, True)),
        _param("cursor", "next_cursor of the previous page"),
        _param("follow", "stream new entries as they are written", _BOOL),
        _param("format", "json (default) or text", {"type": "string", "enum": ["json", "text"]}),
        _param(
            "probes",
            "lines a health probe of modeld caused: exclude (default), include, only",
            {"type": "string", "enum": list(query.PROBE_CHOICES)},
        ),
    ]


def _observe_paths():
    """The routes of ``lib.api.observe``: metrics, logs of every model, the dashboard."""
    logs_content = {
        "application/json": {"schema": _ref("LogPage")},
        "application/x-ndjson": {"schema": {"type": "string"}},
        "text/plain": {"schema": {"type": "string"}},
    }
    text = {"text/plain": {"schema": {"type": "string"}}}
    html = {"text/html": {"schema": {"type": "string"}}}
    filename = _param(
        "filename",
        "a file of the dashboard",
        {"type": "string", "enum": ["index.html", "app.js", "app.css"]},
        "path",
        True,
    )
    return {
        "/metrics": {
            "get": _operation(
                "Prometheus metrics (text format 0.0.4); no token with --metrics-no-auth",
                None,
                (400,),
                content=text,
            )
        },
        "/logs": {
            "get": _operation(
                "Query or follow the logs of every model, merged by time",
                "LogPage",
                (400, 503),
                _log_parameters()[1:],
                content=logs_content,
            )
        },
        "/ui": {
            "get": dict(
                _operation(
                    "The dashboard (no token: it asks for one)",
                    None,
                    (400,),
                    content=html,
                    auth=False,
                ),
                security=[],
            )
        },
        "/ui/{filename}": {
            "get": dict(
                _operation(
                    "The dashboard's page, script and style sheet",
                    None,
                    (400, 404),
                    [filename],
                    content={
                        "text/html": {"schema": {"type": "string"}},
                        "text/javascript": {"schema": {"type": "string"}},
                        "text/css": {"schema": {"type": "string"}},
                    },
                    auth=False,
                ),
                security=[],
            )
        },
    }


def _declarative_schemas():
    step = {
        "type": "object",
        "required": ["name", "kind", "paths"],
        "properties": {
            "name": {"type": "string"},
            "kind": {"type": "string", "enum": list(specdiff.KINDS)},
            "paths": {"type": "array", "items": {"type": "string"}},
            "restart_paths": {"type": "array", "items": {"type": "string"}},
            "reason": {"type": "string"},
            "adopted_from": {"type": "string", "nullable": True},
            "outcome": {"type": "string", "enum": ["done", "failed", "skipped"]},
            "error": {"type": "object"},
            "status": {"type": "string"},
            "pid": {"type": "integer", "nullable": True},
            "model": _ref("ModelStatus"),
        },
    }
    return {
        "PlanStep": step,
        "ApplyRequest": {
            "type": "object",
            "required": ["set", "models"],
            "additionalProperties": False,
            "properties": {
                "set": {"type": "string", "pattern": spec.NAME_PATTERN.pattern},
                "models": {"type": "array", "items": _ref("ModelSpec")},
                "prune": {"type": "boolean", "default": False},
                "prune_all": {"type": "boolean", "default": False},
            },
        },
        "ApplyResult": {
            "type": "object",
            "required": ["set", "result", "plan", "summary"],
            "properties": {
                "set": {"type": "string"},
                "result": {"type": "string", "enum": ["applied", "partial", "planned"]},
                "dry_run": {"type": "boolean"},
                "summary": {"type": "object"},
                "plan": {"type": "array", "items": _ref("PlanStep")},
            },
        },
        "ExportedSpec": {
            "type": "object",
            "properties": {
                "spec": _ref("ModelSpec"),
                "set": {"type": "string", "nullable": True},
                "secret_reference": {"type": "string"},
            },
        },
    }


def _created_too(*args, **kwargs):
    """An ``_operation`` that answers 201 (a new name) as well as 200, with the same body."""
    operation = _operation(*args, **kwargs)
    operation["responses"]["201"] = dict(operation["responses"]["200"], description="Created")
    return operation


def _declarative_paths():
    """The routes of ``lib.api.declarative``."""
    wait_timeout = _param(
        "timeout", "seconds to wait for readiness", _number(0, params.WAIT_TIMEOUT_MAX)
    )
    dry_run = _param("dry_run", "return the plan; change nothing", _BOOL)
    wait = _param("wait", "answer once every model touched is ready", _BOOL)
    return {
        "/apply": {
            "post": _operation(
                "Apply a set of models: plan, then deletes, restarts (stop before start),"
                " in-place updates, creates; one apply at a time (409 apply_in_progress)",
                "ApplyResult",
                (400, 409, 413, 503),
                [dry_run, wait, wait_timeout],
                body="ApplyRequest",
            )
        },
        "/models/{name}/spec": {
            "get": _operation(
                "The spec to apply again: secrets as a reference the apply keeps",
                "ExportedSpec",
                (400, 404),
                [_NAME],
            )
        },
    }


def paths():
    timeout = _param("timeout", "seconds", _number(0, params.STOP_TIMEOUT_MAX))
    wait_timeout = _param(
        "timeout", "seconds to wait for readiness", _number(0, params.WAIT_TIMEOUT_MAX)
    )
    index = {"type": "object", "properties": {"version": {"type": "string"}}}
    health = {"type": "object", "properties": {"status": {"type": "string"}}}
    logs_content = {
        "application/json": {"schema": _ref("LogPage")},
        "application/x-ndjson": {"schema": {"type": "string"}},
        "text/plain": {"schema": {"type": "string"}},
    }
    return {
        "/health": {
            "get": dict(
                _operation(
                    "Daemon liveness (no auth)",
                    "Error",
                    (),
                    content={"application/json": {"schema": health}},
                    auth=False,
                ),
                security=[],
            )
        },
        "/": {
            "get": _operation(
                "Version, uptime and links",
                "Error",
                (400,),
                content={"application/json": {"schema": index}},
            )
        },
        "/presets": {
            "get": _operation(
                "The presets of common model servers and the defaults each fills in",
                "Error",
                (400, 401),
                content={"application/json": {"schema": {"type": "object"}}},
            )
        },
        "/openapi.json": {
            "get": _operation(
                "This document",
                "Error",
                (400,),
                content={"application/json": {"schema": {"type": "object"}}},
            )
        },
        "/models": {
            "post": _operation(
                "Deploy a model",
                "ModelStatus",
                (400, 409, 413, 422, 503, 504, 507),
                [
                    _param("wait", "answer once the model is ready", _BOOL),
                    wait_timeout,
                    _param("dry_run", "check and resolve only; start nothing", _BOOL),
                ],
                body="ModelSpec",
                ok_status=201,
            ),
            "get": _operation(
                "List models",
                "ModelList",
                (400,),
                [
                    _param("status", "comma-separated statuses to keep", _STATUS_LIST),
                    _param(
                        "label",
                        "label selector, repeatable (AND): key=value, key!=value, key, !key;"
                        " comma-separated requirements also combine with AND",
                    ),
                ],
            ),
        },
        "/models/{name}": {
            "put": _created_too(
                "Replace a model's spec: unchanged, in place (pid kept) or restart; 201 if new",
                "PlanStep",
                (400, 409, 413, 422, 503, 504),
                [
                    _NAME,
                    _param("dry_run", "return the plan; change nothing", _BOOL),
                    _param("wait", "answer once the model is ready", _BOOL),
                    _param(
                        "timeout",
                        "seconds to wait for readiness",
                        _number(0, params.WAIT_TIMEOUT_MAX),
                    ),
                ],
                body="ModelSpec",
            ),
            "get": _operation(
                "A model's status, metrics and configuration", "ModelStatus", (400, 404), [_NAME]
            ),
            "delete": _operation(
                "Stop a model gracefully",
                "ModelStatus",
                (400, 404, 409, 503, 507),
                [_NAME, timeout, _param("purge", "also remove its record and logs", _BOOL)],
            ),
        },
        "/models/{name}/start": {
            "post": _operation(
                "Start a stopped model",
                "ModelStatus",
                (400, 404, 409, 422, 503, 504, 507),
                [_NAME, _param("wait", "answer once ready", _BOOL), wait_timeout],
            )
        },
        "/models/{name}/restart": {
            "post": _operation(
                "Restart a model", "ModelStatus", (400, 404, 409, 503, 507), [_NAME, timeout]
            )
        },
        "/models/{name}/unload": {
            "post": _operation(
                "Unload an on-demand model now (back to idle; its listener stays bound)",
                "ModelStatus",
                (400, 404, 409, 503),
                [
                    _NAME,
                    _param(
                        "reason",
                        "recorded in the unload event (default manual)",
                        {
                            "type": "string",
                            "enum": [vocabulary.UNLOAD_MANUAL, vocabulary.UNLOAD_EVICTED],
                        },
                    ),
                ],
            )
        },
        "/models/{name}/logs": {
            "get": _operation(
                "Query or follow a model's logs",
                "LogPage",
                (400, 404, 503),
                _log_parameters(),
                content=logs_content,
            )
        },
        "/gpus": {
            "get": _operation(
                "The host's GPUs, the models assigned to each, and who holds their memory",
                "GpuList",
                (400,),
            )
        },
        "/models/{name}/export": {
            "get": _operation(
                "The model for another engine: files, unmapped fields, notes",
                "Export",
                (400, 404),
                [
                    _NAME,
                    _param(
                        "to",
                        "the target engine",
                        {"type": "string", "enum": list(export_targets.TARGETS)},
                        required=True,
                    ),
                    _param("image", "container image (required for kubernetes)"),
                    _param("k8s_version", "target Kubernetes version, e.g. 1.33 (default 1.32)"),
                    _param(
                        "port",
                        "the port on the target (default: the model's)",
                        _number(1, 65535, True),
                    ),
                ],
            )
        },
        "/models/{name}/events": {
            "get": _operation(
                "A model's state changes",
                "EventList",
                (400, 404),
                [
                    _NAME,
                    _param("limit", "at most this many", _number(1, params.EVENTS_LIMIT_MAX, True)),
                    _param("since", "RFC 3339, epoch seconds or relative"),
                ],
            )
        },
        "/events": {
            "get": _operation(
                "State changes of every model (the newest; follow=true streams new ones)",
                "EventList",
                (400, 503),
                [
                    _param("limit", "at most this many", _number(1, params.EVENTS_LIMIT_MAX, True)),
                    _param("since", "RFC 3339, epoch seconds or relative"),
                    _param("follow", "then stream new events as JSON lines", _BOOL),
                ],
                content={
                    "application/json": {"schema": _ref("EventList")},
                    "application/x-ndjson": {"schema": {"type": "string"}},
                },
            )
        },
        **_observe_paths(),
        **_token_paths(),
        **_declarative_paths(),
    }


def _token_paths():
    token = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "scope": {"type": "string", "enum": list(vocabulary.SCOPES)},
            "created_at": {"type": "number"},
            "token": {"type": "string", "description": "in the POST answer only, once"},
        },
    }
    listing = {"type": "object", "properties": {"tokens": {"type": "array", "items": token}}}
    created = {"application/json": {"schema": token}}
    create = dict(
        _operation("Create a named token (admin)", "Error", (400,), ok_status=201, content=created),
        requestBody={
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["name", "scope"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "scope": {"type": "string", "enum": list(vocabulary.SCOPES)},
                        },
                    }
                }
            },
        },
    )
    revoked = {"type": "object", "properties": {"name": {"type": "string"}}}
    return {
        "/tokens": {
            "get": _operation(
                "Named tokens: name, scope, created_at (admin; never a token)",
                "Error",
                (400,),
                content={"application/json": {"schema": listing}},
            ),
            "post": create,
        },
        "/tokens/{name}": {
            "delete": _operation(
                "Revoke a named token: effective at the next request, follow streams end",
                "Error",
                (400, 404),
                [_param("name", "the token's name", where="path", required=True)],
                content={"application/json": {"schema": revoked}},
            )
        },
    }


def document(version):
    """The whole OpenAPI document."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "modeld",
            "version": version,
            "description": "Deploy and supervise model servers. Errors share one shape: "
            '{"error": {"code", "message", "details"}}.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
