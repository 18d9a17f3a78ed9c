"""Syslog servers with real senders: SysLogHandler, util-linux logger, rsyslog, raw sockets."""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from protocols import Prefix, localhost_contexts
from protocols.syslog import (
    Facility,
    Framing,
    InvalidArgumentError,
    Severity,
    SyslogFormat,
    SyslogMessage,
    SyslogTCPServer,
    SyslogTLSServer,
    SyslogUDPServer,
    SyslogUnixDatagramServer,
    match_message,
)
from reactor import UsageError

LOGGER = shutil.which("logger")
RSYSLOGD = shutil.which("rsyslogd") or (
    "/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None
)
EXAMPLE = (
    b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
    b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] '
    b"\xef\xbb\xbfAn application event log entry..."
)


def _logger_help() -> str:
    if LOGGER is None:
        return ""
    out = subprocess.run([LOGGER, "--help"], capture_output=True, text=True, timeout=30)
    return out.stdout + out.stderr


LOGGER_HELP = _logger_help()


class ServersTest(unittest.TestCase):
    """Each transport records parsed messages; waits match and fail with what arrived."""

    def test_udp_records_and_matches(self) -> None:
        with SyslogUDPServer() as server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.sendto(EXAMPLE, server.server_address)
            c.sendto(b"not syslog", server.server_address)
            (m,) = server.wait_for_messages(sd=("exampleSDID@32473", "iut", "3"), timeout=10)
            self.assertEqual(
                (m.severity, m.app_name, m.msgid), (Severity.NOTICE, "evntslog", "ID47")
            )
            self.assertTrue(m.bom)
            self.assertEqual(m.raw, EXAMPLE)
            (bad,) = server.wait_for_messages(text="not syslog", timeout=10)
            self.assertEqual(bad.format, SyslogFormat.INVALID)
            self.assertEqual(server.parse_errors, [bad])
            self.assertEqual(m.peer[1], c.getsockname()[1])  # type: ignore[index]

    def test_each_matcher(self) -> None:
        other = b'<11>1 - h other 1 M2 [exampleSDID@32473 iut="4"][b@1] other text'
        with SyslogUDPServer() as server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.sendto(EXAMPLE, server.server_address)
            c.sendto(other, server.server_address)
            server.wait_for_messages(2, timeout=10)
            cases: list[tuple[dict[str, object], list[bytes]]] = [
                ({"severity": "notice"}, [EXAMPLE]),
                ({"severity": 3}, [other]),
                ({"severity": "error"}, [other]),  # an alias
                ({"app": "evntslog"}, [EXAMPLE]),
                ({"msgid": "M2"}, [other]),
                ({"sd": "b@1"}, [other]),
                ({"sd": "exampleSDID@32473"}, [EXAMPLE, other]),
                ({"sd": ("exampleSDID@32473", "eventSource")}, [EXAMPLE]),
                ({"sd": ("exampleSDID@32473", "iut", "4")}, [other]),
                ({"sd": ("exampleSDID@32473", "iut", "3"), "app": "other"}, []),
                ({"text": "application event"}, [EXAMPLE]),
                ({"text": "text", "msgid": "M2", "severity": "err"}, [other]),
            ]
            for matchers, want in cases:
                with self.subTest(**matchers):
                    got = [m for m in server.messages if match_message(m, **matchers)]  # type: ignore[arg-type]
                    self.assertEqual([m.raw for m in got], want)
                    if want:
                        found = server.wait_for_messages(len(want), timeout=10, **matchers)  # type: ignore[arg-type]
                        self.assertEqual([m.raw for m in found], want)
                    else:
                        with self.assertRaises(TimeoutError):
                            server.wait_for_messages(timeout=0.1, **matchers)  # type: ignore[arg-type]

    def test_record_false_keeps_nothing_and_refuses_to_wait(self) -> None:
        seen: list[SyslogMessage] = []
        got = threading.Event()

        def on_message(m: SyslogMessage) -> None:
            seen.append(m)
            got.set()

        with SyslogUDPServer(record=False, on_message=on_message) as server:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                c.sendto(EXAMPLE, server.server_address)
            self.assertTrue(got.wait(10))
            self.assertEqual(server.messages, [])
            with self.assertRaises(UsageError):
                server.wait_for_messages(timeout=0.1)
        self.assertEqual(seen[0].msgid, "ID47")

    def test_timeout_lists_what_arrived(self) -> None:
        with SyslogUDPServer() as server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.sendto(b"<11>app: something else", server.server_address)
            server.wait_for_messages(timeout=10)
            with self.assertRaises(TimeoutError) as cm:
                server.wait_for_messages(app="other", severity="err", timeout=0.2)
            text = str(cm.exception)
            self.assertIn("1 arrived", text)
            self.assertIn("app='app'", text)
            self.assertIn("something else", text)
            self.assertIn("nearest miss", text)
            self.assertIn("app: got 'app', want 'other'", text)
            with self.assertRaises(InvalidArgumentError):  # at once, not after a timeout
                server.wait_for_messages(severity="loud", timeout=30)
            with self.assertRaises(ValueError):
                server.wait_for_messages(severity=9, timeout=30)

    def test_matchers_take_regexes_callables_and_shared_matchers(self) -> None:
        with SyslogUDPServer() as server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.sendto(EXAMPLE, server.server_address)
            c.sendto(b"<11>worker-7[42]: job 17 failed", server.server_address)
            (m,) = server.wait_for_messages(
                app=re.compile(r"^worker-\d+$"), text=re.compile(r"job \d+ failed"), timeout=10
            )
            self.assertEqual(m.procid, "42")
            (m,) = server.wait_for_messages(
                msgid=Prefix("ID"), sd=("exampleSDID@32473", "eventID", re.compile("^10")),
                timeout=10,
            )  # fmt: skip
            self.assertEqual(m.app_name, "evntslog")
            (m,) = server.wait_for_messages(predicate=lambda r: r.procid == "42", timeout=10)
            self.assertEqual(m.app_name, "worker-7")
            self.assertEqual(len(server.find_messages(severity="err")), 1)
            self.assertEqual(server.find_messages(app="nobody"), [])

    def test_tcp_octet_counting_and_lf_framing_per_connection(self) -> None:
        with SyslogTCPServer() as server:
            with socket.create_connection(server.server_address, timeout=10) as a:
                a.sendall(b"%d %s" % (len(EXAMPLE), EXAMPLE) + b"10 <14>a: x\ny")
            with socket.create_connection(server.server_address, timeout=10) as b:
                b.sendall(b"<14>lf: one\n<14>lf: two\r\n<14>lf: unterminated")
            server.wait_for_messages(5, timeout=10)
            counted = [m for m in server.messages if m.framing is Framing.OCTET_COUNTING]
            self.assertEqual(
                [m.message for m in counted], ["An application event log entry...", "x\ny"]
            )
            lines = [m for m in server.messages if m.framing is Framing.NON_TRANSPARENT]
            self.assertEqual([m.message for m in lines], ["one", "two", "unterminated"])

    def test_stop_records_an_unterminated_line(self) -> None:
        server = SyslogTCPServer()
        server.start()
        with socket.create_connection(server.server_address, timeout=10) as c:
            c.sendall(b"<14>a: first\n<14>a: no newline yet")
            server.wait_for_messages(text="first", timeout=10)
            server.stop()
        self.assertEqual([m.message for m in server.messages], ["first", "no newline yet"])

    def test_bad_octet_count_is_recorded_and_the_connection_closed(self) -> None:
        with SyslogTCPServer() as server:
            with socket.create_connection(server.server_address, timeout=10) as c:
                c.sendall(b"5 <1>ab12x <1>hello")
                self.assertEqual(c.recv(10), b"")  # closed by the server
            (bad,) = server.wait_for_messages(text="12x", timeout=10)
            self.assertIn("not a number", bad.error or "")
            self.assertEqual(server.messages[0].message, "ab")

    def test_tls_octet_counting(self) -> None:
        server_ctx, client_ctx = localhost_contexts()
        with SyslogTLSServer(ssl_context=server_ctx) as server:
            raw = socket.create_connection(server.server_address, timeout=10)
            with client_ctx.wrap_socket(raw, server_hostname="localhost") as c:
                c.sendall(b"%d %s" % (len(EXAMPLE), EXAMPLE))
                (m,) = server.wait_for_messages(msgid="ID47", timeout=10)
            self.assertEqual(m.framing, Framing.OCTET_COUNTING)
            self.assertEqual(m.sd_param("exampleSDID@32473", "eventSource"), "Application")

    def test_tls_default_context_is_the_localhost_certificate(self) -> None:
        with SyslogTLSServer() as server:
            self.assertIsInstance(server.ssl_context, ssl.SSLContext)


