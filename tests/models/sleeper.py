"""A model that prints a line, then sleeps until it is told to stop.

Usage: sleeper.py [--port N]  (listens on N if given, so the port is really held)
"""

import signal
import socket
import sys
import time

port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else None
if port:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(5)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("sleeper up", flush=True)
while True:
    time.sleep(3600)
