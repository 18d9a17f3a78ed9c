"""Stream servers run socketserver request handler classes, hooks included.

What each test proves:

* ``TCPServer``, ``TestTCPServer`` and ``UnixStreamServer`` accept a
  ``socketserver.StreamRequestHandler`` / ``BaseRequestHandler`` subclass
  (positionally or as ``handler_class=``) and call it as socketserver does,
  ``RequestHandlerClass(request, client_address, server)``, on a worker
  thread, with ``server.RequestHandlerClass`` set;
* socketserver's hooks, overridden on the server, are honoured:
  ``verify_request`` (refuses), ``handle_error(request, client_address)``
  (called inside the except block: bare ``raise`` re-raises; chaining to
  the base records), ``shutdown_request``, ``get_request`` (runs on a
  worker thread, never on the reactor: a ``get_request`` that blocks does
  not stall other servers; an ``OSError`` from it goes to ``tls_errors``);
* ``server_close()`` from a worker while serving stops accepting without
  closing a socket under the reactor; ``stop()`` still unblocks and joins
  handler-class workers.

The servers never import socketserver; only the handler base classes come
from it, as in CPython's own tests.
"""

from __future__ import annotations

import contextlib
import io
import socket
import socketserver
import ssl
import sys
import threading
import unittest
from typing import Any

from protocols import TCPServer, TestTCPServer, UnixStreamServer, localhost_contexts

#: Generous bound for what should be immediate on a noisy 2-core box.
PROMPT = 5.0


