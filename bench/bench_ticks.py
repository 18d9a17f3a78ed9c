"""poll_interval precision: period error and drift of ``service_actions()`` ticks.

A server overriding ``service_actions()`` records ``time.monotonic()`` at
each call, for a bounded number of ticks (and a bounded time).  From the
tick times ``t0 .. t[N-1]`` at nominal period ``p``:

* period median / p99 and the median of ``|dt - p|`` (period error);
* ``missed``: periods longer than 1.5 p (a tick skipped or badly late);
* ``rate``: ``(N-1) p / (t[N-1] - t0)``: delivered ticks per due tick
  (1.00 is exact; below 1 means stretched or skipped periods);
* ``late at end``: ``t[N-1] - (t0 + (N-1) p)``: how far the last tick is
  behind a grid anchored at the first one.  A scheduler on monotonic
  deadlines stays within one period whatever N is; one that sleeps
  ``p`` after each pass drifts by its per-pass overhead times N.

Peer: ``socketserver.TCPServer.serve_forever(poll_interval)``, which calls
``service_actions()`` after every ``select(poll_interval)`` (CPython's
test_logging helpers are the same loop).
"""

from __future__ import annotations

import socketserver
import threading
import time
from typing import Any

from bench._runner import Report, Table, fmt_ms, fmt_num, percentile, progress

POLLS = (0.001, 0.01, 0.1)


def _ours(poll: float, limit: int, done: threading.Event) -> tuple[Any, list[float]]:
    import protocols

    times: list[float] = []

    class Ticking(protocols.TCPServer):
        def service_actions(self) -> None:
            if len(times) < limit:
                times.append(time.monotonic())
            else:
                done.set()

    return Ticking(poll_interval=poll), times


class _Noop(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        pass


def _measure_ours(poll: float, limit: int, budget: float) -> list[float]:
    done = threading.Event()
    server, times = _ours(poll, limit, done)
    server.start()
    try:
        done.wait(budget)
    finally:
        server.stop()
    return list(times)


def _measure_socketserver(poll: float, limit: int, budget: float) -> list[float]:
    times: list[float] = []
    done = threading.Event()

    class Ticking(socketserver.TCPServer):
        allow_reuse_address = True

        def service_actions(self) -> None:
            if len(times) < limit:
                times.append(time.monotonic())
            else:
                done.set()

    server = Ticking(("127.0.0.1", 0), _Noop)
    t = threading.Thread(target=server.serve_forever, args=(poll,), daemon=True)
    t.start()
    try:
        done.wait(budget)
    finally:
        server.shutdown()
        t.join(budget + poll + 5)
        server.server_close()
    return times


def analyse(times: list[float], poll: float) -> dict[str, float]:
    """The metrics in the module docstring, for tick times ``times``."""
    if len(times) < 3:
        return {"n": len(times)}
    # The first period includes start-up; measure from the second tick on.
    t = times[1:]
    dts = sorted(b - a for a, b in zip(t[:-1], t[1:], strict=True))
    errs = sorted(abs(d - poll) for d in dts)
    span = t[-1] - t[0]
    n = len(t)
    return {
        "n": n,
        "period_median": dts[len(dts) // 2],
        "period_p99": percentile(dts, 99),
        "error_median": errs[len(errs) // 2],
        "error_p99": percentile(errs, 99),
        "missed": sum(1 for d in dts if d > 1.5 * poll),
        "rate": (n - 1) * poll / span if span > 0 else float("nan"),
        "late_at_end": t[-1] - (t[0] + (n - 1) * poll),
        "span_s": span,
    }


def run(quick: bool) -> Report:
    seconds = 0.2 if quick else 3.0
    report = Report("ticks")
    table = Table(f"service_actions() tick precision (about {seconds:g} s per row)",
                  ["poll_interval", "server", "ticks", "period median ms", "p99",
                   "|error| median ms", "p99", "missed", "rate", "late at end ms"])
    data: dict[str, Any] = {}
    for poll in (POLLS[:2] if quick else POLLS):
        limit = max(5, int(seconds / poll)) + 2
        budget = seconds * 3 + 1
        for label, fn in (("testservers TCPServer", _measure_ours),
                          ("socketserver TCPServer", _measure_socketserver)):
            progress(f"{label} poll={poll:g}: {limit} ticks")
            times = fn(poll, limit, budget)
            m = analyse(times, poll)
            data[f"{label}|{poll:g}"] = {"server": label, "poll_interval": poll, **m,
                                        "times_ms": [round((x - times[0]) * 1e3, 3)
                                                     for x in times] if times else []}
            if m["n"] < 3:
                table.rows.append([f"{poll:g}", label, str(m["n"]), "too few ticks"])
                continue
            table.rows.append([
                f"{poll:g}", label, str(int(m["n"])), fmt_ms(m["period_median"]),
                fmt_ms(m["period_p99"]), fmt_ms(m["error_median"]), fmt_ms(m["error_p99"]),
                str(int(m["missed"])), fmt_num(m["rate"], 3), fmt_ms(m["late_at_end"]),
            ])
    table.notes.append("rate: ticks delivered per tick due (1.000 = exact); late at end: last "
                       "tick behind a grid anchored at the first (drift)")
    table.notes.append("missed: periods longer than 1.5 x poll_interval")
    report.tables.append(table)
    report.data = data
    return report
