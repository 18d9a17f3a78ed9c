"""Throughput: UDP datagrams/s received (loss counted) and TCP echo MB/s.

Clients run in a child process (:mod:`bench._client`), so the numbers are
the server's and not the interpreter lock's.  Loopback only.

UDP, 200-byte datagrams (a typical log record), two measurements per server:

* **paced ladder**: the client sends at a fixed rate for a short window;
  the rate grows by 1.5x until datagrams are lost or the server falls behind
  (received < 95 % of sent once the sender stops and the server has
  drained).  Reported: the highest rate received with *no loss*.
* **flood**: a fixed burst sent as fast as the client can; reported:
  datagrams/s received (first to last arrival, seen by the server-side
  counter) and how many were lost.

Each server counts in its handler (or its own counter), the cheapest thing a
handler can do, so the loop and not the handler is measured.  testservers
asks for a 4 MiB ``SO_RCVBUF`` (:data:`reactor.UDP_RCVBUF`); socketserver
keeps the system default, so a row with socketserver and the same buffer is
shown too, to tell buffer size from loop speed.

TCP echo: one connection, the client writes ``TOTAL`` bytes while reading
the echo back; MB/s of payload one way.

HTTP keep-alive requests/s and SMTP messages/s belong to ``bench_http`` and
``bench_smtp`` (written with those servers); this module runs them when
they exist.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from bench._floor import MinimalServer
from bench._runner import Report, Skip, Table, fmt_num, fmt_ratio, progress
from bench._subjects import import_notes, subjects

UDP_SIZE = 200

#: Factor between the paced ladder's rates (10,000/s, 15,000/s, 23,000/s ...).
LADDER_STEP = 1.5
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _client(*args: object, timeout: float = 60.0) -> dict[str, Any]:
    """Run ``python -m bench._client ARGS`` and return its JSON line."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench._client", *map(str, args)],
        cwd=_ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"client {args[0]} failed: {proc.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- UDP servers with a counter -------------------------------------------------


class _UdpSubject:
    """A started UDP server and a function returning how many datagrams it received."""

    def __init__(self, label: str, group: str, start: Callable[[], tuple[Any, Callable[[], int],
                                                                       Callable[[], None]]]):
        self.label = label
        self.group = group
        self._start = start

    def __enter__(self) -> tuple[Any, Callable[[], int], Callable[[], float]]:
        """Start; return (address, received counter, server CPU clock)."""
        before = set(threading.enumerate())
        addr, count, self._stop = self._start()
        new = [t for t in threading.enumerate() if t not in before]
        cpu: Callable[[], float]
        if len(new) == 1 and new[0].ident is not None and "per datagram" not in self.label:
            # The one serving thread: its own CPU clock, nothing else counted.
            clock = time.pthread_getcpuclockid(new[0].ident)
            cpu = lambda: time.clock_gettime(clock)  # noqa: E731
        else:
            # Threads come and go (one per datagram): the whole process
            # minus this (the measuring) thread.
            cpu = lambda: time.process_time() - time.thread_time()  # noqa: E731
        return addr, count, cpu

    def __exit__(self, *exc: object) -> None:
        self._stop()


