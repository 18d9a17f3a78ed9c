"""The SMTP machine changes state only through its two tables, and HELP is
generated from them.

``TRANSITIONS`` ((state, verb) -> next state) and ``TRIGGERS`` ((state,
trigger) -> next state) in ``protocols.smtp._state`` are the whole state
graph: a traced machine, driven through every kind of dialogue, never makes
a change of state that is not an edge of one of them, and makes every edge
the tables list for commands and for the non-closing triggers.  HELP lists
exactly the verbs that are available in the current state and
configuration: each listed verb is answered without 502/503/530/538, each
verb left out gets one of those (or 554, DATA without recipients).
"""

from __future__ import annotations

import ast
import base64
import inspect
import random
import unittest
from typing import Any

from protocols.smtp import _machine
from protocols.smtp._events import NEED_DATA, PAUSED, YIELD, ConnectionClosed, Event, Proposal
from protocols.smtp._machine import SMTPServerConnection
from protocols.smtp._state import (
    HELP_ORDER,
    INITIAL_STATE,
    KNOWN_VERBS,
    TRANSITIONS,
    TRIGGERS,
    State,
    Trigger,
)

Edge = tuple[State, State]

COMMAND_EDGES: set[Edge] = {(state, nxt) for (state, _), (_, nxt) in TRANSITIONS.items()}
TRIGGER_EDGES: set[Edge] = {(state, nxt) for (state, _), nxt in TRIGGERS.items()}
CLOSING = (Trigger.EOF, Trigger.GIVE_UP, Trigger.SHUTDOWN)


class TracedMachine(SMTPServerConnection):
    """Records every write of the machine's state."""

    def __init__(self, edges: set[Edge], **options: Any) -> None:
        self.__dict__["_edges"] = edges
        super().__init__(**options)

    def __setattr__(self, name: str, value: object) -> None:
        if name == "_state":
            assert isinstance(value, State)
            self._edges.add((self.__dict__.get("_state", None), value))  # type: ignore[arg-type]
        super().__setattr__(name, value)


def run(
    m: SMTPServerConnection, chunks: list[bytes], reject_every: int = 3, eof: bool = True
) -> tuple[list[Event], bytes]:
    """Feed ``chunks`` (and EOF); accept or reject proposals by a fixed rule;
    finish STARTTLS handshakes at once."""
    events: list[Event] = []
    out = bytearray(m.data_to_send())
    for chunk in [*chunks, b""] if eof else chunks:
        if m.state is State.CLOSED and chunk:
            continue
        m.receive_data(chunk)
        for _ in range(100_000):
            ev = m.next_event()
            if ev is NEED_DATA:
                break
            if ev is YIELD:
                continue
            if ev is PAUSED:
                m.tls_established()
                continue
            assert isinstance(ev, Event)
            events.append(ev)
            if isinstance(ev, ConnectionClosed):
                break
            if isinstance(ev, Proposal):
                if len(events) % reject_every == 0:
                    m.reject(550, "no")
                else:
                    m.accept()
        out += m.data_to_send()
    return events, bytes(out)


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


FRAGMENTS = [
    b"EHLO x\r\n",
    b"HELO y\r\n",
    b"MAIL FROM:<a@b>\r\n",
    b"RCPT TO:<c@d>\r\n",
    b"DATA\r\n",
    b"text\r\n.\r\n",
    b"bare\nline\r\n.\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"HELP\r\n",
    b"VRFY z\r\n",
    b"STARTTLS\r\n",
    b"AUTH PLAIN\r\n",
    b"AUTH PLAIN " + b64(b"\0u\0p") + b"\r\n",
    b"AUTH LOGIN\r\n",
    b"dQ==\r\n",
    b"cA==\r\n",
    b"*\r\n",
    b"!!\r\n",
    b"FROB\r\n",
    b"QUIT\r\n",
]


