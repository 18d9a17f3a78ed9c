"""Datagram faults: drop, duplicate, reorder, delay and truncate, seeded.

A :class:`~protocols.DatagramServer`'s ``faults`` (a :class:`DatagramFaults`)
holds rules like a stream server's, applied per datagram:
``direction="upstream"`` (the default here: the datagrams the server
receives) or ``"downstream"`` (the replies it sends).  Datagrams are
numbered per rule from 1, in the order they reach it; ``first``, ``every``,
``when(info)`` (a :class:`DatagramInfo`), ``probability`` and ``seed``
select which ones a rule hits (:class:`reactor.Selection`).  Rules apply in
the order they were added, each to what the previous ones let through.

Delays and held-back datagrams run on reactor timers; ones still pending
when the server stops are dropped (they were "in flight").  Reactor thread
only, except ``add()``/``remove()``/``clear()``/``wait_for_records()``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from reactor import (
    DOWNSTREAM,
    UPSTREAM,
    FaultRecord,
    FaultRule,
    InvalidArgumentError,
    Selection,
    TimerHandle,
)

__all__ = [
    "DatagramFault",
    "DatagramFaults",
    "DatagramInfo",
    "Drop",
    "Duplicate",
    "Reorder",
    "Delay",
    "Truncate",
    "REORDER_MAX_HOLD",
]

#: Seconds a :class:`Reorder` holds a datagram at most when no later one
#: comes to overtake it: it is then delivered, not lost.
REORDER_MAX_HOLD = 1.0


class DatagramInfo(NamedTuple):
    """What a datagram rule's ``when=`` predicate is given."""

    number: int
    data: bytes
    peer: Any


def _seconds(name: str, value: object) -> None:
    if type(value) not in (int, float) or not 0 <= value < float("inf"):  # type: ignore[operator]
        raise InvalidArgumentError(f"{name} must be a finite number of seconds >= 0, not {value!r}")


class DatagramFault:
    """Base of the datagram faults (immutable descriptions)."""

    name: ClassVar[str] = "datagram-fault"


@dataclass(frozen=True)
class Drop(DatagramFault):
    """Lose the datagram."""

    name: ClassVar[str] = "drop"


@dataclass(frozen=True)
class Duplicate(DatagramFault):
    """Deliver the datagram ``copies`` extra times."""

    copies: int = 1
    name: ClassVar[str] = "duplicate"

    def __post_init__(self) -> None:
        if type(self.copies) is not int or self.copies < 1:
            raise InvalidArgumentError(f"Duplicate copies must be an int >= 1, not {self.copies!r}")


@dataclass(frozen=True)
class Reorder(DatagramFault):
    """Hold the datagram back until ``gap`` later ones have passed (or
    :data:`REORDER_MAX_HOLD` seconds went by)."""

    gap: int = 1
    name: ClassVar[str] = "reorder"

    def __post_init__(self) -> None:
        if type(self.gap) is not int or self.gap < 1:
            raise InvalidArgumentError(f"Reorder gap must be an int >= 1, not {self.gap!r}")


@dataclass(frozen=True)
class Delay(DatagramFault):
    """Deliver the datagram ``seconds`` (plus or minus ``jitter``) late."""

    seconds: float
    jitter: float = 0.0
    name: ClassVar[str] = "delay"

    def __post_init__(self) -> None:
        _seconds("Delay seconds", self.seconds)
        _seconds("Delay jitter", self.jitter)


@dataclass(frozen=True)
class Truncate(DatagramFault):
    """Cut the datagram to its first ``size`` bytes."""

    size: int
    name: ClassVar[str] = "truncate"

    def __post_init__(self) -> None:
        if type(self.size) is not int or self.size < 0:
            raise InvalidArgumentError(f"Truncate size must be an int >= 0, not {self.size!r}")


class _DatagramRule(FaultRule):
    def __init__(self, owner: Any, fault: DatagramFault, direction: str, sel: Selection) -> None:
        super().__init__(owner, fault, direction, sel)
        seed = sel.seed
        self.rng = random.Random(None if seed is None else f"{seed}:jitter")


class _Held:
    __slots__ = ("data", "addr", "left", "timer", "run")

    def __init__(self, data: bytes, addr: Any, left: int, run: object) -> None:
        self.data = data
        self.addr = addr
        self.left = left
        self.timer: TimerHandle | None = None
        self.run = run  # the server's transport when it arrived (see _emit)


