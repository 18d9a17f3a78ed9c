"""ScriptedServer: terminators, push, close_when_done, greetings, STARTTLS, child sockets.

Real clients where one exists (poplib, ftplib, socat); raw sockets for the
framing edge cases and for hostile peers.
"""

from __future__ import annotations

import ftplib
import os
import poplib
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest
from typing import Any

from protocols import (
    MAX_FRAME_LENGTH,
    LengthPrefix,
    PeerError,
    ScriptedConnection,
    ScriptedServer,
    TCPServer,
    localhost_contexts,
)
from reactor import (
    CONNECT_TIMEOUT,
    WRITE_HIGH_WATER,
    InvalidArgumentError,
    UsageError,
    current_reactor,
)

TIMEOUT = 10.0  # generous: a noisy 2-core box
SOCAT = shutil.which("socat")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_CTX, CLIENT_CTX = localhost_contexts()


def recv_until(sock: socket.socket, needle: bytes) -> bytes:
    """Read until ``needle`` was received or the peer closed (bounded by TIMEOUT)."""
    got = b""
    deadline = time.monotonic() + TIMEOUT
    while needle not in got and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def recv_all(sock: socket.socket) -> bytes:
    return recv_until(sock, b"\0never\0")


class Recorder:
    """A script that records its frames and raw chunks and echoes frames back."""

    def __init__(self, conn: ScriptedConnection) -> None:
        self.conn = conn
        self.frames: list[bytes] = []
        self.chunks: list[bytes] = []
        conn.server.recorders.append(self)  # type: ignore[attr-defined]

    def on_frame(self, frame: bytes) -> None:
        self.frames.append(frame)
        if isinstance(self.conn.terminator, int):
            self.conn.set_terminator(b"\x00")  # one count frame, then NUL-delimited
        if frame.startswith(b"TERM "):
            arg = frame[5:]
            if arg == b"RAW":
                self.conn.set_terminator(None)
            elif arg.startswith(b"LEN"):
                self.conn.set_terminator(LengthPrefix(int(arg[3:])))
            elif arg.isdigit():
                self.conn.set_terminator(int(arg))
            else:
                self.conn.set_terminator(arg)
        self.conn.push(b"<" + frame + b">")

    def on_data(self, chunk: bytes) -> None:
        self.chunks.append(chunk)


def recording_server(**kwargs: Any) -> ScriptedServer:
    server = ScriptedServer(script=Recorder, **kwargs)
    server.recorders = []  # type: ignore[attr-defined]
    server.start()
    return server


