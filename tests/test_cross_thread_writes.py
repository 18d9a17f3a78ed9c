"""Writes from other threads keep their place among the reactor's own.

A stream connection's ``write()`` may be called from any thread: from
another one the bytes are queued on the connection
(``StreamTransport.write_threadsafe``) and the reactor-thread write, close
or half-close that comes next sends them first.  Before, the bytes were
handed over as a callback on the reactor's deque, and a reactor-thread write
made in the meantime (by a callback that knew of the other thread's write)
was sent before them, or a close dropped them.

Each test runs ``then()`` on the reactor thread right after another thread's
write: a callback queued first waits on the reactor until that write has
returned, then calls ``then()``, so the order is the same on every run.
"""

from __future__ import annotations

import socket
import threading
import time
import unittest
from collections.abc import Callable
from typing import Any

from protocols import ScriptedConnection, ScriptedServer, StreamConnection, TCPServer

TIMEOUT = 10.0


def recv_until_closed(sock: socket.socket, want: int) -> bytes:
    """Read until ``want`` bytes arrived or the peer closed (bounded by TIMEOUT)."""
    got = b""
    deadline = time.monotonic() + TIMEOUT
    while len(got) < want and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def after_a_write_from_another_thread(
    reactor: Any, write: Callable[[bytes], None], then: Callable[[], None]
) -> None:
    """``write(b"first\\n")`` on a worker thread, then ``then()`` on the reactor thread."""
    written = threading.Event()
    done = threading.Event()

    def on_reactor() -> None:  # queued before the worker's write is handed over
        try:
            if written.wait(TIMEOUT):
                then()
        finally:
            done.set()

    def worker() -> None:
        write(b"first\n")
        written.set()

    reactor.call_soon_threadsafe(on_reactor)
    t = threading.Thread(target=worker)
    t.start()
    t.join(TIMEOUT)
    assert done.wait(TIMEOUT), "the reactor callback never ran"


class StreamConnectionWritesFromAWorker(unittest.TestCase):
    def setUp(self) -> None:
        conns: list[StreamConnection] = []
        self.server = TCPServer(on_connect=conns.append)
        self.server.start()
        self.addCleanup(self.server.stop)
        self.client = socket.create_connection(("127.0.0.1", self.server.port), timeout=TIMEOUT)
        self.addCleanup(self.client.close)
        self.server.wait_for(lambda: conns, timeout=TIMEOUT)
        self.conn = conns[0]
        # One byte in first: the transport has had an I/O event, so a large
        # write or write_now() may be sent directly (no end-of-pass flush).
        self.client.sendall(b"x")
        self.server.wait_for(lambda: self.conn.stream.received == 1, timeout=TIMEOUT)
        t = self.conn.transport
        assert t is not None
        self.transport = t

    def run_after_write(self, then: Callable[[], None]) -> None:
        after_a_write_from_another_thread(self.transport.reactor, self.conn.write, then)

    def test_a_reactor_write_after_it_comes_after_it(self) -> None:
        self.run_after_write(lambda: self.conn.write(b"second\n"))
        self.assertEqual(recv_until_closed(self.client, 13), b"first\nsecond\n")

    def test_a_direct_send_after_it_comes_after_it(self) -> None:
        # write_now() (the HTTP fast path) and a large write() send at once.
        big = b"b" * (256 * 1024)
        self.run_after_write(lambda: self.transport.write_now(b"second\n"))
        self.run_after_write(lambda: self.transport.write(big))
        want = b"first\nsecond\n" + b"first\n" + big
        self.assertEqual(recv_until_closed(self.client, len(want)), want)

    def test_a_close_after_it_sends_it_first(self) -> None:
        self.run_after_write(self.conn.close)
        self.assertEqual(recv_until_closed(self.client, 100), b"first\n")  # then EOF

    def test_a_half_close_after_it_sends_it_first(self) -> None:
        self.run_after_write(self.transport.write_eof)
        self.assertEqual(recv_until_closed(self.client, 100), b"first\n")  # then EOF

    def test_writes_from_other_threads_keep_their_order(self) -> None:
        def worker(i: int) -> None:
            for j in range(200):
                self.conn.write(b"%d:%03d\n" % (i, j))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        self.transport.reactor.call_soon_threadsafe(self.conn.close)
        lines = recv_until_closed(self.client, 1 << 20).splitlines()
        self.assertEqual(len(lines), 600)
        for i in range(3):
            mine = [line for line in lines if line.startswith(b"%d:" % i)]
            self.assertEqual(mine, [b"%d:%03d" % (i, j) for j in range(200)])


class ScriptedPushFromAWorker(unittest.TestCase):
    def test_a_push_keeps_its_place_before_the_reactors_push_and_close(self) -> None:
        with ScriptedServer() as srv:
            with socket.create_connection(srv.server_address, timeout=TIMEOUT) as s:
                conn: ScriptedConnection = srv.wait_for_connections(1)[0]
                t = conn.transport
                assert t is not None

                def then() -> None:
                    conn.push(b"second\n")
                    conn.close_when_done()

                after_a_write_from_another_thread(t.reactor, conn.push, then)
                self.assertEqual(recv_until_closed(s, 100), b"first\nsecond\n")


if __name__ == "__main__":
    unittest.main()
