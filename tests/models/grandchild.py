"""Starts a grandchild (a shell sleeping), optionally in its own session, then sleeps.

grandchild.py [--setsid] [--exit] [--tag X]: prints "grandchild PID"; with --exit the
model itself exits 1 right after, leaving the grandchild behind (a daemonizing server).
"""

import subprocess
import sys
import time

child = subprocess.Popen(
    [sys.executable, "-c", "import time\nwhile True: time.sleep(3600)"] + sys.argv[1:],
    start_new_session="--setsid" in sys.argv,
)
print("grandchild %d" % child.pid, flush=True)
if "--exit" in sys.argv:
    sys.exit(1)
while True:
    time.sleep(3600)
