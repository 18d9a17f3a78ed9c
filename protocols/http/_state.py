"""States and transitions of the HTTP/1.1 server machine, in one place.

An HTTP/1.1 connection is two small state machines, one per direction (the
idea of h11's ``_state.py``): *their* side (the client sending requests) and
*our* side (the server sending responses).  Every ordinary transition is a
``(state, event type) -> next state`` entry of :data:`THEIR_TRANSITIONS` or
:data:`OUR_TRANSITIONS`; a miss is a protocol error.  The special cases are
beside them in :func:`settle`: a side that is DONE on a connection that will
not be reused goes to MUST_CLOSE, and when both sides are DONE the next cycle
starts (both IDLE).  Errors move their side to ERROR
(:meth:`~protocols.http._machine.HTTP11Machine` does that in ``_fail``).
"""

from __future__ import annotations

import enum
from typing import Final

from ._events import (
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    InformationalResponse,
    LocalProtocolError,
    Request,
    Response,
)

__all__ = ["OUR_TRANSITIONS", "THEIR_TRANSITIONS", "State", "settle", "transition"]


class State(enum.Enum):
    """The state of one direction of an HTTP/1.1 connection."""

    #: Between messages: their side waits for a request head; ours has no
    #: request to answer.
    IDLE = "IDLE"
    #: Ours only: a request head was received and no final response started.
    SEND_RESPONSE = "SEND_RESPONSE"
    #: The message head is done and its body is being transferred.
    SEND_BODY = "SEND_BODY"
    #: This side's message is complete; the connection may be reused.
    DONE = "DONE"
    #: This side's message is complete and the connection will be closed.
    MUST_CLOSE = "MUST_CLOSE"
    #: Their side only: the client closed its sending side (EOF) cleanly.
    CLOSED = "CLOSED"
    #: A protocol error: the machine can no longer be used.
    ERROR = "ERROR"

    # Members are singletons compared by identity: hash them by identity too
    # (C speed; Enum's default hashes the name in Python code).  The
    # transition tables are looked up on every event.
    __hash__ = object.__hash__


THEIR_TRANSITIONS: Final[dict[tuple[State, type[Event]], State]] = {
    (State.IDLE, Request): State.SEND_BODY,
    (State.IDLE, ConnectionClosed): State.CLOSED,
    (State.SEND_BODY, Data): State.SEND_BODY,
    (State.SEND_BODY, EndOfMessage): State.DONE,
}

OUR_TRANSITIONS: Final[dict[tuple[State, type[Event]], State]] = {
    # A request from the client is what gives us something to answer.
    (State.IDLE, Request): State.SEND_RESPONSE,
    (State.SEND_RESPONSE, InformationalResponse): State.SEND_RESPONSE,
    (State.SEND_RESPONSE, Response): State.SEND_BODY,
    (State.SEND_BODY, Data): State.SEND_BODY,
    (State.SEND_BODY, EndOfMessage): State.DONE,
}


def transition(
    table: dict[tuple[State, type[Event]], State], state: State, etype: type[Event]
) -> State:
    """The state after *etype* in *state*; ``LocalProtocolError`` on a miss."""
    nxt = table.get((state, etype))
    if nxt is None:
        raise LocalProtocolError(f"cannot handle {etype.__name__} in state {state.name}")
    return nxt


_IDLE: Final = State.IDLE
_DONE: Final = State.DONE
_MUST_CLOSE: Final = State.MUST_CLOSE


def settle(their: State, ours: State, keep_alive: bool) -> tuple[State, State, bool]:
    """Apply the special cases; return ``(their, ours, new_cycle)``.

    Without keep-alive a DONE side becomes MUST_CLOSE (RFC 9112 §9.3, §9.6);
    with it, both sides DONE means the exchange is over and both become IDLE,
    which is when a pipelined request may be parsed (``new_cycle`` True).
    """
    if not keep_alive:
        if their is _DONE:
            their = _MUST_CLOSE
        if ours is _DONE:
            ours = _MUST_CLOSE
        return their, ours, False
    if their is _DONE and ours is _DONE:
        return _IDLE, _IDLE, True
    return their, ours, False
