"""Prints a line (or --say TEXT to stderr), waits, then exits with CODE.

crasher.py CODE [SECONDS_BEFORE_EXIT] [--say TEXT] [--tag X]
"""

import sys
import time

code = int(sys.argv[1])
delay = float(sys.argv[2]) if len(sys.argv) > 2 and not sys.argv[2].startswith("--") else 0.0
print("crasher will exit with %d" % code, flush=True)
if "--say" in sys.argv:
    print(sys.argv[sys.argv.index("--say") + 1], file=sys.stderr, flush=True)
time.sleep(delay)
sys.exit(code)
