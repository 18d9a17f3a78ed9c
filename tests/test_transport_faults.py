"""Transport faults on stream servers, observed by real clients.

Every fault is installed with ``server.faults.add(...)`` and checked from
the client side (raw sockets, http.client, smtplib): what it received,
when, and how the connection ended; and on the server's fault records.
"""

from __future__ import annotations

import http.client
import smtplib
import socket
import ssl
import threading
import time
import unittest

from protocols import (
    UPSTREAM,
    Bandwidth,
    BlackHole,
    CloseAfter,
    HalfClose,
    HTTPServer,
    Latency,
    Reset,
    Slicer,
    SlowClose,
    SMTPServer,
    TCPServer,
    UnixStreamServer,
    UsageError,
    localhost_contexts,
)
from reactor import InvalidArgumentError


def echo(conn, data: bytes) -> None:  # type: ignore[no-untyped-def]
    conn.write(data)


def connect(server, timeout: float = 5.0) -> socket.socket:  # type: ignore[no-untyped-def]
    if isinstance(server.server_address, str):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(server.server_address)
        return s
    return socket.create_connection(server.server_address, timeout=timeout)


def read_until_eof(s: socket.socket, limit: int = 10_000_000) -> bytes:
    out = bytearray()
    while len(out) < limit:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    return bytes(out)


class LatencyTest(unittest.TestCase):
    def test_downstream_latency_delays_the_echo_and_is_recorded(self) -> None:
        with TCPServer(on_data=echo) as srv:
            rule = srv.faults.add(Latency(0.3))
            with connect(srv) as s:
                t0 = time.monotonic()
                s.sendall(b"hello")
                self.assertEqual(s.recv(100), b"hello")
                self.assertGreaterEqual(time.monotonic() - t0, 0.29)
                rule.remove()
                t0 = time.monotonic()
                s.sendall(b"again")
                self.assertEqual(s.recv(100), b"again")
                self.assertLess(time.monotonic() - t0, 0.25)
            [rec] = srv.faults.records
            self.assertEqual((rec.name, rec.direction, rec.connection),
                             ("latency", "downstream", 1))
            srv.wait_for(lambda: rec.bytes == 5, timeout=5)
            self.assertEqual(rule.records, [rec])

    def test_jitter_stays_within_its_bounds_and_keeps_order(self) -> None:
        with TCPServer(on_data=echo) as srv:
            srv.faults.add(Latency(0.2, jitter=0.1), seed=1)
            with connect(srv) as s:
                for i in range(3):
                    t0 = time.monotonic()
                    s.sendall(b"%d" % i)
                    self.assertEqual(s.recv(10), b"%d" % i)
                    took = time.monotonic() - t0
                    self.assertGreaterEqual(took, 0.095)
                    self.assertLess(took, 2.0)

    def test_upstream_latency_delays_what_the_server_receives(self) -> None:
        arrived: list[float] = []
        with TCPServer(on_data=lambda c, d: arrived.append(time.monotonic())) as srv:
            srv.faults.add(Latency(0.3), direction=UPSTREAM)
            with connect(srv) as s:
                t0 = time.monotonic()
                s.sendall(b"ping")
                srv.wait_for_data(b"ping", timeout=5)
            self.assertGreaterEqual(arrived[0] - t0, 0.29)
            srv.wait_for_streams(1, timeout=5)  # the EOF came through behind the data

    def test_upstream_latency_holds_bounded_bytes_and_delivers_all(self) -> None:
        from reactor import FAULT_HOLD_LIMIT, READ_CHUNK

        total = 8 * 1024 * 1024
        with TCPServer(record=False, on_data=lambda c, d: None) as srv:
            srv.faults.add(Latency(0.3), direction=UPSTREAM)
            loop = srv._loop
            assert loop is not None
            with connect(srv, timeout=30) as s:
                sender = threading.Thread(target=s.sendall, args=(b"u" * total,), daemon=True)
                sender.start()
                held = 0
                deadline = time.monotonic() + 0.6
                while time.monotonic() < deadline:
                    held = max(held, loop.run_sync(lambda: sum(
                        len(t._faults.up_buf) for t in srv._transports if t._faults)))
                    time.sleep(0.02)
                self.assertGreater(held, 0)
                self.assertLessEqual(held, FAULT_HOLD_LIMIT + READ_CHUNK)
                sender.join(30)
                self.assertFalse(sender.is_alive())
                [rec] = srv.faults.records
                srv.wait_for(lambda: rec.bytes == total, timeout=30)

    def test_http_client_times_out_behind_latency_then_succeeds_without(self) -> None:
        with HTTPServer() as srv:
            rule = srv.faults.add(Latency(2.0))
            conn = http.client.HTTPConnection(srv.url_host, srv.port, timeout=0.3)
            with self.assertRaises(TimeoutError):
                conn.request("GET", "/")
                conn.getresponse()
            conn.close()
            rule.remove()
            conn = http.client.HTTPConnection(srv.url_host, srv.port, timeout=5)
            conn.request("GET", "/")
            self.assertEqual(conn.getresponse().status, 200)
            conn.close()

    def test_https_goes_through_latency_and_bandwidth(self) -> None:
        server_ctx, client_ctx = localhost_contexts()
        with HTTPServer(ssl_context=server_ctx, handler=lambda r: b"y" * 20000) as srv:
            srv.faults.add(Latency(0.1))
            srv.faults.add(Bandwidth(200_000))
            conn = http.client.HTTPSConnection("localhost", srv.port, timeout=10,
                                               context=client_ctx)
            t0 = time.monotonic()
            conn.request("GET", "/")
            resp = conn.getresponse()
            self.assertEqual(resp.read(), b"y" * 20000)
            self.assertGreaterEqual(time.monotonic() - t0, 0.1)
            conn.close()