class FramingTest(unittest.TestCase):
    def setUp(self) -> None:
        self.server = recording_server(terminator=b"\n")
        self.addCleanup(self.server.stop)

    def exchange(self, payload: bytes, pieces: int = 1) -> list[bytes]:
        with socket.create_connection(self.server.server_address, timeout=TIMEOUT) as s:
            step = max(1, len(payload) // pieces)
            for i in range(0, len(payload), step):
                s.sendall(payload[i : i + step])
            s.shutdown(socket.SHUT_WR)
            recv_all(s)
        rec = self.server.wait_for(lambda: self.server.recorders and self.server.recorders[-1])
        self.server.wait_for(lambda: rec.conn.closed)
        return list(rec.frames)

    def test_delimiter_count_length_prefix_and_raw_whole_and_byte_by_byte(self) -> None:
        payload = (
            b"a\nbb\nTERM 3\nxyzone\x00TERM LEN2\x00"
            + struct.pack(">H", 5)
            + b"hello"
            + struct.pack(">H", 8)
            + b"TERM ;;;"
            + b"p;;;TERM RAW;;;raw bytes"
        )
        expected = [
            b"a",
            b"bb",
            b"TERM 3",
            b"xyz",
            b"one",
            b"TERM LEN2",
            b"hello",
            b"TERM ;;;",
            b"p",
            b"TERM RAW",
        ]
        for pieces in (1, 7, len(payload)):  # whole, in pieces, one byte at a time
            with self.subTest(pieces=pieces):
                self.assertEqual(self.exchange(payload, pieces), expected)
                rec = self.server.recorders[-1]
                self.assertEqual(b"".join(rec.chunks), b"raw bytes")

    def test_replies_follow_frames_in_order(self) -> None:
        with socket.create_connection(self.server.server_address, timeout=TIMEOUT) as s:
            s.sendall(b"1\n2\n3\n")
            self.assertEqual(recv_until(s, b"<3>"), b"<1><2><3>")

    def test_bad_terminators_are_refused_clearly(self) -> None:
        conn = ScriptedConnection(self.server, None)
        for bad in (b"", 0, -1, MAX_FRAME_LENGTH + 1, 1.5, True):
            with self.subTest(bad=bad), self.assertRaises(InvalidArgumentError):
                conn.set_terminator(bad)  # type: ignore[arg-type]
        with self.assertRaises(InvalidArgumentError):
            LengthPrefix(3)
        with self.assertRaises(TypeError):
            ScriptedServer(script=Recorder, on_frame=lambda c, f: None)

    def test_over_long_frame_closes_only_that_connection(self) -> None:
        with socket.create_connection(self.server.server_address, timeout=TIMEOUT) as bad:
            bad.sendall(b"x" * (MAX_FRAME_LENGTH + 10))
            self.assertEqual(recv_all(bad), b"")  # closed by the server
        self.server.wait_for(lambda: self.server.errors)
        self.assertIsInstance(self.server.errors[0], PeerError)
        with socket.create_connection(self.server.server_address, timeout=TIMEOUT) as good:
            good.sendall(b"fine\n")
            self.assertEqual(recv_until(good, b">"), b"<fine>")


class FunctionStyleTest(unittest.TestCase):
    def test_greeting_state_push_line_and_close_when_done(self) -> None:
        def on_connect(conn: ScriptedConnection) -> None:
            conn.state.count = 0

        def on_frame(conn: ScriptedConnection, line: bytes) -> None:
            conn.state.count += 1
            if line == b"BYE":
                conn.push_line(f"bye after {conn.state.count}")
                conn.close_when_done()
            else:
                conn.push_line(line.upper())

        with ScriptedServer(greeting="hi\r\n", on_connect=on_connect, on_frame=on_frame) as srv:
            with socket.create_connection(srv.server_address, timeout=TIMEOUT) as s:
                s.sendall(b"a\r\nb\r\nBYE\r\nignored\r\n")
                self.assertEqual(recv_all(s), b"hi\r\nA\r\nB\r\nbye after 3\r\n")
            (conn,) = srv.wait_for_connections(1, closed=True)
            self.assertEqual(conn.state.count, 3)

    def test_push_from_another_thread_and_callback_error_recorded(self) -> None:
        def on_frame(conn: ScriptedConnection, line: bytes) -> None:
            if line == b"boom":
                raise RuntimeError("script bug")

        with ScriptedServer(on_frame=on_frame, report_errors=False) as srv:
            with socket.create_connection(srv.server_address, timeout=TIMEOUT) as s:
                (conn,) = srv.wait_for_connections(1)
                conn.push(b"from the test thread\r\n")  # not the reactor thread
                self.assertEqual(recv_until(s, b"\n"), b"from the test thread\r\n")
                with self.assertRaises(UsageError):
                    conn.start_tls(SERVER_CTX)  # reactor-thread only
                s.sendall(b"boom\r\n")
                self.assertEqual(recv_all(s), b"")
            srv.wait_for(lambda: srv.errors)
            self.assertIsInstance(srv.errors[0], RuntimeError)

    def test_a_recorded_connection_takes_pushes_from_the_test_thread_at_once(self) -> None:
        # A connection shows in server.connections only once it has its
        # transport: a push() made as soon as it is seen is never dropped.
        old = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # let the test thread run in every gap
        self.addCleanup(sys.setswitchinterval, old)
        with ScriptedServer() as srv:
            for i in range(200):
                with socket.create_connection(srv.server_address, timeout=TIMEOUT) as s:
                    conn = srv.wait_for_connections(i + 1)[i]
                    conn.push(b"now\r\n")
                    self.assertEqual(recv_until(s, b"\n"), b"now\r\n", f"round {i}")

    @unittest.skipUnless(SOCAT, "socat not installed")
    def test_socat_client_length_prefixed_echo(self) -> None:
        def on_frame(conn: ScriptedConnection, payload: bytes) -> None:
            conn.push_frame(payload[::-1])
            conn.close_when_done()

        with ScriptedServer(terminator=LengthPrefix(2), on_frame=on_frame) as srv:
            out = subprocess.run(
                [SOCAT, "-t5", "-", f"TCP:127.0.0.1:{srv.port}"],
                input=struct.pack(">H", 6) + b"socat!",
                capture_output=True,
                timeout=30,
            )
        self.assertEqual(out.stdout, struct.pack(">H", 6) + b"!tacos")


class POP3Script:
    """A tiny POP3 server with STLS (RFC 1939, RFC 2595)."""

    def __init__(self, conn: ScriptedConnection) -> None:
        self.conn = conn
        self.commands: list[bytes] = []
        conn.server.scripts.append(self)  # type: ignore[attr-defined]

    def on_connect(self) -> None:
        self.conn.push(b"+OK ready\r\n")

    def on_frame(self, line: bytes) -> None:
        self.commands.append(line)
        verb = line.split(b" ")[0].upper()
        if verb == b"CAPA":
            stls = b"" if self.conn.is_tls else b"STLS\r\n"
            self.conn.push(b"+OK\r\nUSER\r\n" + stls + b".\r\n")
        elif verb == b"STLS":
            self.conn.push(b"+OK begin TLS\r\n")
            self.conn.start_tls(SERVER_CTX)
        elif verb == b"STAT":
            self.conn.push(b"+OK 2 320\r\n")
        elif verb == b"QUIT":
            self.conn.push(b"+OK bye\r\n")
            self.conn.close_when_done()
        else:
            self.conn.push(b"-ERR unknown\r\n")


def pop3_server(**kwargs: Any) -> ScriptedServer:
    server = ScriptedServer(script=POP3Script, **kwargs)
    server.scripts = []  # type: ignore[attr-defined]
    server.start()
    return server


class StartTLSTest(unittest.TestCase):
    def setUp(self) -> None:
        self.server = pop3_server()
        self.addCleanup(self.server.stop)

    def test_poplib_stls_then_commands_over_tls(self) -> None:
        client = poplib.POP3("127.0.0.1", self.server.port, timeout=TIMEOUT)
        self.addCleanup(client.close)
        client.stls(context=CLIENT_CTX)
        self.assertEqual(client.stat(), (2, 320))
        self.assertNotIn("STLS", client.capa())
        self.assertEqual(client.quit(), b"+OK bye")
        self.assertEqual(self.server.tls_errors, [])

    def test_poplib_implicit_tls(self) -> None:
        with ScriptedServer(script=POP3Script, ssl_context=SERVER_CTX) as srv:
            srv.scripts = []  # type: ignore[attr-defined]
            client = poplib.POP3_SSL("localhost", srv.port, context=CLIENT_CTX, timeout=TIMEOUT)
            self.assertEqual(client.getwelcome(), b"+OK ready")
            self.assertEqual(client.stat(), (2, 320))
            client.quit()

    def test_plaintext_pipelined_behind_stls_is_never_a_command(self) -> None:
        # One segment: STLS and a command after it.  The injected command
        # must not run, in plaintext or later inside the TLS session.
        raw = socket.create_connection(self.server.server_address, timeout=TIMEOUT)
        self.addCleanup(raw.close)
        self.assertEqual(recv_until(raw, b"\r\n"), b"+OK ready\r\n")
        raw.sendall(b"STLS\r\nQUIT\r\n")
        self.assertEqual(recv_until(raw, b"\r\n"), b"+OK begin TLS\r\n")
        tls = CLIENT_CTX.wrap_socket(raw, server_hostname="localhost")
        tls.sendall(b"STAT\r\n")
        self.assertEqual(recv_until(tls, b"\r\n"), b"+OK 2 320\r\n")
        (script,) = self.server.scripts  # type: ignore[attr-defined]
        self.assertEqual(script.commands, [b"STLS", b"STAT"])
        self.assertEqual(script.conn.discarded_plaintext, len(b"QUIT\r\n"))
        tls.close()

    def test_reset_mid_upgrade_is_contained(self) -> None:
        for _ in range(3):
            raw = socket.create_connection(self.server.server_address, timeout=TIMEOUT)
            recv_until(raw, b"\r\n")
            raw.sendall(b"STLS\r\n")
            recv_until(raw, b"\r\n")
            raw.sendall(b"\x16\x03\x01\x00\x05hel")  # half a ClientHello, then RST
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raw.close()
        self.server.wait_for(lambda: self.server.connection_count == 0)
        self.assertEqual(self.server.errors, [])
        client = poplib.POP3("127.0.0.1", self.server.port, timeout=TIMEOUT)
        client.stls(context=CLIENT_CTX)
        self.assertEqual(client.stat(), (2, 320))
        client.quit()

    def test_stop_tls_goes_back_to_plaintext_on_the_same_connection(self) -> None:
        def on_frame(conn: ScriptedConnection, line: bytes) -> None:
            if line == b"AUTH":
                conn.push(b"234 go\r\n")
                conn.start_tls(SERVER_CTX)
            elif line == b"CCC":
                conn.push(b"200 clear\r\n")
                conn.stop_tls()
                conn.push(b"held until the peer's close_notify\r\n")
            else:
                conn.push(line + (b" tls" if conn.is_tls else b" plain") + b"\r\n")

        with ScriptedServer(on_frame=on_frame) as srv:
            raw = socket.create_connection(srv.server_address, timeout=TIMEOUT)
            self.addCleanup(raw.close)
            raw.sendall(b"AUTH\r\n")
            self.assertEqual(recv_until(raw, b"\r\n"), b"234 go\r\n")
            tls = CLIENT_CTX.wrap_socket(raw, server_hostname="localhost")
            tls.sendall(b"a\r\n")
            self.assertEqual(recv_until(tls, b"\r\n"), b"a tls\r\n")
            tls.sendall(b"CCC\r\n")
            self.assertEqual(recv_until(tls, b"\r\n"), b"200 clear\r\n")
            plain = tls.unwrap()
            self.addCleanup(plain.close)
            self.assertEqual(recv_until(plain, b"\r\n"), b"held until the peer's close_notify\r\n")
            plain.sendall(b"b\r\n")
            self.assertEqual(recv_until(plain, b"\r\n"), b"b plain\r\n")
            self.assertEqual(srv.errors, [])
            self.assertEqual(srv.tls_errors, [])

    def test_close_when_done_during_stop_tls_sends_what_was_pushed(self) -> None:
        # Bytes pushed behind stop_tls() wait for the peer's close_notify;
        # a close_when_done() must wait for them too (they were dropped).
        def on_frame(conn: ScriptedConnection, line: bytes) -> None:
            if line == b"AUTH":
                conn.push(b"234 go\r\n")
                conn.start_tls(SERVER_CTX)
            elif line == b"CCC":
                conn.push(b"200 clear\r\n")
                conn.stop_tls()
                conn.push(b"221 bye in plaintext\r\n")
                conn.close_when_done()

        with ScriptedServer(on_frame=on_frame) as srv:
            raw = socket.create_connection(srv.server_address, timeout=TIMEOUT)
            self.addCleanup(raw.close)
            raw.sendall(b"AUTH\r\n")
            self.assertEqual(recv_until(raw, b"\r\n"), b"234 go\r\n")
            tls = CLIENT_CTX.wrap_socket(raw, server_hostname="localhost")
            tls.sendall(b"CCC\r\n")
            self.assertEqual(recv_until(tls, b"\r\n"), b"200 clear\r\n")
            plain = tls.unwrap()
            self.addCleanup(plain.close)
            self.assertEqual(recv_all(plain), b"221 bye in plaintext\r\n")
            self.assertEqual(srv.errors, [])
            self.assertEqual(srv.tls_errors, [])

    def test_frames_held_across_the_upgrade_do_not_stall_the_handshake(self) -> None:
        # hold() pauses reading; the handshake must still read the client's
        # flights (it stalled until the 30 s handshake timeout).
        def on_frame(conn: ScriptedConnection, line: bytes) -> None:
            if line == b"STLS":
                conn.push(b"+OK begin TLS\r\n")
                conn.hold()
                conn.start_tls(SERVER_CTX, on_done=conn.release)
            else:
                conn.push(line + (b" tls" if conn.is_tls else b" plain") + b"\r\n")

        with ScriptedServer(on_frame=on_frame) as srv:
            raw = socket.create_connection(srv.server_address, timeout=TIMEOUT)
            self.addCleanup(raw.close)
            raw.sendall(b"STLS\r\n")
            self.assertEqual(recv_until(raw, b"\r\n"), b"+OK begin TLS\r\n")
            tls = CLIENT_CTX.wrap_socket(raw, server_hostname="localhost")
            tls.sendall(b"a\r\n")
            self.assertEqual(recv_until(tls, b"\r\n"), b"a tls\r\n")
            self.assertEqual(srv.tls_errors, [])
            tls.close()

    def test_a_refused_second_start_tls_changes_nothing(self) -> None:
        # start_tls() on a TLS connection raises UsageError before touching
        # the connection: the input behind it is still delivered and a
        # later close_when_done() still closes (it waited for a handshake
        # that never comes, and the pipelined NOOP was discarded).
        def on_frame(conn: ScriptedConnection, line: bytes) -> None:
            if line == b"STLS":
                try:
                    conn.start_tls(SERVER_CTX)
                except UsageError:
                    conn.push(b"-ERR already TLS\r\n")
                    return
                conn.push(b"+OK begin TLS\r\n")
            elif line == b"QUIT":
                conn.push(b"+OK bye\r\n")
                conn.close_when_done()
            else:
                conn.push(b"+OK " + line + b"\r\n")

        with ScriptedServer(on_frame=on_frame, ssl_context=SERVER_CTX) as srv:
            raw = socket.create_connection(srv.server_address, timeout=TIMEOUT)
            with CLIENT_CTX.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"STLS\r\nNOOP\r\nQUIT\r\n")
                self.assertEqual(recv_all(tls), b"-ERR already TLS\r\n+OK NOOP\r\n+OK bye\r\n")
            self.assertEqual(srv.connections[0].discarded_plaintext, 0)

    def test_frames_held_across_stop_tls_do_not_stall_it(self) -> None:
        # hold() pauses reading; stop_tls() must still read the peer's
        # close_notify (the held reply was never sent, the client hung).
        def on_frame(conn: ScriptedConnection, line: bytes) -> None:
            if line == b"AUTH":
                conn.push(b"234 go\r\n")
                conn.start_tls(SERVER_CTX)
            elif line == b"CCC":
                conn.push(b"200 clear\r\n")
                conn.hold()
                conn.stop_tls(on_done=conn.release)
                conn.push(b"sent in the clear\r\n")
            else:
                conn.push(line + (b" tls" if conn.is_tls else b" plain") + b"\r\n")

        with ScriptedServer(on_frame=on_frame) as srv:
            raw = socket.create_connection(srv.server_address, timeout=TIMEOUT)
            self.addCleanup(raw.close)
            raw.sendall(b"AUTH\r\n")
            self.assertEqual(recv_until(raw, b"\r\n"), b"234 go\r\n")
            tls = CLIENT_CTX.wrap_socket(raw, server_hostname="localhost")
            tls.sendall(b"CCC\r\n")
            self.assertEqual(recv_until(tls, b"\r\n"), b"200 clear\r\n")
            plain = tls.unwrap()
            self.addCleanup(plain.close)
            self.assertEqual(recv_until(plain, b"\r\n"), b"sent in the clear\r\n")
            plain.sendall(b"b\r\n")
            self.assertEqual(recv_until(plain, b"\r\n"), b"b plain\r\n")

    def test_push_above_the_high_water_mark_behind_stop_tls_is_delivered(self) -> None:
        # Bytes pushed behind stop_tls() are held until the peer's
        # close_notify and count towards back-pressure; reading it must
        # not be paused by them.
        size = 2 * WRITE_HIGH_WATER + 1

        def on_frame(conn: ScriptedConnection, line: bytes) -> None:
            if line == b"AUTH":
                conn.push(b"234 go\r\n")
                conn.start_tls(SERVER_CTX)
            elif line == b"CCC":
                conn.push(b"200 clear\r\n")
                conn.stop_tls()
                conn.push(b"z" * size)
                conn.close_when_done()

        with ScriptedServer(on_frame=on_frame) as srv:
            raw = socket.create_connection(srv.server_address, timeout=TIMEOUT)
            self.addCleanup(raw.close)
            raw.sendall(b"AUTH\r\n")
            self.assertEqual(recv_until(raw, b"\r\n"), b"234 go\r\n")
            tls = CLIENT_CTX.wrap_socket(raw, server_hostname="localhost")
            tls.sendall(b"CCC\r\n")
            self.assertEqual(recv_until(tls, b"\r\n"), b"200 clear\r\n")
            plain = tls.unwrap()
            self.addCleanup(plain.close)
            self.assertEqual(len(recv_all(plain)), size)

    def test_close_when_done_during_the_handshake_sends_what_was_pushed(self) -> None:
        def on_connect(conn: ScriptedConnection) -> None:
            conn.start_tls(SERVER_CTX)
            conn.push(b"pushed during the handshake\r\n")
            conn.close_when_done()

        with ScriptedServer(on_connect=on_connect) as srv:
            raw = socket.create_connection(srv.server_address, timeout=TIMEOUT)
            with CLIENT_CTX.wrap_socket(raw, server_hostname="localhost") as tls:
                self.assertEqual(recv_all(tls), b"pushed during the handshake\r\n")

    def test_push_above_the_high_water_mark_during_the_handshake_is_delivered(self) -> None:
        # Replies held behind the handshake count towards back-pressure; the
        # handshake must still read the client's last flight (it used to
        # stall until the 30 s handshake timeout, nothing delivered).
        size = 2 * WRITE_HIGH_WATER + 1

        def on_connect(conn: ScriptedConnection) -> None:
            conn.push(b"z" * size)
            conn.close_when_done()

        with ScriptedServer(on_connect=on_connect, ssl_context=SERVER_CTX) as srv:
            raw = socket.create_connection(srv.server_address, timeout=TIMEOUT)
            with CLIENT_CTX.wrap_socket(raw, server_hostname="localhost") as tls:
                got = 0
                while chunk := tls.recv(1 << 20):
                    got += len(chunk)
            self.assertEqual(got, size)
            self.assertEqual(srv.tls_errors, [])