def _udp_subjects() -> list[_UdpSubject]:
    import protocols

    out: list[_UdpSubject] = []

    def ours_native() -> tuple[Any, Callable[[], int], Callable[[], None]]:
        srv = protocols.UDPServer(record=False)
        srv.start()
        return srv.server_address, lambda: srv.received_count, srv.stop

    def ours_compat() -> tuple[Any, Callable[[], int], Callable[[], None]]:
        n = [0]

        def handler(request: Any) -> None:
            n[0] += 1

        srv = protocols.TestUDPServer(("127.0.0.1", 0), handler, 0.5)
        srv.start()
        return srv.server_address, lambda: n[0], srv.stop

    def socketserver_plain(rcvbuf: int | None) -> Callable[
            [], tuple[Any, Callable[[], int], Callable[[], None]]]:
        def start() -> tuple[Any, Callable[[], int], Callable[[], None]]:
            n = [0]

            class Count(socketserver.BaseRequestHandler):
                def handle(self) -> None:
                    n[0] += 1

            class Server(socketserver.UDPServer):
                def server_bind(self) -> None:
                    if rcvbuf:
                        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                    super().server_bind()

            srv = Server(("127.0.0.1", 0), Count)
            t = threading.Thread(target=srv.serve_forever, args=(0.5,), daemon=True)
            t.start()

            def stop() -> None:
                srv.shutdown()
                t.join(10)
                srv.server_close()

            return srv.server_address, lambda: n[0], stop

        return start

    def test_logging_udp() -> tuple[Any, Callable[[], int], Callable[[], None]]:
        tl = sys.modules.get("test.test_logging")
        if tl is None:
            raise Skip("test.test_logging not importable")
        n = [0]
        lock = threading.Lock()

        def handler(request: Any) -> None:
            with lock:  # ThreadingUDPServer: one thread per datagram
                n[0] += 1

        srv = tl.TestUDPServer(("127.0.0.1", 0), handler, 0.5)
        srv.start()
        srv.ready.wait(10)
        return srv.server_address, lambda: n[0], srv.stop

    def floor() -> tuple[Any, Callable[[], int], Callable[[], None]]:
        srv = MinimalServer("udp", reply=False)
        srv.start()
        return srv.server_address, lambda: srv.received, srv.stop

    import reactor

    subjects(("udp",))  # loads test.test_logging when present
    out.append(_UdpSubject("testservers UDPServer (record=False)", "ours", ours_native))
    out.append(_UdpSubject("testservers TestUDPServer (counting handler)", "ours", ours_compat))
    out.append(_UdpSubject("socketserver UDPServer", "peer", socketserver_plain(None)))
    out.append(_UdpSubject(f"socketserver UDPServer (SO_RCVBUF {reactor.UDP_RCVBUF >> 20} MiB)",
                           "peer", socketserver_plain(reactor.UDP_RCVBUF)))
    if "test.test_logging" in sys.modules:
        out.append(_UdpSubject("test_logging TestUDPServer (thread per datagram)", "peer",
                               test_logging_udp))
    out.append(_UdpSubject("minimal loop (udp)", "floor", floor))
    return out


def _udp_trial(addr: Any, count: Callable[[], int], cpu_clock: Callable[[], float], n: int,
               rate: float) -> dict[str, Any]:
    """One client run of ``n`` datagrams at ``rate``/s (0: flood), watched from here.

    The server-side counter is sampled every 0.5 ms: the first change starts
    the receive clock (so child start-up is not counted), the last change
    stops it.  ``kept_up`` is whether the server had received 95 % of what
    was sent by the time the client finished sending (a big socket buffer
    hides a slow loop in a short run, but not from this).
    """
    base = count()
    result: dict[str, Any] = {}
    failure: list[BaseException] = []

    def send() -> None:
        try:
            result.update(_client("udp", addr[0], addr[1], UDP_SIZE, n, rate))
        except BaseException as exc:
            failure.append(exc)

    cpu0 = cpu_clock()
    t = threading.Thread(target=send, daemon=True)
    t.start()
    first: float | None = None
    last: float | None = None
    prev = 0
    deadline = time.perf_counter() + 60
    while t.is_alive() and time.perf_counter() < deadline:
        v = count() - base
        if v != prev:
            now = time.perf_counter()
            first = first if first is not None else now
            last, prev = now, v
        time.sleep(0.0005)
    t.join(5)
    if failure:
        raise failure[0]
    if not result:
        raise RuntimeError("UDP client did not report")
    got_at_end = count() - base
    sent = int(result["sent"])
    # Drain: wait until everything arrived or nothing moved for 0.25 s.
    quiet_since = time.perf_counter()
    while time.perf_counter() - quiet_since < 0.25 and prev < sent:
        v = count() - base
        if v != prev:
            now = time.perf_counter()
            first = first if first is not None else now
            last, prev, quiet_since = now, v, now
        time.sleep(0.0005)
    got = count() - base
    cpu = cpu_clock() - cpu0
    span = (last - first) if first is not None and last is not None else 0.0
    return {
        "server_cpu_s": cpu,
        "cpu_us_per_datagram": cpu * 1e6 / got if got else float("nan"),
        "sent": sent,
        "received": got,
        "lost": sent - got,
        "send_s": result["elapsed"],
        "received_when_sender_done": got_at_end,
        "kept_up": got_at_end >= 0.95 * sent,
        "recv_rate": (got - 1) / span if span > 0 and got > 1 else float("nan"),
    }


