"""Every wait's TimeoutError says what arrived; matchers on SMTP, datagrams, streams (issue 13).

Each timeout message must name the server and its address, what was awaited,
how many items arrived, a summary of the last few, and the nearest miss
when a matcher was given.  ``HandlerErrors`` shows each handler traceback.
"""

from __future__ import annotations

import re
import smtplib
import socket
import unittest
import urllib.error
import urllib.request

from protocols import (
    Contains,
    HandlerErrors,
    HTTPServer,
    Prefix,
    SMTPReject,
    SMTPServer,
    TCPServer,
    UDPServer,
    UnixDatagramServer,
    UnixStreamServer,
    localhost_contexts,
)
from protocols.syslog import SyslogUDPServer

SHORT = 0.05


class TimeoutReportMixin(unittest.TestCase):
    def assert_report(self, exc: BaseException, server: object, *parts: str) -> str:
        text = str(exc)
        self.assertIsInstance(exc, TimeoutError)
        self.assertIn(f"{type(server).__name__} {server.server_address!r}", text)  # type: ignore[attr-defined]
        for part in parts:
            self.assertIn(part, text)
        return text


class HTTPWaitReportTest(TimeoutReportMixin):
    def test_wait_for_requests_lists_request_lines(self) -> None:
        with HTTPServer() as srv:
            for i in range(7):
                urllib.request.urlopen(f"{srv.url}/r{i}?q=1", timeout=5).close()
            with self.assertRaises(TimeoutError) as cm:
                srv.wait_for_requests(8, timeout=SHORT)
            text = self.assert_report(
                cm.exception, srv, "waiting for 8 HTTP request(s)", "7 arrived", "the last 5:"
            )
            self.assertIn("GET /r6?q=1 HTTP/1.1", text)
            self.assertNotIn("/r1?", text)

    def test_wait_for_request_predicate(self) -> None:
        with HTTPServer() as srv:
            urllib.request.urlopen(srv.url + "/x", timeout=5).close()
            with self.assertRaises(TimeoutError) as cm:
                srv.wait_for_request(lambda r: r.path == "/y", timeout=SHORT)
            self.assert_report(cm.exception, srv, "a matching HTTP request", "1 arrived", "GET /x")

    def test_generic_wait_for_names_the_server(self) -> None:
        with HTTPServer() as srv:
            with self.assertRaises(TimeoutError) as cm:
                srv.wait_for(lambda: None, SHORT, "the moon")
            self.assert_report(cm.exception, srv, "waiting for the moon")


