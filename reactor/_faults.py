"""Transport faults: what a slow, cut, reset or silent network does to a stream.

A server's :attr:`~reactor.StreamServerBase.faults` (a :class:`TransportFaults`)
holds *rules*: a :class:`TransportFault` (what to do), a direction
(``"downstream"``: what the server sends; ``"upstream"``: what it receives)
and a selection of connections (all, the first N, every k-th, a predicate,
with a probability under a seed).  Rules are added and removed at run time
from any thread; a rule applies to the connections open when it is added
and to those accepted later.

How it hooks in: a connection some rule selected gets a
:class:`ConnectionFaults` as its transport's ``_faults``.  The transport
consults it at three points only, each behind an ``is not None`` test (a
connection no fault selected costs nothing else):

* ``_flush()``: the fault layer sends instead (:meth:`ConnectionFaults.flush`),
  as much of the write buffer as the faults let go now, and arms a reactor
  timer for the rest (bytes wait in the transport's own buffer, so write
  back-pressure works as for a slow client);
* ``_read_once()``: what ``recv()`` returned goes to the fault layer
  (:meth:`ConnectionFaults.received`), which delivers it to the protocol
  now or from a timer, at most :data:`FAULT_HOLD_LIMIT` bytes held;
* ``_update_events()``: the fault layer drops write interest while it holds
  bytes back on purpose, and read interest while it holds enough (so a
  held connection never spins the loop).

Nothing here blocks: every delay is a reactor timer.  Downstream faults act
on the bytes that go on the wire (after TLS), upstream faults on the bytes
that come off it (before TLS).  Reactor thread only, except the methods of
:class:`TransportFaults` that say otherwise.
"""

from __future__ import annotations

import random
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from ._errors import InvalidArgumentError, UsageError
from ._loop import TimerHandle

if TYPE_CHECKING:
    from ._transport import StreamTransport

__all__ = [
    "DOWNSTREAM",
    "UPSTREAM",
    "FAULT_HOLD_LIMIT",
    "BANDWIDTH_QUANTUM",
    "TransportFault",
    "Latency",
    "Bandwidth",
    "Slicer",
    "SlowClose",
    "BlackHole",
    "Reset",
    "CloseAfter",
    "HalfClose",
    "ConnectionInfo",
    "FaultRule",
    "FaultRecord",
    "TransportFaults",
    "ConnectionFaults",
    "Selection",
    "reset_transport",
]

DOWNSTREAM = "downstream"
UPSTREAM = "upstream"
_DIRECTIONS = (DOWNSTREAM, UPSTREAM)

#: Received bytes an upstream fault (latency) holds per connection before
#: reading from that connection pauses: the client then blocks in send(),
#: as behind a slow network, and server memory stays bounded.
FAULT_HOLD_LIMIT = 1024 * 1024

#: A :class:`Bandwidth` fault lets bytes go in pieces worth this many
#: seconds of its rate (at least one byte): 100 timer wake-ups a second per
#: capped connection at most.
BANDWIDTH_QUANTUM = 0.01

_UNLIMITED = sys.maxsize

#: Seconds ``add()``/``remove()`` wait for the reactor to apply a change.
_CHANGE_TIMEOUT = 10.0


# -- what a fault does (immutable descriptions) -------------------------------


