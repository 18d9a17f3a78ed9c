"""Tests of the sans-I/O SMTP server machine (protocols.smtp._machine), no sockets.

Every dialogue is fed three ways: one command per feed, everything at once
(pipelined), and one byte at a time; the replies must be identical.
"""

from __future__ import annotations

import base64
import dataclasses
import random
import time
import unittest
import zlib
from collections.abc import Callable, Iterable

from protocols._buffer import COMPACT_AT
from protocols.smtp._events import (
    AUTH_LINE_LIMIT,
    COMMAND_LINE_LIMIT,
    COMMANDS_PER_CALL,
    NEED_DATA,
    PAUSED,
    TEXT_LINE_LIMIT,
    YIELD,
    AuthAttempt,
    ConnectionClosed,
    ConnectionClosedError,
    Event,
    Hello,
    LocalProtocolError,
    MailFromProposed,
    MessageReceived,
    MessageRefused,
    Proposal,
    Quit,
    RecipientProposed,
    Reset,
    SMTPProtocolError,
    StartTLSRequested,
)
from protocols.smtp._machine import TRANSITIONS, SMTPServerConnection, State


class Code:
    """Reply codes by name (RFC 5321 §4.2.3, RFC 3207, RFC 4954)."""

    HELP = 214
    GREETING = 220
    TLS_GO_AHEAD = 220
    BYE = 221
    AUTH_OK = 235
    OK = 250
    CANNOT_VRFY = 252
    AUTH_CONTINUE = 334
    START_DATA = 354
    CLOSING = 421
    TRY_LATER = 451
    TOO_MANY_RCPTS = 452
    TLS_UNAVAILABLE = 454
    UNRECOGNIZED = 500
    SYNTAX = 501
    NOT_IMPLEMENTED = 502
    BAD_SEQUENCE = 503
    BAD_PARAMETER = 504
    AUTH_REQUIRED = 530
    AUTH_FAILED = 535
    ENCRYPTION_REQUIRED = 538
    REJECTED = 550
    TOO_BIG = 552
    BAD_ADDRESS = 553
    FAILED = 554
    PARAM_UNKNOWN = 555


Decide = Callable[[Proposal], "tuple[int, str] | None"]


def pump(m: SMTPServerConnection, events: list[Event], decide: Decide | None) -> None:
    """Drain events; answer proposals with ``decide`` (None = accept).

    A :data:`YIELD` is followed by another call at once, as a reactor would
    do on its next pass.
    """
    for _ in range(100_000):
        ev = m.next_event()
        if ev is YIELD:
            continue
        if ev is NEED_DATA or ev is PAUSED:
            return
        assert isinstance(ev, Event)
        events.append(ev)
        if isinstance(ev, Proposal):
            verdict = decide(ev) if decide else None
            if verdict is None:
                m.accept()
            else:
                m.reject(*verdict)
        if isinstance(ev, ConnectionClosed):
            return
    raise AssertionError("machine kept producing events")


def feed(
    chunks: Iterable[bytes],
    *,
    decide: Decide | None = None,
    eof: bool = False,
    machine: SMTPServerConnection | None = None,
    **options: object,
) -> tuple[SMTPServerConnection, list[Event], bytes]:
    m = machine if machine is not None else SMTPServerConnection(**options)  # type: ignore[arg-type]
    events: list[Event] = []
    for chunk in chunks:
        m.receive_data(chunk)
        pump(m, events, decide)
    if eof:
        m.receive_data(b"")
        pump(m, events, decide)
    return m, events, m.data_to_send()


def split(mode: str, commands: list[bytes]) -> list[bytes]:
    whole = b"".join(commands)
    if mode == "commands":
        return commands
    if mode == "whole":
        return [whole]
    if mode == "bytes":
        return [whole[i : i + 1] for i in range(len(whole))]
    raise ValueError(mode)


MODES = ("commands", "whole", "bytes")


def replies(out: bytes) -> list[tuple[int, str]]:
    """Parse ``out`` into (code, text-of-all-lines) per reply."""
    result: list[tuple[int, str]] = []
    lines: list[str] = []
    for raw in out.split(b"\r\n")[:-1]:
        text = raw.decode("utf-8")
        lines.append(text[4:])
        if text[3:4] == " ":
            result.append((int(text[:3]), "\n".join(lines)))
            lines = []
    assert not lines, f"unterminated multi-line reply in {out!r}"
    assert out.endswith(b"\r\n") or not out
    return result


def stored(m: SMTPServerConnection) -> int:
    """Octets of message content the machine holds right now (white box)."""
    txn = m._txn
    assert txn is not None and txn.content is not None
    return txn.content.stored


def codes(out: bytes) -> list[int]:
    return [code for code, _ in replies(out)]


class MachineTestCase(unittest.TestCase):
    def dialogue(
        self, commands: list[bytes], **kwargs: object
    ) -> tuple[list[Event], list[tuple[int, str]]]:
        """Run ``commands`` in every feeding mode; check all modes agree."""
        results = []
        for mode in MODES:
            m, events, out = feed(split(mode, commands), **kwargs)  # type: ignore[arg-type]
            results.append((mode, events, replies(out)))
        _, events0, replies0 = results[0]
        for mode, events, reps in results[1:]:
            self.assertEqual(reps, replies0, f"replies differ when fed {mode}")
            self.assertEqual(events, events0, f"events differ when fed {mode}")
        return events0, replies0


MAIL = [
    b"EHLO client.example\r\n",
    b"MAIL FROM:<alice@example.org>\r\n",
    b"RCPT TO:<bob@example.net>\r\n",
]


