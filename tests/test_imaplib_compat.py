"""CPython's own test_imaplib server tests, run on testservers.

The interpreter's ``test/test_imaplib.py`` is loaded with its one piece of
server machinery, ``socketserver.TCPServer`` (which ``SecureTCPServer``,
the servers with a ``handle_error`` override and the plain tests derive
from), replaced by :class:`TCPServer` below: testservers' ``TCPServer``
running the tests' own ``socketserver.StreamRequestHandler`` classes, with
their ``get_request`` (TLS wrap), ``handle_error`` (close and re-raise) and
``server_close`` hooks honoured, plus socketserver's ``serve_forever`` /
``shutdown``.  The test classes run unedited.
"""

from __future__ import annotations

from typing import Any

import protocols
from tests._cpython import ServeForever, load, module_thread_check


class TCPServer(ServeForever, protocols.TCPServer):
    """``socketserver.TCPServer(server_address, RequestHandlerClass)`` on testservers."""

    def __init__(self, server_address: Any, handler_class: Any, bind_and_activate: bool = True):
        super().__init__(
            server_address,
            handler_class=handler_class,
            poll_interval=None,
            bind_and_activate=bind_and_activate,
            raise_errors=True,
        )
        self._serve()


_ti = load(
    "test_imaplib",
    [("socketserver.TCPServer", "_testservers_TCPServer")],
    _testservers_TCPServer=TCPServer,
)

# The server-using CPython classes, unmodified, collected under their own names.
NewIMAPTests = _ti.NewIMAPTests
NewIMAPSSLTests = _ti.NewIMAPSSLTests
ThreadedNetworkedTests = _ti.ThreadedNetworkedTests
ThreadedNetworkedTestsSSL = _ti.ThreadedNetworkedTestsSSL

setUpModule, tearDownModule = module_thread_check()
