"""One error taxonomy: every library error derives from TestServersError,
crash / normal exit / busy / stopped-while-waiting are distinct classes, and
a wait on a server that another thread stops raises at once."""

from __future__ import annotations

import socket
import threading
import time
import unittest

import protocols
import reactor
from protocols import TCPServer, UDPServer
from reactor import (
    HandlerErrors,
    ReactorDied,
    ReactorError,
    ReactorExited,
    ServerBusyError,
    ServerClosedError,
    ServerStoppedError,
    TestServersError,
    UsageError,
    WaitTimeout,
)

NAMES = [
    "HandlerErrors",
    "HandlerTimeout",
    "PeerError",
    "ReactorDied",
    "ReactorError",
    "ReactorExited",
    "ServerBusyError",
    "ServerClosedError",
    "ServerStoppedError",
    "TestServersError",
    "UsageError",
    "WaitTimeout",
]


class TaxonomyTest(unittest.TestCase):
    def test_every_error_is_exported_and_derives_from_the_root(self) -> None:
        for name in NAMES:
            with self.subTest(name=name):
                cls = getattr(reactor, name)
                self.assertIs(getattr(protocols, name), cls)
                self.assertIn(name, reactor.__all__)
                self.assertIn(name, protocols.__all__)
                self.assertTrue(issubclass(cls, TestServersError))

    def test_crash_exit_busy_and_stopped_are_distinct(self) -> None:
        self.assertFalse(issubclass(ReactorExited, ReactorDied))
        self.assertFalse(issubclass(ReactorDied, ReactorExited))
        self.assertFalse(issubclass(ServerBusyError, ServerClosedError))
        self.assertTrue(issubclass(ServerStoppedError, ServerClosedError))
        # builtin conventions are kept for older except clauses
        self.assertTrue(issubclass(WaitTimeout, TimeoutError))
        self.assertTrue(issubclass(UsageError, RuntimeError))
        self.assertTrue(issubclass(ReactorError, TestServersError))

    def test_a_reactor_that_exited_normally_raises_reactor_exited(self) -> None:
        srv = UDPServer()
        srv.start()
        r = srv._reactor
        assert r is not None
        srv.stop()
        r.join(5)
        with self.assertRaises(ReactorExited):
            r.call_soon_threadsafe(print)
        with self.assertRaises(ReactorExited):
            r.run_sync(print, timeout=1)

    def test_a_crashed_reactor_raises_reactor_died(self) -> None:
        srv = UDPServer()
        srv.start()
        self.addCleanup(srv.stop, timeout=5)
        r = srv._reactor
        assert r is not None

        def boom() -> None:
            raise SystemExit("killed for the test")

        r.call_soon_threadsafe(boom)
        r.join(5)
        with self.assertRaises(ReactorDied) as cm:
            r.call_soon_threadsafe(print)
        self.assertIsInstance(cm.exception.__cause__, SystemExit)

    def test_wait_timeout_is_a_timeout_error(self) -> None:
        with UDPServer() as srv, self.assertRaises(WaitTimeout):
            srv.wait_for_datagrams(1, timeout=0.05)

    def test_record_false_raises_usage_error(self) -> None:
        with UDPServer(record=False) as srv, self.assertRaises(UsageError):
            srv.wait_for_datagrams(1, timeout=0.05)

    def test_start_while_stop_is_queued_raises_server_busy(self) -> None:
        release = threading.Event()
        entered = threading.Event()
        blocker = UDPServer()
        blocker.start()
        self.addCleanup(blocker.stop, timeout=5)
        srv = UDPServer()
        srv.start()
        r = srv._reactor
        assert r is not None

        def stuck() -> None:
            entered.set()
            release.wait(10)

        r.call_soon_threadsafe(stuck)
        self.assertTrue(entered.wait(5))
        srv.stop(timeout=0.05, raise_errors=False)
        try:
            with self.assertRaises(ServerBusyError):
                srv.start()
        finally:
            release.set()
        srv.wait_for(lambda: not srv._detach_pending, timeout=5, what="queued clean-up")
        srv.start()
        srv.stop()


class BrokenStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")


class UnprintableErrorTest(unittest.TestCase):
    def test_handler_errors_summary_survives_a_broken_str(self) -> None:
        err = HandlerErrors([BrokenStr()])
        self.assertIn("BrokenStr", str(err))
        self.assertIsInstance(err.__str__(), str)


class WaitOnStoppedServerTest(unittest.TestCase):
    """Issue 9 item 3: a wait on a server another thread stops raises at once."""

    def _assert_wait_raises_on_stop(self, srv: object, wait: object) -> None:
        errors: list[BaseException] = []
        started = threading.Event()

        def waiter() -> None:
            started.set()
            try:
                wait()  # type: ignore[operator]
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=waiter)
        t.start()
        self.assertTrue(started.wait(5))
        # let the waiter block: wait until it is inside the condition wait
        deadline = time.monotonic() + 5
        while not srv._cond._waiters and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.005)
        t0 = time.monotonic()
        srv.stop()  # type: ignore[attr-defined]
        t.join(10)
        elapsed = time.monotonic() - t0
        self.assertFalse(t.is_alive())
        self.assertEqual(len(errors), 1)
        self.assertIsInstance(errors[0], ServerStoppedError)
        self.assertIn("stopped", str(errors[0]))
        self.assertLess(elapsed, 5.0)

    def test_wait_for_datagrams(self) -> None:
        srv = UDPServer()
        srv.start()
        self._assert_wait_raises_on_stop(srv, lambda: srv.wait_for_datagrams(1, timeout=30))

    def test_wait_for_on_a_stream_server(self) -> None:
        srv = TCPServer(on_data=lambda c, d: None)
        srv.start()
        self._assert_wait_raises_on_stop(
            srv, lambda: srv.wait_for(lambda: False, timeout=30, what="never")
        )

    def test_a_true_predicate_still_wins_after_stop(self) -> None:
        srv = UDPServer()
        srv.start()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(s.close)
        s.sendto(b"x", srv.server_address)
        srv.wait_for_datagrams(1, timeout=5)
        srv.stop()
        self.assertEqual(len(srv.wait_for_datagrams(1, timeout=0.1)), 1)


if __name__ == "__main__":
    unittest.main()