class TestBasicDialogue(MachineTestCase):
    def test_greeting_is_queued_by_constructor(self) -> None:
        m = SMTPServerConnection(hostname="mx.test", greeting="hi there")
        self.assertEqual(m.data_to_send(), b"220 mx.test hi there\r\n")
        self.assertEqual(m.data_to_send(), b"")
        self.assertIs(m.next_event(), NEED_DATA)
        self.assertIs(m.state, State.GREETED)

    def test_texts_cannot_forge_replies(self) -> None:
        m = SMTPServerConnection(greeting="hi\r\n250 forged")
        self.assertEqual(m.data_to_send(), b"220-localhost hi\r\n220 250 forged\r\n")
        m.receive_data(b"EHLO x\r\nMAIL FROM:<a@b>\r\n")
        self.assertIsInstance(m.next_event(), Hello)
        self.assertIsInstance(m.next_event(), MailFromProposed)
        m.data_to_send()
        m.reject(550, "no\r\n250 2.1.0 OK")
        self.assertEqual(replies(m.data_to_send()), [(550, "5.0.0 no\n5.0.0 250 2.1.0 OK")])

    def test_full_transaction(self) -> None:
        body = b"Subject: hi\r\n\r\nline 1\r\n..leading dot\r\n.\r\n"
        events, reps = self.dialogue(MAIL + [b"DATA\r\n", body, b"QUIT\r\n"])
        self.assertEqual(
            [c for c, _ in reps],
            [Code.GREETING, Code.OK, Code.OK, Code.OK, Code.START_DATA, Code.OK, Code.BYE],
        )
        self.assertEqual(
            [type(e) for e in events],
            [Hello, MailFromProposed, RecipientProposed, MessageReceived, Quit],
        )
        msg = events[3]
        assert isinstance(msg, MessageReceived)
        self.assertEqual(msg.mail_from, "alice@example.org")
        self.assertEqual(msg.recipients, ("bob@example.net",))
        self.assertEqual(msg.data, b"Subject: hi\r\n\r\nline 1\r\n.leading dot\r\n")

    def test_dot_unstuffing_removes_exactly_one_leading_dot(self) -> None:
        body = b"..\r\n...\r\n.x\r\n a.\r\n\r\n..\r\n.\r\n"
        events, _ = self.dialogue(MAIL + [b"DATA\r\n", body])
        msg = events[-1]
        assert isinstance(msg, MessageReceived)
        self.assertEqual(msg.data, b".\r\n..\r\nx\r\n a.\r\n\r\n.\r\n")

    def test_empty_message(self) -> None:
        events, reps = self.dialogue(MAIL + [b"DATA\r\n.\r\n"])
        msg = events[-1]
        assert isinstance(msg, MessageReceived)
        self.assertEqual(msg.data, b"")
        self.assertEqual(reps[-1][0], Code.OK)

    def test_trailing_data_after_message_is_the_next_command(self) -> None:
        events, reps = self.dialogue(
            MAIL
            + [b"DATA\r\nx\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<c@d>\r\nDATA\r\ny\r\n.\r\nQUIT\r\n"]
        )
        msgs = [e for e in events if isinstance(e, MessageReceived)]
        self.assertEqual([m.data for m in msgs], [b"x\r\n", b"y\r\n"])
        self.assertEqual(msgs[1].mail_from, "")
        self.assertEqual(reps[-1][0], Code.BYE)

    def test_two_transactions_and_rset(self) -> None:
        events, reps = self.dialogue(
            MAIL + [b"RSET\r\n", b"RCPT TO:<x@y>\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<c@d>\r\n"]
        )
        self.assertIn(Reset(), events)
        self.assertEqual([c for c, _ in reps][-4:], [Code.OK, Code.BAD_SEQUENCE, Code.OK, Code.OK])

    def test_helo_session_has_no_enhanced_codes_and_no_params(self) -> None:
        events, reps = self.dialogue(
            [b"HELO box\r\n", b"MAIL FROM:<a@b> SIZE=10\r\n", b"MAIL FROM:<a@b>\r\n", b"NOOP\r\n"]
        )
        self.assertEqual(events[0], Hello(command="HELO", name="box"))
        self.assertEqual([c for c, _ in reps], [220, 250, Code.PARAM_UNKNOWN, Code.OK, Code.OK])
        self.assertEqual(reps[3][1], "OK")

    def test_ehlo_advertises_extensions(self) -> None:
        _, reps = self.dialogue([b"EHLO me\r\n"], max_message_size=1234)
        keywords = reps[1][1].split("\n")[1:]
        self.assertEqual(
            keywords,
            ["8BITMIME", "SIZE 1234", "PIPELINING", "SMTPUTF8", "ENHANCEDSTATUSCODES", "HELP"],
        )

    def test_ehlo_in_transaction_resets_it(self) -> None:
        _, reps = self.dialogue(MAIL + [b"EHLO again\r\n", b"DATA\r\n", b"RCPT TO:<a@b>\r\n"])
        self.assertEqual([c for c, _ in reps][-3:], [Code.OK, Code.BAD_SEQUENCE, Code.BAD_SEQUENCE])

    def test_noop_vrfy_help_anytime(self) -> None:
        _, reps = self.dialogue(
            [b"NOOP\r\n", b"VRFY bob\r\n", b"HELP\r\n", b"noop with text\r\n", b"VRFY\r\n"]
        )
        self.assertEqual(
            [c for c, _ in reps], [220, Code.OK, Code.CANNOT_VRFY, Code.HELP, Code.OK, Code.SYNTAX]
        )

    def test_verbs_are_case_insensitive(self) -> None:
        _, reps = self.dialogue(
            [b"ehlo x\r\n", b"mail from:<a@b> size=5\r\n", b"rcpt to:<c@d>\r\n"]
        )
        self.assertEqual([c for c, _ in reps], [220, 250, 250, 250])

    def test_quit_closes_and_ignores_later_bytes(self) -> None:
        events, reps = self.dialogue([b"QUIT\r\n", b"MAIL FROM:<a@b>\r\nNOOP\r\n"], eof=True)
        self.assertEqual([c for c, _ in reps], [220, Code.BYE])
        self.assertEqual(events, [Quit(reply_code=221), ConnectionClosed(aborted=False)])