def _udp_inprocess(addr: Any, count: Callable[[], int], n: int) -> dict[str, Any]:
    """``n`` datagrams sent as fast as possible from this thread (sharing the GIL).

    This is a logging test's situation: ``DatagramHandler`` emitting from
    the test thread while the server runs in the same interpreter.
    """
    base = count()
    payload = b"x" * UDP_SIZE
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        t0 = time.perf_counter()
        for _ in range(n):
            try:
                s.send(payload)
            except OSError:
                pass
        t1 = time.perf_counter()
    quiet_since = time.perf_counter()
    prev = count() - base
    while time.perf_counter() - quiet_since < 0.25 and prev < n:
        time.sleep(0.001)
        v = count() - base
        if v != prev:
            prev, quiet_since = v, time.perf_counter()
    got = count() - base
    return {"sent": n, "received": got, "lost": n - got, "send_s": t1 - t0}


def _udp_bench(quick: bool, table: Table, data: dict[str, Any]) -> None:
    window = 0.1 if quick else 0.5
    flood_n = 5_000 if quick else 200_000
    # In-process bursts the size of a chatty logging test: what the socket
    # buffer must absorb while the sender holds the interpreter lock.
    burst, bursts = (2_000, 1) if quick else (5_000, 5)
    start_rate = 10_000
    max_rate = 40_000 if quick else 2_560_000
    for subj in _udp_subjects():
        if quick and ("SO_RCVBUF" in subj.label or "per datagram" in subj.label):
            continue  # --quick: prove the benchmark runs; these two rows add nothing to that
        progress(f"UDP {subj.label}", force=True)
        try:
            with subj as (addr, count, cpu_clock):
                ladder: list[dict[str, Any]] = []
                best = 0.0
                rate = float(start_rate)
                why = f"reached the ladder top ({max_rate:,}/s)"
                while rate <= max_rate:
                    n = int(rate * window)
                    r = _udp_trial(addr, count, cpu_clock, n, rate)
                    r["rate"] = rate
                    ladder.append(r)
                    progress(f"UDP {subj.label}: {rate:,.0f}/s lost {r['lost']}")
                    if r["lost"]:
                        why = f"lost {r['lost']:,} at {rate:,.0f}/s"
                        break
                    if not r["kept_up"]:
                        why = f"fell behind at {rate:,.0f}/s"
                        break
                    achieved = r["sent"] / r["send_s"] if r["send_s"] > 0 else 0.0
                    if achieved < 0.9 * rate:
                        why = f"client could not send {rate:,.0f}/s"
                        break
                    best = achieved  # what was really sent (and all received)
                    rate = round(rate * LADDER_STEP, -3)
                flood = _udp_trial(addr, count, cpu_clock, flood_n, 0)
                inproc = [_udp_inprocess(addr, count, burst) for _ in range(bursts)]
        except Skip as exc:
            table.rows.append(["udp", subj.label, f"skipped: {exc}"])
            continue
        capacity = 1e6 / flood["cpu_us_per_datagram"] if flood["received"] else 0.0
        data[subj.label] = {"ladder": ladder, "lossless_rate": best, "flood": flood,
                            "in_process": inproc, "capacity": capacity,
                            "group": subj.group, "ladder_stop": why}
        table.rows.append([
            "udp", subj.label, fmt_num(best), why, fmt_num(flood["recv_rate"]),
            f"{flood['lost']:,}/{flood['sent']:,}", fmt_num(flood["cpu_us_per_datagram"], 1),
            fmt_num(capacity), "",
            f"{sum(b['lost'] for b in inproc):,}/{sum(b['sent'] for b in inproc):,}",
        ])
    ref = data.get("socketserver UDPServer")
    for row in table.rows:
        d = data.get(row[1])
        if d is not None and ref is not None and ref["capacity"] and len(row) > 8:
            row[8] = fmt_ratio(d["capacity"] / ref["capacity"])


