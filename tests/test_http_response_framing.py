"""HTTP response framing on the wire: Connection: close, request-target form, compat framing.

Each test speaks raw HTTP over loopback so that the exact header fields on
the wire are checked.  Every socket is closed; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import time
import unittest
from typing import Any

from protocols import CompatRequest, HTTPServer, Reply, TestHTTPServer

TIMEOUT = 10.0  # generous: a noisy 2-core box
OK = 200
NO_CONTENT = 204
NOT_MODIFIED = 304
BAD_REQUEST = 400
CONTENT_TOO_LARGE = 413
SERVER_ERROR = 500


def exchange(port: int, data: bytes, *, until_eof: bool = True) -> bytes:
    """Send *data*; return everything received until EOF (bounded by TIMEOUT).

    With ``until_eof=False`` return as soon as one complete response head and
    its Content-Length body are in (for persistent connections).
    """
    out = b""
    deadline = time.monotonic() + TIMEOUT
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(data)
        while time.monotonic() < deadline:
            if not until_eof and b"\r\n\r\n" in out:
                head, _, body = out.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if len(body) >= length:
                    return out
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                return out
            out += chunk
    if until_eof:
        raise AssertionError(f"no EOF within {TIMEOUT} s; received {out!r}")
    return out


def head_fields(response: bytes) -> list[tuple[str, str]]:
    """The header fields of the first response in *response*, in order."""
    head = response.partition(b"\r\n\r\n")[0].decode("latin-1")
    fields = []
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        fields.append((name.lower(), value.strip()))
    return fields


def field_values(response: bytes, name: str) -> list[str]:
    return [v for n, v in head_fields(response) if n == name]


def body_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


def parse(raw: bytes, method: str = "GET") -> tuple[http.client.HTTPResponse, bytes]:
    """Parse one response with http.client (an independent parser)."""

    class Sock:
        def makefile(self, mode: str) -> io.BytesIO:
            return io.BytesIO(raw)

    resp = http.client.HTTPResponse(Sock(), method=method)  # type: ignore[arg-type]
    resp.begin()
    return resp, resp.read()


class NativeServerTests(unittest.TestCase):
    """Item 3: a response after which the server closes carries Connection: close."""

    def test_handler_keep_alive_replaced_when_closing(self) -> None:
        reply = Reply(OK, b"ok", (("Connection", "keep-alive"),))
        with HTTPServer(handler=lambda r: reply) as server:
            for request in (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                            b"GET / HTTP/1.0\r\n\r\n"):
                with self.subTest(request=request):
                    out = exchange(server.port, request)  # the server closes
                    self.assertEqual(field_values(out, "connection"), ["close"])
                    self.assertEqual(body_of(out), b"ok")

    def test_handler_keep_alive_kept_when_persistent(self) -> None:
        reply = Reply(OK, b"ok", (("Connection", "keep-alive"),))
        with HTTPServer(handler=lambda r: reply) as server:
            out = exchange(server.port, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                           until_eof=False)
            self.assertEqual(field_values(out, "connection"), ["keep-alive"])

    def test_on_head_answer_before_body_says_close(self) -> None:
        # No Expect: the client is sending its body; the server answers from
        # the head, so it closes after the response, and must say so.
        with HTTPServer(on_head=lambda h: Reply(CONTENT_TOO_LARGE, b"no")) as server:
            for expect in (b"", b"Expect: 100-continue\r\n"):
                with self.subTest(expect=expect):
                    out = exchange(server.port, b"POST / HTTP/1.1\r\nHost: h\r\n"
                                   b"Content-Length: 100\r\n" + expect + b"\r\nabc")
                    self.assertTrue(out.startswith(b"HTTP/1.1 413 "), out)
                    self.assertEqual(field_values(out, "connection"), ["close"])
                    self.assertNotIn(b"100 Continue", out)


class RequestFormTests(unittest.TestCase):
    """Items 6 and 9 at the server: a 400 at once, then close."""

    def test_bad_targets_and_bare_cr(self) -> None:
        with HTTPServer(handler=lambda r: Reply(OK, b"ok")) as server:
            for request in (b"GET foo HTTP/1.1\r\nHost: h\r\n\r\n",
                            b"GET x:80 HTTP/1.1\r\nHost: h\r\n\r\n",
                            b"GET * HTTP/1.1\r\nHost: h\r\n\r\n",
                            b"GET / HTTP/1.1\r\nHost: h\r\n\r\r\n"):
                with self.subTest(request=request):
                    start = time.monotonic()
                    out = exchange(server.port, request)
                    self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out)
                    self.assertLess(time.monotonic() - start, TIMEOUT / 2)
            out = exchange(server.port, b"GET http://h/a HTTP/1.1\r\nHost: h\r\n"
                           b"Connection: close\r\n\r\n")
            self.assertTrue(out.startswith(b"HTTP/1.1 200 "), out)


class CompatServerTests(unittest.TestCase):
    """Items 3, 4 and 8 for TestHTTPServer handlers."""

    def start(self, handler: Any, protocol_version: str = "HTTP/1.0") -> TestHTTPServer:
        server = TestHTTPServer(("127.0.0.1", 0), handler, 0.01)
        server.protocol_version = protocol_version
        server.start()
        self.addCleanup(server.stop)
        return server

    # -- item 3: send_header("Connection", "keep-alive") -----------------------------

    def test_send_header_keep_alive_replaced_when_closing(self) -> None:
        def handler(req: CompatRequest) -> None:
            req.send_response(OK)
            req.send_header("Connection", "keep-alive")
            req.send_header("Content-Length", "2")
            req.end_headers()
            req.wfile.write(b"ok")

        server = self.start(handler, "HTTP/1.1")
        for request in (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                        b"GET / HTTP/1.0\r\n\r\n"):
            with self.subTest(request=request):
                out = exchange(server.port, request)
                self.assertEqual(field_values(out, "connection"), ["close"])
                self.assertEqual(body_of(out), b"ok")

    # -- item 4: handler-made chunked bodies ---------------------------------------

    @staticmethod
    def chunked_handler(status: int = OK, extra: tuple[tuple[str, str], ...] = ()) -> Any:
        def handler(req: CompatRequest) -> None:
            req.send_response(status)
            req.send_header("Transfer-Encoding", "chunked")
            for name, value in extra:
                req.send_header(name, value)
            req.end_headers()
            req.wfile.write(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        return handler

    def test_chunked_body_to_http10_client_is_close_delimited(self) -> None:
        server = self.start(self.chunked_handler())
        out = exchange(server.port, b"GET / HTTP/1.0\r\n\r\n")
        self.assertEqual(field_values(out, "transfer-encoding"), [])
        self.assertEqual(field_values(out, "content-length"), [])
        self.assertEqual(field_values(out, "connection"), ["close"])
        self.assertEqual(body_of(out), b"hello world")

    def test_chunked_body_to_http11_client(self) -> None:
        server = self.start(self.chunked_handler(), "HTTP/1.1")
        out = exchange(server.port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertEqual(field_values(out, "transfer-encoding"), ["chunked"])
        self.assertEqual(field_values(out, "connection"), ["close"])
        resp, body = parse(out)
        self.assertEqual(body, b"hello world")

    def test_chunked_handler_head_204_304_send_no_body(self) -> None:
        for status, method in ((OK, b"HEAD"), (NO_CONTENT, b"GET"), (NOT_MODIFIED, b"GET")):
            for version in (b"1.0", b"1.1"):
                with self.subTest(status=status, method=method, version=version):
                    server = self.start(self.chunked_handler(status))
                    out = exchange(server.port,
                                   method + b" / HTTP/" + version + b"\r\nHost: h\r\n\r\n")
                    self.assertTrue(out.startswith(b"HTTP/1.1 %d " % status), out)
                    self.assertEqual(body_of(out), b"")
                    if status == NO_CONTENT or version == b"1.0":
                        self.assertEqual(field_values(out, "transfer-encoding"), [])
                    server.stop()

    def test_chunked_handler_one_connection_field(self) -> None:
        server = self.start(self.chunked_handler(extra=(("Connection", "keep-alive"),)),
                            "HTTP/1.1")
        out = exchange(server.port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertEqual(field_values(out, "connection"), ["close"])

    def test_chunked_handler_bad_field_or_framing_is_500(self) -> None:
        def bad_field(req: CompatRequest) -> None:
            req.send_response(OK)
            req.send_header("Transfer-Encoding", "chunked")
            req.send_header("X-Evil", "a\r\nInjected: yes")
            req.end_headers()
            req.wfile.write(b"0\r\n\r\n")

        def bad_body(req: CompatRequest) -> None:
            req.send_response(OK)
            req.send_header("Transfer-Encoding", "chunked")
            req.end_headers()
            req.wfile.write(b"5\r\nhello world\r\n0\r\n\r\n")

        for handler in (bad_field, bad_body):
            with self.subTest(handler=handler.__name__):
                server = self.start(handler)
                with contextlib.redirect_stderr(io.StringIO()) as err:
                    out = exchange(server.port, b"GET / HTTP/1.0\r\n\r\n")
                self.assertIn("InvalidReplyError", err.getvalue())
                self.assertTrue(out.startswith(b"HTTP/1.1 500 "), out)
                self.assertNotIn(b"\r\nInjected", out)
                self.assertEqual(len(server.errors), 1)
                server.errors.clear()
                server.stop()

    # -- item 8: Content-Length ------------------------------------------------------

    def test_content_length_same_for_head_as_for_get(self) -> None:
        def handler(req: CompatRequest) -> None:
            req.send_response(OK)
            req.send_header("Content-Length", "999")
            req.end_headers()
            req.wfile.write(b"short")

        server = self.start(handler)
        get = exchange(server.port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        head = exchange(server.port, b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertEqual(field_values(get, "content-length"), ["5"])
        self.assertEqual(field_values(head, "content-length"), ["5"])
        self.assertEqual(body_of(get), b"short")
        self.assertEqual(body_of(head), b"")

    def test_head_aware_handler_keeps_declared_length(self) -> None:
        def handler(req: CompatRequest) -> None:
            req.send_response(OK)
            req.send_header("Content-Length", "42")
            req.end_headers()  # a HEAD handler writes no body

        server = self.start(handler)
        head = exchange(server.port, b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertEqual(field_values(head, "content-length"), ["42"])
        self.assertEqual(body_of(head), b"")

    def test_no_content_length_on_204(self) -> None:
        def handler(req: CompatRequest) -> None:
            req.send_response(NO_CONTENT)
            req.send_header("Content-Length", "0")
            req.end_headers()

        server = self.start(handler)
        for method in (b"GET", b"HEAD"):
            with self.subTest(method=method):
                out = exchange(server.port, method + b" / HTTP/1.1\r\nHost: h\r\n\r\n")
                self.assertTrue(out.startswith(b"HTTP/1.1 204 "), out)
                self.assertEqual(field_values(out, "content-length"), [])
                self.assertEqual(body_of(out), b"")


if __name__ == "__main__":
    unittest.main()
