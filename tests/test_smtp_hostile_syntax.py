"""SMTP syntax a hostile client sends (RFC 5321, RFC 4954), through the
machine and through smtplib against a real SMTPServer.

* An AUTH exchange ends with "500 Line too long" (or any line the framing
  refuses): the next line is a command, never a credential (RFC 4954 §4).
* Control characters (NUL, CR, TAB, ESC, DEL...) inside the arguments of
  HELO, EHLO, MAIL and RCPT are a 501, never accepted and never echoed: a
  bare CR echoed in the EHLO reply would let a client that treats CR as a
  line end see a forged reply line.
* HELP lists only the verbs the current state and configuration accept.

Only public names are imported, so these tests also run against older
versions of the package.
"""

from __future__ import annotations

import base64
import smtplib
import unittest

from protocols import localhost_contexts
from protocols.smtp import (
    AUTH_LINE_LIMIT,
    NEED_DATA,
    AuthAttempt,
    Event,
    Hello,
    MailFromProposed,
    Proposal,
    RecipientProposed,
    Reset,
    SMTPServer,
    SMTPServerConnection,
)

TIMEOUT = 10.0
PLAIN_CREDENTIALS = base64.b64encode(b"\0user\0secret")  # b"AHVzZXIAc2VjcmV0"
TOO_LONG = b"A" * 12_290 + b"\r\n"  # over AUTH_LINE_LIMIT with its CRLF
AUTH_OPTIONS = {"auth_mechanisms": ("PLAIN", "LOGIN"), "auth_over_plaintext": True}


def drive(chunks: list[bytes], **options: object) -> tuple[list[Event], list[bytes]]:
    """Feed ``chunks``, accept every proposal; return the events and the
    reply lines (greeting excluded)."""
    m = SMTPServerConnection(**options)  # type: ignore[arg-type]
    m.data_to_send()
    events: list[Event] = []
    for chunk in chunks:
        m.receive_data(chunk)
        for _ in range(10_000):
            ev = m.next_event()
            if ev is NEED_DATA:
                break
            if not isinstance(ev, Event):
                continue  # YIELD: call again
            events.append(ev)
            if isinstance(ev, Proposal):
                m.accept()
    return events, m.data_to_send().split(b"\r\n")[:-1]


def codes(lines: list[bytes]) -> list[int]:
    return [int(line[:3]) for line in lines if line[3:4] == b" "]


class MachineCase(unittest.TestCase):
    def dialogue(self, lines: list[bytes], **options: object) -> tuple[list[Event], list[bytes]]:
        """Run ``lines`` fed one by one, all at once and byte by byte; the
        results must agree."""
        whole = b"".join(lines)
        results = [
            drive(lines, **options),
            drive([whole], **options),
            drive([whole[i : i + 1] for i in range(len(whole))], **options),
        ]
        for other in results[1:]:
            self.assertEqual(other, results[0])
        return results[0]


