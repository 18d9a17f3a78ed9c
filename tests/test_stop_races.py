"""stop() racing stop(), and stop(timeout=0): no stall, no false HandlerTimeout."""

from __future__ import annotations

import socket
import threading
import time
import unittest
from typing import Any

from protocols import TCPServer, UDPServer
from reactor import HandlerTimeout


def _timeouts(srv: Any) -> list[BaseException]:
    return [e for e in srv.errors if isinstance(e, HandlerTimeout)]


class StopFromHandlerRacingThreadStopTest(unittest.TestCase):
    """Issue 9 item 2: the lifecycle lock must not be held against the reactor."""

    def test_same_server(self) -> None:
        entered = threading.Event()

        def on_data(conn: Any, data: bytes) -> None:
            entered.set()
            time.sleep(0.3)  # the behaviour under test: a slow handler
            conn.server.stop(timeout=4)

        srv = TCPServer(on_data=on_data, report_errors=False)
        srv.start()
        self.addCleanup(srv.stop)
        with socket.create_connection(srv.server_address, timeout=5) as c:
            c.sendall(b"x")
            self.assertTrue(entered.wait(5))
            t0 = time.monotonic()
            srv.stop(timeout=4)
            elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 2.0)
        self.assertEqual(_timeouts(srv), [])
        self.assertFalse(srv.started)

    def test_across_servers(self) -> None:
        entered = threading.Event()
        b = UDPServer(report_errors=False)

        def on_data(conn: Any, data: bytes) -> None:
            entered.set()
            time.sleep(0.3)  # the behaviour under test: a slow handler
            b.stop(timeout=4)

        a = TCPServer(on_data=on_data, report_errors=False)
        a.start()
        b.start()
        self.addCleanup(a.stop)
        self.addCleanup(b.stop)
        with socket.create_connection(a.server_address, timeout=5) as c:
            c.sendall(b"x")
            self.assertTrue(entered.wait(5))
            t0 = time.monotonic()
            b.stop(timeout=4)
            elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 2.0)
        self.assertEqual(_timeouts(b), [])
        self.assertEqual(_timeouts(a), [])
        self.assertFalse(b.started)


class StopTimeoutZeroTest(unittest.TestCase):
    """Issue 9 item 4: stop(timeout=0) on an idle server is not a timeout."""

    def test_udp(self) -> None:
        srv = UDPServer()
        srv.start()
        srv.stop(timeout=0)
        self.assertEqual(_timeouts(srv), [])
        self.assertFalse(srv.started)

    def test_tcp_start_again_at_once(self) -> None:
        srv = TCPServer(on_data=lambda c, d: None)
        srv.start()
        srv.stop(timeout=0)
        self.assertEqual(_timeouts(srv), [])
        srv.start()  # its clean-up ran: it can start again at once
        srv.stop()


if __name__ == "__main__":
    unittest.main()