class DatagramFaults:
    """The datagram faults of one server (its ``faults``)."""

    def __init__(self, server: Any, deliver: dict[str, Callable[[bytes, Any], None]]) -> None:
        self._server = server
        self._deliver = deliver  # direction -> the plain path
        self._lock = threading.Lock()
        self.rules: list[_DatagramRule] = []
        #: Every fault applied, oldest first (:class:`reactor.FaultRecord`;
        #: ``connection`` is the datagram's number for its rule).
        self.records: list[FaultRecord] = []
        self._held: dict[str, list[_Held]] = {UPSTREAM: [], DOWNSTREAM: []}

    def add(
        self,
        fault: DatagramFault,
        *,
        direction: str = UPSTREAM,
        first: int | None = None,
        every: int | None = None,
        when: Callable[[DatagramInfo], object] | None = None,
        probability: float = 1.0,
        seed: int | str | None = None,
    ) -> FaultRule:
        """Install ``fault`` for the datagrams chosen (see the module docstring).

        :raises InvalidArgumentError: not a datagram fault, or a bad
            direction or selection value.
        """
        if not isinstance(fault, DatagramFault):
            raise InvalidArgumentError(f"not a datagram fault: {fault!r}")
        if direction not in (UPSTREAM, DOWNSTREAM):
            raise InvalidArgumentError(f"direction must be 'upstream' or 'downstream', "
                                       f"not {direction!r}")
        sel = Selection(first=first, every=every, when=when, probability=probability, seed=seed)
        rule = _DatagramRule(self, fault, direction, sel)
        self._on_reactor(self.rules.append, rule)
        return rule

    def remove(self, rule: FaultRule) -> None:
        """Take ``rule`` off; datagrams it holds back are delivered at once."""
        self._on_reactor(self._remove, rule)

    def clear(self) -> None:
        for rule in list(self.rules):
            self.remove(rule)

    def wait_for_records(
        self, count: int = 1, *, name: str | None = None, timeout: float | None = 10.0
    ) -> list[FaultRecord]:
        """Wait until ``count`` records (of fault ``name``) exist."""

        def enough() -> list[FaultRecord] | None:
            got = [r for r in self.records if name is None or r.name == name]
            return got[:count] if len(got) >= count else None

        result: list[FaultRecord] = self._server.wait_for(
            enough, timeout, f"{count} datagram fault record(s)"
        )
        return result

    # -- reactor side ----------------------------------------------------------

    def _on_reactor(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._server._reactor
        if loop is None or loop.dead or loop.in_reactor_thread():
            fn(*args)
        else:
            loop.run_sync(fn, *args, timeout=10.0)

    def _remove(self, rule: FaultRule) -> None:
        rule.active = False
        if rule in self.rules:
            self.rules.remove(rule)
        for direction, held in self._held.items():
            for h in list(held):
                self._release(direction, h)

    def active(self, direction: str) -> bool:
        """True if some rule acts in ``direction`` (or datagrams are held)."""
        return bool(self._held[direction]) or any(r.direction == direction for r in self.rules)

    def _record(self, rule: _DatagramRule, n: int, data: bytes, addr: Any, action: str) -> None:
        rec = FaultRecord(rule.fault, rule.fault.name, rule.direction, n, addr,
                          bytes=len(data), action=action, rule=rule)
        rec.action_at = rec.at
        self._server._record(self.records, rec)

    def handle(self, direction: str, data: bytes, addr: Any) -> None:
        """One datagram in ``direction``: apply the rules, then deliver what is left."""
        items: list[tuple[float, bytes, int]] = [(0.0, data, 0)]  # (delay, data, hold gap)
        for rule in self.rules:
            if rule.direction != direction or not items:
                continue
            out: list[tuple[float, bytes, int]] = []
            for delay, d, gap in items:
                def info(i: int, d: bytes = d) -> DatagramInfo:
                    return DatagramInfo(i, d, addr)

                try:
                    n = rule.selection.pick(info)
                except Exception as exc:
                    self._server.handle_error(exc, f"datagram fault rule {rule!r}: when=")
                    n = None
                if n is None:
                    out.append((delay, d, gap))
                    continue
                f = rule.fault
                if isinstance(f, Drop):
                    self._record(rule, n, d, addr, "drop")
                elif isinstance(f, Duplicate):
                    self._record(rule, n, d, addr, f"duplicate x{f.copies}")
                    out.extend([(delay, d, gap)] * (f.copies + 1))
                elif isinstance(f, Truncate):
                    self._record(rule, n, d, addr, f"truncate to {f.size}")
                    out.append((delay, d[: f.size], gap))
                elif isinstance(f, Delay):
                    extra = f.seconds
                    if f.jitter:
                        extra = max(0.0, extra + rule.rng.uniform(-f.jitter, f.jitter))
                    self._record(rule, n, d, addr, f"delay {extra:.3f} s")
                    out.append((delay + extra, d, gap))
                elif isinstance(f, Reorder):
                    self._record(rule, n, d, addr, f"reorder behind {f.gap}")
                    out.append((delay, d, max(gap, f.gap)))
            items = out
        run = self._server._transport
        for delay, d, gap in items:
            if delay > 0:
                loop = self._server._reactor
                loop.call_later(delay, self._emit, direction, d, addr, gap, run)
            else:
                self._emit(direction, d, addr, gap, run)

    def _emit(self, direction: str, data: bytes, addr: Any, gap: int, run: object) -> None:
        if self._server._reactor is None or self._server._transport is not run:
            return  # stopped meanwhile (and maybe restarted): in flight, lost
        if gap:
            h = _Held(data, addr, gap, run)
            h.timer = self._server._reactor.call_later(
                REORDER_MAX_HOLD, self._release, direction, h
            )
            self._held[direction].append(h)
            return
        self._deliver[direction](data, addr)
        for h in list(self._held[direction]):
            h.left -= 1
            if h.left <= 0:
                self._release(direction, h)

    def _release(self, direction: str, h: _Held) -> None:
        held = self._held[direction]
        if h not in held:
            return
        held.remove(h)
        if h.timer is not None:
            h.timer.cancel()
        if self._server._reactor is not None and self._server._transport is h.run:
            self._deliver[direction](h.data, h.addr)