def _check_seconds(name: str, value: float | None, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if type(value) not in (int, float) or not 0 <= value < float("inf"):  # type: ignore[operator]
        raise InvalidArgumentError(f"{name} must be a finite number of seconds >= 0, not {value!r}")


def _check_count(name: str, value: int | None, *, minimum: int = 0, optional: bool = False) -> None:
    if value is None and optional:
        return
    if type(value) is not int or value < minimum:
        raise InvalidArgumentError(f"{name} must be an int >= {minimum}, not {value!r}")


class TransportFault:
    """Base of the transport faults; each subclass is an immutable description.

    ``name`` is the short name used in :class:`FaultRecord`.  A fault object
    may be shared by several rules and servers: its per-connection state
    lives elsewhere.
    """

    name: ClassVar[str] = "fault"
    #: Directions the fault makes sense in.
    directions: ClassVar[tuple[str, ...]] = _DIRECTIONS

    def _state(self, channel: _Channel, rng: random.Random) -> _State:
        raise NotImplementedError


@dataclass(frozen=True)
class Latency(TransportFault):
    """Delay every byte by ``seconds``, plus or minus up to ``jitter`` (uniform).

    Order is kept: a byte never overtakes an earlier one, so a negative
    jitter draw cannot undo an earlier positive one.
    """

    seconds: float
    jitter: float = 0.0
    name: ClassVar[str] = "latency"

    def __post_init__(self) -> None:
        _check_seconds("Latency seconds", self.seconds)
        _check_seconds("Latency jitter", self.jitter)

    def _state(self, channel: _Channel, rng: random.Random) -> _State:
        return _LatencyState(self, rng)


@dataclass(frozen=True)
class Bandwidth(TransportFault):
    """Cap the rate at ``rate`` bytes per second (a token bucket, no drift)."""

    rate: int
    name: ClassVar[str] = "bandwidth"

    def __post_init__(self) -> None:
        _check_count("Bandwidth rate", self.rate, minimum=1)

    def _state(self, channel: _Channel, rng: random.Random) -> _State:
        return _BandwidthState(self)


@dataclass(frozen=True)
class Slicer(TransportFault):
    """Cut the stream into ``size``-byte pieces, ``delay`` seconds apart.

    Each piece goes out in its own ``send()`` (or is delivered in its own
    ``data_received()`` upstream).
    """

    size: int
    delay: float = 0.0
    name: ClassVar[str] = "slicer"

    def __post_init__(self) -> None:
        _check_count("Slicer size", self.size, minimum=1)
        _check_seconds("Slicer delay", self.delay)

    def _state(self, channel: _Channel, rng: random.Random) -> _State:
        return _SlicerState(self)


@dataclass(frozen=True)
class SlowClose(TransportFault):
    """When the server closes, keep the socket open ``seconds`` longer (downstream)."""

    seconds: float
    name: ClassVar[str] = "slow-close"
    directions: ClassVar[tuple[str, ...]] = (DOWNSTREAM,)

    def __post_init__(self) -> None:
        _check_seconds("SlowClose seconds", self.seconds)

    def _state(self, channel: _Channel, rng: random.Random) -> _State:
        return _SlowCloseState(self)


@dataclass(frozen=True)
class BlackHole(TransportFault):
    """Let nothing through: downstream bytes are never sent, upstream bytes are
    read and discarded.  With ``timeout``, the connection is then closed
    ``timeout`` seconds after the fault took hold of it (Toxiproxy's
    ``timeout``); without, it stays silent until the rule is removed or the
    server stops.
    """

    timeout: float | None = None
    name: ClassVar[str] = "black-hole"

    def __post_init__(self) -> None:
        _check_seconds("BlackHole timeout", self.timeout, optional=True)

    def _state(self, channel: _Channel, rng: random.Random) -> _State:
        return _BlackHoleState(self, channel)


@dataclass(frozen=True)
class Reset(TransportFault):
    """Reset the connection (TCP RST) once ``after_bytes`` bytes passed in the
    rule's direction, or ``after_seconds`` after the fault took hold (either
    given, or both: whichever comes first).  On a Unix socket, where there is
    no RST, the peer sees the connection end (``ECONNRESET`` if it had unread
    bytes in flight).
    """

    after_bytes: int | None = None
    after_seconds: float | None = None
    name: ClassVar[str] = "reset"

    def __post_init__(self) -> None:
        _check_count("Reset after_bytes", self.after_bytes, optional=True)
        _check_seconds("Reset after_seconds", self.after_seconds, optional=True)
        if self.after_bytes is None and self.after_seconds is None:
            raise InvalidArgumentError("Reset needs after_bytes=, after_seconds= or both")

    def _state(self, channel: _Channel, rng: random.Random) -> _State:
        return _LimitState(self, self.after_bytes, channel, after_seconds=self.after_seconds)


@dataclass(frozen=True)
class CloseAfter(TransportFault):
    """Close the connection cleanly (FIN) once ``after_bytes`` bytes passed;
    the rest is dropped (Toxiproxy's ``limit_data``)."""

    after_bytes: int
    name: ClassVar[str] = "close"

    def __post_init__(self) -> None:
        _check_count("CloseAfter after_bytes", self.after_bytes)

    def _state(self, channel: _Channel, rng: random.Random) -> _State:
        return _LimitState(self, self.after_bytes, channel)


@dataclass(frozen=True)
class HalfClose(TransportFault):
    """Close one direction once ``after_bytes`` bytes passed in it.

    Downstream: the server's write side is shut down (the client reads end
    of file; the server still reads, and what it writes later is dropped).
    Upstream: the server stops reading (``SHUT_RD``) and its protocol sees
    end of file, as if the client had half-closed; later bytes are dropped.
    """

    after_bytes: int = 0
    name: ClassVar[str] = "half-close"

    def __post_init__(self) -> None:
        _check_count("HalfClose after_bytes", self.after_bytes)

    def _state(self, channel: _Channel, rng: random.Random) -> _State:
        return _LimitState(self, self.after_bytes, channel)


# -- selection and rules ------------------------------------------------------


class ConnectionInfo(NamedTuple):
    """What a rule's ``when=`` predicate is given about a connection."""

    #: 1 for the first connection the rule considered, 2 for the next...
    number: int
    peer: Any


class Selection:
    """Which items (connections, datagrams) a rule picks, deterministically.

    Items are numbered from 1 in the order the rule sees them.  An item is
    picked when it passes every filter given: ``first`` (number at most
    ``first``), ``every`` (number a multiple of ``every``), ``when``
    (``when(info)`` true), then ``probability`` (a draw from
    ``random.Random(seed)``; one draw per item that passed the other
    filters, so the same items in the same order give the same picks).
    """

    def __init__(
        self,
        *,
        first: int | None = None,
        every: int | None = None,
        when: Callable[[Any], object] | None = None,
        probability: float = 1.0,
        seed: int | str | None = None,
    ) -> None:
        _check_count("first", first, minimum=0, optional=True)
        _check_count("every", every, minimum=1, optional=True)
        if when is not None and not callable(when):
            raise InvalidArgumentError(f"when must be callable, not {when!r}")
        if type(probability) not in (int, float) or not 0.0 <= probability <= 1.0:
            raise InvalidArgumentError(f"probability must be in [0, 1], not {probability!r}")
        if seed is not None and type(seed) not in (int, str):
            raise InvalidArgumentError(f"seed must be an int or str, not {seed!r}")
        self.first = first
        self.every = every
        self.when = when
        self.probability = float(probability)
        self.seed = seed
        self._rng = random.Random(seed)
        self.seen = 0
        self.picked = 0

    def pick(self, make_info: Callable[[int], Any]) -> int | None:
        """Consider the next item; its number if picked, else None.

        ``when`` raising counts as not picked and propagates.
        """
        self.seen += 1
        n = self.seen
        if self.first is not None and n > self.first:
            return None
        if self.every is not None and n % self.every:
            return None
        if self.when is not None and not self.when(make_info(n)):
            return None
        if self.probability < 1.0 and not self._rng.random() < self.probability:
            return None
        self.picked += 1
        return n

    def item_rng(self, n: int) -> random.Random:
        """A random source for item ``n`` (jitter...), reproducible under a seed."""
        if self.seed is None:
            return random.Random()
        return random.Random(f"{self.seed}:{n}")

    def describe(self) -> str:
        parts = []
        if self.first is not None:
            parts.append(f"first={self.first}")
        if self.every is not None:
            parts.append(f"every={self.every}")
        if self.when is not None:
            parts.append("when=...")
        if self.probability < 1.0:
            parts.append(f"probability={self.probability:g}")
        if self.seed is not None:
            parts.append(f"seed={self.seed!r}")
        return ", ".join(parts) or "all"


@dataclass(eq=False)
class FaultRecord:
    """One fault applied to one connection (or datagram).

    Created when the fault first acts (delays, holds or drops a byte, or
    fires its action); ``bytes`` then keeps counting the bytes it affected
    (delayed, capped, sliced, held, dropped; for a reset/close/half-close,
    the bytes it let through before it fired).  ``action`` is set when a
    terminal action happened (``"reset"``, ``"close"``, ``"half-close"``,
    ``"timeout"``, ``"slow-close"``, or for datagrams ``"drop"``...), with
    ``action_at``.  Times are ``time.monotonic()``.  Updated on the reactor
    thread: read it after a wait.
    """

    fault: Any
    name: str
    direction: str
    connection: int
    peer: Any
    at: float = field(default_factory=time.monotonic)
    bytes: int = 0
    action: str | None = None
    action_at: float | None = None
    detail: str = ""
    #: The :class:`FaultRule` that applied it (None for HTTP/datagram faults).
    rule: Any = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        act = f" {self.action}" if self.action else ""
        return (
            f"<FaultRecord {self.name} {self.direction} conn#{self.connection} {self.peer!r} "
            f"{self.bytes} bytes{act}>"
        )


class FaultRule:
    """A fault installed on a server or proxy: returned by ``faults.add()``.

    :meth:`remove` takes it off again (any thread).  :attr:`records` are the
    records of this rule only.
    """

    def __init__(
        self, owner: TransportFaults, fault: Any, direction: str, selection: Selection
    ) -> None:
        self.owner = owner
        self.fault = fault
        self.direction = direction
        self.selection = selection
        self.active = True

    @property
    def records(self) -> list[FaultRecord]:
        return [r for r in self.owner.records if r.rule is self]

    def remove(self) -> None:
        """Take this rule off (harmless if already removed); see :meth:`TransportFaults.remove`."""
        self.owner.remove(self)

    def __enter__(self) -> FaultRule:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"<FaultRule {self.fault!r} {self.direction} {self.selection.describe()}>"


class TransportFaults:
    """The transport faults of one stream server or proxy (its ``faults``).

    :meth:`add`, :meth:`remove`, :meth:`clear` and the waits may be called
    from any thread; from a thread other than the reactor's they return once
    the reactor has applied the change (so the next connection, or the next
    byte of an open one, sees it).
    """

    def __init__(self, server: Any) -> None:
        self._server = server
        self._lock = threading.Lock()
        self.rules: list[FaultRule] = []
        #: Every fault applied, oldest first (see :class:`FaultRecord`).
        self.records: list[FaultRecord] = []

    # -- public API (any thread) ------------------------------------------------

    def add(
        self,
        fault: TransportFault,
        *,
        direction: str = DOWNSTREAM,
        first: int | None = None,
        every: int | None = None,
        when: Callable[[ConnectionInfo], object] | None = None,
        probability: float = 1.0,
        seed: int | str | None = None,
        **kwargs: Any,
    ) -> FaultRule:
        """Install ``fault`` in ``direction`` on the connections chosen.

        The selection keywords are :class:`Selection`'s; connections are
        numbered in the order the rule sees them (those open when it is
        added first, in accept order, then each new one).  Returns the
        :class:`FaultRule` (``rule.remove()`` undoes it; it is also a
        context manager that removes it on exit).

        :raises InvalidArgumentError: an unknown fault, direction or
            selection value.
        :raises UsageError: the server cannot apply transport faults (a
            blocking-handler server: put a ``FaultProxy`` in front).
        """
        if kwargs:
            raise InvalidArgumentError(f"unexpected keyword(s) {sorted(kwargs)} for {fault!r}")
        if not isinstance(fault, TransportFault):
            raise InvalidArgumentError(f"not a transport fault: {fault!r}")
        if direction not in fault.directions:
            raise InvalidArgumentError(
                f"{type(fault).__name__} applies {' or '.join(fault.directions)}, not {direction!r}"
            )
        if getattr(self._server, "handler", None) is not None and hasattr(
            self._server, "worker_count"
        ):
            raise UsageError(
                "transport faults need reactor-side connections; this server runs a blocking "
                "handler on its own socket (put a FaultProxy in front of it instead)"
            )
        selection = Selection(
            first=first, every=every, when=when, probability=probability, seed=seed
        )
        rule = FaultRule(self, fault, direction, selection)
        self._on_reactor(self._add_rule, rule)
        return rule

    def remove(self, rule: FaultRule) -> None:
        """Take ``rule`` off: open connections stop being affected at once.

        Bytes the rule was holding back are released (sent, or delivered).
        """
        self._on_reactor(self._remove_rule, rule)

    def clear(self) -> None:
        """Remove every rule."""
        for rule in list(self.rules):
            self.remove(rule)

    def wait_for_records(
        self,
        count: int = 1,
        *,
        name: str | None = None,
        action: str | None = None,
        timeout: float | None = 10.0,
    ) -> list[FaultRecord]:
        """Wait until ``count`` records (of fault ``name``, with ``action``) exist.

        :raises WaitTimeout: naming what was recorded meanwhile.
        """

        def matching() -> list[FaultRecord]:
            return [
                r
                for r in self.records
                if (name is None or r.name == name) and (action is None or r.action == action)
            ]

        def enough() -> list[FaultRecord] | None:
            got = matching()
            return got[:count] if len(got) >= count else None

        what = f"{count} fault record(s)" + (f" of {name!r}" if name else "") + (
            f" with action {action!r}" if action else ""
        )
        wait = self._server.wait_for
        try:
            result: list[FaultRecord] = wait(enough, timeout, what)
        except TimeoutError as exc:
            exc.args = (f"{exc.args[0] if exc.args else exc}; recorded: {self.records!r}",)
            raise
        return result

    # -- reactor side -------------------------------------------------------------

    def _reactor(self) -> Any:
        return getattr(self._server, "_loop", None)

    def _on_reactor(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._reactor()
        if loop is None or loop.dead or loop.in_reactor_thread():
            fn(*args)
        else:
            loop.run_sync(fn, *args, timeout=_CHANGE_TIMEOUT)

    def _open_transports(self) -> list[StreamTransport]:
        transports = getattr(self._server, "_transports", ())
        return sorted(transports, key=lambda t: getattr(t, "_fault_order", 0))

    def _add_rule(self, rule: FaultRule) -> None:
        self.rules.append(rule)
        for t in self._open_transports():
            if not t.is_closing():
                self._consider(rule, t)

    def _remove_rule(self, rule: FaultRule) -> None:
        if not rule.active:
            return
        rule.active = False
        if rule in self.rules:
            self.rules.remove(rule)
        for t in self._open_transports():
            cf = t._faults
            if isinstance(cf, ConnectionFaults):
                cf.remove_rule(rule)

    _accepted = 0

    def connection_opened(self, transport: StreamTransport) -> None:
        """A new connection (reactor thread): let every rule consider it."""
        self._accepted += 1
        transport._fault_order = self._accepted  # type: ignore[attr-defined]
        for rule in list(self.rules):
            self._consider(rule, transport)

    def _consider(self, rule: FaultRule, transport: StreamTransport) -> None:
        peer = transport.peername
        try:
            n = rule.selection.pick(lambda i: ConnectionInfo(i, peer))
        except Exception as exc:
            self._server.handle_error(exc, f"fault rule {rule!r}: when=")
            return
        if n is None:
            return
        cf = transport._faults
        if not isinstance(cf, ConnectionFaults):
            cf = ConnectionFaults(self, transport)
            transport._faults = cf
        cf.add_rule(rule, n)

    def _record(self, record: FaultRecord) -> None:
        self._server._record(self.records, record)

    def _changed(self) -> None:
        self._server._notify()


# -- per-connection machinery -----------------------------------------------------


class _State:
    """One rule's state on one connection and direction."""

    #: Upstream: may the channel read ahead (hold bytes) while this state
    #: holds bytes back?  Only latency does (it must not cap throughput).
    reads_ahead = False
    #: Upstream: drop what arrives instead of holding it.
    discards = False
    record: FaultRecord | None = None
    active: _Active | None = None

    #: Acts on every byte: recorded as soon as bytes enter (before they pass).
    touches_all = False

    def new_bytes(self, n: int, now: float) -> None:
        """``n`` more bytes entered the channel at ``now``."""

    def allowance(self, now: float, pending: int) -> int:
        """How many of the ``pending`` bytes may pass now (0: later)."""
        return _UNLIMITED

    def retry_at(self, now: float) -> float | None:
        """When the allowance may grow again (None: not by itself)."""
        return None

    def passed(self, n: int, now: float) -> None:
        """``n`` bytes passed."""

    def start(self) -> None:
        """The state is attached (timers may be armed)."""

    def stop(self) -> None:
        """The rule was removed or the connection closed: cancel timers."""


class _Active:
    __slots__ = ("rule", "state", "n", "channel", "record")

    def __init__(self, rule: FaultRule, state: _State, n: int, channel: _Channel) -> None:
        self.rule = rule
        self.state = state
        self.n = n
        self.channel = channel
        self.record: FaultRecord | None = None

    def touch(self, nbytes: int) -> FaultRecord:
        """Count ``nbytes`` affected; create the record the first time."""
        rec = self.record
        if rec is None:
            cf = self.channel.conn
            rec = FaultRecord(
                self.rule.fault, self.rule.fault.name, self.rule.direction, self.n,
                cf.transport.peername,
            )
            rec.rule = self.rule
            self.record = rec
            rec.bytes = nbytes
            cf.owner._record(rec)
        elif nbytes:
            rec.bytes += nbytes
        return rec

    def act(self, action: str, detail: str = "") -> None:
        rec = self.touch(0)
        if rec.action is None:
            rec.action = action
            rec.action_at = time.monotonic()
            rec.detail = detail
            self.channel.conn.owner._changed()


class _LatencyState(_State):
    reads_ahead = True
    touches_all = True

    def __init__(self, fault: Latency, rng: random.Random) -> None:
        self.fault = fault
        self.rng = rng
        self.segments: deque[tuple[int, float]] = deque()  # (end offset, release time)
        self.seen = 0
        self.released = 0  # offset up to which bytes may pass
        self.out = 0
        self.last_release = 0.0

    def new_bytes(self, n: int, now: float) -> None:
        f = self.fault
        delay = f.seconds
        if f.jitter:
            delay = max(0.0, delay + self.rng.uniform(-f.jitter, f.jitter))
        release = max(self.last_release, now + delay)
        self.last_release = release
        self.seen += n
        self.segments.append((self.seen, release))

    def allowance(self, now: float, pending: int) -> int:
        segs = self.segments
        while segs and segs[0][1] <= now:
            self.released = segs.popleft()[0]
        return self.released - self.out

    def retry_at(self, now: float) -> float | None:
        return self.segments[0][1] if self.segments else None

    def passed(self, n: int, now: float) -> None:
        self.out += n
        assert self.active is not None
        self.active.touch(n)


class _BandwidthState(_State):
    touches_all = True

    def __init__(self, fault: Bandwidth) -> None:
        self.rate = fault.rate
        self.quantum = max(1, int(fault.rate * BANDWIDTH_QUANTUM))
        # Room for a few quanta, so a timer that fires a little late does not
        # lose the bytes its lateness earned (the long-run rate stays exact).
        self.capacity = 4 * self.quantum
        self.tokens = 0.0
        self.last = time.monotonic()

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now

    def allowance(self, now: float, pending: int) -> int:
        self._refill(now)
        if self.tokens < min(self.quantum, pending):
            return 0
        return int(self.tokens)

    def retry_at(self, now: float) -> float | None:
        return now + max(0.0, self.quantum - self.tokens) / self.rate

    def passed(self, n: int, now: float) -> None:
        self.tokens -= n
        assert self.active is not None
        self.active.touch(n)


class _SlicerState(_State):
    touches_all = True

    def __init__(self, fault: Slicer) -> None:
        self.fault = fault
        self.left = fault.size
        self.next_at = 0.0

    def allowance(self, now: float, pending: int) -> int:
        return self.left if now >= self.next_at else 0

    def retry_at(self, now: float) -> float | None:
        return self.next_at

    def passed(self, n: int, now: float) -> None:
        assert self.active is not None
        self.active.touch(n)
        self.left -= n
        if self.left <= 0:
            self.left = self.fault.size
            self.next_at = now + self.fault.delay


class _SlowCloseState(_State):
    def __init__(self, fault: SlowClose) -> None:
        self.fault = fault
        self.close_at: float | None = None


class _BlackHoleState(_State):
    discards = True

    def __init__(self, fault: BlackHole, channel: _Channel) -> None:
        self.fault = fault
        self.channel = channel
        self.timer: TimerHandle | None = None

    def start(self) -> None:
        assert self.active is not None
        self.active.touch(0)
        if self.fault.timeout is not None:
            t = self.channel.conn.transport
            self.timer = t.reactor.call_later(self.fault.timeout, self._time_out)

    def _time_out(self) -> None:
        self.timer = None
        if self.channel.conn.transport._closed:
            return  # closed meanwhile (stop(), the peer): nothing timed out
        assert self.active is not None
        self.active.act("timeout", f"closed after {self.fault.timeout} s of silence")
        t = self.channel.conn.transport
        t.abort()

    def allowance(self, now: float, pending: int) -> int:
        if pending and self.active is not None:
            self.active.touch(0)
        return 0

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class _LimitState(_State):
    """Reset / CloseAfter / HalfClose: let ``limit`` bytes pass, then act."""

    def __init__(
        self,
        fault: TransportFault,
        limit: int | None,
        channel: _Channel,
        *,
        after_seconds: float | None = None,
    ) -> None:
        self.fault = fault
        self.left = limit
        self.channel = channel
        self.after_seconds = after_seconds
        self.timer: TimerHandle | None = None
        self.fired = False
        self.passed_total = 0

    def start(self) -> None:
        if self.after_seconds is not None:
            t = self.channel.conn.transport
            self.timer = t.reactor.call_later(self.after_seconds, self._on_timer)
        if self.left == 0:
            self.channel.conn.transport.reactor.call_soon(self.fire)

    def _on_timer(self) -> None:
        self.timer = None
        self.fire()

    def allowance(self, now: float, pending: int) -> int:
        if self.fired:
            return 0
        return _UNLIMITED if self.left is None else self.left

    def passed(self, n: int, now: float) -> None:
        self.passed_total += n
        if self.left is not None:
            self.left -= n
            if self.left <= 0 and not self.fired:
                self.channel.conn.transport.reactor.call_soon(self.fire)

    def fire(self) -> None:
        if self.fired or self.active is None or not self.active.rule.active:
            return
        self.fired = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        t = self.channel.conn.transport
        if t._closed:
            return
        active = self.active
        active.touch(self.passed_total)
        if self.fault.name == "reset":
            active.act("reset", f"after {self.passed_total} bytes")
            reset_transport(t)
        elif self.fault.name == "close":
            active.act("close", f"after {self.passed_total} bytes")
            t._wbuf.clear()
            t._force_close(None)
        else:
            active.act("half-close", f"after {self.passed_total} bytes")
            self.channel.half_close()

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def reset_transport(t: StreamTransport) -> None:
    """Abort ``t`` with a TCP RST (``SO_LINGER`` 0); a plain abort on other sockets.

    Reactor thread.  Unsent bytes are dropped; harmless on a closed transport.
    """
    if t._closed:
        return
    sock = t.socket
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    t._wbuf.clear()
    t._force_close(ConnectionResetError("reset by a fault"))


class _Channel:
    """One direction of one connection: the states of the rules on it."""

    def __init__(self, conn: ConnectionFaults, direction: str) -> None:
        self.conn = conn
        self.direction = direction
        self.actives: list[_Active] = []
        self.seen = 0  # bytes that entered
        self.out = 0  # bytes that passed
        self.timer: TimerHandle | None = None
        self.timer_at = 0.0
        self.gated = False  # holding bytes back on purpose (no write interest)
        self.shut = False  # half-closed: what enters is dropped

    def add(self, rule: FaultRule, n: int) -> None:
        rng = rule.selection.item_rng(n)
        state = rule.fault._state(self, rng)
        active = _Active(rule, state, n, self)
        state.active = active
        self.actives.append(active)
        held = self.seen - self.out
        if held > 0:  # bytes already waiting here (behind another rule) are new to it
            state.new_bytes(held, time.monotonic())
        state.start()

    def remove(self, rule: FaultRule) -> None:
        keep = []
        for a in self.actives:
            if a.rule is rule:
                a.state.stop()
            else:
                keep.append(a)
        self.actives = keep
        self.cancel_timer()
        self.gated = False

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def account(self, pending: int, now: float) -> None:
        new = self.out + pending - self.seen
        if new > 0:
            self.seen += new
            for a in self.actives:
                a.state.new_bytes(new, now)
                if a.record is None and a.state.touches_all:
                    a.touch(0)

    def allowance(self, now: float, pending: int) -> int:
        n = pending
        for a in self.actives:
            n = min(n, a.state.allowance(now, pending))
        return n

    def passed(self, n: int, now: float) -> None:
        self.out += n
        for a in self.actives:
            a.state.passed(n, now)

    def hold_until_later(self, now: float, fire: Callable[[], None]) -> None:
        """Nothing may pass now: arm the timer for the earliest change."""
        self.gated = True
        when: float | None = None
        for a in self.actives:
            r = a.state.retry_at(now)
            if r is not None and (when is None or r < when):
                when = r
        if when is None:
            self.cancel_timer()  # held until a rule goes (black hole)
            return
        if self.timer is not None and self.timer_at <= when:
            return
        self.cancel_timer()
        self.timer_at = when
        self.timer = self.conn.transport.reactor.call_at(when, fire)

    def half_close(self) -> None:
        t = self.conn.transport
        self.shut = True
        if self.direction == DOWNSTREAM:
            t._wbuf.clear()
            try:
                t.socket.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            t._update_back_pressure()
            t._update_events()
        else:
            self.conn.up_buf.clear()
            try:
                t.socket.shutdown(socket.SHUT_RD)
            except OSError:
                pass
            self.conn.up_eof = True
            self.conn.eof_delivered = True
            if not t._closing:
                t._on_eof()


class ConnectionFaults:
    """The fault layer of one transport (its ``_faults``); reactor thread only."""

    def __init__(self, owner: TransportFaults, transport: StreamTransport) -> None:
        self.owner = owner
        self.transport = transport
        self.down = _Channel(self, DOWNSTREAM)
        self.up = _Channel(self, UPSTREAM)
        self.up_buf = bytearray()  # received, not yet delivered
        self.up_eof = False  # the peer's EOF arrived (held behind up_buf)
        self.eof_delivered = False
        self.deliver_scheduled = False
        self.close_timer: TimerHandle | None = None

    def add_rule(self, rule: FaultRule, n: int) -> None:
        (self.down if rule.direction == DOWNSTREAM else self.up).add(rule, n)
        self.kick()

    def remove_rule(self, rule: FaultRule) -> None:
        self.down.remove(rule)
        self.up.remove(rule)
        if self.close_timer is not None and not any(
            isinstance(a.state, _SlowCloseState) for a in self.down.actives
        ):
            self.close_timer.cancel()
            self.close_timer = None
        self.kick()

    def closed(self) -> None:
        """The transport closed (reactor thread): cancel every timer of its faults."""
        for ch in (self.down, self.up):
            ch.cancel_timer()
            for a in ch.actives:
                a.state.stop()
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = None

    def kick(self) -> None:
        """Something changed: re-run both directions on the next pass."""
        t = self.transport
        if t._closed:
            return
        t.reactor.call_soon(self._rerun)

    def _rerun(self) -> None:
        t = self.transport
        if t._closed:
            return
        self.down.gated = False
        t._flush()
        self.deliver()
        if (
            t._faults is self
            and not self.down.actives
            and not self.up.actives
            and not self.up_buf
            and not self.up_eof
            and self.close_timer is None
        ):
            t._faults = None  # nothing left to do: back to the plain path
        t._update_events()

    # -- the transport's hooks ------------------------------------------------------

    def filter_events(self, events: int) -> int:
        """Drop interest the faults do not want (called by ``_update_events``)."""
        if self.down.gated or self.close_timer is not None:
            events &= ~2  # selectors.EVENT_WRITE
        up = self.up
        if self.up_eof or len(self.up_buf) >= FAULT_HOLD_LIMIT or (
            self.up_buf and not all(a.state.reads_ahead for a in up.actives)
        ):
            events &= ~1  # selectors.EVENT_READ
        t = self.transport
        if self.up_buf and t._reading and not up.gated and not self.deliver_scheduled:
            self.deliver_scheduled = True
            t.reactor.call_soon(self._scheduled_deliver)
        return events

    def flush(self) -> None:
        """Send what the faults let go now (mirrors ``StreamTransport._flush``)."""
        t = self.transport
        if t._closed:
            return
        buf = t._wbuf
        ch = self.down
        if ch.shut:
            buf.clear()
        now = time.monotonic()
        ch.account(len(buf), now)
        ch.gated = False
        while buf:
            n = ch.allowance(now, len(buf))
            if n <= 0:
                ch.hold_until_later(now, self._down_timer)
                break
            try:
                sent = t._sock.send(buf if n >= len(buf) else bytes(buf[:n]))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # EPIPE, ECONNRESET
                t._force_close(exc)
                return
            del buf[:sent]
            ch.passed(sent, now)
        if not buf:
            ch.gated = False
            if t._closing:
                if self._slow_close(now):
                    t._update_events()
                    return
                t._force_close(None)
                return
            if t._write_eof_pending:
                t._write_eof_pending = False
                try:
                    t._sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        t._update_back_pressure()
        t._update_events()

    def _slow_close(self, now: float) -> bool:
        """True while a SlowClose holds the closing socket open."""
        for a in self.down.actives:
            st = a.state
            if isinstance(st, _SlowCloseState):
                if st.close_at is None:
                    st.close_at = now + st.fault.seconds
                    a.act("slow-close", f"closed {st.fault.seconds} s late")
                if now < st.close_at:
                    if self.close_timer is None:
                        self.close_timer = self.transport.reactor.call_at(
                            st.close_at, self._close_timer
                        )
                    return True
        return False

    def _close_timer(self) -> None:
        self.close_timer = None
        self.transport._flush()

    def _down_timer(self) -> None:
        self.down.timer = None
        self.down.gated = False
        self.transport._flush()

    def received(self, data: bytes) -> bool:
        """Take what one ``recv()`` returned; True if more may be read now."""
        t = self.transport
        up = self.up
        if not data:
            self.up_eof = True
        elif up.shut:
            pass  # half-closed upstream: dropped
        elif any(a.state.discards for a in up.actives):
            for a in up.actives:
                if a.state.discards:
                    a.touch(len(data))
        else:
            self.up_buf += data
            up.account(len(self.up_buf), time.monotonic())
        self.deliver()
        if not t._closed:
            t._update_events()
        return bool(data) and len(self.up_buf) < FAULT_HOLD_LIMIT and not t._closing

    def _scheduled_deliver(self) -> None:
        self.deliver_scheduled = False
        self.deliver()
        if not self.transport._closed:
            self.transport._update_events()

    def _up_timer(self) -> None:
        self.up.timer = None
        self._scheduled_deliver()

    def deliver(self) -> None:
        """Hand the held bytes the faults let go now to the protocol."""
        t = self.transport
        up = self.up
        buf = self.up_buf
        up.gated = False
        while buf and not t._closing and t._reading:
            now = time.monotonic()
            n = up.allowance(now, len(buf))
            if n <= 0:
                up.hold_until_later(now, self._up_timer)
                return
            chunk = bytes(buf[:n])
            del buf[:n]
            up.passed(len(chunk), now)
            if t._tls is not None:
                t._tls_feed(chunk)
            else:
                t._call(t.protocol.data_received, chunk)
        if buf or not self.up_eof or self.eof_delivered or t._closing:
            return
        if any(a.state.discards for a in up.actives):
            return  # a black hole swallows the end of file too
        self.eof_delivered = True
        t._on_eof()
