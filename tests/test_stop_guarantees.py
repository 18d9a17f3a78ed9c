"""stop() under pressure: a busy reactor, stuck handlers, death, many cycles.

The reactor is made busy deterministically: a reactor-native handler of
another server blocks on an Event, so bytes, connections and datagrams sent
meanwhile stay in the kernel, and the stop() queued behind it must drain
them itself.  These tests fail if the drain is removed.
"""

from __future__ import annotations

import gc
import os
import socket
import threading
import time
import unittest
import weakref
from typing import Any

from test.support import captured_stderr, socket_helper

import reactor
from protocols import (
    StreamConnection,
    StreamRequest,
    TCPServer,
    TestTCPServer,
    UDPServer,
    UnixDatagramServer,
    UnixStreamServer,
)
from protocols._tls import localhost_contexts
from reactor import HandlerTimeout, ServerBusyError, StreamTransport


class BusyReactor:
    """A server whose handler holds the reactor thread until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.server = TCPServer(on_data=self._hog)
        self.server.start()
        self.client = socket.create_connection(self.server.server_address, timeout=10)

    def _hog(self, conn: StreamConnection, data: bytes) -> None:
        self.entered.set()
        self.release.wait(20)

    def hold(self) -> None:
        self.entered.clear()
        self.release.clear()
        self.client.sendall(b"x")
        assert self.entered.wait(10), "reactor never entered the hog"

    def close(self) -> None:
        self.release.set()
        self.client.close()
        self.server.stop()


def wait_until_queued(r: reactor.Reactor, n: int = 1) -> None:
    deadline = time.monotonic() + 10
    while len(r._ready) < n:
        if time.monotonic() > deadline:
            raise AssertionError("stop() never queued its callback")
        time.sleep(0.001)


class DrainAtStopTest(unittest.TestCase):
    def setUp(self) -> None:
        self.busy = BusyReactor()
        self.addCleanup(self.busy.close)

    def test_bytes_backlog_and_datagrams_reaching_a_busy_server_are_handled(self) -> None:
        tcp = TCPServer()
        udp = UDPServer(reply=lambda d, p: d.upper())
        tcp.start()
        udp.start()
        early = socket.create_connection(tcp.server_address)
        tcp.wait_for_streams(1, closed=False)  # accepted and registered
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(10)
        self.busy.hold()
        # While the reactor is held: bytes on an accepted connection, a new
        # connection still in the listen backlog, and datagrams.
        early.sendall(b"a" * 3000)
        late = socket.create_connection(tcp.server_address)
        late.sendall(b"b" * 3000)
        for i in range(5):
            u.sendto(b"ping%d" % i, udp.server_address)
        r = reactor.current_reactor()
        assert r is not None
        stopper = threading.Thread(target=lambda: (tcp.stop(), udp.stop()))
        stopper.start()
        wait_until_queued(r)
        self.busy.release.set()
        stopper.join(10)
        self.assertFalse(stopper.is_alive())
        self.assertEqual(sorted(bytes(s.data) for s in tcp.streams), [b"a" * 3000, b"b" * 3000])
        self.assertEqual([d.data for d in udp.datagrams], [b"ping%d" % i for i in range(5)])
        replies = sorted(u.recvfrom(100)[0] for _ in range(5))  # sent before the close
        self.assertEqual(replies, [b"PING%d" % i for i in range(5)])
        for c in (early, late, u):
            c.close()

    def test_blocking_handler_gets_bytes_sent_before_stop(self) -> None:
        got: list[bytes] = []

        def reader(request: StreamRequest) -> None:
            while True:
                chunk = request.connection.recv(65536)
                if not chunk:
                    return
                got.append(chunk)

        s = TestTCPServer(("127.0.0.1", 0), reader, 60)
        s.start()
        self.busy.hold()
        c = socket.create_connection(("127.0.0.1", s.port))  # waits in the backlog
        c.sendall(b"hello world")
        r = reactor.current_reactor()
        assert r is not None
        stopper = threading.Thread(target=s.stop)
        stopper.start()
        wait_until_queued(r)
        self.busy.release.set()
        stopper.join(10)
        c.close()
        self.assertEqual(b"".join(got), b"hello world")


class StuckReactorTest(unittest.TestCase):
    def test_stop_timeout_on_a_stuck_reactor_spares_other_servers(self) -> None:
        busy = BusyReactor()
        other = TCPServer(on_data=lambda c, d: c.write(d))
        other.start()
        victim = UDPServer(report_errors=False)
        victim.start()
        try:
            busy.hold()
            t0 = time.monotonic()
            victim.stop(timeout=0.2)
            self.assertLess(time.monotonic() - t0, 3)
            self.assertTrue(any(isinstance(e, HandlerTimeout) for e in victim.errors))
            self.assertFalse(victim.ready.is_set())
            with self.assertRaises(ServerBusyError):
                victim.start()  # its clean-up is still queued
            busy.release.set()
            # The queued clean-up runs and closes the victim's socket ...
            deadline = time.monotonic() + 10
            while victim.socket is not None and time.monotonic() < deadline:
                time.sleep(0.005)
            self.assertIsNone(victim.socket)
            # ... and the other server still has its loop.
            with socket.create_connection(other.server_address, timeout=5) as c:
                c.sendall(b"alive")
                self.assertEqual(c.recv(10), b"alive")
            victim.start()  # restartable once the clean-up ran
            self.assertTrue(victim.ready.is_set())
        finally:
            busy.close()
            other.stop()
            victim.stop()
        self.assertEqual([t for t in threading.enumerate() if t.name == reactor.THREAD_NAME], [])


class ManyCyclesTest(unittest.TestCase):
    def test_long_lived_reactor_does_not_keep_stopped_servers(self) -> None:
        anchor = UDPServer()  # keeps one reactor alive across all cycles
        anchor.start()
        r = reactor.current_reactor()
        assert r is not None
        refs = []
        try:
            for _ in range(300):
                s = TCPServer()
                s.start()
                s.stop()
                refs.append(weakref.ref(s))
                del s
            gc.collect()
            self.assertEqual([ref for ref in refs if ref() is not None], [])
            self.assertLessEqual(len(r._death_hooks), 1)  # only the anchor's
        finally:
            anchor.stop()


class RestartAndFamiliesTest(unittest.TestCase):
    def test_unix_servers_restart_on_the_same_path(self) -> None:
        for cls in (UnixStreamServer, UnixDatagramServer):
            s: Any = cls()
            path = s.server_address
            s.start()
            s.stop()
            self.assertFalse(os.path.exists(path))
            s.start()
            try:
                self.assertEqual(s.server_address, path)
                with socket.socket(socket.AF_UNIX, s.socket_type) as c:
                    c.connect(path)
                    c.send(b"again")
                if cls is UnixStreamServer:
                    s.wait_for_data(b"again")
                else:
                    self.assertEqual(s.wait_for_datagrams(1)[0].data, b"again")
            finally:
                s.stop()

    @unittest.skipUnless(socket_helper.IPV6_ENABLED, "IPv6 required")
    def test_ipv6_tcp(self) -> None:
        with TCPServer(("::1", 0), on_data=lambda c, d: c.write(d)) as s:
            self.assertEqual(s.server_address[:2], ("::1", s.port))
            with socket.create_connection(("::1", s.port), timeout=5) as c:
                c.sendall(b"v6")
                self.assertEqual(c.recv(10), b"v6")

    def test_bind_and_activate_false_creates_the_socket_like_socketserver(self) -> None:
        s = TCPServer(bind_and_activate=False)
        self.assertIsNotNone(s.socket)
        assert s.socket is not None
        s.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # before bind
        self.assertEqual(s.port, 0)  # an int (issue 13): the requested port until bound
        s.server_bind()
        s.server_activate()
        s.start()
        try:
            with socket.create_connection(s.server_address, timeout=5):
                pass
        finally:
            s.stop()


class DeathRecoveryTest(unittest.TestCase):
    def test_ready_cleared_on_death_and_start_recovers(self) -> None:
        s = TCPServer(on_data=lambda c, d: c.write(d))
        s.start()
        r = reactor.current_reactor()
        assert r is not None

        def die() -> None:
            raise SystemExit("simulated")

        with captured_stderr():
            r.call_soon_threadsafe(die)
            r.join(5)
        self.assertTrue(r.dead)
        self.assertFalse(s.ready.is_set())
        s.start()  # detaches from the dead loop and starts on a new one
        try:
            self.assertIsNot(reactor.current_reactor(), r)
            with socket.create_connection(s.server_address, timeout=5) as c:
                c.sendall(b"back")
                self.assertEqual(c.recv(10), b"back")
        finally:
            s.stop()


class WorkerStopsOwnServerTest(unittest.TestCase):
    def test_blocking_handler_may_stop_its_server(self) -> None:
        outcome: list[str] = []

        def handler(request: StreamRequest) -> None:
            try:
                request.server.stop()
                outcome.append("stopped")
            except BaseException as exc:  # recorded for the assertion below
                outcome.append(repr(exc))

        s = TestTCPServer(("127.0.0.1", 0), handler)
        s.start()
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:
            self.assertEqual(c.recv(1), b"")
        deadline = time.monotonic() + 5
        while not outcome and time.monotonic() < deadline:
            time.sleep(0.005)
        self.assertEqual(outcome, ["stopped"])
        self.assertFalse(s.ready.is_set())


class TransportContractTest(unittest.TestCase):
    def test_eof_delivered_once_even_when_stop_drains(self) -> None:
        events: list[str] = []

        class KeepOpen(TCPServer):
            def make_protocol(self, addr: Any) -> Any:
                proto = super().make_protocol(addr)
                orig_eof = proto.eof_received

                def eof() -> bool:
                    orig_eof()
                    events.append("eof")
                    return True  # keep writing after the peer's half-close

                proto.eof_received = eof  # type: ignore[method-assign]
                return proto

        s = KeepOpen()
        s.start()
        c = socket.create_connection(s.server_address)
        c.shutdown(socket.SHUT_WR)
        s.wait_for(lambda: events, 5, "eof")
        s.stop()
        c.close()
        self.assertEqual(events, ["eof"])

    def test_starttls_upgrade_in_place(self) -> None:
        server_ctx, client_ctx = localhost_contexts()
        upgraded = threading.Event()

        def on_line(conn: StreamConnection, line: bytes) -> None:
            t: StreamTransport | None = conn.transport
            assert t is not None
            if line == b"STARTTLS\r\n" and not t.is_tls:
                conn.write(b"220 go ahead\r\n")
                t.start_tls(server_ctx, on_done=upgraded.set)
            else:
                conn.write(b"tls=%d " % t.is_tls + line)

        with TCPServer(on_line=on_line) as s:
            with socket.create_connection(s.server_address, timeout=10) as raw:
                raw.sendall(b"hello\r\n")
                f = raw.makefile("rb")
                self.assertEqual(f.readline(), b"tls=0 hello\r\n")
                raw.sendall(b"STARTTLS\r\n")
                self.assertEqual(f.readline(), b"220 go ahead\r\n")
                f.close()
                with client_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                    self.assertTrue(upgraded.wait(5))
                    tls.sendall(b"secret\r\n")
                    self.assertEqual(tls.recv(100), b"tls=1 secret\r\n")
                    self.assertIsInstance(tls.version(), str)
            self.assertEqual(s.tls_errors, [])


if __name__ == "__main__":
    unittest.main()


class HTTPDrainAtStopTest(unittest.TestCase):
    def test_many_pipelined_requests_reaching_a_busy_server_are_all_handled(self) -> None:
        from protocols import HTTPServer

        busy = BusyReactor()
        self.addCleanup(busy.close)
        server = HTTPServer()
        server.start()
        c = socket.create_connection(server.server_address)
        server.wait_for(lambda: server.connection_count, 5, "the connection")
        busy.hold()
        # More than one pass's budget of requests, all in the kernel at stop().
        c.sendall(b"GET /p HTTP/1.1\r\nHost: h\r\n\r\n" * 200)
        r = reactor.current_reactor()
        assert r is not None
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        wait_until_queued(r)
        busy.release.set()
        stopper.join(10)
        c.close()
        self.assertEqual(len(server.requests), 200)