# -- TCP echo ---------------------------------------------------------------------


def _echo_blocking(request: Any) -> None:
    sock = request.connection if hasattr(request, "connection") else request.request
    while True:
        b = sock.recv(262144)
        if not b:
            return
        sock.sendall(b)


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while True:
            b = self.request.recv(262144)
            if not b:
                return
            self.request.sendall(b)


def _tcp_subjects() -> list[tuple[str, str, Callable[[], tuple[Any, Callable[[], None]]]]]:
    import protocols

    def ours_native(record: bool) -> Callable[[], tuple[Any, Callable[[], None]]]:
        def start() -> tuple[Any, Callable[[], None]]:
            srv = protocols.TCPServer(on_data=lambda conn, data: conn.write(data), record=record)
            srv.start()
            return srv.server_address, srv.stop

        return start

    def ours_compat() -> tuple[Any, Callable[[], None]]:
        srv = protocols.TestTCPServer(("127.0.0.1", 0), _echo_blocking, 0.5)
        srv.start()
        return srv.server_address, srv.stop

    def threading_tcp() -> tuple[Any, Callable[[], None]]:
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _EchoHandler)
        t = threading.Thread(target=srv.serve_forever, args=(0.5,), daemon=True)
        t.start()

        def stop() -> None:
            srv.shutdown()
            t.join(10)
            srv.server_close()

        return srv.server_address, stop

    def floor() -> tuple[Any, Callable[[], None]]:
        srv = MinimalServer("tcp")
        srv.start()
        return srv.server_address, srv.stop

    return [
        ("testservers TCPServer (on_data, reactor, record=False)", "ours", ours_native(False)),
        ("testservers TCPServer (on_data, reactor, record=True)", "ours", ours_native(True)),
        ("testservers TestTCPServer (blocking handler)", "ours", ours_compat),
        ("socketserver ThreadingTCPServer", "peer", threading_tcp),
        ("minimal loop (tcp)", "floor", floor),
    ]


def _tcp_bench(quick: bool, table: Table, data: dict[str, Any]) -> None:
    total = (4 if quick else 128) << 20
    chunk = 65536
    rounds = 1 if quick else 3
    results: dict[str, float] = {}
    for label, group, start in _tcp_subjects():
        progress(f"TCP echo {label}", force=True)
        addr, stop = start()
        try:
            runs = [_client("tcp-echo", addr[0], addr[1], total, chunk) for _ in range(rounds)]
        finally:
            stop()
        for r in runs:
            if r["received"] != total:
                raise AssertionError(f"{label}: echoed {r['received']} of {total} bytes")
        best = max(total / r["elapsed"] / 1e6 for r in runs)
        results[label] = best
        data[label] = {"group": group, "runs": runs, "best_MB_s": best}
    ref = results.get("socketserver ThreadingTCPServer")
    for label, mbs in results.items():
        table.rows.append(["tcp echo", label, fmt_num(mbs, 0),
                           fmt_ratio(mbs / ref) if ref else "-"])


