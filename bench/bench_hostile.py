"""Hostile clients: what a peer that never reads costs the server and its neighbours.

Guarantee G6b: a peer that never reads, floods, or pipelines behind a
pending response costs at most 16 MiB of server memory and 5 % of a core,
and another server's median latency stays under 10 ms meanwhile.  The four
clients are the ones of the connection-core issue, each run in a child
process (``bench._hostile_client``) against a server in this process:

* ``tcp-echo``: an echo server (``on_data`` writes back); the client writes
  64 KiB chunks and never reads;
* ``smtp-noop``: ``EHLO x`` then up to 5,000,000 ``NOOP`` lines, never reading;
* ``http-pending``: a handler that calls ``respond_later()`` and never
  answers, while the client keeps pipelining GETs;
* ``http-big``: 100 pipelined GETs, each answered with 1 MiB, to a client
  with a 64 KiB receive buffer that never reads.

Measured over the window, in this process:

* server memory: peak growth of this process's resident set (sampled every
  20 ms) over its size before the client connected;
* CPU: the reactor thread's CPU time (``pthread_getcpuclockid``) as a share
  of one core, minus the same share measured with the probes alone;
* another server's latency: a second HTTP server on the same reactor,
  asked ``GET /`` over one keep-alive connection in a loop (median, p99);
* longest stall: a third server ticks every millisecond
  (``service_actions``); the longest gap between ticks minus 1 ms is the
  longest time anything held the reactor.

The client's "accepted" column is how many bytes the server let it send:
bounded when reading pauses, the whole flood when it does not.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from bench._runner import Report, Table, fmt_ms, fmt_num, percentile, progress

KINDS = ("tcp-echo", "smtp-noop", "http-pending", "http-big")

#: The issue's bounds, printed next to the figures.
MEMORY_BOUND_MIB = 16
CPU_BOUND_PCT = 5
LATENCY_BOUND_MS = 10

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def _make_server(kind: str) -> Any:
    import protocols

    if kind == "tcp-echo":
        return protocols.TCPServer(on_data=lambda c, d: c.write(d), record=False)
    if kind == "smtp-noop":
        return protocols.SMTPServer()
    if kind == "http-pending":
        waiting: list[Any] = []

        def pending(request: Any) -> Any:
            if request.path == "/pending":
                waiting.append(request.respond_later())  # never answered
                return None
            return protocols.Reply(200, b"ok")

        return protocols.HTTPServer(handler=pending, record=False)
    if kind == "http-big":
        big = b"x" * (1024 * 1024)
        return protocols.HTTPServer(handler=lambda r: protocols.Reply(200, big), record=False)
    raise ValueError(kind)


class _Probes:
    """A neighbour HTTP server with a client in a loop, a 1 ms ticker, an RSS sampler."""

    def __init__(self) -> None:
        import protocols

        ticks: list[float] = []

        class Ticker(protocols.TCPServer):
            def service_actions(self) -> None:
                ticks.append(time.monotonic())

        self.ticks = ticks
        self.ticker = Ticker(poll_interval=0.001, record=False)
        self.neighbour = protocols.HTTPServer(handler=lambda r: b"ok", record=False)
        self.latencies: list[float] = []
        self.rss_peak = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> _Probes:
        self.ticker.start()
        self.neighbour.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.neighbour.stop()
        self.ticker.stop()

    def reactor_thread(self) -> threading.Thread:
        import reactor

        r = reactor.current_reactor()
        assert r is not None and r.thread is not None
        return r.thread

    def measure(
        self, seconds: float, during: Callable[[], object] | None = None
    ) -> dict[str, float]:
        """Run the probes for ``seconds`` (while ``during()`` runs, if given)."""
        self.latencies.clear()
        self.ticks.clear()
        self._stop.clear()
        self.rss_peak = base = _rss()
        thread = self.reactor_thread()
        assert thread.ident is not None
        clock = time.pthread_getcpuclockid(thread.ident)
        threads = [
            threading.Thread(target=self._ask_neighbour, daemon=True),
            threading.Thread(target=self._sample_rss, daemon=True),
        ]
        for t in threads:
            t.start()
        cpu0, t0 = time.clock_gettime(clock), time.monotonic()
        if during is not None:
            during()
        else:
            self._stop.wait(seconds)
        cpu1, t1 = time.clock_gettime(clock), time.monotonic()
        self._stop.set()
        for t in threads:
            t.join(10)
        gaps = [b - a for a, b in zip(self.ticks, self.ticks[1:], strict=False)]
        lat = sorted(self.latencies)
        return {
            "cpu_share": (cpu1 - cpu0) / max(1e-9, t1 - t0),
            "rss_growth": max(0, self.rss_peak - base),
            "latency_median": statistics.median(lat) if lat else float("nan"),
            "latency_p99": percentile(lat, 99),
            "requests": len(lat),
            "max_stall": max(0.0, max(gaps) - 0.001) if gaps else float("nan"),
            "seconds": t1 - t0,
        }

    def _ask_neighbour(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.neighbour.port, timeout=30)
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                conn.request("GET", "/")
                conn.getresponse().read()
                self.latencies.append(time.perf_counter() - t0)
                self._stop.wait(0.005)  # about 200 requests/s: a neighbour, not a load
        finally:
            conn.close()

    def _sample_rss(self) -> None:
        while not self._stop.wait(0.02):
            self.rss_peak = max(self.rss_peak, _rss())


def _run_client(kind: str, port: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench._hostile_client", kind, "127.0.0.1", str(port), f"{seconds}"],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    if out.returncode != 0:
        raise RuntimeError(f"hostile client {kind} failed: {out.stderr.strip()}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(quick: bool) -> Report:
    window = 1.0 if quick else 3.0
    report = Report("hostile")
    table = Table(
        f"Hostile clients that never read ({window:g} s each; bounds: "
        f"<= {MEMORY_BOUND_MIB} MiB, <= {CPU_BOUND_PCT} % of a core, "
        f"neighbour median < {LATENCY_BOUND_MS} ms)",
        ["client", "server", "accepted MiB", "server memory MiB", "CPU % of a core",
         "neighbour median ms", "neighbour p99 ms", "longest stall ms"],
    )
    results: dict[str, Any] = {}
    with _Probes() as probes:
        progress("hostile: probes alone", force=True)
        baseline = probes.measure(window)
        results["baseline"] = baseline
        table.rows.append(["(probes alone)", "-", "-", fmt_num(baseline["rss_growth"] / 2**20, 1),
                           fmt_num(100 * baseline["cpu_share"], 1),
                           fmt_ms(baseline["latency_median"]), fmt_ms(baseline["latency_p99"]),
                           fmt_ms(baseline["max_stall"])])
        for kind in KINDS:
            progress(f"hostile: {kind}", force=True)
            server = _make_server(kind)
            server.start()
            client: dict[str, Any] = {}
            try:
                def attack(
                    kind: str = kind, port: int = server.port, into: dict[str, Any] = client
                ) -> None:
                    into.update(_run_client(kind, port, window))

                m = probes.measure(window, during=attack)
            finally:
                server.stop()
            m["cpu_share_net"] = max(0.0, m["cpu_share"] - baseline["cpu_share"])
            m["accepted"] = client.get("sent", 0)
            results[kind] = m
            table.rows.append([kind, type(server).__name__, fmt_num(m["accepted"] / 2**20, 1),
                               fmt_num(m["rss_growth"] / 2**20, 1),
                               fmt_num(100 * m["cpu_share_net"], 1),
                               fmt_ms(m["latency_median"]), fmt_ms(m["latency_p99"]),
                               fmt_ms(m["max_stall"])])
    table.notes.append("server memory: peak growth of this process's RSS while the client ran")
    table.notes.append("CPU: the reactor thread's CPU share minus the probes-alone row's")
    table.notes.append("longest stall: longest gap between a third server's 1 ms ticks, less 1 ms")
    report.tables.append(table)
    report.data = results
    return report
