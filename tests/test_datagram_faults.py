"""UDP faults (drop, duplicate, reorder, delay, truncate), seen by a UDP socket."""

from __future__ import annotations

import socket
import time
import unittest

from protocols import (
    DOWNSTREAM,
    Delay,
    Drop,
    Duplicate,
    Reorder,
    Truncate,
    UDPServer,
    UnixDatagramServer,
)
from reactor import InvalidArgumentError


def udp_client() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    return s


def received(srv) -> list[bytes]:  # type: ignore[no-untyped-def]
    return [d.data for d in srv.datagrams]


class DatagramFaultsTest(unittest.TestCase):
    def test_drop_every_third(self) -> None:
        with UDPServer() as srv, udp_client() as c:
            srv.faults.add(Drop(), every=3)
            for i in range(1, 7):
                c.sendto(b"%d" % i, srv.server_address)
            srv.wait_for_datagrams(4, timeout=5)
            srv.faults.wait_for_records(2, name="drop")
            c.sendto(b"end", srv.server_address)
            srv.wait_for_datagrams(5, timeout=5)
            self.assertEqual(received(srv), [b"1", b"2", b"4", b"5", b"end"])

    def test_duplicate(self) -> None:
        with UDPServer() as srv, udp_client() as c:
            srv.faults.add(Duplicate(copies=2), first=1)
            c.sendto(b"a", srv.server_address)
            c.sendto(b"b", srv.server_address)
            srv.wait_for_datagrams(4, timeout=5)
            self.assertEqual(received(srv), [b"a", b"a", b"a", b"b"])

    def test_reorder_swaps_with_the_next(self) -> None:
        with UDPServer() as srv, udp_client() as c:
            srv.faults.add(Reorder(), first=1)
            for d in (b"1", b"2", b"3"):
                c.sendto(d, srv.server_address)
            srv.wait_for_datagrams(3, timeout=5)
            self.assertEqual(received(srv), [b"2", b"1", b"3"])

    def test_reorder_releases_a_lone_datagram_after_the_max_hold(self) -> None:
        with UDPServer() as srv, udp_client() as c:
            srv.faults.add(Reorder())
            c.sendto(b"alone", srv.server_address)
            self.assertEqual(srv.wait_for_datagrams(1, timeout=5)[0].data, b"alone")

    def test_delay_reply_and_truncate_reply_seen_by_the_client(self) -> None:
        with UDPServer(reply=lambda data, peer: data.upper()) as srv, udp_client() as c:
            srv.faults.add(Delay(0.3), direction=DOWNSTREAM)
            srv.faults.add(Truncate(3), direction=DOWNSTREAM)
            t0 = time.monotonic()
            c.sendto(b"hello", srv.server_address)
            data, _ = c.recvfrom(100)
            self.assertEqual(data, b"HEL")
            self.assertGreaterEqual(time.monotonic() - t0, 0.29)

    def test_dropped_reply_times_the_client_out_then_the_retry_works(self) -> None:
        with UDPServer(reply=lambda data, peer: b"pong") as srv, udp_client() as c:
            srv.faults.add(Drop(), direction=DOWNSTREAM, first=1)
            c.settimeout(0.3)
            c.sendto(b"ping", srv.server_address)
            with self.assertRaises(TimeoutError):
                c.recvfrom(100)
            c.settimeout(5)
            c.sendto(b"ping", srv.server_address)
            self.assertEqual(c.recvfrom(100)[0], b"pong")

    def test_seeded_drop_gives_the_same_sequence_twice(self) -> None:
        runs = []
        for _ in range(2):
            with UDPServer() as srv, udp_client() as c:
                srv.faults.add(Drop(), probability=0.5, seed=99)
                srv.faults.add(Delay(0.01, jitter=0.005), seed=99)
                for i in range(40):
                    c.sendto(b"%d" % i, srv.server_address)
                srv.faults.wait_for_records(40, timeout=5)
                c.sendto(b"end", srv.server_address)  # not dropped? then wait for it
                srv.wait_for(lambda: len(srv.faults.rules[0].records) +
                             srv.received_count >= 41, timeout=5)
                dropped = [r.connection for r in srv.faults.rules[0].records]
                runs.append(dropped)
        self.assertEqual(runs[0], runs[1])
        self.assertTrue(0 < len(runs[0]) < 41, runs[0])

    def test_unix_datagram_and_removal(self) -> None:
        with UnixDatagramServer() as srv, \
                socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
            rule = srv.faults.add(Drop())
            c.sendto(b"lost", srv.server_address)
            srv.faults.wait_for_records(1, name="drop")
            rule.remove()
            c.sendto(b"kept", srv.server_address)
            self.assertEqual(srv.wait_for_datagrams(1, timeout=5)[0].data, b"kept")

    def test_bad_arguments(self) -> None:
        for make in (lambda: Duplicate(0), lambda: Reorder(0), lambda: Delay(-1),
                     lambda: Truncate(-1)):
            with self.assertRaises(InvalidArgumentError):
                make()
        with UDPServer() as srv:
            with self.assertRaises(InvalidArgumentError):
                srv.faults.add(Drop(), direction="sideways")
            with self.assertRaises(InvalidArgumentError):
                srv.faults.add("drop")  # type: ignore[arg-type]


if __name__ == "__main__":
    unittest.main()
