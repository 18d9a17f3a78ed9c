"""LMTP mode (RFC 2033): LHLO, and one reply per recipient after the end of data.

Real clients: ``smtplib.LMTP`` (over TCP and over a Unix socket, its usual
transport) and raw sockets for the pipelined and hostile dialogues.
"""

from __future__ import annotations

import os
import smtplib
import socket
import tempfile
import unittest
from typing import Any

from protocols import SMTPReject, SMTPServer
from protocols.smtp import (
    Hello,
    InvalidArgumentError,
    LocalProtocolError,
    MessageReceived,
    SMTPServerConnection,
)

TIMEOUT = 10.0


def raw_dialogue(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def codes(out: bytes) -> list[int]:
    """The reply codes of every final reply line."""
    return [int(line[:3]) for line in out.split(b"\r\n") if line[3:4] == b" "]


class LMTPWithSmtplibTest(unittest.TestCase):
    def test_one_recipient_with_smtplib_lmtp(self) -> None:
        with SMTPServer(lmtp=True) as srv:
            with smtplib.LMTP("127.0.0.1", srv.port, timeout=TIMEOUT) as c:
                code, _ = c.ehlo()  # smtplib.LMTP sends LHLO
                self.assertEqual(code, 250)
                self.assertIn("pipelining", c.esmtp_features)
                self.assertEqual(
                    c.sendmail("a@example.org", ["b@example.net"], "Subject: x\r\n\r\nhi"), {}
                )
            env = srv.wait_for_message(TIMEOUT)
            self.assertEqual((env.mail_from, env.rcpt_tos), ("a@example.org", ("b@example.net",)))
            self.assertEqual(srv.commands[0].verb, "LHLO")
            self.assertTrue(env.esmtp)

    def test_one_reply_per_recipient_some_refused(self) -> None:
        def handler(envelope: Any) -> dict[str, Any]:
            return {
                "b@example.net": SMTPReject(552, "5.2.2 mailbox full"),
                "d@example.net": (450, "4.2.1 busy"),
            }

        rcpts = ["a@example.net", "b@example.net", "c@example.net", "d@example.net"]
        with SMTPServer(handler=handler, lmtp=True) as srv:
            with smtplib.LMTP("127.0.0.1", srv.port, timeout=TIMEOUT) as c:
                c.ehlo()
                c.mail("s@example.org")
                for r in rcpts:
                    self.assertEqual(c.rcpt(r)[0], 250)
                # smtplib reads the first reply to the data; LMTP sends one per recipient.
                first = c.data("Subject: x\r\n\r\nhi")
                replies = [first] + [c.getreply() for _ in rcpts[1:]]
                self.assertEqual([code for code, _ in replies], [250, 552, 250, 450])
                self.assertEqual(replies[1][1], b"5.2.2 mailbox full")
                self.assertEqual(c.noop()[0], 250)  # the dialogue is in step again
            env = srv.wait_for_message(TIMEOUT)
            self.assertEqual(env.rcpt_tos, ("a@example.net", "c@example.net"))
            refused = srv.wait_for_rejections(2, TIMEOUT, command="DATA")
            self.assertEqual(
                [(r.rcpt_tos, r.code, r.reason) for r in refused],
                [(("b@example.net",), 552, "handler"), (("d@example.net",), 450, "handler")],
            )

    def test_handler_refusing_all_gets_one_refusal_per_recipient(self) -> None:
        def handler(envelope: Any) -> None:
            raise SMTPReject(452, "4.3.1 no space")

        with SMTPServer(handler=handler, lmtp=True) as srv:
            out = raw_dialogue(
                srv.port,
                b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\n"
                b"hi\r\n.\r\nQUIT\r\n",
            )
            self.assertEqual(codes(out), [220, 250, 250, 250, 250, 354, 452, 452, 221])
            self.assertEqual(srv.messages, [])
            self.assertEqual(len(srv.wait_for_rejections(2, TIMEOUT)), 2)

    def test_handler_key_matching_no_recipient_is_a_handler_error(self) -> None:
        # A misspelt recipient was ignored: the message went to everyone,
        # "full@" included, and nothing said the refusal had no effect.
        def handler(envelope: Any) -> dict[str, Any]:
            return {"ful@example.net": SMTPReject(552, "5.2.2 mailbox full")}

        with SMTPServer(handler=handler, lmtp=True) as srv:
            out = raw_dialogue(
                srv.port,
                b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<bob@example.net>\r\n"
                b"RCPT TO:<full@example.net>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
            )
            # The handler's answer is unusable: a local error for every recipient.
            self.assertEqual(codes(out), [220, 250, 250, 250, 250, 354, 451, 451, 221])
            (err,) = srv.wait_for(lambda: srv.errors, TIMEOUT, "the handler error")
            self.assertIsInstance(err, InvalidArgumentError)
            self.assertIn("'ful@example.net'", str(err))
            self.assertIn("'bob@example.net', 'full@example.net'", str(err))
            self.assertEqual(srv.messages, [])
            refused = srv.wait_for_rejections(2, TIMEOUT, command="DATA")
            self.assertEqual([(r.code, r.reason) for r in refused], [(451, "handler")] * 2)

    def test_refused_recipient_gets_no_reply_after_data(self) -> None:
        def on_rcpt(address: str, options: list[str]) -> None:
            if address.startswith("x"):
                raise SMTPReject(550, "5.1.1 unknown")

        with SMTPServer(on_rcpt=on_rcpt, lmtp=True) as srv:
            out = raw_dialogue(
                srv.port,
                b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@d>\r\nRCPT TO:<e@f>\r\nDATA\r\n"
                b"hi\r\n.\r\nQUIT\r\n",
            )
            self.assertEqual(codes(out), [220, 250, 250, 550, 250, 354, 250, 221])
            self.assertEqual(srv.wait_for_message(TIMEOUT).rcpt_tos, ("e@f",))

    def test_421_among_the_replies_closes(self) -> None:
        def handler(envelope: Any) -> dict[str, Any]:
            return {"c@d": (421, "4.3.2 shutting down")}

        with SMTPServer(handler=handler, lmtp=True) as srv:
            out = raw_dialogue(
                srv.port,
                b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\n"
                b"hi\r\n.\r\nNOOP\r\n",
            )
            # Both replies, then the close: the NOOP is never answered.
            self.assertEqual(codes(out), [220, 250, 250, 250, 250, 354, 421, 250])
            srv.wait_for(lambda: srv.connection_count == 0, TIMEOUT, "closed")
            self.assertEqual(srv.wait_for_message(TIMEOUT).rcpt_tos, ("e@f",))

    def test_over_a_unix_socket(self) -> None:
        if not hasattr(socket, "AF_UNIX"):
            self.skipTest("no Unix sockets")
        with tempfile.TemporaryDirectory(prefix="ts-") as d:
            path = os.path.join(d, "lmtp.sock")
            with SMTPServer(path, lmtp=True) as srv:
                with smtplib.LMTP(path, timeout=TIMEOUT) as c:
                    self.assertEqual(c.sendmail("a@example.org", ["b@example.net"], "hi"), {})
                self.assertEqual(srv.wait_for_message(TIMEOUT).mail_from, "a@example.org")


class LMTPHostileTest(unittest.TestCase):
    def test_helo_and_ehlo_are_not_lmtp(self) -> None:
        with SMTPServer(lmtp=True) as srv:
            out = raw_dialogue(srv.port, b"HELO x\r\nEHLO x\r\nMAIL FROM:<a@b>\r\nHELP\r\nQUIT\r\n")
            self.assertEqual(codes(out), [220, 500, 500, 503, 214, 221])
            self.assertIn(b"LHLO", out.split(b"\r\n")[-3])
            self.assertNotIn(b"EHLO", out.split(b"\r\n")[-3])

    def test_bare_lf_refused_once_per_recipient_nothing_delivered(self) -> None:
        with SMTPServer(lmtp=True) as srv:
            out = raw_dialogue(
                srv.port,
                b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\n"
                b"a\nb\r\n.\r\nQUIT\r\n",
            )
            self.assertEqual(codes(out), [220, 250, 250, 250, 250, 354, 554, 554, 221])
            self.assertEqual(srv.messages, [])

    def test_smtp_mode_unchanged(self) -> None:
        with SMTPServer() as srv:
            out = raw_dialogue(srv.port, b"LHLO x\r\nQUIT\r\n")
            self.assertEqual(codes(out), [220, 500, 221])


class LMTPMachineTest(unittest.TestCase):
    def machine_with_message(self) -> SMTPServerConnection:
        m = SMTPServerConnection(lmtp=True)
        m.receive_data(
            b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\nhi\r\n.\r\n"
        )
        self.assertEqual(m.next_event(), Hello(command="LHLO", name="x"))
        for _ in range(3):
            m.next_event()
            m.accept()
        self.assertIsInstance(m.next_event(), MessageReceived)
        m.data_to_send()
        return m

    def test_deliver_one_reply_per_recipient(self) -> None:
        m = self.machine_with_message()
        m.deliver([None, (550, "5.1.1 gone")])
        self.assertEqual(m.data_to_send(), b"250 2.0.0 OK: message accepted\r\n550 5.1.1 gone\r\n")

    def test_deliver_misuse(self) -> None:
        m = self.machine_with_message()
        with self.assertRaises(InvalidArgumentError):
            m.deliver([None])
        with self.assertRaises(InvalidArgumentError):
            m.deliver([None, (250, "not a refusal")])
        m.accept()  # still pending after the refused calls
        self.assertEqual(m.data_to_send().count(b"\r\n"), 2)
        with self.assertRaises(LocalProtocolError):
            m.deliver([None, None])
        smtp = SMTPServerConnection()
        with self.assertRaises(LocalProtocolError):
            smtp.deliver([])


if __name__ == "__main__":
    unittest.main()
