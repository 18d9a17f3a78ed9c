"""Hostile clients for ``bench_hostile``.

Run as ``python -m bench._hostile_client KIND HOST PORT SECONDS``.

Each client misbehaves for at most SECONDS (and a byte bound), never reads
what the server sends, then prints one JSON line with how many bytes the
server took from it and closes.  Loopback only.

Kinds:

``tcp-echo``     64 KiB chunks to an echo server.
``smtp-noop``    ``EHLO x`` then up to 5,000,000 ``NOOP`` lines.
``http-pending`` pipelined GETs behind a request the server never answers.
``http-big``     100 pipelined GETs whose answers are 1 MiB each.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time

#: The client's receive buffer: small, as a slow or stuck reader has.
CLIENT_RCVBUF = 64 * 1024

#: Upper bound of what any client sends (the issue's 256 MiB).
MAX_SEND = 256 * 1024 * 1024


def _connect(host: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
    s.connect((host, port))
    s.setblocking(False)
    return s


def _flood(s: socket.socket, chunk: bytes, seconds: float, limit: int) -> int:
    """Send ``chunk`` again and again until ``limit`` bytes or ``seconds``."""
    sent = 0
    view = memoryview(chunk)
    deadline = time.monotonic() + seconds
    while sent < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        _, writable, _ = select.select([], [s], [], min(left, 0.05))
        if not writable:
            continue  # the server stopped reading: that is what we measure
        try:
            sent += s.send(view)
        except BlockingIOError:
            continue
        except OSError:
            break  # the server closed on us
    return sent


def main(argv: list[str]) -> int:
    kind, host, port, seconds = argv[0], argv[1], int(argv[2]), float(argv[3])
    s = _connect(host, port)
    try:
        if kind == "tcp-echo":
            sent = _flood(s, b"x" * 65536, seconds, MAX_SEND)
        elif kind == "smtp-noop":
            line = b"NOOP\r\n"
            sent = _flood(s, b"EHLO x\r\n", seconds, 8)
            sent += _flood(s, line * 10_000, seconds, min(MAX_SEND, 5_000_000 * len(line)))
        elif kind == "http-pending":
            sent = _flood(s, b"GET /pending HTTP/1.1\r\nHost: h\r\n\r\n", seconds, 64)
            sent += _flood(s, b"GET /more HTTP/1.1\r\nHost: h\r\n\r\n" * 1000, seconds, MAX_SEND)
        elif kind == "http-big":
            req = b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n"
            sent = _flood(s, req * 100, seconds, len(req) * 100)
            time.sleep(seconds)  # hold the connection open without reading
        else:
            raise SystemExit(f"unknown kind {kind!r}")
    finally:
        s.close()
    print(json.dumps({"sent": sent}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
