"""Level detection, table-driven over real sample lines of each format."""

import pytest

from lib.logs.levels import detect
from lib.logs.records import LevelTracker

SAMPLES = [
    # Python logging, default format and common ones
    ("python-default", b"WARNING:root:disk almost full", "warning"),
    ("python-default", b"ERROR:app.db:connection refused", "error"),
    ("python-default", b"CRITICAL:root:out of memory", "critical"),
    ("python-asctime", b"2026-11-25 12:00:00,123 INFO model loaded", "info"),
    ("python-asctime", b"2026-11-25 12:00:00,123 DEBUG tokenizer cache hit", "debug"),
    (
        "python-named",
        b"2026-11-25 12:00:00,123 - transformers.modeling - WARNING - weights",
        "warning",
    ),
    ("python-bracket", b"[2026-11-25 12:00:00,123] ERROR in app: Exception on /predict", "error"),
    # uvicorn / FastAPI
    ("uvicorn", b"INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)", "info"),
    ("uvicorn", b'INFO:     127.0.0.1:50104 - "POST /v1/completions HTTP/1.1" 200 OK', "info"),
    ("uvicorn", b"ERROR:    Exception in ASGI application", "error"),
    ("uvicorn-color", b"\x1b[32mINFO\x1b[0m:     Application startup complete.", "info"),
    ("uvicorn", b"WARNING:  Invalid HTTP request received.", "warning"),
    # vLLM, three generations of its format
    ("vllm-0.3", b"INFO 03-02 23:59:21 api_server.py:240] vLLM API server version 0.3.3", "info"),
    ("vllm", b"INFO 09-03 16:28:17 [__init__.py:1773] Using max model len 32768", "info"),
    ("vllm", b"WARNING 04-06 00:55:55 [config.py:1028] Default sampling parameters", "warning"),
    ("vllm", b"DEBUG 04-06 00:55:29 [client.py:193] Waiting for output from MQLLMEngine.", "debug"),
    (
        "vllm-pid",
        b"(APIServer pid=1) INFO 09-10 19:12:30 [launcher.py:37] Route: /v1/models",
        "info",
    ),
    (
        "vllm-pid",
        b"(EngineCore_0 pid=1399537) ERROR 08-19 14:58:40 [core.py:700] EngineCore failed",
        "error",
    ),
    # llama.cpp / llama-server
    ("llama-prefix", b"0.00.035.060 I main: build = 4154 (abcdef0)", "info"),
    ("llama-prefix", b"0.01.105.060 W llama_model_loader: unknown key", "warning"),
    ("llama-prefix", b"0.01.120.000 E common_init_from_params: failed to load model", "error"),
    ("llama-no-time", b"E main: error: unable to load model", "error"),
    ("llama-plain", b"llama_model_load: error loading model: failed to open model.gguf", "error"),
    (
        "llama-plain",
        b"main: server is listening on http://127.0.0.1:8080 - starting the main loop",
        None,
    ),
    ("llama-plain", b"srv  log_server_r: request: GET /health 127.0.0.1 200", None),
    # glog (TensorFlow Serving, Triton)
    (
        "glog",
        b"E1125 12:00:00.123456  1234 model_repository_manager.cc:1234] failed to load",
        "error",
    ),
    (
        "glog",
        b"I1125 12:00:00.123456  1234 grpc_server.cc:4117] Started GRPCInferenceService",
        "info",
    ),
    (
        "glog",
        b"W1125 12:00:00.123456  1234 pinned_memory_manager.cc:236] Unable to allocate",
        "warning",
    ),
    ("glog", b"F1125 12:00:00.123456  1234 main.cc:1] Check failed: ok", "critical"),
    ("glog-0.7", b"E20261125 12:00:00.123456  1234 main.cc:1] with the year", "error"),
    # gunicorn, MLflow, BentoML, TorchServe (log4j), Rust, zap
    ("gunicorn", b"[2026-11-25 12:00:00 +0000] [123] [INFO] Starting gunicorn 21.2.0", "info"),
    (
        "gunicorn",
        b"[2026-11-25 12:00:00 +0000] [124] [ERROR] Worker (pid:125) was sent SIGKILL!",
        "error",
    ),
    ("mlflow", b"2026/11/25 12:00:00 INFO mlflow.models.flavor_backend_registry: Selected", "info"),
    ("mlflow", b"2026/11/25 12:00:00 WARNING mlflow.utils.requirements_utils: mismatch", "warning"),
    (
        "bentoml",
        b"2026-11-25T12:00:00+0000 [INFO] [cli] Starting production HTTP BentoServer",
        "info",
    ),
    (
        "torchserve",
        b"2026-11-25T12:00:00,123 [INFO ] main org.pytorch.serve.ModelServer - Torch",
        "info",
    ),
    ("torchserve", b"2026-11-25T12:00:00,123 [ERROR] W-9000-model stderr", "error"),
    ("rust-env_logger", b"[2026-11-25T12:00:00Z ERROR my_crate::server] bind failed", "error"),
    ("rust-tracing", b"2026-11-25T12:00:00.123456Z  WARN text_generation_router: slow", "warning"),
    ("zap", b"2026-11-25T12:00:00.000Z\tINFO\tserver started", "info"),
    # structured: logfmt and JSON lines
    ("logfmt", b'time=2026-11-25T12:00:00Z level=error msg="oops"', "error"),
    ("logfmt", b"ts=1 lvl=warn caller=main.go:12 msg=retry", "warning"),
    ("json", b'{"level": "warning", "msg": "slow request"}', "warning"),
    ("json", b'{"levelname": "ERROR", "message": "boom", "name": "app"}', "error"),
    ("json", b'{"severity": "CRITICAL", "message": "down"}', "critical"),
    ("json-pino", b'{"level":50,"time":1700000000000,"msg":"failed"}', "error"),
    ("json-pino", b'{"level":30,"time":1700000000000,"msg":"listening"}', "info"),
    ("json-no-level", b'{"msg": "hello"}', None),
    # syslog priority prefixes
    ("syslog", b"<3>disk failure", "error"),
    ("syslog", b"<4>temperature high", "warning"),
    ("syslog", b"<7>trace details", "debug"),
    ("syslog", b"<0>system unusable", "critical"),
    # plain words at the start
    ("word", b"Error: model file not found", "error"),
    ("word", b"warning: deprecated flag --foo", "warning"),
    ("word", b"FATAL: cannot continue", "critical"),
    # lines that announce no level
    ("plain", b"hello world", None),
    ("plain", b"Loading checkpoint shards: 100%|##########| 4/4", None),
    ("plain", b"the error rate is low", None),
    ("plain", b"", None),
]


