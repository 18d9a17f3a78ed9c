"""Faults over a connection's life: rules that arrive while other rules hold
bytes, fault timers that must die with the connection, and arguments that
must be refused when the fault or proxy is made, not when a client comes.

Observed by raw-socket clients and on the servers' fault records.
"""

from __future__ import annotations

import socket
import time
import unittest

from protocols import (
    UPSTREAM,
    Bandwidth,
    BlackHole,
    Delay,
    FaultProxy,
    HTTPServer,
    Latency,
    TCPServer,
    UDPServer,
)
from protocols.http import DelayHead, FailFirst
from reactor import InvalidArgumentError


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

    def test_a_datagram_delayed_before_stop_is_not_delivered_after_a_restart(self) -> None:
        with TCPServer() as other:  # keeps the shared reactor (and its timers) alive
            srv = UDPServer()
            srv.start()
            try:
                srv.faults.add(Delay(0.3), direction=UPSTREAM)
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                    c.sendto(b"old", srv.server_address)
                    srv.faults.wait_for_records(1)
                    srv.stop()
                    srv.faults.clear()
                    srv.start()
                    c.sendto(b"new", srv.server_address)
                    srv.wait_for(lambda: len(srv.datagrams) >= 1, 5, "the new datagram")
                    # A clock: armed after the old one's timer, so it fires later.
                    srv.faults.add(Delay(0.3), direction=UPSTREAM)
                    c.sendto(b"clock", srv.server_address)
                    srv.wait_for(
                        lambda: any(d.data == b"clock" for d in srv.datagrams), 5, "the clock"
                    )
                self.assertEqual([d.data for d in srv.datagrams], [b"new", b"clock"])
            finally:
                srv.stop()
            self.assertEqual(other.errors, [])


class ArgumentsRefusedAtConstructionTest(unittest.TestCase):
    def test_fault_proxy_refuses_an_upstream_it_cannot_connect_to(self) -> None:
        for bad in (
            "",
            42,
            ("localhost", 80),
            ("127.0.0.1", -1),
            ("127.0.0.1", 0),
            ("127.0.0.1", "80"),
            ("127.0.0.1",),
        ):
            with self.subTest(upstream=bad), self.assertRaises(InvalidArgumentError):
                FaultProxy(bad)
        for bad_timeout in (-1, 0, float("nan"), float("inf"), "5"):
            with self.subTest(connect_timeout=bad_timeout), self.assertRaises(InvalidArgumentError):
                FaultProxy(("127.0.0.1", 9), connect_timeout=bad_timeout)

    def test_http_fault_selection_and_fail_first_values(self) -> None:
        for make in (
            lambda: FailFirst(1, body=5),
            lambda: FailFirst(1, headers=5),  # type: ignore[arg-type]
            lambda: FailFirst(1, headers=[(1, 2)]),
        ):  # type: ignore[list-item]
            with self.assertRaises(InvalidArgumentError):
                make()
        srv = HTTPServer()
        try:
            with self.assertRaises(InvalidArgumentError):
                srv.faults.add(DelayHead(1), frist=2)
            with self.assertRaises(InvalidArgumentError):
                srv.faults.add(DelayHead(1), method=5)  # type: ignore[arg-type]
            self.assertEqual(srv.faults.http_rules, [])
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main()