class FTPScript:
    """Enough FTP (RFC 959) for ftplib's RETR in passive and active mode."""

    DATA = b"0123456789" * 10_000

    def __init__(self, conn: ScriptedConnection) -> None:
        self.conn = conn
        self.data: ScriptedConnection | None = None
        self.conn.push(b"220 hi\r\n")

    def on_frame(self, line: bytes) -> None:
        verb, _, arg = line.decode().partition(" ")
        verb = verb.upper()
        conn = self.conn
        if verb in ("USER", "PASS", "TYPE"):
            conn.push(b"230 ok\r\n")
        elif verb == "PASV":
            conn.hold()  # RETR must wait for the data connection
            lst = conn.listen(on_connect=self._data_ready, timeout=TIMEOUT)
            p = lst.port
            conn.push(f"227 passive (127,0,0,1,{p // 256},{p % 256})\r\n".encode())
        elif verb == "PORT":
            n = [int(x) for x in arg.split(",")]
            conn.hold()
            conn.connect(
                (".".join(map(str, n[:4])), n[4] * 256 + n[5]),
                on_connect=lambda c: (self._data_ready(c), conn.push(b"200 ok\r\n")),
                on_error=lambda exc: (conn.push(b"425 no\r\n"), conn.release()),
            )
        elif verb == "RETR":
            assert self.data is not None
            conn.push(b"150 here\r\n")
            self.data.push(self.DATA)
            self.data.close_when_done()
        elif verb == "QUIT":
            conn.push(b"221 bye\r\n")
            conn.close_when_done()
        else:
            conn.push(b"502 no\r\n")

    def _data_ready(self, data: ScriptedConnection) -> None:
        self.data = data
        self.conn.release()


