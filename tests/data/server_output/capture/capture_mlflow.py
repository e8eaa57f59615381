"""mlflow models serve (--env-manager local) of a pyfunc model logged under a file: URI."""

import os
import signal
import tempfile

import mlflow_model
from common import BIN, HERE, PROBE_UA, Run, drive, free_port, hold_port, wait_port

MLFLOW = os.path.join(BIN, "mlflow")
# MLflow 3.x refuses the file: store unless this is set ("maintenance mode")
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
tracking = os.path.join(tempfile.mkdtemp(prefix="corpus-mlflow-"), "mlruns")  # must not exist yet
uri = mlflow_model.build(tracking)
print("model:", uri)
# mlflow execs `uvicorn` through bash: the venv's bin must be on PATH (without it:
# "bash: line 1: exec: uvicorn: not found", captured below as a crash case)
ENV = {
    "MLFLOW_TRACKING_URI": "file://" + tracking,
    "MLFLOW_ALLOW_FILE_STORE": "true",
    "PATH": BIN + os.pathsep + os.environ["PATH"],
}


def body(op="", x=1.0):
    return {"dataframe_split": {"columns": ["x", "op"], "data": [[x, op]]}}


STEPS = [
    ("request_ok", "POST", "/invocations", body(), None),
    ("probe", "GET", "/ping", None, {"User-Agent": PROBE_UA}),
    ("request_invalid_body", "POST", "/invocations", {"nope": 1}, None),
    ("handler_file_not_found", "POST", "/invocations", body("fnf"), None),
    ("handler_value_error_multiline", "POST", "/invocations", body("valueerror"), None),
    ("handler_validation_error", "POST", "/invocations", body("validation"), None),
    ("user_warnings", "POST", "/invocations", body("warn"), None),
    ("chained_traceback", "POST", "/invocations", body("chained"), None),
]

port = free_port()
r = Run(
    [
        MLFLOW,
        "models",
        "serve",
        "-m",
        uri,
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ],
    cwd=HERE,
    env=ENV,
)
wait_port(port, run=r, timeout=120)
r.settle(2)
drive(r, f"http://127.0.0.1:{port}", steps=STEPS)
r.set("shutdown_sigterm")
r.stop(signal.SIGTERM)
r.dump("mlflow_plain")

port = free_port()
r = Run(
    [
        MLFLOW,
        "models",
        "serve",
        "-m",
        "/tmp/corpus-no-such-model-dir",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ],
    cwd=HERE,
    env=ENV,
    scenario="crash_missing_model_path",
)
r.wait_exit(60, on_timeout=signal.SIGTERM)
r.dump("crash_mlflow_missing_model_path", {"expected_reason": "model_file_missing"})

sock, port = hold_port()
r = Run(
    [
        MLFLOW,
        "models",
        "serve",
        "-m",
        uri,
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ],
    cwd=HERE,
    env=ENV,
    scenario="crash_port_in_use",
)
r.wait_exit(60, on_timeout=signal.SIGTERM)
sock.close()
r.dump("crash_mlflow_port_in_use", {"expected_reason": "port_in_use"})

# crash: the venv's bin is not on PATH, so bash cannot find the `uvicorn` mlflow execs
env = dict(ENV, PATH="/usr/local/bin:/usr/bin:/bin")
port = free_port()
r = Run(
    [
        MLFLOW,
        "models",
        "serve",
        "-m",
        uri,
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ],
    cwd=HERE,
    env=env,
    scenario="crash_uvicorn_not_on_path",
)
r.wait_exit(60, on_timeout=signal.SIGTERM)
r.dump("crash_mlflow_uvicorn_not_on_path", {"expected_reason": "executable_not_found"})
