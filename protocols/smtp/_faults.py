"""Deterministic per-command faults for :class:`~protocols.smtp.SMTPServer`.

``SMTPServer(command_faults=[...])`` takes these rules; they are checked, in order,
for every command line with a well-formed verb, before ``on_command``, on
the reactor thread:

* :class:`ReplyOn` -- a scripted reply for the Nth occurrence of a verb on a
  connection (``ReplyOn("RCPT", (451, "4.3.0 later"), nth=2)``) or for a
  matching argument (``match="spam@"``, a regular expression searched in
  the argument);
* :class:`CloseAfterMessages` -- ``421`` (and a close) for any command once
  K messages were accepted on the connection (or by the server);
* :class:`DisconnectInData` -- the server drops the connection in the middle
  of the Nth message's content, after some octets of it: nothing is
  delivered;
* :class:`DelayReply` -- the reply to a command is held for some seconds: a
  timer on the reactor, so only that connection waits (replies to commands
  pipelined behind it wait too, in order), never the reactor or another
  connection;
* :class:`Chaos` -- a reply code with a probability, drawn from
  ``random.Random(seed)``: the same seed and the same commands in the same
  order give the same faults.

Every fault that fires is recorded in ``server.faults_fired`` (a
:class:`FaultFired`, waitable with ``server.wait_for_faults()``); a scripted
refusal is also a :class:`~protocols.smtp.Rejection` with reason
``"fault"``.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

from ._events import InvalidArgumentError, Reply

__all__ = [
    "Chaos",
    "CloseAfterMessages",
    "DelayReply",
    "DisconnectInData",
    "FaultFired",
    "ReplyOn",
    "SMTPFault",
]


def _reply(value: Reply | tuple[int, str]) -> Reply:
    if isinstance(value, Reply):
        return Reply(value.code, value.text, value.close, reason="fault")
    if isinstance(value, tuple) and len(value) == 2:
        return Reply(value[0], value[1], reason="fault")
    raise InvalidArgumentError(f"a fault's reply is a Reply or (code, text), not {value!r}")


def _verb(verb: str | None) -> str | None:
    if verb is None:
        return None
    if not (verb.isascii() and verb.isalpha()):
        raise InvalidArgumentError(f"a verb is ASCII letters, not {verb!r}")
    return verb.upper()


class SMTPFault:
    """Base of the fault rules.  ``command(session, verb, argument)``
    returns a :class:`Reply` to send instead, or None; ``delay()`` the
    seconds to hold the reply, 0 for none."""

    def command(self, session: Any, verb: str, argument: str) -> Reply | None:
        return None

    def delay(self, session: Any, verb: str, argument: str) -> float:
        return 0.0

    def describe(self) -> str:
        return type(self).__name__


class ReplyOn(SMTPFault):
    """Reply ``reply`` to the ``nth`` command ``verb`` of a connection (1 is
    the first; None: every one), or to every one whose argument matches
    ``match`` (a regular expression, searched), or both."""

    def __init__(
        self,
        verb: str,
        reply: Reply | tuple[int, str],
        *,
        nth: int | None = None,
        match: str | None = None,
    ) -> None:
        if nth is not None and nth < 1:
            raise InvalidArgumentError("nth counts from 1")
        self.verb = _verb(verb)
        self.reply = _reply(reply)
        self.nth = nth
        try:
            self.match = re.compile(match) if match is not None else None
        except re.error as exc:
            raise InvalidArgumentError(f"match is not a regular expression: {exc}") from None

    def command(self, session: Any, verb: str, argument: str) -> Reply | None:
        if verb != self.verb:
            return None
        if self.nth is not None and session.counts.get(verb, 0) != self.nth:
            return None
        if self.match is not None and not self.match.search(argument):
            return None
        return self.reply

    def describe(self) -> str:
        return f"ReplyOn({self.verb}, {self.reply.code}, nth={self.nth})"


class CloseAfterMessages(SMTPFault):
    """``421`` and close for any command but QUIT once ``count`` messages were
    accepted on the connection (``per="connection"``) or by the server
    (``per="server"``)."""

    def __init__(
        self,
        count: int,
        text: str = "4.3.2 Too many messages, closing connection",
        *,
        per: str = "connection",
    ) -> None:
        if count < 0:
            raise InvalidArgumentError("count must be >= 0")
        if per not in ("connection", "server"):
            raise InvalidArgumentError("per is 'connection' or 'server'")
        self.count = count
        self.per = per
        self.reply = Reply(421, text, reason="fault")

    def command(self, session: Any, verb: str, argument: str) -> Reply | None:
        if verb == "QUIT":  # the client is leaving anyway
            return None
        done = session.messages if self.per == "connection" else session.server_messages
        return self.reply if done >= self.count else None

    def describe(self) -> str:
        return f"CloseAfterMessages({self.count}, per={self.per})"


class DisconnectInData(SMTPFault):
    """Drop the connection (no reply) once ``after`` octets of the content
    after the ``nth`` DATA command of a connection arrived (``after=0``: at
    its first octet), or at its end if it came whole in the read that
    carried DATA (pipelining).  Nothing of that message is delivered."""

    def __init__(self, after: int = 0, *, nth: int = 1) -> None:
        if after < 0 or nth < 1:
            raise InvalidArgumentError("after >= 0 and nth >= 1")
        self.after = after
        self.nth = nth

    def describe(self) -> str:
        return f"DisconnectInData(after={self.after}, nth={self.nth})"


class DelayReply(SMTPFault):
    """Hold the reply to ``verb`` (every one, or the ``nth``) for
    ``seconds``; only that connection waits."""

    def __init__(self, verb: str, seconds: float, *, nth: int | None = None) -> None:
        if not 0 <= seconds <= 3600:
            raise InvalidArgumentError("seconds must be within 0..3600")
        if nth is not None and nth < 1:
            raise InvalidArgumentError("nth counts from 1")
        self.verb = _verb(verb)
        self.seconds = float(seconds)
        self.nth = nth

    def delay(self, session: Any, verb: str, argument: str) -> float:
        if verb != self.verb:
            return 0.0
        if self.nth is not None and session.counts.get(verb, 0) != self.nth:
            return 0.0
        return self.seconds

    def describe(self) -> str:
        return f"DelayReply({self.verb}, {self.seconds}, nth={self.nth})"


class Chaos(SMTPFault):
    """With ``probability``, reply ``reply`` to a command (of ``verbs``, or
    any), drawing from ``random.Random(seed)``: deterministic for a given
    seed and order of commands."""

    def __init__(
        self,
        probability: float,
        reply: Reply | tuple[int, str] = (451, "4.3.0 Chaos: try again later"),
        *,
        verbs: tuple[str, ...] | None = None,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= probability <= 1.0:
            raise InvalidArgumentError("probability must be within 0..1")
        self.probability = probability
        self.reply = _reply(reply)
        self.verbs = None if verbs is None else frozenset(_verb(v) for v in verbs)
        self.seed = seed
        self._random = random.Random(seed)

    def command(self, session: Any, verb: str, argument: str) -> Reply | None:
        if self.verbs is not None and verb not in self.verbs:
            return None
        return self.reply if self._random.random() < self.probability else None

    def describe(self) -> str:
        return f"Chaos(p={self.probability}, {self.reply.code}, seed={self.seed})"


@dataclass(frozen=True, kw_only=True, slots=True)
class FaultFired:
    """A fault that fired: ``fault`` (its description), ``peer``, ``verb``
    (``"DATA"`` for a disconnect in the content) and ``action``
    (``"reply 451"``, ``"delay 0.5"``, ``"disconnect"``).  ``received_at``
    is ``time.monotonic()``."""

    peer: Any
    fault: str
    verb: str
    action: str
    received_at: float = field(default_factory=time.monotonic, compare=False)