class ChildSocketsTest(unittest.TestCase):
    def test_ftplib_passive_and_active_retr(self) -> None:
        with ScriptedServer(script=FTPScript) as srv:
            for passive in (True, False):
                with self.subTest(passive=passive):
                    client = ftplib.FTP(timeout=TIMEOUT)
                    client.connect("127.0.0.1", srv.port)
                    client.login()
                    client.set_pasv(passive)
                    got: list[bytes] = []
                    conn = client.transfercmd("RETR x")
                    while chunk := conn.recv(65536):
                        got.append(chunk)
                    conn.close()
                    self.assertEqual(b"".join(got), FTPScript.DATA)
                    client.quit()
            self.assertEqual(srv.errors, [])
            self.assertEqual(srv.connect_errors, [])

    def test_stop_closes_child_listeners_and_their_connections(self) -> None:
        ports: list[int] = []

        def on_frame(conn: ScriptedConnection, line: bytes) -> None:
            lst = conn.listen(terminator=b"\n", on_frame=lambda c, f: c.push(f + b"!\n"))
            ports.append(lst.port)
            conn.push(b"%d\n" % lst.port)

        srv = ScriptedServer(on_frame=on_frame, terminator=b"\n")
        srv.start()
        try:
            with socket.create_connection(srv.server_address, timeout=TIMEOUT) as s:
                s.sendall(b"listen\n")
                port = int(recv_until(s, b"\n"))
                child = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
                child.sendall(b"x\n")
                self.assertEqual(recv_until(child, b"\n"), b"x!\n")
                s.sendall(b"listen\n")
                second = int(recv_until(s, b"\n"))
                srv.stop()
                self.assertEqual(recv_all(child), b"")  # the child connection closed
                child.close()
                for p in (port, second):
                    with self.assertRaises(ConnectionRefusedError):
                        socket.create_connection(("127.0.0.1", p), timeout=TIMEOUT).close()
        finally:
            srv.stop()
        self.assertEqual(srv.connection_count, 0)

    def test_listener_timeout_closes_it_and_runs_on_timeout(self) -> None:
        fired = threading.Event()

        def on_frame(conn: ScriptedConnection, line: bytes) -> None:
            lst = conn.listen(timeout=0.2, on_timeout=fired.set)
            conn.push(b"%d\n" % lst.port)

        with ScriptedServer(on_frame=on_frame, terminator=b"\n") as srv:
            with socket.create_connection(srv.server_address, timeout=TIMEOUT) as s:
                s.sendall(b"go\n")
                port = int(recv_until(s, b"\n"))
                self.assertTrue(fired.wait(TIMEOUT))
                with self.assertRaises(ConnectionRefusedError):
                    socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()

    def test_connect_refused_and_timed_out_are_recorded(self) -> None:
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        refused_port = closed.getsockname()[1]
        closed.close()
        # A listener whose accept queue is full drops further SYNs: a
        # connection attempt to it can only time out.
        full = socket.socket()
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        self.addCleanup(full.close)
        fillers = []
        for _ in range(4):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(full.getsockname())
            fillers.append(f)
        self.addCleanup(lambda: [f.close() for f in fillers])
        errors: list[OSError] = []

        def on_frame(conn: ScriptedConnection, line: bytes) -> None:
            port = refused_port if line == b"refused" else full.getsockname()[1]
            conn.connect(("127.0.0.1", port), timeout=0.5, on_error=errors.append)

        with ScriptedServer(on_frame=on_frame, terminator=b"\n") as srv:
            with socket.create_connection(srv.server_address, timeout=TIMEOUT) as s:
                s.sendall(b"refused\n")
                srv.wait_for(lambda: srv.connect_errors)
                self.assertIsInstance(srv.connect_errors[0], ConnectionRefusedError)
                s.sendall(b"full\n")
                srv.wait_for(lambda: len(srv.connect_errors) == 2)
        self.assertIsInstance(errors[1], TimeoutError)
        self.assertEqual(errors, srv.connect_errors)
        self.assertEqual(srv.errors, [])
        self.assertGreater(CONNECT_TIMEOUT, 0)

    def test_connect_needs_a_numeric_address_and_reaches_unix_paths(self) -> None:
        errors: list[OSError] = []

        def on_frame(conn: ScriptedConnection, line: bytes) -> None:
            if line == b"name":
                conn.connect(("localhost", 1), on_error=errors.append)  # would block to resolve
            else:
                conn.connect(
                    line.decode(),
                    on_connect=lambda c: c.push(b"via unix"),
                    on_data=lambda c, d: conn.push(b"got " + d + b"\n"),
                )

        with UnixScripted(on_data=lambda c, d: c.push(d.upper()), terminator=None) as unix:
            with ScriptedServer(on_frame=on_frame, terminator=b"\n") as srv:
                with socket.create_connection(srv.server_address, timeout=TIMEOUT) as s:
                    s.sendall(b"name\n")
                    srv.wait_for(lambda: srv.connect_errors)
                    self.assertIsInstance(srv.connect_errors[0], socket.gaierror)
                    s.sendall(unix.server_address.encode() + b"\n")
                    self.assertEqual(recv_until(s, b"\n"), b"got VIA UNIX\n")
        self.assertEqual(errors, srv.connect_errors)


