"""Prints "tick N" every INTERVAL seconds (default 0.05) until stopped: ticker.py [INTERVAL]."""

import signal
import sys
import time

interval = float(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else 0.05
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
number = 0
while True:
    print("tick %d" % number, flush=True)
    number += 1
    time.sleep(interval)
