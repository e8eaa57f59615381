"""ray[serve]: `serve run ray_app:app` (starts a local Ray instance)."""

import os
import signal

from common import BIN, HERE, PROBE_UA, Run, drive, free_port

SERVE = os.path.join(BIN, "serve")
STEPS = [
    ("request_ok", "POST", "/", {"x": [1, 2, 3]}, None),
    ("probe", "GET", "/-/healthz", None, {"User-Agent": PROBE_UA}),
    ("request_invalid_body", "POST", "/", {"x": "nope"}, None),
    ("handler_file_not_found", "POST", "/", {"op": "fnf"}, None),
    ("handler_value_error_multiline", "POST", "/", {"op": "valueerror"}, None),
    ("handler_validation_error", "POST", "/", {"op": "validation"}, None),
    ("user_warnings", "POST", "/", {"op": "warn"}, None),
    ("chained_traceback", "POST", "/", {"op": "chained"}, None),
]
port = free_port()
env = {
    "RAY_SERVE_HTTP_PORT": str(port),
    "RAY_USAGE_STATS_ENABLED": "0",
    "PATH": BIN + os.pathsep + os.environ["PATH"],
    "PYTHONPATH": HERE,
}
config = os.path.join(HERE, "raw", "ray_serve_config.yaml")
os.makedirs(os.path.dirname(config), exist_ok=True)
with open(config, "w") as f:
    f.write(f"""proxy_location: HeadOnly
http_options:
  host: 127.0.0.1
  port: {port}
applications:
- name: default
  import_path: ray_app:app
  route_prefix: /
""")
r = Run([SERVE, "run", "--address", "local", config], cwd=HERE, env=env)
# no "ready" line to wait for: wait for the replica to be added, then for quiet
ok = r.wait_for("Adding 1 replica", timeout=150)
print("replica added:", ok)
r.settle(quiet=5, timeout=60)
drive(r, f"http://127.0.0.1:{port}", steps=STEPS)
r.set("shutdown_sigint")
r.stop(signal.SIGINT, timeout=60)
r.dump("ray_serve_plain")
