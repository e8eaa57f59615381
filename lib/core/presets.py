"""Presets: what each common model server needs that every user would otherwise rediscover.

A deploy body may name one (``"preset": "vllm"``); ``apply(body)`` returns the body
with the preset's defaults filled in where the user set nothing: the readiness
probe (an HTTP path, or a log line where the server has no readiness route),
``health.start_period`` (loading weights), ``stop.timeout``, and the port flag
when the command names no port. Explicit fields always win, one key at a time;
a user's own probe replaces the preset's probe (not its start period). Pure: the
result goes through ``lib.core.spec.parse_spec`` like any body.

``log_format`` is a hint shown by ``GET /presets``: the level detector recognizes
every one of these formats without it (tests/data/server_output/).

Where each value comes from is recorded next to it (``source``): the server's docs
or its source code, as read for issue 11.
"""

import shlex

from lib.errors import ValidationError

PORT = "{port}"

PRESETS = {
    "vllm": {
        "description": "vLLM's OpenAI-compatible server (vllm serve MODEL)",
        "health": {"http": "/v1/models", "start_period": 900},
        "stop_timeout": 30,
        "port_flags": ("--port",),
        "port_args": ("--port", PORT),
        "log_format": "vllm",
        "source": (
            "docs.vllm.ai serving/openai_compatible_server (--port, default 8000); "
            "vllm/entrypoints/openai/api_server.py: /health answers once the API server "
            "runs, even while inference fails, /v1/models lists the model once loaded"
        ),
    },
    "llama.cpp": {
        "description": "llama.cpp's llama-server",
        "health": {"http": "/health", "start_period": 600},
        "stop_timeout": 15,
        "port_flags": ("--port",),
        "port_args": ("--port", PORT),
        "log_format": "llama.cpp",
        "source": (
            "github.com/ggml-org/llama.cpp tools/server/README.md: --port (default 8080); "
            "GET /health is 503 'Loading model' until the model is loaded, then 200"
        ),
    },
    "mlflow": {
        "description": "mlflow models serve -m MODEL_URI",
        "health": {"http": "/ping", "start_period": 300},
        "stop_timeout": 30,
        "port_flags": ("--port", "-p"),
        "port_args": ("--port", PORT),
        "log_format": "mlflow",
        "source": (
            "mlflow.org docs, cli 'mlflow models serve' (-p/--port, default 5000); "
            "mlflow/pyfunc/scoring_server: GET /ping and /health answer 200 once the model "
            "is loaded; start_period covers --env-manager building an environment"
        ),
    },
    "bentoml": {
        "description": "bentoml serve SERVICE",
        "health": {"http": "/readyz", "start_period": 300},
        "stop_timeout": 30,
        "port_flags": ("--port", "-p"),
        "port_args": ("--port", PORT),
        "log_format": "bentoml",
        "source": (
            "docs.bentoml.com, 'bentoml serve' (--port, default 3000); BentoML's HTTP "
            "server exposes /livez, /readyz (ready once the service's workers started) "
            "and /metrics"
        ),
    },
    "litserve": {
        "description": "a LitServe script (LitServer(...).run(port=...))",
        "health": {"http": "/health", "start_period": 300},
        "stop_timeout": 30,
        "port_flags": (),
        "port_args": (),
        "log_format": "litserve",
        "source": (
            "github.com/Lightning-AI/LitServe src/litserve/server.py: GET /health answers "
            "'ok' once every inference worker ran setup(); the port is an argument of "
            "LitServer.run in the user's script (default 8000): read it from $PORT"
        ),
    },
    "ray-serve": {
        "description": "serve run MODULE:APP (Ray Serve)",
        "health": {"http": "/-/healthz", "start_period": 300},
        "stop_timeout": 60,
        "port_flags": (),
        "port_args": (),
        "log_format": "ray",
        "source": (
            "docs.ray.io serve/production-guide: the proxy answers /-/healthz and /-/routes; "
            "the HTTP port is http_options.port of the Serve config (default 8000), not a "
            "flag of 'serve run'; a graceful shutdown drains replicas (60 s)"
        ),
    },
    "tgi": {
        "description": "text-generation-launcher --model-id MODEL (Hugging Face TGI)",
        "health": {"http": "/health", "start_period": 900},
        "stop_timeout": 30,
        "port_flags": ("--port", "-p"),
        "port_args": ("--port", PORT),
        "log_format": "rust-tracing",
        "source": (
            "github.com/huggingface/text-generation-inference launcher/src/main.rs "
            "(--port, default 3000); router/src/server.rs: GET /health is 200 once the "
            "shards answer"
        ),
    },
    "torchserve": {
        "description": "torchserve --start --foreground --model-store DIR --models ...",
        "health": {"http": "/ping", "start_period": 300},
        "stop_timeout": 30,
        "port_flags": (),
        "port_args": (),
        "log_format": "log4j",
        "source": (
            "pytorch.org/serve docs (inference API: GET /ping 'Healthy'); the port is "
            "inference_address in config.properties (default 8080), no flag; without "
            "--foreground torchserve daemonizes and the monitor would see it exit"
        ),
    },
    "uvicorn": {
        "description": "uvicorn MODULE:APP (FastAPI, Starlette, any ASGI app)",
        "health": {"tcp": True, "start_period": 120},
        "stop_timeout": 30,
        "port_flags": ("--port", "--fd", "--uds"),
        "port_args": ("--port", PORT),
        "log_format": "uvicorn",
        "source": (
            "uvicorn.org settings (--port, default 8000); uvicorn/server.py runs the "
            "lifespan startup before it binds, so an accepted connection means the app "
            "started (there is no standard health route)"
        ),
    },
    "gunicorn": {
        "description": "gunicorn MODULE:APP (WSGI, or -k uvicorn.workers.UvicornWorker)",
        "health": {"log": "Booting worker with pid", "start_period": 120},
        "stop_timeout": 30,
        "port_flags": ("--bind", "-b"),
        "port_args": ("--bind", "127.0.0.1:" + PORT),
        "log_format": "gunicorn",
        "source": (
            "docs.gunicorn.org settings (bind, default 127.0.0.1:8000; graceful_timeout "
            "30 s); gunicorn/arbiter.py binds before workers load the app, so a TCP probe "
            "would pass early: readiness is its 'Booting worker with pid' line"
        ),
    },
}

