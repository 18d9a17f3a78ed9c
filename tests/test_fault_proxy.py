"""FaultProxy: bytes copied both ways unchanged (TLS too), faults on the client side,
back-pressure both directions, half-close and reset forwarded."""

from __future__ import annotations

import http.client
import socket
import time
import unittest

from protocols import (
    UPSTREAM,
    CloseAfter,
    FaultProxy,
    HTTPServer,
    Latency,
    Reset,
    TCPServer,
    TestTCPServer,
    UnixStreamServer,
    localhost_contexts,
)


def echo(conn, data: bytes) -> None:  # type: ignore[no-untyped-def]
    conn.write(data)


def connect(addr, timeout: float = 5.0) -> socket.socket:  # type: ignore[no-untyped-def]
    if isinstance(addr, str):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(addr)
        return s
    return socket.create_connection(addr, timeout=timeout)


def read_until_eof(s: socket.socket) -> bytes:
    out = bytearray()
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return bytes(out)
        out += chunk


class ProxyTest(unittest.TestCase):
    def test_http_through_the_proxy(self) -> None:
        with HTTPServer(handler=lambda r: f"hi {r.path}") as srv, \
                FaultProxy(srv.server_address) as proxy:
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
            for i in range(3):  # keep-alive through the proxy
                conn.request("GET", f"/{i}")
                self.assertEqual(conn.getresponse().read(), f"hi /{i}".encode())
            conn.close()

    def test_tls_passes_through_untouched(self) -> None:
        server_ctx, client_ctx = localhost_contexts()
        with HTTPServer(ssl_context=server_ctx, handler=lambda r: b"secret") as srv, \
                FaultProxy(srv.server_address) as proxy:
            proxy.faults.add(Latency(0.05))
            conn = http.client.HTTPSConnection("localhost", proxy.port, timeout=5,
                                               context=client_ctx)
            conn.request("GET", "/")
            self.assertEqual(conn.getresponse().read(), b"secret")
            conn.close()
            self.assertEqual(len(srv.requests), 1)

    def test_latency_and_records_on_the_proxy(self) -> None:
        with TCPServer(on_data=echo) as srv, FaultProxy(srv.server_address) as proxy:
            proxy.faults.add(Latency(0.3))
            with connect(proxy.address) as s:
                t0 = time.monotonic()
                s.sendall(b"ping")
                self.assertEqual(s.recv(10), b"ping")
                self.assertGreaterEqual(time.monotonic() - t0, 0.29)
            [rec] = proxy.faults.records
            self.assertEqual(rec.name, "latency")
            proxy.wait_for(lambda: rec.bytes == 4, timeout=5)

    def test_reset_through_the_proxy(self) -> None:
        with TCPServer(on_data=lambda c, d: c.write(b"z" * 100)) as srv, \
                FaultProxy(srv.server_address) as proxy:
            proxy.faults.add(Reset(after_bytes=10))
            with connect(proxy.address) as s:
                s.sendall(b"go")  # the answer (and the reset) come after the connect
                got = bytearray()
                with self.assertRaises(ConnectionResetError):
                    while True:
                        chunk = s.recv(100)
                        if not chunk:
                            break
                        got += chunk
            self.assertEqual(bytes(got), b"z" * 10)
            srv.wait_for_streams(1, timeout=5)  # the upstream side was closed too

    def test_upstream_fault_cuts_what_the_server_receives(self) -> None:
        with TCPServer() as srv, FaultProxy(srv.server_address) as proxy:
            proxy.faults.add(CloseAfter(4), direction=UPSTREAM)
            with connect(proxy.address) as s:
                s.sendall(b"abcdefgh")
                self.assertEqual(read_until_eof(s), b"")
            [stream] = srv.wait_for_streams(1, timeout=5)
            self.assertEqual(bytes(stream.data), b"abcd")

    def test_in_front_of_a_blocking_handler_server(self) -> None:
        def handler(request):  # type: ignore[no-untyped-def]
            request.wfile.write(b"0123456789")

        srv = TestTCPServer(("127.0.0.1", 0), handler)
        srv.start()
        try:
            with FaultProxy(srv.server_address) as proxy:
                proxy.faults.add(CloseAfter(3))
                with connect(proxy.address) as s:
                    self.assertEqual(read_until_eof(s), b"012")
        finally:
            srv.stop()

    def test_unix_proxy_in_front_of_tcp_and_tcp_in_front_of_unix(self) -> None:
        with TCPServer(on_data=echo) as tcp, FaultProxy(tcp.server_address,
                                                         addr=None) as p1:
            with UnixStreamServer(on_data=echo) as unix, FaultProxy(unix.server_address) as p2:
                import os
                import tempfile

                d = tempfile.mkdtemp(prefix="ts-")
                path = os.path.join(d, "p")
                try:
                    with FaultProxy(p1.address, addr=path) as p3:
                        with connect(p3.address) as s:
                            s.sendall(b"via unix")
                            self.assertEqual(s.recv(20), b"via unix")
                finally:
                    os.rmdir(d)
                with connect(p2.address) as s:
                    s.sendall(b"to unix")
                    self.assertEqual(s.recv(20), b"to unix")

    def test_half_close_is_forwarded(self) -> None:
        with TCPServer() as srv, FaultProxy(srv.server_address) as proxy:
            with connect(proxy.address) as s:
                s.sendall(b"done")
                s.shutdown(socket.SHUT_WR)
                [stream] = srv.wait_for_streams(1, timeout=5)  # the server saw EOF and closed
                self.assertEqual(read_until_eof(s), b"")
            self.assertEqual(bytes(stream.data), b"done")

    def test_refused_upstream_closes_the_client_and_is_recorded(self) -> None:
        s0 = socket.socket()
        s0.bind(("127.0.0.1", 0))
        dead = s0.getsockname()
        s0.close()
        with FaultProxy(dead) as proxy:
            with connect(proxy.address) as s:
                try:
                    self.assertEqual(s.recv(10), b"")
                except ConnectionResetError:
                    pass
            proxy.wait_for(lambda: proxy.connect_errors, timeout=5)
            self.assertIsInstance(proxy.connect_errors[0], ConnectionRefusedError)

    def test_back_pressure_a_client_that_does_not_read_stops_the_upstream_reads(self) -> None:
        total = 64 * 1024 * 1024
        chunk = b"x" * (1024 * 1024)
        sent = [0]

        def push(conn):  # type: ignore[no-untyped-def]
            t = conn.transport

            def more() -> None:
                # Keep the upstream server's buffer topped up, never above 8 MiB.
                while sent[0] < total and t.get_write_buffer_size() < 8 * len(chunk):
                    t.write(chunk)
                    sent[0] += len(chunk)
                if sent[0] < total and not t.is_closing():
                    t.reactor.call_later(0.01, more)

            more()

        with TCPServer(on_connect=push) as srv, FaultProxy(srv.server_address) as proxy:
            with connect(proxy.address) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
                first = s.recv(65536)
                self.assertTrue(first)
                deadline = time.monotonic() + 1.0
                held = 0
                while time.monotonic() < deadline:
                    held = max(held, proxy._loop.run_sync(  # type: ignore[union-attr]
                        lambda: sum(t.get_write_buffer_size() for t in
                                    list(proxy._transports) + list(proxy._upstreams))))
                    time.sleep(0.05)
                # The proxy holds at most about one high-water mark plus a read.
                self.assertLess(held, 16 * 1024 * 1024)
                self.assertLess(sent[0], total)  # the upstream was held back too
                # And once the client reads, everything arrives.
                got = len(first)
                s.settimeout(30)
                while got < total:
                    n = len(s.recv(1 << 20))
                    self.assertGreater(n, 0)
                    got += n
            self.assertEqual(got, total)


if __name__ == "__main__":
    unittest.main()
