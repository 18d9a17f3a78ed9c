"""Deterministic per-command SMTP faults (issue 11 item 6), with smtplib."""

from __future__ import annotations

import contextlib
import smtplib
import socket
import threading
import time
import unittest
from typing import Any

from protocols import SMTPServer
from protocols.smtp import (
    Chaos,
    CloseAfterMessages,
    DelayReply,
    DisconnectInData,
    InvalidArgumentError,
    ReplyOn,
)

TIMEOUT = 10.0


class FaultTestCase(unittest.TestCase):
    def server(self, *faults: Any, **kwargs: Any) -> SMTPServer:
        s = SMTPServer(command_faults=list(faults), **kwargs)
        s.start()
        self.addCleanup(s.stop)
        return s


class TestReplyOn(FaultTestCase):
    def test_the_second_rcpt_gets_451(self) -> None:
        s = self.server(ReplyOn("RCPT", (451, "4.3.0 try later"), nth=2))
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            refused = c.sendmail("a@b.example", ["x@y", "z@y", "w@y"], "hi\r\n")
        self.assertEqual(refused, {"z@y": (451, b"4.3.0 try later")})
        self.assertEqual(s.wait_for_message(TIMEOUT).rcpt_tos, ("x@y", "w@y"))
        rej = s.wait_for_rejections(1, TIMEOUT, command="RCPT")[0]
        self.assertEqual((rej.code, rej.reason, rej.line.upper()), (451, "fault", b"RCPT TO:<Z@Y>"))
        fired = s.wait_for_faults(1, TIMEOUT)[0]
        self.assertEqual((fired.verb, fired.action), ("RCPT", "reply 451"))

    def test_matching_argument(self) -> None:
        s = self.server(ReplyOn("MAIL", (550, "5.7.1 spammer"), match=r"(?i)^FROM:<spam@"))
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
                c.sendmail("spam@x.example", ["a@b"], "x\r\n")
            self.assertEqual(cm.exception.smtp_code, 550)
            self.assertEqual(c.sendmail("ham@x.example", ["a@b"], "x\r\n"), {})
        self.assertEqual(s.wait_for_message(TIMEOUT).mail_from, "ham@x.example")

    def test_bad_rules_are_refused(self) -> None:
        for make in (
            lambda: ReplyOn("RCPT", (354, "x")),
            lambda: ReplyOn("R CPT", (451, "x")),
            lambda: ReplyOn("RCPT", (451, "x"), nth=0),
            lambda: Chaos(1.5),
            lambda: DelayReply("DATA", -1),
            lambda: DelayReply("DATA", 1, nth=0),  # would never fire
            lambda: ReplyOn("MAIL", (550, "x"), match="("),  # re.error before
            lambda: SMTPServer(command_faults=["nope"]),  # type: ignore[list-item]
        ):
            with self.assertRaises(InvalidArgumentError):
                make()


class TestCloseAfterMessages(FaultTestCase):
    def test_421_after_k_messages_on_a_connection(self) -> None:
        s = self.server(CloseAfterMessages(2))
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            c.sendmail("a@b", ["c@d"], "1\r\n")
            c.sendmail("a@b", ["c@d"], "2\r\n")
            with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
                c.sendmail("a@b", ["c@d"], "3\r\n")
            self.assertEqual(cm.exception.smtp_code, 421)
            self.assertIsNone(c.sock)  # smtplib closes on 421, and so did we
        # A new connection starts counting again.
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            c.sendmail("a@b", ["c@d"], "4\r\n")
        self.assertEqual(
            [e.data for e in s.wait_for_messages(3, TIMEOUT)], [b"1\r\n", b"2\r\n", b"4\r\n"]
        )
        self.assertEqual(s.wait_for_session_events(1, TIMEOUT, kind="CLOSE")[0].reply_code, 421)

    def test_per_server(self) -> None:
        s = self.server(CloseAfterMessages(1, per="server"))
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            c.sendmail("a@b", ["c@d"], "1\r\n")
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            self.assertEqual(c.ehlo()[0], 421)  # the server counts every connection's
            with self.assertRaises(smtplib.SMTPServerDisconnected):
                c.noop()


