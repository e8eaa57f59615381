"""Representative lines for servers that cannot run here (no GPU, no weights, no
internet): vLLM, llama.cpp's llama-server, TorchServe, Triton, text-generation-inference.

Every line is built by hand from the server's logging format string or print code (named
in "source"); the message texts are illustrative, in the style of each server, not copied
output. Each object gets "synthetic": true. Writes ../<server>.jsonl.

Run: python3 tests/data/server_output/capture/synthetic.py (standard library only).
"""

import json
import os

OUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

VLLM_LOGGER = "github.com/vllm-project/vllm vllm/logger.py (_FORMAT, _DATE_FORMAT)"
VLLM_FMT = "github.com/vllm-project/vllm vllm/logging_utils/formatter.py (NewLineFormatter)"
VLLM_COLOR = "github.com/vllm-project/vllm vllm/logging_utils/formatter.py (ColoredFormatter)"
VLLM_PREFIX = "github.com/vllm-project/vllm vllm/utils/system_utils.py (_add_prefix)"
LLAMA_LOG = "github.com/ggml-org/llama.cpp common/log.cpp (common_log_entry::print)"
LLAMA_SRV = (
    "github.com/ggml-org/llama.cpp tools/server (SRV_INF/SLT_INF macros, log_server_request)"
)
TS_LOG4J = "github.com/pytorch/serve frontend/server/src/main/resources/log4j2.xml (STDOUT pattern)"
TS_READER = "github.com/pytorch/serve WorkerLifeCycle.ReaderThread (stderr -> MODEL_LOG warn)"
TRITON = (
    "https://docs.rs/tritonserver-rs/latest/tritonserver_rs/options/enum.LogFormat.html "
    "(Triton LogFormat Default / Iso8601)"
)
TGI = (
    "github.com/huggingface/text-generation-inference launcher/src/main.rs "
    "(tracing fmt; 'Shard complete standard error output:\\n{err}')"
)

E = "\x1b"


def rows(source_default, items):
    out = []
    for item in items:
        stream, line, level, scenario = item[:4]
        probe = item[4] if len(item) > 4 else False
        source = item[5] if len(item) > 5 else source_default
        out.append(
            {
                "stream": stream,
                "line": line,
                "level": level,
                "scenario": scenario,
                "probe": probe,
                "source": source,
                "synthetic": True,
            }
        )
    return out


