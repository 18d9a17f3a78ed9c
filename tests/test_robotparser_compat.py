"""CPython's own test_robotparser server test, run on testservers.

The interpreter's ``test/test_robotparser.py`` is loaded with
``http.server.HTTPServer`` (its only server machinery, served from a thread
with ``serve_forever``) replaced by the adapter below: testservers'
``TestHTTPServer`` running the test's ``RobotHandler``
(a ``BaseHTTPRequestHandler`` subclass) with socketserver's serving-loop
names.  ``PasswordProtectedSiteTestCase`` runs unedited.
"""

from __future__ import annotations

from typing import Any

from protocols import TestHTTPServer
from tests._cpython import ServeForever, load, module_thread_check


class HTTPServer(ServeForever, TestHTTPServer):
    """``http.server.HTTPServer(server_address, RequestHandlerClass)`` on testservers."""

    def __init__(self, server_address: Any, handler_class: Any) -> None:
        super().__init__(server_address, handler_class=handler_class, raise_errors=True)
        self._serve()


_tr = load(
    "test_robotparser",
    [
        (
            "from http.server import BaseHTTPRequestHandler, HTTPServer",
            "from http.server import BaseHTTPRequestHandler",
        )
    ],
    HTTPServer=HTTPServer,
)

setUpModule, tearDownModule = module_thread_check()

PasswordProtectedSiteTestCase = _tr.PasswordProtectedSiteTestCase
