"""gunicorn: sync worker serving the WSGI app, uvicorn worker serving the FastAPI app,
and startup crashes (wrong module, port in use)."""

import os
import signal

from common import BIN, HERE, STANDARD, Run, drive, free_port, hold_port, wait_port

GU = os.path.join(BIN, "gunicorn")

# 1. sync worker, access log on stdout ("-"), error log on stderr (default)
port = free_port()
r = Run(
    [GU, "--bind", f"127.0.0.1:{port}", "--workers", "1", "--access-logfile", "-", "apps:wsgi"],
    cwd=HERE,
    scenario="sync_startup",
)
wait_port(port, run=r)
r.settle(1.5)
drive(r, f"http://127.0.0.1:{port}", prefix="sync_")
r.set("sync_shutdown_sigterm")
r.stop(signal.SIGTERM)
r.dump("gunicorn_sync")

# 2. uvicorn worker class (deprecated module, still shipped by uvicorn)
port = free_port()
r = Run(
    [
        GU,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--access-logfile",
        "-",
        "-k",
        "uvicorn.workers.UvicornWorker",
        "apps:app",
    ],
    cwd=HERE,
    scenario="uvworker_startup",
)
wait_port(port, run=r)
r.settle(1.5)
drive(r, f"http://127.0.0.1:{port}", prefix="uvworker_")
r.set("uvworker_shutdown_sigterm")
r.stop(signal.SIGTERM)
r.dump("gunicorn_uvworker")

# 3. --log-level debug: DEBUG lines, including the multi-line "Current configuration" dump
port = free_port()
r = Run(
    [
        GU,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--access-logfile",
        "-",
        "--log-level",
        "debug",
        "apps:wsgi",
    ],
    cwd=HERE,
    scenario="debug_startup",
)
wait_port(port, run=r)
r.settle(1.5)
drive(r, f"http://127.0.0.1:{port}", steps=STANDARD[:2], prefix="debug_")
r.set("debug_shutdown_sigterm")
r.stop(signal.SIGTERM)
r.dump("gunicorn_debug")

# crash: wrong app module name
port = free_port()
r = Run(
    [GU, "--bind", f"127.0.0.1:{port}", "--workers", "1", "nosuchmodule:app"],
    cwd=HERE,
    scenario="crash_wrong_module",
)
r.wait_exit(60)
r.dump("crash_gunicorn_wrong_module", {"expected_reason": "import_error"})

# crash: port in use (gunicorn retries 5 times, a second apart)
sock, port = hold_port()
r = Run(
    [GU, "--bind", f"127.0.0.1:{port}", "--workers", "1", "apps:wsgi"],
    cwd=HERE,
    scenario="crash_port_in_use",
)
r.wait_exit(60)
sock.close()
r.dump("crash_gunicorn_port_in_use", {"expected_reason": "port_in_use"})
