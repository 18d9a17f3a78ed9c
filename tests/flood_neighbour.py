"""Child process for the read-fairness test: four floods, one light client.

``python -m tests.flood_neighbour FLOOD_PORT ECHO_PORT CLIENTS SECONDS``
opens CLIENTS connections to FLOOD_PORT, each sending 1 MiB blocks on its
own thread until the end (never pausing: whatever the server reads, more is
queued at once).  Once every flooder has sent its first megabytes (the
kernel buffers are full), it makes request/response round trips of a
5-byte line to the echo server at ECHO_PORT over one connection for SECONDS
seconds (at most 10,000).  It prints ``count median max`` (seconds) of those
round trips and the megabytes flooded.  A separate process keeps the clients
off the server's interpreter lock: what is measured is how long the reactor
leaves the light client waiting, not the GIL.
"""

from __future__ import annotations

import socket
import statistics
import sys
import threading
import time

BLOCK = b"f" * (1 << 20)

#: Megabytes every flooder sends before the round trips start.
WARM_MB = 8

#: Round trips at most.
MAX_ROUNDS = 10_000


def main(argv: list[str]) -> int:
    flood_port, echo_port, clients = int(argv[0]), int(argv[1]), int(argv[2])
    seconds = float(argv[3])
    stop = threading.Event()
    sent = [0] * clients
    warm = threading.Barrier(clients + 1)

    def flood(i: int) -> None:
        with socket.create_connection(("127.0.0.1", flood_port), timeout=30) as s:
            try:
                for _ in range(WARM_MB):
                    s.sendall(BLOCK)
                    sent[i] += 1
                warm.wait(30)
                while not stop.is_set():
                    s.sendall(BLOCK)
                    sent[i] += 1
            except (OSError, threading.BrokenBarrierError):
                pass

    threads = [threading.Thread(target=flood, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    warm.wait(30)
    lat: list[float] = []
    with socket.create_connection(("127.0.0.1", echo_port), timeout=10) as c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        end = time.monotonic() + seconds
        while len(lat) < MAX_ROUNDS and time.monotonic() < end:
            t0 = time.monotonic()
            c.sendall(b"ping\n")
            got = b""
            while len(got) < 5:
                chunk = c.recv(5 - len(got))
                if not chunk:
                    raise SystemExit("the echo server hung up")
                got += chunk
            lat.append(time.monotonic() - t0)
    stop.set()
    for t in threads:
        t.join(10)
    print(len(lat), statistics.median(lat), max(lat), sum(sent))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
