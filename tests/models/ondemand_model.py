"""An HTTP model for on-demand tests.

``ondemand_model.py PORT [--load S] [--term-delay S] [--marker FILE] [--tag X]``: it sleeps
``--load`` seconds (loading weights) before it binds PORT, and exits ``--term-delay``
seconds after a SIGTERM (a model releasing its memory). HTTP/1.1 with keep-alive. Routes:

- ``/health``: 200.
- ``/``: ``hello`` and the pid that answered.
- ``/bytes?n=N``: N bytes (in 1 MiB writes).
- ``/sse?n=N&interval=S``: N server-sent events, one every S seconds. When a write
  fails (the client, through the relay, went away) it appends ``closed <epoch>`` to
  ``--marker``: the moment the server learned to stop generating.
"""

import http.server
import os
import signal
import sys
import time
import urllib.parse

port = int(sys.argv[1])
load = float(sys.argv[sys.argv.index("--load") + 1]) if "--load" in sys.argv else 0.0
term_delay = (
    float(sys.argv[sys.argv.index("--term-delay") + 1]) if "--term-delay" in sys.argv else 0
)
marker = sys.argv[sys.argv.index("--marker") + 1] if "--marker" in sys.argv else None
CHUNK = b"x" * (1024 * 1024)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stalls

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/bytes":
            return self.send_bytes(int(query.get("n", "0")))
        if url.path == "/sse":
            return self.send_events(int(query.get("n", "10")), float(query.get("interval", "0.1")))
        body = b"ok\n" if url.path == "/health" else b"hello from %d\n" % os.getpid()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_bytes(self, count):
        self.send_response(200)
        self.send_header("Content-Length", str(count))
        self.end_headers()
        left = count
        while left > 0:
            piece = CHUNK if left >= len(CHUNK) else CHUNK[:left]
            self.wfile.write(piece)
            left -= len(piece)

    def send_events(self, count, interval):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            for number in range(count):
                self.wfile.write(b"data: event %d\n\n" % number)
                self.wfile.flush()
                time.sleep(interval)
        except OSError:
            if marker:
                with open(marker, "a") as handle:
                    handle.write("closed %.6f\n" % time.time())
        self.close_connection = True

    def log_message(self, fmt, *args):
        pass  # a line per request would flood the log in the benchmark


def on_term(number, frame):
    time.sleep(term_delay)
    os._exit(0)


signal.signal(signal.SIGTERM, on_term)
time.sleep(load)
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
server.daemon_threads = True
print("INFO:     Uvicorn running on http://127.0.0.1:%d" % port, flush=True)
server.serve_forever()
