"""Every exception this package raises on its own, in one taxonomy.

:class:`TestServersError` is the root: every library condition raises a
subclass of it.  The protocol packages derive their own bases from it:
``protocols.http.HTTPProtocolError``, ``protocols.smtp.SMTPProtocolError`` and
``protocols.syslog.SyslogError``.
Like trio, lifecycle errors keep three causes apart:

* *you closed it*: :class:`ServerClosedError` (and :class:`ServerStoppedError`
  when another thread stopped the server while you waited), and
  :class:`ReactorExited` for a reactor that exited normally;
* *it broke*: :class:`ReactorDied`, the reactor thread crashed;
* *it is busy*: :class:`ServerBusyError`, a previous stop() is still queued.

Where a Python convention names the builtin for a condition, the library
class also derives from that builtin, so ``except TimeoutError`` or ``except
RuntimeError`` written against older versions still catches it.  A wrong
argument *type* or an invalid combination of arguments stays a plain
``TypeError``, as in the standard library.
"""

from __future__ import annotations

__all__ = [
    "HandlerErrors",
    "HandlerTimeout",
    "PeerError",
    "ReactorDied",
    "ReactorError",
    "ReactorExited",
    "ServerBusyError",
    "ServerClosedError",
    "ServerStoppedError",
    "TestServersError",
    "UsageError",
    "InvalidArgumentError",
    "WaitTimeout",
    "safe_repr",
]


def safe_repr(exc: object) -> str:
    """``"Type: message"`` for ``exc``, never raising.

    Used wherever a recorded error is formatted (``HandlerErrors``' summary,
    the stderr report, an HTTP 500 body): an exception whose ``__str__`` or
    ``__repr__`` raises falls back to its type name and id.
    """
    name = type(exc).__name__
    try:
        text = str(exc)
    except BaseException:  # noqa: BLE001 - a broken __str__ must not escape
        try:
            text = object.__repr__(exc)
        except BaseException:  # noqa: BLE001
            text = "<unprintable>"
        text = f"<exception str() failed: {text}>"
    return f"{name}: {text}" if text else name


class TestServersError(Exception):
    """Root of every exception this package raises on its own."""

    __test__ = False  # not a test class, whatever pytest's name pattern says


class ReactorError(TestServersError):
    """Base of the reactor and server-lifecycle errors (kept for compatibility)."""


class ReactorDied(ReactorError):
    """The reactor thread crashed, so the call can never complete.

    Raised in a caller's thread instead of letting it wait forever: by every
    call that was waiting on the reactor when its thread died, and by every
    later call into that reactor.  ``__cause__`` is the exception that killed
    the thread.  A reactor that exited normally raises :class:`ReactorExited`.
    """


class ReactorExited(ReactorError):
    """The reactor thread exited normally (its last server stopped).

    Raised by calls into a reactor that is no longer running although it
    did not crash; a new ``start()`` gets a fresh reactor.
    """


class ServerClosedError(ReactorError):
    """An operation needs a started server, and this one is stopped."""


class ServerStoppedError(ServerClosedError):
    """The server was stopped (by any thread) while this call waited on it.

    Raised at once by ``wait_for`` and every ``wait_for_*`` helper when
    ``stop()`` runs before their predicate became true.
    """


class ServerBusyError(ReactorError):
    """The server cannot start yet: its previous stop() is still queued.

    A stop() that timed out leaves its clean-up queued behind a busy
    reactor (a handler stuck on the reactor thread); ``start()`` raises this
    until that clean-up has run.
    """


class UsageError(ReactorError, RuntimeError):
    """A call that is not valid in the object's current state or configuration.

    For example ``start_tls()`` on a connection that is already TLS, or
    ``wait_for_datagrams()`` on a server created with ``record=False``.
    """


class InvalidArgumentError(ReactorError, ValueError):
    """An argument has a value the call cannot take (e.g. ``low`` above ``high``)."""


class PeerError(TestServersError, ValueError):
    """The peer broke a limit or the protocol (recorded as a handler error).

    For example a line longer than ``max_line_length`` on a line-mode
    stream server.  The protocol packages' own error bases describe their
    peers' violations in more detail.
    """


class WaitTimeout(ReactorError, TimeoutError):
    """A wait (``wait_for*``, ``run_sync``) ran out of its timeout."""


class HandlerTimeout(ReactorError):
    """A handler was still running when ``stop(timeout)`` ran out of time.

    Recorded in the server's ``errors`` (and printed on stderr) so that a
    stuck handler is reported instead of hidden.  The worker thread is left
    behind as a daemon thread; its socket has been shut down.
    """


class HandlerErrors(ReactorError):
    """Raised by ``stop(raise_errors=True)`` when handlers failed.

    ``errors`` holds every exception recorded since the last raise, oldest
    first; ``__cause__`` is the first of them, so its traceback is shown.
    The summary never raises, even for an exception whose ``__str__`` does.
    """

    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = list(errors)
        first = self.errors[0] if self.errors else None
        summary = f"{len(self.errors)} handler error(s)"
        if first is not None:
            summary += f"; first: {safe_repr(first)}"
        super().__init__(summary)

    def __str__(self) -> str:
        """The summary, then each handler's traceback (the first :data:`SHOWN_TRACEBACKS`)."""
        import traceback

        text = super().__str__()
        shown = self.errors[:SHOWN_TRACEBACKS]
        for i, exc in enumerate(shown, 1):
            try:
                tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            except BaseException:  # noqa: BLE001 - a broken error must not hide the others
                tb = safe_repr(exc) + "\n"
            text += f"\n--- handler error {i} of {len(self.errors)} ---\n{tb.rstrip()}"
        if len(self.errors) > len(shown):
            text += f"\n... and {len(self.errors) - len(shown)} more (see .errors)"
        return text


#: Handler tracebacks ``str(HandlerErrors)`` shows at most (``.errors`` has all).
SHOWN_TRACEBACKS = 10
