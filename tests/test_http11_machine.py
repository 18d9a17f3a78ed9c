"""Tests of the sans-I/O HTTP/1.1 server machine (no sockets).

Every input is fed three ways: whole, one byte at a time, and in random
pieces; and with trailing data after it (which must not change the outcome).
"""

from __future__ import annotations

import http.client
import io
import random
import time
import unittest
from collections.abc import Iterator

from protocols.http._events import (
    MAX_BODY_SIZE,
    MAX_HEADER_BYTES,
    MAX_HEADER_FIELDS,
    MAX_REQUEST_LINE,
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    HTTPLimits,
    InformationalResponse,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    Response,
)
from protocols.http._machine import CHUNKS_PER_DATA_EVENT, HTTP11Machine, State

# Status codes named, not scattered.
OK = 200
BAD_REQUEST = 400
UNAUTHORIZED = 401
CONTENT_TOO_LARGE = 413
URI_TOO_LONG = 414
EXPECTATION_FAILED = 417
HEADERS_TOO_LARGE = 431
NOT_IMPLEMENTED = 501
VERSION_NOT_SUPPORTED = 505

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
TRAILING = b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n"
MAX_STEPS = 1_000_000  # bound on every drain loop


def pieces(data: bytes, mode: str, seed: int = 0) -> Iterator[bytes]:
    if mode == "whole":
        yield data
    elif mode == "bytes":
        for i in range(len(data)):
            yield data[i : i + 1]
    else:
        rng = random.Random(seed)
        i = 0
        while i < len(data):
            n = rng.randint(1, 9)
            yield data[i : i + n]
            i += n


MODES = ("whole", "bytes", "random")


def drain(m: HTTP11Machine, out: list[object]) -> object:
    """Append events to *out* until NEED_DATA / PAUSED / ConnectionClosed; return the stop."""
    for _ in range(MAX_STEPS):
        ev = m.next_event()
        if ev is NEED_DATA or ev is PAUSED:
            return ev
        if isinstance(ev, Data) and out and isinstance(out[-1], Data):
            out[-1] = Data(data=out[-1].data + ev.data)  # normalise piece sizes
        else:
            out.append(ev)
        if isinstance(ev, ConnectionClosed):
            return ev
    raise AssertionError("drain did not stop")


def feed(m: HTTP11Machine, data: bytes, mode: str, eof: bool = False) -> list[object]:
    events: list[object] = []
    for piece in pieces(data, mode):
        m.receive_data(piece)
        drain(m, events)
    if eof:
        m.receive_data(b"")
        drain(m, events)
    return events


def parse_response(raw: bytes, method: str = "GET") -> tuple[http.client.HTTPResponse, bytes]:
    """Parse one response with http.client (an independent client-side parser)."""

    class Sock:
        def makefile(self, mode: str) -> io.BytesIO:
            return io.BytesIO(raw)

    resp = http.client.HTTPResponse(Sock(), method=method)  # type: ignore[arg-type]
    resp.begin()
    body = resp.read()
    return resp, body


def get(target: str = "/", extra: bytes = b"", version: bytes = b"1.1") -> bytes:
    return b"GET " + target.encode() + b" HTTP/" + version + b"\r\nHost: h\r\n" + extra + b"\r\n"


