"""TLS on the reactor's stream transport: non-blocking, and broken clients are harmless."""

from __future__ import annotations

import socket
import ssl
import time
import unittest

from protocols import TCPServer
from protocols._tls import localhost_contexts


class TLSStreamTest(unittest.TestCase):
    def setUp(self) -> None:
        self.server_ctx, self.client_ctx = localhost_contexts()

    def _tls_client(self, port: int) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        return self.client_ctx.wrap_socket(raw, server_hostname="localhost")

    def test_tls_echo_large_payload(self) -> None:
        payload = bytes(range(256)) * 8192  # 2 MiB, many TLS records
        with TCPServer(ssl_context=self.server_ctx, on_data=lambda c, d: c.write(d)) as s:
            with self._tls_client(s.port) as c:
                self.assertEqual(c.version()[:3], "TLS")  # type: ignore[index]
                # One SSLSocket must not be used by two threads at once, so
                # send 64 KiB and read its echo back, chunk after chunk.
                got = bytearray()
                for start in range(0, len(payload), 65536):
                    c.sendall(payload[start : start + 65536])
                    while len(got) < start + 65536:
                        chunk = c.recv(65536)
                        if not chunk:
                            break
                        got += chunk
            self.assertEqual(bytes(got), payload)
            self.assertEqual(s.tls_errors, [])

    def test_broken_and_silent_tls_clients_do_not_stall_others(self) -> None:
        with TCPServer(ssl_context=self.server_ctx, on_data=lambda c, d: c.write(d)) as s:
            # A client speaking plaintext to the TLS port.
            with socket.create_connection(s.server_address, timeout=5) as plain:
                plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                plain.recv(100)  # an alert, or EOF: either way it ends
            # A client that connects and never sends a ClientHello.
            silent = [socket.create_connection(s.server_address) for _ in range(20)]
            # A client that does not trust the certificate.
            strict = ssl.create_default_context()
            with socket.create_connection(s.server_address, timeout=5) as raw:
                with self.assertRaises(ssl.SSLError):
                    strict.wrap_socket(raw, server_hostname="localhost")
            t0 = time.monotonic()
            with self._tls_client(s.port) as good:
                good.sendall(b"ok")
                self.assertEqual(good.recv(10), b"ok")
            self.assertLess(time.monotonic() - t0, 5)
            s.wait_for(lambda: len(s.tls_errors) >= 2, 5, "two TLS errors")
            for c in silent:
                c.close()
        self.assertEqual(s.errors, [])

    def test_stop_with_a_handshake_in_progress(self) -> None:
        s = TCPServer(ssl_context=self.server_ctx)
        s.start()
        raw = socket.create_connection(s.server_address)
        raw.sendall(b"\x16\x03\x01\x00")  # the start of a ClientHello, no more
        t0 = time.perf_counter()
        s.stop()
        self.assertLess(time.perf_counter() - t0, 2)
        raw.close()


if __name__ == "__main__":
    unittest.main()


class TLSHandshakeTimeoutTest(unittest.TestCase):
    """A client silent mid-handshake is dropped after the configured timeout, and the
    record says that timeout (it said "30.0 s" whatever the timer was)."""

    def setUp(self) -> None:
        self.server_ctx, _ = localhost_contexts()

    def _silent_client_error(self, server: TCPServer) -> tuple[float, BaseException]:
        with socket.create_connection(server.server_address, timeout=5) as silent:
            t0 = time.monotonic()
            server.wait_for(lambda: server.tls_errors, 5, "a TLS handshake timeout")
            elapsed = time.monotonic() - t0
            silent.settimeout(5)
            self.assertEqual(silent.recv(10), b"")  # dropped
        return elapsed, server.tls_errors[0]

    def test_reactor_side_record_states_the_configured_timeout(self) -> None:
        with TCPServer(
            ssl_context=self.server_ctx, on_data=lambda c, d: None, tls_handshake_timeout=0.25
        ) as s:
            self.assertEqual(s.tls_handshake_timeout, 0.25)
            elapsed, exc = self._silent_client_error(s)
        self.assertIsInstance(exc, TimeoutError)
        self.assertEqual(str(exc), "TLS handshake not done in 0.25 s")
        self.assertLess(elapsed, 4)

    def test_module_default_is_what_the_record_states(self) -> None:
        from unittest import mock

        import reactor._tls

        with mock.patch.object(reactor._tls, "TLS_HANDSHAKE_TIMEOUT", 0.3):
            with TCPServer(ssl_context=self.server_ctx, on_data=lambda c, d: None) as s:
                _, exc = self._silent_client_error(s)
        self.assertEqual(str(exc), "TLS handshake not done in 0.3 s")

    def test_blocking_handler_server_uses_and_states_the_configured_timeout(self) -> None:
        called = []
        with TCPServer(
            ssl_context=self.server_ctx, handler=called.append, tls_handshake_timeout=0.25
        ) as s:
            elapsed, exc = self._silent_client_error(s)
        self.assertIsInstance(exc, TimeoutError)
        self.assertEqual(str(exc), "TLS handshake not done in 0.25 s")
        self.assertLess(elapsed, 4)
        self.assertEqual(called, [])

    def test_default_is_the_module_constant(self) -> None:
        import reactor

        with TCPServer(ssl_context=self.server_ctx, on_data=lambda c, d: None) as s:
            self.assertEqual(s.tls_handshake_timeout, reactor.TLS_HANDSHAKE_TIMEOUT)

    def test_a_timeout_that_is_not_positive_is_refused(self) -> None:
        from reactor import InvalidArgumentError

        for bad in (0, -1.0):
            with self.assertRaises(InvalidArgumentError):
                TCPServer(ssl_context=self.server_ctx, tls_handshake_timeout=bad)

    def test_a_timeout_that_is_not_a_finite_number_is_refused(self) -> None:
        # float("inf") or 1e300 were taken: the first TLS client's handshake
        # timer then killed the reactor thread (select() OverflowError), every
        # server of the process with it; "5" raised TypeError, True meant 1 s.
        from reactor import InvalidArgumentError

        for bad in (float("inf"), float("nan"), 1e300, 1e10, True, "5", [1]):
            with self.subTest(bad=bad), self.assertRaises(InvalidArgumentError):
                TCPServer(ssl_context=self.server_ctx, tls_handshake_timeout=bad)
        with TCPServer(ssl_context=self.server_ctx, tls_handshake_timeout=86400) as s:
            self.assertEqual(s.tls_handshake_timeout, 86400)
