"""Syslog: a sans-I/O parser (RFC 5424, RFC 3164, RFC 6587 framing) and servers.

See :mod:`protocols.syslog._parser` for the parser's theory of operation.
"""

from ._parser import (
    MAX_MESSAGE_SIZE,
    MAX_OCTET_COUNT,
    Facility,
    Frame,
    Framing,
    InvalidArgumentError,
    SDElement,
    Severity,
    SyslogError,
    SyslogFormat,
    SyslogFramer,
    SyslogMessage,
    format_message,
    invalid_message,
    parse_message,
)
from ._server import (
    SyslogServer,
    SyslogTCPServer,
    SyslogTLSServer,
    SyslogUDPServer,
    SyslogUnixDatagramServer,
    SyslogUnixStreamServer,
    describe_message,
    match_message,
    syslog_criteria,
)

__all__ = [
    "InvalidArgumentError",
    "SyslogError",
    "MAX_MESSAGE_SIZE",
    "MAX_OCTET_COUNT",
    "Facility",
    "Frame",
    "Framing",
    "SDElement",
    "Severity",
    "SyslogFormat",
    "SyslogFramer",
    "SyslogMessage",
    "format_message",
    "invalid_message",
    "parse_message",
    "SyslogServer",
    "SyslogTCPServer",
    "SyslogTLSServer",
    "SyslogUDPServer",
    "SyslogUnixDatagramServer",
    "SyslogUnixStreamServer",
    "describe_message",
    "match_message",
    "syslog_criteria",
]
