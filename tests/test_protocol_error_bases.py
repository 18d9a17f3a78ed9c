"""Every error the protocol packages export sits under the library's one base,
and a handler exception whose ``__str__`` raises still gets its 500."""

from __future__ import annotations

import http.client
import unittest

import protocols
import reactor
from protocols import HTTPServer, Reply
from protocols import http as phttp
from protocols import smtp as psmtp


class BrokenStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")


class ProtocolErrorBasesTest(unittest.TestCase):
    def test_every_exported_error_derives_from_the_base(self) -> None:
        for module in (reactor, protocols, phttp, psmtp):
            for name in module.__all__:
                obj = getattr(module, name)
                if isinstance(obj, type) and issubclass(obj, BaseException):
                    with self.subTest(module=module.__name__, name=name):
                        self.assertTrue(issubclass(obj, reactor.TestServersError), obj.__mro__)



class BrokenStrTest(unittest.TestCase):
    """An exception whose __str__ raises is still a recorded error (its text falls back)."""

    def test_http_handler_raising_it_gets_500_and_handler_errors(self) -> None:
        from test.support import captured_stderr

        def handler(request: object) -> Reply:
            raise BrokenStr()

        server = HTTPServer(handler=handler)  # reports on stderr: that must not fail either
        with captured_stderr() as err_out:
            server.start()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                conn.request("GET", "/")
                resp = conn.getresponse()
                self.assertEqual(resp.status, 500)
                self.assertIn(b"BrokenStr", resp.read())
                conn.close()
            finally:
                with self.assertRaises(reactor.HandlerErrors) as cm:
                    server.stop(raise_errors=True)
        self.assertIsInstance(cm.exception.errors[0], BrokenStr)
        self.assertIn("BrokenStr", err_out.getvalue())

if __name__ == "__main__":
    unittest.main()
