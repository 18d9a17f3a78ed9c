"""States and transitions of the HTTP/1.1 server machine, in one place.

An HTTP/1.1 connection is two small state machines, one per direction (the
idea of h11's ``_state.py``): *their* side (the client sending requests) and
*our* side (the server sending responses).  Every state change of the
machine is here: a ``(state, event type) -> next state`` entry of
:data:`THEIR_TRANSITIONS` or :data:`OUR_TRANSITIONS`, looked up with
:func:`transition` (a miss raises :class:`LocalProtocolError`), or one of
the special cases beside them:

* two pseudo-events that are not messages: :class:`ProtocolFailure` (the
  peer broke the protocol; :func:`process_error`, like h11's
  ``process_error``) and :class:`RawResponse` (a self-framed response sent
  verbatim, whose end is the close);
* :func:`settle`: a side that is DONE on a connection that will not be
  reused goes to MUST_CLOSE, and when both sides are DONE the next cycle
  starts (both IDLE).
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

__all__ = [
    "ERROR_RESPONSE_STATES",
    "OUR_TRANSITIONS",
    "THEIR_TRANSITIONS",
    "ProtocolFailure",
    "RawResponse",
    "State",
    "process_error",
    "settle",
    "transition",
]


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


class ProtocolFailure:
    """Pseudo-event: the peer broke the protocol (``next_event()`` raised).

    Their side goes to ERROR.  Ours goes to MUST_CLOSE when no response had
    started (the machine queues the error response, see
    :data:`ERROR_RESPONSE_STATES`), to ERROR in the middle of a response
    body (it can never be completed correctly), and stays closing otherwise.
    """


class RawResponse:
    """Pseudo-event: a self-made response sent verbatim (``send_raw()``).

    The machine cannot know where it ends, so it is close-delimited: our
    side goes to MUST_CLOSE.
    """


Transitions = dict[tuple[State, type[Event] | type[ProtocolFailure] | type[RawResponse]], State]

THEIR_TRANSITIONS: Final[Transitions] = {
    (State.IDLE, Request): State.SEND_BODY,
    (State.IDLE, ConnectionClosed): State.CLOSED,
    (State.SEND_BODY, Data): State.SEND_BODY,
    (State.SEND_BODY, EndOfMessage): State.DONE,
    # The peer can only break the protocol while it is being parsed.
    (State.IDLE, ProtocolFailure): State.ERROR,
    (State.SEND_BODY, ProtocolFailure): State.ERROR,
}

OUR_TRANSITIONS: Final[Transitions] = {
    # A request from the client is what gives us something to answer.
    (State.IDLE, Request): State.SEND_RESPONSE,
    (State.SEND_RESPONSE, InformationalResponse): State.SEND_RESPONSE,
    (State.SEND_RESPONSE, Response): State.SEND_BODY,
    (State.SEND_BODY, Data): State.SEND_BODY,
    (State.SEND_BODY, EndOfMessage): State.DONE,
    (State.SEND_RESPONSE, RawResponse): State.MUST_CLOSE,
    (State.SEND_BODY, RawResponse): State.MUST_CLOSE,
    # Their side failed: the error response (queued by the machine) ends
    # the connection; a response cut off mid-body is an error of ours too.
    (State.IDLE, ProtocolFailure): State.MUST_CLOSE,
    (State.SEND_RESPONSE, ProtocolFailure): State.MUST_CLOSE,
    (State.SEND_BODY, ProtocolFailure): State.ERROR,
    (State.DONE, ProtocolFailure): State.MUST_CLOSE,
    (State.MUST_CLOSE, ProtocolFailure): State.MUST_CLOSE,
}

#: Our states in which no response has started: a failure of their side
#: there is answered with an error response (the machine builds it).
ERROR_RESPONSE_STATES: Final = frozenset({State.IDLE, State.SEND_RESPONSE})


def transition(
    table: Transitions,
    state: State,
    etype: type[Event] | type[ProtocolFailure] | type[RawResponse],
) -> State:
    """The state after *etype* in *state*; ``LocalProtocolError`` on a miss."""
    nxt = table.get((state, etype))
    if nxt is None:
        raise LocalProtocolError(f"cannot handle {etype.__name__} in state {state.name}")
    return nxt


def process_error(their: State, ours: State) -> tuple[State, State, bool]:
    """Both sides after the peer broke the protocol: ``(their, ours, send_error)``.

    *send_error* is True when our side had not started a response, so an
    error response is owed.  A miss (a failure in a state that does not
    parse) raises ``LocalProtocolError``.
    """
    return (
        transition(THEIR_TRANSITIONS, their, ProtocolFailure),
        transition(OUR_TRANSITIONS, ours, ProtocolFailure),
        ours in ERROR_RESPONSE_STATES,
    )


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