class TestDisconnectInData(FaultTestCase):
    def test_nothing_is_delivered(self) -> None:
        s = self.server(DisconnectInData(after=10, nth=2))
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            c.sendmail("a@b", ["c@d"], "first\r\n")
            with self.assertRaises(smtplib.SMTPServerDisconnected):
                c.sendmail("a@b", ["c@d"], "x" * 5000 + "\r\n")
        self.assertEqual(s.wait_for_faults(1, TIMEOUT)[0].action, "disconnect")
        s.wait_for(lambda: s.connection_count == 0, TIMEOUT)
        self.assertEqual([e.data for e in s.messages], [b"first\r\n"])

    def test_pipelined_content_is_dropped_too(self) -> None:
        s = self.server(DisconnectInData(after=0))
        with socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT) as sock:
            sock.sendall(
                b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhi\r\n.\r\nNOOP\r\n"
            )
            data = b""
            with contextlib.suppress(ConnectionResetError):
                while chunk := sock.recv(65536):
                    data += chunk
        self.assertTrue(data.endswith(b"354 End data with <CR><LF>.<CR><LF>\r\n"), data)
        s.wait_for(lambda: s.connection_count == 0, TIMEOUT)
        self.assertEqual(s.messages, [])
        self.assertEqual(s.wait_for_faults(1, TIMEOUT)[0].action, "disconnect")


class TestDelayReply(FaultTestCase):
    def test_delay_holds_only_that_connection(self) -> None:
        s = self.server(DelayReply("DATA", 1.0))
        other = self.server()
        delayed: list[float] = []

        def slow_client() -> None:
            with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
                start = time.monotonic()
                c.sendmail("a@b", ["c@d"], "slow\r\n")
                delayed.append(time.monotonic() - start)

        t = threading.Thread(target=slow_client)
        t.start()
        s.wait_for_faults(1, TIMEOUT)  # the slow client's DATA is being held now
        start = time.monotonic()
        with smtplib.SMTP("127.0.0.1", other.port, timeout=TIMEOUT) as c:  # same reactor
            for _ in range(5):
                c.sendmail("a@b", ["c@d"], "fast\r\n")
        fast = time.monotonic() - start
        t.join(TIMEOUT)
        self.assertFalse(t.is_alive())
        self.assertGreaterEqual(delayed[0], 0.9)
        self.assertLess(fast, 0.8, "another server waited for the delay")
        self.assertEqual(s.wait_for_message(TIMEOUT).data, b"slow\r\n")

    def test_pipelined_replies_stay_in_order_behind_the_delay(self) -> None:
        s = self.server(DelayReply("NOOP", 0.3, nth=1))
        with socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"EHLO x\r\nNOOP\r\nRSET\r\nQUIT\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        codes = [line[:3] for line in data.split(b"\r\n") if line[3:4] == b" "]
        self.assertEqual(codes, [b"220", b"250", b"250", b"250", b"221"])

    def test_a_flood_behind_a_delay_is_answered_in_order_once(self) -> None:
        s = self.server(DelayReply("NOOP", 0.2, nth=1))
        n = 5000
        with socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"EHLO x\r\n" + b"NOOP\r\n" * n + b"QUIT\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        codes = [line[:3] for line in data.split(b"\r\n") if line[3:4] == b" "]
        self.assertEqual(codes, [b"220", b"250"] + [b"250"] * n + [b"221"])
        self.assertEqual(len(s.faults_fired), 1)

    def test_stop_during_a_delay_sends_the_held_replies_then_421(self) -> None:
        s = SMTPServer(command_faults=[DelayReply("NOOP", 30)])
        s.start()
        with socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"NOOP\r\n")
            s.wait_for_faults(1, TIMEOUT)
            start = time.monotonic()
            s.stop()
            self.assertLess(time.monotonic() - start, 5)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        self.assertTrue(data.startswith(b"220 "), data)
        self.assertIn(b"\r\n250 OK\r\n421 ", data)


    def test_a_delayed_starttls_reply_goes_out_in_plaintext_before_the_handshake(self) -> None:
        # The held 220 was written after the TLS layer had started, so it
        # waited for a handshake the client would only begin once it read it.
        from protocols import localhost_contexts

        server_ctx, client_ctx = localhost_contexts()
        s = self.server(DelayReply("STARTTLS", 0.2), starttls_context=server_ctx)
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            c.ehlo()
            start = time.monotonic()
            self.assertEqual(c.starttls(context=client_ctx)[0], 220)
            self.assertGreaterEqual(time.monotonic() - start, 0.15)
            c.ehlo()
            self.assertEqual(c.sendmail("a@b.example", ["c@d.example"], "tls\r\n"), {})
        env = s.wait_for_message(TIMEOUT)
        self.assertTrue(env.tls)
        self.assertEqual(s.tls_errors, [])

    def test_plaintext_sent_during_a_delayed_starttls_is_dropped(self) -> None:
        from protocols import localhost_contexts

        server_ctx, client_ctx = localhost_contexts()
        s = self.server(DelayReply("STARTTLS", 0.3), starttls_context=server_ctx)
        with socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT) as raw:
            f = raw.makefile("rb")
            self.assertTrue(f.readline().startswith(b"220 "))
            raw.sendall(b"EHLO x\r\n")
            while not f.readline().startswith(b"250 "):
                pass
            raw.sendall(b"STARTTLS\r\n")
            s.wait_for_faults(1, TIMEOUT)
            raw.sendall(b"MAIL FROM:<injected@x>\r\n")  # plaintext behind STARTTLS
            self.assertTrue(f.readline().startswith(b"220 "))
            f.close()
            with client_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"EHLO y\r\n")
                got = b""
                while b"\r\n250 " not in got:
                    got += tls.recv(4096)
                tls.sendall(b"RCPT TO:<c@d>\r\n")  # no MAIL in this session: 503
                self.assertTrue(tls.recv(4096).startswith(b"503"))
        self.assertNotIn("MAIL", [c.verb for c in s.commands])


