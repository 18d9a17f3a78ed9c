"""stop() with a zero timeout, and stop() racing another stop() of the same server.

* ``stop(timeout=0)`` on an idle server does the non-blocking clean-up and
  records no HandlerTimeout: only a handler really still running is one.
* A handler on the reactor thread calling ``stop()`` while another thread
  stops the same server: neither stalls, nothing is recorded as stuck.
"""

from __future__ import annotations

import socket
import threading
import time
import unittest

from protocols import StreamConnection, TCPServer, UDPServer
from reactor import HandlerTimeout


class ZeroTimeoutStopTest(unittest.TestCase):
    def test_stop_timeout_zero_on_idle_server_records_nothing(self) -> None:
        for _ in range(5):  # bounded: five start/stop cycles
            srv = TCPServer()
            srv.start()
            srv.stop(timeout=0)
            self.assertEqual(srv.errors, [])
            self.assertFalse(srv.started)
            self.assertIsNone(srv.socket)

    def test_stop_timeout_zero_closes_connections(self) -> None:
        srv = TCPServer()
        srv.start()
        with socket.create_connection(srv.server_address, timeout=10) as c:
            srv.wait_for(lambda: srv.connection_count == 1, 5)
            srv.stop(timeout=0)
            try:
                self.assertEqual(c.recv(1), b"")
            except ConnectionResetError:
                pass
        self.assertEqual(srv.errors, [])


class HandlerStopRacesThreadStopTest(unittest.TestCase):
    def _race(self, victim_stop_from_handler: bool) -> None:
        entered = threading.Event()
        srv_b = UDPServer()
        srv_b.start()
        self.addCleanup(srv_b.stop)

        def on_data(conn: StreamConnection, data: bytes) -> None:
            entered.set()
            time.sleep(0.3)  # the handler is busy while the thread's stop() begins
            if victim_stop_from_handler:
                conn.server.stop(timeout=4)
            else:
                srv_b.stop(timeout=4)

        srv_a = TCPServer(on_data=on_data)
        srv_a.start()
        self.addCleanup(srv_a.stop)
        victim = srv_a if victim_stop_from_handler else srv_b
        with socket.create_connection(srv_a.server_address, timeout=10) as c:
            c.sendall(b"x")
            self.assertTrue(entered.wait(10))
            t0 = time.monotonic()
            victim.stop(timeout=4)
            elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 2.0)
        for s in (srv_a, srv_b):
            self.assertFalse([e for e in s.errors if isinstance(e, HandlerTimeout)], s.errors)
        self.assertFalse(victim.started)

    def test_handler_stops_own_server_while_thread_stops_it(self) -> None:
        self._race(victim_stop_from_handler=True)

    def test_handler_stops_other_server_while_thread_stops_it(self) -> None:
        self._race(victim_stop_from_handler=False)


if __name__ == "__main__":
    unittest.main()