def run(quick: bool) -> Report:
    report = Report("throughput")
    udp_table = Table(f"UDP, {UDP_SIZE}-byte datagrams (client in a child process)",
                      ["proto", "server", "lossless paced rate/s", "ladder stopped because",
                       "flood received/s", "flood lost/sent", "server CPU us/datagram",
                       "capacity/s", "capacity vs socketserver", "in-process bursts lost/sent"])
    udp_data: dict[str, Any] = {}
    _udp_bench(quick, udp_table, udp_data)
    udp_table.notes.append("lossless paced rate: the rate really sent (sent / send time) at the "
                           "highest step of a x1.5 ladder (from 10,000/s) at which every "
                           "datagram was received and the server kept up (95 % received by the "
                           "time the client stopped sending); a step the client cannot send "
                           "within 10 % ends the ladder")
    udp_table.notes.append("flood: one burst as fast as the client sends; rate = first to last "
                           "arrival at the server (bounded by the client: one Python process "
                           "sends about 100,000/s here)")
    udp_table.notes.append("server CPU us/datagram: CPU time of the serving thread (of the "
                           "whole process but the measuring thread, for the thread-per-datagram "
                           "server) during the flood / datagrams received; capacity = 1e6 / "
                           "that, the rate one core could sustain, independent of how fast the "
                           "client can send")
    udp_table.notes.append("in-process bursts: datagrams sent as fast as possible from the "
                           "benchmark's own thread, sharing the interpreter lock with the server "
                           "(as a logging test's DatagramHandler does), in bursts of 5,000 "
                           "(--quick: 2,000); lost/sent over all bursts")
    report.tables.append(udp_table)

    tcp_table = Table("TCP echo, one connection (client in a child process)",
                      ["proto", "server", "MB/s", "vs socketserver"])
    tcp_data: dict[str, Any] = {}
    _tcp_bench(quick, tcp_table, tcp_data)
    tcp_table.notes.append("best of the runs; payload bytes one way per second")
    tcp_table.notes.append("record=True (the default) keeps every byte received for "
                           "Stream.data and wait_for_data(), up to MAX_RECORDED_BYTES per "
                           "connection: a chunk of 4 KiB or more by reference, copied into "
                           "Stream.data's bytearray when a thread first reads it (none does "
                           "here), a smaller one at once; the difference between the two rows "
                           "is that bookkeeping")
    report.tables.append(tcp_table)
    report.data = {"udp": udp_data, "tcp": tcp_data}

    for name in ("http", "smtp"):
        try:
            module = importlib.import_module(f"bench.bench_{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"bench.bench_{name}":
                raise
            report.tables.append(Table(f"{name.upper()} throughput", ["note"],
                                       [[f"bench/bench_{name}.py does not exist yet"]]))
            continue
        from bench._runner import _coerce

        progress(f"bench_{name}", force=True)
        fn = getattr(module, "run", None) or getattr(module, "main", None)
        if fn is None:
            continue
        sub = _coerce(name, fn(quick=quick))
        report.tables.extend(sub.tables)
        report.data[name] = sub.data

    t = Table("Target (issue 5 item 4): UDP >= 2x socketserver with no loss at the measured "
              "rate", ["server", "lossless paced rate vs socketserver",
                       "same, vs socketserver with the same SO_RCVBUF", "CPU capacity vs "
                       "socketserver", "met"])
    ref = udp_data.get("socketserver UDPServer")
    ref_buf = next((v for k, v in udp_data.items() if "SO_RCVBUF" in k), None)
    for label, d in udp_data.items():
        if d["group"] != "ours" or not ref or not ref["capacity"] or not ref["lossless_rate"]:
            continue
        cap = d["capacity"] / ref["capacity"]
        paced = d["lossless_rate"] / ref["lossless_rate"]
        paced_buf = (d["lossless_rate"] / ref_buf["lossless_rate"]
                     if ref_buf and ref_buf["lossless_rate"] else float("nan"))
        t.rows.append([label, fmt_ratio(paced), fmt_ratio(paced_buf), fmt_ratio(cap),
                       "yes" if paced >= 2 else "NO"])
    if quick:
        t.notes.append("--quick caps the ladder at 40,000/s: judge this target on a full run")
    t.notes.append("met: the highest paced rate received with no loss is at least twice "
                   "socketserver's (the ladder is lossless by construction); CPU capacity "
                   "(1 / CPU per datagram) is shown to separate loop cost from buffer size")
    for k, v in import_notes().items():
        t.notes.append(f"not measured: {k}: {v}")
    report.tables.append(t)
    return report