class TestAuthExchangeEndsAfterARefusedLine(MachineCase):
    def test_plain_credentials_after_line_too_long_are_a_command(self) -> None:
        self.assertGreater(len(TOO_LONG), AUTH_LINE_LIMIT)
        events, lines = self.dialogue(
            [b"EHLO x\r\n", b"AUTH PLAIN\r\n", TOO_LONG, PLAIN_CREDENTIALS + b"\r\n", b"NOOP\r\n"],
            **AUTH_OPTIONS,
        )
        self.assertEqual(codes(lines), [250, 334, 500, 500, 250])
        self.assertIn(b"5.5.2", lines[-3])  # Line too long
        self.assertFalse([e for e in events if isinstance(e, AuthAttempt)])

    def test_login_username_after_line_too_long_is_a_command(self) -> None:
        events, lines = self.dialogue(
            [b"EHLO x\r\n", b"AUTH LOGIN\r\n", TOO_LONG, b"RSET\r\n", b"NOOP\r\n"],
            **AUTH_OPTIONS,
        )
        self.assertEqual(codes(lines), [250, 334, 500, 250, 250])
        self.assertEqual(events[1:], [Reset()])

    def test_login_after_username_then_line_too_long(self) -> None:
        events, lines = self.dialogue(
            [
                b"EHLO x\r\n",
                b"AUTH LOGIN\r\n",
                base64.b64encode(b"user") + b"\r\n",
                TOO_LONG,
                base64.b64encode(b"secret") + b"\r\n",
            ],
            **AUTH_OPTIONS,
        )
        self.assertEqual(codes(lines), [250, 334, 334, 500, 500])
        self.assertFalse([e for e in events if isinstance(e, AuthAttempt)])

    def test_endless_response_line_ends_the_exchange_too(self) -> None:
        # No LF for longer than any line may be: the bytes are dropped as
        # they come, and the 500 at the LF ends the exchange.
        endless = [b"A" * 4096] * 8 + [b"\r\n"]
        events, lines = self.dialogue(
            [b"EHLO x\r\n", b"AUTH PLAIN\r\n", *endless, PLAIN_CREDENTIALS + b"\r\n"],
            **AUTH_OPTIONS,
        )
        self.assertEqual(codes(lines), [250, 334, 500, 500])
        self.assertFalse([e for e in events if isinstance(e, AuthAttempt)])

    def test_bare_lf_response_ends_the_exchange(self) -> None:
        events, lines = self.dialogue(
            [b"EHLO x\r\n", b"AUTH PLAIN\r\n", PLAIN_CREDENTIALS + b"\n", b"RSET\r\n"],
            **AUTH_OPTIONS,
        )
        self.assertEqual(codes(lines), [250, 334, 500, 250])
        self.assertEqual(events[1:], [Reset()])

    def test_a_new_exchange_works_afterwards(self) -> None:
        events, lines = self.dialogue(
            [
                b"EHLO x\r\n",
                b"AUTH PLAIN\r\n",
                TOO_LONG,
                b"AUTH PLAIN\r\n",
                PLAIN_CREDENTIALS + b"\r\n",
            ],
            **AUTH_OPTIONS,
        )
        self.assertEqual(codes(lines), [250, 334, 500, 334, 235])
        self.assertEqual(
            events[-1], AuthAttempt(mechanism="PLAIN", username="user", password="secret")
        )


class TestControlCharactersInArguments(MachineCase):
    def test_nul_in_helo_ehlo_mail_rcpt_is_501(self) -> None:
        for setup, line in (
            ([], b"HELO a\x00b\r\n"),
            ([], b"EHLO a\x00b\r\n"),
            ([b"EHLO x\r\n"], b"MAIL FROM:<a\x00b@x>\r\n"),
            ([b"EHLO x\r\n", b"MAIL FROM:<a@x>\r\n"], b"RCPT TO:<c\x00d@x>\r\n"),
        ):
            with self.subTest(line=line):
                events, lines = self.dialogue([*setup, line, b"NOOP\r\n"])
                self.assertEqual(codes(lines)[-2:], [501, 250])
                self.assertNotIn(b"\x00", b"".join(lines))
                self.assertEqual(len(events), len(setup))  # no event for the refused line

    def test_bare_cr_in_ehlo_is_refused_not_echoed(self) -> None:
        for verb in (b"EHLO", b"HELO"):
            with self.subTest(verb=verb):
                events, lines = self.dialogue([verb + b" x\r250 forged\r\n", b"NOOP\r\n"])
                self.assertEqual(codes(lines), [501, 250])
                self.assertEqual(events, [])
                out = b"\r\n".join(lines)
                self.assertNotIn(b"forged", out)
                self.assertNotIn(b"\r2", out)

    def test_other_controls_in_a_domain_or_path_are_501(self) -> None:
        for char in (b"\t", b"\x1b", b"\x7f", b"\x0b", b"\x0c", b"\r"):
            for line in (b"EHLO a" + char + b"b\r\n", b"HELO a" + char + b"b\r\n"):
                with self.subTest(line=line):
                    events, lines = self.dialogue([line])
                    self.assertEqual(codes(lines), [501])
                    self.assertEqual(events, [])
            for line in (b"MAIL FROM:<a" + char + b"b@x>\r\n",):
                with self.subTest(line=line):
                    events, lines = self.dialogue([b"EHLO x\r\n", line])
                    self.assertEqual(codes(lines)[-1], 501)
                    self.assertFalse([e for e in events if isinstance(e, MailFromProposed)])

    def test_ordinary_arguments_still_pass(self) -> None:
        events, lines = self.dialogue(
            [
                b"HELO [127.0.0.1]\r\n",
                b"EHLO client.example\r\n",
                b'MAIL FROM:<"quoted name"@x> SIZE=10\r\n',
                b"RCPT TO:<c@d>\r\n",
            ]
        )
        self.assertEqual(codes(lines), [250, 250, 250, 250])
        self.assertEqual(
            [type(e) for e in events], [Hello, Hello, MailFromProposed, RecipientProposed]
        )


