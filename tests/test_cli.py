"""``python -m protocols``: the debugging sinks, driven as a user would."""

from __future__ import annotations

import ast
import os
import queue
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

    def __init__(self, *extra: str) -> None:
        env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "protocols",
                "--smtp",
                "0",
                "--http",
                "0",
                "--tcp",
                "0",
                "--udp",
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
            m = re.search(r"(\w+) listening on (.*)$", line)
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
        self.proc.wait(timeout=30)
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


if __name__ == "__main__":
    unittest.main()