class SMTPWaitReportTest(TimeoutReportMixin):
    def send(self, srv: SMTPServer, subject: str, rcpt: str = "b@example.net") -> None:
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=5) as c:
            c.sendmail(
                "a@example.org", [rcpt], f"Subject: {subject}\r\nX-App: t\r\n\r\nhello body\r\n"
            )

    def test_wait_for_messages_shows_envelopes_and_the_nearest_miss(self) -> None:
        with SMTPServer() as srv:
            self.send(srv, "first")
            with self.assertRaises(TimeoutError) as cm:
                srv.wait_for_messages(2, timeout=SHORT)
            self.assert_report(
                cm.exception,
                srv,
                "waiting for 2 message(s)",
                "1 arrived",
                "from 'a@example.org' to ['b@example.net'] subject 'first'",
            )
            with self.assertRaises(TimeoutError) as cm:
                srv.wait_for_message(timeout=SHORT, subject="second")
            self.assert_report(
                cm.exception,
                srv,
                "matching subject='second'",
                "1 arrived (0 matching)",
                "nearest miss:",
                "subject: got 'first', want 'second'",
            )

    def test_rejections_and_logins(self) -> None:
        def refuse(envelope: object) -> None:
            raise SMTPReject(550, "no")

        with SMTPServer(handler=refuse) as srv:
            with self.assertRaises(smtplib.SMTPDataError):
                self.send(srv, "x")
            with self.assertRaises(TimeoutError) as cm:
                srv.wait_for_rejections(2, timeout=SHORT)
            self.assert_report(cm.exception, srv, "2 rejected message(s)", "1 arrived", "550")
            with self.assertRaises(TimeoutError) as cm:
                srv.wait_for_logins(1, timeout=SHORT)
            self.assert_report(cm.exception, srv, "1 AUTH attempt(s)", "0 arrived")

    def test_smtp_matchers_in_waits_and_queries(self) -> None:
        server_ctx, client_ctx = localhost_contexts()
        with SMTPServer(starttls_context=server_ctx, auth={"u": "p"}) as srv:
            self.send(srv, "plain", rcpt="x@example.net")
            with smtplib.SMTP("localhost", srv.port, timeout=5) as c:
                c.starttls(context=client_ctx)
                c.login("u", "p")
                c.sendmail(
                    "s@example.org",
                    ["y@example.net", "z@example.net"],
                    "Subject: over tls\r\n\r\nsecret text\r\n",
                )
            [env] = srv.wait_for_messages(1, tls=True, auth_user="u", timeout=5)
            self.assertEqual(env.mail_from, "s@example.org")
            self.assertEqual(len(srv.find_messages(recipient="z@example.net")), 1)
            self.assertEqual(len(srv.find_messages(recipient=re.compile("example"))), 2)
            self.assertEqual(len(srv.find_messages(sender=Prefix("a@"))), 1)
            self.assertEqual(len(srv.find_messages(body="secret")), 1)  # a substring
            self.assertEqual(len(srv.find_messages(headers={"X-App": "t"})), 1)
            self.assertEqual(len(srv.find_messages(headers="X-App")), 1)
            self.assertEqual(len(srv.find_messages(tls=False)), 1)
            self.assertEqual(srv.find_messages(subject="nope"), [])

    def test_received_at_is_monotonic_with_a_wall_clock_twin(self) -> None:
        import time

        with SMTPServer() as srv:
            before = time.monotonic()
            self.send(srv, "t")
            env = srv.wait_for_message(timeout=5)
            self.assertLessEqual(before, env.received_at)
            self.assertLessEqual(env.received_at, time.monotonic())
            self.assertLess(abs(env.received_wall - time.time()), 60)


class DatagramWaitReportTest(TimeoutReportMixin):
    def test_udp_first_bytes_and_matchers(self) -> None:
        with UDPServer() as srv, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.sendto(b"<11>disk full" + b"x" * 100, srv.server_address)
            c.sendto(b"<14>all good", srv.server_address)
            srv.wait_for_datagrams(2, timeout=5)
            with self.assertRaises(TimeoutError) as cm:
                srv.wait_for_datagrams(3, timeout=SHORT)
            text = self.assert_report(cm.exception, srv, "3 datagram(s)", "2 arrived")
            self.assertIn("113 bytes from", text)
            self.assertIn("b'<11>disk full", text)
            self.assertNotIn("x" * 60, text)  # only the first bytes
            [d] = srv.wait_for_datagrams(1, data=re.compile(rb"^<14>"), timeout=5)
            self.assertEqual(d.data, b"<14>all good")
            self.assertEqual(len(srv.find_datagrams(data=Contains(b"disk"))), 1)
            self.assertEqual(len(srv.find_datagrams(data=b"<14>all good")), 1)
            with self.assertRaises(TimeoutError) as cm:
                srv.wait_for_datagrams(1, data=b"<14>all bad", timeout=SHORT)
            self.assert_report(cm.exception, srv, "nearest miss: 12 bytes", "want b'<14>all bad'")

    def test_unix_datagram(self) -> None:
        with UnixDatagramServer() as srv:
            with self.assertRaises(TimeoutError) as cm:
                srv.wait_for_datagrams(1, timeout=SHORT)
            self.assert_report(cm.exception, srv, "1 datagram(s)", "0 arrived")


