"""The idle-connection sweep sleeps while a server has no connections.

``idle_timeout`` has its own timer; once the last connection is gone the
loop must make no timer wake-ups for it, whatever ``poll_interval`` is
(``None``, or shorter than ``idle_timeout``).
"""

from __future__ import annotations

import socket
import time
import unittest

from protocols import TCPServer


class IdleSweepSleepsWithoutConnectionsTest(unittest.TestCase):
    def test_no_wakeups_after_the_last_connection_is_swept(self) -> None:
        for poll_interval in (None, 0.02):
            with self.subTest(poll_interval=poll_interval):
                srv = TCPServer(idle_timeout=0.05, poll_interval=poll_interval)
                srv.start()
                self.addCleanup(srv.stop)
                with socket.create_connection(srv.server_address, timeout=10) as c:
                    try:
                        self.assertEqual(c.recv(1), b"")  # swept: EOF well before 10 s
                    except ConnectionResetError:
                        pass
                srv.wait_for(lambda s=srv: s.connection_count == 0, 5, "the sweep")
                loop = srv._reactor
                assert loop is not None
                loop.run_sync(lambda: None, timeout=5)
                before = loop.iterations
                # A measurement window, not a settle: a sweep or tick timer
                # still running would wake the loop 20-50 times in it.
                time.sleep(1.0)
                self.assertLessEqual(loop.iterations - before, 2)
                srv.stop()


if __name__ == "__main__":
    unittest.main()