# vLLM: "%(levelname)s %(asctime)s [%(fileinfo)s:%(lineno)d] %(message)s", "%m-%d %H:%M:%S",
# on stdout; every process's stdout/stderr line is prefixed "(Name pid=N) " (cyan only on a
# tty); a multi-line record repeats its prefix on every line and ends all but its last line
# with "\r" (NewLineFormatter writes "\r\n" + prefix).
A = "(APIServer pid=4181) "
C = "(EngineCore_DP0 pid=4312) "
ERR = "ERROR 11-27 02:31:07 [core.py:712] "
VLLM = rows(
    VLLM_LOGGER,
    [
        (
            "stdout",
            A + "INFO 11-27 02:30:58 [api_server.py:1896] vLLM API server version 0.11.0",
            "info",
            "startup",
            False,
            VLLM_PREFIX,
        ),
        (
            "stdout",
            A + "INFO 11-27 02:30:58 [utils.py:233] non-default args: {'model': "
            "'/models/dummy', 'port': 8000}",
            "info",
            "startup",
        ),
        (
            "stdout",
            A + "WARNING 11-27 02:30:59 [system_utils.py:103] We must use the `spawn` "
            "multiprocessing start method.",
            "warning",
            "startup",
        ),
        (
            "stdout",
            C + "INFO 11-27 02:31:03 [core.py:654] Waiting for init message from front-end.",
            "info",
            "startup",
        ),
        ("stdout", A + "INFO:     Started server process [4181]", "info", "startup"),
        ("stdout", A + "INFO:     Application startup complete.", "info", "startup"),
        (
            "stdout",
            A + 'INFO:     127.0.0.1:51724 - "GET /health HTTP/1.1" 200 OK',
            "info",
            "probe",
            True,
        ),
        (
            "stdout",
            A + 'INFO:     127.0.0.1:51730 - "POST /v1/completions HTTP/1.1" 200 OK',
            "info",
            "request_ok",
        ),
        (
            "stdout",
            A + "INFO 11-27 02:31:05 [loggers.py:123] Engine 000: Avg prompt throughput: "
            "1.2 tokens/s, Avg generation throughput: 3.4 tokens/s, Running: 0 reqs",
            "info",
            "request_ok",
        ),
        (
            "stdout",
            "DEBUG 11-27 02:31:05 [v1/engine/core.py:801] EngineCore loop active.",
            "debug",
            "debug_no_prefix",
            False,
            VLLM_FMT,
        ),
        # one ERROR record with a traceback: every line repeats the prefix, "\r" at the end
        (
            "stdout",
            C + ERR + "EngineCore failed to start.\r",
            "error",
            "crash_model_file_missing",
            False,
            VLLM_FMT,
        ),
        (
            "stdout",
            C + ERR + "Traceback (most recent call last):\r",
            "error",
            "crash_model_file_missing",
            False,
            VLLM_FMT,
        ),
        (
            "stdout",
            C + ERR + '  File "/usr/local/lib/python3.12/site-packages/vllm/v1/engine/'
            'core.py", line 703, in run_engine_core\r',
            "error",
            "crash_model_file_missing",
            False,
            VLLM_FMT,
        ),
        (
            "stdout",
            C + ERR + "    engine_core = EngineCoreProc(*args, **kwargs)\r",
            "error",
            "crash_model_file_missing",
            False,
            VLLM_FMT,
        ),
        (
            "stdout",
            C + ERR + "FileNotFoundError: [Errno 2] No such file or directory: "
            "'/models/dummy/config.json'",
            "error",
            "crash_model_file_missing",
            False,
            VLLM_FMT,
        ),
        (
            "stderr",
            A + "Traceback (most recent call last):",
            "error",
            "crash_model_file_missing",
            False,
            VLLM_PREFIX,
        ),
        (
            "stderr",
            A + '  File "/usr/local/bin/vllm", line 8, in <module>',
            "error",
            "crash_model_file_missing",
            False,
            VLLM_PREFIX,
        ),
        (
            "stderr",
            A + "RuntimeError: Engine core initialization failed. See root cause above. "
            "Failed core proc(s): {}",
            "error",
            "crash_model_file_missing",
            False,
            VLLM_PREFIX,
        ),
        # on a tty (or VLLM_LOGGING_COLOR=1): coloured prefix, level, grey time and file info
        (
            "stdout",
            E
            + "[0;36m(APIServer pid=4181)"
            + E
            + "[0;0m "
            + E
            + "[32mINFO"
            + E
            + "[0m "
            + E
            + "[90m11-27 02:31:09"
            + E
            + "[0m "
            + E
            + "[90m[launcher.py:44]"
            + E
            + "[0m "
            "Route: /health, Methods: GET",
            "info",
            "color",
            False,
            VLLM_COLOR,
        ),
        (
            "stdout",
            E
            + "[0;36m(APIServer pid=4181)"
            + E
            + "[0;0m "
            + E
            + "[33mWARNING"
            + E
            + "[0m "
            + E
            + "[90m11-27 02:31:09"
            + E
            + "[0m "
            + E
            + "[90m[serving.py:210]"
            + E
            + "[0m "
            "max_tokens is larger than the context window",
            "warning",
            "color",
            False,
            VLLM_COLOR,
        ),
    ],
)

