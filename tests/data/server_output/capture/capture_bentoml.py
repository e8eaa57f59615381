"""bentoml serve (1.4.x) of capture/bento_service.py, plus crashes with a missing model."""

import os
import signal
import tempfile

from common import BIN, HERE, PROBE_UA, Run, drive, free_port, hold_port, wait_port

BENTO = os.path.join(BIN, "bentoml")
ENV = {"BENTOML_HOME": tempfile.mkdtemp(prefix="bentohome-"), "BENTOML_DO_NOT_TRACK": "True"}
STEPS = [
    ("request_ok", "POST", "/predict", {"x": [1, 2, 3]}, None),
    ("probe", "GET", "/readyz", None, {"User-Agent": PROBE_UA}),
    ("request_invalid_body", "POST", "/predict", {"x": "nope"}, None),
    ("handler_file_not_found", "POST", "/fnf", {}, None),
    ("handler_value_error_multiline", "POST", "/valueerror", {}, None),
    ("handler_validation_error", "POST", "/validation", {}, None),
    ("user_warnings", "POST", "/warn", {}, None),
    ("chained_traceback", "POST", "/chained", {}, None),
]

port = free_port()
r = Run(
    [BENTO, "serve", "bento_service:Dummy", "--host", "127.0.0.1", "--port", str(port)],
    cwd=HERE,
    env=ENV,
)
wait_port(port, run=r, timeout=120)
r.settle(2)
drive(r, f"http://127.0.0.1:{port}", steps=STEPS)
r.set("shutdown_sigterm")
r.stop(signal.SIGTERM)
r.dump("bentoml_plain")

# the missing-file service never exits by itself (circus restarts the worker), so after
# 20 s the capture stops it with SIGTERM, as a supervisor would
for case, target in [
    ("missing_model", "bento_missing_model:NeedsModel"),
    ("missing_file", "bento_missing_file:LoadsFile"),
]:
    port = free_port()
    r = Run(
        [BENTO, "serve", target, "--host", "127.0.0.1", "--port", str(port)],
        cwd=HERE,
        env=ENV,
        scenario="crash_" + case,
    )
    r.wait_exit(20, on_timeout=signal.SIGTERM)
    r.dump("crash_bentoml_" + case, {"expected_reason": "model_file_missing"})

sock, port = hold_port()
r = Run(
    [BENTO, "serve", "bento_service:Dummy", "--host", "127.0.0.1", "--port", str(port)],
    cwd=HERE,
    env=ENV,
    scenario="crash_port_in_use",
)
r.wait_exit(90)
sock.close()
r.dump("crash_bentoml_port_in_use", {"expected_reason": "port_in_use"})
