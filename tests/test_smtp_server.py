"""Tests of SMTPServer / TestSMTPServer with real clients over loopback.

Clients: smtplib (sendmail, send_message, starttls, login, SMTP_SSL),
logging.handlers.SMTPHandler, raw sockets (pipelining, smuggling, vanishing
clients), and swaks when installed.
"""

from __future__ import annotations

import argparse
import email.message
import io
import logging
import logging.handlers
import shutil
import smtplib
import socket
import subprocess
import threading
import time
import unittest
from typing import Any

from protocols import HandlerErrors, localhost_contexts
from protocols._cli import add_smtp_arguments, smtp_sink_from_args
from protocols.smtp import (
    Envelope,
    SMTPReject,
    SMTPServer,
    TestSMTPServer,
    add_smtp_sink,
)

TIMEOUT = 10.0  # generous: the box is a noisy 2-core machine


class Code:
    GREETING = 220
    BYE = 221
    OK = 250
    START_DATA = 354
    CLOSING = 421
    TRY_LATER = 451
    TOO_MANY_RCPTS = 452
    BAD_SEQUENCE = 503
    AUTH_REQUIRED = 530
    AUTH_FAILED = 535
    REJECTED = 550
    TOO_BIG = 552
    FAILED = 554


class RawClient:
    """A blocking socket client that reads whole replies."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed; pending {self.buf!r}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode())
            if line[3:4] == b" ":
                return int(line[:3]), "\n".join(x[4:] for x in lines)

    def codes(self, n: int) -> list[int]:
        return [self.reply()[0] for _ in range(n)]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ServerTestCase(unittest.TestCase):
    def server(self, *args: Any, **kwargs: Any) -> SMTPServer:
        kwargs.setdefault("report_errors", False)
        server = SMTPServer(*args, **kwargs)
        server.start()
        self.addCleanup(server.stop)
        return server


class TestSmtplib(ServerTestCase):
    def test_sendmail_records_an_envelope(self) -> None:
        s = self.server()
        body = "Subject: hello\r\nFrom: a@example.org\r\n\r\nline 1\r\n.starts with a dot\r\n"
        with smtplib.SMTP("127.0.0.1", s.port, local_hostname="client.test", timeout=TIMEOUT) as c:
            refused = c.sendmail("a@example.org", ["b@example.net", "c@example.net"], body)
        self.assertEqual(refused, {})
        env = s.wait_for_message(TIMEOUT)
        self.assertIsInstance(env, Envelope)
        self.assertEqual(env.mail_from, "a@example.org")
        self.assertEqual(env.rcpt_tos, ("b@example.net", "c@example.net"))
        self.assertEqual(env.helo, "client.test")
        self.assertTrue(env.esmtp)
        self.assertEqual(env.peer[0], "127.0.0.1")
        self.assertEqual(env.data, body.encode())
        self.assertFalse(env.tls)
        self.assertIsNone(env.auth_user)
        self.assertIn(f"size={len(body)}", [o.lower() for o in env.mail_options])
        msg = env.message
        self.assertIsInstance(msg, email.message.EmailMessage)
        self.assertEqual(msg["subject"], "hello")
        self.assertEqual(msg.get_content(), "line 1\n.starts with a dot\n")

    def test_custom_greeting(self) -> None:
        s = self.server(hostname="mx.test", greeting="ready for you")
        c = smtplib.SMTP(timeout=TIMEOUT)
        try:
            self.assertEqual(c.connect("127.0.0.1", s.port), (220, b"mx.test ready for you"))
        finally:
            c.close()

    def test_send_message_several_on_one_connection(self) -> None:
        s = self.server()
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            for i in range(5):
                msg = email.message.EmailMessage()
                msg["From"] = "me@example.org"
                msg["To"] = f"you{i}@example.org"
                msg["Subject"] = f"number {i}"
                msg.set_content(f"body {i}\n")
                c.send_message(msg)
        envs = s.wait_for_messages(5, TIMEOUT)
        self.assertEqual([e.message["subject"] for e in envs], [f"number {i}" for i in range(5)])
        self.assertEqual([e.rcpt_tos for e in envs], [(f"you{i}@example.org",) for i in range(5)])

    def test_smtputf8_addresses(self) -> None:
        s = self.server()
        msg = email.message.EmailMessage()
        msg["From"] = "J\u00f6rg <j\u00f6rg@b\u00fccher.example>"
        msg["To"] = "\u7528\u6237@\u4f8b\u5b50.example"
        msg["Subject"] = "\u00fcnicode"
        msg.set_content("gr\u00fc\u00dfe\n")
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            c.send_message(msg)
        env = s.wait_for_message(TIMEOUT)
        self.assertEqual(env.mail_from, "j\u00f6rg@b\u00fccher.example")
        self.assertEqual(env.rcpt_tos, ("\u7528\u6237@\u4f8b\u5b50.example",))
        self.assertIn("SMTPUTF8", [o.upper() for o in env.mail_options])
        self.assertEqual(env.message["subject"], "\u00fcnicode")
        self.assertEqual(env.message.get_content(), "gr\u00fc\u00dfe\n")

    def test_8bit_body(self) -> None:
        s = self.server()
        body = "Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n"
        body += "Content-Transfer-Encoding: 8bit\r\n\r\n\u00e9t\u00e9 \u2713\r\n"
        raw = body.encode("utf-8") + b"latin-1 byte: \xe9\r\n"
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            c.sendmail("a@b.example", ["c@d.example"], raw, mail_options=["BODY=8BITMIME"])
        env = s.wait_for_message(TIMEOUT)
        self.assertEqual(env.data, raw)
        self.assertIn("BODY=8BITMIME", env.mail_options)

    def test_multi_megabyte_message(self) -> None:
        s = self.server()
        line = b"0123456789abcdef" * 4 + b"\r\n"
        body = b"Subject: big\r\n\r\n" + line * (6 * 1024 * 1024 // len(line))
        start = time.monotonic()
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            c.sendmail("a@b.example", ["c@d.example"], body)
        env = s.wait_for_message(TIMEOUT)
        self.assertEqual(env.data, body)
        self.assertGreater(len(env.data), 6_000_000)
        self.assertLess(time.monotonic() - start, TIMEOUT)

    def test_size_limit_refused_before_data_when_declared(self) -> None:
        s = self.server(max_message_size=1000)
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            c.ehlo()
            self.assertEqual(c.esmtp_features["size"], "1000")
            with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
                c.sendmail("a@b.example", ["c@d.example"], b"x" * 2000)
            self.assertEqual(cm.exception.smtp_code, Code.TOO_BIG)
        self.assertEqual(s.messages, [])

    def test_size_limit_enforced_after_data(self) -> None:
        s = self.server(max_message_size=1000)
        with RawClient(s.port) as c:
            c.send(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
            self.assertEqual(c.codes(5), [220, 250, 250, 250, 354])
            c.send((b"y" * 98 + b"\r\n") * 20 + b".\r\nQUIT\r\n")
            self.assertEqual(c.codes(2), [Code.TOO_BIG, Code.BYE])
        rej = s.wait_for_rejections(1, TIMEOUT)[0]
        self.assertEqual((rej.code, rej.reason, rej.rcpt_tos), (552, "size", ("c@d",)))
        self.assertEqual(s.messages, [])

    def test_message_of_exactly_the_size_limit(self) -> None:
        # smtplib declares SIZE=len(msg) and then appends the CRLF that ends
        # the last line: that CRLF is not counted against the limit.
        s = self.server(max_message_size=1000)
        exact = b"Subject: x\r\n\r\n" + b"y" * (1000 - 14)
        with_crlf = b"Subject: z\r\n\r\n" + b"y" * (1000 - 16) + b"\r\n"
        self.assertEqual((len(exact), len(with_crlf)), (1000, 1000))
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            self.assertEqual(c.sendmail("a@b.example", ["c@d.example"], exact), {})
            self.assertEqual(c.sendmail("a@b.example", ["c@d.example"], with_crlf), {})
            with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
                c.sendmail("a@b.example", ["c@d.example"], exact + b"y")
            self.assertEqual(cm.exception.smtp_code, Code.TOO_BIG)
        # Without a declared SIZE (HELO session), one octet more is refused
        # after the data.
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            c.helo("x")
            with self.assertRaises(smtplib.SMTPDataError) as cm2:
                c.sendmail("a@b.example", ["c@d.example"], exact + b"y")
            self.assertEqual(cm2.exception.smtp_code, Code.TOO_BIG)
            self.assertEqual(c.sendmail("a@b.example", ["c@d.example"], exact), {})
        self.assertEqual(
            [e.data for e in s.wait_for_messages(3, TIMEOUT)],
            [exact + b"\r\n", with_crlf, exact + b"\r\n"],
        )
        # The SIZE= refused at MAIL FROM is recorded too, then the message
        # refused after its data.
        self.assertEqual(
            [(r.command, r.code, r.reason) for r in s.rejected],
            [("MAIL", 552, "size"), ("DATA", 552, "size")],
        )

    def test_max_message_size_must_be_an_int(self) -> None:
        # Content is held in memory: there is no "no limit".
        with self.assertRaises(TypeError):
            SMTPServer(max_message_size=None)  # type: ignore[arg-type]


class TestRejections(ServerTestCase):
    def test_recipient_rejected_with_chosen_code(self) -> None:
        def on_rcpt(address: str, options: list[str]) -> None:
            if address.startswith("nobody"):
                raise SMTPReject(550, "5.1.1 No such user")

        s = self.server(on_rcpt=on_rcpt)
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            refused = c.sendmail("a@b.example", ["nobody@x.example", "ok@x.example"], b"hi\r\n")
            self.assertEqual(refused, {"nobody@x.example": (550, b"5.1.1 No such user")})
            with self.assertRaises(smtplib.SMTPRecipientsRefused):
                c.sendmail("a@b.example", ["nobody@x.example"], b"hi\r\n")
        env = s.wait_for_message(TIMEOUT)
        self.assertEqual(env.rcpt_tos, ("ok@x.example",))

    def test_recipients_past_the_limit_get_452_and_the_rest_is_delivered(self) -> None:
        # RFC 5321 §4.5.3.1.10: 452 for the extra recipients, and the
        # message goes to the accepted ones; 452s are not "errors" that end
        # the session (the error budget is 50).
        s = self.server(max_recipients=100)
        rcpts = [f"r{i}@example.com" for i in range(160)]
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            refused = c.sendmail("a@b.example", rcpts, b"Subject: many\r\n\r\nhi\r\n")
            self.assertEqual(c.noop()[0], Code.OK)
        self.assertEqual(sorted(refused), sorted(rcpts[100:]))
        self.assertEqual({code for code, _ in refused.values()}, {Code.TOO_MANY_RCPTS})
        env = s.wait_for_message(TIMEOUT)
        self.assertEqual(env.rcpt_tos, tuple(rcpts[:100]))
        self.assertEqual(env.data, b"Subject: many\r\n\r\nhi\r\n")

    def test_sender_rejected(self) -> None:
        def on_mail_from(address: str, options: list[str]) -> None:
            raise SMTPReject(553, "5.7.1 not you")

        s = self.server(on_mail_from=on_mail_from)
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
                c.sendmail("spam@x.example", ["a@b.example"], b"hi\r\n")
        self.assertEqual((cm.exception.smtp_code, cm.exception.smtp_error), (553, b"5.7.1 not you"))

    def test_message_rejected_by_handler(self) -> None:
        def handler(env: Envelope) -> None:
            if "reject me" in env.text:
                raise SMTPReject(451, "4.7.1 try later")

        s = self.server(handler=handler)
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                c.sendmail("a@b.example", ["c@d.example"], b"please reject me\r\n")
            self.assertEqual(cm.exception.smtp_code, Code.TRY_LATER)
            c.sendmail("a@b.example", ["c@d.example"], b"fine\r\n")  # same connection
        env = s.wait_for_message(TIMEOUT)
        self.assertEqual(env.data, b"fine\r\n")
        rej = s.wait_for_rejections(1, TIMEOUT)[0]
        self.assertEqual((rej.code, rej.reason), (451, "handler"))
        assert rej.envelope is not None
        self.assertEqual(rej.envelope.data, b"please reject me\r\n")

    def test_handler_exception_is_recorded_and_answered_451(self) -> None:
        def handler(env: Envelope) -> None:
            raise RuntimeError("boom")

        s = self.server(handler=handler)
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                c.sendmail("a@b.example", ["c@d.example"], b"x\r\n")
            self.assertEqual(cm.exception.smtp_code, Code.TRY_LATER)
            self.assertEqual(c.noop()[0], Code.OK)  # the connection lives on
        errors = s.wait_for(lambda: s.errors, TIMEOUT, "an error")
        self.assertIsInstance(errors[0], RuntimeError)


class TestTLSAndAuth(ServerTestCase):
    def setUp(self) -> None:
        self.server_ctx, self.client_ctx = localhost_contexts()

    def test_starttls_and_login(self) -> None:
        s = self.server(starttls_context=self.server_ctx, auth={"user": "s3cret"})
        with smtplib.SMTP("localhost", s.port, timeout=TIMEOUT) as c:
            c.ehlo()
            self.assertTrue(c.has_extn("starttls"))
            self.assertFalse(c.has_extn("auth"))
            c.starttls(context=self.client_ctx)
            c.ehlo()
            self.assertFalse(c.has_extn("starttls"))
            self.assertEqual(c.esmtp_features["auth"].split(), ["PLAIN", "LOGIN"])
            c.login("user", "s3cret")
            c.sendmail("a@b.example", ["c@d.example"], b"Subject: secret\r\n\r\nx\r\n")
        env = s.wait_for_message(TIMEOUT)
        self.assertTrue(env.tls)
        self.assertTrue(env.tls_version and env.tls_version.startswith("TLS"))
        self.assertEqual(env.auth_user, "user")

    def test_login_mechanisms_and_failures(self) -> None:
        s = self.server(auth={"u": "p"}, auth_over_plaintext=True)
        for mechanism in ("PLAIN", "LOGIN"):
            with self.subTest(mechanism=mechanism):
                with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
                    c.ehlo()
                    c.user, c.password = "u", "wrong"
                    auth_fn = getattr(c, f"auth_{mechanism.lower()}")
                    with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
                        c.auth(mechanism, auth_fn)
                    self.assertEqual(cm.exception.smtp_code, Code.AUTH_FAILED)
                    c.user, c.password = "u", "p"
                    code, _ = c.auth(mechanism, auth_fn)
                    self.assertEqual(code, 235)
        logins = s.wait_for_logins(4, TIMEOUT)
        self.assertEqual(
            [(x.mechanism, x.username, x.password, x.succeeded, x.reply_code) for x in logins],
            [
                ("PLAIN", "u", "wrong", False, 535),
                ("PLAIN", "u", "p", True, 235),
                ("LOGIN", "u", "wrong", False, 535),
                ("LOGIN", "u", "p", True, 235),
            ],
        )
        self.assertFalse(any(x.tls for x in logins))

    def test_auth_not_offered_over_plaintext(self) -> None:
        s = self.server(auth={"u": "p"})
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            with self.assertRaises(smtplib.SMTPNotSupportedError):
                c.login("u", "p")

    def test_auth_required(self) -> None:
        s = self.server(auth={"u": "p"}, auth_over_plaintext=True, auth_required=True)
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
                c.sendmail("a@b.example", ["c@d.example"], b"x\r\n")
            self.assertEqual(cm.exception.smtp_code, Code.AUTH_REQUIRED)
            c.login("u", "p")
            c.sendmail("a@b.example", ["c@d.example"], b"x\r\n")
        self.assertEqual(s.wait_for_message(TIMEOUT).auth_user, "u")

    def test_implicit_tls(self) -> None:
        s = self.server(ssl_context=self.server_ctx, auth={"u": "p"})
        with smtplib.SMTP_SSL("localhost", s.port, context=self.client_ctx, timeout=TIMEOUT) as c:
            c.login("u", "p")
            c.sendmail("a@b.example", ["c@d.example"], b"over tls\r\n")
        env = s.wait_for_message(TIMEOUT)
        self.assertTrue(env.tls)
        self.assertEqual((env.data, env.auth_user), (b"over tls\r\n", "u"))

    def test_pipelined_plaintext_after_starttls_is_discarded(self) -> None:
        s = self.server(starttls_context=self.server_ctx)
        with RawClient(s.port) as c:
            c.send(b"EHLO x\r\n")
            self.assertEqual(c.codes(2), [220, 250])
            # The injected MAIL FROM must not survive into the TLS session.
            c.send(b"STARTTLS\r\nMAIL FROM:<injected@evil>\r\n")
            self.assertEqual(c.reply()[0], Code.GREETING)
            self.assertEqual(c.buf, b"")
            tls = self.client_ctx.wrap_socket(c.sock, server_hostname="localhost")
            try:
                tls.sendall(b"EHLO x\r\nRCPT TO:<a@b>\r\nQUIT\r\n")
                data = b""
                while not data.endswith(b"closing connection\r\n"):
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            finally:
                tls.close()
        codes = [int(line[:3]) for line in data.split(b"\r\n") if line[3:4] == b" "]
        self.assertEqual(codes, [250, Code.BAD_SEQUENCE, Code.BYE])

    def test_failed_handshake_is_recorded_not_fatal(self) -> None:
        s = self.server(ssl_context=self.server_ctx)
        with RawClient(s.port) as c:
            c.send(b"EHLO this is not TLS\r\n")
            try:
                c.sock.recv(100)
            except OSError:
                pass
        s.wait_for(lambda: s.tls_errors, TIMEOUT, "a TLS error")
        self.assertEqual(s.errors, [])
        with smtplib.SMTP_SSL("localhost", s.port, context=self.client_ctx, timeout=TIMEOUT) as c:
            self.assertEqual(c.noop()[0], Code.OK)


class TestRobustness(ServerTestCase):
    def test_pipelined_dialogue_one_write(self) -> None:
        s = self.server()
        with RawClient(s.port) as c:
            c.send(
                b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\n"
                b"one\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<g@h>\r\nDATA\r\ntwo\r\n.\r\nQUIT\r\n"
            )
            self.assertEqual(
                c.codes(12), [220, 250, 250, 250, 250, 354, 250, 250, 250, 354, 250, 221]
            )
        envs = s.wait_for_messages(2, TIMEOUT)
        self.assertEqual([e.data for e in envs], [b"one\r\n", b"two\r\n"])
        self.assertEqual(envs[1].mail_from, "")

    def test_client_vanishing_mid_data_delivers_nothing_and_disturbs_nobody(self) -> None:
        s = self.server()
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as other:
            with RawClient(s.port) as c:
                c.send(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
                self.assertEqual(c.codes(5), [220, 250, 250, 250, 354])
                c.send(b"Subject: half\r\n\r\nthis message never ends\r\n")
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
            other.sendmail("x@y.example", ["z@y.example"], b"complete\r\n")
            self.assertEqual(other.noop()[0], Code.OK)
        env = s.wait_for_message(TIMEOUT)
        self.assertEqual(env.data, b"complete\r\n")
        s.wait_for(lambda: s.connection_count == 0, TIMEOUT, "connections to close")
        self.assertEqual(len(s.messages), 1)
        self.assertEqual(s.errors, [])

    def test_smuggled_message_is_not_delivered(self) -> None:
        s = self.server()
        with RawClient(s.port) as c:
            c.send(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
            c.codes(5)
            c.send(
                b"real\r\n\n.\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\nforged\r\n.\r\n"
            )
            self.assertEqual(c.reply()[0], Code.FAILED)
            c.send(b"NOOP\r\n")
            self.assertEqual(c.reply()[0], Code.OK)
        self.assertEqual(s.wait_for_rejections(1, TIMEOUT)[0].reason, "bare-line-ending")
        self.assertEqual(s.messages, [])

    def test_stop_handles_what_arrived_and_says_421(self) -> None:
        s = SMTPServer(report_errors=False)
        s.start()
        try:
            idle = RawClient(s.port)
            self.assertEqual(idle.reply()[0], Code.GREETING)
            with RawClient(s.port) as c:
                self.assertEqual(c.reply()[0], Code.GREETING)
                c.send(b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nlast\r\n.\r\n")
                # Wait until the server has read at least the first command, so
                # the whole burst is known to be in its socket buffer.
                self.assertEqual(c.reply()[0], Code.OK)
                start = time.monotonic()
                s.stop()
                elapsed = time.monotonic() - start
                self.assertEqual([e.data for e in s.messages], [b"last\r\n"])
                self.assertEqual(idle.reply()[0], Code.CLOSING)
            idle.close()
        finally:
            s.stop()
        self.assertLess(elapsed, 2.0)
        self.assertFalse(s.ready.is_set())

    def test_garbage_spewing_clients_are_cut_off_and_others_served(self) -> None:
        s = self.server()
        junk = b"\x00\xffGARBAGE \r\n" * 200  # 200 errors: the server gives up at 50
        spewers = [RawClient(s.port) for _ in range(10)]
        try:
            for c in spewers:
                c.send(junk)
            with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as good:
                good.sendmail("a@b.example", ["c@d.example"], b"still served\r\n")
            for c in spewers:
                data = b""
                for _ in range(1000):
                    chunk = c.sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.assertTrue(data.endswith(b"\r\n421 Too many errors, closing connection\r\n"))
                self.assertEqual(data.count(b"\r\n500 "), 50)
        finally:
            for c in spewers:
                c.close()
        self.assertEqual(s.wait_for_message(TIMEOUT).data, b"still served\r\n")
        s.wait_for(lambda: s.connection_count == 0, TIMEOUT, "spewers to be disconnected")
        self.assertEqual(s.errors, [])

    def test_idle_timeout_disconnects_silent_clients(self) -> None:
        s = self.server(idle_timeout=0.3, poll_interval=0.05)
        with RawClient(s.port) as c:
            self.assertEqual(c.reply()[0], Code.GREETING)
            start = time.monotonic()
            self.assertEqual(c.sock.recv(100), b"")
            self.assertLess(time.monotonic() - start, 5.0)

    def test_concurrent_clients(self) -> None:
        s = self.server()
        failures: list[BaseException] = []

        def send(n: int) -> None:
            try:
                with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
                    for i in range(10):
                        c.sendmail(f"t{n}@x.example", ["r@x.example"], f"{n}-{i}\r\n".encode())
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=send, args=(n,)) for n in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT * 3)
        self.assertEqual(failures, [])
        envs = s.wait_for_messages(200, TIMEOUT)
        self.assertEqual(
            sorted(e.data for e in envs),
            sorted(f"{n}-{i}\r\n".encode() for n in range(20) for i in range(10)),
        )
        for n in range(20):  # per connection, order is kept
            mine = [e.data for e in envs if e.mail_from == f"t{n}@x.example"]
            self.assertEqual(mine, [f"{n}-{i}\r\n".encode() for i in range(10)])

    def test_handler_errors_can_fail_the_test_at_stop(self) -> None:
        def handler(env: Envelope) -> None:
            raise ValueError("handler bug")

        s = SMTPServer(handler=handler, raise_errors=True, report_errors=False)
        s.start()
        try:
            with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
                with self.assertRaises(smtplib.SMTPDataError):
                    c.sendmail("a@b.example", ["c@d.example"], b"x\r\n")
        finally:
            with self.assertRaises(HandlerErrors) as cm:
                s.stop()
        self.assertIsInstance(cm.exception.__cause__, ValueError)

    def test_constructor_validation(self) -> None:
        server_ctx, _ = localhost_contexts()
        bad: list[dict[str, Any]] = [
            {"ssl_context": server_ctx, "starttls_context": server_ctx},
            {"auth_required": True},
            {"max_recipients": 10},
            {"auth": {"u": "p"}, "auth_mechanisms": ("GSSAPI",)},
        ]
        for kwargs in bad:
            with self.subTest(kwargs=list(kwargs)), self.assertRaises(ValueError):
                SMTPServer(**kwargs)

    def test_wait_for_messages_times_out(self) -> None:
        s = self.server()
        start = time.monotonic()
        with self.assertRaises(TimeoutError):
            s.wait_for_messages(1, timeout=0.2)
        self.assertLess(time.monotonic() - start, 5.0)

    def test_ipv6(self) -> None:
        if not socket.has_ipv6:
            self.skipTest("no IPv6")
        try:
            s = self.server(("::1", 0))
        except OSError as exc:
            self.skipTest(f"::1 not usable: {exc}")
        with smtplib.SMTP("::1", s.port, timeout=TIMEOUT) as c:
            c.sendmail("a@b.example", ["c@d.example"], b"v6\r\n")
        self.assertEqual(s.wait_for_message(TIMEOUT).peer[0], "::1")

    def test_context_manager_and_restart(self) -> None:
        with SMTPServer() as s:
            port = s.port
            with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as c:
                c.sendmail("a@b.example", ["c@d.example"], b"1\r\n")
            s.wait_for_message(TIMEOUT)
        self.assertFalse(s.ready.is_set())
        s.start()
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as c:
                c.sendmail("a@b.example", ["c@d.example"], b"2\r\n")
            self.assertEqual(s.wait_for_messages(2, TIMEOUT)[1].data, b"2\r\n")
        finally:
            s.stop()


class TestCompat(unittest.TestCase):
    """``TestSMTPServer`` as CPython's test_logging uses it."""

    def test_smtphandler(self) -> None:
        messages: list[tuple[Any, str, list[str], str]] = []
        handled = threading.Event()

        def process_message(peer: Any, mailfrom: str, rcpttos: list[str], data: str) -> None:
            messages.append((peer, mailfrom, rcpttos, data))
            handled.set()

        sockmap: dict[int, Any] = {}
        server = TestSMTPServer(("127.0.0.1", 0), process_message, 0.001, sockmap)
        server.start()
        addr = ("127.0.0.1", server.port)
        h = logging.handlers.SMTPHandler(addr, "me", "you", "Log", timeout=TIMEOUT)
        try:
            self.assertEqual(h.toaddrs, ["you"])
            r = logging.makeLogRecord({"msg": "Hello \u2713"})
            h.handle(r)
            handled.wait(TIMEOUT)
        finally:
            server.stop()
            h.close()
        self.assertTrue(handled.is_set())
        self.assertEqual(len(messages), 1)
        peer, mailfrom, rcpttos, data = messages[0]
        self.assertEqual(mailfrom, "me")
        self.assertEqual(rcpttos, ["you"])
        self.assertIn("\nSubject: Log\n", data)
        self.assertTrue(data.endswith("\n\nHello \u2713"))
        self.assertNotIn("\r", data)
        self.assertEqual(peer[0], "127.0.0.1")

    def test_data_form_matches_smtpd_decode_data(self) -> None:
        got: list[str] = []
        server = TestSMTPServer(("127.0.0.1", 0), lambda *a: got.append(a[3]), 0.001, {})
        server.start()
        try:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=TIMEOUT) as c:
                c.sendmail("a@b", ["c@d"], b"A: b\r\n\r\nl1\r\n.dot\r\n\r\nl3")
            server.wait_for_message(TIMEOUT)
        finally:
            server.stop()
        # smtplib appends the final CRLF; smtpd dropped it with the terminator.
        self.assertEqual(got, ["A: b\n\nl1\n.dot\n\nl3"])

    def test_bare_line_endings_delivered_as_smtpd_did(self) -> None:
        # smtpd (decode_data=True) delivered bare CR and LF unchanged, and so
        # does TestSMTPServer; the end of data is still only CRLF.CRLF, so the
        # "smuggled" message below is content of the first one.  Expected
        # values are what CPython 3.11's smtpd.SMTPServer gave for these bytes.
        cases = [
            (b"a\nb\r\n.\r\n", "a\nb"),
            (b"a\rb\r\n.\r\n", "a\rb"),
            (b"a\nb\rc\r\n.d\n..e\r\n\r\n.\r\n", "a\nb\rc\nd\n..e\n"),
            (
                b"real\r\n\n.\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\nforged\r\n.\r\n",
                "real\n\n.\nMAIL FROM:<evil@x>\nRCPT TO:<victim@y>\nDATA\nforged",
            ),
        ]
        got: list[tuple[str, list[str], str]] = []
        server = TestSMTPServer(
            ("127.0.0.1", 0), lambda peer, mf, rcpts, data: got.append((mf, rcpts, data)), 0.001, {}
        )
        server.start()
        try:
            for content, _ in cases:
                with RawClient(server.port) as c:
                    c.send(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
                    self.assertEqual(c.codes(5), [220, 250, 250, 250, 354])
                    c.send(content)
                    self.assertEqual(c.reply()[0], Code.OK)
                    c.send(b"QUIT\r\n")
                    self.assertEqual(c.reply()[0], Code.BYE)
            server.wait_for_messages(len(cases), TIMEOUT)
        finally:
            server.stop()
        self.assertEqual(got, [("a@b", ["c@d"], data) for _, data in cases])
        self.assertEqual(server.rejected, [])

    def test_compat_surface(self) -> None:
        self.assertIs(TestSMTPServer.__test__, False)
        server = TestSMTPServer(("127.0.0.1", 0), lambda *a: None, 0.5, {})
        try:
            self.assertIsInstance(server.port, int)
            self.assertEqual(server.server_address[1], server.port)
            self.assertFalse(server.ready.is_set())
            server.start()
            self.assertTrue(server.ready.is_set())
        finally:
            server.stop()
            server.stop()  # idempotent


class TestSink(unittest.TestCase):
    def test_sink_prints_messages(self) -> None:
        out = io.StringIO()
        server = add_smtp_sink("127.0.0.1", 0, out=out)
        try:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=TIMEOUT) as c:
                c.sendmail("a@b.example", ["c@d.example"], b"Subject: sink\r\n\r\nhello\r\n")
            server.wait_for_message(TIMEOUT)
        finally:
            server.stop()
        text = out.getvalue()
        self.assertIn("---------- SMTP message from ('127.0.0.1'", text)
        self.assertIn("X-Mail-From: a@b.example", text)
        self.assertIn("X-Rcpt-To: c@d.example", text)
        self.assertIn("Subject: sink\n\nhello\n", text)

    def test_sink_with_printer_callable(self) -> None:
        blocks: list[tuple[str, str]] = []
        server = add_smtp_sink("127.0.0.1", 0, out=lambda title, body: blocks.append((title, body)))
        try:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=TIMEOUT) as c:
                c.sendmail("a@b.example", ["c@d.example"], b"x\r\n")
            server.wait_for_message(TIMEOUT)
        finally:
            server.stop()
        self.assertEqual(len(blocks), 1)
        self.assertTrue(blocks[0][0].startswith("SMTP message from "))

    def test_cli_arguments_build_a_sink(self) -> None:
        parser = argparse.ArgumentParser()
        parser.add_argument("--host", default="127.0.0.1")
        add_smtp_arguments(parser)
        self.assertIsNone(smtp_sink_from_args(parser.parse_args(["--smtp", "off"])))
        args = parser.parse_args(["--smtp", "0", "--smtp-tls", "starttls", "--smtp-auth", "u:p"])
        blocks: list[tuple[str, str]] = []
        server = smtp_sink_from_args(args, lambda title, body: blocks.append((title, body)))
        assert server is not None
        self.assertFalse(server.ready.is_set())  # bound, not started: the CLI starts it
        _, client_ctx = localhost_contexts()
        server.start()
        try:
            with smtplib.SMTP("localhost", server.port, timeout=TIMEOUT) as c:
                c.starttls(context=client_ctx)
                c.login("u", "p")
                c.sendmail("a@b.example", ["c@d.example"], b"cli\r\n")
            server.wait_for_message(TIMEOUT)
        finally:
            server.stop()
        self.assertIn("X-TLS: TLS", blocks[0][1])
        self.assertIn("X-Auth-User: u", blocks[0][1])