# llama-server: by default no level letter and no timestamp; everything logged goes to
# stderr (LOG() with level NONE to stdout). --log-prefix adds "I "/"W "/"E "/"D ",
# --log-timestamps adds "M.ss.mmm.uuu ". SRV_* lines are "srv  %12.*s: " (function name
# right-aligned, cut to 12 characters), SLT_* lines "slot %12.*s: id %2d | task %d | ".
LLAMA = rows(
    LLAMA_LOG,
    [
        (
            "stderr",
            "build: 6800 (0a1b2c3d) with cc (Debian 12.2.0-14) 12.2.0 for x86_64-linux-gnu",
            "info",
            "startup",
        ),
        (
            "stderr",
            "system info: n_threads = 2, n_threads_batch = 2, total_threads = 2",
            "info",
            "startup",
        ),
        (
            "stderr",
            "main: HTTP server is listening, hostname: 127.0.0.1, port: 8080, http threads: 1",
            "info",
            "startup",
        ),
        (
            "stderr",
            "srv    load_model: loading model '/models/dummy.gguf'",
            "info",
            "startup",
            False,
            LLAMA_SRV,
        ),
        (
            "stderr",
            "main: server is listening on http://127.0.0.1:8080 - starting the main loop",
            "info",
            "startup",
        ),
        ("stderr", "srv  update_slots: all slots are idle", "info", "startup", False, LLAMA_SRV),
        (
            "stderr",
            "srv  log_server_r: request: GET /health 127.0.0.1 200",
            "info",
            "probe",
            True,
            LLAMA_SRV,
        ),
        (
            "stderr",
            "slot launch_slot_: id  0 | task 0 | processing task",
            "info",
            "request_ok",
            False,
            LLAMA_SRV,
        ),
        (
            "stderr",
            "srv  log_server_r: request: POST /completion 127.0.0.1 200",
            "info",
            "request_ok",
            False,
            LLAMA_SRV,
        ),
        (
            "stderr",
            "srv    send_error: task id = 1, error: the request exceeds the available "
            "context size, try increasing it",
            "error",
            "request_error",
            False,
            LLAMA_SRV,
        ),
        (
            "stderr",
            "srv  log_server_r: request: POST /completion 127.0.0.1 400",
            "info",
            "request_error",
            False,
            LLAMA_SRV,
        ),
        # missing model file, default format: no level marker at all
        (
            "stderr",
            "gguf_init_from_file: failed to open GGUF file '/models/missing.gguf'",
            "error",
            "crash_model_file_missing",
        ),
        (
            "stderr",
            "llama_model_load: error loading model: llama_model_loader: failed to load "
            "model from /models/missing.gguf",
            "error",
            "crash_model_file_missing",
        ),
        (
            "stderr",
            "srv    load_model: failed to load model, '/models/missing.gguf'",
            "error",
            "crash_model_file_missing",
            False,
            LLAMA_SRV,
        ),
        ("stderr", "main: exiting due to model loading error", "error", "crash_model_file_missing"),
        # --log-prefix --log-timestamps
        (
            "stderr",
            "0.00.012.345 I main: server is listening on http://127.0.0.1:8080 - starting "
            "the main loop",
            "info",
            "prefix_timestamps",
        ),
        (
            "stderr",
            "0.00.020.001 W srv  load_model: the slot context (4096) exceeds the training "
            "context of the model (2048) - capping",
            "warning",
            "prefix_timestamps",
        ),
        (
            "stderr",
            "0.00.020.417 E llama_model_load: error loading model: unknown model "
            "architecture: 'dummy'",
            "error",
            "prefix_timestamps",
        ),
        (
            "stderr",
            '0.00.031.990 D srv  log_server_r: request:  {"prompt": "hi"}',
            "debug",
            "prefix_timestamps",
        ),
        # --log-colors: a warning/error resets the colour *after* its newline, so the reset
        # code starts the next line
        (
            "stderr",
            E + "[34m0.00.040.100" + E + "[0m " + E + "[32mI " + E + "[0msrv  "
            "update_slots: all slots are idle",
            "info",
            "color",
        ),
        (
            "stderr",
            E + "[34m0.00.040.200" + E + "[0m " + E + "[35mW srv  update_slots: slot 0 "
            "context shift disabled",
            "warning",
            "color",
        ),
        (
            "stderr",
            E + "[0m" + E + "[34m0.00.040.300" + E + "[0m " + E + "[32mI " + E + "[0mslot "
            "release: id  0 | task 2 | stop processing",
            "info",
            "color",
        ),
    ],
)

