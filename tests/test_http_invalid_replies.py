"""Every invalid native reply is answered 500 and recorded, never sent as given or dropped."""

from __future__ import annotations

import http.client
import threading
import unittest
from typing import Any

from protocols.http import (
    HTTPProtocolError,
    HTTPRequest,
    HTTPServer,
    InvalidReplyError,
    Reply,
)

SERVER_ERROR = 500
OK = 200
TIMEOUT = 10.0  # generous: a noisy 2-core box

# Each of these is not a valid response.  Before the fix the first went out
# as "200" with "Content-Length: 12345" and 12,345 NUL octets, and the next
# two closed the connection without a byte.
INVALID: dict[str, Any] = {
    "/int-body": Reply(OK, 12345),  # type: ignore[arg-type]
    "/headers-str": Reply(OK, b"", "notalist"),  # type: ignore[arg-type]
    "/header-one-item": Reply(OK, b"", [("X",)]),  # type: ignore[list-item]
    "/header-three-items": Reply(OK, b"", [("X", "a", "b")]),  # type: ignore[list-item]
    "/header-str-pair": Reply(OK, b"", ["ab"]),  # type: ignore[list-item]
    "/headers-int": Reply(OK, b"", 5),  # type: ignore[arg-type]
    "/header-bytes-name": Reply(OK, b"", [(b"X", "v")]),  # type: ignore[list-item]
    "/header-int-value": Reply(OK, b"", [("X", 5)]),  # type: ignore[list-item]
    "/header-crlf": Reply(OK, b"", [("X", "a\r\nInjected: 1")]),
    "/header-bad-name": Reply(OK, b"", [("Bad Name", "v")]),
    "/status-str": Reply("200"),  # type: ignore[arg-type]
    "/status-bool": Reply(True),
    "/status-low": Reply(99),
    "/status-high": Reply(1000),
    "/status-1xx": Reply(100),
    "/reason-int": Reply(OK, b"", (), 5),  # type: ignore[arg-type]
    "/reason-crlf": Reply(OK, b"", (), "OK\r\nInjected: 1"),
    "/delay-str": Reply(OK, b"", (), "", "soon"),  # type: ignore[arg-type]
    "/delay-negative": Reply(OK, b"", (), "", -1.0),
    "/delay-nan": Reply(OK, b"", (), "", float("nan")),
    "/delay-inf": Reply(OK, b"", (), "", float("inf")),
    "/delay-bool": Reply(OK, b"", (), "", True),
    "/length-mismatch": Reply(OK, b"abc", [("Content-Length", "5")]),
    # Handler results that are not one of the documented response shapes.
    "/result-bool": True,
    "/result-object": object(),
    "/result-4-tuple": (OK, (), b"", "x"),
    "/result-3-tuple-bad-headers": (OK, 5, b""),
    "/result-2-tuple-bad-body": (OK, 5),
}


class InvalidNativeReplyTests(unittest.TestCase):
    def setUp(self) -> None:

        def handler(request: HTTPRequest) -> Any:
            if request.path == "/later":
                responder = request.respond_later()
                threading.Thread(target=responder.send, args=(Reply(OK, 12345),)).start()
                return None
            return INVALID.get(request.path, Reply(OK, b"fine"))

        self.server = HTTPServer(handler=handler, report_errors=False)
        self.server.start()
        self.addCleanup(self.server.stop)

    def get(self, conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()

    def test_each_invalid_reply_is_500_and_recorded(self) -> None:
        for path in [*INVALID, "/later"]:
            with self.subTest(path=path):
                conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=TIMEOUT)
                try:
                    status, body = self.get(conn, path)
                    self.assertEqual(status, SERVER_ERROR, body)
                    self.assertIn(b"500 Internal Server Error", body)
                    self.assertNotIn(b"\x00" * 16, body)
                    self.server.wait_for(lambda: self.server.errors, TIMEOUT, "the recorded error")
                    [error] = self.server.errors
                    self.assertIsInstance(error, InvalidReplyError)
                    self.assertIsInstance(error, HTTPProtocolError)
                    # The server and the connection go on: the next request is served.
                    self.assertEqual(self.get(conn, "/fine"), (OK, b"fine"))
                finally:
                    conn.close()
                    self.server.errors.clear()

    def test_no_injected_header_reaches_the_client(self) -> None:
        for path in ("/header-crlf", "/reason-crlf"):
            with self.subTest(path=path):
                conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=TIMEOUT)
                try:
                    conn.request("GET", path)
                    response = conn.getresponse()
                    response.read()
                    self.assertEqual(response.status, SERVER_ERROR)
                    self.assertIsNone(response.getheader("Injected"))
                finally:
                    conn.close()
                    self.server.errors.clear()

    def test_valid_shapes_still_go_out(self) -> None:
        valid = {
            "/list-pairs": Reply(OK, b"x", [["X-List", "ok"]]),  # type: ignore[list-item]
            "/bytearray": Reply(OK, bytearray(b"x")),  # type: ignore[arg-type]
            "/int-delay": Reply(OK, b"x", (), "", 0),
            "/str": Reply(OK, "x"),
        }
        self.server.handler = lambda request: valid[request.path]
        for path in valid:
            with self.subTest(path=path):
                conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=TIMEOUT)
                try:
                    self.assertEqual(self.get(conn, path), (OK, b"x"))
                finally:
                    conn.close()
        self.assertEqual(self.server.errors, [])


if __name__ == "__main__":
    unittest.main()
