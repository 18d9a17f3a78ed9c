"""CPython's own test_urllib2_localnet, run on testservers.

The interpreter's ``test/test_urllib2_localnet.py`` is loaded with its
server machinery replaced: the ``LoopbackHttpServer`` /
``LoopbackHttpServerThread`` section (an ``http.server.HTTPServer`` polled
from a thread) by the adapter class below, and ``test.ssl_servers``'
``make_https_server`` by :func:`tests._cpython.make_https_server`.  The
tests' own ``BaseHTTPRequestHandler`` classes and factories run on
``TestHTTPServer(handler_class=...)`` with ``reply_mode="as-written"``
(the digest helper's challenge ends in a space) and ``raise_errors=True``:
a reply the server had to refuse fails the test instead of letting a test
that expects an ``HTTPError`` pass on the 500.
"""

from __future__ import annotations

from tests._cpython import load, module_thread_check

ADAPTER = '''\
class LoopbackHttpServerThread:
    """The test's HTTP server thread: a testservers TestHTTPServer, no thread."""

    def __init__(self, request_handler):
        request_handler.protocol_version = "HTTP/1.0"
        self.httpd = TestHTTPServer(("127.0.0.1", 0), handler_class=request_handler,
                                    reply_mode="as-written", raise_errors=True)
        self.port = self.httpd.server_port
        self.ready = self.httpd.ready

    def start(self):
        self.httpd.start()

    def stop(self):
        self.httpd.stop()

'''

_tu = load(
    "test_urllib2_localnet",
    [
        (("class LoopbackHttpServer(", "# Authentication infrastructure"), ADAPTER),
        (
            "from test.ssl_servers import make_https_server",
            "from tests._cpython import make_https_server",
        ),
        ("import http.server\n", "import http.server\nfrom protocols import TestHTTPServer\n"),
    ],
)

setUpModule, tearDownModule = module_thread_check(_tu.setUpModule)

# The unmodified CPython test classes, collected under their own names.
BasicAuthTests = _tu.BasicAuthTests
ProxyAuthTests = _tu.ProxyAuthTests
TestUrlopen = _tu.TestUrlopen
