"""Blocking-handler (threaded) stream servers: TLS, stop() and handler errors.

What each test proves:

* a server with ``ssl_context`` completes the TLS handshake before its
  blocking handler gets the connection, which then carries plaintext
  (TCP and Unix); failed handshakes go to ``tls_errors``, never ``errors``;
* ``stop()`` unblocks a handler that wrapped its socket in TLS itself, as it
  does a plain socket;
* a ``BaseException`` from a handler (SystemExit, KeyboardInterrupt, a
  custom one) is recorded and reported like any handler error, and the
  worker ends cleanly.
"""

from __future__ import annotations

import contextlib
import io
import socket
import ssl
import threading
import time
import unittest
from typing import Any

from protocols import (
    HandlerTimeout,
    StreamRequest,
    TCPServer,
    TestTCPServer,
    UnixStreamServer,
    localhost_contexts,
)
from reactor import StreamServerBase, ThreadedStreamServerBase

#: Generous bound for what should be immediate on a noisy 2-core box.
PROMPT = 3.0


def _tls_echo(seen: list[Any]) -> Any:
    def handler(req: StreamRequest) -> None:
        seen.append(req.connection)
        line = req.rfile.readline()
        req.wfile.write(line.upper())

    return handler


def _read_all(sock: socket.socket) -> bytes:
    got = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return got
        got += chunk


class ThreadedServerBaseTest(unittest.TestCase):
    def test_stream_servers_are_threaded_bases(self) -> None:
        self.assertTrue(issubclass(TCPServer, ThreadedStreamServerBase))
        self.assertTrue(issubclass(TestTCPServer, ThreadedStreamServerBase))
        self.assertTrue(issubclass(ThreadedStreamServerBase, StreamServerBase))


class BlockingHandlerTLSTest(unittest.TestCase):
    def test_tcp_handler_reads_and_writes_plaintext_over_tls(self) -> None:
        server_ctx, client_ctx = localhost_contexts()
        seen: list[Any] = []
        with TCPServer(handler=_tls_echo(seen), ssl_context=server_ctx) as s:
            raw = socket.create_connection(s.server_address, timeout=10)
            with client_ctx.wrap_socket(raw, server_hostname="localhost") as c:
                c.sendall(b"hello tls\n")
                self.assertEqual(_read_all(c), b"HELLO TLS\n")
            s.wait_for(lambda: s.worker_count == 0, 10, "the worker to end")
        self.assertEqual(len(seen), 1)
        self.assertIsInstance(seen[0], ssl.SSLSocket)
        self.assertEqual(s.errors, [])
        self.assertEqual(s.tls_errors, [])

    def test_unix_handler_reads_and_writes_plaintext_over_tls(self) -> None:
        server_ctx, client_ctx = localhost_contexts()
        seen: list[Any] = []
        with UnixStreamServer(handler=_tls_echo(seen), ssl_context=server_ctx) as s:
            raw = socket.socket(socket.AF_UNIX)
            raw.settimeout(10)
            raw.connect(s.server_address)
            with client_ctx.wrap_socket(raw, server_hostname="localhost") as c:
                c.sendall(b"over unix\n")
                self.assertEqual(_read_all(c), b"OVER UNIX\n")
        self.assertIsInstance(seen[0], ssl.SSLSocket)
        self.assertEqual(s.errors, [])

    def test_failed_handshake_goes_to_tls_errors_and_skips_the_handler(self) -> None:
        server_ctx, _ = localhost_contexts()
        seen: list[Any] = []
        with TCPServer(handler=_tls_echo(seen), ssl_context=server_ctx) as s:
            with socket.create_connection(s.server_address, timeout=10) as c:
                c.sendall(b"GET / HTTP/1.0\r\n\r\n")  # plaintext to a TLS port
                try:
                    self.assertEqual(_read_all(c), b"")
                except ConnectionResetError:
                    pass
            s.wait_for(lambda: s.tls_errors, 10, "a TLS error")
            s.wait_for(lambda: s.worker_count == 0, 10, "the worker to end")
        self.assertEqual(seen, [])
        self.assertEqual(s.errors, [])
        self.assertIsInstance(s.tls_errors[0], ssl.SSLError)

    def test_stop_unblocks_a_handshake_in_progress(self) -> None:
        server_ctx, _ = localhost_contexts()
        s = TCPServer(handler=_tls_echo([]), ssl_context=server_ctx)
        s.start()
        c = socket.create_connection(s.server_address, timeout=10)  # says nothing
        try:
            s.wait_for(lambda: s.worker_count == 1, 10, "a worker")
            t0 = time.monotonic()
            s.stop(timeout=10)
            self.assertLess(time.monotonic() - t0, PROMPT)
        finally:
            c.close()
        self.assertEqual(s.worker_count, 0)
        self.assertFalse([e for e in s.errors if isinstance(e, HandlerTimeout)])


