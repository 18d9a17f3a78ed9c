"""Test servers on one shared reactor thread, and their protocol machines.

CPython-compatible names (drop-in for test_logging's server helpers):
``TestTCPServer``, ``TestUDPServer``, ``TestUnixStreamServer``,
``TestUnixDatagramServer`` (and ``TestHTTPServer``, ``TestSMTPServer``).
Native names: ``TCPServer``, ``UDPServer``, ``UnixStreamServer``,
``UnixDatagramServer`` (and ``HTTPServer``, ``SMTPServer``).
"""

from reactor import HandlerErrors, HandlerTimeout, ReactorDied

from ._datagram import (
    Datagram,
    DatagramRequest,
    DatagramServer,
    TestUDPServer,
    TestUnixDatagramServer,
    UDPServer,
    UnixDatagramServer,
)
from ._stream import (
    Stream,
    StreamConnection,
    StreamRequest,
    StreamServer,
    TCPServer,
    TestTCPServer,
    TestUnixStreamServer,
    UnixStreamServer,
)

__all__ = [
    "Datagram",
    "DatagramRequest",
    "DatagramServer",
    "HandlerErrors",
    "HandlerTimeout",
    "ReactorDied",
    "Stream",
    "StreamConnection",
    "StreamRequest",
    "StreamServer",
    "TCPServer",
    "TestTCPServer",
    "TestUDPServer",
    "TestUnixDatagramServer",
    "TestUnixStreamServer",
    "UDPServer",
    "UnixDatagramServer",
    "UnixStreamServer",
]
