"""Fault isolation and cost (issue 14 item 6): three measurements.

1. **Isolation.** Server B's HTTP request latency (keep-alive, client in a
   child process) with server A idle, then while A has a 5 s ``Latency``
   fault (``--quick``: 0.5 s) and clients waiting on it, then idle again.
   Target: B's median unchanged (ratio to the idle rounds ~1).
2. **Cost of the fault machinery when no fault applies.** HTTP keep-alive
   requests/s (client in a child process) on a server whose transports run
   with the fault hooks *stripped* (the hook lines removed from the
   transport's methods at run time, so the baseline is today's code minus
   the machinery), against the same server with the hooks, and with a rule
   that selects no connection.  Rounds are interleaved; medians compared.
   Target: within 3 %.  A fourth row (``Latency(0)`` on every connection)
   shows what the fault path itself costs, for information.
3. **Bandwidth accuracy.** A ``Bandwidth(B)`` fault on a server that sends
   as fast as it can: bytes/s the client measures from its first byte to
   its last, against B.  Target: within 10 %.
"""

from __future__ import annotations

import inspect
import json
import socket
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench._runner import Report, Table, fmt_ms, fmt_num, fmt_ratio, percentile, progress

#: Child-process client deadline (seconds).
DEADLINE = 60.0


# -- the child-process client ---------------------------------------------------


def _client_main(argv: list[str]) -> int:
    """``python -m bench.bench_faults HOST PORT COUNT SECONDS``: keep-alive GETs.

    Sends up to COUNT requests, for at most SECONDS, on one connection;
    prints the per-request latencies (seconds) as one JSON line.
    """
    import http.client

    host, port, count, seconds = argv[0], int(argv[1]), int(argv[2]), float(argv[3])
    conn = http.client.HTTPConnection(host, port, timeout=DEADLINE)
    lat: list[float] = []
    t_end = time.perf_counter() + seconds
    for _ in range(count):
        t0 = time.perf_counter()
        if t0 > t_end:
            break
        conn.request("GET", "/")
        conn.getresponse().read()
        lat.append(time.perf_counter() - t0)
    conn.close()
    print(json.dumps({"latencies": lat}), flush=True)
    return 0


def _client(port: int, count: int, seconds: float) -> list[float]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_faults", "127.0.0.1", str(port), str(count),
         str(seconds)],
        capture_output=True, text=True, timeout=DEADLINE + seconds,
    )
    if proc.returncode:
        raise RuntimeError(f"client failed: {proc.stderr.strip()[-500:]}")
    latencies: list[float] = json.loads(proc.stdout.strip().splitlines()[-1])["latencies"]
    return latencies


# -- 1. isolation -------------------------------------------------------------------


def _isolation(quick: bool, report: Report) -> None:
    import http.client

    from protocols import HTTPServer, Latency

    fault_s = 0.5 if quick else 5.0
    rounds = 2 if quick else 6
    count = 300 if quick else 1000
    seconds = min(0.4, fault_s * 0.6) if quick else 2.0
    waiters = 4
    pooled: dict[str, list[float]] = {"idle": [], "fault": []}
    ratios: list[float] = []
    loaded = threading.Event()
    done = threading.Event()
    with HTTPServer() as a, HTTPServer() as b:

        def wait_on_a() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=fault_s * 4 + 10)
            try:
                while not done.is_set():
                    if not loaded.wait(0.05):
                        continue
                    conn.request("GET", "/")
                    conn.getresponse().read()
            except OSError:
                pass
            finally:
                conn.close()

        threads = [threading.Thread(target=wait_on_a, daemon=True) for _ in range(waiters)]
        for t in threads:
            t.start()
        try:
            for r in range(rounds):
                medians: dict[str, float] = {}
                for phase in (("idle", "fault") if r % 2 == 0 else ("fault", "idle")):
                    if phase == "fault":
                        rule = a.faults.add(Latency(fault_s))
                        before = len(a.requests)
                        loaded.set()
                        # Every waiter has a request held by the fault.
                        a.wait_for(lambda before=before: len(a.requests) >= before + waiters,
                                   timeout=10)
                    progress(f"isolation round {r + 1}/{rounds}: B with A {phase}")
                    lat = _client(b.port, count, seconds)
                    if phase == "fault":
                        loaded.clear()
                        rule.remove()  # the held replies go out at once
                    pooled[phase] += lat
                    medians[phase] = statistics.median(lat)
                ratios.append(medians["fault"] / medians["idle"])
        finally:
            done.set()
            loaded.set()
            a.faults.clear()
            for t in threads:
                t.join(fault_s * 4 + 10)
        records = len(a.faults.records)
    ratio = statistics.median(ratios)
    table = Table(f"Isolation: server B's HTTP latency while server A delays {waiters} "
                  f"clients with a {fault_s:g} s Latency fault (keep-alive GETs, client in a "
                  "child process)",
                  ["A", "requests", "B median ms", "B p99 ms", "B median vs A idle", "met"])
    data: dict[str, Any] = {"fault_s": fault_s, "waiters": waiters, "records": records,
                            "round_ratios": ratios, "ratio": ratio}
    for phase, label in (("idle", "idle"), ("fault", f"{waiters} clients held {fault_s:g} s")):
        v = sorted(pooled[phase])
        med, p99 = statistics.median(v), percentile(v, 99)
        table.rows.append([label, str(len(v)), fmt_ms(med), fmt_ms(p99),
                           "1.00x" if phase == "idle" else fmt_ratio(ratio),
                           "" if phase == "idle" else ("yes" if ratio <= 1.10 else "NO")])
        data[phase] = {"n": len(v), "median": med, "p99": p99}
    table.notes.append(f"{rounds} rounds, each measuring B with A idle and with A's fault on "
                       "(order alternating); the ratio is the median of the per-round ratios "
                       "of B's medians; A's fault is removed after each faulted phase "
                       f"({records} fault records on A in all)")
    table.notes.append("met: B's median with A's fault on within 10 % of B's median with A idle")
    report.tables.append(table)
    report.data["isolation"] = data


