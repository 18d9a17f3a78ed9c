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
* More than ``max_size`` octets of unstuffed content, not counting the CRLF
  that ends the last line, makes it fail (RFC 1870).

Size accounting.  RFC 1870 §4 defines the message size as the octets, CR-LF
pairs included, that the client sends after the 354, not counting the
terminating dot or the doubled (transparency) dots.  The CRLF in front of that
dot is ambiguous: RFC 5321 §4.1.1.4 calls the first ``<CRLF>`` of
``<CRLF>.<CRLF>`` "actually the terminator of the previous line", and a
client must add one when the message does not end with a line break.
smtplib does exactly that, after declaring ``SIZE=len(message)``: a message
of exactly the limit would pass MAIL and fail after DATA if that CRLF
counted.  So it does not: after DATA the limit applies to the content minus
its final CRLF, a tolerance of 2 octets at most.  (A ``SIZE=`` declared at
MAIL is compared with the limit as declared; this module only sees the
content.)  Content is stored only as whole CRLF-terminated lines, so "more
than ``max_size + 2`` octets read" is the same test and can be made as the
bytes arrive.

When several rules are broken, the reason given is the first of size, line
length, bare line ending (size first: it is what the client declared at MAIL,
and what it can act on).  Every rule is checked over every byte whatever
happened before, so the verdict never depends on how the bytes were split
into reads.

A failed message keeps being read (to find its end) but not stored, so memory
stays bounded by ``max_size + 2`` plus one input chunk.  Work is linear: each
call searches only the unconsumed tail, which after a call is at most one
partial line.
"""

from __future__ import annotations

from .._buffer import ReceiveBuffer
from ._events import TEXT_LINE_LIMIT

__all__ = ["FINAL_CRLF_ALLOWANCE", "ContentReader"]

_MAX_LINE_CONTENT = TEXT_LINE_LIMIT - 2  # octets before the CRLF


#: Octets of content allowed beyond ``max_size``: the CRLF that ends the last
#: line (the first half of the CRLF.CRLF terminator) is not counted.
FINAL_CRLF_ALLOWANCE = 2

#: When a message breaks several rules, the reason reported is the first of
#: these.  Every rule is checked over every byte whatever happened before, so
#: the verdict does not depend on how the bytes were split into reads.
_PRIORITY = ("size", "line-length", "bare-line-ending")


class ContentReader:
    """Reads one message's content.

    :attr:`error` names why the message failed (``"bare-line-ending"``,
    ``"line-length"`` or ``"size"``), or is None.
    """

    __slots__ = ("max_size", "allow_bare_line_endings", "size", "_failures", "_chunks", "_mid_line")

    def __init__(self, max_size: int, allow_bare_line_endings: bool = False) -> None:
        self.max_size = max_size
        self.allow_bare_line_endings = allow_bare_line_endings
        #: Octets of unstuffed content read so far, stored or not (the bytes
        #: of a dropped over-long line count too).
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

    def read(self, rb: ReceiveBuffer) -> bool:
        """Consume content from the unconsumed bytes of ``rb``.

        Returns True once the content ended: ``rb`` is then consumed up to
        just after the terminating ``.CRLF`` and the rest of it is commands.
        Invariant: ``rb.pos`` is at a line start unless ``self._mid_line``.
        """
        pos, finished = self._read(rb.data, rb.pos)
        rb.consume_to(pos)
        return finished

    def _read(self, buf: bytearray, pos: int) -> tuple[int, bool]:
        """:meth:`read` on ``buf[pos:]``: returns ``(new_pos, finished)``."""
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
            # A leading dot at a line start is transparency (the line holds
            # no CRLF, so it is not the terminator): not content.
            stuffed = 1 if not self._mid_line and dropped[:1] == b"." else 0
            self._count(len(dropped) - stuffed)
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
        self._count(len(piece))
        if self._failures:
            return  # lost already; the rules are still checked, nothing is kept
        self._chunks.append(piece)

    def _count(self, octets: int) -> None:
        self.size += octets
        if self.size > self.max_size + FINAL_CRLF_ALLOWANCE:
            self._fail("size")

    def _fail(self, reason: str) -> None:
        self._failures.add(reason)
        self._chunks.clear()