class BandwidthTest(unittest.TestCase):
    def test_downstream_rate_is_within_15_percent_of_the_cap(self) -> None:
        rate = 400_000
        payload = b"x" * 200_000
        with TCPServer(on_connect=lambda c: c.write(payload)) as srv:
            srv.faults.add(Bandwidth(rate))
            with connect(srv) as s:
                first = s.recv(65536)
                t0 = time.monotonic()
                got = len(first)
                while got < len(payload):
                    got += len(s.recv(65536))
                took = time.monotonic() - t0
            measured = (len(payload) - len(first)) / took
            self.assertLess(abs(measured - rate) / rate, 0.15, measured)
            [rec] = srv.faults.records
            srv.wait_for(lambda: rec.bytes == len(payload), timeout=5)

    def test_upstream_cap_slows_the_sender(self) -> None:
        with TCPServer() as srv:
            srv.faults.add(Bandwidth(100_000), direction=UPSTREAM)
            with connect(srv) as s:
                t0 = time.monotonic()
                s.sendall(b"z" * 50_000)
                s.shutdown(socket.SHUT_WR)
                [stream] = srv.wait_for_streams(1, timeout=10)
                took = time.monotonic() - t0
            self.assertEqual(stream.received, 50_000)
            self.assertGreaterEqual(took, 0.35)


class SlicerTest(unittest.TestCase):
    def test_pieces_arrive_one_by_one_with_the_delay_between(self) -> None:
        with TCPServer(on_connect=lambda c: c.write(b"0123456789" * 4)) as srv:
            srv.faults.add(Slicer(10, delay=0.1))
            with connect(srv) as s:
                t0 = time.monotonic()
                pieces = []
                while sum(map(len, pieces)) < 40:
                    pieces.append(s.recv(100))
                took = time.monotonic() - t0
            self.assertTrue(all(len(p) <= 10 for p in pieces), pieces)
            self.assertGreaterEqual(len(pieces), 4)
            self.assertGreaterEqual(took, 0.29)

    def test_upstream_slicer_delivers_pieces(self) -> None:
        chunks: list[bytes] = []
        with TCPServer(on_data=lambda c, d: chunks.append(d)) as srv:
            srv.faults.add(Slicer(3, delay=0.01), direction=UPSTREAM)
            with connect(srv) as s:
                s.sendall(b"abcdefgh")
                srv.wait_for_data(b"abcdefgh", timeout=5)
            self.assertEqual(chunks, [b"abc", b"def", b"gh"])