class RequestParsingTests(unittest.TestCase):
    def each(self, data: bytes, eof: bool = False) -> Iterator[tuple[str, list[object]]]:
        for mode in MODES:
            with self.subTest(mode=mode):
                yield mode, feed(HTTP11Machine(), data, mode, eof)

    def test_simple_get(self) -> None:
        for _, events in self.each(get("/a?b=c")):
            self.assertEqual(
                events,
                [
                    Request(method="GET", target="/a?b=c", http_version="1.1",
                            headers=(("Host", "h"),)),
                    EndOfMessage(),
                ],
            )

    def test_trailing_data_waits_for_the_response(self) -> None:
        for mode in MODES:
            with self.subTest(mode=mode):
                m = HTTP11Machine()
                events = feed(m, get("/1") + TRAILING, mode)
                self.assertEqual(len(events), 2)
                self.assertIs(m.next_event(), PAUSED)
                self.assertEqual(m.buffered, len(TRAILING))
                m.send_response(OK, [], b"one")
                events = []
                drain(m, events)
                self.assertEqual(events[0].target, "/next")  # type: ignore[attr-defined]

    def test_headers_ows_obs_text_and_case_kept(self) -> None:
        data = get(extra=b"X-A:   spaced  value \t\r\nx-b:\r\nX-C: caf\xe9\r\n")
        for _, events in self.each(data):
            req = events[0]
            assert isinstance(req, Request)
            self.assertEqual(
                req.headers,
                (("Host", "h"), ("X-A", "spaced  value"), ("x-b", ""), ("X-C", "caf\xe9")),
            )
            self.assertEqual(req.get_header("x-a"), "spaced  value")
            self.assertIsNone(req.get_header("missing"))

    def test_repeated_fields_joined(self) -> None:
        req = feed(HTTP11Machine(), get(extra=b"A: 1\r\nA: 2\r\n"), "whole")[0]
        assert isinstance(req, Request)
        self.assertEqual(req.get_header("a"), "1, 2")

    def test_bare_lf_accepted_in_head(self) -> None:
        # RFC 9112 §2.2: a recipient MAY accept a bare LF; documented in _http11.
        for data in (
            b"GET / HTTP/1.1\nHost: h\n\n",
            b"GET / HTTP/1.1\r\nHost: h\n\r\n",
            b"GET / HTTP/1.1\nHost: h\r\n\n",
        ):
            for _, events in self.each(data):
                self.assertEqual(len(events), 2)
                self.assertEqual(events[0].headers, (("Host", "h"),))  # type: ignore[attr-defined]

    def test_leading_empty_lines_ignored(self) -> None:
        for _, events in self.each(b"\r\n\n\r\n" + get()):
            self.assertEqual(events[0].method, "GET")  # type: ignore[attr-defined]

    def test_http10_and_higher_minor_version(self) -> None:
        for _, events in self.each(b"GET / HTTP/1.0\r\n\r\n"):
            self.assertEqual(events[0].http_version, "1.0")  # type: ignore[attr-defined]
        for _, events in self.each(get(version=b"1.7")):
            self.assertEqual(events[0].http_version, "1.1")  # type: ignore[attr-defined]

    def test_content_length_body(self) -> None:
        body = bytes(range(256)) * 3
        data = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 768\r\n\r\n" + body
        for _, events in self.each(data):
            self.assertEqual(events[1:], [Data(data=body), EndOfMessage()])

    def test_content_length_identical_list_and_leading_zeros(self) -> None:
        for cl in (b"Content-Length: 3, 3\r\n", b"Content-Length: 3\r\nContent-Length: 3\r\n",
                   b"Content-Length: 003\r\n"):
            data = b"POST / HTTP/1.1\r\nHost: h\r\n" + cl + b"\r\nabc"
            for _, events in self.each(data):
                self.assertEqual(events[1:], [Data(data=b"abc"), EndOfMessage()])

    def test_chunked_body_with_extensions_and_trailers(self) -> None:
        data = (
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"
            b"5;name=value;flag\r\nhello\r\n"
            b"A ; q=\"a \\\"quoted\\\" ext\"\r\n0123456789\r\n"
            b"0\r\nX-Sum: 15\r\nX-Other: o\r\n\r\n"
        )
        for _, events in self.each(data + TRAILING):
            self.assertEqual(
                events[1:],
                [Data(data=b"hello0123456789"),
                 EndOfMessage(trailers=(("X-Sum", "15"), ("X-Other", "o")))],
            )

    def test_chunked_without_trailers(self) -> None:
        data = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        for _, events in self.each(data):
            self.assertEqual(events[1:], [EndOfMessage()])

    def test_pipelined_ten_requests_in_order(self) -> None:
        data = b"".join(get(f"/{i}") for i in range(10))
        for mode in MODES:
            with self.subTest(mode=mode):
                m = HTTP11Machine()
                seen: list[str] = []
                out = b""
                for piece in pieces(data, mode):
                    m.receive_data(piece)
                    for _ in range(100):
                        ev = m.next_event()
                        if ev is NEED_DATA:
                            break
                        if isinstance(ev, Request):
                            seen.append(ev.target)
                        elif isinstance(ev, EndOfMessage):
                            self.assertIs(m.next_event(), PAUSED)
                            m.send_response(OK, [], seen[-1].encode())
                            out += m.data_to_send()
                self.assertEqual(seen, [f"/{i}" for i in range(10)])
                self.assertEqual(out, b"".join(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n/%d" % (len(str(i)) + 1, i)
                    for i in range(10)))

    def test_pipelined_error_answered_in_turn(self) -> None:
        for mode in MODES:
            with self.subTest(mode=mode):
                m = HTTP11Machine()
                events = feed(m, get("/ok") + b"BROKEN\r\n\r\n", mode)
                self.assertEqual(len(events), 2)
                self.assertEqual(m.data_to_send(), b"")  # no error jumps the queue
                m.send_response(OK, [], b"first")
                first = m.data_to_send()
                with self.assertRaises(RemoteProtocolError):
                    m.next_event()
                self.assertEqual(parse_response(first)[1], b"first")
                self.assertEqual(parse_response(m.data_to_send())[0].status, BAD_REQUEST)

    def test_eof_between_requests(self) -> None:
        m = HTTP11Machine()
        events = feed(m, get(), "whole", eof=True)
        self.assertEqual(len(events), 2)
        self.assertIs(m.next_event(), PAUSED)  # the response is still owed
        m.send_response(OK, [], b"")
        self.assertEqual(m.next_event(), ConnectionClosed())
        self.assertEqual(m.next_event(), ConnectionClosed())
        self.assertIs(m.their_state, State.CLOSED)
        with self.assertRaises(LocalProtocolError):
            m.receive_data(b"more")

    def test_linear_time_bytewise(self) -> None:
        # Feeding a header section one byte at a time must cost linear time:
        # 8x the input may take about 8x as long (a rescan from the start on
        # every feed measured over 30x here).
        def cost(n: int) -> float:
            data = b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * n + b"\r\n\r\n"
            best = float("inf")
            for _ in range(3):
                m = HTTP11Machine()
                t0 = time.perf_counter()
                for i in range(len(data)):
                    m.receive_data(data[i : i + 1])
                    ev = m.next_event()
                best = min(best, time.perf_counter() - t0)
            self.assertIsInstance(ev, EndOfMessage | Request)
            return best

        small, large = cost(8_000), cost(64_000)
        self.assertLess(large / small, 16.0)

    def test_large_body_in_pieces_is_linear_and_complete(self) -> None:
        body = b"x" * (3 * 1024 * 1024)
        m = HTTP11Machine()
        m.receive_data(b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body))
        self.assertIsInstance(m.next_event(), Request)
        got = bytearray()
        for i in range(0, len(body), 1000):
            m.receive_data(body[i : i + 1000])
            ev = m.next_event()
            assert isinstance(ev, Data)
            got += ev.data
        self.assertEqual(m.next_event(), EndOfMessage())
        self.assertEqual(bytes(got), body)
        self.assertLess(len(m._rb.data), 2 * 65536 + 1000)  # compacted as it went


