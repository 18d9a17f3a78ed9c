"""The floor: a minimal hand-written selectors-loop server, one thread each.

It is what a careful person would write in fifty lines when all they need
is "a server that answers and stops at once": a bare ``selectors`` loop on
its own thread, a wakeup socketpair so ``stop()`` is a wakeup instead of a
poll, and just enough protocol to satisfy the benchmark clients.  It has no
error handling, no limits, no handler API and no recording, so it is the
lower bound for latency and the upper bound for throughput that a
thread-per-server design can reach in this interpreter.

Protocols (``kind``):

* ``tcp``: echo every byte back (line echo and bulk echo alike).
* ``udp``: count datagrams; echo each one back when ``reply`` is true.
* ``http``: answer any request head with ``200 ok`` and close.
* ``smtp``: the few replies ``smtplib.sendmail`` needs, then ``221`` and close.

Threads: ``start()``/``stop()`` from any one caller thread; everything else
runs on the server's own thread.
"""

from __future__ import annotations

import os
import selectors
import socket
import tempfile
import threading
from typing import Any

__all__ = ["MinimalServer"]

_HTTP_REPLY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: close\r\n\r\nok"
)


class _Conn:
    __slots__ = ("sock", "out", "inbuf", "close_after", "in_data", "kind")

    def __init__(self, sock: socket.socket, kind: str) -> None:
        self.sock = sock
        self.kind = kind
        self.out = bytearray()
        self.inbuf = bytearray()
        self.close_after = False
        self.in_data = False

    def feed(self, data: bytes) -> None:
        if self.kind == "tcp":
            self.out += data
        elif self.kind == "http":
            self.inbuf += data
            if b"\r\n\r\n" in self.inbuf:
                self.out += _HTTP_REPLY
                self.close_after = True
        else:
            self._smtp(data)

    def _smtp(self, data: bytes) -> None:
        self.inbuf += data
        while True:
            if self.in_data:
                end = self.inbuf.find(b"\r\n.\r\n")
                if end < 0:
                    return
                del self.inbuf[: end + 5]
                self.in_data = False
                self.out += b"250 OK\r\n"
                continue
            nl = self.inbuf.find(b"\r\n")
            if nl < 0:
                return
            verb = bytes(self.inbuf[:4]).upper()
            del self.inbuf[: nl + 2]
            if verb == b"DATA":
                self.in_data = True
                self.out += b"354 End data with <CR><LF>.<CR><LF>\r\n"
                # A message whose "." line arrived with DATA is handled above.
            elif verb == b"QUIT":
                self.out += b"221 Bye\r\n"
                self.close_after = True
                return
            elif verb in (b"EHLO", b"HELO"):
                self.out += b"250 floor\r\n"
            else:
                self.out += b"250 OK\r\n"


class MinimalServer:
    """One listening (or datagram) socket served by its own bare selectors loop.

    :param kind: ``"tcp"``, ``"udp"``, ``"http"`` or ``"smtp"``.
    :param unix: use an AF_UNIX socket in a temporary directory.
    :param reply: for ``udp``, echo each datagram to its sender.

    The socket is bound (and listening) when the constructor returns, like
    socketserver and testservers; ``start()`` returns once the loop thread
    has registered it.  ``stop()`` wakes the loop, joins the thread, closes
    every socket.
    """

    def __init__(self, kind: str, *, unix: bool = False, reply: bool = True) -> None:
        self.kind = kind
        self.reply = reply
        self.received = 0
        self.ready = threading.Event()
        stype = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
        self._tmpdir: str | None = None
        if unix:
            self._tmpdir = tempfile.mkdtemp(prefix="tsb-")
            self.sock = socket.socket(socket.AF_UNIX, stype)
            addr: Any = os.path.join(self._tmpdir, "s")
        else:
            self.sock = socket.socket(socket.AF_INET, stype)
            addr = ("127.0.0.1", 0)
            if stype == socket.SOCK_STREAM:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(addr)
        if stype == socket.SOCK_STREAM:
            self.sock.listen(128)
        self.sock.setblocking(False)
        self.server_address = self.sock.getsockname()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread: threading.Thread | None = None
        self._conns: dict[socket.socket, _Conn] = {}

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="floor", daemon=True)
        self._thread.start()
        self.ready.wait(10)

    def stop(self) -> None:
        if self._thread is not None:
            self._wake_w.send(b"x")
            self._thread.join(10)
            self._thread = None
        self._close_all()

    def _close_all(self) -> None:
        for c in list(self._conns):
            c.close()
        self._conns.clear()
        self.sock.close()
        self._wake_r.close()
        self._wake_w.close()
        if self._tmpdir is not None:
            try:
                os.unlink(self.server_address)
            except OSError:
                pass

    def cleanup(self) -> None:
        """Remove the temporary directory of a Unix socket (call after stop())."""
        if self._tmpdir is not None:
            os.rmdir(self._tmpdir)
            self._tmpdir = None

    # -- the loop (its own thread) -------------------------------------------

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ, None)
        on_listen = self._on_datagrams if self.kind == "udp" else self._on_accept
        sel.register(self.sock, selectors.EVENT_READ, on_listen)
        self.ready.set()
        try:
            while True:
                for key, mask in sel.select():
                    if key.data is None:
                        return
                    key.data(sel, key.fileobj, mask)
        finally:
            sel.close()

    def _on_datagrams(self, sel: selectors.BaseSelector, sock: socket.socket, mask: int) -> None:
        for _ in range(256):
            try:
                data, addr = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            self.received += 1
            if self.reply and addr:
                try:
                    sock.sendto(data, addr)
                except OSError:
                    pass

    def _on_accept(self, sel: selectors.BaseSelector, sock: socket.socket, mask: int) -> None:
        for _ in range(128):
            try:
                conn, _addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            conn.setblocking(False)
            if conn.family != socket.AF_UNIX:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = _Conn(conn, self.kind)
            self._conns[conn] = c
            sel.register(conn, selectors.EVENT_READ, self._on_conn)
            if self.kind == "smtp":
                c.out += b"220 floor ESMTP\r\n"
                self._flush(sel, c)

    def _on_conn(self, sel: selectors.BaseSelector, sock: socket.socket, mask: int) -> None:
        c = self._conns[sock]
        if mask & selectors.EVENT_READ:
            try:
                data = sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                data = b""
            if data == b"":
                self._drop(sel, c)
                return
            if data:
                c.feed(data)
        self._flush(sel, c)

    def _flush(self, sel: selectors.BaseSelector, c: _Conn) -> None:
        if c.out:
            try:
                n = c.sock.send(c.out)
                del c.out[:n]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._drop(sel, c)
                return
        if c.out:
            events = selectors.EVENT_WRITE  # stop reading until the peer reads (back-pressure)
        elif c.close_after:
            self._drop(sel, c)
            return
        else:
            events = selectors.EVENT_READ
        if sel.get_key(c.sock).events != events:
            sel.modify(c.sock, events, self._on_conn)

    def _drop(self, sel: selectors.BaseSelector, c: _Conn) -> None:
        sel.unregister(c.sock)
        self._conns.pop(c.sock, None)
        c.sock.close()