NAMES = tuple(PRESETS)
PROBE_KEYS = ("http", "tcp", "log")


def apply(body):
    """``body`` with its preset's defaults filled in (``body`` itself if it names none)."""
    if not isinstance(body, dict) or body.get("preset") is None:
        return body
    name = body["preset"]
    if not isinstance(name, str) or name not in PRESETS:
        raise ValidationError("preset", "unknown preset %r (one of: %s)" % (name, ", ".join(NAMES)))
    preset = PRESETS[name]
    filled = dict(body)
    filled["health"] = _health(body.get("health"), preset["health"])
    filled["stop"] = _stop(body.get("stop"), preset["stop_timeout"])
    command = body.get("command")
    if isinstance(command, str):
        try:
            command = shlex.split(command)
        except ValueError:
            pass  # parse_spec names the field
    if isinstance(command, list) and preset["port_args"] and not _names_a_port(command, preset):
        filled["command"] = command + list(preset["port_args"])
        filled.setdefault("port", "auto")
    elif "port" not in body and isinstance(command, list) and any(PORT in a for a in command):
        filled["port"] = "auto"
    return filled


def describe():
    """Every preset, for ``GET /presets``."""
    return {
        name: {
            "description": preset["description"],
            "health": dict(preset["health"]),
            "stop": {"timeout": preset["stop_timeout"]},
            "port_flag": list(preset["port_args"]),
            "log_format": preset["log_format"],
            "source": preset["source"],
        }
        for name, preset in PRESETS.items()
    }


def _health(given, default):
    if given is not None and not isinstance(given, dict):
        return given  # parse_spec names the field
    health = dict(given or {})
    own_probe = any(key in health for key in PROBE_KEYS)
    for key, value in default.items():
        if key in PROBE_KEYS and own_probe:
            continue
        health.setdefault(key, value)
    return health


def _stop(given, timeout):
    if given is not None and not isinstance(given, dict):
        return given
    stop = dict(given or {})
    stop.setdefault("timeout", timeout)
    return stop


def _names_a_port(command, preset):
    """The command already says where to listen: a port flag, or the ``{port}`` placeholder."""
    for arg in command:
        if not isinstance(arg, str):
            continue
        if PORT in arg or arg.split("=", 1)[0] in preset["port_flags"]:
            return True
    return False