class TestErrors(MachineTestCase):
    def test_sequence_errors(self) -> None:
        cases = {
            b"MAIL FROM:<a@b>\r\n": Code.BAD_SEQUENCE,
            b"RCPT TO:<a@b>\r\n": Code.BAD_SEQUENCE,
            b"DATA\r\n": Code.BAD_SEQUENCE,
            b"STARTTLS\r\n": Code.BAD_SEQUENCE,
            b"AUTH PLAIN\r\n": Code.BAD_SEQUENCE,
        }
        for line, code in cases.items():
            with self.subTest(line=line):
                _, reps = self.dialogue([line])
                self.assertEqual(reps[-1][0], code)
                self.assertIn("HELO/EHLO first", reps[-1][1])
        _, reps = self.dialogue([b"EHLO x\r\n", b"RCPT TO:<a@b>\r\n", b"DATA\r\n"])
        self.assertEqual([c for c, _ in reps][-2:], [Code.BAD_SEQUENCE, Code.BAD_SEQUENCE])
        _, reps = self.dialogue(MAIL[:2] + [b"DATA\r\n", b"MAIL FROM:<x@y>\r\n", b"STARTTLS\r\n"])
        self.assertEqual(
            [c for c, _ in reps][-3:], [Code.FAILED, Code.BAD_SEQUENCE, Code.BAD_SEQUENCE]
        )

    def test_syntax_errors(self) -> None:
        cases = {
            b"FROB\r\n": Code.UNRECOGNIZED,
            b"EXPN list\r\n": Code.NOT_IMPLEMENTED,
            b"BDAT 10\r\n": Code.NOT_IMPLEMENTED,
            b"EHLO\r\n": Code.SYNTAX,
            b"HELO   \r\n": Code.SYNTAX,
            b"MAIL TO:<a@b>\r\n": Code.SYNTAX,
            b"MAIL FROM:a@b\r\n": Code.SYNTAX,
            b"MAIL FROM:<a@b\r\n": Code.SYNTAX,
            b"MAIL FROM:<a@b>SIZE=1\r\n": Code.SYNTAX,
            b"MAIL FROM:<a@b> SIZE=x\r\n": Code.SYNTAX,
            b"MAIL FROM:<a@b> SIZE\r\n": Code.SYNTAX,
            b"MAIL FROM:<a@b> BODY=BINARYMIME\r\n": Code.SYNTAX,
            b"MAIL FROM:<a@b> SMTPUTF8=yes\r\n": Code.SYNTAX,
            b"MAIL FROM:<a@b> RET=FULL\r\n": Code.PARAM_UNKNOWN,
            b"RSET now\r\n": Code.SYNTAX,
            b"QUIT now\r\n": Code.SYNTAX,
            b"NOOP\n": Code.UNRECOGNIZED,
            b"\r\n": Code.UNRECOGNIZED,
            b"NO\rOP\r\n": Code.UNRECOGNIZED,
            b"NOOP \xff\r\n": Code.UNRECOGNIZED,
        }
        for line, code in cases.items():
            with self.subTest(line=line):
                _, reps = self.dialogue([b"EHLO x\r\n", line, b"NOOP\r\n"])
                self.assertEqual([c for c, _ in reps], [220, 250, code, Code.OK])
        _, reps = self.dialogue(
            MAIL[:2] + [b"RCPT TO:<>\r\n", b"RCPT TO:<a@b> NOTIFY=NEVER\r\n", b"DATA now\r\n"]
        )
        self.assertEqual([c for c, _ in reps][-3:], [Code.SYNTAX, Code.PARAM_UNKNOWN, Code.FAILED])

    def test_bare_lf_command_line_is_refused_not_waited_for(self) -> None:
        _, reps = self.dialogue([b"EHLO x\n", b"NOOP\r\n"])
        self.assertEqual(reps[1], (Code.UNRECOGNIZED, "Syntax error: lines must end with CRLF"))

    def test_mail_path_forms(self) -> None:
        events, reps = self.dialogue(
            [b"EHLO x\r\n", b"MAIL FROM: <@relay.a,@relay.b:u@d>  SIZE=3 AUTH=<>\r\n"]
            + [b'RCPT TO:<"john doe"@example.com>\r\n', b"RCPT TO:<Postmaster>\r\n"]
        )
        self.assertEqual([c for c, _ in reps], [220, 250, 250, 250, 250])
        mail = events[1]
        assert isinstance(mail, MailFromProposed)
        self.assertEqual((mail.address, mail.size, mail.options), ("u@d", 3, ("SIZE=3", "AUTH=<>")))
        self.assertEqual(
            [e.address for e in events if isinstance(e, RecipientProposed)],
            ['"john doe"@example.com', "Postmaster"],
        )

    def test_too_many_errors_gives_up_with_421(self) -> None:
        events, reps = self.dialogue(
            [b"EHLO x\r\n"] + [b"JUNK\r\n"] * 5 + [b"NOOP\r\n"], max_errors=3
        )
        self.assertEqual([c for c, _ in reps], [220, 250, 500, 500, 500, Code.CLOSING])
        self.assertEqual(events[-1], Quit(reply_code=421))
        # Errors found while framing lines count too.
        events, reps = self.dialogue([b"A\n", b"B\n", b"C\r\n"], max_errors=2)
        self.assertEqual([c for c, _ in reps], [220, 500, 500, Code.CLOSING])
        self.assertEqual(events, [Quit(reply_code=421)])

    def test_policy_refusals_do_not_count_toward_max_errors(self) -> None:
        # RFC 5321 §4.5.3.1.10: recipients past the limit get 452 and the
        # transaction goes on with the accepted ones, however many there are.
        rcpts = [b"RCPT TO:<r%d@example.com>\r\n" % i for i in range(160)]
        events, reps = self.dialogue(
            MAIL[:2] + rcpts + [b"DATA\r\n", b"x\r\n.\r\n", b"NOOP\r\n"],
            max_recipients=100,
            max_errors=3,
        )
        codes_ = [c for c, _ in reps]
        self.assertEqual(codes_[3:103], [Code.OK] * 100)
        self.assertEqual(codes_[103:163], [Code.TOO_MANY_RCPTS] * 60)
        self.assertEqual(codes_[163:], [Code.START_DATA, Code.OK, Code.OK])
        msg = events[-1]
        assert isinstance(msg, MessageReceived)
        self.assertEqual(len(msg.recipients), 100)
        # Other refusals of well-formed commands: 553 (non-ASCII address
        # without SMTPUTF8), 552 (declared SIZE), 530 (TLS/AUTH required),
        # 538 (AUTH over plaintext), 554 (DATA without recipients).
        addr = "j\u00f6rg@example.org".encode()
        cases: list[tuple[bytes, int, dict[str, object]]] = [
            (b"MAIL FROM:<" + addr + b">\r\n", Code.BAD_ADDRESS, {}),
            (b"MAIL FROM:<a@b> SIZE=1001\r\n", Code.TOO_BIG, {"max_message_size": 1000}),
            (b"MAIL FROM:<a@b>\r\n", Code.AUTH_REQUIRED, {"tls_required": True}),
            (b"AUTH PLAIN\r\n", Code.ENCRYPTION_REQUIRED, {"auth_mechanisms": ("PLAIN",)}),
        ]
        for line, code, options in cases:
            with self.subTest(line=line):
                _, reps = self.dialogue(
                    [b"EHLO x\r\n"] + [line] * 10 + [b"NOOP\r\n"], max_errors=3, **options
                )
                self.assertEqual([c for c, _ in reps], [220, 250] + [code] * 10 + [Code.OK])
        _, reps = self.dialogue(MAIL[:2] + [b"DATA\r\n"] * 10 + [b"NOOP\r\n"], max_errors=3)
        self.assertEqual([c for c, _ in reps][3:], [Code.FAILED] * 10 + [Code.OK])

    def test_syntax_and_sequence_errors_count_toward_max_errors(self) -> None:
        mistakes = [
            b"FROB\r\n",  # 500
            b"EHLO\r\n",  # 501
            b"EXPN x\r\n",  # 502
            b"DATA\r\n",  # 503
            b"AUTH CRAM-MD5\r\n",  # 504
            b"MAIL FROM:<a@b> RET=FULL\r\n",  # 555
        ]
        events, reps = self.dialogue(
            [b"EHLO x\r\n", *mistakes, b"NOOP\r\n"],
            max_errors=6,
            auth_mechanisms=("PLAIN",),
            auth_over_plaintext=True,
        )
        self.assertEqual(
            [c for c, _ in reps], [220, 250, 500, 501, 502, 503, 504, 555, Code.CLOSING]
        )
        self.assertEqual(events[-1], Quit(reply_code=421))

    def test_verbs_must_be_ascii_letters(self) -> None:
        # "ı".upper() == "I" and "ſ".upper() == "S": without the ASCII check
        # these would run as MAIL, RSET and QUIT.
        for line in ("MA\u0131L FROM:<a@b>", "R\u017fET", "QU\u0131T", "NOOP\u00a0", "N0OP"):
            with self.subTest(line=line):
                events, reps = self.dialogue(
                    [b"EHLO x\r\n", line.encode() + b"\r\n", b"RCPT TO:<c@d>\r\n"]
                )
                self.assertEqual([c for c, _ in reps], [220, 250, Code.UNRECOGNIZED, 503])
                self.assertEqual(events, [Hello(command="EHLO", name="x")])

    def test_arguments_split_on_ascii_space_only(self) -> None:
        cases = {
            # \x85 (NEL) and \xa0 (NBSP) are whitespace to str.split().
            "MAIL FROM:<a@b> SIZE=10\x85BODY=8BITMIME": Code.SYNTAX,
            "MAIL FROM:<a@b> SIZE=10\xa0": Code.SYNTAX,
            "MAIL FROM:<a@b> BODY=8BITMIME\tSIZE=1": Code.SYNTAX,
            # Keywords and values are ASCII: "ſ".upper() == "S", "ı".upper() == "I".
            "MAIL FROM:<a@b> \u017fMTPUTF8": Code.PARAM_UNKNOWN,
            "MAIL FROM:<a@b> BODY=8B\u0131TMIME": Code.SYNTAX,
            "MAIL FROM:<a@b> SIZE=\u0661\u0662": Code.SYNTAX,  # Arabic-Indic digits
            "RSET \xa0": Code.SYNTAX,
            "AUTH PLAIN\xa0AGEAYg==": Code.BAD_PARAMETER,
            "AUTH PLA\u0131N": Code.BAD_PARAMETER,
        }
        for line, code in cases.items():
            with self.subTest(line=line):
                _, reps = self.dialogue(
                    [b"EHLO x\r\n", line.encode() + b"\r\n", b"NOOP\r\n"],
                    auth_mechanisms=("PLAIN",),
                    auth_over_plaintext=True,
                )
                self.assertEqual([c for c, _ in reps], [220, 250, code, Code.OK])
        _, reps = self.dialogue(
            MAIL[:2] + ["RCPT TO:<c@d> \xa0\r\n".encode(), b"RCPT TO:<c@d>  \r\n"]
        )
        self.assertEqual([c for c, _ in reps][-2:], [Code.PARAM_UNKNOWN, Code.OK])
        events, reps = self.dialogue(
            [b"EHLO x\r\n", b"MAIL FROM:<a@b>  SIZE=10   BODY=8BITMIME \r\n"]
        )
        mail = events[-1]
        assert isinstance(mail, MailFromProposed)
        self.assertEqual((mail.size, mail.body), (10, "8BITMIME"))

    def test_error_classes_carry_reply_codes(self) -> None:
        m = SMTPServerConnection()
        with self.assertRaises(LocalProtocolError) as cm:
            m.accept()
        self.assertIsInstance(cm.exception, SMTPProtocolError)
        self.assertEqual(cm.exception.reply_code // 100, 4)
        with self.assertRaises(LocalProtocolError):
            m.reject(550)
        with self.assertRaises(LocalProtocolError):
            m.tls_established()

    def test_constructor_validation(self) -> None:
        for kwargs in (
            {"max_recipients": 99},
            {"max_message_size": 0},
            {"auth_mechanisms": ("GSSAPI",)},
            {"hostname": "two words"},
            {"max_errors": 0},
        ):
            with self.subTest(kwargs=kwargs), self.assertRaises(ValueError):
                SMTPServerConnection(**kwargs)  # type: ignore[arg-type]
        # Content is held in memory: there is no "no limit".
        for size in (None, 10.5, "1000", True):
            with self.subTest(max_message_size=size), self.assertRaises(TypeError):
                SMTPServerConnection(max_message_size=size)  # type: ignore[arg-type]


class TestLimits(MachineTestCase):
    def test_command_line_limit_is_512_octets_with_crlf(self) -> None:
        ok = b"NOOP " + b"x" * (COMMAND_LINE_LIMIT - 7) + b"\r\n"
        too_long = b"NOOP " + b"x" * (COMMAND_LINE_LIMIT - 6) + b"\r\n"
        self.assertEqual(len(ok), COMMAND_LINE_LIMIT)
        _, reps = self.dialogue([ok, too_long, b"NOOP\r\n"])
        self.assertEqual([c for c, _ in reps], [220, Code.OK, Code.UNRECOGNIZED, Code.OK])
        self.assertIn("too long", reps[2][1])

    def test_mail_line_may_carry_parameters_beyond_512(self) -> None:
        local = b"a" * 64
        line = (
            b"MAIL FROM:<" + local + b"@" + b"d" * 420 + b"> SIZE=1000 BODY=8BITMIME SMTPUTF8\r\n"
        )
        self.assertGreater(len(line), COMMAND_LINE_LIMIT)
        _, reps = self.dialogue([b"EHLO x\r\n", line])
        self.assertEqual(reps[-1][0], Code.OK)

    def test_endless_command_line_is_dropped_and_memory_bounded(self) -> None:
        m = SMTPServerConnection()
        chunk = b"A" * 4096
        for _ in range(200):  # 800 KiB without a newline
            m.receive_data(chunk)
            self.assertIs(m.next_event(), NEED_DATA)
            self.assertLessEqual(len(m._in), AUTH_LINE_LIMIT + len(chunk))
        m.receive_data(b"tail\r\nNOOP\r\n")
        self.assertIs(m.next_event(), NEED_DATA)
        self.assertEqual(codes(m.data_to_send()), [220, Code.UNRECOGNIZED, Code.OK])

    def test_text_line_limit(self) -> None:
        ok = b"x" * (TEXT_LINE_LIMIT - 2) + b"\r\n"
        dotted = b"." + ok  # the transparency dot does not count
        events, reps = self.dialogue(MAIL + [b"DATA\r\n", ok, dotted, b".\r\n"])
        msg = events[-1]
        assert isinstance(msg, MessageReceived)
        self.assertEqual(msg.data, ok + ok)
        too_long = b"x" * (TEXT_LINE_LIMIT - 1) + b"\r\n"
        events, reps = self.dialogue(MAIL + [b"DATA\r\n", ok, too_long, ok, b".\r\n", b"NOOP\r\n"])
        self.assertFalse([e for e in events if isinstance(e, MessageReceived)])
        self.assertEqual(
            events[-1],
            MessageRefused(
                reason="line-length",
                reply_code=500,
                mail_from="alice@example.org",
                recipients=("bob@example.net",),
            ),
        )
        self.assertEqual([c for c, _ in reps][-2:], [Code.UNRECOGNIZED, Code.OK])

    def test_endless_text_line_is_dropped_and_memory_bounded(self) -> None:
        m, events, _ = feed(MAIL + [b"DATA\r\n"])
        for _ in range(300):  # 1.2 MB, one line
            m.receive_data(b"y" * 4096)
            self.assertIs(m.next_event(), NEED_DATA)
            self.assertLessEqual(len(m._in), TEXT_LINE_LIMIT + 4096)
            # The whole array too: the consumed prefix is compacted away.
            self.assertLessEqual(len(m._in.data), COMPACT_AT + TEXT_LINE_LIMIT + 2 * 4096)
            self.assertEqual(stored(m), 0)
        m, events, out = feed([b"\r\nmore\r\n.\r\nNOOP\r\n"], machine=m)
        self.assertEqual(codes(out)[-2:], [Code.UNRECOGNIZED, Code.OK])
        self.assertIsInstance(events[0], MessageRefused)

    def test_declared_size_over_limit_is_refused_at_mail(self) -> None:
        _, reps = self.dialogue(
            [b"EHLO x\r\n", b"MAIL FROM:<a@b> SIZE=101\r\n", b"MAIL FROM:<a@b> SIZE=100\r\n"],
            max_message_size=100,
        )
        self.assertEqual([c for c, _ in reps], [220, 250, Code.TOO_BIG, Code.OK])
        self.assertTrue(reps[2][1].startswith("5.3.4 "))

    def test_content_over_limit_is_refused_after_data(self) -> None:
        line = b"z" * 48 + b"\r\n"  # 50 octets
        events, reps = self.dialogue(MAIL + [b"DATA\r\n", line * 2, b".\r\n"], max_message_size=100)
        self.assertIsInstance(events[-1], MessageReceived)
        events, reps = self.dialogue(
            MAIL + [b"DATA\r\n", line * 2 + b"!\r\n", b".\r\n", b"NOOP\r\n"], max_message_size=100
        )
        self.assertEqual([c for c, _ in reps][-2:], [Code.TOO_BIG, Code.OK])
        refused = events[-1]
        assert isinstance(refused, MessageRefused)
        self.assertEqual((refused.reason, refused.reply_code), ("size", 552))

    def test_final_crlf_is_not_counted_in_the_size(self) -> None:
        # smtplib declares SIZE=len(message), then adds the CRLF that must end
        # the last line before "."; that CRLF is not counted, so a message of
        # exactly the limit passes MAIL and DATA alike.  Transparency dots are
        # not counted either (RFC 1870 §4).
        crlf = b"\r\n"
        cases = [
            (b"a" * 99 + crlf + b"b" * 99, True),  # 200 octets, CRLF added when sent
            (b"a" * 99 + crlf + b"b" * 97 + crlf, True),  # 200 with its final CRLF
            (b"a" * 99 + crlf + b"b" * 99 + crlf, True),  # 200 before its final CRLF
            (b"." + b"a" * 98 + crlf + b"." * 99, True),  # 200, 202 on the wire
            (b"a" * 99 + crlf + b"b" * 100, False),  # 201
            (b"a" * 99 + crlf + b"b" * 100 + crlf, False),  # 201 before its final CRLF
            (b"." + b"a" * 99 + crlf + b"." * 99, False),  # 201
        ]
        for greeting in (b"EHLO x\r\n", b"HELO x\r\n"):  # with SIZE= and without
            for body, delivered in cases:
                with self.subTest(greeting=greeting, body=body):
                    if not body.endswith(crlf):
                        body += crlf
                    stuffed = b"".join(
                        b"." + line if line[:1] == b"." else line
                        for line in body.splitlines(keepends=True)
                    )
                    events, reps = self.dialogue(
                        [greeting, *MAIL[1:], b"DATA\r\n", stuffed, b".\r\n"],
                        max_message_size=200,
                    )
                    if delivered:
                        msg = events[-1]
                        assert isinstance(msg, MessageReceived)
                        self.assertEqual(msg.data, body)
                    else:
                        self.assertEqual(reps[-1][0], Code.TOO_BIG)
                        refused = events[-1]
                        assert isinstance(refused, MessageRefused)
                        self.assertEqual(refused.reason, "size")

    def test_size_limit_bounds_memory(self) -> None:
        m, _, _ = feed(MAIL + [b"DATA\r\n"], max_message_size=10_000)
        for _ in range(150):
            m.receive_data(b"q" * 98 + b"\r\n")
            m.next_event()
        self.assertLessEqual(stored(m), 10_000)
        m, events, out = feed([b".\r\n"], machine=m)
        self.assertEqual(codes(out), [Code.TOO_BIG])

    def test_at_least_100_recipients(self) -> None:
        rcpts = [b"RCPT TO:<r%d@example.com>\r\n" % i for i in range(101)]
        events, reps = self.dialogue(
            MAIL[:2] + rcpts + [b"DATA\r\n", b"x\r\n.\r\n"], max_recipients=100
        )
        self.assertEqual([c for c, _ in reps][3:103], [Code.OK] * 100)
        self.assertEqual(reps[103][0], Code.TOO_MANY_RCPTS)
        msg = events[-1]
        assert isinstance(msg, MessageReceived)
        self.assertEqual(len(msg.recipients), 100)
        self.assertEqual(len(msg.recipient_options), 100)

    def test_big_message_is_linear(self) -> None:
        line = b"0123456789" * 7 + b"\r\n"
        body = line * (6 * 1024 * 1024 // len(line))
        m, _, _ = feed(MAIL + [b"DATA\r\n"])
        start = time.perf_counter()
        events: list[Event] = []
        for i in range(0, len(body), 65536):
            m.receive_data(body[i : i + 65536])
            pump(m, events, None)
        m.receive_data(b".\r\n")
        pump(m, events, None)
        elapsed = time.perf_counter() - start
        msg = events[-1]
        assert isinstance(msg, MessageReceived)
        self.assertEqual(msg.data, body)
        self.assertLess(elapsed, 5.0)


class TestSharedReceiveBuffer(MachineTestCase):
    """The machine keeps its input in protocols._buffer.ReceiveBuffer, the
    buffer the HTTP machine uses: consumed bytes are compacted away, and a
    long pipelined dialogue does not grow the array."""

    def test_machine_uses_the_shared_buffer(self) -> None:
        from protocols._buffer import ReceiveBuffer

        self.assertIsInstance(SMTPServerConnection()._in, ReceiveBuffer)

    def test_long_dialogue_keeps_the_array_bounded(self) -> None:
        m = SMTPServerConnection()
        transaction = b"".join(MAIL) + b"DATA\r\n" + b"line\r\n" * 50 + b".\r\nRSET\r\n"
        events: list[Event] = []
        for _ in range(2_000):  # ~1 MB in all
            m.receive_data(transaction)
            pump(m, events, None)
            self.assertLessEqual(len(m._in.data), COMPACT_AT + 2 * len(transaction))
            m.data_to_send()
        self.assertEqual(sum(isinstance(e, MessageReceived) for e in events), 2_000)
        self.assertEqual(len(m._in), 0)


class TestSmuggling(MachineTestCase):
    """End of data is CRLF.CRLF and nothing else (SMTP smuggling, 2023)."""

    SMUGGLED = b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\nforged\r\n.\r\n"

    def test_bare_endings_never_end_data(self) -> None:
        for fake_end in (b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r", b"\r.\r\n"):
            with self.subTest(fake_end=fake_end):
                content = b"Subject: real\r\n\r\nbody" + fake_end + self.SMUGGLED
                events, reps = self.dialogue(MAIL + [b"DATA\r\n", content])
                # One transaction only: the "forged" message is content of
                # the first, and the first is refused for its bare endings.
                self.assertFalse([e for e in events if isinstance(e, MessageReceived)])
                self.assertFalse([e for e in events if isinstance(e, MailFromProposed)][1:])
                refused = events[-1]
                assert isinstance(refused, MessageRefused)
                self.assertEqual(refused.reason, "bare-line-ending")
                self.assertEqual(reps[-1][0], Code.FAILED)

    def test_verdict_does_not_depend_on_the_split(self) -> None:
        # A too-long line first, a bare LF later: every feeding mode (see
        # dialogue()) must give the same reason, the first by priority:
        # size, then line length, then bare line ending.
        content = b"x" * 1500 + b"\r\n" + b"a\nb\r\n" + b"z" * 2000 + b"\r\n.\r\n"
        cases = [
            (content, 1000, "size", Code.TOO_BIG),
            (content, 10_000, "line-length", Code.UNRECOGNIZED),
            (b"a\nb\r\n" + b"z" * 900 + b"\r\n.\r\n", 800, "size", Code.TOO_BIG),
            (b"a\nb\r\n" + b"z" * 900 + b"\r\n.\r\n", 1000, "bare-line-ending", Code.FAILED),
            # Only the dropped head of an endless line takes it over the limit.
            (b"q" * 1500 + b"\r\n.\r\n", 1400, "size", Code.TOO_BIG),
            (b"q" * 1500 + b"\r\n.\r\n", 1500, "line-length", Code.UNRECOGNIZED),
        ]
        for data, limit, reason, code in cases:
            with self.subTest(limit=limit, reason=reason):
                events, reps = self.dialogue(MAIL + [b"DATA\r\n", data], max_message_size=limit)
                refused = events[-1]
                assert isinstance(refused, MessageRefused)
                self.assertEqual((refused.reason, refused.reply_code), (reason, code))
                self.assertEqual(reps[-1][0], code)

    def test_refusal_reason_same_for_random_splits(self) -> None:
        # The transparency dot of an over-long line is not counted, whether
        # the line is dropped as it arrives or seen whole: "." + 1001 octets
        # + CRLF is 1001 octets of content once its final CRLF is left out.
        line = b"." + b"w" * 1001 + b"\r\n"
        data = b"".join(MAIL) + b"DATA\r\n" + line + b".\r\nNOOP\r\n"
        rng = random.Random(1870)
        for limit, reason in ((1000, "size"), (1001, "line-length")):
            _, events0, out0 = feed([data], max_message_size=limit)
            refused = events0[-1]
            assert isinstance(refused, MessageRefused)
            self.assertEqual(refused.reason, reason)
            for cuts in [list(range(1, len(data)))] + [
                sorted(rng.sample(range(1, len(data)), rng.randint(1, 12))) for _ in range(100)
            ]:
                pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
                _, events, out = feed(pieces, max_message_size=limit)
                self.assertEqual((events, out), (events0, out0), (limit, cuts))

    def test_bare_endings_kept_verbatim_when_allowed(self) -> None:
        content = b"a\nb\rc\n.\nd\r\n..e\r\n.\r\n"
        events, _ = self.dialogue(MAIL + [b"DATA\r\n", content], allow_bare_line_endings=True)
        msg = events[-1]
        assert isinstance(msg, MessageReceived)
        self.assertEqual(msg.data, b"a\nb\rc\n.\nd\r\n.e\r\n")

    def test_random_splits_give_identical_results(self) -> None:
        dialogue = b"".join(MAIL) + b"DATA\r\n" + b"l1\r\n..\r\n.x\r\n" * 20 + b".\r\nQUIT\r\n"
        _, events0, out0 = feed([dialogue])
        rng = random.Random(5321)
        for _ in range(200):
            cuts = sorted(rng.sample(range(1, len(dialogue)), rng.randint(1, 12)))
            pieces = [
                dialogue[a:b] for a, b in zip([0, *cuts], [*cuts, len(dialogue)], strict=True)
            ]
            _, events, out = feed(pieces)
            self.assertEqual((events, out), (events0, out0), cuts)


class TestFuzz(unittest.TestCase):
    """Random soups of protocol fragments: the machine never raises, always
    answers with well-formed replies, keeps its buffers bounded, and gives
    the same result however the bytes are split."""

    FRAGMENTS = [
        b"EHLO x\r\n",
        b"HELO y\r\n",
        b"MAIL FROM:<a@b>\r\n",
        b"MAIL FROM:<> SIZE=10\r\n",
        b"RCPT TO:<c@d>\r\n",
        b"DATA\r\n",
        b".\r\n",
        b"..\r\n",
        b"\r\n.\r\n",
        b"\n.\n",
        b"\r",
        b"\n",
        b".",
        b"RSET\r\n",
        b"NOOP\r\n",
        b"QUIT\r\n",
        b"STARTTLS\r\n",
        b"AUTH PLAIN\r\n",
        b"AUTH LOGIN dQ==\r\n",
        b"*\r\n",
        b"=\r\n",
        b"AGVAZg==\r\n",
        b"VRFY z\r\n",
        b"\xff\xfe",
        b"x" * 700,
        b"y" * 1200,
        b"text line\r\n",
        "\u00e9\r\n".encode(),
        b"\x00",
    ]

    TRANSACTION = b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\n"

    def soup(self, rng: random.Random) -> bytes:
        parts = [b"EHLO fuzz\r\n"] if rng.random() < 0.8 else []
        for _ in range(rng.randint(1, 60)):
            r = rng.random()
            if r < 0.2:
                parts.append(self.TRANSACTION)
            elif r < 0.35:
                parts.append(b".\r\n")
            else:
                fragment = rng.choice(self.FRAGMENTS)
                if fragment == b"QUIT\r\n" and rng.random() < 0.9:
                    continue
                parts.append(fragment)
        return b"".join(parts)

    def run_machine(self, chunks: list[bytes], rng: random.Random) -> tuple[list[Event], bytes]:
        m = SMTPServerConnection(
            starttls=True, auth_mechanisms=("PLAIN", "LOGIN"), auth_over_plaintext=True
        )
        events: list[Event] = []
        out = bytearray(m.data_to_send())
        for chunk in [*chunks, b""]:
            if m.state is State.CLOSED and chunk:
                continue
            m.receive_data(chunk)
            for _ in range(10_000):
                ev = m.next_event()
                if ev is NEED_DATA:
                    break
                if ev is YIELD:
                    continue
                if ev is PAUSED:
                    self.assertIs(m.state, State.TLS_PENDING)
                    m.tls_established()
                    continue
                assert isinstance(ev, Event)
                events.append(ev)
                if isinstance(ev, ConnectionClosed):
                    break
                if isinstance(ev, Proposal):
                    # Decisions depend only on the event, never on the split.
                    if zlib.crc32(repr(ev).encode()) % 3 == 0:
                        m.reject(550, "no")
                    else:
                        m.accept()
            self.assertLessEqual(len(m._in), AUTH_LINE_LIMIT + len(chunk) + 8)
            out += m.data_to_send()
        return events, bytes(out)

    def test_random_soups(self) -> None:
        rng = random.Random(2023)
        deadline = time.monotonic() + 20
        for _ in range(300):
            if time.monotonic() > deadline:
                break
            data = self.soup(rng)
            events0, out0 = self.run_machine([data], rng)
            replies(out0)  # well-formed: every reply line is "ddd " or "ddd-"
            cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 8))))
            pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
            events, out = self.run_machine(pieces, rng)
            if b"STARTTLS" not in data:  # STARTTLS discards by design what was buffered
                self.assertEqual((events, out), (events0, out0), data)


