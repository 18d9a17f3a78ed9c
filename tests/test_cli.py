"""``python -m protocols``: the debugging sinks, driven as a user would."""

from __future__ import annotations

import ast
import json
import os
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SinkProcess:
    """The CLI in a child process with every sink on a free port."""

    def __init__(self, *extra: str, code: str | None = None) -> None:
        """``code``: run this program (``-c``) instead of ``-m protocols``."""
        env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-X",
                "faulthandler",
                *(["-m", "protocols"] if code is None else ["-c", code]),
                "--smtp",
                "0",
                "--http",
                "0",
                "--tcp",
                "0",
                "--udp",
                "0",
                "--syslog-udp",
                "0",
                "--syslog-tcp",
                "0",
                "--syslog-tls",
                "0",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self.addresses: dict[str, object] = {}
        self.lines: list[str] = []
        # A reader thread, so that every wait on the child's output is bounded.
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self.wait_for_output("ready; Ctrl-C to stop")
        for line in self.lines:
            m = re.search(r"(\w+) listening on (\(.*?\)|\S+)", line)
            if m:
                self.addresses[m.group(1)] = ast.literal_eval(m.group(2))

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)  # end of output

    def wait_for_output(self, *needles: str, timeout: float = 30) -> None:
        """Read the sink's output until every needle has been printed."""
        deadline = time.monotonic() + timeout
        while not all(n in "".join(self.lines) for n in needles):
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"never printed {needles!r}: {''.join(self.lines)!r}")
            if line is None:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise AssertionError(f"CLI exited before printing {needles!r}: {err}")
            self.lines.append(line)

    def interrupt(self) -> tuple[int, str, str]:
        self.proc.send_signal(signal.SIGINT)
        return self.finish()

    def finish(self) -> tuple[int, str, str]:
        """Wait for the CLI to exit: (status, stdout, stderr)."""
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
            self.proc.wait(timeout=20)
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"the CLI did not stop on SIGINT: {err[-6000:]}") from None
        self._reader.join(30)
        while not self._queue.empty():  # the reader has ended: what is left is all there is
            line = self._queue.get_nowait()
            if line is not None:
                self.lines.append(line)
        err = self.proc.stderr.read() if self.proc.stderr else ""
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode, "".join(self.lines), err


