"""Prints its argv (after the script name, before --tag) as one JSON line, then sleeps."""

import json
import sys
import time

args = sys.argv[1:]
if "--tag" in args:
    args = args[: args.index("--tag")]
print(json.dumps(args), flush=True)
while True:
    time.sleep(3600)
