"""When the reactor thread dies, every socket of every server on it closes at once."""

from __future__ import annotations

import socket
import unittest
from typing import Any

from protocols import TCPServer, UDPServer
from reactor import ReactorDied


def _kill(srv: Any) -> None:
    r = srv._reactor

    def boom() -> None:
        raise SystemExit("reactor killed by the test")

    r.call_soon_threadsafe(boom)
    r.join(5)
    assert r.dead


class DeadReactorClosesSocketsTest(unittest.TestCase):
    """Issue 9 item 6."""

    def test_listeners_and_connections_close_and_servers_report_death(self) -> None:
        tcp = TCPServer(on_data=lambda c, d: None, report_errors=False)
        udp = UDPServer(report_errors=False)
        tcp.start()
        udp.start()
        self.addCleanup(udp.stop, timeout=5)
        self.addCleanup(tcp.stop, timeout=5)
        addr = tcp.server_address
        c = socket.create_connection(addr, timeout=5)
        self.addCleanup(c.close)
        tcp.wait_for(lambda: tcp.connection_count == 1, timeout=5, what="accept")
        _kill(tcp)
        # the open connection sees EOF or a reset at once
        c.settimeout(5)
        try:
            data = c.recv(1)
        except ConnectionResetError:
            data = b""
        self.assertEqual(data, b"")
        # the listener is closed: a new client is refused, not left hanging
        with self.assertRaises(OSError):
            socket.create_connection(addr, timeout=2).close()
        self.assertIsNone(udp.socket)
        with self.assertRaises(ReactorDied):
            tcp.wait_for(lambda: False, timeout=5)
        with self.assertRaises(ReactorDied):
            udp.wait_for_datagrams(1, timeout=5)
        # start() moves to a new reactor
        tcp.start()
        udp.start()
        with socket.create_connection(tcp.server_address, timeout=5):
            tcp.wait_for(lambda: tcp.connection_count == 1, timeout=5, what="accept")


if __name__ == "__main__":
    unittest.main()
