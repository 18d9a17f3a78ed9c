"""Load generators run in a child process: ``python -m bench._client MODE ...``.

A separate process keeps the client off the server's interpreter lock, so a
throughput number is the server's, not the GIL's.  Loopback only; every loop
is bounded by a count and a deadline.  Each mode prints one JSON line.

Modes:

``udp HOST PORT SIZE COUNT RATE``
    send COUNT datagrams of SIZE bytes; RATE datagrams/s (0: as fast as
    possible), paced in 1 ms slices.
``tcp-echo HOST PORT TOTAL CHUNK``
    send TOTAL bytes in CHUNK-sized writes on one thread while reading the
    echo on another; report the time from first send to last byte back.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

DEADLINE = 30.0


def udp(host: str, port: int, size: int, count: int, rate: float) -> dict[str, float]:
    payload = b"x" * size
    sent = errors = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        t0 = time.perf_counter()
        limit = t0 + DEADLINE
        if rate <= 0:
            while sent < count and (sent & 1023 or time.perf_counter() < limit):
                try:
                    s.send(payload)
                    sent += 1
                except OSError:  # ENOBUFS / ECONNREFUSED: counted, not fatal
                    errors += 1
                    if errors > count:
                        break
        else:
            per_slice = rate / 1000.0
            due = 0.0
            while sent < count:
                now = time.perf_counter()
                if now > limit:
                    break
                due = min(count, (now - t0) * 1000.0 * per_slice + per_slice)
                while sent < due:
                    try:
                        s.send(payload)
                    except OSError:
                        errors += 1
                    sent += 1
                # Sleep to the next 1 ms slice.
                nxt = t0 + (int((now - t0) * 1000) + 1) / 1000.0
                delay = nxt - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
        t1 = time.perf_counter()
    return {"sent": sent, "errors": errors, "elapsed": t1 - t0}


def tcp_echo(host: str, port: int, total: int, chunk: int) -> dict[str, float]:
    data = b"y" * chunk
    with socket.create_connection((host, port), timeout=DEADLINE) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        failure: list[BaseException] = []

        def writer() -> None:
            try:
                left = total
                while left > 0:
                    n = min(left, chunk)
                    s.sendall(data[:n])
                    left -= n
            except BaseException as exc:  # reported by the reader
                failure.append(exc)

        t0 = time.perf_counter()
        w = threading.Thread(target=writer, daemon=True)
        w.start()
        got = 0
        while got < total:
            b = s.recv(1 << 18)
            if not b:
                break
            got += len(b)
        t1 = time.perf_counter()
        w.join(DEADLINE)
    if failure:
        raise failure[0]
    return {"sent": total, "received": got, "elapsed": t1 - t0}


def main(argv: list[str]) -> int:
    mode = argv[0]
    if mode == "udp":
        out = udp(argv[1], int(argv[2]), int(argv[3]), int(argv[4]), float(argv[5]))
    elif mode == "tcp-echo":
        out = tcp_echo(argv[1], int(argv[2]), int(argv[3]), int(argv[4]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
