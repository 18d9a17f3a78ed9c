"""The per-pass budget: how much one connection may do in one reactor pass.

Every connection's callbacks run on the one reactor thread, so a connection
that has a backlog of work (a flood of pipelined requests, tiny chunks,
short lines or SMTP commands) must stop after a bounded amount of it and
let the other sockets have their turn, carrying on in a later pass
(``reactor.call_soon``).  :class:`PassBudget` is that bound: at most
:data:`EVENTS_PER_PASS` units of work and at most :data:`PASS_TIME_BUDGET`
seconds, whichever runs out first.  Reactor thread only; not thread-safe.
"""

from __future__ import annotations

import time
from typing import Final

from ._errors import InvalidArgumentError

__all__ = ["EVENTS_PER_PASS", "PASS_TIME_BUDGET", "PassBudget"]

#: Events (requests, chunks, lines, machine calls) one connection may process
#: in one reactor pass before it yields to the other sockets ...
EVENTS_PER_PASS: Final = 64
#: ... and the time (seconds) it may spend doing so, whichever runs out first.
PASS_TIME_BUDGET: Final = 0.002


class PassBudget:
    """Events-per-pass and time-per-pass limits for one unit of work.

    Call :meth:`start` at the beginning of a pass, then :meth:`spend` before
    each event: it returns True while the budget allows that event and False
    once it is spent (the caller then yields: pauses reading, schedules its
    continuation with ``reactor.call_soon`` and returns).  Never raises.

    :raises InvalidArgumentError: (from the constructor) events < 1 or seconds <= 0.
    """

    __slots__ = ("events", "seconds", "_left", "_deadline")

    def __init__(self, events: int = EVENTS_PER_PASS, seconds: float = PASS_TIME_BUDGET) -> None:
        if events < 1 or not seconds > 0:
            raise InvalidArgumentError(
                f"PassBudget needs events >= 1 and seconds > 0, got {events!r}, {seconds!r}"
            )
        self.events = events
        self.seconds = seconds
        self._left = 0
        self._deadline = 0.0

    def start(self) -> None:
        """Begin a pass: the full event count and time are available again.

        The clock is read by the pass's first :meth:`spend`, not here (a pass
        that spends nothing reads it not at all, one that spends n reads it n
        times).
        """
        self._left = self.events
        self._deadline = -1.0  # set by the first spend()

    def spend(self) -> bool:
        """Take one event from the budget; False when it is spent (yield then)."""
        left = self._left
        if left <= 0:
            return False
        if self._deadline < 0:  # the pass's first event: its time starts now
            self._deadline = time.monotonic() + self.seconds
        elif time.monotonic() > self._deadline:
            self._left = 0
            return False
        self._left = left - 1
        return True

    def spend_many(self, n: int) -> bool:
        """Take *n* events at once: what *n* :meth:`spend` calls made back to
        back return (all True, or False with the budget spent), in one call."""
        left = self._left
        if left < n:
            self._left = 0
            return False
        if self._deadline < 0:  # the pass's first event: its time starts now
            self._deadline = time.monotonic() + self.seconds
            if n > 1 and time.monotonic() > self._deadline:
                self._left = 0
                return False
        elif time.monotonic() > self._deadline:
            self._left = 0
            return False
        self._left = left - n
        return True

    def unlimited(self) -> None:
        """Begin a pass without limits (a stopping server drains everything)."""
        self._left = 1 << 62
        self._deadline = float("inf")
