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
    MAX_LINE_LENGTH,
    MAX_RECORDED_BYTES,
    Stream,
    StreamConnection,
    StreamRequest,
    StreamServer,
    TCPServer,
    TestTCPServer,
    TestUnixStreamServer,
    UnixStreamServer,
)
from ._tls import localhost_contexts
from .http import (
    CompatRequest,
    HTTP11Machine,
    HTTPLimits,
    HTTPRequest,
    HTTPServer,
    NoResponseError,
    Reply,
    Responder,
    TestHTTPServer,
)
from .smtp import (
    Envelope,
    Login,
    Rejection,
    SMTPReject,
    SMTPServer,
    SMTPServerConnection,
    TestSMTPServer,
    add_smtp_sink,
)
from .syslog import (
    SyslogMessage,
    SyslogTCPServer,
    SyslogTLSServer,
    SyslogUDPServer,
    SyslogUnixDatagramServer,
    SyslogUnixStreamServer,
)

__all__ = [
    "MAX_LINE_LENGTH",
    "MAX_RECORDED_BYTES",
    "Datagram",
    "DatagramRequest",
    "DatagramServer",
    "HandlerErrors",
    "HandlerTimeout",
    "HTTP11Machine",
    "HTTPLimits",
    "HTTPRequest",
    "HTTPServer",
    "CompatRequest",
    "NoResponseError",
    "Reply",
    "Responder",
    "TestHTTPServer",
    "Envelope",
    "Login",
    "Rejection",
    "SMTPReject",
    "SMTPServer",
    "SMTPServerConnection",
    "TestSMTPServer",
    "add_smtp_sink",
    "localhost_contexts",
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
    "SyslogMessage",
    "SyslogTCPServer",
    "SyslogTLSServer",
    "SyslogUDPServer",
    "SyslogUnixDatagramServer",
    "SyslogUnixStreamServer",
]
