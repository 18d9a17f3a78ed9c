"""The keep-alive fast path answers exactly as the full machine loop does.

``HTTPServer`` answers a whole request that repeats a head it has accepted
before (no body, or a Content-Length body wholly in one read) straight from
the socket read (``_HTTPConnection._fast``, ``HTTP11Machine.fast_request``)
and sends the replies at once (``StreamTransport.write_now``).  Each test
runs the same client conversation against a server with the fast path and
one without it (``_fast_path = False``) and compares what the client
received, byte for byte (the Date value masked), and what the servers
recorded; and checks that the fast path was taken.  Real sockets, loopback
only; every wait is bounded.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import unittest
from typing import Any
from unittest import mock

from protocols import HTTP11Machine, HTTPLimits, HTTPRequest, HTTPServer, Reply

TIMEOUT = 10.0
GET = b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n"
GET_LF = b"GET /lf HTTP/1.1\nHost: h\n\n"
POST = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
POST_EXPECT = (
    b"POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"
)
HEAD = b"HEAD /a?x=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n"
CLOSE = b"GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
OLD = b"GET /old HTTP/1.0\r\n\r\n"

#: Hostile inputs (G6), each sent after fast-path requests on the same connection.
HOSTILE = {
    "CL and TE": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "conflicting CL": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
    b"Content-Length: 4\r\n\r\n",
    "no Host": b"GET / HTTP/1.1\r\n\r\n",
    "malformed line": b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
    "bare CR": b"GET / HTTP/1.1\r\nHost: h\rX\r\n\r\n",
    "414": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
    "431": b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"v" * 70000 + b"\r\n\r\n",
    "413": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999\r\n\r\n",
    "501": b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
    "505": b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    "417": b"POST / HTTP/1.1\r\nHost: h\r\nExpect: tea\r\nContent-Length: 1\r\n\r\nx",
    "bad chunk": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
}

_DATE = re.compile(rb"Date: [^\r\n]*")


def _handler(calls: list[tuple[str, str, bytes]]) -> Any:
    def handler(request: HTTPRequest) -> Any:
        calls.append((request.method, request.target, request.body))
        path = request.path
        if path == "/raise":
            raise ValueError("handler failed")
        if path == "/none":
            return None
        if path == "/str":
            return "text body"
        if path == "/tuple":
            return (201, b"made")
        if path == "/delay":
            return Reply(200, b"late", delay=0.01)
        if path == "/later":
            responder = request.respond_later()
            threading.Timer(0.01, responder.send, (202, b"later")).start()
            return None
        if path == "/bad":
            return Reply(200, b"x", (("Bad Name", "v"),))
        return Reply(200, b"ok:" + request.body, (("Content-Type", "text/plain"),))

    return handler


def _converse(port: int, steps: list[bytes], *, idle: float = 0.15) -> bytes:
    """Send each step, reading what comes back until quiet; return all received."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for step in steps:
            try:
                s.sendall(step)
            except OSError:
                break
            got += _read_until_quiet(s, idle)
        got += _read_until_quiet(s, idle)
    return got


def _read_until_quiet(s: socket.socket, idle: float) -> bytes:
    got = b""
    deadline = time.monotonic() + TIMEOUT
    s.settimeout(idle)
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            break
        except OSError:
            break
        if not chunk:
            break
        got += chunk
    s.settimeout(TIMEOUT)
    return got


def _requests(server: HTTPServer) -> list[tuple[Any, ...]]:
    return [
        (r.method, r.target, r.http_version, r.headers, r.body, r.trailers, r.complete,
         r.client_address[0])
        for r in server.requests
    ]


def _refusals(server: HTTPServer) -> list[tuple[Any, ...]]:
    return [(str(e), e.status_hint, e.offending) for e in server.protocol_errors]


def _errors(server: HTTPServer) -> list[tuple[type, str]]:
    return [(type(e), str(e)) for e in server.errors]


