"""Framing for scripted streams, sans-I/O: bytes in, frames out.

A :class:`Framer` holds one connection's received bytes and cuts them into
frames by its current terminator: a delimiter (the frame is what comes
before it), a byte count, a :class:`LengthPrefix`, or ``None`` (raw: what
is buffered, as one chunk).  It parses from an offset into one buffer and
compacts it once per batch, so a 256 KiB read of short lines costs linear
time, not a copy per line; a delimiter search resumes where the previous
one stopped.  No socket, no thread: feed it whole, byte by byte or with
trailing data and it cuts the same frames.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from reactor import InvalidArgumentError, PeerError

__all__ = ["MAX_FRAME_LENGTH", "Framer", "LengthPrefix", "Terminator", "check_terminator"]

#: Longest frame (bytes, terminator excluded) a delimiter, count or length
#: prefix may make; a longer one is a :class:`reactor.PeerError` that
#: closes the connection.  64 KiB is far above any command line (RFC 1939
#: §3 caps POP3 commands at 255 octets, RFC 959 FTP servers commonly 8 KiB)
#: and keeps the memory of a peer that never sends the terminator bounded.
MAX_FRAME_LENGTH = 64 * 1024

_PREFIX_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}


@dataclass(frozen=True, slots=True)
class LengthPrefix:
    """Terminator for length-prefixed frames: ``size`` bytes of length, then the payload.

    ``byteorder`` is ``"big"`` (network order, the default) or ``"little"``.
    The frame delivered is the payload without the prefix.

    :raises InvalidArgumentError: ``size`` not 1, 2, 4 or 8, or a bad byte order.
    """

    size: int = 4
    byteorder: str = "big"

    def __post_init__(self) -> None:
        if self.size not in _PREFIX_FORMATS:
            raise InvalidArgumentError(f"LengthPrefix size must be 1, 2, 4 or 8, got {self.size!r}")
        if self.byteorder not in ("big", "little"):
            raise InvalidArgumentError(
                f"byteorder must be 'big' or 'little', got {self.byteorder!r}"
            )

    def encode(self, payload: bytes) -> bytes:
        """``payload`` with its length prefix (what :meth:`ScriptedConnection.push_frame` sends).

        :raises InvalidArgumentError: ``payload`` is too long for ``size`` bytes of length.
        """
        if len(payload) >= 1 << (8 * self.size):
            raise InvalidArgumentError(
                f"a {len(payload)}-byte payload does not fit a {self.size}-byte length prefix"
            )
        order = ">" if self.byteorder == "big" else "<"
        return struct.pack(order + _PREFIX_FORMATS[self.size], len(payload)) + payload


Terminator = bytes | int | LengthPrefix | None


def check_terminator(term: object, limit: int) -> Terminator:
    """Validate a terminator (a str delimiter is ASCII-encoded).

    :raises InvalidArgumentError: an empty delimiter, a count outside
        ``1..limit``, or another type.
    """
    if term is None or isinstance(term, LengthPrefix):
        return term
    if isinstance(term, str):
        term = term.encode("ascii")
    if isinstance(term, (bytes, bytearray)):
        if not term:
            raise InvalidArgumentError("a delimiter terminator must not be empty")
        return bytes(term)
    if isinstance(term, int) and not isinstance(term, bool):
        if not 0 < term <= limit:
            raise InvalidArgumentError(
                f"a count terminator must be 1..max_frame_length={limit}, got {term}"
            )
        return term
    raise InvalidArgumentError(f"terminator must be bytes, int, LengthPrefix or None, not {term!r}")


class Framer:
    """One connection's input buffer, cut into frames by a changeable terminator.

    :param limit: longest frame (terminator excluded); see :data:`MAX_FRAME_LENGTH`.
    """

    __slots__ = ("limit", "_term", "_buf", "_pos", "_scanned")

    def __init__(self, terminator: Terminator = b"\r\n", limit: int = MAX_FRAME_LENGTH) -> None:
        self.limit = limit
        self._term = check_terminator(terminator, limit)
        self._buf = bytearray()
        self._pos = 0  # start of the unconsumed bytes in _buf
        self._scanned = 0  # offset up to which _buf was searched for the delimiter

    @property
    def terminator(self) -> Terminator:
        return self._term

    @terminator.setter
    def terminator(self, terminator: Terminator) -> None:
        self._term = check_terminator(terminator, self.limit)
        self._scanned = self._pos

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buf += data

    def __len__(self) -> int:
        """Bytes buffered and not yet cut into frames."""
        return len(self._buf) - self._pos

    @property
    def pending(self) -> bytes:
        """The bytes buffered and not yet cut into frames."""
        return bytes(self._buf[self._pos :])

    def clear(self) -> int:
        """Drop everything buffered; returns how many bytes were dropped."""
        n = len(self)
        self._buf.clear()
        self._pos = self._scanned = 0
        return n

    def compact(self) -> None:
        """Release the consumed prefix (call once per batch of frames)."""
        if self._pos:
            del self._buf[: self._pos]
            self._scanned = max(0, self._scanned - self._pos)
            self._pos = 0

    def next_frame(self) -> bytes | None:
        """Cut the next frame, or None if it is not complete yet.

        :raises PeerError: the frame would exceed :attr:`limit` (a
            delimiter not found within it, or a length prefix above it).
        """
        buf, pos, term, limit = self._buf, self._pos, self._term, self.limit
        avail = len(buf) - pos
        if term is None:
            if not avail:
                return None
            chunk = bytes(buf[pos:])
            self.clear()
            return chunk
        if isinstance(term, bytes):
            start = max(pos, self._scanned - len(term) + 1)
            i = buf.find(term, start)
            # Without a delimiter, the frame is at least what precedes the
            # last len(term) - 1 bytes (a delimiter may begin there): the
            # limit holds however the bytes were split into reads.
            if i < 0 and avail - len(term) + 1 > limit or i - pos > limit:
                raise PeerError(f"frame longer than max_frame_length={limit}")
            if i < 0:
                self._scanned = len(buf)
                return None
            frame = bytes(buf[pos:i])
            self._pos = self._scanned = i + len(term)
            return frame
        if isinstance(term, int):
            if avail < term:
                return None
            self._pos = pos + term
            return bytes(buf[pos : self._pos])
        size = term.size
        if avail < size:
            return None
        length = int.from_bytes(
            buf[pos : pos + size], "big" if term.byteorder == "big" else "little"
        )
        if length > limit:
            raise PeerError(f"length prefix {length} above max_frame_length={limit}")
        if avail < size + length:
            return None
        self._pos = pos + size + length
        return bytes(buf[pos + size : self._pos])
