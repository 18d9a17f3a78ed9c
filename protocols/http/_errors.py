"""Errors of the HTTP package: one base, :class:`HTTPProtocolError`.

Every exception that :mod:`protocols.http` raises on its own derives from
:class:`HTTPProtocolError`, which carries the HTTP status a server answers
with (``status_hint``).  It derives from the library-wide base,
:class:`reactor.TestServersError`.

* :class:`RemoteProtocolError`: the peer broke the protocol (4xx/5xx).
* :class:`LocalProtocolError`: the caller misused the machine (500);
  :class:`InvalidReplyError` is the server's case of it, a handler's reply
  that is not a valid response, and :class:`AlreadyAnsweredError` a second
  answer to one request.
* :class:`NoResponseError`: a handler produced no response (500).
* :class:`InvalidArgumentError`: a bad option (``HTTPLimits(max_body_size=0)``).

The ones that replaced a ``RuntimeError`` (:class:`NoResponseError`,
:class:`AlreadyAnsweredError`) or a ``ValueError``
(:class:`InvalidArgumentError`) still derive from it too, so an ``except``
written against older versions keeps catching them.
"""

from __future__ import annotations

from reactor import TestServersError

__all__ = [
    "OFFENDING_BYTES_LIMIT",
    "AlreadyAnsweredError",
    "HTTPProtocolError",
    "InvalidArgumentError",
    "InvalidReplyError",
    "LocalProtocolError",
    "NoResponseError",
    "RemoteProtocolError",
]


#: Most octets of the offending input a :class:`RemoteProtocolError` keeps
#: in ``offending`` (enough for a request line and a few fields; a hostile
#: 1 MB head is not copied).
OFFENDING_BYTES_LIMIT = 256


class HTTPProtocolError(TestServersError):
    """Base class of every error of the HTTP machine and servers.

    ``status_hint`` is the HTTP status a server should answer with (400, 413,
    414, 431, 501, 505 for a peer's fault; 500 for a local one).
    """

    status_hint: int

    def __init__(self, message: str, *, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class RemoteProtocolError(HTTPProtocolError):
    """The peer broke the protocol (malformed, hostile or oversize input).

    Raised by ``next_event()``.  When it is raised the machine is in the ERROR
    state and, if no response had been started, an error response with status
    ``status_hint`` and ``Connection: close`` is already queued in
    ``data_to_send()``; the caller sends it and closes the connection.

    ``offending`` holds (at most :data:`OFFENDING_BYTES_LIMIT` octets of) the
    input that was refused, exactly as received: for a request head, the
    head from its first octet; in a body, the octets around where reading
    stopped.  It is ``b""`` when the error was not raised by the machine.
    """

    offending: bytes = b""


class LocalProtocolError(HTTPProtocolError):
    """The caller misused the machine (wrong state, bad header, wrong length).

    Raised by the ``send*`` methods, by ``receive_data()`` after EOF, and by
    ``next_event()`` once the machine is in the ERROR state.  A misuse by
    ``send*`` leaves the machine unchanged, so the caller may still send a
    correct response (for example a 500).
    """

    def __init__(self, message: str, *, status_hint: int = 500) -> None:
        super().__init__(message, status_hint=status_hint)


class InvalidReplyError(LocalProtocolError):
    """A handler's reply is not a valid response; the client got 500 instead.

    Recorded in ``server.errors``: a :class:`~protocols.http.Reply` whose
    status is not an ``int`` from 200 to 999, whose body is not ``bytes`` or
    ``str``, whose headers are not ``(name, value)`` pairs of ``str`` (or
    hold an invalid name, a CR, LF or other control in a value, or framing
    fields that contradict the body), whose reason is not a valid phrase or
    whose ``delay`` is not a finite number of seconds >= 0; a handler result
    that is none of the documented response shapes; or a compat
    handler's self-framed body that is not valid chunked framing.
    """


class AlreadyAnsweredError(LocalProtocolError, RuntimeError):
    """``Responder.send()`` was called for a request that was already answered."""


class NoResponseError(HTTPProtocolError, RuntimeError):
    """A handler finished without producing a response (the client got 500)."""

    def __init__(self, message: str, *, status_hint: int = 500) -> None:
        super().__init__(message, status_hint=status_hint)


class InvalidArgumentError(LocalProtocolError, ValueError):
    """An option has an invalid value (e.g. an ``HTTPLimits`` field that is not a positive int)."""
