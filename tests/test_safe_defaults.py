"""G7 safe defaults: every server listens on loopback (or a private Unix path)
unless told otherwise, and speaks TLS only when given an ``ssl.SSLContext``."""

from __future__ import annotations

import os
import socket
import stat
import unittest

import protocols
from protocols import (
    HTTPServer,
    SMTPServer,
    TCPServer,
    UDPServer,
    UnixDatagramServer,
    UnixStreamServer,
)

INET_KINDS = [
    TCPServer,
    UDPServer,
    HTTPServer,
    SMTPServer,
    protocols.SyslogUDPServer,
    protocols.SyslogTCPServer,
]
UNIX_KINDS = [UnixStreamServer, UnixDatagramServer, protocols.SyslogUnixDatagramServer]


class SafeDefaultsTest(unittest.TestCase):
    def test_default_address_is_loopback_and_a_free_port(self) -> None:
        for kind in INET_KINDS:
            with self.subTest(kind=kind.__name__):
                server = kind()
                try:
                    host, port = server.server_address[:2]
                    self.assertEqual(host, "127.0.0.1")
                    self.assertGreater(port, 0)
                    self.assertEqual(server.port, port)
                finally:
                    server.stop()

    def test_default_unix_path_is_private_and_removed(self) -> None:
        for kind in UNIX_KINDS:
            with self.subTest(kind=kind.__name__):
                server = kind()
                path = server.server_address
                try:
                    mode = os.stat(os.path.dirname(path)).st_mode
                    self.assertEqual(stat.S_IMODE(mode) & 0o077, 0, oct(mode))
                finally:
                    server.stop()
                self.assertFalse(os.path.exists(path))

    def test_plaintext_unless_a_context_is_given(self) -> None:
        with HTTPServer(handler=lambda r: b"hi") as server:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as c:
                c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                self.assertTrue(c.recv(64).startswith(b"HTTP/1.1 200"))
        with SMTPServer() as server:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as c:
                self.assertTrue(c.recv(64).startswith(b"220 "))
                c.sendall(b"EHLO x\r\n")
                ehlo = b""
                while b"\r\n250 " not in ehlo and not ehlo.startswith(b"250 "):
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    ehlo += chunk
                self.assertNotIn(b"STARTTLS", ehlo)  # offered only with starttls_context=
                self.assertNotIn(b"AUTH", ehlo)  # offered only with auth=


if __name__ == "__main__":
    unittest.main()