@pytest.mark.parametrize(
    "line, expected",
    [(line, level) for _, line, level in SAMPLES],
    ids=[name for name, _, _ in SAMPLES],
)
def test_detect(line, expected):
    assert detect(line) == expected


def levels_of(lines):
    tracker = LevelTracker()
    return [tracker.level_of(line) for line in lines]


def test_traceback_after_logging_exception_takes_its_level():
    lines = [
        b"2026-11-25 12:00:00,123 ERROR request failed",
        b"Traceback (most recent call last):",
        b'  File "/srv/app.py", line 10, in predict',
        b"    return model(x)",
        b"RuntimeError: CUDA out of memory",
        b"2026-11-25 12:00:01,000 INFO next request",
    ]
    assert levels_of(lines) == ["error", "error", "error", "error", "error", "info"]


def test_an_uncaught_traceback_is_an_error():
    lines = [
        b"starting",
        b"Traceback (most recent call last):",
        b'  File "server.py", line 3, in <module>',
        b"    import torch",
        b"ModuleNotFoundError: No module named 'torch'",
        b"after",
    ]
    assert levels_of(lines) == ["info", "error", "error", "error", "error", "info"]


def test_a_warning_with_a_traceback_stays_a_warning():
    lines = [
        b"WARNING:root:retrying",
        b"Traceback (most recent call last):",
        b"  File 'x'",
        b"E: y",
    ]
    assert levels_of(lines) == ["warning", "warning", "warning", "warning"]


def test_chained_tracebacks_stay_in_one_block():
    lines = [
        b"ERROR:root:failed",
        b"Traceback (most recent call last):",
        b'  File "a.py", line 1',
        b"KeyError: 'x'",
    ]
    # "KeyError" ends the first block; a chained block starts again with its marker.
    assert levels_of(lines) == ["error"] * 4
    tracker = LevelTracker()
    chained = [
        b"ERROR:root:failed",
        b"Traceback (most recent call last):",
        b'  File "a.py", line 1',
        b"",
        b"During handling of the above exception, another exception occurred:",
        b"",
        b"Traceback (most recent call last):",
        b'  File "b.py", line 2',
        b"ValueError: y",
    ]
    assert [tracker.level_of(line) for line in chained] == ["error"] * len(chained)


def test_indented_continuation_lines_inherit_the_level():
    lines = [
        b"E1125 12:00:00.123456  1 x.cc:1] load failed:",
        b"    cause: file missing",
        b"\tat Loader.load(Loader.java:12)",
        b"I1125 12:00:01.000000  1 x.cc:2] retrying",
    ]
    assert levels_of(lines) == ["error", "error", "error", "info"]


def test_an_indented_line_with_its_own_level_keeps_it():
    assert levels_of([b"ERROR:root:x", b"  WARNING: inner"]) == ["error", "warning"]
