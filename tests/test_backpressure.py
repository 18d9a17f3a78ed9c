"""Write back-pressure holds against clients that never read.

Each test connects a client over loopback with a small receive buffer that
sends (non-blocking, bounded in bytes and time) and never reads.  The
server must stop reading from it once its replies pile up past the
transport's high-water mark, so the client's sends stall, the bytes the
server holds stay bounded, and the reactor sleeps instead of spinning.
"""

from __future__ import annotations

import select
import socket
import threading
import time
import unittest
from collections.abc import Callable
from typing import Any

from protocols import TCPServer
from protocols.http import HTTPRequest, HTTPServer, Reply
from protocols.smtp import REPLY_HIGH_WATER, REPLY_KERNEL_BUFFER, SMTPServer
from reactor import WRITE_HIGH_WATER, WRITE_LOW_WATER, StreamTransport, current_reactor

CLIENT_RCVBUF = 64 * 1024
SEND_LIMIT = 64 * 1024 * 1024  # bytes a client sends at most
SEND_TIME_LIMIT = 10.0  # seconds a client sends at most
STALL_WAIT = 1.0  # a send that cannot go on for this long: the server stopped reading
MAX_SERVER_BUFFER = 16 * 1024 * 1024


def connect(address: Any) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
    sock.settimeout(10.0)
    sock.connect(address)
    sock.setblocking(False)
    return sock


def send_until_stalled(sock: socket.socket, chunk: bytes) -> tuple[int, bool]:
    """Send ``chunk`` repeatedly, never reading; returns (bytes sent, stalled).

    Stops when a send could not proceed for STALL_WAIT seconds (stalled), or
    after SEND_LIMIT bytes or SEND_TIME_LIMIT seconds (not stalled).
    """
    sent = 0
    view = memoryview(chunk)
    deadline = time.monotonic() + SEND_TIME_LIMIT
    while sent < SEND_LIMIT and time.monotonic() < deadline:
        try:
            n = sock.send(view)
        except BlockingIOError:
            _, writable, _ = select.select([], [sock], [], STALL_WAIT)
            if not writable:
                return sent, True
            continue
        sent += n
        view = view[n:] or memoryview(chunk)
    return sent, False


def on_reactor(fn: Callable[[], Any]) -> Any:
    r = current_reactor()
    assert r is not None
    return r.run_sync(fn, timeout=10.0)


def transports(server: Any) -> list[StreamTransport]:
    return list(server._transports)


def buffered(server: Any) -> int:
    """Bytes the server's transports (and HTTP machines) hold for their clients."""

    def total() -> int:
        n = 0
        for t in transports(server):
            n += t.get_write_buffer_size()
            machine = getattr(t.protocol, "machine", None)
            n += len(getattr(machine, "_out", b""))
        return n

    return int(on_reactor(total))


def writing_paused(server: Any) -> bool:
    """The server's one transport has paused writing (its backlog passed high water)."""
    return bool(on_reactor(lambda: [t._paused_for_writes for t in transports(server)] == [True]))


class TestWaterMarks(unittest.TestCase):
    def test_defaults_are_exported_and_per_transport(self) -> None:
        self.assertLess(WRITE_LOW_WATER, WRITE_HIGH_WATER)
        server = TCPServer(record=False)
        server.start()
        self.addCleanup(server.stop)
        sock = socket.create_connection(server.server_address, timeout=10)
        self.addCleanup(sock.close)
        server.wait_for(lambda: server.connection_count == 1, timeout=10)
        marks = on_reactor(lambda: [(t.high_water, t.low_water) for t in transports(server)])
        self.assertEqual(marks, [(WRITE_HIGH_WATER, WRITE_LOW_WATER)])
        self.assertIs(on_reactor(lambda: transports(server)[0].reactor), current_reactor())


class TestEchoNeverRead(unittest.TestCase):
    def test_echo_to_a_client_that_never_reads_stalls_it(self) -> None:
        server = TCPServer(on_data=lambda c, d: c.write(d), record=False)
        server.start()
        self.addCleanup(server.stop)
        sock = connect(server.server_address)
        self.addCleanup(sock.close)
        sent, stalled = send_until_stalled(sock, b"x" * 65536)
        held = buffered(server)
        self.assertTrue(stalled, f"server kept reading: {sent} bytes sent, {held} buffered")
        self.assertLessEqual(held, MAX_SERVER_BUFFER)