class _Counted:
    """Counts the requests HTTP11Machine.fast_request took (wraps the real one)."""

    def __init__(self) -> None:
        self.taken = 0
        real = HTTP11Machine.fast_request

        def counting(machine: HTTP11Machine, *args: Any) -> Any:
            got = real(machine, *args)
            if got is not None:
                self.taken += 1
            return got

        self.method = counting


class FastPathEquivalenceTests(unittest.TestCase):
    def _both(
        self, conversations: list[list[bytes]], **server_kwargs: Any
    ) -> tuple[list[bytes], int]:
        """Run *conversations* on a slow and a fast server and compare.

        Returns the fast server's transcripts and how many requests it took fast.
        """
        results = []
        counter = _Counted()
        for fast in (False, True):
            calls: list[tuple[str, str, bytes]] = []
            server = HTTPServer(handler=_handler(calls), **server_kwargs)
            server._fast_path = fast
            real = HTTP11Machine.fast_request
            with mock.patch.object(HTTP11Machine, "fast_request", counter.method if fast else real):
                server.start()
                try:
                    assert server.port is not None
                    transcripts = [
                        _DATE.sub(b"Date: -", _converse(server.port, steps))
                        for steps in conversations
                    ]
                    server.wait_for(
                        lambda s=server: s.connection_count == 0, TIMEOUT, "connections closed"
                    )
                finally:
                    server.stop(raise_errors=False)
            results.append(
                (transcripts, _requests(server), _refusals(server), _errors(server), calls,
                 [r.target for r in server.unanswered])
            )
        slow, fast_result = results
        self.assertEqual(fast_result[0], slow[0], "response bytes differ")
        self.assertEqual(fast_result[1], slow[1], "requests recorded differ")
        self.assertEqual(fast_result[2], slow[2], "protocol errors differ")
        self.assertEqual(fast_result[3], slow[3], "errors differ")
        self.assertEqual(fast_result[4], slow[4], "handler calls differ")
        self.assertEqual(fast_result[5], slow[5], "unanswered differ")
        return fast_result[0], counter.taken

    def test_repeated_requests_one_per_read(self) -> None:
        steps = [GET, GET, POST, POST, GET_LF, GET_LF, HEAD, HEAD, POST_EXPECT, POST_EXPECT,
                 GET, OLD, GET]
        [transcript], taken = self._both([steps])
        self.assertGreaterEqual(taken, 5)  # the repeats went the fast way
        self.assertEqual(transcript.count(b"HTTP/1.1 200 OK\r\n"), len(steps) - 1)
        self.assertNotIn(b"100 Continue", transcript)  # the body came with the head

    def test_pipelined_requests(self) -> None:
        batch = GET + POST + GET + HEAD + POST
        [transcript], taken = self._both([[GET, POST, HEAD, batch, batch + CLOSE, GET]])
        self.assertGreaterEqual(taken, 4)
        self.assertEqual(transcript.count(b"HTTP/1.1 200 OK\r\n"), 3 + 5 + 6)
        self.assertTrue(transcript.endswith(b"ok:"), transcript[-200:])  # closed after /c

    def test_pipeline_longer_than_the_pass_budget(self) -> None:
        # 2 events per request, 64 per pass: the fast path hands the rest
        # to the machine loop, which yields and carries on next pass.
        [transcript], taken = self._both([[GET, GET * 100]])
        self.assertEqual(transcript.count(b"HTTP/1.1 200 OK\r\n"), 101)
        # (How many of the pipeline's requests one read holds depends on
        # the machine's load; the conversation is the same either way.)
        self.assertGreaterEqual(taken, 2)

    def test_request_split_across_reads(self) -> None:
        steps = [GET, GET[:20], GET[20:], POST[:-2], POST[-2:], GET]
        [transcript], taken = self._both([steps])
        self.assertEqual(transcript.count(b"HTTP/1.1 200 OK\r\n"), 4)
        self.assertGreaterEqual(taken, 1)

    def test_request_followed_by_a_partial_one(self) -> None:
        steps = [GET, GET + POST[:30], POST[30:], GET + b"\r\n", GET]
        [transcript], taken = self._both([steps])
        self.assertEqual(transcript.count(b"HTTP/1.1 200 OK\r\n"), 5)
        self.assertGreaterEqual(taken, 2)

    def test_hostile_input_after_fast_requests(self) -> None:
        conversations = [[GET, GET, POST, bad, GET] for bad in HOSTILE.values()]
        transcripts, taken = self._both(conversations)
        self.assertGreaterEqual(taken, 2 * len(HOSTILE))
        statuses = [b"400", b"400", b"400", b"400", b"400", b"414", b"431", b"413", b"501",
                    b"505", b"417", b"400"]
        for name, status, transcript in zip(HOSTILE, statuses, transcripts, strict=True):
            with self.subTest(name):
                self.assertEqual(transcript.count(b"HTTP/1.1 200 OK\r\n"), 3)
                self.assertIn(b"HTTP/1.1 " + status + b" ", transcript)
                self.assertIn(b"Connection: close", transcript)

    def test_hostile_input_pipelined_behind_fast_requests(self) -> None:
        conversations = [[GET, GET + GET + bad] for bad in HOSTILE.values()]
        transcripts, taken = self._both(conversations)
        for name, transcript in zip(HOSTILE, transcripts, strict=True):
            with self.subTest(name):
                self.assertEqual(transcript.count(b"HTTP/1.1 200 OK\r\n"), 3)
                self.assertIn(b"Connection: close", transcript)
        self.assertGreaterEqual(taken, len(HOSTILE))

    def test_handler_outcomes(self) -> None:
        paths = ["/raise", "/none", "/str", "/tuple", "/delay", "/later", "/bad"]
        conversations = []
        for path in paths:
            req = f"GET {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode()
            conversations.append([req, req, req + req, GET])
        transcripts, taken = self._both(conversations)
        self.assertGreaterEqual(taken, 2 * len(paths))
        for path, transcript in zip(paths, transcripts, strict=True):
            with self.subTest(path):
                self.assertEqual(transcript.count(b"HTTP/1.1 "), 5)
        self.assertEqual(transcripts[0].count(b"500 Internal Server Error: ValueError"), 4)

    def test_limits_still_apply_to_remembered_heads(self) -> None:
        # A head remembered under one HTTPLimits is not taken under others.
        limits = HTTPLimits(max_header_bytes=40)
        long_field = b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"v" * 30 + b"\r\n\r\n"
        [transcript], _ = self._both([[GET, GET, long_field]], limits=limits)
        self.assertIn(b"431", transcript)

    def test_stop_mid_stream_loses_nothing(self) -> None:
        for fast in (False, True):
            with self.subTest(fast=fast):
                server = HTTPServer(handler=_handler([]))
                server._fast_path = fast
                server.start()
                with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as s:
                    s.sendall(GET)
                    _read_until_quiet(s, 0.2)
                    s.sendall(GET * 300)
                    server.wait_for(
                        lambda s=server: len(s.requests) >= 2, TIMEOUT, "a request"
                    )
                    server.stop()
                    got = _read_until_quiet(s, 1.0)
                self.assertEqual(len(server.requests), 301)
                # Every request received before stop() was answered (G3);
                # the first response was read before.
                self.assertEqual(got.count(b"HTTP/1.1 200 OK\r\n"), 300)


class WriteNowTests(unittest.TestCase):
    def test_replies_leave_in_the_read_pass(self) -> None:
        # The fast path's replies are sent from the read itself: no
        # scheduled flush is queued for them.
        calls: list[tuple[str, str, bytes]] = []
        with HTTPServer(handler=_handler(calls)) as server:
            from reactor import StreamTransport

            scheduled = []
            real = StreamTransport._scheduled_flush

            def counting(t: StreamTransport) -> None:
                scheduled.append(t)
                real(t)

            with mock.patch.object(StreamTransport, "_scheduled_flush", counting):
                assert server.port is not None
                got = _converse(server.port, [GET, GET, GET, GET])
            self.assertEqual(got.count(b"HTTP/1.1 200 OK\r\n"), 4)
            self.assertLessEqual(len(scheduled), 1)  # the first (memo-filling) request


if __name__ == "__main__":
    unittest.main()