class UnixScripted(ScriptedServer):
    address_family = socket.AF_UNIX


class UnixSocketTest(unittest.TestCase):
    @unittest.skipUnless(SOCAT, "socat not installed")
    def test_socat_over_a_unix_socket_and_a_child_listener_on_loopback(self) -> None:
        def on_frame(conn: ScriptedConnection, line: bytes) -> None:
            def child(c: ScriptedConnection) -> None:
                c.push(b"child\n")
                c.close_when_done()
                conn.close_when_done()  # (the listener would close with it)

            conn.push(b"%d\n" % conn.listen(on_connect=child).port)

        with UnixScripted(on_frame=on_frame, terminator=b"\n", greeting=b"unix\n") as srv:
            proc = subprocess.Popen(
                [SOCAT, "-t5", "-", f"UNIX-CONNECT:{srv.server_address}"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(b"pasv\n")
                proc.stdin.flush()
                self.assertEqual(proc.stdout.readline(), b"unix\n")
                port = int(proc.stdout.readline())
                with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as c:
                    self.assertEqual(recv_all(c), b"child\n")
                proc.stdin.close()
                self.assertEqual(proc.wait(timeout=30), 0)  # the server closed the parent
            finally:
                proc.kill()
                proc.wait()
                proc.stdout.close()


class HostilePeerTest(unittest.TestCase):
    def test_never_reading_pipeliner_is_stalled_with_bounded_memory(self) -> None:
        from tests.test_backpressure import MAX_SERVER_BUFFER, connect, send_until_stalled

        def on_frame(conn: ScriptedConnection, line: bytes) -> None:
            conn.push(b"x" * 4096)  # a big reply to every short command

        with ScriptedServer(on_frame=on_frame) as srv:
            sock = connect(srv.server_address)
            self.addCleanup(sock.close)
            sent, stalled = send_until_stalled(sock, b"NOOP\r\n" * 10923)
            r = current_reactor()
            assert r is not None
            held = r.run_sync(
                lambda: sum(t.get_write_buffer_size() for t in srv._transports), timeout=TIMEOUT
            )
            self.assertTrue(stalled, f"server kept reading: {sent} sent, {held} buffered")
            self.assertLessEqual(held, MAX_SERVER_BUFFER)
            # stop() handles what arrived, but delivers no more frames to a
            # peer that does not read (their replies would pile up unsent).
            t0 = time.monotonic()
            srv.stop()
            self.assertLess(time.monotonic() - t0, 5.0)  # it took the whole 10 s timeout

    def test_line_flood_leaves_a_neighbour_answered(self) -> None:
        from protocols import HTTPServer, Reply

        n = 100_000
        count = [0]

        def on_frame(conn: ScriptedConnection, line: bytes) -> None:
            count[0] += 1
            if count[0] == n:
                conn.push(b"all\n")

        with (
            ScriptedServer(on_frame=on_frame, terminator=b"\n") as a,
            HTTPServer(handler=lambda r: Reply(200, b"ok"), record=False) as b,
        ):
            out = subprocess.run(
                [sys.executable, "-m", "tests.neighbour_latency", "lines"]
                + [str(a.port), str(b.port), str(n)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
            )
            a.wait_for(lambda: count[0] == n, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        got, median, worst = out.stdout.split()
        self.assertGreater(int(got), 3, out.stdout)
        self.assertLess(float(median), 0.010, out.stdout)

    def test_silent_and_half_closing_clients_disturb_nobody(self) -> None:
        with ScriptedServer(on_frame=lambda c, f: c.push(f + b"\r\n"), greeting=b"hi\r\n") as srv:
            silent = [
                socket.create_connection(srv.server_address, timeout=TIMEOUT) for _ in range(20)
            ]
            half = socket.create_connection(srv.server_address, timeout=TIMEOUT)
            half.sendall(b"partial line without end")
            half.shutdown(socket.SHUT_WR)
            self.assertEqual(recv_all(half), b"hi\r\n")
            with socket.create_connection(srv.server_address, timeout=TIMEOUT) as ok:
                ok.sendall(b"ping\r\n")
                self.assertEqual(recv_until(ok, b"ping\r\n"), b"hi\r\nping\r\n")
            for s in silent + [half]:
                s.close()
        self.assertEqual(srv.errors, [])


class StopTest(unittest.TestCase):
    def test_frames_that_reached_the_server_are_delivered_by_stop(self) -> None:
        n = 20_000
        got: list[bytes] = []
        srv = ScriptedServer(on_frame=lambda c, f: got.append(f), terminator=b"\n")
        srv.start()
        try:
            with socket.create_connection(srv.server_address, timeout=TIMEOUT) as s:
                s.sendall(b"".join(b"%d\n" % i for i in range(n)))  # on loopback: arrived
                srv.wait_for(lambda: got)
                srv.stop()  # most lines still wait for later passes (the per-pass budget)
        finally:
            srv.stop()
        self.assertEqual(got, [b"%d" % i for i in range(n)])

    def test_child_listener_closes_with_its_connection(self) -> None:
        ports: list[int] = []

        def on_frame(conn: ScriptedConnection, line: bytes) -> None:
            ports.append(conn.listen(once=False).port)
            conn.push(b"ok\n")

        with ScriptedServer(on_frame=on_frame, terminator=b"\n") as srv:
            with socket.create_connection(srv.server_address, timeout=TIMEOUT) as s:
                s.sendall(b"x\n")
                recv_until(s, b"\n")
                socket.create_connection(("127.0.0.1", ports[0]), timeout=TIMEOUT).close()
            srv.wait_for(lambda: srv.connections[0].closed)
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", ports[0]), timeout=TIMEOUT).close()


class CompatibilityTest(unittest.TestCase):
    def test_existing_stream_server_untouched(self) -> None:
        # The new module adds names; TCPServer's on_line is unchanged.
        with TCPServer(on_line=lambda c, line: c.write(line)) as srv:
            with socket.create_connection(srv.server_address, timeout=TIMEOUT) as s:
                s.sendall(b"x\n")
                self.assertEqual(recv_until(s, b"\n"), b"x\n")


class RecordFalseTest(unittest.TestCase):
    """``record=False``: as on the other servers, nothing is kept, callbacks still run."""

    def test_no_connection_is_kept_and_every_callback_runs(self) -> None:
        import gc
        import weakref

        seen: list[weakref.ref[ScriptedConnection]] = []
        frames: list[bytes] = []
        closed: list[int] = []

        def on_connect(conn: ScriptedConnection) -> None:
            seen.append(weakref.ref(conn))
            conn.push(b"hi\n")

        def on_frame(conn: ScriptedConnection, line: bytes) -> None:
            frames.append(line)
            conn.close_when_done()

        with ScriptedServer(
            terminator=b"\n",
            on_connect=on_connect,
            on_frame=on_frame,
            on_close=lambda conn: closed.append(1),
            record=False,
        ) as srv:
            self.assertFalse(srv.record)
            for i in range(50):
                with socket.create_connection(srv.server_address, timeout=TIMEOUT) as s:
                    self.assertEqual(recv_until(s, b"\n"), b"hi\n")
                    s.sendall(b"line %d\n" % i)
                    self.assertEqual(recv_all(s), b"")
            srv.wait_for(lambda: len(closed) == 50, TIMEOUT, "50 closed")
            self.assertEqual(srv.connections, [])
            self.assertEqual(frames, [b"line %d" % i for i in range(50)])
            with self.assertRaises(UsageError):
                srv.wait_for_connections(1, timeout=0.1)
            gc.collect()
            self.assertEqual([r for r in seen if r() is not None], [])  # none kept alive

    def test_child_listener_keeps_nothing_either(self) -> None:
        children: list[ScriptedConnection] = []

        def on_frame(conn: ScriptedConnection, line: bytes) -> None:
            lst = conn.listen(on_connect=lambda c: (children.append(c), c.push(b"data")))
            conn.state.listener = lst
            conn.push_line(str(lst.port))

        with ScriptedServer(terminator=b"\n", on_frame=on_frame, record=False) as srv:
            with socket.create_connection(srv.server_address, timeout=TIMEOUT) as s:
                s.sendall(b"PASV\n")
                port = int(recv_until(s, b"\r\n"))
                with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as d:
                    self.assertEqual(recv_until(d, b"data"), b"data")
                srv.wait_for(lambda: children and children[0].closed, TIMEOUT, "child closed")
                self.assertEqual(srv.connections, [])
                listener = children[0].parent.state.listener  # type: ignore[union-attr]
                self.assertEqual(listener.connections, [])


class StreamingBackPressureTest(unittest.TestCase):
    """A script streams a large output through ``writing_paused``/``when_drained``
    with the server holding about the high-water mark, never the whole output."""

    CHUNK = 64 * 1024

    def test_64_mib_to_a_slow_reader_with_bounded_server_memory(self) -> None:
        import hashlib

        total = 64 * 1024 * 1024
        chunk = bytes(range(256)) * (self.CHUNK // 256)
        stats = {"max_backlog": 0, "waits": 0, "pushed": 0}

        class Streamer:
            def __init__(self, conn: ScriptedConnection) -> None:
                self.conn = conn
                self.left = 0

            def on_frame(self, frame: bytes) -> None:
                self.left = int(frame.split()[1])
                self.pump()

            def pump(self) -> None:
                conn = self.conn
                t = conn.transport
                assert t is not None
                while self.left and not conn.writing_paused:
                    n = min(len(chunk), self.left)
                    conn.push(chunk[:n])
                    self.left -= n
                    stats["pushed"] += n
                    stats["max_backlog"] = max(stats["max_backlog"], t.get_write_buffer_size())
                if self.left:
                    stats["waits"] += 1
                    conn.when_drained(self.pump)
                else:
                    conn.close_when_done()

        with ScriptedServer(script=Streamer) as srv:
            with socket.create_connection(srv.server_address, timeout=TIMEOUT) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
                s.sendall(b"GET %d\r\n" % total)
                digest, got, reads = hashlib.sha256(), 0, 0
                while True:
                    data = s.recv(256 * 1024)
                    if not data:
                        break
                    digest.update(data)
                    got += len(data)
                    reads += 1
                    if reads % 64 == 0:
                        time.sleep(0.002)  # a slow reader
            self.assertEqual(got, total)
            expected = hashlib.sha256()
            for _ in range(total // len(chunk)):
                expected.update(chunk)
            self.assertEqual(digest.hexdigest(), expected.hexdigest())
            srv.wait_for_connections(1, closed=True, timeout=TIMEOUT)
            self.assertEqual(srv.errors, [])
        self.assertEqual(stats["pushed"], total)
        self.assertGreater(stats["waits"], 0, "the reader was never slower than the script")
        # Never more than the high-water mark and one chunk waiting in the server.
        self.assertLessEqual(stats["max_backlog"], WRITE_HIGH_WATER + self.CHUNK)

    def test_when_drained_runs_on_a_later_pass_in_order_and_not_after_close(self) -> None:
        ran: list[str] = []
        errors: list[BaseException] = []

        def on_frame(conn: ScriptedConnection, line: bytes) -> None:
            if line == b"go":
                self.assertFalse(conn.writing_paused)
                conn.when_drained(lambda: ran.append("a"))
                conn.when_drained(lambda: (ran.append("b"), conn.push(b"done\n")))
                ran.append("frame")  # before either: they run on a later pass
            elif line == b"late":
                for _ in range(64):  # the peer never reads this (the kernel takes some)
                    conn.push(b"x" * (1024 * 1024))
                    if conn.writing_paused:
                        break
                self.assertTrue(conn.writing_paused)
                conn.when_drained(lambda: ran.append("never"))
                conn.abort()

        with ScriptedServer(terminator=b"\n", on_frame=on_frame) as srv:
            with socket.create_connection(srv.server_address, timeout=TIMEOUT) as s:
                s.sendall(b"go\n")
                self.assertEqual(recv_until(s, b"done\n"), b"done\n")
            self.assertEqual(ran, ["frame", "a", "b"])
            with socket.create_connection(srv.server_address, timeout=TIMEOUT) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.sendall(b"late\n")
                srv.wait_for_connections(2, closed=True, timeout=TIMEOUT)
            time.sleep(0.05)
            errors.extend(srv.errors)
        self.assertEqual(ran, ["frame", "a", "b"])
        self.assertEqual(errors, [])