class TestCommandBudget(MachineTestCase):
    """One next_event() call answers at most COMMANDS_PER_CALL commands on
    its own, then returns YIELD; the rest is answered by later calls, in
    order, with nothing lost."""

    def calls(self, m: SMTPServerConnection) -> list[tuple[object, list[int]]]:
        """Call next_event() until NEED_DATA; (result, reply codes) per call."""
        result: list[tuple[object, list[int]]] = []
        for _ in range(10_000):
            ev = m.next_event()
            result.append((ev, codes(m.data_to_send())))
            if ev is NEED_DATA:
                return result
        raise AssertionError("machine never needed data")

    def test_flood_of_noops_is_answered_in_bounded_calls(self) -> None:
        m = SMTPServerConnection()
        m.data_to_send()
        m.receive_data(b"NOOP\r\n" * 10_000)
        calls = self.calls(m)
        for _, reps in calls:
            self.assertLessEqual(len(reps), COMMANDS_PER_CALL)
        self.assertEqual([ev for ev, _ in calls[:-1]], [YIELD] * (len(calls) - 1))
        self.assertEqual(sum(len(reps) for _, reps in calls), 10_000)
        self.assertEqual({code for _, reps in calls for code in reps}, {Code.OK})
        self.assertEqual(len(calls), -(-10_000 // COMMANDS_PER_CALL))  # the last one: NEED_DATA

    def test_errors_and_bad_lines_count_too(self) -> None:
        m = SMTPServerConnection(max_errors=100_000)
        m.data_to_send()
        lines = [b"FROB\r\n", b"NOOP\n", b"x" * 600 + b"\r\n", b"RCPT TO:<a@b>\r\n"]
        m.receive_data(b"".join(lines) * 2_500)
        calls = self.calls(m)
        self.assertTrue(all(len(reps) <= COMMANDS_PER_CALL for _, reps in calls))
        self.assertEqual([code for _, reps in calls for code in reps], [500, 500, 500, 503] * 2_500)

    def test_sasl_challenges_count_too(self) -> None:
        m = SMTPServerConnection(
            auth_mechanisms=("LOGIN",), auth_over_plaintext=True, max_errors=100_000
        )
        m.receive_data(b"EHLO x\r\n" + b"AUTH LOGIN\r\n*\r\n" * 100)
        self.assertIsInstance(m.next_event(), Hello)
        m.data_to_send()
        calls = self.calls(m)
        self.assertTrue(all(len(reps) <= COMMANDS_PER_CALL for _, reps in calls))
        self.assertEqual([c for _, reps in calls for c in reps], [334, 501] * 100)

    def test_events_and_proposals_still_come_between_yields(self) -> None:
        noops = [b"NOOP\r\n"] * 150
        commands = [*noops, *MAIL, *noops, b"DATA\r\n", b"hi\r\n.\r\n", *noops, b"QUIT\r\n"]
        events, reps = self.dialogue(commands)
        self.assertEqual(
            [type(e) for e in events],
            [Hello, MailFromProposed, RecipientProposed, MessageReceived, Quit],
        )
        self.assertEqual(len(reps), 1 + 150 + 3 + 150 + 2 + 150 + 1)
        self.assertEqual(reps[-1][0], Code.BYE)

    def test_trailing_partial_command_after_a_flood(self) -> None:
        m = SMTPServerConnection()
        m.data_to_send()
        m.receive_data(b"NOOP\r\n" * 200 + b"EHLO cli")
        calls = self.calls(m)
        self.assertEqual(sum(len(reps) for _, reps in calls), 200)
        m.receive_data(b"ent\r\n")
        self.assertEqual(m.next_event(), Hello(command="EHLO", name="client"))

    def test_eof_behind_a_flood_is_seen_after_it(self) -> None:
        m = SMTPServerConnection()
        m.data_to_send()
        m.receive_data(b"NOOP\r\n" * 200)
        m.receive_data(b"")
        results = []
        for _ in range(100):
            ev = m.next_event()
            results.append(ev)
            if isinstance(ev, ConnectionClosed):
                break
        self.assertEqual(results, [YIELD, YIELD, YIELD, ConnectionClosed(aborted=False)])
        self.assertEqual(codes(m.data_to_send()), [Code.OK] * 200)

    def test_pending_output_counts_queued_octets(self) -> None:
        m = SMTPServerConnection()
        self.assertEqual(m.pending_output, len(b"220 localhost ESMTP testservers\r\n"))
        m.data_to_send()
        self.assertEqual(m.pending_output, 0)
        m.receive_data(b"NOOP\r\n" * 3)
        m.next_event()
        self.assertEqual(m.pending_output, 3 * len(b"250 OK\r\n"))

    def test_public_names(self) -> None:
        import protocols.smtp

        self.assertIs(protocols.smtp.YIELD, YIELD)
        self.assertEqual(protocols.smtp.COMMANDS_PER_CALL, COMMANDS_PER_CALL)


class TestDecisions(MachineTestCase):
    def test_machine_pauses_until_answered(self) -> None:
        m = SMTPServerConnection()
        m.receive_data(b"EHLO x\r\nMAIL FROM:<a@b>\r\nNOOP\r\n")
        self.assertIsInstance(m.next_event(), Hello)
        proposal = m.next_event()
        self.assertIsInstance(proposal, MailFromProposed)
        self.assertIs(m.pending, proposal)
        for _ in range(3):
            self.assertIs(m.next_event(), PAUSED)
        self.assertEqual(codes(m.data_to_send()), [220, 250])  # NOOP not answered yet
        m.receive_data(b"RCPT TO:<c@d>\r\n")
        self.assertIs(m.next_event(), PAUSED)
        m.accept()
        self.assertIsNone(m.pending)
        self.assertIsInstance(m.next_event(), RecipientProposed)
        self.assertEqual(codes(m.data_to_send()), [250, 250])
        m.reject(550, "5.1.1 no such user")
        self.assertIs(m.next_event(), NEED_DATA)
        self.assertEqual(m.data_to_send(), b"550 5.1.1 no such user\r\n")
        self.assertIs(m.state, State.MAIL)

    def test_rejections_with_chosen_codes(self) -> None:
        def decide(p: Proposal) -> tuple[int, str] | None:
            if isinstance(p, RecipientProposed) and p.address.startswith("bad"):
                return (550, "No such user here")
            if isinstance(p, MessageReceived):
                return (451, "Try again later\nreally")
            return None

        events, reps = self.dialogue(
            MAIL + [b"RCPT TO:<bad@x>\r\n", b"DATA\r\n", b"hi\r\n.\r\n", b"NOOP\r\n"], decide=decide
        )
        self.assertEqual(reps[4], (Code.REJECTED, "5.0.0 No such user here"))
        self.assertEqual(reps[6], (Code.TRY_LATER, "4.0.0 Try again later\n4.0.0 really"))
        self.assertEqual(reps[7][0], Code.OK)
        msg = [e for e in events if isinstance(e, MessageReceived)][0]
        self.assertEqual(msg.recipients, ("bob@example.net",))

    def test_rejected_sender_keeps_ready_state(self) -> None:
        _, reps = self.dialogue(
            [
                b"EHLO x\r\n",
                b"MAIL FROM:<spam@x>\r\n",
                b"RCPT TO:<a@b>\r\n",
                b"MAIL FROM:<ok@x>\r\n",
            ],
            decide=lambda p: (553, "go away") if getattr(p, "address", "") == "spam@x" else None,
        )
        self.assertEqual([c for c, _ in reps], [220, 250, 553, Code.BAD_SEQUENCE, 250])

    def test_default_rejections(self) -> None:
        _, reps = self.dialogue(
            MAIL + [b"DATA\r\nx\r\n.\r\n"],
            decide=lambda p: None if not isinstance(p, MessageReceived) else (554, "5.6.0 nope"),
        )
        self.assertEqual(reps[-1], (554, "5.6.0 nope"))
        m = SMTPServerConnection()
        m.receive_data(b"EHLO x\r\nMAIL FROM:<a@b>\r\n")
        self.assertIsInstance(m.next_event(), Hello)
        self.assertIsInstance(m.next_event(), MailFromProposed)
        m.data_to_send()
        m.reject()
        self.assertEqual(m.data_to_send(), b"550 5.7.1 Sender rejected\r\n")

    def test_reject_code_is_validated(self) -> None:
        m, _, _ = feed(MAIL[:1] + [b"MAIL FROM:<a@b>\r\n"], decide=lambda p: None)
        m.receive_data(b"RCPT TO:<c@d>\r\n")
        self.assertIsInstance(m.next_event(), RecipientProposed)
        with self.assertRaises(ValueError):
            m.reject(250)
        self.assertIsNotNone(m.pending)
        m.reject(450)
        self.assertEqual(codes(m.data_to_send()), [450])

    def test_shutdown_sends_421_and_stops(self) -> None:
        m, _, _ = feed(MAIL)
        m.shutdown("server stopping")
        m.shutdown()
        self.assertEqual(m.data_to_send().split(b"\r\n")[-2], b"421 4.3.0 server stopping")
        m.receive_data(b"DATA\r\n")
        self.assertIs(m.next_event(), NEED_DATA)
        self.assertEqual(m.data_to_send(), b"")


class TestEOF(MachineTestCase):
    def test_client_vanishing_mid_data_delivers_nothing(self) -> None:
        events, _ = self.dialogue(MAIL + [b"DATA\r\n", b"half a mess"], eof=True)
        self.assertFalse([e for e in events if isinstance(e, MessageReceived)])
        self.assertEqual(events[-1], ConnectionClosed(aborted=True))

    def test_eof_after_complete_pipelined_input_processes_it_first(self) -> None:
        events, reps = self.dialogue(MAIL + [b"DATA\r\nok\r\n.\r\nNOOP"], eof=True)
        self.assertIsInstance(events[-2], MessageReceived)
        self.assertEqual(events[-1], ConnectionClosed(aborted=False))

    def test_closed_machine(self) -> None:
        m, events, _ = feed([b"EHLO x\r\n"], eof=True)
        self.assertEqual(m.next_event(), ConnectionClosed(aborted=False))
        self.assertEqual(m.next_event(), ConnectionClosed(aborted=False))
        self.assertIs(m.state, State.CLOSED)
        with self.assertRaises(ConnectionClosedError):
            m.receive_data(b"NOOP\r\n")


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


class TestStartTLS(MachineTestCase):
    def test_upgrade_discards_pipelined_plaintext_and_resets(self) -> None:
        m = SMTPServerConnection(starttls=True, auth_mechanisms=("PLAIN",))
        m.receive_data(b"EHLO x\r\n")
        self.assertIsInstance(m.next_event(), Hello)
        self.assertIn("STARTTLS", replies(m.data_to_send())[-1][1].split("\n"))
        m.receive_data(b"STARTTLS\r\nMAIL FROM:<injected@x>\r\n")
        self.assertEqual(m.next_event(), StartTLSRequested())
        m.accept()
        self.assertEqual(m.data_to_send(), b"220 2.0.0 Ready to start TLS\r\n")
        self.assertIs(m.next_event(), PAUSED)
        self.assertIs(m.state, State.TLS_PENDING)
        m.receive_data(b"RCPT TO:<more-injected@x>\r\n")  # plaintext before the handshake
        self.assertIs(m.next_event(), PAUSED)
        m.tls_established()
        self.assertTrue(m.tls_active)
        self.assertIsNone(m.helo_name)
        m.receive_data(b"MAIL FROM:<a@b>\r\nEHLO y\r\nSTARTTLS\r\n")
        self.assertIsInstance(m.next_event(), Hello)
        self.assertIs(m.next_event(), NEED_DATA)
        reps = replies(m.data_to_send())
        self.assertEqual([c for c, _ in reps], [Code.BAD_SEQUENCE, 250, Code.BAD_SEQUENCE])
        keywords = reps[1][1].split("\n")
        self.assertNotIn("STARTTLS", keywords)
        self.assertIn("AUTH PLAIN", keywords)

    def test_starttls_refusals(self) -> None:
        _, reps = self.dialogue([b"EHLO x\r\n", b"STARTTLS\r\n"])
        self.assertEqual(reps[-1][0], Code.NOT_IMPLEMENTED)
        _, reps = self.dialogue([b"EHLO x\r\n", b"STARTTLS now\r\n"], starttls=True)
        self.assertEqual(reps[-1][0], Code.SYNTAX)
        _, reps = self.dialogue(
            [b"EHLO x\r\n", b"STARTTLS\r\n", b"NOOP\r\n"],
            starttls=True,
            decide=lambda p: (454, "no"),
        )
        self.assertEqual([c for c, _ in reps][-2:], [Code.TLS_UNAVAILABLE, Code.OK])
        _, reps = self.dialogue([b"EHLO x\r\n", b"STARTTLS\r\n"], starttls=True, tls_active=True)
        self.assertEqual(reps[-1][0], Code.BAD_SEQUENCE)

    def test_tls_required(self) -> None:
        _, reps = self.dialogue(MAIL[:2], starttls=True, tls_required=True)
        self.assertEqual(reps[-1][0], Code.AUTH_REQUIRED)
        _, reps = self.dialogue(MAIL[:2], tls_active=True, tls_required=True)
        self.assertEqual(reps[-1][0], Code.OK)


class TestAuth(MachineTestCase):
    OPTS: dict[str, object] = {"auth_mechanisms": ("PLAIN", "LOGIN"), "tls_active": True}

    def auth(
        self, lines: list[bytes], **kwargs: object
    ) -> tuple[list[Event], list[tuple[int, str]]]:
        opts = {**self.OPTS, **kwargs}
        return self.dialogue([b"EHLO x\r\n", *lines, b"NOOP\r\n"], **opts)

    def test_plain_with_initial_response(self) -> None:
        events, reps = self.auth([b"AUTH PLAIN " + b64(b"admin\0user\0s\xc3\xa9cret") + b"\r\n"])
        self.assertEqual(
            events[-1],
            AuthAttempt(
                mechanism="PLAIN",
                username="user",
                password="s\u00e9cret",
                authzid="admin",
                initial_response=True,
            ),
        )
        self.assertEqual([c for c, _ in reps][-2:], [Code.AUTH_OK, Code.OK])

    def test_plain_with_challenge(self) -> None:
        events, reps = self.auth([b"AUTH PLAIN\r\n", b64(b"\0u\0p") + b"\r\n"])
        self.assertEqual(reps[2], (Code.AUTH_CONTINUE, ""))
        self.assertEqual(events[-1], AuthAttempt(mechanism="PLAIN", username="u", password="p"))

    def test_login(self) -> None:
        events, reps = self.auth([b"AUTH LOGIN\r\n", b64(b"u") + b"\r\n", b64(b"p") + b"\r\n"])
        self.assertEqual(reps[2], (Code.AUTH_CONTINUE, "VXNlcm5hbWU6"))
        self.assertEqual(reps[3], (Code.AUTH_CONTINUE, "UGFzc3dvcmQ6"))
        self.assertEqual(events[-1], AuthAttempt(mechanism="LOGIN", username="u", password="p"))
        events, reps = self.auth([b"AUTH LOGIN " + b64(b"u") + b"\r\n", b"=\r\n"])
        self.assertEqual(
            events[-1],
            AuthAttempt(mechanism="LOGIN", username="u", password="", initial_response=True),
        )
        self.assertEqual([c for c, _ in reps][-3:], [Code.AUTH_CONTINUE, Code.AUTH_OK, Code.OK])

    def test_failures(self) -> None:
        cases: dict[tuple[bytes, ...], int] = {
            (b"AUTH PLAIN =\r\n",): Code.SYNTAX,  # empty PLAIN response is malformed
            (b"AUTH PLAIN !!!\r\n",): Code.SYNTAX,
            (b"AUTH PLAIN\r\n", b"*\r\n"): Code.SYNTAX,
            (b"AUTH LOGIN\r\n", b"*\r\n"): Code.SYNTAX,
            (b"AUTH LOGIN\r\n", b"\xff\r\n"): Code.SYNTAX,
            (b"AUTH PLAIN " + b64(b"no-nuls") + b"\r\n",): Code.SYNTAX,
            (b"AUTH PLAIN " + b64(b"\0\xff\0p") + b"\r\n",): Code.SYNTAX,
            (b"AUTH CRAM-MD5\r\n",): Code.BAD_PARAMETER,
            (b"AUTH\r\n",): Code.SYNTAX,
            (b"AUTH PLAIN a b\r\n",): Code.SYNTAX,
        }
        for lines, code in cases.items():
            with self.subTest(lines=lines):
                _, reps = self.auth(list(lines))
                self.assertEqual([c for c, _ in reps][-2:], [code, Code.OK])

    def test_rejected_credentials(self) -> None:
        events, reps = self.auth(
            [b"AUTH PLAIN " + b64(b"\0u\0bad") + b"\r\n", b"AUTH LOGIN\r\n", b"=\r\n", b"=\r\n"],
            decide=lambda p: (535, "") if p.mechanism == "PLAIN" else (454, "4.7.0 later"),  # type: ignore[attr-defined]
        )
        self.assertEqual(reps[2], (Code.AUTH_FAILED, "5.0.0"))
        self.assertEqual(reps[5], (Code.TLS_UNAVAILABLE, "4.7.0 later"))
        self.assertEqual(events[-1], AuthAttempt(mechanism="LOGIN", username="", password=""))
        self.assertEqual(reps[-1][0], Code.OK)

    def test_retry_after_failure_starts_afresh(self) -> None:
        def decide(p: Proposal) -> tuple[int, str] | None:
            return (535, "no") if isinstance(p, AuthAttempt) and p.password == "bad" else None

        login = [b"AUTH LOGIN " + b64(b"u") + b"\r\n", b64(b"bad") + b"\r\n"]
        events, reps = self.auth(login + [login[0], b64(b"good") + b"\r\n"], decide=decide)
        attempts = [e for e in events if isinstance(e, AuthAttempt)]
        self.assertEqual(
            [(a.username, a.password) for a in attempts], [("u", "bad"), ("u", "good")]
        )
        self.assertEqual([c for c, _ in reps][2:], [334, 535, 334, Code.AUTH_OK, Code.OK])

    def test_after_success(self) -> None:
        m, _, out = feed(
            [b"EHLO x\r\nAUTH PLAIN " + b64(b"\0u\0p") + b"\r\nAUTH PLAIN\r\n"], **self.OPTS
        )  # type: ignore[arg-type]
        self.assertEqual(m.authenticated_as, "u")
        self.assertEqual(codes(out)[-2:], [Code.AUTH_OK, Code.BAD_SEQUENCE])

    def test_not_offered_over_plaintext_unless_allowed(self) -> None:
        events, reps = self.dialogue(
            [b"EHLO x\r\n", b"AUTH PLAIN " + b64(b"\0u\0p") + b"\r\n"], auth_mechanisms=("PLAIN",)
        )
        self.assertNotIn("AUTH PLAIN", reps[1][1].split("\n"))
        self.assertEqual(reps[-1][0], Code.ENCRYPTION_REQUIRED)
        self.assertFalse([e for e in events if isinstance(e, AuthAttempt)])
        _, reps = self.dialogue(
            [b"EHLO x\r\n", b"AUTH PLAIN " + b64(b"\0u\0p") + b"\r\n"],
            auth_mechanisms=("PLAIN",),
            auth_over_plaintext=True,
        )
        self.assertIn("AUTH PLAIN", reps[1][1].split("\n"))
        self.assertEqual(reps[-1][0], Code.AUTH_OK)

    def test_sequence(self) -> None:
        _, reps = self.dialogue([b"HELO x\r\n", b"AUTH PLAIN\r\n"], **self.OPTS)
        self.assertEqual(reps[-1][0], Code.BAD_SEQUENCE)
        _, reps = self.dialogue(MAIL[:2] + [b"AUTH PLAIN\r\n"], **self.OPTS)
        self.assertEqual(reps[-1][0], Code.BAD_SEQUENCE)
        _, reps = self.dialogue([b"EHLO x\r\n", b"AUTH PLAIN\r\n"], tls_active=True)
        self.assertEqual(reps[-1][0], Code.NOT_IMPLEMENTED)

    def test_auth_required(self) -> None:
        _, reps = self.dialogue(
            [
                b"EHLO x\r\n",
                b"MAIL FROM:<a@b>\r\n",
                b"AUTH PLAIN " + b64(b"\0u\0p") + b"\r\n",
                b"MAIL FROM:<a@b>\r\n",
            ],
            auth_required=True,
            **self.OPTS,
        )
        self.assertEqual([c for c, _ in reps][1:], [250, Code.AUTH_REQUIRED, Code.AUTH_OK, Code.OK])

    def test_long_auth_line_allowed(self) -> None:
        password = b"p" * 8000
        line = b"AUTH PLAIN " + b64(b"\0u\0" + password) + b"\r\n"
        self.assertGreater(len(line), COMMAND_LINE_LIMIT)
        self.assertLess(len(line), AUTH_LINE_LIMIT)
        events, _ = self.auth([line])
        self.assertEqual(
            events[-1],
            AuthAttempt(
                mechanism="PLAIN", username="u", password="p" * 8000, initial_response=True
            ),
        )


class TestSMTPUTF8(MachineTestCase):
    def test_non_ascii_addresses_need_smtputf8(self) -> None:
        addr = "j\u00f6rg@b\u00fccher.example".encode()
        _, reps = self.dialogue([b"EHLO x\r\n", b"MAIL FROM:<" + addr + b">\r\n"])
        self.assertEqual(reps[-1][0], Code.BAD_ADDRESS)
        _, reps = self.dialogue(MAIL[:2] + [b"RCPT TO:<" + addr + b">\r\n"])
        self.assertEqual(reps[-1][0], Code.BAD_ADDRESS)
        events, reps = self.dialogue(
            [
                b"EHLO x\r\n",
                b"MAIL FROM:<" + addr + b"> SMTPUTF8 BODY=8BITMIME\r\n",
                b"RCPT TO:<" + addr + b">\r\n",
                b"DATA\r\n",
                "\u00e9t\u00e9\r\n.\r\n".encode(),
            ]
        )
        msg = events[-1]
        assert isinstance(msg, MessageReceived)
        self.assertEqual(msg.mail_from, addr.decode())
        self.assertEqual(msg.recipients, (addr.decode(),))
        self.assertEqual(msg.data, "\u00e9t\u00e9\r\n".encode())
        mail = events[1]
        assert isinstance(mail, MailFromProposed)
        self.assertTrue(mail.smtputf8)
        self.assertEqual(mail.body, "8BITMIME")


class TestVocabulary(unittest.TestCase):
    def test_events_are_frozen_and_validated(self) -> None:
        ev = Hello(command="EHLO", name="x")
        with self.assertRaises(dataclasses.FrozenInstanceError):
            ev.name = "y"  # type: ignore[misc]
        with self.assertRaises(ValueError):
            Hello(command="HELLO", name="x")
        with self.assertRaises(ValueError):
            MessageReceived(mail_from="", recipients=(), data=b"")
        with self.assertRaises(TypeError):
            Hello("EHLO", "x")  # type: ignore[misc]

    def test_table_handlers_exist(self) -> None:
        for (state, verb), (handler, next_state) in TRANSITIONS.items():
            self.assertTrue(callable(getattr(SMTPServerConnection, handler)), handler)
            self.assertIsInstance(state, State)
            self.assertIsInstance(next_state, State)
            self.assertEqual(verb, verb.upper())


if __name__ == "__main__":
    unittest.main()