class SysLogHandlerTest(unittest.TestCase):
    """logging.handlers.SysLogHandler over UDP, TCP and a Unix socket."""

    def _log(self, handler: logging.Handler, text: str) -> None:
        log = logging.getLogger(f"syslog-test-{id(handler)}")
        log.propagate = False
        log.addHandler(handler)
        try:
            log.error(text)
        finally:
            log.removeHandler(handler)
            handler.close()

    def check(
        self, server: SyslogUDPServer | SyslogTCPServer | SyslogUnixDatagramServer, m_text: str
    ) -> None:
        (m,) = server.wait_for_messages(severity="err", app="myapp", timeout=10)
        self.assertIsNone(m.error)
        self.assertEqual(m.facility, Facility.LOCAL3)
        self.assertEqual(m.message, m_text)

    def test_udp(self) -> None:
        with SyslogUDPServer() as server:
            h = logging.handlers.SysLogHandler(server.server_address, facility="local3")
            h.ident = "myapp: "
            self._log(h, "over udp")
            self.check(server, "over udp")

    def test_tcp(self) -> None:
        with SyslogTCPServer() as server:
            h = logging.handlers.SysLogHandler(
                server.server_address, facility="local3", socktype=socket.SOCK_STREAM
            )
            h.ident = "myapp: "
            h.append_nul = False  # LF framing: the message ends with the newline below
            h.setFormatter(logging.Formatter("%(message)s\n"))
            self._log(h, "over tcp")
            self.check(server, "over tcp")

    def test_tcp_defaults_nul_terminated_messages_on_one_connection(self) -> None:
        # SysLogHandler's TCP defaults: each record ends with NUL, no LF.
        with SyslogTCPServer() as server:
            h = logging.handlers.SysLogHandler(
                server.server_address, facility="local3", socktype=socket.SOCK_STREAM
            )
            h.ident = "myapp: "
            log = logging.getLogger(f"syslog-test-{id(h)}")
            log.propagate = False
            log.addHandler(h)
            try:
                log.error("first")
                log.error("second")
            finally:
                log.removeHandler(h)
                h.close()
            got = server.wait_for_messages(2, app="myapp", timeout=10)
        self.assertEqual([m.message for m in got], ["first", "second"])
        self.assertEqual([m.error for m in server.messages], [None, None])

    def test_unix_socket(self) -> None:
        with SyslogUnixDatagramServer() as server:
            h = logging.handlers.SysLogHandler(server.server_address, facility="local3")
            h.ident = "myapp: "
            self._log(h, "over a unix socket")
            self.check(server, "over a unix socket")


