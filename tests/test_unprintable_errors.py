"""An exception whose __str__ raises is still answered, recorded and raised."""

from __future__ import annotations

import http.client
import unittest

from protocols import HandlerErrors, HTTPServer, TCPServer


class BrokenStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")


def _raise(*args: object) -> None:
    raise BrokenStr()


class UnprintableHandlerErrorTest(unittest.TestCase):
    """Issue 9 item 14."""

    def test_http_client_gets_500_and_stop_raises_handler_errors(self) -> None:
        srv = HTTPServer(handler=_raise, report_errors=True)
        srv.start()
        try:
            conn = http.client.HTTPConnection(*srv.server_address, timeout=5)
            conn.request("GET", "/")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 500)
            self.assertIn(b"BrokenStr", resp.read())
            conn.close()
        finally:
            with self.assertRaises(HandlerErrors) as cm:
                srv.stop(raise_errors=True)
        self.assertIsInstance(cm.exception.errors[0], BrokenStr)
        self.assertIn("BrokenStr", str(cm.exception))

    def test_reactor_callback_error_is_recorded(self) -> None:
        import socket

        srv = TCPServer(on_data=_raise)
        srv.start()
        with socket.create_connection(srv.server_address, timeout=5) as c:
            c.sendall(b"x")
            srv.wait_for(lambda: srv.errors, timeout=5, what="the error")
        with self.assertRaises(HandlerErrors):
            srv.stop(raise_errors=True)


if __name__ == "__main__":
    unittest.main()