class TestSMTPNoopFlood(unittest.TestCase):
    def test_noop_flood_never_read_stalls_it(self) -> None:
        server = SMTPServer()
        server.start()
        self.addCleanup(server.stop)
        sock = connect(server.server_address)
        self.addCleanup(sock.close)
        sock.setblocking(True)
        sock.sendall(b"EHLO x\r\n")
        sock.setblocking(False)
        sent, stalled = send_until_stalled(sock, b"NOOP\r\n" * 10923)  # 64 KiB
        held = buffered(server)
        self.assertTrue(stalled, f"server kept reading: {sent} bytes sent, {held} buffered")
        self.assertLessEqual(held, MAX_SERVER_BUFFER)

    def test_noop_flood_stops_at_the_smtp_reply_marks(self) -> None:
        # SMTP replies are tiny: the stream default (4 MiB held, and a kernel
        # send buffer grown to megabytes) let a never-reading client have
        # ~1 s of commands answered.  The SMTP marks stop it after kilobytes.
        server = SMTPServer()
        server.start()
        self.addCleanup(server.stop)
        sock = connect(server.server_address)
        self.addCleanup(sock.close)
        sock.setblocking(True)
        sock.sendall(b"EHLO x\r\n")
        sock.setblocking(False)
        sent, stalled = send_until_stalled(sock, b"NOOP\r\n" * 10923)
        self.assertTrue(stalled, f"server kept reading: {sent} bytes sent")
        held = buffered(server)
        self.assertLessEqual(held, REPLY_HIGH_WATER + 64 * 1024)

        def kernel_buffers() -> list[int]:
            return [
                t.socket.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
                for t in transports(server)
            ]

        for size in on_reactor(kernel_buffers):  # Linux reports twice what was set
            self.assertLessEqual(size, 2 * REPLY_KERNEL_BUFFER)


class TestHTTPNeverRead(unittest.TestCase):
    def test_big_replies_never_read_do_not_spin_the_reactor(self) -> None:
        self.big_replies_never_read()

    def test_nor_when_the_kernel_takes_part_of_the_backlog_after_the_pause(self) -> None:
        # As when the kernel's send buffer autotunes up after writing paused
        # (a loaded machine): the backlog settles below the high-water mark,
        # writing stays paused (above the low-water mark).
        self.big_replies_never_read(grow_after_pause=True)

    def big_replies_never_read(self, grow_after_pause: bool = False) -> None:
        body = b"y" * (1024 * 1024)
        server = HTTPServer(handler=lambda req: Reply(200, body), record=False)
        server.start()
        self.addCleanup(server.stop)
        sock = connect(server.server_address)
        self.addCleanup(sock.close)
        if grow_after_pause:
            server.wait_for(lambda: server.connection_count == 1, timeout=10)

            def grow_at_the_pause() -> None:
                [t] = transports(server)
                t.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
                proto: Any = t.protocol
                pause = proto.pause_writing

                def grow() -> None:
                    # Room for the overshoot past high water and 512 KiB more.
                    extra = t.get_write_buffer_size() - WRITE_HIGH_WATER + 512 * 1024
                    size = t.socket.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
                    t.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, (size + extra) // 2)

                def pause_writing() -> None:
                    pause()
                    t.reactor.call_soon(grow)

                proto.pause_writing = pause_writing

            on_reactor(grow_at_the_pause)
        sock.setblocking(True)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 100)

        # Wait (bounded) until the replies fill the kernel buffers and pile
        # up past the high-water mark: the transport has paused writing (what
        # the server guarantees; the client is now "not reading").  Not the
        # backlog itself: once paused, the kernel may still take some of it
        # (its send buffer grows), so it can settle anywhere above the
        # low-water mark, at or below the high-water mark too.
        deadline = time.monotonic() + 10.0
        while not writing_paused(server):
            self.assertLess(
                time.monotonic(), deadline,
                f"replies never piled up past the high-water mark ({buffered(server)} buffered)",
            )
            threading.Event().wait(0.01)
        r = current_reactor()
        assert r is not None
        before = r.iterations
        threading.Event().wait(1.0)  # the measurement window
        passes = r.iterations - before
        self.assertLess(
            passes, 200, f"{passes} reactor passes in 1 s while the client reads nothing"
        )
        self.assertTrue(writing_paused(server), "writing resumed though the client reads nothing")
        held = buffered(server)
        self.assertGreater(held, WRITE_LOW_WATER)
        self.assertLessEqual(held, MAX_SERVER_BUFFER)
        if grow_after_pause:
            self.assertLessEqual(held, WRITE_HIGH_WATER)  # the case this variant makes

    def pipeline_to_unanswered(self, handler: Callable[[HTTPRequest], Any]) -> None:
        server = HTTPServer(handler=handler, record=False)
        server.start()
        self.addCleanup(server.stop)
        sock = connect(server.server_address)
        self.addCleanup(sock.close)
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        sent, stalled = send_until_stalled(sock, request * (65536 // len(request)))

        def machine_buffered() -> int:
            return sum(t.protocol.machine.buffered for t in transports(server))  # type: ignore[attr-defined]

        held = int(on_reactor(machine_buffered))
        self.assertTrue(stalled, f"server kept reading: {sent} bytes sent, {held} buffered")
        self.assertLess(held, 2 * 1024 * 1024 + 256 * 1024)

    def test_respond_later_stops_reading_pipelined_requests(self) -> None:
        self.pipeline_to_unanswered(lambda req: req.respond_later())

    def test_delayed_reply_stops_reading_pipelined_requests(self) -> None:
        self.pipeline_to_unanswered(lambda req: Reply(200, b"late", delay=30))


if __name__ == "__main__":
    unittest.main()
