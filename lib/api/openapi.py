"""The OpenAPI 3.0 document of the API, served at ``GET /openapi.json``.

Built from data here, and checked against the app's routes by a test, so a
route cannot exist undocumented. Standard library only.
"""

from lib import errors
from lib.core import presets, spec, vocabulary
from lib.logs import levels, query

_ERROR_STATUSES = {
    400: "Bad input: malformed JSON, an unknown or wrong field or parameter (details.field)",
    401: "Missing or wrong bearer token",
    404: "No such model, or no such route",
    405: "Method not allowed on this path",
    409: "Conflict: the model is already running, busy, or its port is in use",
    413: "Request body too large",
    414: "URL too long",
    422: "The model exited or failed before it was ready (wait=true)",
    429: "Rate limited; see Retry-After",
    431: "Request headers too large",
    500: "Internal error; details.request_id finds it in the daemon log",
    503: "Shutting down, or too many log followers; see Retry-After",
    504: "wait=true timed out while the model was still starting",
}
_COMMON = (401, 405, 414, 429, 431, 500)


def _ref(name):
    return {"$ref": "#/components/schemas/%s" % name}


def _nullable(schema):
    return dict(schema, nullable=True)


def _string_map():
    return {"type": "object", "additionalProperties": {"type": "string"}}


def _number(minimum, maximum, integer=False):
    return {"type": "integer" if integer else "number", "minimum": minimum, "maximum": maximum}


def _schemas():
    health = {
        "type": "object",
        "additionalProperties": False,
        "description": "At most one probe of http, tcp or log.",
        "properties": {
            "http": {"type": "string", "pattern": "^/", "description": "path; 2xx is healthy"},
            "tcp": {"type": "boolean", "enum": [True]},
            "log": {"type": "string", "description": "a regex seen in the model's output"},
            "interval": _number(0.1, 3600),
            "timeout": _number(0.1, 3600),
            "start_period": _number(0, 86400),
            "retries": _number(1, 100, True),
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
                    {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    {"type": "string", "minLength": 1, "description": "split with shlex"},
                ]
            },
            "env": _string_map(),
            "cwd": {"type": "string", "pattern": "^/"},
            "port": {
                "oneOf": [{"type": "string", "enum": ["auto"]}, _number(1, 65535, True)],
                "nullable": True,
            },
            "health": _nullable(health),
            "restart": _nullable(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "policy": {"type": "string", "enum": list(vocabulary.RESTART_POLICIES)},
                        "max_retries": _nullable(_number(0, 1_000_000, True)),
                        "backoff": _number(0, 3600),
                        "backoff_max": _number(0, 86400),
                        "reset_after": _number(0, 86400),
                    },
                }
            ),
            "stop": _nullable(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "signal": {"type": "string", "enum": list(spec.STOP_SIGNALS)},
                        "timeout": _number(0, 3600),
                    },
                }
            ),
            "logs": _nullable(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "max_bytes": _number(1024, 2**40, True),
                        "backups": _number(0, 10000, True),
                    },
                }
            ),
            "labels": _string_map(),
            "preset": _nullable(
                {
                    "type": "string",
                    "enum": list(presets.NAMES),
                    "description": "fills defaults the spec does not set (GET /presets)",
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
_BOOL = {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no"]}


def _json(schema_name):
    return {"application/json": {"schema": _ref(schema_name)}}


def _operation(
    summary, ok, statuses, parameters=(), body=None, ok_status=200, content=None, auth=True
):
    responses = {str(ok_status): {"description": "OK", "content": content or _json(ok)}}
    common = set(_COMMON) if auth else set(_COMMON) - {401}
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


def paths():
    timeout = _param("timeout", "seconds", _number(0, 3600))
    wait_timeout = _param("timeout", "seconds to wait for readiness", _number(0, 86400))
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
                (400, 409, 413, 422, 503, 504),
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
                [_param("status", "comma-separated statuses to keep", _STATUS_LIST)],
            ),
        },
        "/models/{name}": {
            "get": _operation(
                "A model's status, metrics and configuration", "ModelStatus", (400, 404), [_NAME]
            ),
            "delete": _operation(
                "Stop a model gracefully",
                "ModelStatus",
                (400, 404, 409, 503),
                [_NAME, timeout, _param("purge", "also remove its record and logs", _BOOL)],
            ),
        },
        "/models/{name}/start": {
            "post": _operation(
                "Start a stopped model",
                "ModelStatus",
                (400, 404, 409, 422, 503, 504),
                [_NAME, _param("wait", "answer once ready", _BOOL), wait_timeout],
            )
        },
        "/models/{name}/restart": {
            "post": _operation(
                "Restart a model", "ModelStatus", (400, 404, 409, 503), [_NAME, timeout]
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
        "/models/{name}/events": {
            "get": _operation(
                "A model's state changes",
                "EventList",
                (400, 404),
                [
                    _NAME,
                    _param("limit", "at most this many", _number(1, 10000, True)),
                    _param("since", "RFC 3339, epoch seconds or relative"),
                ],
            )
        },
        "/events": {
            "get": _operation(
                "State changes of every model",
                "EventList",
                (400,),
                [
                    _param("limit", "at most this many", _number(1, 10000, True)),
                    _param("since", "RFC 3339, epoch seconds or relative"),
                ],
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
