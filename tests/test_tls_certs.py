"""The committed localhost certificate verifies, for every name it claims."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import unittest

from protocols._tls import CA_FILE, CERT_FILE, KEY_FILE, KEYCERT_FILE, localhost_contexts


def _ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


class CertificateTests(unittest.TestCase):
    def handshake(self, family: int, host: str, server_hostname: str) -> dict[str, object]:
        """Do one real handshake over loopback; return the peer certificate."""
        server_ctx, client_ctx = localhost_contexts()
        with socket.socket(family, socket.SOCK_STREAM) as listener:
            listener.bind((host, 0))
            listener.listen(1)
            listener.settimeout(10)
            errors: list[BaseException] = []

            def serve() -> None:
                try:
                    conn, _ = listener.accept()
                    with server_ctx.wrap_socket(conn, server_side=True) as tls:
                        tls.sendall(tls.recv(100).upper())
                except BaseException as exc:  # reported by the main thread
                    errors.append(exc)

            t = threading.Thread(target=serve)
            t.start()
            try:
                with socket.create_connection(listener.getsockname()[:2], timeout=10) as raw:
                    with client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
                        tls.sendall(b"ping")
                        self.assertEqual(tls.recv(100), b"PING")
                        cert = tls.getpeercert()
            finally:
                t.join(10)
            self.assertFalse(t.is_alive())
            self.assertEqual(errors, [])
            assert cert is not None
            return cert

    def test_localhost_name(self) -> None:
        cert = self.handshake(socket.AF_INET, "127.0.0.1", "localhost")
        self.assertIn(("DNS", "localhost"), cert["subjectAltName"])  # type: ignore[operator]

    def test_ipv4_literal(self) -> None:
        self.handshake(socket.AF_INET, "127.0.0.1", "127.0.0.1")

    def test_ipv6_literal(self) -> None:
        if not _ipv6_available():
            self.skipTest("no IPv6 loopback on this machine")
        self.handshake(socket.AF_INET6, "::1", "::1")

    def test_other_name_is_refused(self) -> None:
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.handshake(socket.AF_INET, "127.0.0.1", "example.com")

    def test_long_lived(self) -> None:
        for path in (CA_FILE, CERT_FILE):
            info = ssl._ssl._test_decode_cert(path)  # type: ignore[attr-defined]
            expires = ssl.cert_time_to_seconds(info["notAfter"])
            self.assertGreater(expires, ssl.cert_time_to_seconds("Jan  1 00:00:00 2100 GMT"))

    def test_files_and_client_context(self) -> None:
        for path in (CA_FILE, CERT_FILE, KEY_FILE, KEYCERT_FILE):
            self.assertTrue(os.path.getsize(path) > 0, path)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(KEYCERT_FILE)  # the combined file works alone
        _, client = localhost_contexts()
        self.assertEqual(client.verify_mode, ssl.CERT_REQUIRED)
        self.assertTrue(client.check_hostname)


if __name__ == "__main__":
    unittest.main()
