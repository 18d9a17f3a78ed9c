"""``TestSMTPServer``: the drop-in for CPython test_logging's SMTP helper."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._server import Envelope, SMTPServer

__all__ = ["TestSMTPServer"]


class TestSMTPServer(SMTPServer):
    """Drop-in for CPython test_logging's ``TestSMTPServer`` (an smtpd server).

    ``handler(peer, mailfrom, rcpttos, data)`` is called for each message
    with ``rcpttos`` a list and ``data`` a ``str``: the content decoded as
    UTF-8 (undecodable bytes as surrogate escapes) with its lines joined by
    ``"\\n"`` and no final newline, as
    ``smtpd.SMTPChannel`` built it with ``decode_data=True``.  ``sockmap``
    is accepted and ignored (there is no asyncore map: the reactor serves).

    Like smtpd, it accepts bare CR and bare LF in the content and passes them
    on unchanged (it is built with ``allow_bare_line_endings=True``); the
    content still ends only at ``CRLF . CRLF``, so nothing can be smuggled.
    """

    __test__ = False

    def __init__(
        self,
        addr: Any,
        handler: Callable[[Any, str, list[str], str], object],
        poll_interval: float,
        sockmap: Any,
    ) -> None:
        self._compat_handler = handler
        super().__init__(
            addr,
            self._process_message,
            poll_interval=poll_interval,
            allow_bare_line_endings=True,  # smtpd delivered them unchanged
        )

    def _process_message(self, envelope: Envelope) -> None:
        text = envelope.data.decode("utf-8", "surrogateescape")
        if text.endswith("\r\n"):
            text = text[:-2]
        data = text.replace("\r\n", "\n")
        self._compat_handler(envelope.peer, envelope.mail_from, list(envelope.rcpt_tos), data)
