"""Large writes with nothing queued leave at once, small ones are coalesced (issue 10 item 4)."""

from __future__ import annotations

import socket
import unittest
from typing import Any

from protocols import TCPServer
from reactor import DIRECT_SEND_MIN


def read_exactly(c: socket.socket, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        chunk = c.recv(n - len(got))
        if not chunk:
            break
        got += chunk
    return bytes(got)


class DirectSendTest(unittest.TestCase):
    def test_a_large_write_is_sent_from_the_callers_buffer(self) -> None:
        seen: list[int] = []
        big = bytes(range(256)) * (DIRECT_SEND_MIN // 256 + 1)

        def on_data(conn: Any, data: bytes) -> None:
            conn.write(big)
            seen.append(conn.transport.get_write_buffer_size())

        with TCPServer(on_data=on_data, record=False) as srv:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as c:
                c.sendall(b"go")
                self.assertEqual(read_exactly(c, len(big)), big)
        # Queued for the end-of-pass send, the whole write would still be
        # buffered when write() returns; sent directly, the kernel took some.
        self.assertEqual(len(seen), 1)
        self.assertLess(seen[0], len(big))

    def test_small_writes_before_a_large_one_keep_their_order(self) -> None:
        big = b"B" * (DIRECT_SEND_MIN * 2)

        def on_data(conn: Any, data: bytes) -> None:
            conn.write(b"head:")  # queued: the large write must follow it
            conn.write(big)
            conn.write(b":tail")

        with TCPServer(on_data=on_data, record=False) as srv:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as c:
                c.sendall(b"go")
                want = b"head:" + big + b":tail"
                self.assertEqual(read_exactly(c, len(want)), want)

    def test_small_writes_are_coalesced(self) -> None:
        seen: list[int] = []

        def on_data(conn: Any, data: bytes) -> None:
            conn.write(b"a" * 100)
            conn.write(b"b" * 100)
            seen.append(conn.transport.get_write_buffer_size())

        with TCPServer(on_data=on_data, record=False) as srv:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as c:
                c.sendall(b"go")
                self.assertEqual(read_exactly(c, 200), b"a" * 100 + b"b" * 100)
        self.assertEqual(seen, [200])  # both wait for the one send at the end of the pass


if __name__ == "__main__":
    unittest.main()