class TestEveryTransitionIsInTheTables(unittest.TestCase):
    def test_traced_dialogues_use_only_table_edges(self) -> None:
        edges: set[Edge] = set()
        rng = random.Random(5321)
        configs: list[dict[str, Any]] = [
            {},
            {"starttls": True, "auth_mechanisms": ("PLAIN", "LOGIN"), "auth_over_plaintext": True},
            {"tls_active": True, "auth_mechanisms": ("LOGIN",), "max_errors": 5},
            # AUTH before any HELO/EHLO (every fifth dialogue has no EHLO).
            {
                "auth_mechanisms": ("PLAIN", "LOGIN"),
                "auth_over_plaintext": True,
                "auth_before_ehlo": True,
            },
        ]
        for i in range(600):
            parts = [b"EHLO fuzz\r\n"] if i % 5 else []
            parts += [rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 40))]
            m = TracedMachine(edges, **configs[i % len(configs)])
            run(m, [b"".join(parts)], reject_every=rng.randint(2, 5))
        # The machine says 421 and closes when its server stops.
        for state_setup in ([], [b"EHLO x\r\n"], [b"EHLO x\r\n", b"AUTH LOGIN\r\n"]):
            m = TracedMachine(edges, auth_mechanisms=("LOGIN",), auth_over_plaintext=True)
            run(m, state_setup, eof=False)
            m.shutdown("stopping")
        initial = (None, INITIAL_STATE)
        allowed = COMMAND_EDGES | TRIGGER_EDGES | {initial}  # type: ignore[operator]
        self.assertLessEqual(edges, allowed, edges - allowed)  # type: ignore[operator]
        # And the corpus is rich enough to make every edge of the graph but
        # the closing ones from every state.
        wanted = COMMAND_EDGES | {
            (state, nxt) for (state, trigger), nxt in TRIGGERS.items() if trigger not in CLOSING
        }
        self.assertEqual(wanted - edges, set())

    def test_no_state_is_set_outside_the_tables(self) -> None:
        """Every ``self._state = ...`` in the machine assigns the initial
        state, a next state taken from TRANSITIONS, or a TRIGGERS lookup."""
        tree = ast.parse(inspect.getsource(_machine))
        writes = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if (
                        isinstance(target, ast.Attribute)
                        and target.attr == "_state"
                        and isinstance(target.value, ast.Name)
                        and target.value.id == "self"
                    ):
                        writes.append(ast.unparse(node.value))
        self.assertEqual(
            sorted(writes),
            sorted(["INITIAL_STATE", "next_state", "next_state", "TRIGGERS[self._state, trigger]"]),
        )

    def test_tables_cover_the_states(self) -> None:
        for state in State:
            for trigger in CLOSING:
                self.assertIs(TRIGGERS[(state, trigger)], State.CLOSED)
        self.assertEqual(set(HELP_ORDER), KNOWN_VERBS)


HELP_MINIMUM = ["HELO", "EHLO", "RSET", "NOOP", "QUIT", "VRFY", "HELP"]


