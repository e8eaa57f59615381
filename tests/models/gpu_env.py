"""A model that prints the GPU variables modeld gave it and its arguments, then sleeps."""

import os
import signal
import sys
import time

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
for key in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"):
    print("%s=%s" % (key, os.environ.get(key, "")), flush=True)
print("argv=%s" % " ".join(sys.argv[1:]), flush=True)
while True:
    time.sleep(3600)
