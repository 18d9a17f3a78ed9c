"""Response framing for the HTTP/1.1 machine: checked head bytes, body mode, chunks.

The status line (:func:`status_line`), field lines (:func:`field_lines`) and
chunk encoding (:func:`write_chunk`, :func:`write_last_chunk`) are written
here once; the machine and the compat server use them.  Pure functions of
their arguments (no machine state), so that complete response heads can be
memoized: a test server answers with the same few responses, and each head
is then built and checked once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ._errors import LocalProtocolError
from ._grammar import DIGITS, TOKEN_STR, VALUE_STR, Headers, reason_phrase

__all__ = [
    "CHUNKED",
    "CLOSE",
    "LENGTH",
    "NONE",
    "field_lines",
    "head_bytes",
    "prepare_head",
    "status_line",
    "write_chunk",
    "write_last_chunk",
]

# How a message body is delimited (both directions).
NONE, LENGTH, CHUNKED, CLOSE = 0, 1, 2, 3

#: Statuses whose responses never have content (RFC 9110 §15.3.5, §15.4.5).
NO_BODY_STATUSES: Final = frozenset({204, 304})

# Response header fields already validated, mapped to the lowered name: most
# responses repeat the same few fields, so each is checked once.  Bounded.
_CHECKED_FIELDS: dict[tuple[str, str], str] = {}
_CHECKED_FIELDS_MAX: Final = 1024


def status_line(status: int, reason: str) -> str:
    """``HTTP/1.1 <status> <reason>`` and CRLF (RFC 9112 §4).

    An empty *reason* is replaced by the standard phrase.
    """
    return f"HTTP/1.1 {status} {reason or reason_phrase(status)}\r\n"


def field_lines(headers: Headers) -> str:
    """Already validated fields as ``name: value`` lines, each ending in CRLF."""
    return "".join([f"{name}: {value}\r\n" for name, value in headers])


def head_bytes(status: int, reason: str, headers: Headers) -> bytes:
    """A status line and already validated fields, as bytes."""
    return (status_line(status, reason) + field_lines(headers) + "\r\n").encode("latin-1")


def write_chunk(out: bytearray, data: bytes) -> None:
    """Append *data* as one chunk (RFC 9112 §7.1); nothing for empty data.

    (An empty chunk would be the last chunk.)
    """
    if data:
        out += b"%x\r\n" % len(data)
        out += data
        out += b"\r\n"


def write_last_chunk(out: bytearray, trailers: Headers = ()) -> None:
    """Append the last chunk, the (validated) *trailers* and the final CRLF (RFC 9112 §7.1.2)."""
    if trailers:
        out += b"0\r\n" + field_lines(trailers).encode("latin-1") + b"\r\n"
    else:
        out += b"0\r\n\r\n"


def prepare_head(
    status: int,
    reason: str,
    headers: Iterable[tuple[str, str]],
    body_length: int | None,
    *,
    keep_alive: bool,
    http11: bool,
    is_head: bool,
    expect_close: bool,
    validate: bool = True,
) -> tuple[bytes, int, int, bool]:
    """Check *headers* and choose the framing of a final response.

    *keep_alive* is the request's persistence, *http11* whether the client
    speaks 1.1, *is_head* whether it asked with HEAD, *expect_close* whether a
    ``100 Continue`` is owed for a body still unsent (then the connection
    closes after this response, RFC 9110 §10.1.1) or the request body is
    still unread: either way the connection closes after this response.
    With *body_length* (a complete body) a missing Content-Length is added.

    Connection fields are merged into one, at the place of the first: their
    options other than ``close`` and ``keep-alive``, then ``close`` when
    the connection will not be reused (replacing a handler's
    ``keep-alive``), else ``keep-alive`` for an HTTP/1.0 client or when the
    handler said it.  A 204 response never carries Content-Length or
    Transfer-Encoding (given ones are dropped).

    Returns ``(head bytes, framing mode, Content-Length, keep_alive)``.
    Raises :class:`LocalProtocolError`.
    """
    out = [status_line(status, reason)]
    length = -1
    chunked = False
    # Connection fields are merged into one, written where the first was:
    # its options other than close/keep-alive, then the machine's verdict.
    conn_at = -1
    conn_options: list[str] = []
    said_keep_alive = False
    no_body = status in NO_BODY_STATUSES
    checked = _CHECKED_FIELDS
    for pair in headers:
        name, value = pair
        if type(pair) is tuple and type(name) is str and type(value) is str:
            lname = checked.get(pair)
        else:
            lname = None
        if lname is None:
            if validate and not (
                isinstance(name, str)
                and isinstance(value, str)
                and TOKEN_STR.fullmatch(name)
                and VALUE_STR.fullmatch(value)
            ):
                raise LocalProtocolError(f"invalid header field {name!r}: {value!r}")
            lname = name.lower()
            if validate and type(pair) is tuple:
                if len(checked) >= _CHECKED_FIELDS_MAX:
                    checked.clear()
                checked[pair] = lname
        if lname == "content-length":
            if length >= 0 or not DIGITS.fullmatch(value):
                raise LocalProtocolError(f"invalid Content-Length {value!r}")
            if status == 204:
                continue  # RFC 9110 §8.6: never in a 204
            length = int(value)
        elif lname == "transfer-encoding":
            if value.strip().lower() != "chunked":
                raise LocalProtocolError("only Transfer-Encoding: chunked can be framed")
            if status == 204:
                continue  # RFC 9112 §6.1: never in a 204
            chunked = True
        elif lname == "connection":
            for option in value.split(","):
                option = option.strip(" \t")
                low = option.lower()
                if low == "close":
                    keep_alive = False
                elif low == "keep-alive":
                    said_keep_alive = True
                elif option and low not in (o.lower() for o in conn_options):
                    conn_options.append(option)
            if conn_at < 0:
                conn_at = len(out)
                out.append("")  # the merged field goes here
            continue
        out.append(f"{name}: {value}\r\n")
    if length >= 0 and chunked:
        raise LocalProtocolError("both Content-Length and Transfer-Encoding")
    if chunked and not http11:
        raise LocalProtocolError("cannot send Transfer-Encoding to an HTTP/1.0 client")
    if length < 0 and body_length is not None and not chunked and not no_body:
        length = body_length
        out.append(f"Content-Length: {length}\r\n")
    if no_body or is_head:
        mode = NONE
    elif length >= 0:
        mode = LENGTH
    elif chunked:
        mode = CHUNKED
    elif http11:
        mode = CHUNKED
        out.append("Transfer-Encoding: chunked\r\n")
    else:
        mode = CLOSE  # RFC 9112 §6.3 item 8: the body ends at close
        keep_alive = False
    if expect_close:
        # The connection closes after this response whatever the handler
        # said: a 100 Continue is owed (the client was told nothing; whether
        # it now sends the body is its choice, RFC 9110 §10.1.1), or the
        # request body is still unread (its end is unknown).
        keep_alive = False
    # RFC 9112 §9.6: a response after which the server closes says so.  A
    # handler's "keep-alive" is replaced by "close" then.
    if not keep_alive:
        conn_options.append("close")
    elif not http11 or said_keep_alive:
        conn_options.append("keep-alive")
    field = f"Connection: {', '.join(conn_options)}\r\n" if conn_options else ""
    if conn_at >= 0:
        out[conn_at] = field
    elif field:
        out.append(field)
    out.append("\r\n")
    return "".join(out).encode("latin-1"), mode, max(length, 0), keep_alive
