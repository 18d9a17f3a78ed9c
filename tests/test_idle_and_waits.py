"""Idle-connection sweeps and waits that must wake on connection changes.

* ``idle_timeout`` closes idle connections whatever ``poll_interval`` is
  (``None`` included), and the sweep makes no wake-ups while the server has
  no connections.
* ``wait_for()`` re-checks its predicate when a connection opens or closes,
  so a wait on ``connection_count`` returns as soon as the count changes.
"""

from __future__ import annotations

import socket
import time
import unittest
from typing import Any

from protocols import TCPServer
from reactor import StreamServerBase, StreamTransport


class _Silent:
    """A protocol that records nothing and never notifies anyone."""

    def connection_made(self, transport: StreamTransport) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        pass


class _SilentServer(StreamServerBase):
    def make_protocol(self, addr: Any) -> _Silent:
        return _Silent()


class IdleTimeoutWithoutPollIntervalTest(unittest.TestCase):
    def test_idle_connection_closed_with_poll_interval_none(self) -> None:
        srv = TCPServer(idle_timeout=0.3, poll_interval=None)
        srv.start()
        self.addCleanup(srv.stop)
        with socket.create_connection(srv.server_address, timeout=10) as c:
            t0 = time.monotonic()
            # The server closes the idle connection: recv sees EOF (or a
            # reset), well before the 10 s socket timeout.
            try:
                data = c.recv(1)
            except ConnectionResetError:
                data = b""
            elapsed = time.monotonic() - t0
        self.assertEqual(data, b"")
        self.assertLess(elapsed, 5.0)
        self.assertGreaterEqual(elapsed, 0.2)

    def test_active_connection_is_not_swept(self) -> None:
        srv = TCPServer(idle_timeout=0.5, poll_interval=None, on_data=lambda conn, d: conn.write(d))
        srv.start()
        self.addCleanup(srv.stop)
        with socket.create_connection(srv.server_address, timeout=10) as c:
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:  # bounded: about 1.5 s of echoes
                c.sendall(b"x")
                self.assertEqual(c.recv(1), b"x")
                time.sleep(0.1)  # the client's pace IS the scenario: active, under the timeout

    def test_no_wakeups_without_connections(self) -> None:
        srv = TCPServer(idle_timeout=0.05, poll_interval=None)
        srv.start()
        self.addCleanup(srv.stop)
        with socket.create_connection(srv.server_address, timeout=10) as c:
            try:
                self.assertEqual(c.recv(1), b"")
            except ConnectionResetError:
                pass
        srv.wait_for(lambda: srv.connection_count == 0, 5)
        loop = srv._reactor
        assert loop is not None
        before = loop.iterations
        # Idle for 20 sweep periods: a sweep timer that kept running would
        # wake the loop about 20-40 times.
        time.sleep(1.0)
        self.assertLessEqual(loop.iterations - before, 3)


class WaitWakesOnConnectionChangesTest(unittest.TestCase):
    def test_wait_for_connection_count_returns_on_open_and_close(self) -> None:
        # The protocol records nothing on connect or close: only a
        # notification from the server's connection bookkeeping can wake it.
        srv = _SilentServer()
        srv.start()
        self.addCleanup(srv.stop)
        c = socket.create_connection(srv.server_address, timeout=10)
        t0 = time.monotonic()
        srv.wait_for(lambda: srv.connection_count == 1, 5)
        c.close()
        srv.wait_for(lambda: srv.connection_count == 0, 5)
        self.assertLess(time.monotonic() - t0, 1.0)


if __name__ == "__main__":
    unittest.main()