class Upper(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.server.seen.append((type(self.server), self.client_address))  # type: ignore[attr-defined]
        self.wfile.write(self.rfile.readline().upper())


class RawEcho(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(self.request.recv(100))


class Boom(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        raise ValueError("boom from the handler")


def _talk(addr: Any, data: bytes = b"hi\n", family: int = socket.AF_INET) -> bytes:
    with socket.socket(family, socket.SOCK_STREAM) as c:
        c.settimeout(PROMPT)
        c.connect(addr)
        c.sendall(data)
        got = b""
        try:
            while chunk := c.recv(4096):
                got += chunk
        except ConnectionResetError:
            pass  # a refused TLS client hello may be answered with a reset
        return got


class HandlerClassTest(unittest.TestCase):
    def test_stream_request_handler_on_every_stream_server(self) -> None:
        for make in (
            lambda: TCPServer(None, Upper),
            lambda: TCPServer(handler_class=Upper),
            lambda: TestTCPServer(("127.0.0.1", 0), Upper, 0.5),
            lambda: UnixStreamServer(handler_class=Upper),
        ):
            with self.subTest(), make() as srv:
                srv.seen = []  # type: ignore[attr-defined]
                self.assertIs(srv.RequestHandlerClass, Upper)
                self.assertIsNone(srv.handler)
                got = _talk(srv.server_address, b"hello\n", srv.family)
                self.assertEqual(got, b"HELLO\n")
                self.assertEqual(srv.seen[0][0], type(srv))  # type: ignore[attr-defined]
                self.assertEqual(srv.errors, [])

    def test_base_request_handler_gets_the_socket(self) -> None:
        with TCPServer(handler_class=RawEcho) as srv:
            self.assertEqual(_talk(srv.server_address, b"raw"), b"raw")

    def test_function_and_class_are_exclusive(self) -> None:
        with self.assertRaises(TypeError):
            TCPServer(None, lambda r: None, handler_class=Upper)
        with self.assertRaises(TypeError):
            TCPServer(handler_class=Upper, on_data=lambda c, d: None)

    def test_stop_unblocks_a_handler_class_in_read(self) -> None:
        reading = threading.Event()

        class Reader(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                reading.set()
                self.rfile.read()  # until EOF: stop() shuts the socket for reading

        srv = TCPServer(handler_class=Reader)
        srv.start()
        with socket.create_connection(srv.server_address, timeout=PROMPT):
            self.assertTrue(reading.wait(PROMPT))
            srv.stop(timeout=PROMPT)
        self.assertEqual(srv.worker_count, 0)
        self.assertEqual(srv.errors, [])


class HooksTest(unittest.TestCase):
    def test_verify_request_false_refuses_without_calling_the_handler(self) -> None:
        calls: list[Any] = []

        class Picky(TCPServer):
            def verify_request(self, request: Any, client_address: Any) -> bool:
                calls.append((request.fileno() >= 0, client_address))
                return False

        with Picky(handler_class=Boom) as srv:
            self.assertEqual(_talk(srv.server_address), b"")
        self.assertEqual(len(calls), 1)
        self.assertTrue(calls[0][0])
        self.assertEqual(srv.errors, [])

    def test_handle_error_override_reraising_is_recorded_once(self) -> None:
        seen: list[Any] = []

        class Reraise(TCPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:  # type: ignore[override]
                seen.append((isinstance(request, socket.socket), client_address, sys.exc_info()[1]))
                self.close_request(request)
                raise

        with contextlib.redirect_stderr(io.StringIO()), Reraise(handler_class=Boom) as srv:
            self.assertEqual(_talk(srv.server_address), b"")
            srv.wait_for(lambda: srv.errors, PROMPT)
        self.assertEqual(len(seen), 1)
        self.assertTrue(seen[0][0])
        self.assertEqual(seen[0][1][0], "127.0.0.1")
        self.assertIsInstance(seen[0][2], ValueError)
        self.assertEqual([type(e) for e in srv.errors], [ValueError])

    def test_handle_error_override_that_returns_is_recorded_silently(self) -> None:
        class Quiet(TCPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:  # type: ignore[override]
                pass

        err = io.StringIO()
        with contextlib.redirect_stderr(err), Quiet(handler_class=Boom) as srv:
            _talk(srv.server_address)
            srv.wait_for(lambda: srv.errors, PROMPT)
        self.assertEqual([type(e) for e in srv.errors], [ValueError])
        self.assertEqual(err.getvalue(), "")

    def test_handle_error_chaining_to_the_base_records_the_exception(self) -> None:
        class Chained(TCPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:  # type: ignore[override]
                super().handle_error(request, client_address)

        with contextlib.redirect_stderr(io.StringIO()), Chained(handler_class=Boom) as srv:
            _talk(srv.server_address)
            srv.wait_for(lambda: srv.errors, PROMPT)
        self.assertEqual([type(e) for e in srv.errors], [ValueError])
        self.assertIn("boom", str(srv.errors[0]))

    def test_shutdown_request_override_gets_the_request(self) -> None:
        shut: list[Any] = []

        class Tracking(TCPServer):
            def shutdown_request(self, request: Any) -> None:
                shut.append(request)
                super().shutdown_request(request)

        with Tracking(handler_class=RawEcho) as srv:
            self.assertEqual(_talk(srv.server_address, b"x"), b"x")
            srv.wait_for(lambda: srv.worker_count == 0 or None, PROMPT)
        self.assertEqual(len(shut), 1)
        self.assertIsInstance(shut[0], socket.socket)

    def test_get_request_override_wraps_tls_off_the_reactor(self) -> None:
        server_ctx, client_ctx = localhost_contexts()
        entered, release = threading.Event(), threading.Event()

        class Secure(TCPServer):
            def get_request(self) -> tuple[socket.socket, Any]:
                entered.set()
                release.wait(PROMPT)
                assert self.socket is not None
                sock, addr = self.socket.accept()
                return server_ctx.wrap_socket(sock, server_side=True), addr

        with Secure(handler_class=Upper) as srv, TCPServer(handler_class=RawEcho) as other:
            srv.seen = []  # type: ignore[attr-defined]
            raw = socket.create_connection(srv.server_address, timeout=PROMPT)
            self.assertTrue(entered.wait(PROMPT))
            # get_request() is blocked on a worker: the reactor still serves.
            self.assertEqual(_talk(other.server_address, b"ping"), b"ping")
            release.set()
            with client_ctx.wrap_socket(raw, server_hostname="localhost") as c:
                c.sendall(b"secret\n")
                self.assertEqual(c.recv(100), b"SECRET\n")
            # The listener is watched again after get_request() returned.
            entered.clear()
            raw2 = socket.create_connection(srv.server_address, timeout=PROMPT)
            with client_ctx.wrap_socket(raw2, server_hostname="localhost") as c:
                c.sendall(b"again\n")
                self.assertEqual(c.recv(100), b"AGAIN\n")
        self.assertEqual(srv.errors, [])

    def test_get_request_oserror_goes_to_tls_errors(self) -> None:
        server_ctx, _ = localhost_contexts()

        class Secure(TCPServer):
            def get_request(self) -> tuple[socket.socket, Any]:
                assert self.socket is not None
                sock, addr = self.socket.accept()
                with contextlib.ExitStack() as on_error:
                    on_error.callback(sock.close)
                    tls = server_ctx.wrap_socket(sock, server_side=True)
                    on_error.pop_all()
                return tls, addr

        with Secure(handler_class=Upper) as srv:
            self.assertEqual(_talk(srv.server_address, b"not a client hello\r\n\r\n"), b"")
            srv.wait_for(lambda: srv.tls_errors, PROMPT)
        self.assertIsInstance(srv.tls_errors[0], ssl.SSLError)
        self.assertEqual(srv.errors, [])

    def test_server_close_from_a_worker_stops_accepting(self) -> None:
        closed = threading.Event()

        class CloseOnError(TCPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:  # type: ignore[override]
                self.close_request(request)
                self.server_close()
                closed.set()
                raise

        with contextlib.redirect_stderr(io.StringIO()):
            srv = CloseOnError(handler_class=Boom)
            srv.start()
            addr = srv.server_address
            _talk(addr)
            self.assertTrue(closed.wait(PROMPT))
            srv.wait_for(lambda: srv.socket is None or None, PROMPT)
            with self.assertRaises(ConnectionRefusedError):
                _talk(addr)
            srv.stop(timeout=PROMPT)
        self.assertEqual([type(e) for e in srv.errors], [ValueError])


if __name__ == "__main__":
    unittest.main()
