"""TestHTTPServer runs http.server handler classes; its reply modes.

What each test proves:

* a ``BaseHTTPRequestHandler`` subclass (positionally or ``handler_class=``,
  or a factory taking ``(request, client_address, server)``) is run per
  request on the server's parsed request: ``do_GET``/``do_POST``,
  ``send_response``/``send_header``/``end_headers``/``wfile``,
  ``send_error``, its own 501 for a method it lacks, keep-alive with
  ``protocol_version = "HTTP/1.1"``, a chunked request body handed over
  whole, one ``100 Continue`` (the server's), a handler that raises gets
  the client a 500 and is recorded;
* ``ReplyMode.STRICT`` (default) refuses a header value with trailing
  whitespace and a hand-written head that does not parse: a 500, an
  ``InvalidReplyError`` in ``errors``, raised by ``stop(raise_errors=True)``;
  before, a hand-written head went out unchecked;
* ``ReplyMode.AS_WRITTEN`` sends the value byte for byte (the body still
  framed by the server) but still refuses CR/LF in a value;
* ``ReplyMode.VERBATIM`` sends a handler's own framing byte for byte and
  closes.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import io
import socket
import unittest
from typing import Any

from protocols import HandlerErrors, ReplyMode, TestHTTPServer
from protocols.http import InvalidReplyError
from reactor import InvalidArgumentError

PROMPT = 5.0


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello {self.path} from {type(self.server).__name__}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(201)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data.upper())

    def log_message(self, format: str, *args: Any) -> None:
        pass


class KeepAlive(Hello):
    protocol_version = "HTTP/1.1"


def _raw(server: TestHTTPServer, request: bytes) -> bytes:
    with socket.create_connection(server.server_address, timeout=PROMPT) as c:
        c.sendall(request)
        got = b""
        while chunk := c.recv(65536):
            got += chunk
        return got


def _get(server: TestHTTPServer, path: str = "/") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*server.server_address, timeout=PROMPT)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


class HandlerClassTest(unittest.TestCase):
    def test_class_positional_keyword_and_factory(self) -> None:
        def factory(*args: Any) -> Any:
            return Hello(*args)

        for make in (
            lambda: TestHTTPServer(("127.0.0.1", 0), Hello),
            lambda: TestHTTPServer(("127.0.0.1", 0), handler_class=Hello),
            lambda: TestHTTPServer(("127.0.0.1", 0), handler_class=factory),
        ):
            with self.subTest(), make() as srv:
                self.assertIsNotNone(srv.RequestHandlerClass)
                status, headers, body = _get(srv, "/x")
                self.assertEqual((status, body), (200, b"hello /x from TestHTTPServer"))
                self.assertEqual(headers["Content-Type"], "text/plain")
                self.assertIn("Server", headers)
                self.assertEqual(srv.errors, [])

    def test_post_with_a_chunked_body_reaches_rfile_whole(self) -> None:
        with TestHTTPServer(("127.0.0.1", 0), Hello) as srv:
            got = _raw(
                srv,
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                b"Connection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            )
        self.assertTrue(got.startswith(b"HTTP/1.1 201 "), got)
        self.assertTrue(got.endswith(b"\r\n\r\nABCDE"), got)

    def test_keep_alive_with_protocol_version_1_1(self) -> None:
        with TestHTTPServer(("127.0.0.1", 0), KeepAlive) as srv:
            conn = http.client.HTTPConnection(*srv.server_address, timeout=PROMPT)
            with contextlib.closing(conn):
                for path in ("/a", "/b"):
                    conn.request("GET", path)
                    resp = conn.getresponse()
                    self.assertEqual(resp.read(), f"hello {path} from TestHTTPServer".encode())
                self.assertEqual(srv.wait_for(lambda: len(srv.requests) == 2 or None), True)
                self.assertEqual(srv.connection_count, 1)  # both on one connection

    def test_one_100_continue_the_servers(self) -> None:
        with TestHTTPServer(("127.0.0.1", 0), KeepAlive) as srv:
            with socket.create_connection(srv.server_address, timeout=PROMPT) as c:
                c.sendall(
                    b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                    b"Content-Length: 2\r\nConnection: close\r\n\r\n"
                )
                got = b""
                while not got.endswith(b"\r\n\r\n"):
                    got += c.recv(1)
                self.assertEqual(got, b"HTTP/1.1 100 Continue\r\n\r\n")
                c.sendall(b"ok")
                while chunk := c.recv(65536):
                    got += chunk
        self.assertEqual(got.count(b"100 Continue"), 1, got)
        self.assertTrue(got.endswith(b"OK"), got)

    def test_missing_method_gets_the_handlers_own_501(self) -> None:
        with TestHTTPServer(("127.0.0.1", 0), Hello) as srv:
            got = _raw(srv, b"PUT / HTTP/1.0\r\n\r\n")
        self.assertTrue(got.startswith(b"HTTP/1.1 501 "), got)
        self.assertIn(b"Unsupported method ('PUT')", got)
        self.assertEqual(srv.errors, [])

    def test_a_raising_handler_class_is_a_500_and_recorded(self) -> None:
        class Broken(Hello):
            def do_GET(self) -> None:
                raise RuntimeError("handler class failed")

        with contextlib.redirect_stderr(io.StringIO()):
            srv = TestHTTPServer(("127.0.0.1", 0), Broken)
            srv.start()
            status, _, body = _get(srv)
            with self.assertRaises(HandlerErrors):
                srv.stop(raise_errors=True)
        self.assertEqual(status, 500)
        self.assertIn(b"handler class failed", body)

    def test_function_and_class_are_exclusive(self) -> None:
        with self.assertRaises(InvalidArgumentError):
            TestHTTPServer(("127.0.0.1", 0), lambda r: None, handler_class=Hello)
        with self.assertRaises(InvalidArgumentError):
            TestHTTPServer(("127.0.0.1", 0))


class TrailingSpace(Hello):
    def do_GET(self) -> None:
        self.send_response(407)
        self.send_header("Proxy-Authenticate", 'Digest realm="r", nonce="n", ')
        self.end_headers()
        self.wfile.write(b"denied")


class ReplyModeTest(unittest.TestCase):
    def _serve(self, handler: Any, mode: Any = None) -> tuple[bytes, list[BaseException]]:
        with contextlib.redirect_stderr(io.StringIO()):
            srv = TestHTTPServer(("127.0.0.1", 0), handler, reply_mode=mode)
            srv.start()
            try:
                got = _raw(srv, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            finally:
                try:
                    srv.stop(raise_errors=True)
                    raised: list[BaseException] = []
                except HandlerErrors as exc:
                    raised = list(exc.errors)
        self.assertEqual(raised, srv.errors)
        return got, raised

    def test_strict_refuses_trailing_whitespace(self) -> None:
        self.assertIs(TestHTTPServer.reply_mode, ReplyMode.STRICT)
        got, raised = self._serve(TrailingSpace)
        self.assertTrue(got.startswith(b"HTTP/1.1 500 "), got)
        self.assertEqual([type(e) for e in raised], [InvalidReplyError])

    def test_as_written_keeps_the_value_and_frames_the_body(self) -> None:
        got, raised = self._serve(TrailingSpace, "as-written")
        self.assertEqual(raised, [])
        head, _, body = got.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 407 "), got)
        self.assertIn(b'\r\nProxy-Authenticate: Digest realm="r", nonce="n", \r\n', head + b"\r\n")
        self.assertIn(b"\r\nContent-Length: 6\r\n", head + b"\r\n")
        self.assertIn(b"\r\nConnection: close", head)
        self.assertEqual(body, b"denied")

    def test_as_written_still_refuses_cr_lf_in_a_value(self) -> None:
        def smuggle(request: Any) -> None:
            request.send_response(200)
            request.send_header("X-A", "1\r\nX-Injected: yes")
            request.end_headers()

        got, raised = self._serve(smuggle, ReplyMode.AS_WRITTEN)
        self.assertTrue(got.startswith(b"HTTP/1.1 500 "), got)
        self.assertNotIn(b"\r\nX-Injected", got)
        self.assertEqual([type(e) for e in raised], [InvalidReplyError])

    def test_strict_refuses_a_hand_written_head_that_does_not_parse(self) -> None:
        def bad(request: Any) -> None:
            request.wfile.write(b"HTTP/1.1 two hundred OK\r\n\r\nbody")

        got, raised = self._serve(bad)
        self.assertTrue(got.startswith(b"HTTP/1.1 500 "), got)
        self.assertEqual([type(e) for e in raised], [InvalidReplyError])

    def test_strict_frames_a_hand_written_head(self) -> None:
        def by_hand(request: Any) -> None:
            request.wfile.write(b"HTTP/1.0 200 OK\r\nX-Mine: 1\r\nContent-Length: 99\r\n\r\nbody")

        got, raised = self._serve(by_hand)
        self.assertEqual(raised, [])
        self.assertIn(b"\r\nX-Mine: 1\r\n", got)
        self.assertIn(b"\r\nContent-Length: 4\r\n", got)
        self.assertTrue(got.endswith(b"\r\n\r\nbody"), got)

    def test_verbatim_sends_the_handlers_framing_byte_for_byte(self) -> None:
        raw = b"HTTP/1.1 200 OK\r\nX-Spaced:  a \r\nContent-Length: 99\r\n\r\nshort"

        def by_hand(request: Any) -> None:
            request.wfile.write(raw)

        got, raised = self._serve(by_hand, "verbatim")
        self.assertEqual((got, raised), (raw, []))

    def test_verbatim_sends_a_handler_class_output_byte_for_byte(self) -> None:
        class OwnFraming(Hello):
            def do_GET(self) -> None:
                self.wfile.write(
                    b"HTTP/1.1 200 OK\r\nX-Spaced:  a \r\nContent-Length: 99\r\n\r\nab"
                )

        got, raised = self._serve(OwnFraming, ReplyMode.VERBATIM)
        self.assertEqual(raised, [])
        self.assertEqual(got, b"HTTP/1.1 200 OK\r\nX-Spaced:  a \r\nContent-Length: 99\r\n\r\nab")

    def test_verbatim_still_refuses_cr_lf_in_send_header(self) -> None:
        def smuggle(request: Any) -> None:
            request.send_response(200)
            request.send_header("X-A", "1\r\nX-Injected: yes")
            request.end_headers()

        got, raised = self._serve(smuggle, "verbatim")
        self.assertTrue(got.startswith(b"HTTP/1.1 500 "), got)
        self.assertEqual([type(e) for e in raised], [InvalidReplyError])

    def test_unknown_mode_is_refused(self) -> None:
        with self.assertRaises(ValueError):
            TestHTTPServer(("127.0.0.1", 0), Hello, reply_mode="lenient")


if __name__ == "__main__":
    unittest.main()
