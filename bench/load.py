"""A small HTTP load generator: N client processes, one keep-alive connection each.

Processes, not threads, so the generator is not held back by one GIL; raw
sockets, so the client's own cost per request stays small next to the
server's. Each client sends the same request over and over for a duration and
records every latency.
"""

import multiprocessing
import socket
import time


def _read_response(sock, buffer):
    """Read one response; return (status, keep_alive, leftover bytes)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, keep_alive = 0, True
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        key = key.strip().lower()
        if key == b"content-length":
            length = int(value)
        elif key == b"connection" and value.strip().lower() == b"close":
            keep_alive = False
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        rest += chunk
    return status, keep_alive, rest[length:]


def _client(host, port, request, duration, start_at, results):
    latencies, errors, statuses = [], 0, {}
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = time.monotonic() + duration
    sock, buffer = None, b""
    while time.monotonic() < deadline:
        if sock is None:
            sock = socket.create_connection((host, port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffer = b""
        started = time.perf_counter()
        try:
            sock.sendall(request)
            status, keep_alive, buffer = _read_response(sock, buffer)
        except OSError:
            errors += 1
            sock.close()
            sock = None
            continue
        latencies.append(time.perf_counter() - started)
        statuses[status] = statuses.get(status, 0) + 1
        if not keep_alive:
            sock.close()
            sock = None
    if sock is not None:
        sock.close()
    results.put((latencies, errors, statuses))


def run(host, port, request, clients, duration=5.0):
    """Send ``request`` from ``clients`` connections for ``duration`` s.

    Returns (requests a second, latencies, errors, {status: count}).
    """
    results = multiprocessing.Queue()
    start_at = time.time() + 0.5
    workers = [
        multiprocessing.Process(
            target=_client, args=(host, port, request, duration, start_at, results)
        )
        for _ in range(clients)
    ]
    for worker in workers:
        worker.start()
    latencies, errors, statuses = [], 0, {}
    for _ in workers:
        some, failed, codes = results.get()
        latencies += some
        errors += failed
        for code, count in codes.items():
            statuses[code] = statuses.get(code, 0) + count
    for worker in workers:
        worker.join()
    return len(latencies) / duration, latencies, errors, statuses


def http_get(host, port, path, token=None):
    headers = "Host: %s:%d\r\n" % (host, port)
    if token:
        headers += "Authorization: Bearer %s\r\n" % token
    return ("GET %s HTTP/1.1\r\n%s\r\n" % (path, headers)).encode()


def http_post(host, port, path, body, content_type):
    return (
        "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
        % (path, host, port, content_type, len(body))
    ).encode() + body
