"""A tiny HTTP model: /health is 200 once READY_AFTER seconds have passed (or 503).

http_model.py PORT [READY_AFTER] [--tag X]. Also logs one line per request.
"""

import http.server
import sys
import time

port = int(sys.argv[1])
ready_after = float(sys.argv[2]) if len(sys.argv) > 2 and not sys.argv[2].startswith("--") else 0
started = time.monotonic()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path != "/health" or time.monotonic() - started >= ready_after
        self.send_response(200 if ok else 503)
        self.end_headers()
        self.wfile.write(b"ok\n" if ok else b"loading\n")

    def log_message(self, fmt, *args):
        print("INFO: " + fmt % args, flush=True)


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
print("INFO:     Uvicorn running on http://127.0.0.1:%d" % port, flush=True)
server.serve_forever()
