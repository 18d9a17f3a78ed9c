"""Body readers of the HTTP/1.1 machine: one object per framing (RFC 9112 §6, §7.1).

A request head decides how its body is delimited (``_framing.NONE``,
``LENGTH`` or ``CHUNKED``); :func:`make_reader` picks the reader from
:data:`READERS`, and the machine then calls ``reader.read(buffer, eof)``
until it returns an :class:`EndOfMessage`.  A reader consumes from the
machine's :class:`~protocols._buffer.ReceiveBuffer` and returns a
:class:`Data`, an :class:`EndOfMessage` or :data:`NEED_DATA`; bad framing
raises :class:`RemoteProtocolError` (with its ``status_hint``).

The compat server decodes a handler's self-framed chunked body with the same
:class:`ChunkedReader` (see :func:`decode_chunked`), so chunked framing is
parsed in one place only.
"""

from __future__ import annotations

import enum
from typing import Final, Protocol

from .._buffer import ReceiveBuffer
from ._events import NEED_DATA, Data, EndOfMessage, HTTPLimits, RemoteProtocolError, Signal
from ._framing import CHUNKED, LENGTH, NONE
from ._grammar import CHUNK_LINE, FORBIDDEN_TRAILERS, parse_fields

__all__ = [
    "CHUNKS_PER_DATA_EVENT",
    "NO_BODY",
    "READERS",
    "BodyReader",
    "ChunkedReader",
    "ContentLengthReader",
    "decode_chunked",
    "make_reader",
]

#: At most this many chunks are merged into one Data event: the work of one
#: ``next_event()`` call stays bounded (about 0.2 ms), so a caller that
#: budgets events per turn (the server does) still bounds its turn when a
#: client sends a flood of tiny chunks.
CHUNKS_PER_DATA_EVENT: Final = 64

_END: Final = EndOfMessage()


class BodyReader(Protocol):
    """What the machine asks of a body reader."""

    def read(self, buf: ReceiveBuffer, eof: bool) -> Data | EndOfMessage | Signal:
        """The next piece of body, its end, or :data:`NEED_DATA`."""
        ...  # pragma: no cover


def _closed_inside() -> RemoteProtocolError:
    return RemoteProtocolError("connection closed inside the request body")


class ContentLengthReader:
    """A body of a known length (``Content-Length``, RFC 9112 §6.2)."""

    __slots__ = ("left",)

    def __init__(self, length: int, limits: HTTPLimits | None = None) -> None:
        #: Octets of body not yet returned.
        self.left = length

    def read(self, buf: ReceiveBuffer, eof: bool) -> Data | EndOfMessage | Signal:
        left = self.left
        if left == 0:
            return _END
        if not buf:
            if eof:
                raise _closed_inside()
            return NEED_DATA
        data = buf.take(left)
        self.left = left - len(data)
        return Data(data=data)


#: The reader of a request without a body (shared: it holds no state).
NO_BODY: Final = ContentLengthReader(0)


class _Phase(enum.Enum):
    """Where a :class:`ChunkedReader` is in the chunked grammar (RFC 9112 §7.1)."""

    #: Expecting a chunk-size line.
    SIZE = "SIZE"
    #: Inside a chunk's data.
    DATA = "DATA"
    #: Expecting the CRLF after a chunk's data.
    DATA_END = "DATA_END"
    #: After the last chunk: trailer field lines, then an empty line.
    TRAILER = "TRAILER"

    __hash__ = object.__hash__


_SIZE: Final = _Phase.SIZE
_DATA: Final = _Phase.DATA
_DATA_END: Final = _Phase.DATA_END
_TRAILER: Final = _Phase.TRAILER


