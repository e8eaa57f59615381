#!/usr/bin/env python3
"""A tiny stand-in for a model server, standard library only.

  GET  /health   200 once the "weights" are loaded (503 before), like vLLM or TGI
  POST /predict  {"text": "..."} -> {"label": "positive"|"negative"|"neutral", "score": x}

It logs the way Python servers do (``2026-11-25 12:00:00,123 INFO message``), at
several levels, so ``modelctl logs --level warning`` has something to show.
Run it alone with ``python3 tiny_model.py --port 8080``.
"""

import argparse
import http.server
import json
import logging
import os
import signal
import sys
import threading
import time

POSITIVE = {"good", "great", "love", "excellent", "happy", "fast", "nice"}
NEGATIVE = {"bad", "awful", "hate", "slow", "broken", "sad", "terrible"}

log = logging.getLogger("tiny")


def classify(text):
    words = [word.strip(".,!?").lower() for word in text.split()]
    score = sum(word in POSITIVE for word in words) - sum(word in NEGATIVE for word in words)
    label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
    return {"label": label, "score": score, "words": len(words)}


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "tiny-model/1.0"

    def do_GET(self):
        if self.path == "/health":
            loaded = self.server.loaded.is_set()
            self._reply(200 if loaded else 503, {"status": "ok" if loaded else "loading"})
        else:
            self._reply(404, {"error": "try POST /predict or GET /health"})

    def do_POST(self):
        if self.path != "/predict":
            self._reply(404, {"error": "try POST /predict"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            text = json.loads(self.rfile.read(length) or b"{}")["text"]
        except (ValueError, KeyError, TypeError):
            log.warning('bad request from %s: expected {"text": ...}', self.client_address[0])
            self._reply(400, {"error": 'send {"text": "..."}'})
            return
        result = classify(str(text))
        log.debug("classified %d words as %s", result["words"], result["label"])
        self._reply(200, result)

    def _reply(self, status, body):
        payload = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, fmt, *args):
        log.info("%s %s", self.client_address[0], fmt % args)


def load_weights(server, seconds):
    log.info("loading weights (%.1fs)...", seconds)
    time.sleep(seconds)
    server.loaded.set()
    log.info("model loaded; ready for /predict")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--load-seconds", type=float, default=1.0)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.loaded = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    threading.Thread(target=load_weights, args=(server, args.load_seconds), daemon=True).start()
    log.info("listening on http://127.0.0.1:%d", args.port)
    if args.port < 1024:
        log.warning("port %d usually needs root", args.port)
    server.serve_forever()
    log.info("shut down cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