@unittest.skipIf(LOGGER is None, "util-linux logger is not installed")
class LoggerTest(unittest.TestCase):
    """util-linux logger, each format and transport its --help lists."""

    def run_logger(self, *args: str) -> None:
        out = subprocess.run(
            [LOGGER or "logger", *args], capture_output=True, text=True, timeout=30
        )
        self.assertEqual(out.returncode, 0, out.stderr)

    def need(self, *options: str) -> None:
        for option in options:
            if option not in LOGGER_HELP:
                self.skipTest(f"this logger has no {option}")

    def test_rfc5424_udp_with_sd_and_msgid(self) -> None:
        self.need("--rfc5424", "--sd-id", "--msgid", "--udp")
        with SyslogUDPServer() as server:
            host, port = server.server_address
            self.run_logger(
                "-d",
                "-n",
                host,
                "-P",
                str(port),
                "--rfc5424",
                "-t",
                "lapp",
                "-p",
                "user.warning",
                "--msgid",
                "M1",
                "--sd-id",
                "test@32473",
                "--sd-param",
                'k="v"',
                "hello 5424",
            )
            (m,) = server.wait_for_messages(app="lapp", msgid="M1", timeout=10)
            self.assertEqual(m.format, SyslogFormat.RFC5424)
            self.assertEqual(m.severity, Severity.WARNING)
            self.assertEqual(m.sd_param("test@32473", "k"), "v")
            self.assertEqual(m.message, "hello 5424")
            self.assertIsNotNone(m.timestamp)

    def test_rfc3164_udp(self) -> None:
        self.need("--rfc3164", "--udp")
        with SyslogUDPServer() as server:
            host, port = server.server_address
            self.run_logger(
                "-d",
                "-n",
                host,
                "-P",
                str(port),
                "--rfc3164",
                "-t",
                "bsd",
                "-p",
                "daemon.err",
                "old style",
            )
            (m,) = server.wait_for_messages(app="bsd", severity="err", timeout=10)
            self.assertEqual(m.format, SyslogFormat.RFC3164)
            self.assertEqual(m.facility, Facility.DAEMON)
            self.assertEqual(m.message, "old style")
            self.assertIsNotNone(m.timestamp)

    def test_tcp_octet_count(self) -> None:
        self.need("--octet-count", "--tcp")
        with SyslogTCPServer() as server:
            host, port = server.server_address
            self.run_logger(
                "-T", "--octet-count", "-n", host, "-P", str(port), "-t", "oc", "counted"
            )
            (m,) = server.wait_for_messages(app="oc", timeout=10)
            self.assertEqual(m.framing, Framing.OCTET_COUNTING)
            self.assertEqual(m.message, "counted")

    def test_tcp_lf_framing(self) -> None:
        self.need("--tcp")
        with SyslogTCPServer() as server:
            host, port = server.server_address
            self.run_logger("-T", "-n", host, "-P", str(port), "-t", "lf", "lined")
            (m,) = server.wait_for_messages(app="lf", timeout=10)
            self.assertIsNone(m.error)
            self.assertEqual(m.message, "lined")

    def test_unix_socket(self) -> None:
        self.need("--socket")
        with SyslogUnixDatagramServer() as server:
            self.run_logger("-u", str(server.server_address), "-t", "ux", "via unix")
            (m,) = server.wait_for_messages(app="ux", timeout=10)
            self.assertIsNone(m.error)
            self.assertEqual(m.message, "via unix")


