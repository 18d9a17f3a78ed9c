"""Framing of SMTP message content (the bytes after ``354``), sans-I/O.

:class:`ContentReader` consumes content from the machine's input buffer and
finds its end.  The rules, and why:

* The content ends only at a line holding a single dot, i.e. at
  ``CRLF . CRLF`` (or ``. CRLF`` right after the 354).  ``LF.LF``,
  ``CR.CR``, ``LF.CRLF`` and friends are content: treating any of them as the
  end would let a client smuggle a second message past a relay that frames
  differently ("SMTP smuggling", 2023).
* A line starting with a dot loses that dot (RFC 5321 §4.5.2).
* A CR or LF that is not part of a CRLF ("bare") makes the message fail
  (RFC 5321 §2.3.8: they MUST NOT be sent), unless ``allow_bare_line_endings``.
* A text line longer than :data:`TEXT_LINE_LIMIT` octets with its CRLF, not
  counting the transparency dot, makes the message fail (RFC 5321
  §4.5.3.1.6).
* More than ``max_size`` octets of unstuffed content makes it fail (RFC 1870).

A failed message keeps being read (to find its end) but not stored, so memory
stays bounded by ``max_size`` plus one input chunk.  Work is linear: each call
searches only the unconsumed tail, which after a call is at most one partial
line.
"""

from __future__ import annotations

from ._smtp_events import TEXT_LINE_LIMIT

__all__ = ["ContentReader"]

_MAX_LINE_CONTENT = TEXT_LINE_LIMIT - 2  # octets before the CRLF


class ContentReader:
    """Reads one message's content.  ``error`` names why it failed, or is None.

    ``error`` is ``"size"``, ``"line-length"`` or ``"bare-line-ending"``.
    """

    __slots__ = ("max_size", "allow_bare_line_endings", "error", "size", "_chunks", "_mid_line")

    def __init__(self, max_size: int | None, allow_bare_line_endings: bool = False) -> None:
        self.max_size = max_size
        self.allow_bare_line_endings = allow_bare_line_endings
        self.error: str | None = None
        #: Octets of unstuffed content seen so far (stored or not).
        self.size = 0
        self._chunks: list[bytes] = []
        # True after the head of an over-long line was dropped: the buffer
        # then does not start at a line start.
        self._mid_line = False

    @property
    def stored(self) -> int:
        """Octets currently held (0 once the message failed)."""
        return sum(map(len, self._chunks))

    def read(self, buf: bytearray, pos: int) -> tuple[int, bool]:
        """Consume content from ``buf[pos:]``.

        Returns ``(new_pos, finished)``; when ``finished``, ``new_pos`` is just
        after the terminating ``.CRLF`` and the rest of ``buf`` is commands.
        Invariant: ``pos`` is at a line start unless ``self._mid_line``.
        """
        if not self._mid_line and buf.startswith(b".\r\n", pos):
            return pos + 3, True
        end = buf.find(b"\r\n.\r\n", pos)
        if end >= 0:
            self._take(bytes(buf[pos : end + 2]))
            return end + 5, True
        last = buf.rfind(b"\r\n", pos)
        if last >= 0:
            self._take(bytes(buf[pos : last + 2]))
            pos = last + 2
        if len(buf) - pos > TEXT_LINE_LIMIT:
            # A partial line already longer than any legal line: the message
            # is lost.  Keep one byte: it may be the CR of the coming CRLF.
            self._fail("line-length")
            pos = len(buf) - 1
            self._mid_line = True
        return pos, False

    def content(self) -> bytes:
        """The unstuffed content (``b""`` if the message failed)."""
        return b"".join(self._chunks)

    def _take(self, piece: bytes) -> None:
        """Account for ``piece``: whole lines, each ending with CRLF."""
        mid_line, self._mid_line = self._mid_line, False
        if self.error is not None:
            return  # lost already; only its end matters
        assert not mid_line  # _mid_line is only ever set together with an error
        if piece[:1] == b".":
            piece = piece[1:]
        piece = piece.replace(b"\r\n.", b"\r\n")
        crlf = piece.count(b"\r\n")
        if not self.allow_bare_line_endings and (
            piece.count(b"\n") != crlf or piece.count(b"\r") != crlf
        ):
            self._fail("bare-line-ending")
            return
        if len(piece) > _MAX_LINE_CONTENT and (
            max(map(len, piece.split(b"\r\n"))) > _MAX_LINE_CONTENT
        ):
            self._fail("line-length")
            return
        self.size += len(piece)
        if self.max_size is not None and self.size > self.max_size:
            self._fail("size")
            return
        self._chunks.append(piece)

    def _fail(self, reason: str) -> None:
        if self.error is None:
            self.error = reason
        self._chunks.clear()