class CLITest(unittest.TestCase):
    def test_tcp_and_udp_sinks_print_and_ctrl_c_stops(self) -> None:
        sink = SinkProcess()
        tcp = sink.addresses["TCPServer"]
        udp = sink.addresses["UDPServer"]
        with socket.create_connection(tcp, timeout=5) as c:  # type: ignore[arg-type]
            c.sendall(b"<13>hello over tcp\n")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.sendto(b"<13>hello over udp", udp)  # type: ignore[arg-type]
        sink.wait_for_output("<13>hello over tcp", "<13>hello over udp")
        t0 = time.monotonic()
        code, out, err = sink.interrupt()
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(code, 0, err)
        self.assertIn("<13>hello over tcp", out)
        self.assertIn("<13>hello over udp", out)
        self.assertIn("stopped", out)
        self.assertNotIn("Traceback", err)

    def test_sigint_again_and_again_at_random_moments_stops_cleanly(self) -> None:
        # Ctrl-C pressed again and again at random moments: during the main
        # thread's wait (a KeyboardInterrupt raised inside Condition.wait
        # between its lock's release and re-acquire once ended in
        # "RuntimeError: cannot release un-acquired lock"), while the sinks
        # stop, while the process exits.  Every run stops, prints its summary
        # and exits 0 without a traceback.
        seed = random.randrange(2**32)
        rng = random.Random(seed)
        budget = time.monotonic() + 60
        runs = 0
        while runs < 3 and time.monotonic() < budget:
            runs += 1
            sink = SinkProcess()
            time.sleep(rng.uniform(0, 0.4))  # anywhere in the 0.2 s waits
            sent = 0
            until = time.monotonic() + 10
            while sink.proc.poll() is None and sent < 500 and time.monotonic() < until:
                sink.proc.send_signal(signal.SIGINT)
                sent += 1
                time.sleep(rng.uniform(0, 0.004))
            code, out, err = sink.finish()
            what = f"run {runs} (random seed {seed}), {sent} SIGINT"
            self.assertNotIn("Traceback", err, what)
            self.assertEqual(code, 0, f"{what}: {err[-3000:]}")
            self.assertTrue(out.endswith("stopped\n"), f"{what}: {out[-500:]!r}")

    def test_sigint_between_a_waits_release_and_reacquire_stops_cleanly(self) -> None:
        # The signal, raised just after Condition.wait released the server's
        # lock and before its try/finally that takes it back: a handler that
        # raised there left the lock released, and 'with cond:' then failed
        # with "RuntimeError: cannot release un-acquired lock".
        code = (
            "import signal, sys, threading\n"
            "from protocols import _cli\n"
            "build, wait = _cli.build_sinks, _cli._Refusals.wait\n"
            "state = {'armed': False, 'fired': False}\n"
            "def arm_then_wait(self, timeout):\n"
            "    state['armed'] = True\n"
            "    wait(self, timeout)\n"
            "def build_and_patch(args, printer):\n"
            "    servers = build(args, printer)\n"
            "    for s in servers:\n"
            "        def release_then_sigint(release=s._cond._release_save):\n"
            "            saved = release()\n"
            "            if state['armed'] and not state['fired'] and (\n"
            "                threading.current_thread() is threading.main_thread()\n"
            "            ):\n"
            "                state['fired'] = True\n"
            "                signal.raise_signal(signal.SIGINT)\n"
            "            return saved\n"
            "        s._cond._release_save = release_then_sigint\n"
            "    return servers\n"
            "_cli.build_sinks = build_and_patch\n"
            "_cli._Refusals.wait = arm_then_wait\n"
            "status = _cli.main(sys.argv[1:])\n"
            "assert state['fired'], 'the SIGINT was never raised'\n"
            "sys.exit(status)\n"
        )
        code, out, err = SinkProcess(code=code).finish()
        self.assertNotIn("Traceback", err)
        self.assertEqual(code, 0, err[-3000:])
        self.assertTrue(out.endswith("stopped\n"), out[-500:])

    def test_smtp_and_http_sinks_print(self) -> None:
        import smtplib
        import urllib.request

        sink = SinkProcess()
        host, port = sink.addresses["SMTPServer"]  # type: ignore[misc]
        with smtplib.SMTP(host, port, timeout=10) as smtp:
            smtp.sendmail(
                "alice@example.com", ["bob@example.com"], "Subject: hello sink\r\n\r\nbody line\r\n"
            )
        hhost, hport = sink.addresses["HTTPServer"]  # type: ignore[misc]
        with urllib.request.urlopen(
            f"http://{hhost}:{hport}/log?x=1", data=b"posted", timeout=10
        ) as resp:
            self.assertEqual(resp.status, 200)
        sink.wait_for_output("body line", "posted")
        code, out, err = sink.interrupt()
        self.assertEqual(code, 0, err)
        self.assertIn("X-Mail-From: alice@example.com", out)
        self.assertIn("Subject: hello sink", out)
        self.assertIn("body line", out)
        self.assertIn("HTTP POST /log?x=1 HTTP/1.1", out)
        self.assertIn("posted", out)

    def test_a_closed_output_pipe_stops_the_cli_quietly(self) -> None:
        # `python -m protocols --json | head -1`: once the reader is gone the
        # sink stops by itself, with no traceback per event on stderr.
        proc = subprocess.Popen(
            [sys.executable, "-m", "protocols", "--smtp", "off", "--http", "off", "--tcp", "off",
             "--udp", "0", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=ROOT),
        )  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        first = json.loads(proc.stdout.readline())
        host, port = ast.literal_eval(first["address"])
        proc.stdout.close()
        deadline = time.monotonic() + 20
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            while proc.poll() is None and time.monotonic() < deadline:  # bounded
                u.sendto(b"into a closed pipe", (host, port))
                try:
                    proc.wait(0.05)
                except subprocess.TimeoutExpired:
                    pass
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
            self.fail("the CLI went on after its output pipe closed")
        err = proc.stderr.read().decode()
        proc.stderr.close()
        self.assertEqual(proc.returncode, 0, err)
        self.assertNotIn("Traceback", err)
        self.assertNotIn("BrokenPipe", err)

    def test_a_dead_reactor_ends_the_cli_with_a_message(self) -> None:
        driver = (
            "import sys, threading\n"
            "from protocols import _cli\n"
            "build = _cli.build_sinks\n"
            "def kill(server):\n"
            "    server.ready.wait(30)\n"
            "    def boom():\n"
            "        raise SystemExit('reactor killed by the test')\n"
            "    server._reactor.call_soon_threadsafe(boom)\n"
            "def build_and_kill(args, printer):\n"
            "    servers = build(args, printer)\n"
            "    threading.Thread(target=kill, args=(servers[-1],), daemon=True).start()\n"
            "    return servers\n"
            "_cli.build_sinks = build_and_kill\n"
            "sys.exit(_cli.main(sys.argv[1:]))\n"
        )
        for sinks in (["--smtp", "0", "--udp", "0"], ["--smtp", "off", "--udp", "0"]):
            with self.subTest(sinks=sinks):
                out = subprocess.run(
                    [sys.executable, "-c", driver, *sinks, "--http", "off", "--tcp", "off"],
                    capture_output=True, text=True, timeout=60, cwd=ROOT,
                    env=dict(os.environ, PYTHONPATH=ROOT),
                )  # fmt: skip
                self.assertEqual(out.returncode, 1, out.stderr)
                self.assertIn("SystemExit: reactor killed by the test", out.stderr)  # the cause
                self.assertIn(
                    "python -m protocols: the reactor thread died (its traceback is above)",
                    out.stderr,
                )
                self.assertNotIn("_cli.py", out.stderr)  # no traceback of the CLI's own
                self.assertIn("stopped", out.stdout)

    def test_duration_stops_by_itself(self) -> None:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "protocols",
                "--smtp",
                "off",
                "--http",
                "off",
                "--tcp",
                "0",
                "--udp",
                "off",
                "--duration",
                "0.2",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=ROOT),
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("TCPServer listening on", out.stdout)
        for other in ("UDPServer", "SMTPServer", "HTTPServer"):
            self.assertNotIn(other, out.stdout)

    def test_port_in_use_is_a_clear_error(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "protocols",
                    "--tcp",
                    str(port),
                    "--udp",
                    "0",
                    "--duration",
                    "0.1",
                ],
                capture_output=True,
                text=True,
                timeout=30,
                cwd=ROOT,
                env=dict(os.environ, PYTHONPATH=ROOT),
            )
        self.assertEqual(out.returncode, 1)
        self.assertIn("cannot listen", out.stderr)

    def test_syslog_sinks_print_parsed_fields_and_parse_errors(self) -> None:
        sink = SinkProcess()
        udp = sink.addresses["SyslogUDPServer"]
        tcp = sink.addresses["SyslogTCPServer"]
        msg = (
            b'<165>1 2003-10-11T22:14:15.003Z host evntslog - ID47 [ex@32473 iut="3"] '
            b"\xef\xbb\xbfevent text"
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.sendto(msg, udp)  # type: ignore[arg-type]
        with socket.create_connection(tcp, timeout=5) as c:  # type: ignore[arg-type]
            c.sendall(b"%d %s" % (len(msg), msg) + b"3 xyz")
        sink.wait_for_output("syslog/udp", "syslog/tcp", "NOT PARSED")
        code, out, err = sink.interrupt()
        self.assertEqual(code, 0, err)
        self.assertIn(
            "format=rfc5424 facility=local4 severity=notice "
            "timestamp=2003-10-11T22:14:15.003000+00:00 hostname=host app_name=evntslog "
            "msgid=ID47 framing=datagram\n  [ex@32473] iut='3'\nevent text\n",
            out,
        )
        self.assertIn("framing=octet-counting", out)
        self.assertIn("NOT PARSED (no <PRI> at the start", out)
        self.assertIn("\nxyz\n", out)

    def test_control_characters_are_escaped_and_bodies_cut(self) -> None:
        sink = SinkProcess("--max-body", "20")
        tcp = sink.addresses["TCPServer"]
        with socket.create_connection(tcp, timeout=5) as c:  # type: ignore[arg-type]
            c.sendall(b"red \x1b[31m bin \x00\xff\r end\n" + b"y" * 100 + b"\n")
        sink.wait_for_output("more characters not shown")
        code, out, err = sink.interrupt()
        self.assertEqual(code, 0, err)
        self.assertNotIn("\x1b", out)
        self.assertNotIn("\x00", out)
        self.assertIn("red \\x1b[31m bin \\x00\\xff", out)
        self.assertIn("y" * 20 + "\n[... 81 more characters not shown (--max-body 20)]", out)

    def test_unterminated_lines_are_printed_at_stop(self) -> None:
        sink = SinkProcess()
        tcp = sink.addresses["TCPServer"]
        syslog = sink.addresses["SyslogTCPServer"]
        with socket.create_connection(tcp, timeout=5) as c:  # type: ignore[arg-type]
            with socket.create_connection(syslog, timeout=5) as s:  # type: ignore[arg-type]
                c.sendall(b"first\nno newline yet")
                s.sendall(b"<14>lf: one\n<14>lf: half a line")
                sink.wait_for_output("first", "one\n")
                code, out, err = sink.interrupt()
        self.assertEqual(code, 0, err)
        self.assertIn("(unterminated, at close)\nno newline yet\n", out)
        self.assertLess(out.index("no newline yet"), out.index("stopped"))
        self.assertIn("app_name=lf framing=non-transparent\nhalf a line\n", out)
        self.assertLess(out.index("half a line"), out.index("stopped"))

    def test_http_protocol_errors_are_printed(self) -> None:
        sink = SinkProcess()
        http = sink.addresses["HTTPServer"]
        for raw in (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"GET /\x1b[31m HTTP/1.1\r\n\r\n"):
            with socket.create_connection(http, timeout=5) as c:  # type: ignore[arg-type]
                c.sendall(raw)
                c.shutdown(socket.SHUT_WR)
                while c.recv(4096):
                    pass
        sink.wait_for_output("answered 505", "answered 400")
        code, out, err = sink.interrupt()
        self.assertEqual(code, 0, err)
        # The reason on the title line, then what the client sent, escaped.
        self.assertIn(
            "answered 505 (unsupported HTTP version)\nPRI * HTTP/2.0\\x0d\n\\x0d\nSM\\x0d\n\\x0d\n",
            out,
        )
        self.assertIn(
            "answered 400 (malformed request line)\nGET /\\x1b[31m HTTP/1.1\\x0d\n\\x0d\n", out
        )
        self.assertNotIn("\x1b", out)

    def test_every_http_refusal_and_syslog_framing_error_is_printed(self) -> None:
        sink = SinkProcess()
        cases = [
            (b"GET / HTTP/1.1\r\nHost: h\r\nHost: i\r\n\r\n", 400, "exactly one Host field"),
            (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414, "request line too long"),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"v" * 70000 + b"\r\n\r\n", 431, "too large"),
            (b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999\r\n\r\n", 413, "too large"),
            (b"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, ""),
            (b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: teapot\r\n\r\n", 417, "expectation"),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "unsupported HTTP version"),
        ]
        for raw, _, _ in cases:
            with socket.create_connection(sink.addresses["HTTPServer"], timeout=5) as c:  # type: ignore[arg-type]
                c.sendall(raw)
                c.shutdown(socket.SHUT_WR)
                while c.recv(65536):
                    pass
        with socket.create_connection(sink.addresses["SyslogTCPServer"], timeout=5) as c:  # type: ignore[arg-type]
            c.sendall(b"11 <13>counted7x <13>after")
            self.assertEqual(c.recv(10), b"")  # a broken count closes the connection
        sink.wait_for_output(*(f"answered {status} " for _, status, _ in cases), "MSG-LEN")
        code, out, err = sink.interrupt()
        self.assertEqual(code, 0, err)
        for raw, status, reason in cases:
            with self.subTest(status=status):
                m = re.search(rf"answered {status} \((.*?)\)\n(.*?)\n-{{10}}", out, re.S)
                assert m is not None, out
                self.assertIn(reason, m.group(1))
                self.assertTrue(raw[:20].decode().replace("\r", "\\x0d") in m.group(2), m.group(2))
                self.assertLessEqual(len(m.group(2)), 256 + 64)  # the offending bytes, bounded
        self.assertIn("framing=octet-counting\ncounted\n", out)
        self.assertIn("NOT PARSED (MSG-LEN b'7x' is not a number followed by a space", out)

    def test_json_lines(self) -> None:
        import json

        sink = SinkProcess("--json")
        udp = sink.addresses["SyslogUDPServer"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.sendto(b"<11>app[7]: broke \x1b", udp)  # type: ignore[arg-type]
        with socket.create_connection(sink.addresses["HTTPServer"], timeout=5) as c:  # type: ignore[arg-type]
            c.sendall(b"BAD\x00 / HTTP/1.1\r\n\r\n")
            c.shutdown(socket.SHUT_WR)
            while c.recv(4096):
                pass
        with socket.create_connection(sink.addresses["TCPServer"], timeout=5) as c:  # type: ignore[arg-type]
            c.sendall(b"a line\n")
        sink.wait_for_output('"app_name": "app"', '"status": 400', "a line")
        code, out, err = sink.interrupt()
        self.assertEqual(code, 0, err)
        events = [json.loads(line) for line in out.splitlines()]  # every line one object
        self.assertTrue(all(isinstance(e, dict) and "time" in e for e in events), events)
        (event,) = [e for e in events if e.get("app_name") == "app"]
        self.assertEqual(
            (event["severity"], event["procid"], event["body"]), ("err", "7", "broke \x1b")
        )
        (refused,) = [e for e in events if e.get("status") == 400]
        self.assertEqual(refused["error"], "malformed request line")
        self.assertEqual(refused["body"], "BAD\x00 / HTTP/1.1\r\n\r\n")
        self.assertTrue(any(e.get("body") == "a line\n" for e in events))
        self.assertTrue(any(e.get("address") for e in events if "listening" in e["event"]))
        self.assertEqual(events[-1]["event"], "stopped")

    def test_syslog_tls_sink_says_tls_and_prints_fields(self) -> None:
        from protocols import CA_FILE, localhost_contexts

        sink = SinkProcess()
        addr = sink.addresses["SyslogTLSServer"]
        _, client_ctx = localhost_contexts()
        msg = b"<34>1 2026-01-02T03:04:05Z h su - ID9 - over tls"
        with socket.create_connection(addr, timeout=5) as raw:  # type: ignore[arg-type]
            with client_ctx.wrap_socket(raw, server_hostname="localhost") as c:
                c.sendall(b"%d %s" % (len(msg), msg))
        sink.wait_for_output("over tls")
        code, out, err = sink.interrupt()
        self.assertEqual(code, 0, err)
        self.assertRegex(
            out,
            r"SyslogTLSServer listening on .* with TLS "
            rf"\(clients trust CA file {re.escape(CA_FILE)}\)",
        )
        self.assertIn("syslog/tls from ('127.0.0.1', ", out)
        self.assertIn(
            "format=rfc5424 facility=auth severity=crit timestamp=2026-01-02T03:04:05+00:00 "
            "hostname=h app_name=su msgid=ID9 framing=octet-counting\nover tls\n",
            out,
        )
        for plain in ("SyslogTCPServer", "SyslogUDPServer", "HTTPServer", "TCPServer"):
            line = next(x for x in out.splitlines() if f" {plain} listening" in x)
            self.assertNotIn("TLS", line)

    def test_failed_tls_handshake_is_printed(self) -> None:
        sink = SinkProcess("--smtp-tls", "implicit")
        for name in ("SyslogTLSServer", "SMTPServer"):
            with socket.create_connection(sink.addresses[name], timeout=5) as c:  # type: ignore[arg-type]
                c.sendall(b"<13>plain text to a TLS port\r\n")
                c.recv(100)  # the server gives up on the handshake and closes
        sink.wait_for_output("on SyslogTLSServer", "on SMTPServer")
        code, out, err = sink.interrupt()
        self.assertEqual(code, 0, err)
        for name in ("SyslogTLSServer", "SMTPServer"):
            self.assertRegex(
                out, rf"TLS handshake failed on {name} \('127.0.0.1', \d+\)\n.*WRONG_VERSION_NUMBER"
            )

    def test_big_http_body_is_cut_and_binary_escaped(self) -> None:
        import urllib.request

        sink = SinkProcess("--max-body", "100")
        host, port = sink.addresses["HTTPServer"]  # type: ignore[misc]
        body = b"\x00\x01\xfe" + b"z" * 2_000_000
        req = urllib.request.Request(f"http://{host}:{port}/up", data=body, method="PUT")
        with urllib.request.urlopen(req, timeout=30) as resp:
            self.assertEqual(resp.status, 200)
        sink.wait_for_output("more characters not shown")
        code, out, err = sink.interrupt()
        self.assertEqual(code, 0, err)
        self.assertLess(len(out), 5000)  # not 2 MB
        self.assertIn("HTTP PUT /up HTTP/1.1", out)
        self.assertIn("Content-Length: 2000003", out)
        self.assertRegex(
            out,
            r"\n\\x00\\x01\\xfezzz+\n\[\.\.\. \d+ more characters not shown \(--max-body 100\)\]",
        )
        self.assertNotIn("\x00", out)

    def test_max_body_cuts_content_never_the_envelope_or_head(self) -> None:
        import smtplib

        sink = SinkProcess("--max-body", "5")
        host, port = sink.addresses["SMTPServer"]  # type: ignore[misc]
        with smtplib.SMTP(host, port, timeout=10) as smtp:
            smtp.sendmail("alice@example.com", ["bob@example.com"], "Subject: cut\r\n\r\nbody\r\n")
        sink.wait_for_output("more characters not shown")
        code, out, err = sink.interrupt()
        self.assertEqual(code, 0, err)
        self.assertIn(
            "X-Mail-From: alice@example.com\nX-Rcpt-To: bob@example.com\nSubje\n"
            "[... 14 more characters not shown (--max-body 5)]\n",
            out,
        )

    def test_smtp_message_and_udp_datagram_are_escaped(self) -> None:
        import smtplib

        sink = SinkProcess()
        host, port = sink.addresses["SMTPServer"]  # type: ignore[misc]
        with smtplib.SMTP(host, port, timeout=10) as smtp:
            smtp.sendmail(
                "a@example.com",
                ["b@example.com"],
                b"Subject: x\r\n\r\nansi \x1b]0;title\x07 \xff\r\n",
            )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.sendto(b"\x1b[2J\x00\x9b", sink.addresses["UDPServer"])  # type: ignore[arg-type]
        sink.wait_for_output("ansi", "UDP datagram")
        code, out, err = sink.interrupt()
        self.assertEqual(code, 0, err)
        self.assertIn("ansi \\x1b]0;title\\x07 \\xff\n", out)
        self.assertIn("(6 bytes)\n\\x1b[2J\\x00\\x9b\n", out)
        for raw in ("\x1b", "\x07", "\x00"):
            self.assertNotIn(raw, out)

    def test_startup_line_names_tls_auth_and_the_ca_file(self) -> None:
        from protocols import CA_FILE

        sink = SinkProcess("--smtp-tls", "starttls", "--smtp-auth", "u:p")
        code, out, err = sink.interrupt()
        self.assertEqual(code, 0, err)
        self.assertIn(
            f"with TLS starttls (clients trust CA file {CA_FILE}) and AUTH PLAIN/LOGIN as 'u'", out
        )

    def test_refused_smtp_auth_is_printed(self) -> None:
        import smtplib

        sink = SinkProcess("--smtp-auth", "u:p")
        host, port = sink.addresses["SMTPServer"]  # type: ignore[misc]
        with smtplib.SMTP(host, port, timeout=10) as smtp:
            smtp.ehlo()
            with self.assertRaises(smtplib.SMTPAuthenticationError):
                smtp.login("mallory\x1b[31m", "guess")
            me = smtp.sock.getsockname()
        sink.wait_for_output("SMTP AUTH")
        code, out, err = sink.interrupt()
        self.assertEqual(code, 0, err)
        self.assertRegex(
            out, rf"SMTP AUTH (PLAIN|LOGIN) refused \(535\) from {re.escape(str(me))}\n"
            r"username 'mallory\\x1b\[31m'\n",
        )  # fmt: skip
        self.assertNotIn("guess", out)

    def test_refused_smtp_commands_are_printed_with_the_line_escaped(self) -> None:
        sink = SinkProcess()
        with socket.create_connection(sink.addresses["SMTPServer"], timeout=10) as c:  # type: ignore[arg-type]
            f = c.makefile("rb")
            f.readline()
            replies = []
            for line in (
                b"HELO x",
                b"DATA",
                b"FOO \x1b[31mred",
                b"MAIL FROM:<a@example.com> BOGUS=1",
            ):
                c.sendall(line + b"\r\n")
                replies.append(f.readline())
            c.sendall(b"QUIT\r\n")
            f.readline()
            me = c.getsockname()
            f.close()
        self.assertEqual([r[:3] for r in replies], [b"250", b"503", b"500", b"555"])
        sink.wait_for_output("SMTP MAIL refused")
        code, out, err = sink.interrupt()
        self.assertEqual(code, 0, err)
        self.assertIn(
            f"SMTP DATA refused (503, sequence) from {me}\nDATA\n503 Bad sequence of commands", out
        )
        self.assertIn(
            f"SMTP FOO refused (500, syntax) from {me}\nFOO \\x1b[31mred\n500 Command", out
        )
        self.assertIn(
            f"SMTP MAIL refused (555, syntax) from {me}\nMAIL FROM:<a@example.com> BOGUS=1\n555 ",
            out,
        )
        self.assertNotIn("\x1b", out)

    def test_refused_smtp_message_is_printed(self) -> None:
        sink = SinkProcess()
        with socket.create_connection(sink.addresses["SMTPServer"], timeout=10) as c:  # type: ignore[arg-type]
            f = c.makefile("rb")
            f.readline()
            c.sendall(b"HELO x\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n")
            for _ in range(3):
                f.readline()
            c.sendall(b"DATA\r\n")
            self.assertTrue(f.readline().startswith(b"354"))
            c.sendall(b"bare\nLF\r\n.\r\n")
            self.assertTrue(f.readline().startswith(b"554"))
            me = c.getsockname()
            f.close()
        sink.wait_for_output("SMTP message refused")
        code, out, err = sink.interrupt()
        self.assertEqual(code, 0, err)
        self.assertIn(
            f"SMTP message refused (554) from {me}: bare-line-ending\n"
            "X-Mail-From: a@example.com\nX-Rcpt-To: b@example.com\n",
            out,
        )

    def test_argument_errors_name_the_option(self) -> None:
        import contextlib
        import io

        from protocols._cli import main

        cases = [
            (["--syslog-tls", "x"], "argument --syslog-tls: not a port: 'x'"),
            (["--udp", "-1"], "argument --udp: not a port: -1"),
            (["--smtp-auth", "nocolon"], "argument --smtp-auth: give USER:PASSWORD"),
            (["--smtp-key", "k.pem"], "argument --smtp-key: needs --smtp-cert"),
            (["--smtp-cert", "c.pem"], "argument --smtp-cert: needs --smtp-tls starttls or"),
            (
                ["--smtp-tls", "starttls", "--smtp-cert", "/nonexistent/c.pem"],
                "argument --smtp-cert: cannot load '/nonexistent/c.pem': No such file",
            ),
            (["--max-body", "-5"], "argument --max-body: not a length: '-5'"),
            (["--max-body", "lots"], "argument --max-body: not a length: 'lots'"),
            (["--duration", "0"], "argument --duration: not a duration: '0'"),
            (["--duration", "nan"], "argument --duration: not a duration: 'nan'"),
        ]
        free = ["--smtp", "0", "--http", "0", "--tcp", "0", "--udp", "0"]
        for argv, message in cases:
            with self.subTest(argv=argv):
                err = io.StringIO()
                with contextlib.redirect_stderr(err), self.assertRaises(SystemExit) as cm:
                    main(
                        [*free, *argv, "--duration", "0.1"]
                        if "--duration" not in argv
                        else [*free, *argv]
                    )
                self.assertEqual(cm.exception.code, 2)
                self.assertIn(message, err.getvalue())
                self.assertNotIn("Traceback", err.getvalue())
                self.assertNotIn("_port", err.getvalue())

    def test_printed_records_are_taken_out_of_the_servers(self) -> None:
        # A sink that runs for days keeps nothing: what was printed is gone.
        import io
        import smtplib

        from protocols._cli import Printer, _Refusals
        from protocols.http import HTTPServer
        from protocols.smtp import SMTPServer

        smtp = SMTPServer(auth={"u": "p"}, auth_over_plaintext=True)
        http = HTTPServer()
        with smtp, http:
            with smtplib.SMTP(*smtp.server_address, timeout=10) as c:
                c.ehlo()
                with self.assertRaises(smtplib.SMTPAuthenticationError):
                    c.login("x", "y")
                c.sendmail("a@example.com", ["b@example.com"], b"ok\r\n")
            with socket.create_connection(http.server_address, timeout=10) as h:
                h.sendall(b"NOT HTTP\r\n\r\n")
                h.recv(100)
            smtp.wait_for_messages(1, timeout=10)
            http.wait_for(lambda: http.protocol_errors or None, 10, "a protocol error")
            out = io.StringIO()
            refusals = _Refusals([smtp, http], Printer(out))
            refusals.drain()
            self.assertIn("SMTP AUTH", out.getvalue())
            for records in (smtp.logins, smtp.messages, http.protocol_errors):
                self.assertEqual(records, [])
            printed = out.getvalue()
            refusals.drain()
            self.assertEqual(out.getvalue(), printed)  # nothing printed twice

    def test_bad_port_names_the_option(self) -> None:
        out = subprocess.run(
            [sys.executable, "-m", "protocols", "--tcp", "abc"],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=ROOT),
        )
        self.assertEqual(out.returncode, 2)
        self.assertIn("argument --tcp: not a port: 'abc'", out.stderr)
        self.assertNotIn("cli_port", out.stderr)

    def test_address_in_use_names_the_sink_and_port(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            out = subprocess.run(
                [sys.executable, "-m", "protocols", "--smtp", "off", "--http", "off",
                 "--udp", "off", "--tcp", str(port), "--duration", "0.1"],
                capture_output=True, text=True, timeout=30, cwd=ROOT,
                env=dict(os.environ, PYTHONPATH=ROOT),
            )  # fmt: skip
        self.assertEqual(out.returncode, 1)
        self.assertIn(f"tcp sink (--tcp {port}) cannot listen on 127.0.0.1 port {port}", out.stderr)


if __name__ == "__main__":
    unittest.main()
