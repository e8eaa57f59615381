"""LitServe: `python litserve_server.py PORT` (LitServer.run, uvicorn underneath)."""

import signal
import sys

from common import HERE, PROBE_UA, Run, drive, free_port, hold_port, wait_port

PY = sys.executable
STEPS = [
    ("request_ok", "POST", "/predict", {"x": [1, 2, 3]}, None),
    ("probe", "GET", "/health", None, {"User-Agent": PROBE_UA}),
    ("request_invalid_body", "POST", "/predict", {"x": "nope"}, None),
    ("handler_file_not_found", "POST", "/predict", {"op": "fnf"}, None),
    ("handler_value_error_multiline", "POST", "/predict", {"op": "valueerror"}, None),
    ("handler_validation_error", "POST", "/predict", {"op": "validation"}, None),
    ("user_warnings", "POST", "/predict", {"op": "warn"}, None),
    ("chained_traceback", "POST", "/predict", {"op": "chained"}, None),
]

port = free_port()
r = Run([PY, "litserve_server.py", str(port)], cwd=HERE)
wait_port(port, run=r, timeout=120)
r.settle(2)
drive(r, f"http://127.0.0.1:{port}", steps=STEPS)
r.set("shutdown_sigint")
r.stop(signal.SIGINT)
r.dump("litserve_plain")

port = free_port()
r = Run(
    [PY, "litserve_server.py", str(port), "missing"], cwd=HERE, scenario="crash_missing_model_file"
)
r.wait_exit(40, on_timeout=signal.SIGTERM)
r.dump("crash_litserve_missing_model_file", {"expected_reason": "model_file_missing"})

sock, port = hold_port()
r = Run([PY, "litserve_server.py", str(port)], cwd=HERE, scenario="crash_port_in_use")
r.wait_exit(40, on_timeout=signal.SIGTERM)
sock.close()
r.dump("crash_litserve_port_in_use", {"expected_reason": "port_in_use"})