class SlowCloseTest(unittest.TestCase):
    def test_the_close_comes_late(self) -> None:
        def reply_and_close(conn, data):  # type: ignore[no-untyped-def]
            conn.write(b"bye")
            conn.close()

        with TCPServer(on_data=reply_and_close) as srv:
            srv.faults.add(SlowClose(0.4))
            with connect(srv) as s:
                s.sendall(b"x")
                self.assertEqual(s.recv(10), b"bye")
                t0 = time.monotonic()
                self.assertEqual(s.recv(10), b"")
                self.assertGreaterEqual(time.monotonic() - t0, 0.3)
            [rec] = srv.faults.wait_for_records(1, action="slow-close")
            self.assertEqual(rec.name, "slow-close")


class BlackHoleTest(unittest.TestCase):
    def test_downstream_black_hole_times_the_client_out_until_removed(self) -> None:
        with TCPServer(on_data=echo) as srv:
            rule = srv.faults.add(BlackHole())
            with connect(srv, timeout=0.3) as s:
                s.sendall(b"anyone?")
                with self.assertRaises(TimeoutError):
                    s.recv(10)
                rule.remove()  # the held bytes go out now
                s.settimeout(5)
                self.assertEqual(s.recv(10), b"anyone?")

    def test_upstream_black_hole_swallows_what_the_client_sends(self) -> None:
        with TCPServer(on_data=echo) as srv:
            srv.faults.add(BlackHole(), direction=UPSTREAM)
            with connect(srv, timeout=0.3) as s:
                s.sendall(b"lost")
                with self.assertRaises(TimeoutError):
                    s.recv(10)
                [rec] = srv.faults.wait_for_records(1)
                srv.wait_for(lambda: rec.bytes == 4, timeout=5)
            self.assertEqual(bytes(srv.streams[0].data), b"")

    def test_black_hole_timeout_closes_the_connection(self) -> None:
        with TCPServer(on_data=echo) as srv:
            srv.faults.add(BlackHole(timeout=0.3))
            with connect(srv) as s:
                t0 = time.monotonic()
                s.sendall(b"x")
                try:
                    self.assertEqual(s.recv(10), b"")
                except ConnectionResetError:
                    pass
                self.assertGreaterEqual(time.monotonic() - t0, 0.25)
            srv.faults.wait_for_records(1, action="timeout")


class ResetAndCloseTest(unittest.TestCase):
    def test_reset_after_bytes(self) -> None:
        with TCPServer(on_data=echo) as srv:
            srv.faults.add(Reset(after_bytes=3))
            with connect(srv) as s:
                s.sendall(b"abcdef")
                got = bytearray()
                with self.assertRaises(ConnectionResetError):
                    while True:
                        chunk = s.recv(100)
                        if not chunk:
                            break
                        got += chunk
            self.assertEqual(bytes(got), b"abc")
            [rec] = srv.faults.wait_for_records(1, action="reset")
            self.assertEqual(rec.bytes, 3)

    def test_reset_after_seconds(self) -> None:
        with TCPServer(on_data=echo) as srv:
            srv.faults.add(Reset(after_seconds=0.3))
            with connect(srv) as s:
                s.sendall(b"a")
                self.assertEqual(s.recv(10), b"a")
                t0 = time.monotonic()
                with self.assertRaises(ConnectionResetError):
                    s.recv(10)
                self.assertGreaterEqual(time.monotonic() - t0, 0.2)

    def test_upstream_reset_after_bytes(self) -> None:
        with TCPServer() as srv:
            srv.faults.add(Reset(after_bytes=5), direction=UPSTREAM)
            with connect(srv) as s:
                s.sendall(b"0123456789")
                with self.assertRaises(ConnectionResetError):
                    s.recv(10)
                [stream] = srv.wait_for_streams(1, timeout=5)
            self.assertEqual(bytes(stream.data), b"01234")

    def test_close_after_bytes_gives_a_short_read_and_eof(self) -> None:
        with TCPServer(on_connect=lambda c: c.write(b"x" * 1000)) as srv:
            srv.faults.add(CloseAfter(100))
            with connect(srv) as s:
                self.assertEqual(read_until_eof(s), b"x" * 100)

    def test_close_after_on_a_unix_stream_server(self) -> None:
        with UnixStreamServer(on_connect=lambda c: c.write(b"y" * 50)) as srv:
            srv.faults.add(CloseAfter(7))
            with connect(srv) as s:
                self.assertEqual(read_until_eof(s), b"y" * 7)