def _rsyslog_tls_driver() -> str | None:
    """rsyslog's netstream driver for TLS ("gtls" or "ossl"), or None if neither is installed."""
    for d in ("/usr/lib/x86_64-linux-gnu/rsyslog", "/usr/lib/aarch64-linux-gnu/rsyslog",
              "/usr/lib/rsyslog", "/usr/lib64/rsyslog"):  # fmt: skip
        for driver in ("gtls", "ossl"):
            if os.path.exists(os.path.join(d, f"lmnsd_{driver}.so")):
                return driver
    return None


@unittest.skipIf(RSYSLOGD is None, "rsyslogd is not installed")
@unittest.skipIf(LOGGER is None or "--socket" not in LOGGER_HELP, "logger -u is not available")
class RsyslogForwarderTest(unittest.TestCase):
    """rsyslogd as the test's child: receives from logger on a temp socket, forwards to us."""

    def start_rsyslog(self, forward: str) -> str:
        tmp = tempfile.mkdtemp(prefix="testservers-rsyslog-")
        self.addCleanup(shutil.rmtree, tmp, True)
        sock = os.path.join(tmp, "in.sock")
        conf = os.path.join(tmp, "rsyslog.conf")
        with open(conf, "w") as f:
            f.write(
                f'global(workDirectory="{tmp}")\n'
                'module(load="imuxsock" SysSock.Use="off")\n'
                f'input(type="imuxsock" Socket="{sock}" CreatePath="on")\n'
                f"{forward}\n"
            )
        proc = subprocess.Popen(
            [RSYSLOGD or "rsyslogd", "-n", "-f", conf, "-i", os.path.join(tmp, "pid")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

        def kill() -> None:
            proc.kill()
            proc.wait(30)
            assert proc.stdout is not None
            proc.stdout.close()

        self.addCleanup(kill)
        deadline = time.monotonic() + 20
        while not os.path.exists(sock):  # bounded wait for the input socket to appear
            if proc.poll() is not None:
                assert proc.stdout is not None
                self.fail(f"rsyslogd exited: {proc.stdout.read()!r}")
            if time.monotonic() > deadline:
                self.fail("rsyslogd never created its input socket")
            time.sleep(0.05)
        return sock

    def test_forwards_rfc5424_octet_counted_over_tcp(self) -> None:
        with SyslogTCPServer() as server:
            host, port = server.server_address
            sock = self.start_rsyslog(
                f'action(type="omfwd" target="{host}" port="{port}" protocol="tcp" '
                'TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")'
            )
            out = subprocess.run(
                [
                    LOGGER or "logger",
                    "-u",
                    sock,
                    "-t",
                    "fwdapp",
                    "-p",
                    "local5.notice",
                    "through rsyslog",
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
            self.assertEqual(out.returncode, 0, out.stderr)
            (m,) = server.wait_for_messages(app="fwdapp", timeout=30)
            self.assertIsNone(m.error, m.raw)
            self.assertEqual(m.format, SyslogFormat.RFC5424)
            self.assertEqual(m.framing, Framing.OCTET_COUNTING)
            self.assertEqual((m.facility, m.severity), (Facility.LOCAL5, Severity.NOTICE))
            self.assertEqual(m.message.strip(), "through rsyslog")

    def test_forwards_traditional_lf_framed_over_tcp(self) -> None:
        with SyslogTCPServer() as server:
            host, port = server.server_address
            sock = self.start_rsyslog(
                f'action(type="omfwd" target="{host}" port="{port}" protocol="tcp" '
                'template="RSYSLOG_ForwardFormat")'
            )
            out = subprocess.run(
                [LOGGER or "logger", "-u", sock, "-t", "fwd3164", "-p", "user.err", "old form"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            self.assertEqual(out.returncode, 0, out.stderr)
            (m,) = server.wait_for_messages(app="fwd3164", severity="err", timeout=30)
            self.assertIsNone(m.error, m.raw)
            self.assertEqual(m.framing, Framing.NON_TRANSPARENT)
            self.assertEqual(m.message.strip(), "old form")

    def test_forwards_to_the_tcp_and_the_tls_server(self) -> None:
        # One rsyslogd, two actions: LF-framed RFC 3164 ("traditional") to a
        # plain TCP server, octet-counted RFC 5424 over TLS (RFC 5425) to a
        # TLS server, rsyslog checking the server's certificate against the
        # bundled CA and the name "localhost" (x509/name, not anon).
        driver = _rsyslog_tls_driver()
        if driver is None:
            self.skipTest(
                "rsyslog has no TLS driver (lmnsd_gtls/lmnsd_ossl: Debian packages "
                "rsyslog-gnutls/rsyslog-openssl; .ci/run installs rsyslog-gnutls)"
            )
        from protocols import CA_FILE

        with SyslogTCPServer() as tcp, SyslogTLSServer() as tls:
            thost, tport = tcp.server_address
            shost, sport = tls.server_address
            sock = self.start_rsyslog(
                f'global(DefaultNetstreamDriverCAFile="{CA_FILE}")\n'
                f'action(type="omfwd" target="{thost}" port="{tport}" protocol="tcp" '
                'template="RSYSLOG_ForwardFormat")\n'
                f'action(type="omfwd" target="{shost}" port="{sport}" protocol="tcp" '
                f'StreamDriver="{driver}" StreamDriverMode="1" StreamDriverAuthMode="x509/name" '
                'StreamDriverPermittedPeers="localhost" '
                'TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")'
            )
            out = subprocess.run(
                [LOGGER or "logger", "-u", sock, "-i", "-t", "both", "-p", "local2.warning",
                 "to tcp and tls"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            self.assertEqual(out.returncode, 0, out.stderr)
            (plain,) = tcp.wait_for_messages(app="both", severity="warning", timeout=30)
            (secure,) = tls.wait_for_messages(app="both", severity="warning", timeout=30)
        self.assertIsNone(plain.error, plain.raw)
        self.assertEqual(plain.format, SyslogFormat.RFC3164)
        self.assertEqual(plain.framing, Framing.NON_TRANSPARENT)
        self.assertIsNone(secure.error, secure.raw)
        self.assertEqual(secure.format, SyslogFormat.RFC5424)
        self.assertEqual(secure.framing, Framing.OCTET_COUNTING)
        self.assertEqual(secure.version, 1)
        for m in (plain, secure):
            self.assertEqual((m.facility, m.severity), (Facility.LOCAL2, Severity.WARNING))
            self.assertEqual(m.message.strip(), "to tcp and tls")
            self.assertIsNotNone(m.timestamp)
            self.assertIsNotNone(m.timestamp.tzinfo)  # type: ignore[union-attr]
            self.assertTrue(m.procid and m.procid.isdigit(), m.raw)  # logger -i: its pid
        # The same message through both actions: same host, pid and instant.
        self.assertEqual(plain.hostname, secure.hostname)
        self.assertEqual(plain.procid, secure.procid)
        self.assertEqual(plain.timestamp, secure.timestamp)
        self.assertEqual(tls.errors, [])


if __name__ == "__main__":
    unittest.main()
