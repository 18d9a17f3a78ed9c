"""Exceptions raised by the reactor and the server lifecycle."""

from __future__ import annotations

__all__ = [
    "ReactorDied",
    "ReactorError",
    "HandlerErrors",
    "HandlerTimeout",
    "ServerClosedError",
]


class ReactorError(Exception):
    """Base class of every exception this package raises on its own."""


class ReactorDied(ReactorError):
    """The reactor thread is gone, so the call can never complete.

    Raised in a caller's thread instead of letting it wait forever: by every
    call that was waiting on the reactor when its thread died, and by every
    later call into that reactor.  ``__cause__`` is the exception that killed
    the thread, when there was one.
    """


class ServerClosedError(ReactorError):
    """An operation needs a started server, and this one is stopped."""


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
    """

    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = list(errors)
        first = self.errors[0] if self.errors else None
        summary = f"{len(self.errors)} handler error(s)"
        if first is not None:
            summary += f"; first: {type(first).__name__}: {first}"
        super().__init__(summary)
