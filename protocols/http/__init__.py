"""HTTP/1.1 and HTTPS: the sans-I/O machine, its vocabulary, and the servers.

Modules: ``_errors`` (the error classes, one base: :class:`HTTPProtocolError`),
``_events`` (events, sentinels, limits), ``_state`` (the
state enum and every transition), ``_grammar`` (RFC 9110/9112 token and field
grammar), ``_framing`` (message framing and the serialized head),
``_machine`` (:class:`HTTP11Machine`), ``_expect`` (expectations and strict
mode), ``_server`` (the native
:class:`HTTPServer`) and ``_compat`` (``TestHTTPServer``, the drop-in for
CPython's test_logging helper).
"""

from ._compat import CompatRequest, ReplyMode, TestHTTPServer
from ._errors import (
    OFFENDING_BYTES_LIMIT,
    AlreadyAnsweredError,
    InvalidArgumentError,
    InvalidReplyError,
)
from ._events import (
    DEFAULT_LIMITS,
    MAX_BODY_SIZE,
    MAX_CHUNK_LINE,
    MAX_HEADER_BYTES,
    MAX_HEADER_FIELDS,
    MAX_REQUEST_LINE,
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    Headers,
    HTTPLimits,
    HTTPProtocolError,
    InformationalResponse,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    Response,
)
from ._expect import Expectation, ExpectationError, SequenceExhausted, UnexpectedRequest, make_reply
from ._faults import (
    CloseWithoutResponse,
    DelayBody,
    DelayHead,
    FailFirst,
    Garbage,
    HTTPFault,
    HTTPFaults,
    MalformedChunk,
    ResetMidBody,
    TruncateBody,
)
from ._machine import CHUNKS_PER_DATA_EVENT, HTTP11Machine
from ._server import HTTPRequest, HTTPServer, NoResponseError, Reply, Responder
from ._state import State

__all__ = [
    "HTTPFault",
    "HTTPFaults",
    "DelayHead",
    "DelayBody",
    "TruncateBody",
    "ResetMidBody",
    "MalformedChunk",
    "Garbage",
    "CloseWithoutResponse",
    "FailFirst",
    "CHUNKS_PER_DATA_EVENT",
    "AlreadyAnsweredError",
    "DEFAULT_LIMITS",
    "MAX_BODY_SIZE",
    "MAX_CHUNK_LINE",
    "MAX_HEADER_BYTES",
    "MAX_HEADER_FIELDS",
    "MAX_REQUEST_LINE",
    "NEED_DATA",
    "OFFENDING_BYTES_LIMIT",
    "PAUSED",
    "CompatRequest",
    "ReplyMode",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "Event",
    "Expectation",
    "ExpectationError",
    "SequenceExhausted",
    "UnexpectedRequest",
    "make_reply",
    "HTTP11Machine",
    "HTTPLimits",
    "HTTPProtocolError",
    "HTTPRequest",
    "HTTPServer",
    "Headers",
    "InformationalResponse",
    "InvalidArgumentError",
    "InvalidReplyError",
    "LocalProtocolError",
    "NoResponseError",
    "RemoteProtocolError",
    "Reply",
    "Request",
    "Responder",
    "Response",
    "State",
    "TestHTTPServer",
]