class HostileInputTests(unittest.TestCase):
    """Every hostile case of issue 3 item 2: a clear status, a close, no crash."""

    def assertRejected(
        self,
        data: bytes,
        status: int,
        *,
        limits: HTTPLimits | None = None,
        eof: bool = False,
    ) -> None:
        for mode in MODES:
            for trailing in (b"", TRAILING):
                with self.subTest(data=data[:80], mode=mode, trailing=bool(trailing)):
                    m = HTTP11Machine(limits=limits) if limits else HTTP11Machine()
                    with self.assertRaises(RemoteProtocolError) as cm:
                        feed(m, data + trailing, mode, eof=eof)
                        if not eof:
                            m.receive_data(b"")
                            drain(m, [])
                    self.assertEqual(cm.exception.status_hint, status, cm.exception)
                    self.assertIs(m.their_state, State.ERROR)
                    self.assertTrue(m.close_after_send)
                    out = m.data_to_send()
                    resp, body = parse_response(out)
                    self.assertEqual(resp.status, status)
                    self.assertEqual(resp.getheader("Connection"), "close")
                    self.assertIn(str(cm.exception).encode(), body)
                    self.assertNotIn(b"100 Continue", out)
                    with self.assertRaises(LocalProtocolError):
                        m.next_event()
                    m.receive_data(b"ignored")  # dropped, no error
                    self.assertEqual(m.data_to_send(), b"")

    def test_malformed_request_lines(self) -> None:
        for line in (
            b"GET /",  # HTTP/0.9 simple request
            b"GET  / HTTP/1.1",
            b"GET / HTTP/1.1 ",
            b"GET / HTTP/1.1 extra",
            b"G@T / HTTP/1.1",
            b"GET / http/1.1",
            b"GET / HTTP/1.10",
            b"GET / HTTP/1",
            b"GET / HTTP/1.x",
            b" GET / HTTP/1.1",
            b"GET\t/ HTTP/1.1",
            b"GET /a\x00b HTTP/1.1",
            b"GET /a\rb HTTP/1.1",
            b"GET /\xff HTTP/1.1",
            b"GET / HTTP/1.1\r",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
            b"GET * HTTP/1.1",
        ):
            self.assertRejected(line + b"\r\nHost: h\r\n\r\n", BAD_REQUEST)

    def test_invalid_field_names(self) -> None:
        for field in (b"Ho st: x", b"Host : x", b"X-A\t: x", b"(bad): x", b": x", b"NoColon",
                      b"X\x00Y: x", b"\xc3\xa9: x"):
            self.assertRejected(get(extra=field + b"\r\n"), BAD_REQUEST)

    def test_obs_fold(self) -> None:
        for fold in (b"X: a\r\n b\r\n", b"X: a\r\n\tb\r\n", b" X: a\r\n"):
            self.assertRejected(get(extra=fold), BAD_REQUEST)

    def test_nul_cr_ctl_in_values(self) -> None:
        for value in (b"a\x00b", b"a\rb", b"a\x01b", b"a\x7fb", b"\x0b", b"a\r"):
            self.assertRejected(get(extra=b"X: " + value + b"\r\n"), BAD_REQUEST)

    def test_host_missing_or_repeated(self) -> None:
        self.assertRejected(b"GET / HTTP/1.1\r\n\r\n", BAD_REQUEST)
        self.assertRejected(get(extra=b"Host: other\r\n"), BAD_REQUEST)

    def test_invalid_or_conflicting_content_length(self) -> None:
        for value in (b"abc", b"-1", b"+5", b"5 5", b"0x10", b"", b"5, 6", b"1.0", b"5,",
                      b"\xd9\xa3"):
            self.assertRejected(
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + value + b"\r\n\r\n12345",
                BAD_REQUEST)
        self.assertRejected(
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            BAD_REQUEST)

    def test_content_length_with_transfer_encoding(self) -> None:
        for head in (
            b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            b"Transfer-Encoding: chunked\r\nContent-Length: 0\r\n",
        ):
            self.assertRejected(
                b"POST / HTTP/1.1\r\nHost: h\r\n" + head + b"\r\n0\r\n\r\n", BAD_REQUEST)

    def test_transfer_encoding_not_ending_in_chunked(self) -> None:
        for te in (b"gzip", b"chunked, gzip", b"identity", b"chunked, chunked", b"",
                   b"chunked;x=1", b"chunked\r\nTransfer-Encoding: gzip"):
            self.assertRejected(
                b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: " + te + b"\r\n\r\n0\r\n\r\n",
                BAD_REQUEST)

    def test_transfer_encoding_in_http10(self) -> None:
        self.assertRejected(
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", BAD_REQUEST)

    def test_unknown_transfer_coding(self) -> None:
        for te in (b"gzip, chunked", b"x-custom, chunked",
                   b"gzip\r\nTransfer-Encoding: chunked"):
            self.assertRejected(
                b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: " + te + b"\r\n\r\n0\r\n\r\n",
                NOT_IMPLEMENTED)

    def test_invalid_chunk_framing(self) -> None:
        head = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        for body in (
            b"zz\r\n",
            b"-1\r\n",
            b"+1\r\nx\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"\r\n",
            b"1" * 17 + b"\r\n",
            b"5;\r\nhello\r\n0\r\n\r\n",
            b'5;a="open\r\nhello\r\n0\r\n\r\n',
            b"5;a=b c\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",  # bare LF after the size
            b"5\r\nhello\n0\r\n\r\n",  # bare LF after the data
            b"5\r\nhelloX\r\n0\r\n\r\n",  # data longer than declared
            b"5\r\nhell\r\n0\r\n\r\n",  # shorter
            b"5\r\nhello\r\n0\n\r\n",  # bare LF in the last chunk
            b"5\r\nhello\r\n0\r\n\n",  # bare LF ending the trailers
            b"5\r\nhello\r\n0\r\nX: a\n\r\n",  # bare LF in a trailer
            b"5\r\nhello\r\n0\r\nBad Name: a\r\n\r\n",
            b"5\r\nhello\r\n0\r\n folded\r\n\r\n",
            b"5\r\r\nhello\r\n0\r\n\r\n",  # bare CR
        ):
            self.assertRejected(head + body, BAD_REQUEST)

    def test_truncated_by_eof(self) -> None:
        for data in (
            b"GET / HTTP/1.1\r\nHost: h\r\n",
            b"GET / HTT",
            b"\r",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n",
        ):
            for mode in MODES:
                with self.subTest(data=data, mode=mode):
                    m = HTTP11Machine()
                    with self.assertRaises(RemoteProtocolError) as cm:
                        feed(m, data, mode, eof=True)
                    self.assertEqual(cm.exception.status_hint, BAD_REQUEST)
                    self.assertTrue(m.close_after_send)

    def test_body_too_large_decided_from_declared_length(self) -> None:
        over = MAX_BODY_SIZE + 1
        self.assertRejected(
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % over, CONTENT_TOO_LARGE)
        self.assertRejected(
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + b"9" * 100 + b"\r\n\r\n",
            CONTENT_TOO_LARGE)
        # Even with Expect: 100-continue: the 413 comes instead of any 100.
        self.assertRejected(
            b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % over, CONTENT_TOO_LARGE)

    def test_chunked_body_too_large(self) -> None:
        limits = HTTPLimits(max_body_size=10)
        head = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        self.assertRejected(head + b"6\r\nabcdef\r\n5\r\n", CONTENT_TOO_LARGE, limits=limits)
        self.assertRejected(head + b"ffffffffffffffff\r\n", CONTENT_TOO_LARGE)

    def test_body_limit_is_inclusive(self) -> None:
        m = HTTP11Machine(limits=HTTPLimits(max_body_size=3))
        events = feed(m, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc", "whole")
        self.assertEqual(events[1:], [Data(data=b"abc"), EndOfMessage()])

    def test_request_line_too_long(self) -> None:
        target = "/" + "a" * MAX_REQUEST_LINE
        self.assertRejected(get(target), URI_TOO_LONG)
        self.assertRejected(b"GET /" + b"a" * (MAX_REQUEST_LINE * 2), URI_TOO_LONG, eof=True)
        # Exactly at the limit is fine.
        line_len = len(b"GET  HTTP/1.1")
        ok = "/" + "a" * (MAX_REQUEST_LINE - line_len - 1)
        events = feed(HTTP11Machine(), get(ok), "whole")
        self.assertEqual(events[0].target, ok)  # type: ignore[attr-defined]

    def test_header_section_too_large(self) -> None:
        big = b"X: " + b"a" * MAX_HEADER_BYTES + b"\r\n"
        self.assertRejected(get(extra=big), HEADERS_TOO_LARGE)
        self.assertRejected(b"GET / HTTP/1.1\r\nX: " + b"a" * (MAX_HEADER_BYTES + 10),
                            HEADERS_TOO_LARGE, eof=True)
        many = b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEADER_FIELDS))
        self.assertRejected(get(extra=many), HEADERS_TOO_LARGE)  # Host makes it 101
        ok = b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEADER_FIELDS - 1))
        self.assertEqual(len(feed(HTTP11Machine(), get(extra=ok), "whole")), 2)

    def test_trailer_section_too_large(self) -> None:
        head = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
        limits = HTTPLimits(max_header_bytes=100, max_header_fields=3)
        self.assertRejected(head + b"X: " + b"a" * 200 + b"\r\n\r\n", HEADERS_TOO_LARGE,
                            limits=limits)
        self.assertRejected(head + b"A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", HEADERS_TOO_LARGE,
                            limits=limits)

    def test_unsupported_versions(self) -> None:
        for version in (b"2.0", b"0.9", b"3.1", b"9.9"):
            self.assertRejected(get(version=version), VERSION_NOT_SUPPORTED)
        self.assertRejected(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", VERSION_NOT_SUPPORTED)

    def test_connect_and_unknown_expectation(self) -> None:
        self.assertRejected(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", NOT_IMPLEMENTED)
        self.assertRejected(get(extra=b"Expect: 200-ok\r\n"), EXPECTATION_FAILED)


class FuzzTests(unittest.TestCase):
    """Mutated requests, in random pieces: only RemoteProtocolError, never a crash."""

    SEEDS = [
        get("/a?b=c", b"X: y\r\n"),
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello" + TRAILING,
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;x=y\r\nhello\r\n0\r\nT: v\r\n\r\n" + TRAILING,
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + TRAILING,
    ]
    ALPHABET = b"\r\n :;,\t\x00\x7f\xff0123456789aAfFzZ-/\"\\"

    def mutate(self, rng: random.Random, data: bytes) -> bytes:
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(4)
            i = rng.randrange(len(b) + 1)
            if op == 0 and b:
                del b[min(i, len(b) - 1)]
            elif op == 1:
                b.insert(i, rng.choice(self.ALPHABET))
            elif op == 2 and b:
                b[min(i, len(b) - 1)] = rng.choice(self.ALPHABET)
            else:
                j = rng.randrange(len(b) + 1)
                b[i:i] = b[min(i, j) : max(i, j)][:20]  # duplicate a slice
        return bytes(b)

    def test_mutations(self) -> None:
        rng = random.Random(1234)
        outcomes = {"ok": 0, "error": 0}
        for _ in range(1500):
            data = self.mutate(rng, rng.choice(self.SEEDS))
            m = HTTP11Machine(limits=HTTPLimits(max_body_size=1000))
            try:
                i = 0
                while i < len(data):
                    k = rng.randint(1, 16)
                    m.receive_data(data[i : i + k])
                    i += k
                    for _ in range(1000):
                        ev = m.next_event()
                        if ev is NEED_DATA or ev is PAUSED:
                            break
                        if isinstance(ev, EndOfMessage):
                            m.send_response(OK, [], b"ok")
                m.receive_data(b"")
                drain(m, [])
                outcomes["ok"] += 1
            except RemoteProtocolError as exc:
                outcomes["error"] += 1
                self.assertIn(exc.status_hint, (400, 413, 414, 417, 431, 501, 505), data)
                self.assertIs(m.their_state, State.ERROR)
                self.assertTrue(m.close_after_send)
                out = m.data_to_send()
                self.assertTrue(out == b"" or b"HTTP/1.1 %d " % exc.status_hint in out, out)
        self.assertGreater(outcomes["ok"], 100)  # both paths were exercised
        self.assertGreater(outcomes["error"], 100)


class ResponseFramingTests(unittest.TestCase):
    def machine_with(self, data: bytes) -> HTTP11Machine:
        m = HTTP11Machine()
        feed(m, data, "whole")
        return m

    def test_body_gets_content_length(self) -> None:
        m = self.machine_with(get())
        m.send_response(OK, [("Content-Type", "text/plain")], b"hello")
        out = m.data_to_send()
        self.assertEqual(out, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                              b"Content-Length: 5\r\n\r\nhello")
        self.assertIs(m.our_state, State.IDLE)  # next cycle started
        self.assertFalse(m.close_after_send)

    def test_streamed_body_is_chunked_for_11(self) -> None:
        m = self.machine_with(get())
        m.send_response(OK, [], None, reason="Fine")
        m.send(Data(data=b"abc"))
        m.send(Data(data=b""))
        m.send(Data(data=b"defgh"))
        m.send(EndOfMessage(trailers=(("X-T", "1"),)))
        out = m.data_to_send()
        self.assertTrue(out.startswith(b"HTTP/1.1 200 Fine\r\nTransfer-Encoding: chunked\r\n\r\n"))
        self.assertTrue(out.endswith(b"3\r\nabc\r\n5\r\ndefgh\r\n0\r\nX-T: 1\r\n\r\n"))
        resp, body = parse_response(out)
        self.assertEqual(body, b"abcdefgh")

    def test_streamed_body_is_close_delimited_for_10(self) -> None:
        m = self.machine_with(b"GET / HTTP/1.0\r\n\r\n" + get())
        m.send_response(OK, [], None)
        m.send(Data(data=b"abc"))
        m.send(EndOfMessage())
        out = m.data_to_send()
        self.assertEqual(out, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc")
        self.assertIs(m.our_state, State.MUST_CLOSE)
        self.assertTrue(m.close_after_send)
        self.assertIs(m.next_event(), PAUSED)  # the pipelined request is never read

    def test_http10_keep_alive(self) -> None:
        m = self.machine_with(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + get("/2"))
        m.send_response(OK, [], b"x")
        self.assertEqual(m.data_to_send(), b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
                                           b"Connection: keep-alive\r\n\r\nx")
        self.assertFalse(m.close_after_send)
        self.assertEqual(m.next_event().target, "/2")  # type: ignore[union-attr]

    def test_http10_without_keep_alive_closes(self) -> None:
        m = self.machine_with(b"GET / HTTP/1.0\r\n\r\n")
        m.send_response(OK, [], b"x")
        resp, body = parse_response(m.data_to_send())
        self.assertEqual(resp.getheader("Connection"), "close")
        self.assertTrue(m.close_after_send)

    def test_connection_close_request(self) -> None:
        m = self.machine_with(get(extra=b"Connection: close\r\n") + TRAILING)
        self.assertFalse(m.keep_alive)
        m.send_response(OK, [], b"x")
        self.assertIn(b"Connection: close\r\n", m.data_to_send())
        self.assertTrue(m.close_after_send)
        self.assertIs(m.next_event(), PAUSED)

    def test_handler_connection_close(self) -> None:
        m = self.machine_with(get())
        m.send_response(OK, [("Connection", "close")], b"x")
        self.assertEqual(m.data_to_send().count(b"Connection"), 1)
        self.assertTrue(m.close_after_send)

    def test_head_sends_no_body(self) -> None:
        m = self.machine_with(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n" + get("/2"))
        m.send_response(OK, [], b"0123456789")
        out = m.data_to_send()
        self.assertEqual(out, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
        resp, body = parse_response(out, "HEAD")
        self.assertEqual(body, b"")
        self.assertEqual(m.next_event().target, "/2")  # type: ignore[union-attr]
        # Streamed HEAD: no Transfer-Encoding, no chunks, still persistent.
        m = self.machine_with(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
        m.send_response(OK, [], None)
        m.send(Data(data=b"dropped"))
        m.send(EndOfMessage())
        self.assertEqual(m.data_to_send(), b"HTTP/1.1 200 OK\r\n\r\n")
        self.assertFalse(m.close_after_send)

    def test_204_and_304_have_no_body(self) -> None:
        for status in (204, 304):
            m = self.machine_with(get())
            m.send_response(status, [], b"ignored")
            out = m.data_to_send()
            self.assertNotIn(b"Content-Length", out)
            self.assertNotIn(b"ignored", out)
            self.assertTrue(out.endswith(b"\r\n\r\n"))

    def test_content_length_enforced(self) -> None:
        m = self.machine_with(get())
        m.send_response(OK, [("Content-Length", "3")], None)
        with self.assertRaises(LocalProtocolError):
            m.send(Data(data=b"abcd"))
        m.send(Data(data=b"ab"))
        with self.assertRaises(LocalProtocolError):
            m.send(EndOfMessage())
        m.send(Data(data=b"c"))
        m.send(EndOfMessage())
        self.assertEqual(parse_response(m.data_to_send())[1], b"abc")
        self.assertIs(m.our_state, State.IDLE)

    def test_bad_headers_and_states(self) -> None:
        m = self.machine_with(get())
        with self.assertRaises(LocalProtocolError):
            m.send(Data(data=b"x"))  # before the head
        with self.assertRaises(LocalProtocolError):
            m.send_response(OK, [("X", "a\r\nInjected: 1")], b"")
        with self.assertRaises(LocalProtocolError):
            m.send_response(OK, [("Bad Name", "a")], b"")
        with self.assertRaises(LocalProtocolError):
            m.send_response(OK, [("Transfer-Encoding", "gzip")], None)
        with self.assertRaises(LocalProtocolError):
            m.send_response(OK, [("Content-Length", "1"), ("Transfer-Encoding", "chunked")])
        with self.assertRaises(LocalProtocolError):
            m.send_response(OK, [("Content-Length", "-1")])
        with self.assertRaises(LocalProtocolError):
            m.send_response(OK, [("Connection", "close"), ("Content-Length", "x")])
        with self.assertRaises(LocalProtocolError):
            m.send_response(99)
        with self.assertRaises(LocalProtocolError):
            m.send(EndOfMessage(trailers=(("X", "1"),)))
        self.assertEqual(m.data_to_send(), b"")
        self.assertTrue(m.keep_alive)  # failed sends changed nothing
        m.send_response(OK, [], b"ok")
        with self.assertRaises(LocalProtocolError):
            m.send_response(OK, [], b"again")
        self.assertIs(m.our_state, State.IDLE)
        self.assertTrue(m.keep_alive)

    def test_memoized_heads_still_checked(self) -> None:
        # The same (invalid) fields twice: refused twice; valid ones reused.
        for _ in range(2):
            m = self.machine_with(get())
            with self.assertRaises(LocalProtocolError):
                m.send_response(OK, (("X", "a\nb"),), b"")
            m.send_response(OK, (("X", "ok"),), b"body")
            self.assertEqual(m.data_to_send(),
                             b"HTTP/1.1 200 OK\r\nX: ok\r\nContent-Length: 4\r\n\r\nbody")
        # The framing part of the memo depends on the request (HTTP/1.0 here).
        m = self.machine_with(b"GET / HTTP/1.0\r\n\r\n")
        m.send_response(OK, (("X", "ok"),), b"body")
        self.assertIn(b"Connection: close", m.data_to_send())

    def test_no_request_no_response(self) -> None:
        m = HTTP11Machine()
        with self.assertRaises(LocalProtocolError):
            m.send_response(OK, [], b"")

    def test_informational(self) -> None:
        m = self.machine_with(get())
        m.send(InformationalResponse(status_code=103, headers=(("Link", "</s>"),)))
        m.send_response(OK, [], b"")
        self.assertTrue(m.data_to_send().startswith(
            b"HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\nHTTP/1.1 200 OK\r\n"))
        m = self.machine_with(b"GET / HTTP/1.0\r\n\r\n")
        with self.assertRaises(LocalProtocolError):
            m.send(InformationalResponse(status_code=103))
        with self.assertRaises(LocalProtocolError):
            m.send_response(OK, [("Transfer-Encoding", "chunked")])

    def test_trailers_need_chunked(self) -> None:
        m = self.machine_with(get())
        m.send_response(OK, [("Content-Length", "0")])
        with self.assertRaises(LocalProtocolError):
            m.send(EndOfMessage(trailers=(("X", "1"),)))

    def test_response_before_body_read_closes(self) -> None:
        m = HTTP11Machine()
        m.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab")
        self.assertIsInstance(m.next_event(), Request)
        m.send_response(UNAUTHORIZED, [], b"no")
        self.assertTrue(m.close_after_send)

    def test_event_validation(self) -> None:
        with self.assertRaises(LocalProtocolError):
            Request(method="G T", target="/", http_version="1.1")
        with self.assertRaises(LocalProtocolError):
            Request(method="GET", target="/ x", http_version="1.1")
        with self.assertRaises(LocalProtocolError):
            Request(method="GET", target="/", http_version="2")
        with self.assertRaises(LocalProtocolError):
            Response(status_code=200, reason="a\nb")
        with self.assertRaises(LocalProtocolError):
            InformationalResponse(status_code=101)
        with self.assertRaises(LocalProtocolError):
            Data(data="text")  # type: ignore[arg-type]
        self.assertEqual(Data(data=bytearray(b"a")).data, b"a")
        with self.assertRaises(ValueError):
            HTTPLimits(max_body_size=0)


class ExpectContinueTests(unittest.TestCase):
    HEAD = b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n"

    def test_continue_sent_only_when_body_asked_for(self) -> None:
        m = HTTP11Machine()
        m.receive_data(self.HEAD)
        self.assertIsInstance(m.next_event(), Request)
        self.assertTrue(m.expects_continue)
        self.assertEqual(m.data_to_send(), b"")  # not yet: nobody asked for the body
        self.assertIs(m.next_event(), NEED_DATA)
        self.assertEqual(m.data_to_send(), CONTINUE)
        self.assertIs(m.next_event(), NEED_DATA)
        self.assertEqual(m.data_to_send(), b"")  # only once
        m.receive_data(b"hello")
        self.assertEqual(m.next_event(), Data(data=b"hello"))
        self.assertEqual(m.next_event(), EndOfMessage())
        m.send_response(OK, [], b"")
        self.assertFalse(m.close_after_send)

    def test_explicit_send_continue(self) -> None:
        m = HTTP11Machine()
        m.receive_data(self.HEAD)
        m.next_event()
        m.send_continue()
        m.send_continue()
        self.assertEqual(m.data_to_send(), CONTINUE)
        self.assertIs(m.next_event(), NEED_DATA)
        self.assertEqual(m.data_to_send(), b"")

    def test_rejected_without_continue(self) -> None:
        m = HTTP11Machine()
        m.receive_data(self.HEAD)
        m.next_event()
        m.send_response(UNAUTHORIZED, [], b"denied")
        out = m.data_to_send()
        self.assertTrue(out.startswith(b"HTTP/1.1 401 "))
        self.assertNotIn(b"100 Continue", out)
        self.assertIn(b"Connection: close", out)
        self.assertTrue(m.close_after_send)
        m.send_continue()  # too late: does nothing
        self.assertEqual(m.data_to_send(), b"")

    def test_no_continue_when_body_already_arriving(self) -> None:
        m = HTTP11Machine()
        m.receive_data(self.HEAD + b"he")
        m.next_event()
        self.assertEqual(m.next_event(), Data(data=b"he"))
        self.assertEqual(m.data_to_send(), b"")

    def test_no_continue_for_http10_or_no_body(self) -> None:
        for data in (b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
                     get(extra=b"Expect: 100-continue\r\n"),
                     get(extra=b"Expect: 100-continue\r\nContent-Length: 0\r\n")):
            m = HTTP11Machine()
            m.receive_data(data)
            m.next_event()
            self.assertFalse(m.expects_continue)
            m.next_event()
            self.assertEqual(m.data_to_send(), b"")


class TargetTrailerAndConnectionFramingTests(unittest.TestCase):
    """Request-target form, bare CR, forbidden trailers, chunk merging, Connection fields."""

    def test_target_form(self) -> None:
        # RFC 9112 §3.2: origin-form, absolute-form, "*" for OPTIONS only.
        for target in (b"foo", b"x:80", b"example.com", b"http:/x", b"*/"):
            with self.subTest(target=target):
                m = HTTP11Machine()
                m.receive_data(b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n")
                with self.assertRaises(RemoteProtocolError) as cm:
                    m.next_event()
                self.assertEqual(cm.exception.status_hint, BAD_REQUEST)
        for line in (b"GET / HTTP/1.1", b"GET /a?b HTTP/1.1", b"GET http://h/a HTTP/1.1",
                     b"GET svn+ssh://h HTTP/1.1", b"OPTIONS * HTTP/1.1"):
            with self.subTest(line=line):
                m = HTTP11Machine()
                m.receive_data(line + b"\r\nHost: h\r\n\r\n")
                self.assertIsInstance(m.next_event(), Request)
        m = HTTP11Machine()
        m.receive_data(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n")
        with self.assertRaises(RemoteProtocolError):
            m.next_event()

    def test_bare_cr_before_final_crlf_is_400_at_once(self) -> None:
        for data in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\r\n",
                     b"GET / HTTP/1.1\r\nHost: x\rY: z\r\n",
                     b"GET / HTTP/1.1\r\nHost: x\r\n\r\r"):
            for mode in MODES:
                with self.subTest(data=data, mode=mode):
                    m = HTTP11Machine()
                    with self.assertRaises(RemoteProtocolError) as cm:
                        feed(m, data, mode)  # no EOF: the error must not wait for one
                    self.assertEqual(cm.exception.status_hint, BAD_REQUEST)
                    self.assertIn(b"Connection: close", m.data_to_send())
        # A CR at the very end of what arrived may still be followed by LF.
        m = HTTP11Machine()
        m.receive_data(b"GET / HTTP/1.1\r")
        self.assertIs(m.next_event(), NEED_DATA)
        m.receive_data(b"\nHost: x\r")
        self.assertIs(m.next_event(), NEED_DATA)
        m.receive_data(b"\n\r")
        self.assertIs(m.next_event(), NEED_DATA)
        m.receive_data(b"\n")
        self.assertIsInstance(m.next_event(), Request)

    def test_forbidden_trailer_fields_rejected(self) -> None:
        head = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
        for field in (b"Content-Length: 5", b"Transfer-Encoding: chunked", b"Host: evil",
                      b"content-type: text/html", b"Authorization: x", b"Trailer: X",
                      b"Connection: close", b"TE: trailers"):
            for mode in MODES:
                with self.subTest(field=field, mode=mode):
                    m = HTTP11Machine()
                    with self.assertRaises(RemoteProtocolError) as cm:
                        feed(m, head + b"X-Ok: 1\r\n" + field + b"\r\n\r\n", mode)
                    self.assertEqual(cm.exception.status_hint, BAD_REQUEST)
        m = HTTP11Machine()
        events = feed(m, head + b"X-Checksum: 1\r\nServer-Timing: a\r\n\r\n", "whole")
        self.assertEqual(events[-1], EndOfMessage(trailers=(("X-Checksum", "1"),
                                                            ("Server-Timing", "a"))))

    def test_chunk_data_merged_into_few_events(self) -> None:
        # Consecutive buffered chunks come as one Data event per call, up to
        # CHUNKS_PER_DATA_EVENT chunks (the work of one call stays bounded).
        n = 10_000
        body = b"".join(b"1\r\n%c\r\n" % (65 + i % 26) for i in range(n))
        m = HTTP11Machine()
        m.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                       + body + b"0\r\nX-T: 1\r\n\r\n" + TRAILING)
        self.assertIsInstance(m.next_event(), Request)
        sizes = []
        for _ in range(n + 2):
            ev = m.next_event()
            if not isinstance(ev, Data):
                break
            sizes.append(len(ev.data))
        self.assertEqual(ev, EndOfMessage(trailers=(("X-T", "1"),)))
        self.assertEqual(sum(sizes), n)
        self.assertEqual(len(sizes), -(-n // CHUNKS_PER_DATA_EVENT))
        self.assertTrue(all(size == CHUNKS_PER_DATA_EVENT for size in sizes[:-1]))
        self.assertIs(m.next_event(), PAUSED)
        self.assertEqual(m.buffered, len(TRAILING))
        m = HTTP11Machine()
        events = feed(m, b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      + body + b"0\r\n\r\n", "random")
        self.assertEqual(events[1], Data(data=bytes(65 + i % 26 for i in range(n))))

    def test_chunk_merge_bounded_by_buffer(self) -> None:
        m = HTTP11Machine()
        m.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"2\r\nab\r\n3\r\ncd")
        self.assertIsInstance(m.next_event(), Request)
        self.assertEqual(m.next_event(), Data(data=b"abcd"))
        self.assertIs(m.next_event(), NEED_DATA)
        m.receive_data(b"e\r\n1\r\nf\r\n")
        self.assertEqual(m.next_event(), Data(data=b"ef"))
        self.assertIs(m.next_event(), NEED_DATA)
        m.receive_data(b"0\r\n\r\n")
        self.assertEqual(m.next_event(), EndOfMessage())

    def test_chunk_merge_keeps_errors_and_limits(self) -> None:
        head = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        cases = (
            (b"1\r\na\r\n1\r\nbX\r\n0\r\n\r\n", BAD_REQUEST),  # chunk overrun
            (b"1\r\na\r\n1\nb\r\n0\r\n\r\n", BAD_REQUEST),  # bare LF in a size line
            (b"1\r\na\r\nz\r\nb\r\n0\r\n\r\n", BAD_REQUEST),  # bad size
            (b"4\r\nabcd\r\n4\r\nefgh\r\n4\r\nijkl\r\n0\r\n\r\n", CONTENT_TOO_LARGE),
        )
        for body, status in cases:
            for mode in MODES:
                with self.subTest(body=body, mode=mode):
                    m = HTTP11Machine(limits=HTTPLimits(max_body_size=10))
                    with self.assertRaises(RemoteProtocolError) as cm:
                        feed(m, head + body, mode)
                    self.assertEqual(cm.exception.status_hint, status)

    def test_handler_keep_alive_replaced_by_close(self) -> None:
        # Item 3a: the request says close, or is HTTP/1.0 without keep-alive.
        for request in (get(extra=b"Connection: close\r\n"), get(version=b"1.0")):
            for streamed in (False, True):
                with self.subTest(request=request, streamed=streamed):
                    m = HTTP11Machine()
                    feed(m, request, "whole")
                    headers = (("Connection", "keep-alive"), ("X-A", "1"))
                    if streamed:
                        m.send_response(OK, headers + (("Content-Length", "2"),))
                        m.send(Data(data=b"ok"))
                        m.send(EndOfMessage())
                    else:
                        m.send_response(OK, headers, b"ok")
                    out = m.data_to_send()
                    self.assertEqual(out.count(b"Connection"), 1, out)
                    self.assertTrue(out.startswith(b"HTTP/1.1 200 OK\r\nConnection: close\r\n"),
                                    out)
                    self.assertNotIn(b"keep-alive", out)
                    self.assertTrue(m.close_after_send)

    def test_connection_fields_merged(self) -> None:
        m = HTTP11Machine()
        feed(m, get(version=b"1.0", extra=b"Connection: keep-alive\r\n"), "whole")
        m.send_response(OK, [("Connection", "keep-alive"), ("Connection", "X-Hop")], b"x")
        out = m.data_to_send()
        self.assertIn(b"\r\nConnection: X-Hop, keep-alive\r\n", out)
        self.assertEqual(out.count(b"Connection"), 1)
        self.assertFalse(m.close_after_send)
        feed(m, get(extra=b"Connection: close\r\n"), "whole")
        m.send_response(OK, [("Connection", "X-Hop, Keep-Alive")], b"x")
        out = m.data_to_send()
        self.assertIn(b"\r\nConnection: X-Hop, close\r\n", out)
        self.assertTrue(m.close_after_send)

    def test_answer_before_body_says_close(self) -> None:
        # Item 3b: answered while the request body is unread (on_head), with
        # or without Expect: the head itself must carry Connection: close,
        # also when an identical head was memoized on a persistent cycle.
        for expect in (b"", b"Expect: 100-continue\r\n"):
            for streamed in (False, True):
                with self.subTest(expect=expect, streamed=streamed):
                    warm = HTTP11Machine()
                    feed(warm, get(), "whole")
                    warm.send_response(413, [], b"no")
                    self.assertNotIn(b"Connection", warm.data_to_send())
                    m = HTTP11Machine()
                    m.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n"
                                   + expect + b"\r\nabc")
                    self.assertIsInstance(m.next_event(), Request)
                    if streamed:
                        m.send_response(413, [("Content-Length", "2")])
                        m.send(Data(data=b"no"))
                        m.send(EndOfMessage())
                    else:
                        m.send_response(413, [], b"no")
                    out = m.data_to_send()
                    self.assertIn(b"\r\nConnection: close\r\n", out)
                    self.assertTrue(m.close_after_send)

    def test_no_content_length_on_204_or_1xx(self) -> None:
        m = HTTP11Machine()
        feed(m, get(), "whole")
        m.send_response(204, [("Content-Length", "0")], b"")
        out = m.data_to_send()
        self.assertNotIn(b"Content-Length", out)
        self.assertEqual(out, b"HTTP/1.1 204 No Content\r\n\r\n")
        feed(m, get(), "whole")
        m.send(InformationalResponse(status_code=103, headers=(("Content-Length", "0"),
                                                                ("Link", "</a>"))))
        m.send_response(204, [("Transfer-Encoding", "chunked")])
        m.send(EndOfMessage())
        out = m.data_to_send()
        self.assertEqual(out, b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                              b"HTTP/1.1 204 No Content\r\n\r\n")


if __name__ == "__main__":
    unittest.main()