class TestHelpListsWhatIsAvailable(unittest.TestCase):
    def help_text(self, **options: object) -> bytes:
        _, lines = drive([b"EHLO x\r\n", b"HELP\r\n"], **options)
        self.assertTrue(lines[-1].startswith(b"214 "), lines)
        return lines[-1]

    def test_no_starttls_or_auth_where_they_answer_502(self) -> None:
        text = self.help_text()
        self.assertNotIn(b"STARTTLS", text)
        self.assertNotIn(b"AUTH", text)
        _, lines = drive([b"EHLO x\r\n", b"STARTTLS\r\n", b"AUTH PLAIN\r\n"])
        self.assertEqual(codes(lines)[-2:], [502, 502])

    def test_offered_verbs_are_listed(self) -> None:
        text = self.help_text(starttls=True, **AUTH_OPTIONS)
        self.assertIn(b"STARTTLS", text)
        self.assertIn(b"AUTH", text)


class TestThroughSmtplib(unittest.TestCase):
    """The same items, with CPython's smtplib against SMTPServer."""

    def server(self, **kwargs: object) -> SMTPServer:
        server = SMTPServer(**kwargs)  # type: ignore[arg-type]
        server.start()
        self.addCleanup(server.stop)
        return server

    def client(self, server: SMTPServer) -> smtplib.SMTP:
        host, port = server.server_address[:2]
        client = smtplib.SMTP(host, port, timeout=TIMEOUT)
        self.addCleanup(client.close)
        return client

    def test_auth_exchange_ends_after_line_too_long(self) -> None:
        server = self.server(auth={"user": "secret"}, auth_over_plaintext=True)
        client = self.client(server)
        client.ehlo("me")
        self.assertEqual(client.docmd("AUTH", "PLAIN")[0], 334)
        client.send(TOO_LONG)
        code, text = client.getreply()
        self.assertEqual((code, text[:5]), (500, b"5.5.2"))
        self.assertEqual(client.docmd(PLAIN_CREDENTIALS.decode())[0], 500)
        self.assertEqual(client.noop()[0], 250)
        self.assertEqual(server.logins, [])

    def test_nul_in_arguments_is_501(self) -> None:
        server = self.server()
        client = self.client(server)
        self.assertEqual(client.helo("a\x00b")[0], 501)
        self.assertEqual(client.ehlo("a\x00b")[0], 501)
        client.ehlo("me")
        self.assertEqual(client.docmd("MAIL FROM:<a\x00b@x>")[0], 501)
        self.assertEqual(client.docmd("MAIL FROM:<a@x>")[0], 250)
        self.assertEqual(client.docmd("RCPT TO:<c\x00d@x>")[0], 501)

    def test_bare_cr_in_ehlo_is_not_echoed(self) -> None:
        server = self.server()
        client = self.client(server)
        client.send(b"EHLO x\r250 forged\r\n")  # smtplib's putcmd refuses a CR itself
        code, text = client.getreply()
        self.assertEqual(code, 501)
        self.assertNotIn(b"forged", text)
        self.assertEqual(client.noop()[0], 250)

    def test_help(self) -> None:
        client = self.client(self.server())
        client.ehlo("me")
        text = client.help()
        self.assertIn(b"MAIL", text)
        self.assertNotIn(b"STARTTLS", text)
        self.assertNotIn(b"AUTH", text)
        server_ctx, _ = localhost_contexts()
        client = self.client(self.server(starttls_context=server_ctx))
        client.ehlo("me")
        self.assertIn(b"STARTTLS", client.help())


if __name__ == "__main__":
    unittest.main()