class HalfCloseTest(unittest.TestCase):
    def test_downstream_half_close_client_reads_eof_but_can_still_send(self) -> None:
        with TCPServer(on_connect=lambda c: c.write(b"hello world")) as srv:
            srv.faults.add(HalfClose(after_bytes=5))
            with connect(srv) as s:
                self.assertEqual(read_until_eof(s), b"hello")
                s.sendall(b"still here")
                srv.wait_for_data(b"still here", timeout=5)

    def test_upstream_half_close_server_sees_eof(self) -> None:
        with TCPServer() as srv:
            srv.faults.add(HalfClose(after_bytes=4), direction=UPSTREAM)
            with connect(srv) as s:
                s.sendall(b"abcdefgh")
                self.assertEqual(read_until_eof(s), b"")  # the server then closed
                [stream] = srv.wait_for_streams(1, timeout=5)
            self.assertEqual(bytes(stream.data), b"abcd")


class SelectionTest(unittest.TestCase):
    def _hit(self, srv, count: int) -> list[int]:  # type: ignore[no-untyped-def]
        """Open ``count`` connections one by one; the numbers that got the reset."""
        hit = []
        for i in range(1, count + 1):
            try:
                with connect(srv) as s:
                    s.sendall(b"ab")
                    data = s.recv(10)
            except (ConnectionResetError, BrokenPipeError):
                data = None
                if data != b"ab":
                    hit.append(i)
        return hit

    def test_first_n(self) -> None:
        with TCPServer(on_data=echo) as srv:
            srv.faults.add(Reset(after_bytes=0), first=2)
            self.assertEqual(self._hit(srv, 4), [1, 2])

    def test_every_kth(self) -> None:
        with TCPServer(on_data=echo) as srv:
            srv.faults.add(Reset(after_bytes=0), every=3)
            self.assertEqual(self._hit(srv, 7), [3, 6])

    def test_predicate(self) -> None:
        with TCPServer(on_data=echo) as srv:
            srv.faults.add(Reset(after_bytes=0), when=lambda info: info.number in (2, 3))
            self.assertEqual(self._hit(srv, 4), [2, 3])

    def test_seeded_probability_gives_the_same_sequence_twice(self) -> None:
        runs = []
        for _ in range(2):
            with TCPServer(on_data=echo) as srv:
                srv.faults.add(Reset(after_bytes=0), probability=0.5, seed=1234)
                runs.append(self._hit(srv, 12))
                self.assertEqual([r.connection for r in srv.faults.records], runs[-1])
        self.assertEqual(runs[0], runs[1])
        self.assertTrue(0 < len(runs[0]) < 12, runs[0])

    def test_rule_added_at_run_time_applies_to_an_open_connection(self) -> None:
        with TCPServer(on_data=echo) as srv:
            with connect(srv) as s:
                s.sendall(b"1")
                self.assertEqual(s.recv(10), b"1")
                with srv.faults.add(Latency(0.3)):
                    t0 = time.monotonic()
                    s.sendall(b"2")
                    self.assertEqual(s.recv(10), b"2")
                    self.assertGreaterEqual(time.monotonic() - t0, 0.29)
                t0 = time.monotonic()
                s.sendall(b"3")
                self.assertEqual(s.recv(10), b"3")
                self.assertLess(time.monotonic() - t0, 0.25)

    def test_add_from_another_thread_while_serving(self) -> None:
        with TCPServer(on_data=echo) as srv:
            rules = []
            t = threading.Thread(target=lambda: rules.append(srv.faults.add(CloseAfter(0))))
            t.start()
            t.join(5)
            with connect(srv) as s:
                self.assertEqual(read_until_eof(s), b"")
            self.assertEqual(srv.faults.rules, rules)


