"""Events, errors, sentinels and limits of the sans-I/O HTTP/1.1 server machine.

The machine itself lives in :mod:`protocols.http._machine`; this module holds the
vocabulary it speaks.  Events are small frozen dataclasses.  What the client
sends arrives as :class:`Request`, :class:`Data`, :class:`EndOfMessage` and
:class:`ConnectionClosed`; what the server sends is given to the machine as
:class:`InformationalResponse`, :class:`Response`, :class:`Data` and
:class:`EndOfMessage` (or through the ``send_response()`` shortcut).

Header fields are carried as a tuple of ``(name, value)`` string pairs, in the
order received, with the name's original case.  Names are ASCII tokens; values
are decoded as ISO-8859-1 so that every octet (including RFC 9110 §5.5
``obs-text``) round-trips unchanged.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from ._errors import (
    HTTPProtocolError,
    InvalidArgumentError,
    LocalProtocolError,
    RemoteProtocolError,
)
from ._grammar import TARGET_STR, TOKEN_STR, VALUE_STR, Headers

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_BODY_SIZE",
    "MAX_CHUNK_LINE",
    "MAX_HEADER_BYTES",
    "MAX_HEADER_FIELDS",
    "MAX_REQUEST_LINE",
    "NEED_DATA",
    "PAUSED",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "Event",
    "HTTPLimits",
    "HTTPProtocolError",
    "Headers",
    "InformationalResponse",
    "LocalProtocolError",
    "RemoteProtocolError",
    "Request",
    "Response",
    "Signal",
    "TOKEN_STR",
    "VALUE_STR",
    "check_reason",
]

# --------------------------------------------------------------------------
# Limits.  Every buffer of the machine is bounded by one of these.
# --------------------------------------------------------------------------

#: Longest request line, in octets without its line terminator.  RFC 9112 §3:
#: "It is RECOMMENDED that all HTTP senders and recipients support, at a
#: minimum, request-line lengths of 8000 octets"; 8 KiB is nginx's
#: ``large_client_header_buffers`` and Apache's ``LimitRequestLine`` (8190).
#: Longer lines get 414 (URI Too Long, RFC 9110 §15.5.15).
MAX_REQUEST_LINE: Final = 8192

#: Largest header section (every field line and the empty line ending the
#: section, not counting the request line), in octets.  RFC 9112 §5 leaves the
#: size to the server; 64 KiB is above what browsers send and what node (16 KiB)
#: and Apache (100 x 8 KiB) accept for real traffic.  Larger sections, and
#: trailer sections larger than this, get 431 (Request Header Fields Too Large,
#: RFC 6585 §5).
MAX_HEADER_BYTES: Final = 65536

#: Most field lines in one header (or trailer) section.  100 is Apache's
#: ``LimitRequestFields`` and CPython's ``http.client._MAXHEADERS``; more get
#: 431 (RFC 6585 §5).
MAX_HEADER_FIELDS: Final = 100

#: Largest request body, in octets of decoded content.  RFC 9110 §15.5.14 (413
#: Content Too Large).  A declared ``Content-Length`` above it is refused
#: before any of the body is read (and before any ``100 Continue``); a chunked
#: body is refused as soon as a chunk size would cross it.
MAX_BODY_SIZE: Final = 64 * 1024 * 1024

#: Longest chunk-size line (size, chunk extensions), in octets.  RFC 9112
#: §7.1.1 lets a server limit extension length; 4 KiB is generous for sizes
#: and small extensions.  Longer lines get 400.
MAX_CHUNK_LINE: Final = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPLimits:
    """Per-connection limits of :class:`~protocols.http._machine.HTTP11Machine`.

    Every field must be a positive ``int``; :class:`InvalidArgumentError` (a
    ``ValueError``) otherwise.  The
    defaults are the module constants, whose comments give the reasons.
    """

    max_request_line: int = MAX_REQUEST_LINE
    max_header_bytes: int = MAX_HEADER_BYTES
    max_header_fields: int = MAX_HEADER_FIELDS
    max_body_size: int = MAX_BODY_SIZE
    max_chunk_line: int = MAX_CHUNK_LINE

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise InvalidArgumentError(
                    f"HTTPLimits.{name} must be a positive int, got {value!r}"
                )


DEFAULT_LIMITS: Final = HTTPLimits()

# --------------------------------------------------------------------------
# Sentinels.
# --------------------------------------------------------------------------


class Signal(enum.Enum):
    """What ``next_event()`` returns when it has no event."""

    #: More bytes must be passed to ``receive_data()`` first.
    NEED_DATA = "NEED_DATA"
    #: A whole request was received; the machine parses nothing more until
    #: the response to it is complete (responses go out in request order).
    PAUSED = "PAUSED"


NEED_DATA: Final = Signal.NEED_DATA
PAUSED: Final = Signal.PAUSED

# --------------------------------------------------------------------------
# Events.
# --------------------------------------------------------------------------



def _check_headers(headers: Iterable[tuple[str, str]]) -> Headers:
    out = []
    for pair in headers:
        name, value = pair
        if not isinstance(name, str) or not TOKEN_STR.fullmatch(name):
            raise LocalProtocolError(f"invalid header field name {name!r}")
        if not isinstance(value, str) or not VALUE_STR.fullmatch(value):
            raise LocalProtocolError(f"invalid value for header field {name!r}: {value!r}")
        out.append((name, value))
    return tuple(out)


def _lookup(headers: Headers, name: str) -> str | None:
    lname = name.lower()
    found = [v for n, v in headers if n.lower() == lname]
    if not found:
        return None
    return ", ".join(found)


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """A request head, received from the client.

    ``http_version`` is ``"1.0"`` or ``"1.1"`` (a request with a higher 1.x
    minor version is treated as 1.1, RFC 9110 §2.5).  ``target`` is the
    request-target exactly as sent.  The machine creates these after checking
    every byte; constructing one by hand validates it (``LocalProtocolError``).
    """

    method: str
    target: str
    http_version: str
    headers: Headers = ()

    def __post_init__(self) -> None:
        if not TOKEN_STR.fullmatch(self.method):
            raise LocalProtocolError(f"invalid method {self.method!r}")
        if not TARGET_STR.fullmatch(self.target):
            raise LocalProtocolError(f"invalid request-target {self.target!r}")
        if self.http_version not in ("1.0", "1.1"):
            raise LocalProtocolError(f"unsupported HTTP version {self.http_version!r}")
        object.__setattr__(self, "headers", _check_headers(self.headers))

    @classmethod
    def _parsed(cls, method: str, target: str, http_version: str, headers: Headers) -> Request:
        # The parser has validated every byte already: skip the second check.
        self = object.__new__(cls)
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "http_version", http_version)
        object.__setattr__(self, "headers", headers)
        return self

    def get_header(self, name: str) -> str | None:
        """Value of header field *name* (case-insensitive), or ``None``.

        Several field lines with that name are joined with ``", "`` (RFC 9110
        §5.3).
        """
        return _lookup(self.headers, name)


@dataclass(frozen=True, slots=True, kw_only=True)
class InformationalResponse:
    """A 1xx interim response to send (not 101: this machine never switches)."""

    status_code: int
    headers: Headers = ()
    reason: str = ""

    def __post_init__(self) -> None:
        if type(self.status_code) is not int or not 100 <= self.status_code <= 199:
            raise LocalProtocolError(f"informational status must be 1xx: {self.status_code!r}")
        if self.status_code == 101:
            raise LocalProtocolError("101 Switching Protocols is not supported")
        check_reason(self.reason)
        object.__setattr__(self, "headers", _check_headers(self.headers))


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """A final response head to send (status 200-999).

    The machine adds the framing headers (``Content-Length`` or
    ``Transfer-Encoding: chunked``) and ``Connection`` as needed; see
    :meth:`~protocols.http._machine.HTTP11Machine.send`.
    """

    status_code: int
    headers: Headers = ()
    reason: str = ""

    def __post_init__(self) -> None:
        if type(self.status_code) is not int or not 200 <= self.status_code <= 999:
            raise LocalProtocolError(f"final status must be 200-999: {self.status_code!r}")
        check_reason(self.reason)
        object.__setattr__(self, "headers", _check_headers(self.headers))

    def get_header(self, name: str) -> str | None:
        """Value of header field *name* (case-insensitive), or ``None``."""
        return _lookup(self.headers, name)


def check_reason(reason: str) -> None:
    # RFC 9112 §4: reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )
    if not isinstance(reason, str) or not VALUE_STR.fullmatch(reason.strip(" \t")):
        raise LocalProtocolError(f"invalid reason phrase {reason!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Data:
    """A piece of message body (decoded: no chunk framing)."""

    data: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytes):
            if isinstance(self.data, (bytearray, memoryview)):
                object.__setattr__(self, "data", bytes(self.data))
            else:
                raise LocalProtocolError(f"Data.data must be bytes, not {type(self.data).__name__}")


@dataclass(frozen=True, slots=True, kw_only=True)
class EndOfMessage:
    """The end of a message body; ``trailers`` holds a chunked trailer section."""

    trailers: Headers = ()

    def __post_init__(self) -> None:
        if self.trailers:
            object.__setattr__(self, "trailers", _check_headers(self.trailers))


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed:
    """The client closed its side cleanly, between requests."""


Event = Request | InformationalResponse | Response | Data | EndOfMessage | ConnectionClosed