# -- 2. cost of the machinery ----------------------------------------------------------


def _stripped_transport() -> type:
    """A StreamTransport subclass whose methods have the fault hook lines removed."""
    from reactor import _transport

    namespace: dict[str, Any] = dict(vars(_transport))
    methods: dict[str, Any] = {}
    for name in ("_flush", "_read_once", "_update_events", "write_now"):
        src = textwrap.dedent(inspect.getsource(getattr(_transport.StreamTransport, name)))
        lines = src.splitlines()
        out: list[str] = []
        skip_indent: int | None = None
        for line in lines:
            indent = len(line) - len(line.lstrip())
            if skip_indent is not None:
                if line.strip() and indent > skip_indent:
                    continue  # the body of an 'if self._faults is not None:' hook
                skip_indent = None
            if "self._faults is not None" in line:
                skip_indent = indent
                continue
            if line.strip() == "and self._faults is None":
                continue  # a fast path's condition: always true without faults
            out.append(line)
        stripped = "\n".join(out)
        if stripped == src.rstrip("\n") or "_faults" in stripped:
            raise RuntimeError(f"could not strip the fault hooks from StreamTransport.{name}")
        exec(compile(stripped, f"<stripped {name}>", "exec"), namespace)
        methods[name] = namespace[name]
    return type("StreamTransportWithoutFaultHooks", (_transport.StreamTransport,), methods)


@contextmanager
def _without_hooks() -> Iterator[None]:
    from reactor import _server

    original = _server.StreamTransport
    _server.StreamTransport = _stripped_transport()  # type: ignore[misc]
    try:
        yield
    finally:
        _server.StreamTransport = original  # type: ignore[misc]


def _cost(quick: bool, report: Report) -> None:
    from protocols import HTTPServer, Latency

    rounds = 2 if quick else 12
    count = 2000 if quick else 20000
    seconds = 0.3 if quick else 1.0

    def plain(srv: Any) -> None:
        pass

    def no_match(srv: Any) -> None:
        srv.faults.add(Latency(1.0), when=lambda info: False)

    def zero_latency(srv: Any) -> None:
        srv.faults.add(Latency(0.0))

    variants: list[tuple[str, Callable[[Any], None], bool]] = [
        ("no fault machinery (hooks stripped)", plain, True),
        ("hooks present, no fault", plain, False),
        ("a rule that selects no connection", no_match, False),
        ("Latency(0) on every connection", zero_latency, False),
    ]
    rates: dict[str, list[float]] = {v[0]: [] for v in variants}
    cpus: dict[str, list[float]] = {v[0]: [] for v in variants}
    for r in range(rounds):
        # Alternate the order each round, so that a drift in the machine's
        # load does not favour the variants measured first.
        order = variants if r % 2 == 0 else variants[::-1]
        for label, setup, strip in order:
            progress(f"cost round {r + 1}/{rounds}: {label}")
            ctx = _without_hooks() if strip else _null()
            with ctx, HTTPServer() as srv:
                setup(srv)
                loop = srv._loop
                assert loop is not None
                cpu0 = loop.run_sync(time.thread_time)
                lat = _client(srv.port, count, seconds)
                cpu1 = loop.run_sync(time.thread_time)
            rates[label].append(len(lat) / sum(lat) if lat else float("nan"))
            cpus[label].append((cpu1 - cpu0) / max(1, len(lat)))
    base_label = variants[0][0]
    table = Table("Cost of the fault machinery: HTTP keep-alive requests on one connection "
                  "(client in a child process)",
                  ["server", "rounds", "median req/s", "req/s vs stripped",
                   "reactor CPU us/req median", "best", "CPU capacity vs stripped (median)",
                   "(best)", "met"])
    data: dict[str, Any] = {}
    for i, (label, _, _) in enumerate(variants):
        # Paired ratios: each round against the same round's stripped run.
        wall = statistics.median(v / b for v, b in zip(rates[label], rates[base_label],
                                                        strict=True))
        cap = statistics.median(b / v for v, b in zip(cpus[label], cpus[base_label],
                                                       strict=True))
        best = min(cpus[base_label]) / min(cpus[label])
        met = "" if i in (0, 3) else ("yes" if best >= 0.97 else "NO")
        table.rows.append([label, str(rounds), fmt_num(statistics.median(rates[label])),
                           fmt_ratio(wall), fmt_num(statistics.median(cpus[label]) * 1e6, 1),
                           fmt_num(min(cpus[label]) * 1e6, 1), fmt_ratio(cap),
                           fmt_ratio(best), met])
        data[label] = {"rates": rates[label], "cpu_per_request": cpus[label],
                       "wall_ratio": wall, "cpu_capacity_ratio": cap,
                       "cpu_capacity_ratio_best": best}
    table.notes.append("rounds interleaved (one of each variant per round, order reversed "
                       "every other round), a fresh server each; ratios are medians of "
                       "per-round ratios against that round's stripped run")
    table.notes.append("req/s = requests / sum of request latencies (wall clock: noisy on a "
                       "shared machine); reactor CPU us/req = CPU time of the reactor thread "
                       "(time.thread_time) / requests; CPU capacity = the inverse ratio, the "
                       "throughput the reactor could sustain")
    table.notes.append("hooks stripped: StreamTransport._flush/_read_once/_update_events/write_now "
                       "rebuilt at run time from their source minus the 'if self._faults is "
                       "not None' lines: the code as it would be without fault injection")
    table.notes.append("met: the best round's CPU capacity within 3 % of the stripped "
                       "baseline's best (the least disturbed round of each, as timeit's "
                       "minimum: load from the other processes on this machine moves the "
                       "medians by several %); the Latency(0) row (every byte through the "
                       "fault layer) is for information")
    report.tables.append(table)
    report.data["cost"] = data


