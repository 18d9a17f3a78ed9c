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
from reactor import Bandwidth, WaitTimeout, _transport

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


class AThreadWritingToAClientThatNeverReads(unittest.TestCase):
    """Back-pressure for the writing thread: it waits; memory stays bounded.

    Before, each write from another thread was queued whatever the backlog:
    a thread writing 64 KiB chunks to a client that never reads piled up
    about a gigabyte a second on the server (3 GB in 3 s here).
    """

    CHUNK = 64 * 1024
    CHUNKS = 400  # 25 MiB: far above WRITE_HIGH_WATER and the kernel's buffers

    def setUp(self) -> None:
        conns: list[StreamConnection] = []
        self.server = TCPServer(on_connect=conns.append)
        self.server.start()
        self.addCleanup(self.server.stop)
        self.client = socket.socket()
        self.client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self.client.settimeout(TIMEOUT)
        self.client.connect(("127.0.0.1", self.server.port))
        self.addCleanup(self.client.close)
        self.server.wait_for(lambda: conns, timeout=TIMEOUT)
        self.conn = conns[0]
        t = self.conn.transport
        assert t is not None
        self.transport = t
        self.written = 0
        self.errors: list[BaseException] = []
        self.worker = threading.Thread(target=self.write_chunks)

    def write_chunks(self) -> None:
        try:
            for i in range(self.CHUNKS):
                self.conn.write(b"%08d" % i + b"." * (self.CHUNK - 8))
                self.written += 1
        except BaseException as exc:
            self.errors.append(exc)

    def backlog(self) -> int:
        t = self.transport
        # Written, and queued by the writer for the reactor to take.
        return t.reactor.run_sync(
            lambda: t.get_write_buffer_size() + sum(map(len, t._from_threads))
        )

    def wait_until_writer_waits(self) -> None:
        """Until no write returned for 0.3 s (or the writer is done)."""
        deadline = time.monotonic() + TIMEOUT
        last, since = -1, time.monotonic()
        while self.worker.is_alive() and time.monotonic() - since < 0.3:
            self.assertLess(time.monotonic(), deadline, "the writer never waited")
            if self.written != last:
                last, since = self.written, time.monotonic()
            time.sleep(0.01)

    def test_the_writer_waits_and_the_backlog_stays_near_the_high_water_mark(self) -> None:
        self.worker.start()
        time.sleep(1.5)
        self.assertTrue(self.worker.is_alive(), f"all {self.written} writes returned")
        self.assertLess(self.written, self.CHUNKS)
        self.assertLessEqual(self.backlog(), self.transport.high_water + self.CHUNK)
        got = bytearray()
        while len(got) < self.CHUNK * self.CHUNKS:
            chunk = self.client.recv(1 << 20)
            if not chunk:
                break
            got += chunk
        self.worker.join(TIMEOUT)
        self.assertFalse(self.worker.is_alive())
        self.assertEqual(self.errors, [])
        self.assertEqual(len(got), self.CHUNK * self.CHUNKS)
        for i in range(self.CHUNKS):  # every chunk, in order
            self.assertEqual(got[i * self.CHUNK : i * self.CHUNK + 8], b"%08d" % i)

    def test_a_waiting_writer_returns_when_the_server_stops(self) -> None:
        self.worker.start()
        self.wait_until_writer_waits()
        self.server.stop()
        self.worker.join(TIMEOUT)
        self.assertFalse(self.worker.is_alive(), "the writer still waits after stop()")
        self.assertEqual(self.errors, [])  # dropped, as any write once closing

    def test_a_writer_that_never_gets_room_is_told(self) -> None:
        was = getattr(_transport, "THREAD_WRITE_TIMEOUT", None)
        self.addCleanup(setattr, _transport, "THREAD_WRITE_TIMEOUT", was)
        _transport.THREAD_WRITE_TIMEOUT = 0.5
        self.worker.start()
        self.worker.join(TIMEOUT)
        self.assertFalse(self.worker.is_alive())
        self.assertEqual([type(e) for e in self.errors], [WaitTimeout])
        self.assertIn("does not read", str(self.errors[0]))
        self.assertLessEqual(self.backlog(), self.transport.high_water + self.CHUNK)

    def test_a_slow_reader_only_makes_the_writer_wait_longer(self) -> None:
        # 2 MB/s: from 6 MiB queued down to the mark takes about a second,
        # twice the timeout, but bytes go out all along.
        was = getattr(_transport, "THREAD_WRITE_TIMEOUT", None)
        self.addCleanup(setattr, _transport, "THREAD_WRITE_TIMEOUT", was)
        _transport.THREAD_WRITE_TIMEOUT = 0.5
        self.server.faults.add(Bandwidth(2_000_000))
        big = b"b" * (6 * 1024 * 1024)

        def worker() -> None:
            try:
                self.conn.write(big)
                self.conn.write(b"end")
            except BaseException as exc:
                self.errors.append(exc)

        self.worker = threading.Thread(target=worker)
        self.worker.start()
        want = len(big) + 3
        got = recv_until_closed(self.client, want)
        self.worker.join(TIMEOUT)
        self.assertEqual(self.errors, [])
        self.assertEqual(len(got), want)
        self.assertTrue(got.endswith(b"bend"))


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