@unittest.skipUnless(shutil.which("swaks"), "swaks is not installed")
class TestSwaks(ServerTestCase):
    def swaks(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["swaks", "--silent", "1", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def test_plain_message(self) -> None:
        s = self.server()
        res = self.swaks(
            "--server",
            f"127.0.0.1:{s.port}",
            "--from",
            "a@b.example",
            "--to",
            "c@d.example",
            "--header",
            "Subject: from swaks",
            "--body",
            "swaks body",
        )
        self.assertEqual(res.returncode, 0, res.stderr)
        env = s.wait_for_message(TIMEOUT)
        self.assertEqual(env.message["subject"], "from swaks")
        self.assertIn("swaks body", env.text)

    def test_pipelining_starttls_auth(self) -> None:
        server_ctx, _ = localhost_contexts()
        s = self.server(starttls_context=server_ctx, auth={"u": "p"})
        for mechanism in ("PLAIN", "LOGIN"):
            with self.subTest(mechanism=mechanism):
                res = self.swaks(
                    "--server",
                    f"127.0.0.1:{s.port}",
                    "--from",
                    "a@b.example",
                    "--to",
                    "c@d.example",
                    "--tls",
                    "--pipeline",
                    "--auth",
                    mechanism,
                    "--auth-user",
                    "u",
                    "--auth-password",
                    "p",
                )
                self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        envs = s.wait_for_messages(2, TIMEOUT)
        self.assertTrue(all(e.tls and e.auth_user == "u" for e in envs))

    def test_rejected_recipient_exit_code(self) -> None:
        def on_rcpt(address: str, options: list[str]) -> None:
            raise SMTPReject(550, "5.1.1 unknown")

        s = self.server(on_rcpt=on_rcpt)
        res = self.swaks("--server", f"127.0.0.1:{s.port}", "--to", "x@y.example")
        self.assertNotEqual(res.returncode, 0)
        self.assertEqual(s.messages, [])


if __name__ == "__main__":
    unittest.main()
