"""Prints COUNT numbered lines as fast as it can, then exits 0: flood.py COUNT [WIDTH]."""

import sys

count = int(sys.argv[1])
width = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 20
pad = "x" * max(0, width - 9)
write = sys.stdout.write
for number in range(count):
    write("%08d %s\n" % (number, pad))
sys.stdout.flush()