@contextmanager
def _null() -> Iterator[None]:
    yield


# -- 3. bandwidth accuracy ----------------------------------------------------------


def _bandwidth(quick: bool, report: Report) -> None:
    from protocols import UPSTREAM, Bandwidth, TCPServer

    seconds = 0.6 if quick else 3.0
    rates = (200_000, 2_000_000) if quick else (100_000, 1_000_000, 10_000_000)
    table = Table("Bandwidth fault accuracy: bytes/s a client measures against the cap B",
                  ["direction", "B bytes/s", "bytes", "measured bytes/s", "measured / B",
                   "met"])
    data: dict[str, Any] = {}
    for rate in rates:
        total = int(rate * seconds)
        payload = b"b" * total

        def push(conn: Any, payload: bytes = payload) -> None:
            conn.write(payload)

        progress(f"bandwidth downstream {rate}/s")
        with TCPServer(on_connect=push) as srv:
            srv.faults.add(Bandwidth(rate))
            with socket.create_connection(srv.server_address, timeout=DEADLINE) as s:
                first = s.recv(1 << 20)
                t0 = time.perf_counter()
                got = len(first)
                while got < total:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        break
                    got += len(chunk)
                took = time.perf_counter() - t0
        measured = (got - len(first)) / took if took > 0 else float("nan")
        _bw_row(table, data, "downstream", rate, got, measured)

        progress(f"bandwidth upstream {rate}/s")
        seen: list[tuple[float, int]] = []

        def count(conn: Any, d: bytes, seen: list[tuple[float, int]] = seen) -> None:
            seen.append((time.perf_counter(), len(d)))

        with TCPServer(record=False, on_data=count) as srv:
            srv.faults.add(Bandwidth(rate), direction=UPSTREAM)
            with socket.create_connection(srv.server_address, timeout=DEADLINE) as s:
                sender = threading.Thread(target=s.sendall, args=(payload,), daemon=True)
                sender.start()
                srv.wait_for(lambda seen=seen, total=total: sum(n for _, n in seen) >= total,
                             timeout=seconds * 3 + 10)
                sender.join(10)
        span = seen[-1][0] - seen[0][0] if len(seen) > 1 else 0.0
        measured = (total - seen[0][1]) / span if span > 0 else float("nan")
        _bw_row(table, data, "upstream", rate, total, measured)
    table.notes.append("measured: bytes after the first piece / time from the first piece to "
                       "the last (downstream: the client's reads; upstream: the server's "
                       "data_received calls)")
    table.notes.append("met: within 10 % of B")
    report.tables.append(table)
    report.data["bandwidth"] = data


def _bw_row(table: Table, data: dict[str, Any], direction: str, rate: int, nbytes: int,
            measured: float) -> None:
    ratio = measured / rate
    table.rows.append([direction, fmt_num(rate), fmt_num(nbytes), fmt_num(measured),
                       fmt_num(ratio, 3), "yes" if abs(ratio - 1) <= 0.10 else "NO"])
    data[f"{direction} {rate}"] = {"rate": rate, "bytes": nbytes, "measured": measured,
                                   "ratio": ratio}


def run(quick: bool) -> Report:
    report = Report("faults")
    _isolation(quick, report)
    _cost(quick, report)
    _bandwidth(quick, report)
    return report


if __name__ == "__main__":
    raise SystemExit(_client_main(sys.argv[1:]))