class TestHangUpDuringADelay(FaultTestCase):
    """A client that hangs up while its reply is delayed is noticed at once: the
    connection closes and ``session_events`` records the hang-up when it happened
    (reading had been paused for the delay, so the EOF waited for the timer)."""

    DELAY = 5.0

    def _mail_then_held(self, s: SMTPServer) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT)
        f = sock.makefile("rb")
        self.assertTrue(f.readline().startswith(b"220 "))
        sock.sendall(b"EHLO x\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        f.close()
        sock.sendall(b"MAIL FROM:<a@b.example>\r\n")
        s.wait_for_faults(1, TIMEOUT)  # the 250 to MAIL is being held now
        return sock

    def _assert_hang_up_seen_at_once(self, s: SMTPServer, hung_up_at: float) -> None:
        s.wait_for(lambda: s.connection_count == 0, 2.0, "the connection closed")
        self.assertLess(time.monotonic() - hung_up_at, self.DELAY / 2)
        (event,) = s.wait_for_session_events(1, 2.0)
        self.assertEqual((event.kind, event.reply_code), ("HANGUP", 0))
        self.assertLess(event.received_at - hung_up_at, 1.0)
        self.assertEqual(s.find_rejections(), [])

    def test_eof_while_a_reply_is_delayed_closes_at_once(self) -> None:
        s = self.server(DelayReply("MAIL", self.DELAY))
        sock = self._mail_then_held(s)
        hung_up_at = time.monotonic()
        sock.close()
        self._assert_hang_up_seen_at_once(s, hung_up_at)

    def test_reset_while_a_reply_is_delayed_is_seen_at_once(self) -> None:
        import struct

        s = self.server(DelayReply("MAIL", self.DELAY))
        sock = self._mail_then_held(s)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        hung_up_at = time.monotonic()
        sock.close()  # RST
        self._assert_hang_up_seen_at_once(s, hung_up_at)

    def test_commands_sent_during_the_delay_are_answered_after_it_in_order(self) -> None:
        s = self.server(DelayReply("MAIL", 0.5))
        sock = self._mail_then_held(s)
        with sock:
            sock.sendall(b"RCPT TO:<c@d.example>\r\n")
            time.sleep(0.1)
            sock.sendall(b"RSET\r\nQUIT\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        codes = [line[:3] for line in data.split(b"\r\n") if line[3:4] == b" "]
        self.assertEqual(codes, [b"250", b"250", b"250", b"221"])  # MAIL, RCPT, RSET, QUIT
        self.assertEqual([e.kind for e in s.session_events], ["RSET", "QUIT"])


    def _pipeline_then_half_close(self, s: SMTPServer, first: bytes, rest: bytes) -> list[bytes]:
        with socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT) as sock:
            sock.sendall(first)
            if rest:
                s.wait_for_faults(1, TIMEOUT)  # the reply to the first command is held now
                sock.sendall(rest)
            sock.shutdown(socket.SHUT_WR)  # a half-close: the client still reads
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return [line[:3] for line in data.split(b"\r\n") if line[3:4] == b" "]

    MESSAGE = (
        b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n"
        b"Subject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n"
    )

    def test_a_half_close_behind_commands_sent_during_the_delay_is_not_a_hang_up(self) -> None:
        # A pipelining client (nc -N, printf | ...) sends everything and shuts
        # down its write side: the EOF behind a backlog waits for it (as without
        # a delay, test_smtp_command_budget), the message is delivered and
        # every reply sent.  It was taken for a hang-up: nothing delivered.
        s = self.server(DelayReply("EHLO", 0.3))
        codes = self._pipeline_then_half_close(s, b"EHLO x\r\n", self.MESSAGE)
        self.assertEqual(codes, [b"220", b"250", b"250", b"250", b"354", b"250", b"221"])
        self.assertEqual(s.wait_for_message(TIMEOUT).rcpt_tos, ("c@d.example",))
        self.assertEqual([e.kind for e in s.session_events], ["QUIT"])

    def test_a_half_close_behind_commands_in_the_same_read_is_not_a_hang_up(self) -> None:
        s = self.server(DelayReply("EHLO", 0.3))
        codes = self._pipeline_then_half_close(s, b"EHLO x\r\n" + self.MESSAGE, b"")
        self.assertEqual(codes, [b"220", b"250", b"250", b"250", b"354", b"250", b"221"])
        self.assertEqual(s.wait_for_message(TIMEOUT).rcpt_tos, ("c@d.example",))
        self.assertEqual([e.kind for e in s.session_events], ["QUIT"])

    def test_a_half_close_then_more_delays_is_answered_after_each(self) -> None:
        s = self.server(DelayReply("EHLO", 0.2), DelayReply("RCPT", 0.2))
        codes = self._pipeline_then_half_close(s, b"EHLO x\r\n", self.MESSAGE)
        self.assertEqual(codes, [b"220", b"250", b"250", b"250", b"354", b"250", b"221"])
        self.assertEqual(len(s.wait_for_messages(1, TIMEOUT)), 1)

    def test_input_during_a_delay_is_bounded(self) -> None:
        from protocols.smtp import HELD_INPUT_LIMIT

        s = self.server(DelayReply("NOOP", 1.0, nth=1))
        with socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"NOOP\r\n")
            s.wait_for_faults(1, TIMEOUT)
            sock.setblocking(False)
            chunk, sent, deadline = b"NOOP\r\n" * 10_000, 0, time.monotonic() + 0.5
            while sent < 64 * 1024 * 1024 and time.monotonic() < deadline:
                try:
                    sent += sock.send(chunk)
                except BlockingIOError:
                    time.sleep(0.01)
            # The server stopped reading after HELD_INPUT_LIMIT: the rest sits
            # in the kernel buffers (a few MiB on loopback), not in the server.
            self.assertGreater(sent, HELD_INPUT_LIMIT)
            self.assertLess(sent, 32 * 1024 * 1024)


class TestChaos(FaultTestCase):
    def run_clients(self, seed: int) -> list[int]:
        s = self.server(Chaos(0.3, (451, "4.3.0 chaos"), verbs=("RCPT",), seed=seed))
        codes = []
        with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
            c.ehlo()
            c.mail("a@b")
            for i in range(40):
                codes.append(c.rcpt(f"r{i}@x")[0])
        return codes

    def test_same_seed_same_faults(self) -> None:
        first = self.run_clients(7)
        self.assertEqual(first, self.run_clients(7))
        self.assertNotEqual(first, self.run_clients(8))
        self.assertIn(451, first)
        self.assertIn(250, first)


if __name__ == "__main__":
    unittest.main()