class HandlerWrappedTLSStopTest(unittest.TestCase):
    """test_imaplib's shape: the handler calls wrap_socket itself, then reads."""

    def test_stop_unblocks_a_handler_blocked_in_its_own_tls_socket(self) -> None:
        server_ctx, client_ctx = localhost_contexts()
        reading = threading.Event()
        ended = threading.Event()

        def handler(req: StreamRequest) -> None:
            tls = server_ctx.wrap_socket(req.connection, server_side=True)
            try:
                reading.set()
                try:
                    tls.recv(100)  # the client never sends: blocks until stop()
                except OSError:
                    pass
            finally:
                tls.close()
                ended.set()

        s = TestTCPServer(("127.0.0.1", 0), handler, 0.5)
        s.start()
        raw = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        c = client_ctx.wrap_socket(raw, server_hostname="localhost")
        try:
            self.assertTrue(reading.wait(10))
            t0 = time.monotonic()
            s.stop(timeout=5)
            took = time.monotonic() - t0
        finally:
            c.close()
        self.assertLess(took, PROMPT)
        self.assertTrue(ended.is_set())
        self.assertEqual(s.errors, [])
        self.assertEqual(s.worker_count, 0)

    def test_handler_that_closed_its_socket_does_not_break_stop(self) -> None:
        # The handler closed its socket and then waits: stop() must not
        # shut down some other descriptor that took the freed number.
        release = threading.Event()

        def handler(req: StreamRequest) -> None:
            req.rfile.close()
            req.connection.close()
            release.wait(10)

        s = TestTCPServer(("127.0.0.1", 0), handler, 0.5)
        s.start()
        with socket.create_connection(("127.0.0.1", s.port), timeout=10):
            s.wait_for(lambda: s.worker_count == 1, 10, "a worker")
            a, b = socket.socketpair()  # may reuse the handler's descriptor number
            try:
                threading.Timer(0.2, release.set).start()
                s.stop(timeout=5)
                a.sendall(b"still usable")
                self.assertEqual(b.recv(100), b"still usable")
            finally:
                a.close()
                b.close()
        self.assertEqual(s.worker_count, 0)


class _Custom(BaseException):
    pass


class HandlerBaseExceptionTest(unittest.TestCase):
    def _run(self, exc: BaseException) -> tuple[TestTCPServer, str, bytes]:
        def handler(req: StreamRequest) -> None:
            req.rfile.readline()
            raise exc

        err = io.StringIO()
        s = TestTCPServer(("127.0.0.1", 0), handler, 0.5)
        with contextlib.redirect_stderr(err):
            s.start()
            try:
                with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
                    c.sendall(b"go\n")
                    got = _read_all(c)  # the worker closed the connection
                s.wait_for(lambda: s.errors, 10, "the handler's error")
            finally:
                s.stop(timeout=5)
        return s, err.getvalue(), got

    def test_base_exceptions_are_recorded_reported_and_end_the_worker(self) -> None:
        for exc in (SystemExit(3), KeyboardInterrupt(), _Custom("custom")):
            with self.subTest(type(exc).__name__):
                s, stderr, got = self._run(exc)
                self.assertEqual(got, b"")
                self.assertEqual(s.errors, [exc])
                self.assertIn(type(exc).__name__, stderr)
                self.assertEqual(s.worker_count, 0)


if __name__ == "__main__":
    unittest.main()
