"""Scale: N servers of mixed kinds started at once, then stopped.

For N in 1, 10, 100, 1000 (``--quick``: up to 100), servers are created
round-robin over the kinds (TCP, UDP, Unix stream, Unix datagram, HTTP,
SMTP where present), all started, checked, and all stopped, one after
another in the calling thread as a test suite's fixtures would.  Measured:

* threads used (``threading.active_count()`` while all run, minus before)
  and, for testservers, how many of them are reactor threads (must be 1);
* RSS per server: resident set growth from before creation to all started,
  divided by N (from ``/proc/self/statm``, after a ``gc.collect()``);
* time to create (bind) all, to start all, to stop all;
* whether thread count and open descriptors are back where they were.

Peers: the floor (a bare selectors loop per server, on its own thread) and
CPython's test_logging helpers mixed the same way.  The helpers run at
poll_interval 0.01 here, their fastest practical setting: at their default
0.5 s, stopping 1000 of them one by one would take over eight minutes.
"""

from __future__ import annotations

import functools
import gc
import os
import resource
import threading
import time
from collections.abc import Callable
from typing import Any

from bench._floor import MinimalServer
from bench._runner import Report, Table, fmt_num, progress
from bench._subjects import Instance, _FloorInstance, _Ours, subjects

PEER_POLL = 0.01


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _make_ours(cls: Any) -> Instance:
    return _Ours(cls())


def _ours_makers() -> list[Callable[[], Instance]]:
    import protocols

    names = ["TCPServer", "UDPServer", "UnixStreamServer", "UnixDatagramServer",
             "HTTPServer", "SMTPServer"]
    makers: list[Callable[[], Instance]] = []
    for name in names:
        cls = getattr(protocols, name, None)
        if cls is not None:
            makers.append(functools.partial(_make_ours, cls))
    return makers


def _floor_makers() -> list[Callable[[], Instance]]:
    return [
        lambda: _FloorInstance(MinimalServer("tcp")),
        lambda: _FloorInstance(MinimalServer("udp")),
        lambda: _FloorInstance(MinimalServer("tcp", unix=True)),
        lambda: _FloorInstance(MinimalServer("udp", unix=True)),
        lambda: _FloorInstance(MinimalServer("http")),
        lambda: _FloorInstance(MinimalServer("smtp")),
    ]


def _peer_makers() -> list[Callable[[], Instance]]:
    out: list[Callable[[], Instance]] = []
    for s in subjects(("tcp", "udp", "unix", "unixdgram", "http", "smtp"), direct=False):
        if s.group == "peer" and s.label.startswith("test_logging"):
            out.append(functools.partial(s.create, PEER_POLL))
    return out


def measure(makers: list[Callable[[], Instance]], n: int, budget: float, label: str
            ) -> dict[str, Any]:
    """Create, start and stop ``n`` servers; every phase bounded by ``budget`` seconds."""
    import reactor

    gc.collect()
    threads0 = threading.active_count()
    fds0 = _fds()
    rss0 = _rss()
    insts: list[Instance] = []
    started: list[Instance] = []
    result: dict[str, Any] = {"n": n}
    try:
        t0 = time.perf_counter()
        for i in range(n):
            insts.append(makers[i % len(makers)]())
            if time.perf_counter() - t0 > budget:
                raise TimeoutError(f"creating {n} servers took over {budget} s")
        t1 = time.perf_counter()
        for i, inst in enumerate(insts):
            inst.start()
            inst.wait_ready()
            started.append(inst)
            if i % 100 == 99:
                progress(f"{label}: {i + 1}/{n} started")
            if time.perf_counter() - t1 > budget:
                raise TimeoutError(f"starting {n} servers took over {budget} s")
        t2 = time.perf_counter()
        gc.collect()
        result["threads"] = threading.active_count() - threads0
        result["reactor_threads"] = sum(
            1 for t in threading.enumerate() if t.name == reactor.THREAD_NAME)
        result["rss_per_server"] = (_rss() - rss0) / n
        result["create_s"] = t1 - t0
        result["start_s"] = t2 - t1
    finally:
        t3 = time.perf_counter()
        for i, inst in enumerate(started):
            inst.stop()
            if i % 100 == 99:
                progress(f"{label}: {i + 1}/{len(started)} stopped")
        for inst in insts[len(started):]:  # created but never started: close them
            try:
                inst.stop()
            except Exception:
                pass
        t4 = time.perf_counter()
        for inst in insts:
            inst.cleanup()
    result["stop_s"] = t4 - t3
    time.sleep(0.05)  # let exiting threads finish unwinding
    gc.collect()
    result["threads_left"] = threading.active_count() - threads0
    result["fds_left"] = _fds() - fds0
    return result


def run(quick: bool) -> Report:
    sizes = (1, 10, 100) if quick else (1, 10, 100, 1000)
    budget = 20.0 if quick else 120.0
    report = Report("scale")
    table = Table("N servers of mixed kinds: start all, stop all",
                  ["N", "server", "threads", "reactor threads", "RSS/server KiB",
                   "create all ms", "start all ms", "stop all ms", "left: threads/fds"])
    groups = [("testservers (one reactor)", _ours_makers()),
              ("minimal loop (thread each)", _floor_makers()),
              (f"test_logging helpers @{PEER_POLL:g}", _peer_makers())]
    data: dict[str, Any] = {}
    for n in sizes:
        for label, makers in groups:
            if not makers:
                continue
            progress(f"{label}: N={n}", force=True)
            try:
                m = measure(makers, n, budget, label)
            except Exception as exc:
                if label.startswith("testservers"):
                    raise
                table.rows.append([str(n), label, f"error: {exc!r}"[:70]])
                continue
            data[f"{label}|{n}"] = {"server": label, **m}
            table.rows.append([
                str(n), label, str(m["threads"]),
                str(m["reactor_threads"]) if label.startswith("testservers") else "-",
                fmt_num(m["rss_per_server"] / 1024, 1),
                fmt_num(m["create_s"] * 1e3, 1), fmt_num(m["start_s"] * 1e3, 1),
                fmt_num(m["stop_s"] * 1e3, 1), f"{m['threads_left']}/{m['fds_left']}",
            ])
    table.notes.append("kinds round-robin: TCP, UDP, Unix stream, Unix datagram, HTTP, SMTP")
    table.notes.append(f"test_logging helpers at poll_interval {PEER_POLL:g} (at their default "
                       "0.5 s, stopping N of them in a row takes N/2 seconds)")
    report.tables.append(table)

    targets = Table("Target (issue 5 item 4): 1000 servers on exactly one reactor thread, "
                    "started and stopped in under 1 s each", ["N", "reactor threads",
                                                              "start all s", "stop all s", "met"])
    for n in sizes:
        ours = data.get(f"testservers (one reactor)|{n}")
        if ours is None or n < 100:
            continue
        ok = ours["reactor_threads"] == 1 and ours["threads"] == 1 and ours["start_s"] < 1 and \
            ours["stop_s"] < 1
        targets.rows.append([str(n), str(ours["reactor_threads"]), fmt_num(ours["start_s"], 3),
                             fmt_num(ours["stop_s"], 3), "yes" if ok else "NO"])
    report.tables.append(targets)
    report.data = data
    return report