# TorchServe console: "%d{ISO8601} [%-5p] %t %c - %m%n" on stdout; every line of the Python
# worker's stderr is re-logged by the frontend at WARN, its stdout at INFO; access lines
# (ACCESS_LOG) also reach the console.
T = "2026-11-27T02:31:"
TS = rows(
    TS_LOG4J,
    [
        (
            "stdout",
            T + "00,101 [INFO ] main org.pytorch.serve.servingsdk.impl.PluginsManager - "
            "Initializing plugins manager...",
            "info",
            "startup",
        ),
        ("stdout", T + "00,512 [INFO ] main org.pytorch.serve.ModelServer - ", "info", "startup"),
        ("stdout", "Torchserve version: 0.12.0", "info", "startup"),
        ("stdout", "TS Home: /usr/local/lib/python3.11/site-packages", "info", "startup"),
        (
            "stdout",
            T + "02,845 [INFO ] W-9000-dummy_1.0-stdout MODEL_LOG - Torch worker started.",
            "info",
            "startup",
            False,
            TS_READER,
        ),
        (
            "stdout",
            T + "03,002 [INFO ] W-9000-dummy_1.0 org.pytorch.serve.wlm.WorkerThread - "
            "Backend response time: 153",
            "info",
            "startup",
        ),
        (
            "stdout",
            T + "04,220 [INFO ] epollEventLoopGroup-3-1 ACCESS_LOG - /127.0.0.1:51012 "
            '"GET /ping HTTP/1.1" 200 3',
            "info",
            "probe",
            True,
        ),
        (
            "stdout",
            T + "04,830 [INFO ] epollEventLoopGroup-3-2 ACCESS_LOG - /127.0.0.1:51020 "
            '"POST /predictions/dummy HTTP/1.1" 200 12',
            "info",
            "request_ok",
        ),
        (
            "stdout",
            T + "05,101 [WARN ] W-9000-dummy_1.0-stderr MODEL_LOG - /opt/handler.py:12: "
            "UserWarning: threshold 0.7 is outside the calibrated range",
            "warning",
            "user_warnings",
            False,
            TS_READER,
        ),
        (
            "stdout",
            T + "06,310 [WARN ] W-9000-dummy_1.0-stderr MODEL_LOG - Traceback (most "
            "recent call last):",
            "warning",
            "handler_file_not_found",
            False,
            TS_READER,
        ),
        (
            "stdout",
            T + "06,311 [WARN ] W-9000-dummy_1.0-stderr MODEL_LOG -   File "
            '"/opt/handler.py", line 20, in initialize',
            "warning",
            "handler_file_not_found",
            False,
            TS_READER,
        ),
        (
            "stdout",
            T + "06,311 [WARN ] W-9000-dummy_1.0-stderr MODEL_LOG - FileNotFoundError: "
            "[Errno 2] No such file or directory: '/opt/model.pt'",
            "warning",
            "handler_file_not_found",
            False,
            TS_READER,
        ),
        (
            "stdout",
            T + "06,402 [ERROR] W-9000-dummy_1.0 org.pytorch.serve.wlm.WorkerThread - "
            "Backend worker error",
            "error",
            "handler_file_not_found",
        ),
        (
            "stdout",
            "org.pytorch.serve.wlm.WorkerInitializationException: Backend worker did not "
            "respond in given time",
            "error",
            "handler_file_not_found",
        ),
        (
            "stdout",
            "\tat org.pytorch.serve.wlm.WorkerThread.run(WorkerThread.java:242) "
            "[model-server.jar:?]",
            "error",
            "handler_file_not_found",
        ),
        (
            "stdout",
            "\tat java.lang.Thread.run(Thread.java:840) [?:?]",
            "error",
            "handler_file_not_found",
        ),
        (
            "stdout",
            T + "06,410 [DEBUG] W-9000-dummy_1.0 org.pytorch.serve.wlm.WorkerThread - "
            "W-9000-dummy_1.0 State change WORKER_STARTED -> WORKER_STOPPED",
            "debug",
            "handler_file_not_found",
        ),
    ],
)

# Triton (stream assumed stderr): default "<L><mmdd> <hh:mm:ss.uuuuuu> <pid> <file>:<line>]
# <msg>"; newer releases quote and JSON-escape the message; --log-format ISO8601 moves the
# time first.
TRITON_ROWS = rows(
    TRITON,
    [
        (
            "stderr",
            'I1127 02:31:00.112233 1 pinned_memory_manager.cc:277] "Pinned memory pool is '
            "created at '0x7f2a' with size 268435456\"",
            "info",
            "startup",
        ),
        (
            "stderr",
            'I1127 02:31:00.230001 1 model_lifecycle.cc:473] "loading: dummy:1"',
            "info",
            "startup",
        ),
        (
            "stderr",
            'W1127 02:31:00.300410 1 pinned_memory_manager.cc:273] "Unable to allocate '
            "pinned system memory, pinned memory pool will not be available: CUDA driver version "
            'is insufficient for CUDA runtime version"',
            "warning",
            "startup",
        ),
        (
            "stderr",
            "E1127 02:31:00.410220 1 model_lifecycle.cc:654] \"failed to load 'dummy' "
            "version 1: Internal: unable to find '/models/dummy/1/model.onnx' for model 'dummy'\"",
            "error",
            "crash_model_file_missing",
        ),
        (
            "stderr",
            'I1127 02:31:00.410300 1 server.cc:676] "Waiting for in-flight requests to complete."',
            "info",
            "crash_model_file_missing",
        ),
        (
            "stderr",
            "error: creating server: Internal - failed to load all models",
            "error",
            "crash_model_file_missing",
        ),
        (
            "stderr",
            '2026-11-27T02:31:05Z I 1 grpc_server.cc:2466] "Started GRPCInferenceService '
            'at 0.0.0.0:8001"',
            "info",
            "iso8601",
        ),
        (
            "stderr",
            '2026-11-27T02:31:05Z I 1 http_server.cc:4713] "Started HTTPService at 0.0.0.0:8000"',
            "info",
            "iso8601",
        ),
        (
            "stderr",
            "2026-11-27T02:31:09Z E 1 model_lifecycle.cc:654] \"failed to load 'dummy'\"",
            "error",
            "iso8601",
        ),
    ],
)

