"""SMTPServer under a pipelined flood of commands the machine answers itself.

The machine answers at most COMMANDS_PER_CALL such commands per
``next_event()`` call and then yields; the server answers the rest on later
reactor passes.  These tests prove that nothing is lost or reordered that
way, over a real socket: with QUIT at the end, and with the client
half-closing right after its flood (EOF behind the backlog).
"""

from __future__ import annotations

import socket
import threading
import time
import unittest

from protocols.smtp import COMMANDS_PER_CALL, SMTPServer

TIMEOUT = 20.0  # generous: the box is a noisy 2-core machine
NOOPS = 20_000  # several hundred times COMMANDS_PER_CALL


class Reader(threading.Thread):
    """Reads everything the server sends until EOF (bounded by TIMEOUT)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.data = bytearray()
        self.eof = False

    def run(self) -> None:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                self.eof = True
                return
            self.data += chunk


def reply_codes(data: bytes) -> list[int]:
    """The code of each complete reply (multi-line replies count once)."""
    return [int(line[:3]) for line in bytes(data).split(b"\r\n") if line[3:4] == b" "]


class TestPipelinedFlood(unittest.TestCase):
    def setUp(self) -> None:
        self.server = SMTPServer()
        self.server.start()
        self.addCleanup(self.server.stop)

    def flood(self, tail: bytes, half_close: bool) -> Reader:
        sock = socket.create_connection(self.server.server_address, timeout=TIMEOUT)
        self.addCleanup(sock.close)
        reader = Reader(sock)
        reader.start()
        sock.sendall(b"EHLO flood\r\n" + b"NOOP\r\n" * NOOPS + tail)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        reader.join(TIMEOUT)
        self.assertFalse(reader.is_alive(), "the server never closed the connection")
        return reader

    def test_every_noop_is_answered_in_order_before_quit(self) -> None:
        self.assertLess(COMMANDS_PER_CALL * 100, NOOPS)
        reader = self.flood(b"QUIT\r\n", half_close=False)
        self.assertTrue(reader.eof)
        self.assertEqual(reply_codes(reader.data), [220, 250] + [250] * NOOPS + [221])

    def test_eof_behind_the_backlog_waits_for_it(self) -> None:
        reader = self.flood(b"", half_close=True)
        self.assertTrue(reader.eof)
        self.assertEqual(reply_codes(reader.data), [220, 250] + [250] * NOOPS)


if __name__ == "__main__":
    unittest.main()