class TestHelpFromTheTable(unittest.TestCase):
    def help(self, before: list[bytes], **options: Any) -> list[str]:
        m = SMTPServerConnection(**options)
        if before:
            m.receive_data(b"".join(before))
        for _ in range(100):
            ev = m.next_event()
            if ev is NEED_DATA:
                break
            if isinstance(ev, Proposal):
                m.accept()
        m.data_to_send()
        m.receive_data(b"HELP\r\n")
        self.assertIs(m.next_event(), NEED_DATA)
        reply = m.data_to_send().decode()
        self.assertTrue(reply.startswith("214 "), reply)
        return reply.rstrip("\r\n").split("Commands: ", 1)[1].split()

    def test_no_starttls_or_auth_when_both_would_answer_502(self) -> None:
        verbs = self.help([b"EHLO x\r\n"])
        self.assertNotIn("STARTTLS", verbs)
        self.assertNotIn("AUTH", verbs)
        self.assertEqual(verbs, ["HELO", "EHLO", "MAIL", "RSET", "NOOP", "QUIT", "VRFY", "HELP"])

    def test_per_state(self) -> None:
        self.assertEqual(self.help([]), HELP_MINIMUM)
        self.assertEqual(
            self.help([b"EHLO x\r\n", b"MAIL FROM:<a@b>\r\n"]),
            ["HELO", "EHLO", "RCPT", "RSET", "NOOP", "QUIT", "VRFY", "HELP"],
        )
        self.assertEqual(
            self.help([b"EHLO x\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<c@d>\r\n"]),
            ["HELO", "EHLO", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "HELP"],
        )

    def test_per_configuration(self) -> None:
        starttls = self.help([b"EHLO x\r\n"], starttls=True)
        self.assertIn("STARTTLS", starttls)
        self.assertNotIn("STARTTLS", self.help([b"EHLO x\r\n"], starttls=True, tls_active=True))
        auth = {"auth_mechanisms": ("PLAIN",), "auth_over_plaintext": True}
        self.assertIn("AUTH", self.help([b"EHLO x\r\n"], **auth))
        self.assertNotIn("AUTH", self.help([b"HELO x\r\n"], **auth))  # AUTH needs EHLO
        self.assertNotIn("AUTH", self.help([b"EHLO x\r\n"], auth_mechanisms=("PLAIN",)))  # 538
        logged_in = [b"EHLO x\r\n", b"AUTH PLAIN " + b64(b"\0u\0p") + b"\r\n"]
        self.assertNotIn("AUTH", self.help(logged_in, **auth))
        self.assertNotIn("MAIL", self.help([b"EHLO x\r\n"], **auth, auth_required=True))
        self.assertIn("MAIL", self.help(logged_in, **auth, auth_required=True))
        self.assertNotIn("MAIL", self.help([b"EHLO x\r\n"], starttls=True, tls_required=True))

    def test_listed_verbs_are_accepted_and_the_others_refused(self) -> None:
        probes = {
            "HELO": b"HELO x\r\n",
            "EHLO": b"EHLO x\r\n",
            "MAIL": b"MAIL FROM:<p@q>\r\n",
            "RCPT": b"RCPT TO:<r@s>\r\n",
            "DATA": b"DATA\r\n",
            "RSET": b"RSET\r\n",
            "NOOP": b"NOOP\r\n",
            "QUIT": b"QUIT\r\n",
            "VRFY": b"VRFY v\r\n",
            "HELP": b"HELP\r\n",
            "STARTTLS": b"STARTTLS\r\n",
            "AUTH": b"AUTH PLAIN\r\n",
        }
        refusals = {502, 503, 530, 538, 554}
        configs: list[dict[str, Any]] = [
            {},
            {"starttls": True},
            {"starttls": True, "tls_required": True},
            {"auth_mechanisms": ("PLAIN",)},
            {"auth_mechanisms": ("PLAIN",), "auth_over_plaintext": True, "auth_required": True},
            {"tls_active": True, "auth_mechanisms": ("PLAIN",)},
        ]
        setups = [
            [],
            [b"HELO x\r\n"],
            [b"EHLO x\r\n"],
            [b"EHLO x\r\n", b"MAIL FROM:<a@b>\r\n"],
            [b"EHLO x\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<c@d>\r\n"],
        ]
        for options in configs:
            for setup in setups:
                listed = self.help(setup, **options)
                for verb, probe in probes.items():
                    with self.subTest(options=options, setup=setup, verb=verb):
                        m = SMTPServerConnection(**options)
                        run(m, setup, reject_every=1_000, eof=False)
                        m.data_to_send()
                        m.receive_data(probe)
                        m.next_event()
                        code = int(m.data_to_send()[:3] or b"0")
                        if verb in listed:
                            self.assertNotIn(code, refusals)
                        else:
                            self.assertIn(code, refusals)


if __name__ == "__main__":
    unittest.main()