# text-generation-inference launcher: tracing "<RFC3339 micros>Z <LEVEL padded to 5> <spans>:
# <target>: <message> <fields>"; a shard's whole stderr is logged as ONE error record, so its
# lines (warnings and tracebacks included) follow bare, and the span fields come after the
# record's last line.
G = "2026-11-27T02:31:"
TGI_ROWS = rows(
    TGI,
    [
        (
            "stdout",
            G + "00.101234Z  INFO text_generation_launcher: Args { model_id: "
            '"/models/dummy", revision: None, validation_workers: 2 }',
            "info",
            "startup",
        ),
        (
            "stdout",
            G + "00.201500Z  INFO download: text_generation_launcher: Starting check and "
            "download process for /models/dummy",
            "info",
            "startup",
        ),
        (
            "stdout",
            G + "03.400726Z  INFO shard-manager: text_generation_launcher: Waiting for shard "
            "0 to be ready... rank=0",
            "info",
            "startup",
        ),
        (
            "stdout",
            G + "03.900000Z  WARN text_generation_launcher: Could not import Flash "
            "Attention enabled models: CUDA is not available",
            "warning",
            "startup",
        ),
        (
            "stdout",
            G + "05.932515Z ERROR shard-manager: text_generation_launcher: Shard complete "
            "standard error output:",
            "error",
            "crash_model_file_missing",
        ),
        ("stdout", "", "error", "crash_model_file_missing"),
        (
            "stdout",
            "/usr/src/server/text_generation_server/utils/import_utils.py:80: UserWarning: "
            "Could not find a GPU",
            "error",
            "crash_model_file_missing",
        ),
        ("stdout", "  warnings.warn(", "error", "crash_model_file_missing"),
        ("stdout", "Traceback (most recent call last):", "error", "crash_model_file_missing"),
        (
            "stdout",
            '  File "/opt/conda/bin/text-generation-server", line 8, in <module>',
            "error",
            "crash_model_file_missing",
        ),
        (
            "stdout",
            "FileNotFoundError: [Errno 2] No such file or directory: "
            "'/models/dummy/config.json' rank=0",
            "error",
            "crash_model_file_missing",
        ),
        (
            "stdout",
            G + "05.932556Z ERROR shard-manager: text_generation_launcher: Shard process was "
            "signaled to shutdown with signal 6 rank=0",
            "error",
            "crash_model_file_missing",
        ),
        (
            "stdout",
            G + "05.990001Z ERROR text_generation_launcher: Shard 0 failed to start",
            "error",
            "crash_model_file_missing",
        ),
        (
            "stdout",
            G + "05.990100Z  INFO text_generation_launcher: Shutting down shards",
            "info",
            "crash_model_file_missing",
        ),
        ("stderr", "Error: ShardCannotStart", "error", "crash_model_file_missing"),
        (
            "stdout",
            G + "09.000000Z  INFO text_generation_router::server: router/src/server.rs:"
            "2370: Connected",
            "info",
            "router",
        ),
        (
            "stdout",
            '{"timestamp":"' + G + '09.500000Z","level":"WARN","fields":{"message":'
            '"Model does not support automatic max batch total tokens"},"target":'
            '"text_generation_router"}',
            "warning",
            "json_output",
        ),
    ],
)


def main():
    for name, data in [
        ("vllm", VLLM),
        ("llama_server", LLAMA),
        ("torchserve", TS),
        ("triton", TRITON_ROWS),
        ("tgi", TGI_ROWS),
    ]:
        with open(os.path.join(OUT, name + ".jsonl"), "w") as f:
            for row in data:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{name}: {len(data)} lines (synthetic)")


if __name__ == "__main__":
    main()