class ChunkedReader:
    """A ``Transfer-Encoding: chunked`` body (RFC 9112 §7.1), with its trailers.

    CRLF is required throughout (a bare LF is 400: lenient and strict
    parsers disagreeing here is what request smuggling exploits).  Limits:
    ``limits.max_chunk_line`` per chunk-size line (400), ``max_body_size``
    for the decoded total (413, refused as soon as a chunk size would cross
    it), ``max_header_bytes`` and ``max_header_fields`` for the trailer
    section (431).  Trailer fields that RFC 9110 §6.5.1 forbids
    (:data:`~protocols.http._grammar.FORBIDDEN_TRAILERS`) are 400.
    """

    __slots__ = ("limits", "phase", "left", "total", "trailers", "trailer_bytes")

    def __init__(self, length: int, limits: HTTPLimits) -> None:
        self.limits = limits
        #: Where the reader is in the grammar.
        self.phase = _SIZE
        #: Octets left in the current chunk.
        self.left = 0
        #: Decoded body octets so far.
        self.total = 0
        #: Trailer fields received so far.
        self.trailers: list[tuple[str, str]] = []
        self.trailer_bytes = 0

    def read(self, buf: ReceiveBuffer, eof: bool) -> Data | EndOfMessage | Signal:
        """Decode what is buffered.

        The data of consecutive chunks already buffered is returned as one
        :class:`Data` (at most :data:`CHUNKS_PER_DATA_EVENT` chunks): it is
        returned when the buffer runs dry, that many chunks were merged, or
        the last chunk is reached.  Every chunk-size line and chunk end is
        still checked, and an error found after some data raises at once
        (the data is dropped with the request).
        """
        limits = self.limits
        pieces: list[bytes] = []
        while True:
            phase = self.phase
            if phase is _DATA:
                if not buf:
                    if eof:
                        raise _closed_inside()
                    break
                data = buf.take(self.left)
                self.left -= len(data)
                if self.left == 0:
                    self.phase = _DATA_END
                pieces.append(data)
                if not buf or len(pieces) >= CHUNKS_PER_DATA_EVENT:
                    break
            elif phase is _SIZE:
                line = _line(buf, eof, limits.max_chunk_line, "chunk-size line", 400)
                if line is None:
                    break
                m = CHUNK_LINE.fullmatch(line)
                if m is None:
                    raise RemoteProtocolError("invalid chunk-size line")
                size = int(m[1], 16)
                if self.total + size > limits.max_body_size:
                    raise RemoteProtocolError("request body too large", status_hint=413)
                self.total += size
                self.left = size
                self.phase = _DATA if size else _TRAILER
                if not size and pieces:
                    break  # the data first; the trailer section on the next call
            elif phase is _DATA_END:
                if len(buf) < 2:
                    if eof:
                        raise _closed_inside()
                    break
                pos = buf.pos
                if buf.data[pos : pos + 2] != b"\r\n":
                    raise RemoteProtocolError("chunk data not followed by CRLF")
                buf.consume_to(pos + 2)
                self.phase = _SIZE
            else:  # _TRAILER: field lines, then an empty line (RFC 9112 §7.1.2)
                start = buf.pos
                limit = limits.max_header_bytes - self.trailer_bytes
                line = _line(buf, eof, limit, "trailer section", 431)
                if line is None:
                    break
                self.trailer_bytes += buf.pos - start
                if not line:
                    return EndOfMessage(trailers=tuple(self.trailers)) if self.trailers else _END
                if len(self.trailers) >= limits.max_header_fields:
                    raise RemoteProtocolError("too many trailer fields", status_hint=431)
                fields = parse_fields([line], 0)
                if fields[0][0].lower() in FORBIDDEN_TRAILERS:
                    # RFC 9110 §6.5.1: framing, routing, control and
                    # authentication fields must not come as trailers.
                    raise RemoteProtocolError(f"field not allowed in a trailer: {fields[0][0]}")
                self.trailers.extend(fields)
        if pieces:
            return Data(data=pieces[0] if len(pieces) == 1 else b"".join(pieces))
        return NEED_DATA


def _line(buf: ReceiveBuffer, eof: bool, limit: int, what: str, status: int) -> bytearray | None:
    """The next CRLF-terminated line (without CRLF), or None if incomplete.

    A line longer than *limit* raises RemoteProtocolError with *status*.
    """
    lf = buf.find(b"\n")
    pos = buf.pos
    if lf < 0:
        if len(buf) > limit + 1:
            raise RemoteProtocolError(f"{what} too long", status_hint=status)
        if eof:
            raise _closed_inside()
        return None
    if lf - pos > limit + 1:
        raise RemoteProtocolError(f"{what} too long", status_hint=status)
    data = buf.data
    if lf == pos or data[lf - 1] != 0x0D:
        raise RemoteProtocolError(f"bare LF in {what} (chunked framing needs CRLF)")
    line = data[pos : lf - 1]
    buf.consume_to(lf + 1)
    return line


def _length_reader(length: int, limits: HTTPLimits) -> BodyReader:
    return ContentLengthReader(length) if length else NO_BODY


def _no_body(length: int, limits: HTTPLimits) -> BodyReader:
    return NO_BODY


#: The reader for each body framing of a request (``_framing.NONE``,
#: ``LENGTH``, ``CHUNKED``), called with the declared length and the limits.
READERS: Final = {
    NONE: _no_body,
    LENGTH: _length_reader,
    CHUNKED: ChunkedReader,
}


def make_reader(framing: int, length: int, limits: HTTPLimits) -> BodyReader:
    """The reader of a body framed by *framing* (a key of :data:`READERS`)."""
    return READERS[framing](length, limits)


def decode_chunked(raw: bytes, limits: HTTPLimits) -> tuple[bytes, bool]:
    """Decode a complete chunked body held in *raw* with :class:`ChunkedReader`.

    Returns ``(data, complete)``: *complete* is False when *raw* ends after
    the last chunk but before the empty line ending the trailer section
    (a writer that stopped at ``0\\r\\n``); every other fault raises
    :class:`RemoteProtocolError` naming it.  Trailers are dropped.
    """
    buf = ReceiveBuffer()
    buf.feed(raw)
    reader = ChunkedReader(0, limits)
    parts: list[bytes] = []
    while True:
        try:
            event = reader.read(buf, True)
        except RemoteProtocolError:
            if reader.phase is _TRAILER and not buf:
                return b"".join(parts), False
            raise
        if isinstance(event, Data):
            parts.append(event.data)
        else:  # EndOfMessage (NEED_DATA is impossible at EOF: it raises)
            return b"".join(parts), True
