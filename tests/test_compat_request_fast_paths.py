"""TestHTTPServer's request object after its fast paths (issue 10 item 3).

``CompatRequest`` builds ``rfile``, ``requestline`` and ``raw_requestline``
on first use, skips ``log_request()``'s arguments when nothing would be
logged, and reuses the last decision of its reply checks for the same
fields.  These tests use each of them the way a handler author would, over
real sockets with ``http.client``, and check that nothing a handler sees or
sends changed.
"""

from __future__ import annotations

import http.client
import socket
import unittest
from typing import Any

from protocols import CompatRequest, TestHTTPServer

TIMEOUT = 10


class CompatFastPathTests(unittest.TestCase):
    def start(self, handler: Any, **kwargs: Any) -> TestHTTPServer:
        server = TestHTTPServer(("127.0.0.1", 0), handler, 0.01, **kwargs)
        server.protocol_version = "HTTP/1.1"
        server.start()
        self.addCleanup(server.stop)
        return server

    def connect(self, server: TestHTTPServer) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=TIMEOUT)
        self.addCleanup(conn.close)
        return conn

    def test_rfile_read_after_headers(self) -> None:
        seen: list[bytes] = []

        def handler(request: CompatRequest) -> None:
            length = int(request.headers["Content-Length"])
            seen.append(request.rfile.read(length))
            seen.append(request.rfile.read())  # at its end: nothing more
            request.send_response(200)
            request.send_header("Content-Length", "2")
            request.end_headers()
            request.wfile.write(b"ok")

        conn = self.connect(self.start(handler))
        for body in (b"first body", b"", b"x" * 70000):
            conn.request("POST", "/p", body=body)
            self.assertEqual(conn.getresponse().read(), b"ok")
        self.assertEqual(seen, [b"first body", b"", b"", b"", b"x" * 70000, b""])

    def test_rfile_with_a_chunked_body(self) -> None:
        seen: list[Any] = []

        def handler(request: CompatRequest) -> None:
            seen.append(request.headers.get("Transfer-Encoding"))
            seen.append(request.rfile.read())
            request.send_response(200)
            request.end_headers()
            request.wfile.write(b"done")

        server = self.start(handler)
        with socket.create_connection(("127.0.0.1", server.server_port), TIMEOUT) as s:
            s.sendall(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            resp = http.client.HTTPResponse(s)
            resp.begin()
            self.assertEqual(resp.read(), b"done")
        self.assertEqual(seen, ["chunked", b"hello world"])

    def test_rfile_and_requestline_assigned_by_the_handler(self) -> None:
        import io

        seen: list[Any] = []

        def handler(request: CompatRequest) -> None:
            request.rfile = io.BytesIO(b"replaced")
            request.requestline = "GET /renamed HTTP/1.1"
            seen.append(request.rfile.read())
            seen.append(request.requestline)
            request.send_response(204)
            request.end_headers()

        conn = self.connect(self.start(handler))
        conn.request("POST", "/orig", body=b"sent")
        self.assertEqual(conn.getresponse().status, 204)
        self.assertEqual(seen, [b"replaced", "GET /renamed HTTP/1.1"])

    def test_request_line_attributes(self) -> None:
        seen: list[Any] = []

        def handler(request: CompatRequest) -> None:
            seen.append((request.requestline, request.raw_requestline, request.command,
                         request.path, request.request_version))
            request.send_response(200)
            request.end_headers()

        conn = self.connect(self.start(handler))
        conn.request("GET", "/a?b=1")
        conn.getresponse().read()
        conn._http_vsn_str = "HTTP/1.0"  # type: ignore[attr-defined]
        conn._http_vsn = 10  # type: ignore[attr-defined]
        conn.request("GET", "/z")
        conn.getresponse().read()
        self.assertEqual(seen, [
            ("GET /a?b=1 HTTP/1.1", b"GET /a?b=1 HTTP/1.1\r\n", "GET", "/a?b=1", "HTTP/1.1"),
            ("GET /z HTTP/1.0", b"GET /z HTTP/1.0\r\n", "GET", "/z", "HTTP/1.0"),
        ])

    def test_log_message_replaced_on_the_request_still_gets_log_request(self) -> None:
        logged: list[str] = []

        def handler(request: CompatRequest) -> None:
            def log_message(format: str, *args: Any) -> None:
                logged.append(format % args)

            request.log_message = log_message  # type: ignore[method-assign]
            request.send_response(201)
            request.end_headers()

        conn = self.connect(self.start(handler))  # log=False: the server prints nothing
        conn.request("PUT", "/x", body=b"")
        self.assertEqual(conn.getresponse().status, 201)
        self.assertEqual(logged, ['"PUT /x HTTP/1.1" 201 -'])

    def test_wfile_flush_and_many_writes(self) -> None:
        def handler(request: CompatRequest) -> None:
            request.send_response(200)
            request.send_header("Content-Type", "text/plain")
            request.send_header("X-Parts", "100")
            request.end_headers()
            request.wfile.flush()
            for i in range(100):
                request.wfile.write(b"%d," % i)
                if i % 10 == 0:
                    request.wfile.flush()

        conn = self.connect(self.start(handler))
        want = b"".join(b"%d," % i for i in range(100))
        for _ in range(3):
            conn.request("GET", "/parts")
            resp = conn.getresponse()
            self.assertEqual(resp.read(), want)
            self.assertEqual(resp.getheader("Content-Length"), str(len(want)))
            self.assertEqual(resp.getheader("X-Parts"), "100")

    def test_headers_then_body_in_many_writes_before_end_headers(self) -> None:
        # Writes before end_headers() are the handler's own head: parsed back.
        def handler(request: CompatRequest) -> None:
            for piece in (b"HTTP/1.1 200 OK\r\n", b"Content-Type: text/plain\r\n",
                          b"X-A: 1\r\n", b"\r\n", b"bo", b"dy"):
                request.wfile.write(piece)

        conn = self.connect(self.start(handler))
        for _ in range(2):
            conn.request("GET", "/raw")
            resp = conn.getresponse()
            self.assertEqual((resp.status, resp.read(), resp.getheader("X-A")), (200, b"body", "1"))

    def test_same_fields_different_decisions(self) -> None:
        # One handler, the same header fields every time; what the server
        # does with them depends on the method, the body and the connection.
        def handler(request: CompatRequest) -> None:
            request.send_response(200)
            request.send_header("Content-Type", "text/plain")
            request.send_header("Content-Length", "5")
            request.end_headers()
            if request.path == "/close":
                request.close_connection = True
            if request.path != "/empty":
                request.wfile.write(b"hello")

        server = self.start(handler)
        conn = self.connect(server)
        for method, path, body, length in (
            ("GET", "/", b"hello", "5"),
            ("HEAD", "/", b"", "5"),
            ("GET", "/", b"hello", "5"),
            ("GET", "/empty", b"", "0"),
            ("HEAD", "/empty", b"", "5"),  # a HEAD handler that wrote nothing keeps its length
            ("GET", "/", b"hello", "5"),
        ):
            conn.request(method, path)
            resp = conn.getresponse()
            self.assertEqual((resp.read(), resp.getheader("Content-Length")), (body, length),
                             (method, path))
            self.assertFalse(resp.will_close)
        conn.request("GET", "/close")
        resp = conn.getresponse()
        self.assertEqual((resp.read(), resp.getheader("Connection")), (b"hello", "close"))
        self.assertTrue(resp.will_close)

    def test_connection_header_sent_by_the_handler(self) -> None:
        def handler(request: CompatRequest) -> None:
            request.send_response(200)
            request.send_header("CONNECTION", "Close" if request.path == "/c" else "keep-alive")
            request.send_header("Content-Length", "1")
            request.end_headers()
            request.wfile.write(b"x")

        conn = self.connect(self.start(handler))
        conn.request("GET", "/k")
        resp = conn.getresponse()
        self.assertEqual(resp.read(), b"x")
        self.assertFalse(resp.will_close)
        conn.request("GET", "/c")
        resp = conn.getresponse()
        self.assertEqual(resp.read(), b"x")
        self.assertTrue(resp.will_close)

    def test_invalid_field_is_refused_every_time(self) -> None:
        # A field that failed the check is never remembered as checked.
        def handler(request: CompatRequest) -> None:
            request.send_response(200)
            request.send_header("X-Bad", "a\rb" if request.path == "/bad" else "ab")
            request.end_headers()

        server = self.start(handler)
        server.report_errors = False
        conn = self.connect(server)
        for path, status in (("/ok", 200), ("/bad", 500), ("/ok", 200), ("/bad", 500)):
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            self.assertEqual(resp.status, status, path)
            if resp.will_close:
                conn.close()
        self.assertEqual(len(server.errors), 2)


if __name__ == "__main__":
    unittest.main()
