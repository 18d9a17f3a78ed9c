"""CPython's own test_httplib server-based tests, run on testservers.

The interpreter's ``test/test_httplib.py`` is loaded with its server
machinery replaced: ``test.ssl_servers``' ``make_https_server`` (an
``http.server`` thread) by :func:`tests._cpython.make_https_server`, and
the bare listening sockets that ``SourceAddressTest`` and ``TimeoutTest``
build in ``setUp`` by :class:`Listening` (a testservers ``TCPServer`` that
records connections).  Test methods run unedited.

Not run here: ``BasicTest.test_response_fileno``, whose server is a
function inside the test method itself (it accepts, reads the head, answers
``CONNECT`` and reads the tunnelled bytes): replacing it would mean editing
the test.
"""

from __future__ import annotations

from protocols import TCPServer
from tests._cpython import load, module_thread_check


class Listening(TCPServer):
    """A listening socket for tests that only connect: served (and closed) by testservers."""

    def listen(self) -> None:
        self.start()

    def close(self) -> None:
        self.stop(raise_errors=True)


_th = load(
    "test_httplib",
    [
        (
            "from test.ssl_servers import make_https_server",
            "from tests._cpython import make_https_server",
        ),
        (
            "self.serv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)",
            "self.serv = _testservers_Listening()",
        ),
        ("socket_helper.bind_port(self.serv)", "self.serv.port"),
    ],
    _testservers_Listening=Listening,
)

setUpModule, tearDownModule = module_thread_check()


class HTTPSTest(_th.HTTPSTest):
    """HTTPSTest's tests with a local server (the others need the network or none)."""


SERVER_TESTS = ("test_local_unknown_cert", "test_local_good_hostname", "test_local_bad_hostname")
for _name in dir(_th.HTTPSTest):
    if _name.startswith("test_") and _name not in SERVER_TESTS:
        setattr(HTTPSTest, _name, None)  # not a test here

SourceAddressTest = _th.SourceAddressTest
TimeoutTest = _th.TimeoutTest
