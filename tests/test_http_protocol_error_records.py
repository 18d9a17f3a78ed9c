"""A refused HTTP request is observable in public: reason, status and the offending input.

The machine puts (a bounded slice of) the refused octets on the
:class:`RemoteProtocolError`; the server records it in ``protocol_errors`` and
hands it, with the peer, to ``on_protocol_error``.  The CLI's HTTP sink is
built on only these (tests/test_cli.py checks what it prints).
"""

from __future__ import annotations

import socket
import threading
import unittest

from protocols.http import (
    OFFENDING_BYTES_LIMIT,
    EndOfMessage,
    HTTP11Machine,
    HTTPServer,
    RemoteProtocolError,
    Response,
)

TIMEOUT = 10


def refuse(data: bytes) -> RemoteProtocolError:
    """Feed ``data`` to a fresh machine and return the error it raises."""
    m = HTTP11Machine()
    m.receive_data(data)
    for _ in range(100):  # bounded: a request has few events
        try:
            m.next_event()
        except RemoteProtocolError as exc:
            return exc
    raise AssertionError(f"{data!r} was not refused")


def exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as c:
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := c.recv(4096):
            got += chunk
        return got


class MachineOffendingBytesTest(unittest.TestCase):
    """``RemoteProtocolError.offending``: what the machine refused, exactly, bounded."""

    def test_malformed_request_line_keeps_the_head(self) -> None:
        exc = refuse(b"GET /\x1b[31m HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertEqual(str(exc), "malformed request line")
        self.assertEqual(exc.status_hint, 400)
        self.assertEqual(exc.offending, b"GET /\x1b[31m HTTP/1.1\r\nHost: h\r\n\r\n")

    def test_http2_preface(self) -> None:
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        exc = refuse(preface)
        self.assertEqual(exc.status_hint, 505)
        self.assertEqual(exc.offending, preface)

    def test_fed_one_octet_at_a_time(self) -> None:
        data = b"GET / HTTP/1.1\r\nHost : h\r\n\r\n"
        m = HTTP11Machine()
        for i in range(len(data)):
            m.receive_data(data[i : i + 1])
            try:
                m.next_event()
            except RemoteProtocolError as exc:
                self.assertEqual(exc.offending, data)
                return
        self.fail("never refused")

    def test_a_huge_head_is_not_copied(self) -> None:
        exc = refuse(b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n")
        self.assertEqual(exc.status_hint, 414)
        self.assertEqual(exc.offending, (b"GET /" + b"a" * 100_000)[:OFFENDING_BYTES_LIMIT])

    def test_pipelined_second_request_shows_only_itself(self) -> None:
        m = HTTP11Machine()
        m.receive_data(b"GET /ok HTTP/1.1\r\nHost: h\r\n\r\nBAD\x00 / HTTP/1.1\r\n\r\n")
        m.next_event()  # Request
        m.next_event()  # EndOfMessage
        m.send(Response(status_code=200, headers=(("Content-Length", "0"),)))
        m.send(EndOfMessage())
        with self.assertRaises(RemoteProtocolError) as cm:
            m.next_event()
        self.assertEqual(cm.exception.offending, b"BAD\x00 / HTTP/1.1\r\n\r\n")

    def test_bad_chunk_size_line_is_in_the_slice(self) -> None:
        exc = refuse(
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\nzz;\x07\r\n"
        )
        self.assertEqual(str(exc), "invalid chunk-size line")
        self.assertIn(b"zz;\x07\r\n", exc.offending)
        self.assertNotIn(b"Transfer-Encoding", exc.offending)  # the body, not the head

    def test_long_body_error_slice_is_bounded(self) -> None:
        exc = refuse(
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2710\r\n" + b"x" * 10000 + b"!!\r\n"
        )
        self.assertEqual(str(exc), "chunk data not followed by CRLF")
        self.assertLessEqual(len(exc.offending), OFFENDING_BYTES_LIMIT)
        self.assertIn(b"x!!\r\n", exc.offending)


class ServerProtocolErrorObserversTest(unittest.TestCase):
    """``protocol_errors`` and ``on_protocol_error`` on a live server."""

    def test_callback_gets_error_and_peer_after_recording(self) -> None:
        seen: list[tuple[RemoteProtocolError, object, int]] = []
        got = threading.Event()

        def observe(exc: RemoteProtocolError, peer: object) -> None:
            seen.append((exc, peer, len(server.protocol_errors)))
            got.set()

        server = HTTPServer(on_protocol_error=observe)
        with server:
            with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as c:
                c.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                me = c.getsockname()
                c.shutdown(socket.SHUT_WR)
                self.assertIn(b"505", c.recv(4096))
            self.assertTrue(got.wait(TIMEOUT))
        ((exc, peer, recorded),) = seen
        self.assertEqual(peer, me)
        self.assertEqual(recorded, 1)  # recorded before the callback ran
        self.assertIs(server.protocol_errors[0], exc)
        self.assertEqual(exc.status_hint, 505)
        self.assertEqual(exc.offending, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        self.assertEqual(str(exc), "unsupported HTTP version")

    def test_a_failing_callback_is_recorded_and_the_server_goes_on(self) -> None:
        def observe(exc: RemoteProtocolError, peer: object) -> None:
            raise RuntimeError("observer bug")

        with HTTPServer(on_protocol_error=observe, report_errors=False) as server:
            self.assertIn(b" 400 ", exchange(server.port, b"NOT HTTP\r\n\r\n"))
            server.wait_for(lambda: server.errors or None, TIMEOUT, "the observer's error")
            self.assertIn(b" 200 ", exchange(server.port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"))
        self.assertIsInstance(server.errors[0], RuntimeError)
        self.assertEqual(len(server.protocol_errors), 1)

    def test_record_false_keeps_no_refusal_but_still_calls_the_observer(self) -> None:
        # A sink that may run for days (the CLI) keeps nothing it answered.
        seen: list[bytes] = []
        got = threading.Event()

        def observe(exc: RemoteProtocolError, peer: object) -> None:
            seen.append(exc.offending)
            got.set()

        with HTTPServer(record=False, on_protocol_error=observe) as server:
            self.assertIn(b" 400 ", exchange(server.port, b"NOT HTTP\r\n\r\n"))
            self.assertTrue(got.wait(TIMEOUT))
            self.assertEqual(server.protocol_errors, [])
            self.assertEqual(server.requests, [])
        self.assertEqual(seen, [b"NOT HTTP\r\n\r\n"])


if __name__ == "__main__":
    unittest.main()
