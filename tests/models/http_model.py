"""A tiny HTTP model: http_model.py PORT [READY_AFTER] [--control FILE] [--tag X].

/health answers 200 once READY_AFTER seconds have passed (503 before). With
--control, the file's content decides instead, read on every probe: "ok" (200),
"fail" (503), "slow" (answers after 3 s), or "slow-once" (slow one time, then
"ok"). It logs one uvicorn-style line per request.
"""

import http.server
import os
import sys
import time

port = int(sys.argv[1])
ready_after = float(sys.argv[2]) if len(sys.argv) > 2 and not sys.argv[2].startswith("--") else 0
control = sys.argv[sys.argv.index("--control") + 1] if "--control" in sys.argv else None
started = time.monotonic()


def mode():
    if control is None:
        return "ok" if time.monotonic() - started >= ready_after else "fail"
    try:
        with open(control) as handle:
            return handle.read().strip() or "ok"
    except FileNotFoundError:
        return "fail"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        current = mode() if self.path == "/health" else "ok"
        if current in ("slow", "slow-once"):
            if current == "slow-once":
                with open(control + ".tmp", "w") as handle:
                    handle.write("ok")
                os.replace(control + ".tmp", control)
            time.sleep(3)
            current = "ok"
        self.send_response(200 if current == "ok" else 503)
        self.end_headers()
        self.wfile.write(b"ok\n" if current == "ok" else b"loading\n")

    def log_message(self, fmt, *args):
        print("INFO:     " + fmt % args, flush=True)


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
print("INFO:     Uvicorn running on http://127.0.0.1:%d" % port, flush=True)
server.serve_forever()
