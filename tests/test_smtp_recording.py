"""SMTP recording: every command line, RSET/QUIT/hang-up, every refusal; and
closing refusals (a 421 always closes, RFC 5321 §3.8; ``close=True`` does).

Real smtplib clients (and swaks) against :class:`protocols.SMTPServer`.
"""

from __future__ import annotations

import shutil
import smtplib
import socket
import subprocess
import threading
import time
import unittest
from typing import Any
from unittest import mock

from protocols import SMTPReject, SMTPServer
from protocols.smtp import RECORD_BYTES, CommandLine, CommandRefusal, SMTPServerConnection

TIMEOUT = 10.0


def raw_dialogue(port: int, data: bytes) -> bytes:
    """Send ``data`` and read everything until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


class CommandLinesTest(unittest.TestCase):
    def test_every_command_line_with_raw_bytes_and_monotonic_time(self) -> None:
        with SMTPServer() as srv:
            before = time.monotonic()
            with smtplib.SMTP("127.0.0.1", srv.port, timeout=TIMEOUT) as c:
                c.sendmail(
                    "a@example.org", ["b@example.net", "c@example.net"], "Subject: x\r\n\r\nhi"
                )
                c.noop()
                c.rset()
            srv.wait_for_session_events(1, TIMEOUT, kind="QUIT")
            after = time.monotonic()
            cmds = srv.wait_for_commands(8, TIMEOUT)
        self.assertEqual(
            [c.verb for c in cmds],
            ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "NOOP", "RSET", "QUIT"],
        )
        self.assertEqual(cmds[1].line.lower(), b"mail from:<a@example.org> size=16")
        self.assertEqual(cmds[2].argument.lower(), "to:<b@example.net>")
        stamps = [c.received_at for c in cmds]
        self.assertEqual(stamps, sorted(stamps))
        self.assertTrue(before <= stamps[0] and stamps[-1] <= after)
        # The same clock as the messages.
        self.assertLessEqual(srv.messages[0].received_at, cmds[5].received_at)
        self.assertEqual([e.kind for e in srv.session_events], ["RSET", "QUIT"])
        self.assertEqual(srv.session_events[1].reply_code, 221)

    def test_garbage_lines_are_recorded_raw(self) -> None:
        with SMTPServer() as srv:
            out = raw_dialogue(srv.port, b"EHLO x\r\n\xff\xfe\r\nM\xc4\xb1L x\r\nbare\nQUIT\r\n")
            self.assertEqual(out.count(b"\r\n500 "), 3, out)
            cmds = srv.wait_for_commands(5, TIMEOUT)
            self.assertEqual(
                [(c.line, c.verb) for c in cmds],
                [
                    (b"EHLO x", "EHLO"),
                    (b"\xff\xfe", ""),
                    ("M\u0131L x".encode(), ""),
                    (b"bare", ""),
                    (b"QUIT", "QUIT"),
                ],
            )
            self.assertEqual([r.reason for r in srv.rejected], ["syntax"] * 3)
            self.assertEqual(srv.find_commands(verb="QUIT")[0].line, b"QUIT")

    def test_swaks_dialogue_is_recorded(self) -> None:
        if shutil.which("swaks") is None:
            self.skipTest("swaks not installed")
        with SMTPServer() as srv:
            subprocess.run(
                [
                    "swaks",
                    "--server",
                    f"127.0.0.1:{srv.port}",
                    "--to",
                    "x@example.net",
                    "--from",
                    "y@example.org",
                    "--helo",
                    "swaks.test",
                ],
                check=True,
                capture_output=True,
                timeout=30,
            )
            srv.wait_for_session_events(1, TIMEOUT, kind="QUIT")
            self.assertEqual(
                [c.verb for c in srv.commands], ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
            )
            self.assertEqual(srv.commands[0].line, b"EHLO swaks.test")

    def test_recorded_line_octets_are_bounded(self) -> None:
        # 12,000 long VRFY lines (6 MB): the records keep at most RECORD_BYTES
        # of lines (G6b), the rest are counted as dropped.
        line = b"VRFY " + b"x" * 500 + b"\r\n"
        n = 12_000
        with SMTPServer() as srv:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT) as sock:
                replies: list[bytes] = []

                def read() -> None:
                    while chunk := sock.recv(65536):
                        replies.append(chunk)

                reader = threading.Thread(target=read)
                reader.start()
                sock.sendall(line * n + b"QUIT\r\n")
                reader.join(TIMEOUT * 3)
                self.assertFalse(reader.is_alive())
            self.assertEqual(b"".join(replies).count(b"\r\n252 "), n)
            srv.wait_for_session_events(1, TIMEOUT, kind="QUIT")
            held = sum(len(c.line) for c in srv.commands)
            self.assertLessEqual(held, RECORD_BYTES)
            self.assertGreater(held, RECORD_BYTES - 1000)
            self.assertEqual(len(srv.commands) + srv.records_dropped, n + 1)  # and QUIT
            srv.clear()

    def test_records_are_bounded(self) -> None:
        with mock.patch("protocols.smtp._server.RECORD_LIMIT", 10):
            with SMTPServer() as srv:
                raw_dialogue(srv.port, b"NOOP\r\n" * 30 + b"QUIT\r\n")
                srv.wait_for_session_events(1, TIMEOUT)
                self.assertEqual(len(srv.commands), 10)
                self.assertEqual(srv.records_dropped, 21)
                srv.clear()
                self.assertEqual((srv.commands, srv.records_dropped), ([], 0))


class RefusalsRecordedTest(unittest.TestCase):
    def test_size_refused_at_mail_from_is_recorded(self) -> None:
        # smtplib declares SIZE=; the 552 at MAIL FROM used to leave
        # server.rejected empty (wait_for_rejections timed out).
        with SMTPServer(max_message_size=100) as srv:
            with smtplib.SMTP("127.0.0.1", srv.port, timeout=TIMEOUT) as c:
                with self.assertRaises(smtplib.SMTPSenderRefused):
                    c.sendmail("a@example.org", ["b@example.net"], "x" * 500)
            rej = srv.wait_for_rejections(1, TIMEOUT, command="MAIL")[0]
        self.assertEqual((rej.code, rej.reason, rej.mail_from), (552, "size", ""))
        self.assertEqual(rej.line.lower(), b"mail from:<a@example.org> size=500")
        self.assertIn("size", rej.text)
        self.assertFalse(rej.closed)

    def test_callback_refusals_at_mail_and_rcpt(self) -> None:
        def on_mail_from(address: str, options: list[str]) -> None:
            if address.startswith("spam"):
                raise SMTPReject(550, "5.7.1 no spam")

        def on_rcpt(address: str, options: list[str]) -> None:
            if address.startswith("nobody"):
                raise SMTPReject(550, "5.1.1 no such user")

        with SMTPServer(on_mail_from=on_mail_from, on_rcpt=on_rcpt) as srv:
            with smtplib.SMTP("127.0.0.1", srv.port, timeout=TIMEOUT) as c:
                with self.assertRaises(smtplib.SMTPSenderRefused):
                    c.sendmail("spam@example.org", ["b@example.net"], "x")
                refused = c.sendmail("a@example.org", ["nobody@example.net", "b@example.net"], "x")
                self.assertEqual(list(refused), ["nobody@example.net"])
            mail, rcpt = srv.wait_for_rejections(2, TIMEOUT, reason="callback")
            srv.wait_for_messages(1, TIMEOUT)
        self.assertEqual(
            (mail.command, mail.code, mail.mail_from), ("MAIL", 550, "spam@example.org")
        )
        self.assertEqual(mail.text, "5.7.1 no spam")
        self.assertEqual(
            (rcpt.command, rcpt.mail_from, rcpt.rcpt_tos),
            ("RCPT", "a@example.org", ("nobody@example.net",)),
        )

    def test_bad_sequence_no_recipients_and_refused_auth(self) -> None:
        with SMTPServer(auth={"u": "p"}, auth_over_plaintext=True) as srv:
            with smtplib.SMTP("127.0.0.1", srv.port, timeout=TIMEOUT) as c:
                self.assertEqual(c.docmd("RCPT", "TO:<x@y>")[0], 503)
                c.ehlo()
                with self.assertRaises(smtplib.SMTPAuthenticationError):
                    c.login("u", "wrong")
                self.assertEqual(c.docmd("AUTH", "NOPE")[0], 504)
                c.mail("a@b.example")
                self.assertEqual(c.docmd("DATA")[0], 554)
            srv.wait_for_session_events(1, TIMEOUT, kind="QUIT")
        got = [(r.command, r.code, r.reason) for r in srv.rejected]
        self.assertIn(("RCPT", 503, "sequence"), got)
        self.assertIn(("AUTH", 535, "auth"), got)
        self.assertIn(("AUTH", 504, "syntax"), got)
        self.assertEqual(got[-1], ("DATA", 554, "policy"))
        self.assertEqual(srv.find_rejections(code=554)[0].mail_from, "a@b.example")
        self.assertEqual(srv.logins[0].reply_code, 535)

    def test_wait_for_rejections_matchers_time_out_with_a_report(self) -> None:
        with SMTPServer() as srv:
            raw_dialogue(srv.port, b"DATA\r\nQUIT\r\n")
            with self.assertRaises(TimeoutError) as cm:
                srv.wait_for_rejections(1, 0.2, command="MAIL")
            self.assertIn("DATA -> 503 sequence", str(cm.exception))


class ClosingRefusalsTest(unittest.TestCase):
    def assert_closed(self, srv: SMTPServer) -> None:
        srv.wait_for(lambda: srv.connection_count == 0, TIMEOUT, "connections closed")

    def test_421_from_a_callback_always_closes(self) -> None:
        def on_rcpt(address: str, options: list[str]) -> None:
            raise SMTPReject(421, "4.3.2 going down")

        with SMTPServer(on_rcpt=on_rcpt) as srv:
            out = raw_dialogue(
                srv.port, b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nNOOP\r\n"
            )
            # One 421, then the close: the pipelined RCPT and NOOP never ran.
            self.assertTrue(out.endswith(b"\r\n421 4.3.2 going down\r\n"), out)
            self.assertEqual(out.count(b"\r\n421"), 1)
            self.assert_closed(srv)
            rej = srv.wait_for_rejections(1, TIMEOUT)[0]
            self.assertTrue(rej.closed)
            self.assertEqual(srv.wait_for_session_events(1, TIMEOUT)[0].kind, "CLOSE")
            self.assertEqual([c.verb for c in srv.commands], ["EHLO", "MAIL", "RCPT"])

    def test_smtplib_sees_421_and_the_close(self) -> None:
        def handler(envelope: Any) -> None:
            raise SMTPReject(421, "4.7.0 try later")

        with SMTPServer(handler=handler) as srv:
            c = smtplib.SMTP("127.0.0.1", srv.port, timeout=TIMEOUT)
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                c.sendmail("a@example.org", ["b@example.net"], "x")
            self.assertEqual(cm.exception.smtp_code, 421)
            # smtplib closes its side on 421; the server already hung up.
            self.assert_closed(srv)
            rej = srv.wait_for_rejections(1, TIMEOUT)[0]
            self.assertEqual((rej.reason, rej.closed), ("handler", True))
            self.assertEqual(srv.messages, [])

    def test_any_refusal_can_close(self) -> None:
        def on_mail_from(address: str, options: list[str]) -> None:
            raise SMTPReject(554, "5.7.1 go away", close=True)

        with SMTPServer(on_mail_from=on_mail_from) as srv:
            out = raw_dialogue(srv.port, b"EHLO x\r\nMAIL FROM:<a@b>\r\nNOOP\r\n")
            self.assertTrue(out.endswith(b"\r\n554 5.7.1 go away\r\n"), out)
            self.assert_closed(srv)
            ev = srv.wait_for_session_events(1, TIMEOUT)[0]
            self.assertEqual((ev.kind, ev.reply_code), ("CLOSE", 554))

    def test_too_many_errors_is_a_recorded_closing_refusal(self) -> None:
        with SMTPServer() as srv:
            out = raw_dialogue(srv.port, b"BAD\r\n" * 60)
            self.assertIn(b"421 Too many errors", out)
            rej = srv.wait_for_rejections(1, TIMEOUT, code=421)[0]
            self.assertEqual((rej.reason, rej.closed), ("closing", True))
            self.assertEqual(
                srv.wait_for_session_events(1, TIMEOUT, kind="CLOSE")[0].reply_code, 421
            )


class MachineRecordsTest(unittest.TestCase):
    """The sans-I/O side: take_records(), no sockets."""

    def test_take_records_in_order_and_cleared(self) -> None:
        m = SMTPServerConnection()
        m.receive_data(b"EHLO x\r\nRCPT TO:<a@b>\r\nMAIL FROM:<a@b>\r\n")
        m.next_event()  # Hello
        m.next_event()  # MailFromProposed
        m.reject(421, "4.3.2 bye")
        records = m.take_records()
        self.assertEqual(
            [type(r) for r in records],
            [CommandLine, CommandLine, CommandRefusal, CommandLine, CommandRefusal],
        )
        last = records[-1]
        assert isinstance(last, CommandRefusal)
        self.assertEqual(
            (last.verb, last.code, last.closes, last.mail_from), ("MAIL", 421, True, "a@b")
        )
        self.assertEqual(m.take_records(), [])
        ev = m.next_event()
        self.assertEqual(getattr(ev, "reply_code", None), 421)
        self.assertEqual(m.state.name, "CLOSED")


if __name__ == "__main__":
    unittest.main()
