"""Prints "tick N" every INTERVAL seconds until stopped: ticker.py [INTERVAL] [--delay S].

With --delay, it stays silent for S seconds first; with --progress FILE, it also
keeps the number of its last tick in FILE (so a test knows what it printed).
"""

import os
import signal
import sys
import time

interval = float(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else 0.05
delay = float(sys.argv[sys.argv.index("--delay") + 1]) if "--delay" in sys.argv else 0.0
progress = sys.argv[sys.argv.index("--progress") + 1] if "--progress" in sys.argv else None
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
time.sleep(delay)
number = 0
while True:
    print("tick %d" % number, flush=True)
    if progress:
        with open(progress + ".tmp", "w") as handle:
            handle.write(str(number))
        os.replace(progress + ".tmp", progress)
    number += 1
    time.sleep(interval)
