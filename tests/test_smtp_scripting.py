"""Scripting the SMTP server (issue 11 items 1-4): replies, enhanced codes,
EHLO keywords, HELO/AUTH policies, the on_command hook and SASL (PLAIN,
LOGIN, CRAM-MD5 built in, custom mechanisms), proven with smtplib and swaks.
"""

from __future__ import annotations

import base64
import shutil
import smtplib
import socket
import subprocess
import threading
import unittest
from collections.abc import Generator
from typing import Any

from protocols import SMTPReject, SMTPServer, SMTPSession
from protocols.smtp import InvalidArgumentError, Reply, SMTPServerConnection

TIMEOUT = 10.0


class ScriptingTestCase(unittest.TestCase):
    def server(self, **kwargs: Any) -> SMTPServer:
        s = SMTPServer(**kwargs)
        s.start()
        self.addCleanup(s.stop)
        return s

    def client(self, s: SMTPServer) -> smtplib.SMTP:
        c = smtplib.SMTP("127.0.0.1", s.port, local_hostname="client", timeout=TIMEOUT)
        self.addCleanup(c.close)
        return c


def raw_dialogue(port: int, data: bytes) -> bytes:
    """Send ``data`` at once, then read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


class TestReplies(ScriptingTestCase):
    def test_enhanced_status_codes_off(self) -> None:
        s = self.server(enhanced_status_codes=False)
        c = self.client(s)
        c.ehlo()
        self.assertFalse(c.has_extn("enhancedstatuscodes"))
        self.assertEqual(c.noop(), (250, b"OK"))
        self.assertEqual(c.mail("a@b.example"), (250, b"OK"))
        self.assertEqual(c.rcpt("c@d.example"), (250, b"OK"))
        self.assertEqual(c.docmd("FROB"), (500, b"Command unrecognized"))

    def test_enhanced_status_codes_on_by_default(self) -> None:
        s = self.server()
        c = self.client(s)
        c.ehlo()
        self.assertTrue(c.has_extn("enhancedstatuscodes"))
        self.assertEqual(c.noop(), (250, b"2.0.0 OK"))

    def test_every_accepted_step_can_be_set(self) -> None:
        s = self.server(
            auth={"u": "p"},
            auth_over_plaintext=True,
            enhanced_status_codes=False,
            replies={
                "greeting": (220, "mx.example welcome"),
                "EHLO": (250, "mx.example at your service"),
                "MAIL": (250, "sender fine"),
                "RCPT": (251, "will forward"),
                "DATA": (354, "go on"),
                "message": (250, "queued as 42"),
                "AUTH": (235, "Authentication Succeeded"),
                "NOOP": (250, "still here"),
                "RSET": (250, "flushed"),
                "QUIT": (221, "see you"),
            },
        )
        c = smtplib.SMTP(timeout=TIMEOUT)
        self.addCleanup(c.close)
        self.assertEqual(c.connect("127.0.0.1", s.port), (220, b"mx.example welcome"))
        code, text = c.ehlo("client")
        self.assertEqual((code, text.split(b"\n")[0]), (250, b"mx.example at your service"))
        self.assertEqual(c.login("u", "p"), (235, b"Authentication Succeeded"))
        self.assertEqual(c.noop(), (250, b"still here"))
        self.assertEqual(c.mail("a@b.example"), (250, b"sender fine"))
        self.assertEqual(c.rcpt("c@d.example"), (251, b"will forward"))
        self.assertEqual(c.putcmd("DATA") or c.getreply(), (354, b"go on"))
        c.send(b"hi\r\n.\r\n")
        self.assertEqual(c.getreply(), (250, b"queued as 42"))
        self.assertEqual(c.rset(), (250, b"flushed"))
        self.assertEqual(c.quit(), (221, b"see you"))
        self.assertEqual(s.wait_for_message(TIMEOUT).data, b"hi\r\n")
        login = s.wait_for_logins(1, TIMEOUT)[0]
        self.assertTrue(login.succeeded)

    def test_bad_replies_are_refused_at_construction(self) -> None:
        for replies in (
            {"MAIL": (550, "no")},  # a refusal is not a reply of an accepted step
            {"DATA": (250, "x")},
            {"BOGUS": (250, "x")},
            {"MAIL": "OK"},
        ):
            with self.subTest(replies=replies), self.assertRaises(InvalidArgumentError):
                SMTPServer(replies=replies)  # type: ignore[arg-type]
        for code in (100, 354, 600):
            with self.subTest(code=code), self.assertRaises(InvalidArgumentError):
                Reply(code, "x")

    def test_reply_text_cannot_forge_reply_lines(self) -> None:
        s = self.server(replies={"NOOP": (250, "one\r\n250 forged")})
        out = raw_dialogue(s.port, b"NOOP\r\nQUIT\r\n")
        # The CRLF makes a second line of the same reply, never a reply of its own.
        self.assertIn(b"\r\n250-one\r\n250 250 forged\r\n221 ", out)


class TestEhloKeywords(ScriptingTestCase):
    def test_fixed_list_replaces_the_builtin_one(self) -> None:
        s = self.server(ehlo_keywords=["EXPN", "SIZE 20000000", "DELIVERBY", "X-FOO bar baz"])
        c = self.client(s)
        c.ehlo()
        self.assertEqual(
            c.esmtp_features,
            {"expn": "", "size": "20000000", "deliverby": "", "x-foo": "bar baz"},
        )

    def test_callable_adds_and_removes(self) -> None:
        def keywords(builtin: list[str]) -> list[str]:
            return [k for k in builtin if k not in ("SMTPUTF8", "PIPELINING")] + ["DSN"]

        s = self.server(ehlo_keywords=keywords)
        c = self.client(s)
        c.ehlo()
        self.assertIn("dsn", c.esmtp_features)
        self.assertNotIn("smtputf8", c.esmtp_features)
        self.assertNotIn("pipelining", c.esmtp_features)
        self.assertIn("size", c.esmtp_features)

    def test_a_failing_callable_is_recorded_and_the_builtin_list_sent(self) -> None:
        def keywords(builtin: list[str]) -> list[str]:
            raise RuntimeError("boom")

        s = self.server(ehlo_keywords=keywords, report_errors=False)
        c = self.client(s)
        self.assertEqual(c.ehlo()[0], 250)
        self.assertIn("size", c.esmtp_features)
        self.assertIsInstance(s.errors[0], RuntimeError)
        s.errors.clear()

    def test_bad_keyword_lines_are_refused(self) -> None:
        for keywords in (["A\r\nB"], [""], "SIZE"):
            with self.subTest(keywords=keywords), self.assertRaises(ValueError):
                SMTPServer(ehlo_keywords=keywords)


class TestPolicies(ScriptingTestCase):
    def test_second_helo_resets_by_default(self) -> None:
        s = self.server()
        c = self.client(s)
        self.assertEqual(c.helo()[0], 250)
        self.assertEqual(c.helo()[0], 250)

    def test_second_helo_can_be_refused(self) -> None:
        s = self.server(allow_repeated_helo=False)
        c = self.client(s)
        c.helo()
        self.assertEqual(c.helo(), (503, b"Duplicate HELO/EHLO"))
        self.assertEqual(s.wait_for_rejections(1, TIMEOUT, command="HELO")[0].reason, "sequence")

    def test_auth_before_ehlo_refused_by_default(self) -> None:
        s = self.server(auth={"u": "p"}, auth_over_plaintext=True)
        c = self.client(s)
        plain = base64.b64encode(b"\0u\0p").decode()
        self.assertEqual(c.docmd("AUTH", "PLAIN " + plain)[0], 503)

    def test_auth_before_ehlo_allowed(self) -> None:
        s = self.server(auth={"u": "p"}, auth_over_plaintext=True, auth_before_ehlo=True)
        c = self.client(s)
        plain = base64.b64encode(b"\0u\0p").decode()
        self.assertEqual(c.docmd("AUTH", "PLAIN " + plain)[0], 235)
        c.helo()
        c.sendmail("a@b.example", ["c@d.example"], "x\r\n")
        self.assertEqual(s.wait_for_message(TIMEOUT).auth_user, "u")


class TestOnCommand(ScriptingTestCase):
    def test_known_unknown_and_invented_verbs(self) -> None:
        seen: list[tuple[str, str]] = []

        threads: set[str] = set()

        def on_command(session: SMTPSession, verb: str, argument: str) -> Any:
            threads.add(threading.current_thread().name)
            seen.append((verb, argument))
            if verb == "VRFY":
                return (250, f"Known User <{argument}>")
            if verb == "EXPN":
                return Reply(250, "A <a@x.example>\nB <b@x.example>")
            if verb == "XFOO":
                return 250, "foo to you"
            if verb == "HELP":
                return 214, "Supported commands: EHLO HELO MAIL RCPT DATA"
            return None

        s = self.server(on_command=on_command)
        c = self.client(s)
        self.assertEqual(c.vrfy("joe@x.example"), (250, b"Known User <joe@x.example>"))
        self.assertEqual(c.expn("staff"), (250, b"A <a@x.example>\nB <b@x.example>"))
        self.assertEqual(c.docmd("XFOO", "bar"), (250, b"foo to you"))
        self.assertEqual(c.help(), b"Supported commands: EHLO HELO MAIL RCPT DATA")
        c.sendmail("a@b.example", ["c@d.example"], "x\r\n")  # carries on as usual
        self.assertEqual(s.wait_for_message(TIMEOUT).mail_from, "a@b.example")
        self.assertIn(("XFOO", "bar"), seen)
        self.assertEqual(len(threads), 1)  # the reactor's, not the test's
        self.assertNotIn(threading.current_thread().name, threads)
        self.assertIn(("EHLO", "client"), seen)

    def test_refusing_rcpt_and_closing_at_quit(self) -> None:
        def on_command(session: SMTPSession, verb: str, argument: str) -> Any:
            if verb == "RCPT" and session.counts["RCPT"] == 2:
                raise SMTPReject(451, "4.3.2 second one later")
            if verb == "QUIT":
                return 421, "QUIT FAILED"
            return None

        s = self.server(on_command=on_command)
        with self.assertRaises(smtplib.SMTPResponseException) as cm:
            with smtplib.SMTP("127.0.0.1", s.port, timeout=TIMEOUT) as c:
                refused = c.sendmail("a@b.example", ["x@y", "z@y", "w@y"], "hi\r\n")
                self.assertEqual(refused, {"z@y": (451, b"4.3.2 second one later")})
        self.assertEqual(cm.exception.smtp_code, 421)
        self.assertEqual(s.wait_for_message(TIMEOUT).rcpt_tos, ("x@y", "w@y"))
        rej = s.wait_for_rejections(1, TIMEOUT, command="RCPT")[0]
        self.assertEqual((rej.code, rej.reason), (451, "hook"))
        self.assertEqual(s.wait_for_session_events(1, TIMEOUT, kind="CLOSE")[0].reply_code, 421)

    def test_a_refusal_can_close_and_421_always_does(self) -> None:
        def on_command(session: SMTPSession, verb: str, argument: str) -> Any:
            if verb == "MAIL" and "close" in argument:
                return Reply(451, "Requested action aborted", close=True)
            if verb == "MAIL" and "four" in argument:
                return 421, "closing connection"
            return None

        s = self.server(on_command=on_command)
        for sender in ("close@x", "four@x"):
            with self.subTest(sender=sender):
                out = raw_dialogue(
                    s.port, b"EHLO x\r\nMAIL FROM:<" + sender.encode() + b">\r\nNOOP\r\n"
                )
                self.assertFalse(out.endswith(b"OK\r\n"), out)  # NOOP never answered
        s.wait_for(lambda: s.connection_count == 0, TIMEOUT)
        self.assertEqual([r.closed for r in s.find_rejections(command="MAIL")], [True, True])

    def test_a_failing_or_silly_hook_gets_451_and_is_recorded(self) -> None:
        def on_command(session: SMTPSession, verb: str, argument: str) -> Any:
            if verb == "NOOP":
                raise KeyError("oops")
            if verb == "VRFY":
                return "not a reply"
            if verb == "EXPN":
                return 354, "go"  # a 3xx would put the client in data mode
            return None

        s = self.server(on_command=on_command, report_errors=False)
        c = self.client(s)
        c.ehlo()
        self.assertEqual(c.noop()[0], 451)
        self.assertEqual(c.vrfy("x")[0], 451)
        self.assertEqual(c.expn("x")[0], 451)
        self.assertEqual(c.sendmail("a@b.example", ["c@d.example"], "x\r\n"), {})
        self.assertEqual(len(s.errors), 3)
        s.errors.clear()

    def test_hostile_dialogue_against_the_hook_gets_rfc_replies(self) -> None:
        def on_command(session: SMTPSession, verb: str, argument: str) -> Any:
            return (250, argument) if verb == "ECHO" else None

        s = self.server(on_command=on_command)
        hostile = (
            b"EHLO x\r\nECHO a\rb\r\n"  # a bare CR in an argument
            b"ECHO " + b"x" * 600 + b"\r\n"  # over-long line
            b"\xff\xfe\r\n"  # not UTF-8
            b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nECHO inside data\r\n.\r\n"
            b"QUIT\r\n"
        )
        out = raw_dialogue(s.port, hostile)
        codes = [line[:3] for line in out.split(b"\r\n") if line[3:4] == b" "]
        self.assertEqual(codes[-1], b"221")
        self.assertNotIn(b"250 a\rb", out)
        self.assertIn(b"250 2.0.0 OK: message accepted", out)
        self.assertEqual(s.wait_for_message(TIMEOUT).data, b"ECHO inside data\r\n")
        self.assertTrue(all(c[:1] in b"2345" for c in codes), codes)


def buggy(initial: bytes | None) -> Generator[bytes, bytes, tuple[str, str]]:
    while True:  # never ends: a buggy mechanism
        yield b"BuGgYbUgGy"


def token(initial: bytes | None) -> Generator[bytes, bytes, tuple[str, str]]:
    user = initial if initial is not None else (yield b"who?")
    secret = yield b"token?"
    return user.decode(), secret.decode()


class TestSASL(ScriptingTestCase):
    def auth_server(self, **kwargs: Any) -> SMTPServer:
        return self.server(auth={"Mr.A": "somepassword"}, auth_over_plaintext=True, **kwargs)

    def test_each_builtin_mechanism_with_smtplib(self) -> None:
        s = self.auth_server(auth_mechanisms=("PLAIN", "LOGIN", "CRAM-MD5"))
        for mechanism in ("PLAIN", "LOGIN", "CRAM-MD5"):
            for initial_ok in (True, False):
                with self.subTest(mechanism=mechanism, initial_ok=initial_ok):
                    c = self.client(s)
                    c.ehlo()
                    c.user, c.password = "Mr.A", "somepassword"
                    method = getattr(c, "auth_" + mechanism.lower().replace("-", "_"))
                    code, _ = c.auth(mechanism, method, initial_response_ok=initial_ok)
                    self.assertEqual(code, 235)
                    c.close()
        logins = s.wait_for_logins(6, TIMEOUT)
        self.assertEqual(
            [(x.mechanism, x.identity, x.initial_response, x.outcome) for x in logins],
            [
                ("PLAIN", "Mr.A", True, "accepted"),
                ("PLAIN", "Mr.A", False, "accepted"),
                ("LOGIN", "Mr.A", True, "accepted"),
                ("LOGIN", "Mr.A", False, "accepted"),
                ("CRAM-MD5", "Mr.A", False, "accepted"),
                ("CRAM-MD5", "Mr.A", False, "accepted"),
            ],
        )

    def test_wrong_cram_md5_digest_is_refused(self) -> None:
        s = self.auth_server(auth_mechanisms=("CRAM-MD5",))
        c = self.client(s)
        with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
            c.login("Mr.A", "wrong")
        self.assertEqual(cm.exception.smtp_code, 535)
        self.assertEqual(s.wait_for_logins(1, TIMEOUT)[0].outcome, "rejected")

    def test_cram_md5_needs_a_mapping(self) -> None:
        with self.assertRaises(InvalidArgumentError):
            SMTPServer(auth=lambda u, p: True, auth_mechanisms=("CRAM-MD5",))

    def test_custom_mechanism(self) -> None:
        s = self.auth_server(sasl_mechanisms={"X-TOKEN": token})
        c = self.client(s)
        c.ehlo()
        self.assertIn("X-TOKEN", c.esmtp_features["auth"].split())
        answers = iter([b"Mr.A", b"somepassword"])
        code, _ = c.auth(
            "X-TOKEN", lambda challenge=None: next(answers).decode(), initial_response_ok=False
        )
        self.assertEqual(code, 235)
        login = s.wait_for_logins(1, TIMEOUT)[0]
        self.assertEqual(
            (login.mechanism, login.username, login.initial_response), ("X-TOKEN", "Mr.A", False)
        )

    def test_never_ending_mechanism_smtplib_gives_up(self) -> None:
        s = self.auth_server(sasl_mechanisms={"BUGGY": buggy})
        c = self.client(s)
        c.ehlo()
        with self.assertRaisesRegex(smtplib.SMTPException, "infinite loop"):
            c.auth("BUGGY", lambda challenge=None: "\0", initial_response_ok=False)

    def test_never_ending_mechanism_is_bounded_by_the_error_budget(self) -> None:
        s = self.auth_server(sasl_mechanisms={"BUGGY": buggy})
        dialogue = b"EHLO x\r\nAUTH BUGGY\r\n" + b"AA==\r\n" * 200
        out = raw_dialogue(s.port, dialogue)
        self.assertEqual(out.count(b"334 QnVHZ1liVWdHeQ=="), 50)  # DEFAULT_MAX_ERRORS
        self.assertTrue(
            out.endswith(b"421 4.7.0 Too many authentication rounds, closing connection\r\n")
        )

    def test_failing_custom_mechanism_answers_454_and_is_recorded(self) -> None:
        def broken(initial: bytes | None) -> Generator[bytes, bytes, tuple[str, str]]:
            yield b"x"
            raise ZeroDivisionError

        s = self.auth_server(sasl_mechanisms={"BROKEN": broken}, report_errors=False)
        out = raw_dialogue(s.port, b"EHLO x\r\nAUTH BROKEN\r\nAA==\r\nNOOP\r\nQUIT\r\n")
        self.assertIn(b"454 4.7.0 Temporary authentication failure\r\n250 2.0.0 OK\r\n", out)
        self.assertIsInstance(s.errors[0], ZeroDivisionError)
        s.errors.clear()

    def test_mechanism_failing_to_close_still_gets_rfc_replies(self) -> None:
        # A cancelled ("*") or cut-short exchange closes the generator; one
        # that ignores GeneratorExit or raises in its finally clause must
        # not take the connection (and its queued replies) down with it.
        def stubborn(initial: bytes | None) -> Generator[bytes, bytes, tuple[str, str]]:
            closes = 0
            while True:
                try:
                    yield b"again"
                except GeneratorExit:
                    closes += 1
                    if closes > 1:  # ends when garbage-collected (no unraisable)
                        raise

        def raises_on_close(initial: bytes | None) -> Generator[bytes, bytes, tuple[str, str]]:
            try:
                yield b"x"
            finally:
                raise ValueError("in finally")

        s = self.auth_server(
            sasl_mechanisms={"X-STUB": stubborn, "X-FIN": raises_on_close}, report_errors=False
        )
        for name, error in (("X-STUB", RuntimeError), ("X-FIN", ValueError)):
            with self.subTest(mechanism=name):
                out = raw_dialogue(
                    s.port, b"EHLO x\r\nAUTH " + name.encode() + b"\r\n*\r\nNOOP\r\nQUIT\r\n"
                )
                self.assertIn(b"501 5.0.0 Authentication cancelled\r\n250 2.0.0 OK\r\n", out)
                self.assertTrue(out.endswith(b"221 2.0.0 localhost closing connection\r\n"), out)
                s.wait_for(lambda: bool(s.errors), TIMEOUT)  # noqa: B023
                self.assertIsInstance(s.errors[0], error)
                s.errors.clear()

    def test_machine_alone_rejects_unknown_mechanisms(self) -> None:
        with self.assertRaises(InvalidArgumentError):
            SMTPServerConnection(auth_mechanisms=("GSSAPI",))
        with self.assertRaises(InvalidArgumentError):
            SMTPServerConnection(custom_mechanisms={"bad name": token})


@unittest.skipUnless(shutil.which("swaks"), "swaks is not installed")
class TestSwaks(ScriptingTestCase):
    def swaks(self, port: int, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "swaks",
                "--server",
                f"127.0.0.1:{port}",
                "--to",
                "bob@example.net",
                "--from",
                "alice@example.org",
                "--helo",
                "client",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def test_swaks_cram_md5_and_scripted_reply(self) -> None:
        s = self.server(
            auth={"alice": "secret"},
            auth_over_plaintext=True,
            auth_mechanisms=("CRAM-MD5",),
            replies={"message": (250, "queued as SWAKS1")},
        )
        result = self.swaks(
            s.port, "--auth", "CRAM-MD5", "--auth-user", "alice", "--auth-password", "secret"
        )
        if "Digest::MD5" in result.stderr or "not available" in result.stdout + result.stderr:
            self.skipTest("swaks lacks the Perl modules for CRAM-MD5")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("queued as SWAKS1", result.stdout)
        self.assertEqual(s.wait_for_logins(1, TIMEOUT)[0].mechanism, "CRAM-MD5")

    def test_swaks_sees_an_on_command_refusal(self) -> None:
        def on_command(session: SMTPSession, verb: str, argument: str) -> Any:
            return (550, "5.7.1 go away") if verb == "MAIL" else None

        s = self.server(on_command=on_command)
        result = self.swaks(s.port)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("550 5.7.1 go away", result.stdout)


if __name__ == "__main__":
    unittest.main()
