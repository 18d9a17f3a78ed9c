"""Guarantees G1-G5 on the TCP/UDP/Unix servers."""

from __future__ import annotations

import errno
import gc
import math
import os
import smtplib
import socket
import statistics
import tempfile
import threading
import time
import types
import unittest
import unittest.mock
import urllib.request
import warnings
from typing import Any

from test.support import captured_stderr, socket_helper

import reactor
from protocols import (
    HandlerErrors,
    HandlerTimeout,
    HTTPServer,
    SMTPServer,
    StreamRequest,
    TCPServer,
    TestTCPServer,
    TestUDPServer,
    UDPServer,
    UnixDatagramServer,
    UnixStreamServer,
)


def reactor_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == reactor.THREAD_NAME]


def new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Threads alive now that were not alive at ``before`` (robust to
    threads of earlier tests that are still finishing)."""
    return [t for t in threading.enumerate() if t not in before]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class G1OneThreadTest(unittest.TestCase):
    def test_200_mixed_servers_share_one_thread_and_it_is_joined(self) -> None:
        before = set(threading.enumerate())
        kinds: list[Any] = [
            TCPServer,
            UDPServer,
            UnixStreamServer,
            UnixDatagramServer,
            HTTPServer,
            SMTPServer,
        ]
        servers = [kinds[i % len(kinds)]() for i in range(200)]
        try:
            for s in servers:
                s.start()
            self.assertEqual([t.name for t in new_threads(before)], [reactor.THREAD_NAME])
            # Every kind serves.
            for s in servers[: len(kinds)]:
                self._poke(s)
        finally:
            for s in servers:
                s.stop()
        self.assertEqual(reactor_threads(), [])
        self.assertEqual(new_threads(before), [])

    def _poke(self, s: Any) -> None:
        if isinstance(s, HTTPServer):
            with urllib.request.urlopen(s.url + "/poke", timeout=5) as resp:
                self.assertEqual(resp.status, 200)
        elif isinstance(s, SMTPServer):
            with smtplib.SMTP(*s.server_address, timeout=5) as client:
                client.sendmail("a@example.com", ["b@example.com"], "Subject: poke\r\n\r\nx\r\n")
            s.wait_for_messages(1, timeout=5)
        elif isinstance(s, (TCPServer, UnixStreamServer)):
            with socket.socket(s.family, socket.SOCK_STREAM) as c:
                c.connect(s.server_address)
                c.sendall(b"poke")
            s.wait_for_data(b"poke", timeout=5)
        else:
            with socket.socket(s.family, socket.SOCK_DGRAM) as c:
                c.sendto(b"poke", s.server_address)
            self.assertEqual(s.wait_for_datagrams(1, timeout=5)[0].data, b"poke")


class G2ReadyTest(unittest.TestCase):
    def test_port_zero_gives_real_port_and_ready_is_set_by_start(self) -> None:
        s = TCPServer(("127.0.0.1", 0))
        self.assertNotEqual(s.port, 0)
        self.assertEqual(s.server_address, ("127.0.0.1", s.port))
        self.assertFalse(s.ready.is_set())
        s.start()
        try:
            self.assertTrue(s.ready.is_set())
            with socket.create_connection(("127.0.0.1", s.port), timeout=5):
                pass
        finally:
            s.stop()
        self.assertFalse(s.ready.is_set())

    def test_bind_error_raises_in_caller(self) -> None:
        with TCPServer() as a:
            with self.assertRaises(OSError) as cm:
                TCPServer(("127.0.0.1", a.port))
            self.assertEqual(cm.exception.errno, errno.EADDRINUSE)
            # bind_and_activate=False defers the bind to start(), same error.
            b = TCPServer(("127.0.0.1", a.port), bind_and_activate=False)
            with self.assertRaises(OSError):
                b.start()
            self.assertFalse(b.ready.is_set())
            self.assertIsNone(b.socket)

    @unittest.skipUnless(socket_helper.IPV6_ENABLED, "IPv6 required")
    def test_ipv6_literal(self) -> None:
        with UDPServer(("::1", 0)) as s:
            self.assertEqual(s.family, socket.AF_INET6)
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as c:
                c.sendto(b"six", ("::1", s.port))
            self.assertEqual(s.wait_for_datagrams(1)[0].data, b"six")

    @unittest.skipUnless(socket_helper.IPV6_ENABLED, "IPv6 required")
    def test_address_family_class_attribute(self) -> None:
        class V6(TestUDPServer):
            address_family = socket.AF_INET6

        got: list[bytes] = []
        s = V6(("::1", 0), lambda req: got.append(req.packet), 0.01)
        s.start()
        try:
            self.assertEqual(s.socket.family, socket.AF_INET6)  # type: ignore[union-attr]
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as c:
                c.sendto(b"x", s.server_address)
        finally:
            s.stop()
        self.assertEqual(got, [b"x"])  # stop() handled what had arrived

    def test_unix_path_created_and_removed(self) -> None:
        tmp = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, tmp)
        path = os.path.join(tmp, "s")
        s = UnixStreamServer(path)
        self.assertEqual(s.server_address, path)
        self.assertTrue(os.path.exists(path))
        s.start()
        s.stop()
        self.assertFalse(os.path.exists(path))
        # Default: a private temporary directory, removed too.
        d = UnixDatagramServer()
        tmpdir = os.path.dirname(d.server_address)
        d.start()
        d.stop()
        self.assertFalse(os.path.exists(tmpdir))

    def test_restart_after_stop_rebinds_same_port(self) -> None:
        s = TCPServer(on_data=lambda c, d: c.write(d))
        s.start()
        port = s.port
        s.stop()
        s.start()
        try:
            self.assertEqual(s.port, port)
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                c.sendall(b"again")
                self.assertEqual(c.recv(10), b"again")
        finally:
            s.stop()


class G3StopTest(unittest.TestCase):
    def test_stop_latency_does_not_depend_on_poll_interval(self) -> None:
        for pi in (60.0, 0.001):
            times = []
            for _ in range(20):
                s = TCPServer(poll_interval=pi)
                s.start()
                t0 = time.perf_counter()
                s.stop()
                times.append(time.perf_counter() - t0)
            # Generous bound: a poll at 60 s would take a minute.
            self.assertLess(statistics.median(times), 0.05, f"poll_interval={pi}")

    def test_stop_is_idempotent_and_works_before_start(self) -> None:
        s = TCPServer()
        s.stop()
        s.stop()
        self.assertIsNone(s.socket)
        t = UDPServer()
        t.start()
        t.stop()
        t.stop()

    def test_stop_from_a_handler_on_the_reactor_thread(self) -> None:
        before = set(threading.enumerate())
        stopped = threading.Event()

        def on_data(conn: Any, data: bytes) -> None:
            conn.server.stop()  # runs inline: no deadlock on our own loop
            stopped.set()

        s = TCPServer(on_data=on_data)
        s.start()
        with socket.create_connection(s.server_address, timeout=5) as c:
            c.sendall(b"stop yourself")
            self.assertTrue(stopped.wait(5))
            self.assertEqual(c.recv(1), b"")  # our connection was closed too
        for t in new_threads(before):
            t.join(5)  # the loop exits right after the pass that stopped it
        self.assertEqual(new_threads(before), [])
        self.assertFalse(s.ready.is_set())
        self.assertIsNone(s.socket)

    def test_stuck_handler_bounded_by_timeout_and_reported(self) -> None:
        release = threading.Event()
        entered = threading.Event()

        def stuck(request: StreamRequest) -> None:
            entered.set()
            release.wait(30)  # not reading: SHUT_RD cannot unblock this

        s = TestTCPServer(("127.0.0.1", 0), stuck, 0.5)
        s.report_errors = False
        s.start()
        c = socket.create_connection(("127.0.0.1", s.port))
        self.assertTrue(entered.wait(5))
        t0 = time.perf_counter()
        s.stop(timeout=0.3)
        elapsed = time.perf_counter() - t0
        release.set()
        c.close()
        self.assertLess(elapsed, 3.0)
        self.assertGreaterEqual(elapsed, 0.25)
        self.assertTrue(any(isinstance(e, HandlerTimeout) for e in s.errors), s.errors)

    def test_stop_unblocks_handler_in_recv(self) -> None:
        got: list[bytes] = []
        first = threading.Event()

        def reader(request: StreamRequest) -> None:
            while True:
                data = request.connection.recv(4)
                if not data:
                    break
                got.append(data)
                first.set()

        s = TestTCPServer(("127.0.0.1", 0), reader, 60)
        s.start()
        c = socket.create_connection(("127.0.0.1", s.port))
        c.sendall(b"abcd")
        self.assertTrue(first.wait(5))
        t0 = time.perf_counter()
        s.stop()
        self.assertLess(time.perf_counter() - t0, 2.0)
        self.assertEqual(s.worker_count, 0)
        self.assertEqual(got, [b"abcd"])
        c.close()

    def test_500_cycles_leave_no_thread_fd_or_resource_warning(self) -> None:
        gc.collect()
        before = set(threading.enumerate())
        reactor.close_parked()  # the exited loop's selector and wake-up pair, kept for reuse
        base_fds = open_fds()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for i in range(500):
                kinds: tuple[Any, ...] = (
                    TCPServer,
                    UDPServer,
                    UnixStreamServer,
                    UnixDatagramServer,
                    HTTPServer,
                    SMTPServer,
                )
                s: Any = kinds[i % len(kinds)]()
                s.start()
                if i % 25 < 6:  # some of each kind with a live connection at stop time
                    with socket.socket(s.family, s.socket_type) as c:
                        c.connect(s.server_address)
                        c.send(b"x")
                        s.stop()
                else:
                    s.stop()
                del s
            gc.collect()
        self.assertEqual([w for w in caught if issubclass(w.category, ResourceWarning)], [])
        self.assertEqual(new_threads(before), [])
        # No growth (a descriptor of an earlier test may close meanwhile)
        # beyond the one parked selector and wake-up pair (3 descriptors).
        self.assertLessEqual(open_fds(), base_fds + 3)
        reactor.close_parked()
        self.assertLessEqual(open_fds(), base_fds)

    def test_cold_restart_reuses_the_parked_selector_and_still_joins_the_thread(self) -> None:
        # G1 stands: the loop thread exits and is joined at the last stop(),
        # but its selector and wake-up pair serve the next cold start().
        before = set(threading.enumerate())
        with TCPServer():
            first = reactor.current_reactor()
            assert first is not None
            selector = first._selector
        self.assertIsNone(reactor.current_reactor())
        self.assertEqual(new_threads(before), [])
        with TCPServer(on_line=lambda conn, line: conn.write(line)) as s:
            second = reactor.current_reactor()
            assert second is not None
            self.assertIsNot(second, first)
            self.assertIs(second._selector, selector)
            with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:
                c.sendall(b"ping\n")
                self.assertEqual(c.recv(64), b"ping\n")
        self.assertEqual(new_threads(before), [])
        reactor.close_parked()
        with TCPServer():
            third = reactor.current_reactor()
            assert third is not None
            self.assertIsNot(third._selector, selector)


class G4TickTest(unittest.TestCase):
    def test_service_actions_period_and_no_drift(self) -> None:
        stamps: list[float] = []

        class Ticking(UDPServer):
            def service_actions(self) -> None:
                stamps.append(time.monotonic())

        pi = 0.02
        s = Ticking(poll_interval=pi)
        s.start()
        base = s._tick_base  # the grid: ticks are due at base + k * pi
        time.sleep(0.5)
        s.stop()
        n = len(stamps)
        # ~25 ticks in 0.5 s; generous for a noisy machine.
        self.assertGreaterEqual(n, 10)
        self.assertLessEqual(n, 26)
        # Each tick fires at or after a grid point, never early; with no drift
        # it fires just after one.  A scheduler that computed "now + pi" would
        # slide off the grid a little more at every tick.
        lateness = [t - (base + math.floor((t - base) / pi) * pi) for t in stamps]
        self.assertGreaterEqual(min(t - base for t in stamps), pi)
        self.assertLess(statistics.median(lateness), 0.005, lateness)

    def test_tick_schedule_fires_late_slots_and_skips_only_whole_periods(self) -> None:
        # Deterministic: a fake clock and a fake reactor that records call_at().
        calls: list[float] = []

        class FakeReactor:
            def call_at(self, when: float, callback: Any, *args: Any) -> object:
                calls.append(when)
                return object()

        class Ticking(UDPServer):
            def service_actions(self) -> None:
                pass

        s = Ticking(poll_interval=1.0)
        self.addCleanup(s.server_close)
        s._tick_base, s._tick_n, s._tick_handle = 100.0, 1, object()  # type: ignore[assignment]
        fake = FakeReactor()
        clock = {"now": 101.3}
        with unittest.mock.patch.object(
            reactor._server, "time", types.SimpleNamespace(monotonic=lambda: clock["now"])
        ):
            s._tick(fake)  # type: ignore[arg-type]  # slot 1, 0.3 late: next is slot 2
            clock["now"] = 102.4  # slot 2 ran 0.4 late; slot 3 not yet due
            s._tick(fake)  # type: ignore[arg-type]
            clock["now"] = 104.2  # slot 3 is due and less than a period late: keep it
            s._tick(fake)  # type: ignore[arg-type]
            clock["now"] = 106.5  # slot 4 is more than a whole period behind: skip to 7
            s._tick(fake)  # type: ignore[arg-type]
        self.assertEqual(calls, [102.0, 103.0, 104.0, 107.0])

    def test_idle_server_makes_no_wakeups(self) -> None:
        s = TCPServer(poll_interval=0.001)
        s.start()
        try:
            r = reactor.current_reactor()
            assert r is not None
            r.run_sync(lambda: None, timeout=5)
            # run_sync()'s wake-up byte may arrive after the pass that ran its
            # callback (one woken earlier, e.g. by a byte the previous loop left
            # in the parked wake-up pair): that byte makes one more pass right
            # after run_sync() returns.  Let it happen before counting.
            time.sleep(0.05)
            before = r.iterations
            time.sleep(0.3)
            self.assertEqual(r.iterations, before)
        finally:
            s.stop()

    def test_idle_timeout_sweeps_silent_connections(self) -> None:
        s = TCPServer(poll_interval=0.02, idle_timeout=0.1)
        s.start()
        try:
            c = socket.create_connection(s.server_address)
            c.settimeout(5)
            t0 = time.monotonic()
            self.assertEqual(c.recv(1), b"")  # closed by the server
            self.assertGreaterEqual(time.monotonic() - t0, 0.09)
            c.close()
        finally:
            s.stop()


class G5ErrorsTest(unittest.TestCase):
    def test_handler_error_recorded_reported_and_reraised_on_request(self) -> None:
        def bad(req: Any) -> None:
            raise RuntimeError("handler failed")

        other = UDPServer()
        other.start()
        s = TestUDPServer(("127.0.0.1", 0), bad, 0.5)
        s.start()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            with captured_stderr() as err:
                c.sendto(b"1", s.server_address)
                s.wait_for(lambda: s.errors, 5, "an error")
                # The reactor and the other server are fine.
                c.sendto(b"2", other.server_address)
                other.wait_for_datagrams(1)
        self.assertIn("RuntimeError: handler failed", err.getvalue())
        with self.assertRaises(HandlerErrors) as cm:
            s.stop(raise_errors=True)
        self.assertIsInstance(cm.exception.__cause__, RuntimeError)
        other.stop()

    def test_context_manager_raises_errors_when_asked(self) -> None:
        def bad(conn: Any, data: bytes) -> None:
            raise ValueError(data)

        with self.assertRaises(HandlerErrors):
            with TCPServer(on_data=bad, raise_errors=True, report_errors=False) as s:
                with socket.create_connection(s.server_address) as c:
                    c.sendall(b"boom")
                s.wait_for(lambda: s.errors, 5)

    def test_blocking_handler_error_recorded(self) -> None:
        def bad(req: StreamRequest) -> None:
            raise OSError("worker failed")

        s = TestTCPServer(("127.0.0.1", 0), bad)
        s.report_errors = False
        s.start()
        with socket.create_connection(("127.0.0.1", s.port)) as c:
            c.settimeout(5)
            self.assertEqual(c.recv(1), b"")
        s.wait_for(lambda: s.errors, 5)
        s.stop()
        self.assertEqual(str(s.errors[0]), "worker failed")

    def test_stop_after_reactor_death_raises_nothing_and_closes(self) -> None:
        s = TCPServer()
        s.start()
        r = reactor.current_reactor()
        assert r is not None
        outcome: list[BaseException] = []

        def waiter() -> None:
            try:
                s.wait_for_data(b"never sent", timeout=60)
            except BaseException as exc:
                outcome.append(exc)

        w = threading.Thread(target=waiter)
        w.start()
        client = socket.create_connection(s.server_address)
        s.wait_for_streams(1, closed=False)
        deadline = time.monotonic() + 5  # until the waiter is blocked in its wait
        while not s._cond._waiters:  # type: ignore[attr-defined]
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.001)
        t0 = time.monotonic()
        with captured_stderr():
            r.call_soon_threadsafe(self._die)
            r.join(5)
            w.join(10)
        self.assertLess(time.monotonic() - t0, 5)  # not the 60 s timeout
        self.assertTrue(r.dead)
        self.assertEqual(len(outcome), 1)
        self.assertIsInstance(outcome[0], reactor.ReactorDied)
        s.stop()  # closes the listener and the connection: no ResourceWarning
        client.close()
        self.assertIsNone(s.socket)
        self.assertEqual(s.connection_count, 0)
        # A new server gets a new, live reactor.
        with UDPServer() as u:
            self.assertIsNot(reactor.current_reactor(), r)
            self.assertTrue(u.ready.is_set())

    @staticmethod
    def _die() -> None:
        raise SystemExit("simulated")


if __name__ == "__main__":
    unittest.main()