class ProtocolsTest(unittest.TestCase):
    def test_smtplib_sees_a_disconnect_when_the_greeting_is_cut(self) -> None:
        with SMTPServer() as srv:
            srv.faults.add(CloseAfter(4))
            with self.assertRaises(smtplib.SMTPServerDisconnected):
                client = smtplib.SMTP(srv.url_host, srv.port, timeout=5)
                client.ehlo()

    def test_smtplib_times_out_behind_a_black_hole(self) -> None:
        with SMTPServer() as srv:
            srv.faults.add(BlackHole(), first=1)
            with self.assertRaises((TimeoutError, smtplib.SMTPServerDisconnected)):
                smtplib.SMTP(srv.url_host, srv.port, timeout=0.3)
            with smtplib.SMTP(srv.url_host, srv.port, timeout=5) as client:  # the 2nd is fine
                client.sendmail("a@example.com", ["b@example.com"], "Subject: x\n\nhi")
            srv.wait_for_messages(1, timeout=5)

    def test_a_scripted_server_through_a_slicer_and_a_cut(self) -> None:
        import poplib

        from protocols import ScriptedServer

        class Greeter:
            def __init__(self, conn):  # type: ignore[no-untyped-def]
                self.conn = conn

            def on_frame(self, line):  # type: ignore[no-untyped-def]
                self.conn.push_line("+OK bye")
                self.conn.close_when_done()

        with ScriptedServer(script=Greeter, greeting=b"+OK ready to serve\r\n") as srv:
            srv.faults.add(Slicer(2, delay=0.005), first=1)
            client = poplib.POP3(*srv.server_address, timeout=5)
            self.assertEqual(client.getwelcome(), b"+OK ready to serve")
            client.quit()
            srv.faults.add(CloseAfter(6))  # the greeting cut short
            with connect(srv) as s:
                self.assertEqual(read_until_eof(s), b"+OK re")

    def test_https_reset_in_the_handshake(self) -> None:
        server_ctx, client_ctx = localhost_contexts()
        with HTTPServer(ssl_context=server_ctx) as srv:
            srv.faults.add(Reset(after_bytes=10))
            conn = http.client.HTTPSConnection("localhost", srv.port, timeout=5,
                                               context=client_ctx)
            with self.assertRaises((ConnectionResetError, ssl.SSLError)):
                conn.request("GET", "/")
                conn.getresponse()
            conn.close()


class ArgumentsTest(unittest.TestCase):
    def test_bad_values_are_refused(self) -> None:
        for make in (lambda: Latency(-1), lambda: Bandwidth(0), lambda: Slicer(0),
                     lambda: Reset(), lambda: CloseAfter(-1), lambda: SlowClose(float("inf"))):
            with self.assertRaises(InvalidArgumentError):
                make()
        srv = TCPServer()
        try:
            with self.assertRaises(InvalidArgumentError):
                srv.faults.add(SlowClose(1), direction=UPSTREAM)
            with self.assertRaises(InvalidArgumentError):
                srv.faults.add(Latency(1), direction="sideways")
            with self.assertRaises(InvalidArgumentError):
                srv.faults.add(Latency(1), probability=2)
            with self.assertRaises(InvalidArgumentError):
                srv.faults.add("latency")  # type: ignore[arg-type]
        finally:
            srv.stop()

    def test_blocking_handler_servers_refuse_transport_faults(self) -> None:
        srv = TCPServer(handler=lambda request: None)
        try:
            with self.assertRaises(UsageError):
                srv.faults.add(Latency(1))
        finally:
            srv.stop()



class BenchBaselineTest(unittest.TestCase):
    """``python -m bench faults`` compares against the transport with its fault
    hooks stripped from the source at run time: that must keep working when
    the transport changes (CI's bench run failed when a fast path gained an
    ``and self._faults is None`` condition the stripper did not know)."""

    def test_the_stripped_transport_builds_and_serves(self) -> None:
        import http.client

        from bench.bench_faults import _stripped_transport, _without_hooks

        stripped = _stripped_transport()
        for name in ("_flush", "_read_once", "_update_events"):
            with self.subTest(method=name):
                self.assertNotIn("_faults", getattr(stripped, name).__code__.co_names)
        with _without_hooks(), HTTPServer() as srv:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            self.addCleanup(conn.close)
            for _ in range(3):
                conn.request("GET", "/")
                self.assertEqual(conn.getresponse().read(), b"")


if __name__ == "__main__":
    unittest.main()
