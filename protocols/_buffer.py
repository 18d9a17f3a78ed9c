"""The receive buffer shared by the protocol machines (HTTP, SMTP), sans-I/O.

A :class:`ReceiveBuffer` is one ``bytearray`` plus two offsets into it:

* :attr:`~ReceiveBuffer.pos`, where the unconsumed bytes start.  Consuming
  moves the offset; nothing is copied.
* :attr:`~ReceiveBuffer.scan`, where the next search for a terminator
  resumes.  A search that finds nothing remembers how far it looked, so a
  message fed one byte at a time is searched once overall, not once per feed
  (the quadratic trap of ``buf.find(b"\\r\\n\\r\\n")`` from the start on every
  feed).

The consumed prefix is dropped only when it is worth it (see
:data:`COMPACT_AT`) or free (everything was consumed), so each received byte
is moved at most once on average and the total work is linear in the bytes
received.

Limits.  The buffer itself never refuses bytes: its size is bounded by its
owner, which checks ``len(buffer)`` (the unconsumed octets) against its own
named limits (HTTP: ``MAX_REQUEST_LINE``, ``MAX_HEADER_BYTES``...; SMTP: its
line limits) and by the I/O layer's read pausing.  The only constant here is
the compaction threshold.

The machines read :attr:`~ReceiveBuffer.data` directly with C-speed
``bytearray`` methods (``find``, compiled ``re`` patterns with ``pos``/
``endpos``); the methods below are the common moves.  Not thread-safe: the
owning machine's thread uses it.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["COMPACT_AT", "ReceiveBuffer"]

#: The consumed prefix is dropped (one ``del data[:pos]``) when a feed finds
#: at least this many consumed octets in front *and* they are at least half
#: of the array: the bytes moved are then never more than the bytes consumed
#: since the last compaction (linear overall), and a long-lived connection
#: holds at most this much dead prefix plus what it has not consumed.  64 KiB
#: is a few socket reads: small next to the machines' limits, large enough
#: that compaction is rare.
COMPACT_AT: Final = 65536


class ReceiveBuffer:
    """Received bytes not yet consumed, with a resumable search position."""

    __slots__ = ("data", "pos", "scan")

    def __init__(self) -> None:
        #: Every byte held; the unconsumed ones are ``data[pos:]``.
        self.data = bytearray()
        #: Start of the unconsumed bytes.
        self.pos = 0
        #: Where the next :meth:`find` or :meth:`search` resumes (never
        #: before :attr:`pos`).
        self.scan = 0

    def __len__(self) -> int:
        """The number of unconsumed octets."""
        return len(self.data) - self.pos

    def __bool__(self) -> bool:
        return len(self.data) > self.pos

    def feed(self, data: bytes) -> None:
        """Append *data*, first dropping the consumed prefix if it is worth it.

        Offsets into :attr:`data` that a caller keeps across a feed must be
        relative to :attr:`pos` (they stay valid; absolute ones do not).
        """
        buf = self.data
        pos = self.pos
        if pos:
            if pos == len(buf):
                buf.clear()
                self.pos = self.scan = 0
            elif pos >= COMPACT_AT and pos * 2 >= len(buf):
                del buf[:pos]
                self.pos = 0
                self.scan = max(0, self.scan - pos)
        buf += data

    def find(self, sep: bytes) -> int:
        """Index in :attr:`data` of the next *sep* at or after :attr:`scan`, or -1.

        When *sep* is not there, :attr:`scan` moves to where a *sep* split
        across the next feed could start, so no byte is searched twice.
        """
        buf = self.data
        start = self.scan if self.scan > self.pos else self.pos
        i = buf.find(sep, start)
        if i < 0:
            resume = len(buf) - len(sep) + 1
            self.scan = resume if resume > start else start
        return i

    def search(self, pattern: re.Pattern[bytes], overlap: int) -> re.Match[bytes] | None:
        """The first match of *pattern* at or after :attr:`scan`, or None.

        *overlap* is one less than the longest match (the octets of a match
        that may straddle the next feed): when there is no match,
        :attr:`scan` moves to ``len(data) - overlap``.
        """
        buf = self.data
        start = self.scan if self.scan > self.pos else self.pos
        m = pattern.search(buf, start)
        if m is None:
            resume = len(buf) - overlap
            self.scan = resume if resume > start else start
        return m

    def consume_to(self, index: int) -> None:
        """Mark everything before *index* (an index into :attr:`data`) consumed."""
        self.pos = self.scan = index

    def take(self, n: int) -> bytes:
        """Consume and return up to *n* unconsumed octets (``b""`` if none)."""
        buf = self.data
        pos = self.pos
        avail = len(buf) - pos
        if n >= avail:
            if pos == 0:
                out = bytes(buf)  # all of it: no slice, and the array is emptied
                buf.clear()
                self.scan = 0
                return out
            n = avail
        out = bytes(buf[pos : pos + n])
        self.pos = self.scan = pos + n
        return out

    def clear(self) -> None:
        """Drop every byte, consumed or not."""
        self.data.clear()
        self.pos = self.scan = 0
