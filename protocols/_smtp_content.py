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

When several rules are broken, the reason given is the first of bare line
ending, line length, size: every rule is checked over every byte, so the
verdict never depends on how the bytes were split into reads.

A failed message keeps being read (to find its end) but not stored, so memory
stays bounded by ``max_size`` plus one input chunk.  Work is linear: each call
searches only the unconsumed tail, which after a call is at most one partial
line.
"""

from __future__ import annotations

from ._smtp_events import TEXT_LINE_LIMIT

__all__ = ["ContentReader"]

_MAX_LINE_CONTENT = TEXT_LINE_LIMIT - 2  # octets before the CRLF


#: When a message breaks several rules, the reason reported is the first of
#: these.  Every rule is checked over every byte whatever happened before, so
#: the verdict does not depend on how the bytes were split into reads.
_PRIORITY = ("bare-line-ending", "line-length", "size")


class ContentReader:
    """Reads one message's content.

    :attr:`error` names why the message failed (``"bare-line-ending"``,
    ``"line-length"`` or ``"size"``), or is None.
    """

    __slots__ = ("max_size", "allow_bare_line_endings", "size", "_failures", "_chunks", "_mid_line")

    def __init__(self, max_size: int | None, allow_bare_line_endings: bool = False) -> None:
        self.max_size = max_size
        self.allow_bare_line_endings = allow_bare_line_endings
        #: Octets of unstuffed content stored so far.
        self.size = 0
        self._failures: set[str] = set()
        self._chunks: list[bytes] = []
        # True after the head of an over-long line was dropped: the buffer
        # then does not start at a line start.
        self._mid_line = False

    @property
    def error(self) -> str | None:
        """Why the message failed (see :data:`_PRIORITY`), or None."""
        if not self._failures:
            return None
        return next(reason for reason in _PRIORITY if reason in self._failures)

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
            # is lost.  Drop it but keep its last byte (it may be the CR of the
            # coming CRLF).  The dropped bytes hold no CRLF, so any CR or LF
            # among them is bare.
            dropped = buf[pos:-1]
            if not self.allow_bare_line_endings and (b"\n" in dropped or b"\r" in dropped):
                self._fail("bare-line-ending")
            self._fail("line-length")
            pos = len(buf) - 1
            self._mid_line = True
        return pos, False

    def content(self) -> bytes:
        """The unstuffed content (``b""`` if the message failed)."""
        return b"".join(self._chunks)

    def _take(self, piece: bytes) -> None:
        """Check and keep ``piece``: whole lines, each ending with CRLF (the
        first one headless if ``_mid_line``)."""
        mid_line, self._mid_line = self._mid_line, False
        if piece[:1] == b"." and not mid_line:
            piece = piece[1:]
        piece = piece.replace(b"\r\n.", b"\r\n")
        crlf = piece.count(b"\r\n")
        if not self.allow_bare_line_endings and (
            piece.count(b"\n") != crlf or piece.count(b"\r") != crlf
        ):
            self._fail("bare-line-ending")
        if len(piece) > _MAX_LINE_CONTENT and (
            max(map(len, piece.split(b"\r\n"))) > _MAX_LINE_CONTENT
        ):
            self._fail("line-length")
        if self._failures:
            return  # lost already; the rules are still checked, nothing is kept
        self.size += len(piece)
        if self.max_size is not None and self.size > self.max_size:
            self._fail("size")
            return
        self._chunks.append(piece)

    def _fail(self, reason: str) -> None:
        self._failures.add(reason)
        self._chunks.clear()
