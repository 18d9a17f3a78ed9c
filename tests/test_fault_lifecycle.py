"""Transport faults over a connection's life: rules that arrive while other
rules hold bytes, and fault timers that must die with the connection.

Observed by raw-socket clients and on the servers' fault records.
"""

from __future__ import annotations

import socket
import time
import unittest

from protocols import UPSTREAM, Bandwidth, BlackHole, Latency, TCPServer


def echo(conn, data: bytes) -> None:  # type: ignore[no-untyped-def]
    conn.write(data)


def read_exactly(s: socket.socket, n: int, deadline: float) -> int:
    """Read up to ``n`` bytes before ``deadline``; how many arrived."""
    got = 0
    while got < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        got += len(chunk)
    return got


class RuleAddedOverHeldBytesTest(unittest.TestCase):
    """A rule added while another rule holds bytes must let those bytes go too."""

    TOTAL = 60_000

    def _check(self, direction: str) -> None:
        with TCPServer(on_data=echo) as srv:
            srv.faults.add(Bandwidth(100_000), direction=direction)
            with socket.create_connection(srv.server_address, timeout=10) as s:
                s.sendall(b"a" * self.TOTAL)
                got = read_exactly(s, 5_000, time.monotonic() + 10)
                self.assertGreaterEqual(got, 5_000)
                srv.faults.add(Latency(0.05), direction=direction)
                got += read_exactly(s, self.TOTAL - got, time.monotonic() + 15)
                self.assertEqual(got, self.TOTAL)

    def test_downstream_latency_added_behind_a_bandwidth_cap(self) -> None:
        self._check("downstream")

    def test_upstream_latency_added_behind_a_bandwidth_cap(self) -> None:
        self._check(UPSTREAM)


class FaultTimersDieWithTheConnectionTest(unittest.TestCase):
    def test_black_hole_timeout_does_not_fire_after_stop(self) -> None:
        # The other server keeps the shared reactor running after srv stops;
        # its own black hole, armed after the stop with the same timeout,
        # fires later than srv's would have.
        with TCPServer(on_data=echo) as other:
            srv = TCPServer(on_data=echo)
            srv.start()
            try:
                rule = srv.faults.add(BlackHole(timeout=0.3))
                with socket.create_connection(srv.server_address, timeout=5) as s:
                    s.sendall(b"x")
                    srv.faults.wait_for_records(1, name="black-hole")
                    srv.stop()
                    self.assertEqual(s.recv(10), b"")
            finally:
                srv.stop()
            other.faults.add(BlackHole(timeout=0.3))
            with socket.create_connection(other.server_address, timeout=5):
                other.faults.wait_for_records(1, name="black-hole", action="timeout")
            self.assertEqual([r.action for r in rule.records], [None])


if __name__ == "__main__":
    unittest.main()
