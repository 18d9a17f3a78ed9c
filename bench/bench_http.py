"""HTTP/1.1 throughput: keep-alive requests/s, and the parser alone.

Side by side, in one run, each answering ``GET /`` with ``200 ok``:

* ``testservers HTTPServer``: the native server (handler returns a Reply,
  ``record=False``);
* ``testservers TestHTTPServer``: the CPython-compatible server with an
  http.server-style handler (``protocol_version = "HTTP/1.1"``);
* ``http.server ThreadingHTTPServer``: the stdlib peer with the equivalent
  handler, ``protocol_version = "HTTP/1.1"`` so it keeps connections alive;
* ``reactor alone``: the shared reactor with a protocol that answers every
  ``\r\n\r\n`` with the canned response (no HTTP at all): how much of the
  distance to the ceiling is the reactor's and how much is HTTP's;
* ``selectors ceiling``: a minimal hand-written selectors loop that answers
  every ``\\r\\n\\r\\n`` with a canned response: no parsing, no handler, no
  limits; the pure-Python upper bound.

Load comes from ``wrk`` when installed (``-t1``, keep-alive connections),
else from a bounded Python client (threads with raw sockets, a fixed request
count and a time limit; it is slower than the faster servers, so its ratios
are compressed).  With wrk, HTTPS is measured too: our server with the
localhost certificate against ThreadingHTTPServer wrapping each accepted
socket with the same context.  Each subject runs several times, interleaved; the
table gives medians and the ratios to ThreadingHTTPServer and to the ceiling.

The parser bench feeds :class:`~protocols.http._machine.HTTP11Machine` a typical
request head with no sockets: one request per feed (keep-alive cycle:
request, end of message, response), and 100 pipelined requests per feed.

``python -m bench.bench_http [--quick]`` runs it alone; ``python -m bench
http`` runs it under the bench runner (``run(quick)``).
"""

from __future__ import annotations

import argparse
import http.server
import re
import selectors
import shutil
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench._runner import Report, Table, fmt_ratio, progress
from protocols import (
    HTTP11Machine,
    HTTPRequest,
    HTTPServer,
    Reply,
    TestHTTPServer,
    localhost_contexts,
)
from reactor import StreamServerBase

__all__ = ["run", "bench_parser", "SUBJECTS"]

