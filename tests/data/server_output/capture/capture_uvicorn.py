"""uvicorn 0.x serving a FastAPI app (capture/apps.py)."""

import os
import signal

from common import BIN, HERE, STANDARD, Run, drive, free_port, hold_port, request, wait_port

UV = os.path.join(BIN, "uvicorn")

# 1. plain run, piped (no colours: uvicorn colours only on a tty)
port = free_port()
r = Run([UV, "apps:app", "--host", "127.0.0.1", "--port", str(port)], cwd=HERE)
wait_port(port, run=r)
r.settle_after_request()
drive(r, f"http://127.0.0.1:{port}")
r.set("shutdown_sigterm")
r.stop(signal.SIGTERM)
r.dump("uvicorn_plain")

# 2. --use-colors forces ANSI colours even when piped
port = free_port()
r = Run(
    [UV, "apps:app", "--host", "127.0.0.1", "--port", str(port), "--use-colors"],
    cwd=HERE,
    scenario="color_startup",
)
wait_port(port, run=r)
r.settle_after_request()
drive(r, f"http://127.0.0.1:{port}", prefix="color_")
r.set("color_shutdown_sigint")
r.stop(signal.SIGINT)
r.dump("uvicorn_color")

# 3. --log-level trace: uvicorn's most verbose level (TRACE lines; --log-level debug adds
#    nothing for a plain HTTP app)
port = free_port()
r = Run(
    [UV, "apps:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "trace"],
    cwd=HERE,
    scenario="trace_startup",
)
wait_port(port, run=r)
r.settle()
drive(r, f"http://127.0.0.1:{port}", steps=STANDARD[:2], prefix="trace_")
r.set("trace_shutdown_sigterm")
r.stop(signal.SIGTERM)
r.dump("uvicorn_trace")

# crash: wrong module name
port = free_port()
r = Run(
    [UV, "nosuchmodule:app", "--host", "127.0.0.1", "--port", str(port)],
    cwd=HERE,
    scenario="crash_wrong_module",
)
r.wait_exit(60)
r.dump("crash_uvicorn_wrong_module", {"expected_reason": "import_error"})

# crash: the module exists but its own import fails (traceback)
with open(os.path.join(HERE, "broken_app.py"), "w") as f:
    f.write("import numpy_but_misspelled  # noqa\napp = None\n")
port = free_port()
r = Run(
    [UV, "broken_app:app", "--host", "127.0.0.1", "--port", str(port)],
    cwd=HERE,
    scenario="crash_import_inside_app",
)
r.wait_exit(60)
r.dump("crash_uvicorn_import_inside_app", {"expected_reason": "import_error"})
os.remove(os.path.join(HERE, "broken_app.py"))

# crash: port in use
sock, port = hold_port()
r = Run(
    [UV, "apps:app", "--host", "127.0.0.1", "--port", str(port)],
    cwd=HERE,
    scenario="crash_port_in_use",
)
r.wait_exit(60)
sock.close()
r.dump("crash_uvicorn_port_in_use", {"expected_reason": "port_in_use"})

# crash: healthy server logs a request-level FileNotFoundError, then we SIGKILL it
port = free_port()
r = Run([UV, "apps:app", "--host", "127.0.0.1", "--port", str(port)], cwd=HERE, scenario="startup")
wait_port(port, run=r)
r.settle_after_request()
r.set("request_ok")
request("POST", f"http://127.0.0.1:{port}/predict", {"x": [1], "name": "a"})
r.settle_after_request()
r.set("handler_file_not_found")
request("GET", f"http://127.0.0.1:{port}/fnf")
r.settle_after_request()
r.set("sigkill")
r.stop(signal.SIGKILL)
r.dump("crash_uvicorn_killed_after_fnf", {"expected_reason": "killed"})
