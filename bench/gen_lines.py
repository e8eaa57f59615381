"""The benchmark's model: prints COUNT lines of exactly 100 bytes as fast as it can.

At the end it writes its own wall time to stderr ("elapsed 1.234"), so every
way of capturing it reports the same measure: how long the program took.
"""

import sys
import time

count = int(sys.argv[1])
started = time.perf_counter()
write = sys.stdout.write
pad = "x" * 89
for number in range(count):
    write("%09d %s\n" % (number, pad))
sys.stdout.flush()
sys.stderr.write("elapsed %.6f\n" % (time.perf_counter() - started))