WRK = shutil.which("wrk")
CANNED = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
REQUEST = (
    b"GET /bench?id=42 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    b"User-Agent: bench/1.0\r\nAccept: */*\r\n\r\n"
)


# -- subjects -----------------------------------------------------------------


@contextmanager
def _ours_native() -> Iterator[int]:
    def handler(request: HTTPRequest) -> Reply:
        return Reply(200, b"ok", (("Content-Type", "text/plain"),))

    with HTTPServer(handler=handler, record=False) as server:
        assert server.port is not None
        yield server.port


def _compat_handler(request: Any) -> None:
    request.send_response(200)
    request.send_header("Content-Type", "text/plain")
    request.send_header("Content-Length", "2")
    request.end_headers()
    request.wfile.write(b"ok")


@contextmanager
def _ours_compat() -> Iterator[int]:
    server = TestHTTPServer(("127.0.0.1", 0), _compat_handler)
    server.protocol_version = "HTTP/1.1"
    server.record = False
    server.start()
    try:
        assert server.port is not None
        yield server.port
    finally:
        server.stop()


class _StdlibHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        _compat_handler(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _StdlibHandlerNoDelay(_StdlibHandler):
    # The handler writes the head and the body in two sends; without
    # TCP_NODELAY each response waits for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True


class _QuietThreadingHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # wrk resets its connections at the end of a run


@contextmanager
def _stdlib_threading_nodelay() -> Iterator[int]:
    with _stdlib_threading(_StdlibHandlerNoDelay) as port:
        yield port


@contextmanager
def _stdlib_threading(handler: type[_StdlibHandler] = _StdlibHandler) -> Iterator[int]:
    with _serving(_QuietThreadingHTTPServer(("127.0.0.1", 0), handler)) as port:
        yield port


@contextmanager
def _serving(server: http.server.HTTPServer) -> Iterator[int]:
    """Run a stdlib server's serve_forever() on a thread; yield its port."""
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    t.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        t.join(5)


@contextmanager
def _ceiling() -> Iterator[int]:
    """A keep-alive selectors loop: one canned response per ``\\r\\n\\r\\n``."""
    sel = selectors.DefaultSelector()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.setblocking(False)
    wake_r, wake_w = socket.socketpair()
    sel.register(listener, selectors.EVENT_READ, None)
    sel.register(wake_r, selectors.EVENT_READ, None)
    conns: dict[socket.socket, bytearray] = {}
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            for key, _ in sel.select():
                sock = key.fileobj
                if sock is wake_r:
                    return
                if sock is listener:
                    try:
                        c, _ = listener.accept()
                    except BlockingIOError:
                        continue
                    c.setblocking(False)
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    conns[c] = bytearray()
                    sel.register(c, selectors.EVENT_READ, None)
                    continue
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(sock)
                    sock.close()
                    del conns[sock]
                    continue
                buf = conns[sock]
                buf += data
                n = buf.count(b"\r\n\r\n")
                if n:
                    del buf[: buf.rfind(b"\r\n\r\n") + 4]
                    try:
                        sock.sendall(CANNED * n)  # small: fits the socket buffer
                    except OSError:
                        pass

    t = threading.Thread(target=loop)
    t.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        wake_w.send(b"x")
        t.join(5)
        for c in conns:
            c.close()
        sel.close()
        listener.close()
        wake_r.close()
        wake_w.close()


class _CannedProtocol:
    """Reactor-side protocol answering every ``\r\n\r\n`` with CANNED (no HTTP)."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.tail = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        data = self.tail + data
        n = data.count(b"\r\n\r\n")
        self.tail = data[data.rfind(b"\r\n\r\n") + 4 :] if n else data
        if n:
            self.transport.write(CANNED * n)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        pass


class _CannedServer(StreamServerBase):
    def make_protocol(self, addr: Any) -> _CannedProtocol:
        return _CannedProtocol()


@contextmanager
def _reactor_canned() -> Iterator[int]:
    with _CannedServer() as server:
        assert server.port is not None
        yield server.port


@contextmanager
def _ours_native_tls() -> Iterator[int]:
    server_ctx, _ = localhost_contexts()

    def handler(request: HTTPRequest) -> Reply:
        return Reply(200, b"ok", (("Content-Type", "text/plain"),))

    with HTTPServer(handler=handler, record=False, ssl_context=server_ctx) as server:
        assert server.port is not None
        yield server.port


@contextmanager
def _stdlib_threading_tls() -> Iterator[int]:
    server_ctx, _ = localhost_contexts()

    class TLSServer(_QuietThreadingHTTPServer):
        def get_request(self) -> tuple[Any, Any]:
            sock, addr = self.socket.accept()
            # As CPython's test_logging TestHTTPServer does it: the handshake
            # runs in the accept loop (once per keep-alive connection here).
            return server_ctx.wrap_socket(sock, server_side=True), addr

    with _serving(TLSServer(("127.0.0.1", 0), _StdlibHandlerNoDelay)) as port:
        yield port


#: HTTPS subjects (wrk only).
TLS_SUBJECTS: dict[str, Callable[[], Any]] = {
    "testservers HTTPServer (TLS)": _ours_native_tls,
    "http.server ThreadingHTTPServer + TCP_NODELAY (TLS)": _stdlib_threading_tls,
}

#: name -> context manager factory yielding a port.
SUBJECTS: dict[str, Callable[[], Any]] = {
    "testservers HTTPServer": _ours_native,
    "testservers TestHTTPServer": _ours_compat,
    "http.server ThreadingHTTPServer": _stdlib_threading,
    "http.server ThreadingHTTPServer + TCP_NODELAY": _stdlib_threading_nodelay,
    "reactor alone (canned bytes, no HTTP)": _reactor_canned,
    "selectors ceiling": _ceiling,
}
#: The peer the ratios use: the stdlib server with TCP_NODELAY (the fair one).
PEER = "http.server ThreadingHTTPServer + TCP_NODELAY"
CEILING = "selectors ceiling"


# -- load generators -------------------------------------------------------------


def _wrk(port: int, seconds: float, connections: int, scheme: str = "http") -> float:
    assert WRK is not None
    out = subprocess.run(
        [WRK, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
         f"{scheme}://127.0.0.1:{port}/bench?id=42"],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if m is None:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        raise RuntimeError(f"wrk saw error responses:\n{out}")
    return float(m.group(1))


def _python_client(port: int, seconds: float, connections: int) -> float:
    """Bounded fallback: threads send a request, read the whole response, repeat."""
    deadline = time.monotonic() + seconds
    counts = [0] * connections
    max_requests = 2_000_000

    def worker(i: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = b""
            n = 0
            while n < max_requests and time.monotonic() < deadline:
                s.sendall(REQUEST)
                for _ in range(1000):
                    end = buf.find(b"\r\n\r\n")
                    if end >= 0:
                        head = buf[:end].lower()
                        cl = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
                        if len(buf) >= end + 4 + cl:
                            buf = buf[end + 4 + cl :]
                            break
                    chunk = s.recv(65536)
                    if not chunk:
                        raise ConnectionError("server closed the connection")
                    buf += chunk
                n += 1
            counts[i] = n

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    return sum(counts) / (time.monotonic() - t0)


def load(port: int, seconds: float, connections: int) -> float:
    """Requests/s against ``port`` (wrk if installed, else the Python client)."""
    if WRK is not None:
        return _wrk(port, seconds, connections)
    return _python_client(port, seconds, connections)


# -- the parser alone ---------------------------------------------------------------


def _rate(batch: Callable[[], object], per_batch: int, seconds: float) -> float:
    """Requests/s of ``batch()`` (``per_batch`` requests each), run for ``seconds``."""
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while n < 10_000_000:
        batch()
        n += per_batch
        if time.perf_counter() > deadline:
            break
    return n / (time.perf_counter() - t0)


def bench_parser(seconds: float = 1.0) -> dict[str, float]:
    """Requests per second through HTTP11Machine alone (no sockets)."""
    headers = (("Content-Type", "text/plain"),)

    m1 = HTTP11Machine()

    def one_per_feed() -> None:
        for _ in range(1000):
            m1.receive_data(REQUEST)
            m1.next_event()  # Request
            m1.next_event()  # EndOfMessage
            m1.send_response(200, headers, b"ok")
            m1.data_to_send()

    batch = REQUEST * 100
    m2 = HTTP11Machine()

    def pipelined() -> None:
        m2.receive_data(batch)
        for _ in range(100):
            m2.next_event()
            m2.next_event()
            m2.send_response(200, headers, b"ok")
        m2.data_to_send()

    m3 = HTTP11Machine()
    idle = type(m3.our_state).IDLE

    def parse_only() -> None:
        for _ in range(1000):
            m3.receive_data(REQUEST)
            m3.next_event()
            m3.next_event()
            m3.their_state = m3.our_state = idle  # parse only
            m3._reset_cycle()

    return {
        "cycle (parse + respond), 1 request per feed": _rate(one_per_feed, 1000, seconds),
        "cycle, 100 pipelined requests per feed": _rate(pipelined, 100, seconds),
        "parse only (request head + end of message)": _rate(parse_only, 1000, seconds),
    }


# -- the run --------------------------------------------------------------------------


def run(quick: bool = False) -> Report:
    runs = 1 if quick else 5  # quick: a smoke run for CI, about 10 s
    seconds = 1.0 if quick else 3.0
    connections = 8
    rates: dict[str, list[float]] = {name: [] for name in SUBJECTS}
    for r in range(runs):
        for name, factory in SUBJECTS.items():
            progress(f"run {r + 1}/{runs}: {name}")
            with factory() as port:
                if not quick:
                    load(port, 0.3 if WRK is None else 1, connections)  # warm up
                rates[name].append(load(port, seconds, connections))
    med = {name: statistics.median(v) for name, v in rates.items()}
    tool = (f"wrk -t1 -c{connections} -d{max(1, round(seconds))}s" if WRK
            else f"Python client, {connections} connections, {seconds} s")
    table = Table(
        f"HTTP/1.1 keep-alive throughput ({tool}; median of {runs} runs)",
        ["server", "", "requests/s", "min", "max", "vs ThreadingHTTPServer", "vs ceiling"],
    )
    for name, values in rates.items():
        table.rows.append([
            name, "",
            f"{med[name]:,.0f}", f"{min(values):,.0f}", f"{max(values):,.0f}",
            fmt_ratio(med[name] / med[PEER]), fmt_ratio(med[name] / med[CEILING]),
        ])
    table.notes.append(f"ratios are to '{PEER}' and to '{CEILING}' (medians)")
    table.notes.append("targets (issue 10): HTTPServer >= 3x ThreadingHTTPServer + TCP_NODELAY and "
                       ">= 0.5x the ceiling; TestHTTPServer >= 0.8x HTTPServer")
    tables = [table]
    tls_rates: dict[str, list[float]] = {name: [] for name in TLS_SUBJECTS}
    if WRK is not None:
        for r in range(runs):
            for name, factory in TLS_SUBJECTS.items():
                progress(f"run {r + 1}/{runs}: {name}")
                with factory() as port:
                    if not quick:
                        _wrk(port, 1, connections, "https")  # warm up
                    tls_rates[name].append(_wrk(port, seconds, connections, "https"))
        tls_med = {name: statistics.median(v) for name, v in tls_rates.items()}
        ttable = Table(
            f"HTTPS keep-alive throughput ({tool}, localhost ECDSA P-256 certificate; "
            f"median of {runs} runs)",
            ["server", "", "requests/s", "min", "max", "vs ThreadingHTTPServer"],
        )
        tls_peer = tls_med[PEER + " (TLS)"]
        for name, values in tls_rates.items():
            ttable.rows.append([
                name, "", f"{tls_med[name]:,.0f}", f"{min(values):,.0f}",
                f"{max(values):,.0f}", fmt_ratio(tls_med[name] / tls_peer),
            ])
        tables.append(ttable)
    progress("parser alone")
    parser_runs = [bench_parser(0.3 if quick else 1.0) for _ in range(runs)]
    ptable = Table(
        f"HTTP11Machine alone, no sockets (median of {runs} runs)",
        ["workload", "", "requests/s"],
    )
    parser_med = {}
    for key in parser_runs[0]:
        parser_med[key] = statistics.median(p[key] for p in parser_runs)
        ptable.rows.append([key, "", f"{parser_med[key]:,.0f}"])
    tables.append(ptable)
    return Report(
        "http",
        tables=tables,
        data={"throughput": rates, "median": med, "tls_throughput": tls_rates,
              "parser": parser_med, "load_tool": tool},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_http")
    parser.add_argument("--quick", action="store_true", help="short run, rough numbers")
    parser.add_argument("--markdown", action="store_true", help="also print Markdown tables")
    args = parser.parse_args(argv)
    report = run(quick=args.quick)
    for table in report.tables:
        print(table.render(), end="\n\n")
        if args.markdown:
            print(table.markdown(), end="\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