class StreamWaitReportTest(TimeoutReportMixin):
    def test_tcp_streams_and_data(self) -> None:
        with TCPServer() as srv:
            with socket.create_connection(srv.server_address) as c:
                c.sendall(b"hello world\n")
                srv.wait_for_data(b"world", timeout=5)
                with self.assertRaises(TimeoutError) as cm:
                    srv.wait_for_streams(1, timeout=SHORT)  # still open
                self.assert_report(
                    cm.exception,
                    srv,
                    "1 closed connection(s)",
                    "1 arrived",
                    "12 bytes, open",
                    "b'hello world\\n'",
                )
                with self.assertRaises(TimeoutError) as cm:
                    srv.wait_for_data(b"bye", timeout=SHORT)
                self.assert_report(cm.exception, srv, "Contains(b'bye')", "nearest miss:")
                [s] = srv.wait_for_streams(1, closed=False, data=re.compile(rb"wor"), timeout=5)
                self.assertEqual(srv.find_streams(data=Prefix(b"hello")), [s])
            srv.wait_for_streams(1, data=b"hello world\n", timeout=5)

    def test_unix_stream(self) -> None:
        with UnixStreamServer() as srv:
            with self.assertRaises(TimeoutError) as cm:
                srv.wait_for_data(b"x", timeout=SHORT)
            self.assert_report(cm.exception, srv, "0 arrived")


class SyslogWaitReportTest(TimeoutReportMixin):
    def test_syslog_names_the_server(self) -> None:
        with SyslogUDPServer() as srv, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.sendto(b"<11>app: disk full", srv.server_address)
            with self.assertRaises(TimeoutError) as cm:
                srv.wait_for_messages(1, text="nothing", timeout=SHORT)
            self.assert_report(cm.exception, srv, "syslog message(s)", "1 arrived", "disk full")


class HandlerErrorsTracebackTest(unittest.TestCase):
    def test_each_handler_traceback_is_in_the_message(self) -> None:
        def first_bad_handler(request: object) -> None:
            raise KeyError("first-problem")

        srv = HTTPServer(handler=first_bad_handler, report_errors=False)
        srv.start()
        for _ in range(2):
            try:
                urllib.request.urlopen(srv.url + "/", timeout=5)
            except urllib.error.HTTPError as err:
                err.close()
        srv.wait_for(lambda: len(srv.errors) == 2, 5, "two errors")
        with self.assertRaises(HandlerErrors) as cm:
            srv.stop(raise_errors=True)
        text = str(cm.exception)
        self.assertIn("2 handler error(s)", text)
        self.assertIn("--- handler error 1 of 2 ---", text)
        self.assertIn("--- handler error 2 of 2 ---", text)
        self.assertEqual(text.count("in first_bad_handler"), 2)
        self.assertIn("KeyError: 'first-problem'", text)




class ScriptedWaitReportTest(TimeoutReportMixin):
    def test_wait_for_connections_lists_them(self) -> None:
        from protocols import ScriptedServer

        with ScriptedServer() as srv:
            with socket.create_connection(srv.server_address, timeout=5):
                srv.wait_for_connections(1, timeout=5)
                with self.assertRaises(TimeoutError) as cm:
                    srv.wait_for_connections(1, closed=True, timeout=SHORT)
                self.assert_report(
                    cm.exception, srv, "1 closed scripted connection(s)", "1 arrived", "open"
                )


class CriteriaSelectTest(unittest.TestCase):
    """``Criteria.select``: the one filter every server's ``find_*()`` uses."""

    def test_select_keeps_matching_records_in_order_from_a_snapshot(self) -> None:
        from protocols._match import Criteria, Prefix, field

        criteria = Criteria([field("data", lambda r: r, Prefix(b"a"))])
        records = [b"ab", b"b", b"ac", b"a"]
        got = criteria.select(iter(records))
        self.assertEqual(got, [b"ab", b"ac", b"a"])
        self.assertEqual(Criteria([]).select(records), records)
        self.assertIsNot(Criteria([]).select(records), records)  # a copy, not the recording


if __name__ == "__main__":
    unittest.main()
