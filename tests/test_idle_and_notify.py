"""idle_timeout works without poll_interval, and waits re-check when a
connection opens or closes."""

from __future__ import annotations

import socket
import time
import unittest
from typing import Any

from protocols import TCPServer
from reactor import StreamServerBase, StreamTransport


class _Silent:
    """A protocol that records nothing, so only the base can notify."""

    def connection_made(self, transport: StreamTransport) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        pass


class SilentServer(StreamServerBase):
    def make_protocol(self, addr: Any) -> _Silent:
        return _Silent()


class IdleTimeoutWithoutPollIntervalTest(unittest.TestCase):
    """Issue 9 item 16."""

    def _assert_idle_closed(self, poll_interval: float | None) -> None:
        srv = TCPServer(on_data=lambda c, d: None, idle_timeout=0.3, poll_interval=poll_interval)
        srv.start()
        self.addCleanup(srv.stop)
        with socket.create_connection(srv.server_address, timeout=5) as c:
            t0 = time.monotonic()
            try:
                data = c.recv(1)
            except ConnectionResetError:
                data = b""
            elapsed = time.monotonic() - t0
        self.assertEqual(data, b"")
        self.assertGreater(elapsed, 0.2)
        self.assertLess(elapsed, 3.0)

    def test_poll_interval_none(self) -> None:
        self._assert_idle_closed(None)

    def test_poll_interval_longer_than_idle_timeout(self) -> None:
        self._assert_idle_closed(30.0)

    def test_activity_keeps_a_connection_open(self) -> None:
        srv = TCPServer(on_data=lambda c, d: None, idle_timeout=0.5, poll_interval=None)
        srv.start()
        self.addCleanup(srv.stop)
        with socket.create_connection(srv.server_address, timeout=5) as c:
            srv.wait_for(lambda: srv.connection_count == 1, timeout=5, what="accept")
            for _ in range(4):  # 4 x 0.2 s = 0.8 s > idle_timeout, all active
                c.sendall(b"x")
                time.sleep(0.2)  # the behaviour under test: spaced activity
            self.assertEqual(srv.connection_count, 1)


class ConnectionOpenCloseWakesWaitsTest(unittest.TestCase):
    """Issue 8 part 1: every wait_for* re-checks when a connection opens/closes."""

    def test_wait_for_close(self) -> None:
        srv = SilentServer()
        srv.start()
        self.addCleanup(srv.stop)
        c = socket.create_connection(srv.server_address, timeout=5)
        srv.wait_for(lambda: srv.connection_count == 1, timeout=5, what="accept")
        c.close()
        t0 = time.monotonic()
        srv.wait_for(lambda: srv.connection_count == 0, timeout=20, what="close")
        self.assertLess(time.monotonic() - t0, 5.0)

    def test_wait_for_open(self) -> None:
        srv = SilentServer()
        srv.start()
        self.addCleanup(srv.stop)
        t0 = time.monotonic()
        with socket.create_connection(srv.server_address, timeout=5):
            srv.wait_for(lambda: srv.connection_count == 1, timeout=20, what="accept")
        self.assertLess(time.monotonic() - t0, 5.0)


if __name__ == "__main__":
    unittest.main()
