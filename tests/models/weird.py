"""Prints a line with HTML, quotes, backslashes and non-ASCII, then one known line, then sleeps."""

import signal
import sys
import time

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print('<script>window.__modeld_pwned = 1</script> "quoted" back\\slash \u00e9\u6f22', flush=True)
print("ERROR: something broke", file=sys.stderr, flush=True)
print("known line 42", flush=True)
while True:
    time.sleep(1)
