"""A model that appends "up NAME" to a journal file when it starts and "down NAME" when
it stops, so a test can prove the order in which models ran.

Usage: journal.py --journal FILE --name NAME
"""

import signal
import sys
import time


def note(text):
    with open(journal, "a") as handle:
        handle.write("%s %s %f\n" % (text, name, time.time()))


journal = sys.argv[sys.argv.index("--journal") + 1]
name = sys.argv[sys.argv.index("--name") + 1]


def stop(*_):
    note("down")
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
note("up")
print("journal up", flush=True)
while True:
    time.sleep(3600)
