"""Child process for the fairness tests: flood server A, time server B meanwhile.

``python -m tests.neighbour_latency FLOOD A_PORT B_PORT N`` sends one flood to
A on a thread (FLOOD is ``lines``: N numbered lines in one send; ``chunks``:
a POST of N one-byte chunks; ``bulk``: N bytes of raw data) and waits for
A's first answer line; meanwhile it asks B ``GET /b`` over one keep-alive
connection, at most 1000 times.  It prints ``count median max`` (seconds).  A
separate process keeps the clients off the server's interpreter lock: what
is measured is how long the reactor leaves B waiting, not the GIL.
"""

from __future__ import annotations

import http.client
import socket
import statistics
import sys
import threading
import time


def flood_bytes(kind: str, n: int) -> bytes:
    if kind == "lines":
        return b"".join(b"%d\n" % i for i in range(n))
    if kind == "chunks":
        return (
            b"POST /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"1\r\nx\r\n" * n
            + b"0\r\n\r\n"
        )
    if kind == "bulk":
        return b"b" * n
    raise SystemExit(f"unknown flood {kind!r}")


def main(argv: list[str]) -> int:
    kind, a_port, b_port, n = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    flood = flood_bytes(kind, n)
    sender = socket.create_connection(("127.0.0.1", a_port), timeout=60)
    done = threading.Event()

    def send() -> None:
        sender.sendall(flood)  # one send of the whole flood
        got = b""
        while b"\n" not in got:  # A's first answer line: the flood was processed
            chunk = sender.recv(100)
            if not chunk:
                break
            got += chunk
        done.set()

    threading.Thread(target=send, daemon=True).start()
    conn = http.client.HTTPConnection("127.0.0.1", b_port, timeout=10)
    lat: list[float] = []
    while not done.is_set() and len(lat) < 1000:
        t0 = time.monotonic()
        conn.request("GET", "/b")
        conn.getresponse().read()
        lat.append(time.monotonic() - t0)
    conn.close()
    done.wait(30)
    sender.close()
    print(len(lat), statistics.median(lat), max(lat))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
