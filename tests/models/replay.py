"""Replays a captured crash (tests/data/server_output/crash/CASE.jsonl) as the real server
ended: each line on its stream, then its exit code or signal.

replay.py CASE [--hold SECONDS] [--forever] [--tag X]

--hold waits before ending (so the model can become ready first); --forever never
ends (a server that restarts its failing worker forever).
"""

import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CRASH = os.path.join(HERE, "..", "data", "server_output", "crash")

case = sys.argv[1]
hold = float(sys.argv[sys.argv.index("--hold") + 1]) if "--hold" in sys.argv else 0.0
with open(os.path.join(CRASH, case + ".json"), encoding="utf-8") as handle:
    meta = json.load(handle)
streams = {"stdout": sys.stdout, "stderr": sys.stderr}
with open(os.path.join(CRASH, case + ".jsonl"), encoding="utf-8") as handle:
    for raw in handle:
        record = json.loads(raw)
        stream = streams[record["stream"]]
        stream.write(record["line"] + "\n")
        stream.flush()
time.sleep(hold)
while "--forever" in sys.argv:
    time.sleep(60)
if meta["signal"]:
    os.kill(os.getpid(), getattr(signal, meta["signal"]))
    time.sleep(5)
sys.exit(meta["exit_code"])
