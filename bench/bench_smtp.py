"""SMTP throughput: messages per second, ours against the servers people use.

Two workloads, each driven by the same stdlib ``smtplib`` client:

* **one connection**: EHLO once, then ``sendmail()`` N messages in a row
  (MAIL, RCPT, DATA, content: four round trips per message);
* **connection per message**: connect, EHLO, ``sendmail()``, QUIT, close,
  N times (what ``logging.handlers.SMTPHandler`` does for every record).

Servers: testservers ``TestSMTPServer`` (compat, the test_logging shape) and
``SMTPServer`` (native, which also records and parses nothing until asked:
it keeps an ``Envelope`` per message); aiosmtpd's ``Controller`` (when
installed: ``pip install aiosmtpd``); CPython's own test_logging
``TestSMTPServer`` (smtpd over asyncore, polled every 0.001 s as
test_logging does), when ``test.test_logging`` imports.

Each (workload, server) pair runs ``rounds`` times; the table shows the
median rate, the spread, and the ratio of our compat server's median to
each peer's.  A second table times the sans-I/O machine alone (no sockets),
so parser cost and I/O cost can be told apart.

Run standalone with ``python -m bench.bench_smtp [--quick] [--markdown]``;
``python -m bench`` calls :func:`run`.
"""

from __future__ import annotations

import argparse
import contextlib
import smtplib
import socket
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from bench._runner import Report, Skip, Table, fmt_num, fmt_ratio, progress

__all__ = ["run", "main"]

CLIENT_TIMEOUT = 10.0
#: Every measured loop stops after this many seconds whatever N says.
ROUND_DEADLINE = 30.0

MESSAGE = (
    b"From: bench@example.org\r\nTo: sink@example.org\r\nSubject: benchmark\r\n\r\n"
    + b"The quick brown fox jumps over the lazy dog. 0123456789\r\n" * 16
)  # ~1 KiB, a typical log record e-mail


# -- servers -------------------------------------------------------------------


def _noop_handler(*args: Any) -> None:
    pass


@contextlib.contextmanager
def _ours_compat() -> Iterator[tuple[str, int]]:
    from protocols import TestSMTPServer

    server = TestSMTPServer(("127.0.0.1", 0), _noop_handler, 0.5, {})
    server.start()
    try:
        yield "127.0.0.1", server.port
    finally:
        server.stop()


@contextlib.contextmanager
def _ours_native() -> Iterator[tuple[str, int]]:
    from protocols import SMTPServer

    server = SMTPServer(poll_interval=None)
    server.start()
    try:
        yield "127.0.0.1", server.port
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _AiosmtpdSink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


@contextlib.contextmanager
def _aiosmtpd() -> Iterator[tuple[str, int]]:
    try:
        from aiosmtpd.controller import Controller
    except ImportError as exc:
        raise Skip(f"aiosmtpd not installed ({exc}); pip install aiosmtpd") from None
    port = _free_port()
    ctl = Controller(_AiosmtpdSink(), hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield "127.0.0.1", port
    finally:
        ctl.stop()


@contextlib.contextmanager
def _cpython_smtpd() -> Iterator[tuple[str, int]]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import test.test_logging as tl  # type: ignore[import-not-found]
    except Exception as exc:
        raise Skip(f"cannot import test.test_logging: {exc!r}") from None
    server = tl.TestSMTPServer(("127.0.0.1", 0), _noop_handler, 0.001, {})
    server.start()
    try:
        yield "127.0.0.1", server.port
    finally:
        server.stop()


Factory = Callable[[], contextlib.AbstractContextManager[tuple[str, int]]]

#: (label, factory); the first is the reference for ratios.
SERVERS: list[tuple[str, Factory]] = [
    ("testservers TestSMTPServer", _ours_compat),
    ("testservers SMTPServer", _ours_native),
    ("aiosmtpd Controller", _aiosmtpd),
    ("CPython test_logging smtpd", _cpython_smtpd),
]


# -- clients -------------------------------------------------------------------


def _one_connection(addr: tuple[str, int], n: int) -> tuple[int, float]:
    """Send up to ``n`` messages over one connection; return (sent, seconds)."""
    sent = 0
    start = time.perf_counter()
    deadline = start + ROUND_DEADLINE
    with smtplib.SMTP(addr[0], addr[1], timeout=CLIENT_TIMEOUT) as client:
        client.ehlo()
        while sent < n and time.perf_counter() < deadline:
            client.sendmail("bench@example.org", ["sink@example.org"], MESSAGE)
            sent += 1
    return sent, time.perf_counter() - start


def _connection_per_message(addr: tuple[str, int], n: int) -> tuple[int, float]:
    sent = 0
    start = time.perf_counter()
    deadline = start + ROUND_DEADLINE
    while sent < n and time.perf_counter() < deadline:
        with smtplib.SMTP(addr[0], addr[1], timeout=CLIENT_TIMEOUT) as client:
            client.sendmail("bench@example.org", ["sink@example.org"], MESSAGE)
        sent += 1
    return sent, time.perf_counter() - start


WORKLOADS: list[tuple[str, Callable[[tuple[str, int], int], tuple[int, float]], int]] = [
    # (label, client, messages per round in a full run)
    ("one connection", _one_connection, 1000),
    ("connection per message", _connection_per_message, 300),
]


# -- the machine alone -----------------------------------------------------------


def _machine_rates(quick: bool, rounds: int) -> Table:
    from protocols.smtp._events import NEED_DATA, Proposal
    from protocols.smtp._machine import SMTPServerConnection

    def pump(m: SMTPServerConnection) -> int:
        accepted = 0
        for _ in range(10_000_000):
            ev = m.next_event()
            if ev is NEED_DATA:
                return accepted
            if isinstance(ev, Proposal):
                m.accept()
                accepted += 1
        raise RuntimeError("machine did not settle")

    n = 2000 if quick else 20_000
    one = b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n" + MESSAGE + b".\r\n"
    dialogue = b"EHLO bench\r\n" + one * n
    big_line = b"0123456789" * 7 + b"\r\n"
    big = b"EHLO bench\r\n" + one.replace(MESSAGE, big_line * (10 * 1024 * 1024 // len(big_line)))

    rows = []
    for label, data, chunk, count in (
        (f"{n} pipelined 1 KiB messages, 64 KiB feeds", dialogue, 65536, n),
        ("one 10 MiB message, 64 KiB feeds", big, 65536, 1),
    ):
        rates, mbps = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            m = SMTPServerConnection()
            for i in range(0, len(data), chunk):
                m.receive_data(data[i : i + chunk])
                pump(m)
            elapsed = time.perf_counter() - start
            rates.append(count / elapsed)
            mbps.append(len(data) / elapsed / 1e6)
        rows.append(
            [
                label,
                "SMTPServerConnection",
                fmt_num(statistics.median(rates)),
                fmt_num(statistics.median(mbps), 1),
            ]
        )
    return Table(
        "SMTP machine alone (no sockets)",
        ["input", "machine", "messages/s", "MB/s"],
        rows,
        ["3 proposals accepted per message (MAIL, RCPT, message); median of rounds"],
    )


# -- the benchmark ------------------------------------------------------------------


def run(quick: bool = False) -> Report:
    """Measure every (workload, server) pair; return the tables.

    Rounds are interleaved (server A, B, C, D, then A, B, C, D again...),
    so a burst of load on the machine hits every server alike instead of
    skewing one of them; each server runs alone during its round (it is
    started for the round and stopped after it), so one server's idle cost
    (CPython's asyncore polls every millisecond) does not tax another's.
    """
    rounds = 2 if quick else 5
    report = Report("smtp")
    results: dict[str, dict[str, list[float]]] = {}
    notes: list[str] = []
    for wl_label, client, full_n in WORKLOADS:
        n = max(20, full_n // 20) if quick else full_n
        per_server: dict[str, list[float]] = {}
        results[wl_label] = per_server
        skipped: set[str] = set()
        for r in range(rounds):
            for label, factory in SERVERS:
                if label in skipped:
                    continue
                progress(f"{wl_label}: round {r + 1}/{rounds}: {label}")
                try:
                    with factory() as addr:
                        client(addr, min(n, 20))  # warm-up: first accepts, caches
                        sent, seconds = client(addr, n)
                except Skip as exc:
                    skipped.add(label)
                    if f"{label}: {exc}" not in notes:
                        notes.append(f"{label}: {exc}")
                    continue
                per_server.setdefault(label, []).append(sent / seconds)
    reference = SERVERS[0][0]
    table = Table(
        "SMTP throughput (smtplib client, ~1 KiB messages)",
        ["workload", "server", "messages/s (median)", "min", "max", f"{reference} is"],
        notes=[
            f"{rounds} interleaved rounds per pair; ratio = our compat server's median / "
            "that server's median",
            "the CPython row is test_logging's smtpd/asyncore TestSMTPServer, poll_interval 0.001",
            *notes,
        ],
    )
    for wl_label, per_server in results.items():
        ref = per_server.get(reference)
        ref_median = statistics.median(ref) if ref else float("nan")
        for label, rates in per_server.items():
            median = statistics.median(rates)
            ratio = "-" if label == reference else fmt_ratio(ref_median / median)
            table.rows.append(
                [wl_label, label, fmt_num(median), fmt_num(min(rates)), fmt_num(max(rates)), ratio]
            )
    report.tables.append(table)
    report.tables.append(_machine_rates(quick, rounds))
    report.data = {"rates": results, "rounds": rounds, "message_bytes": len(MESSAGE)}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_smtp", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = parser.parse_args(argv)
    report = run(quick=args.quick)
    print(file=sys.stderr)
    for table in report.tables:
        print(table.markdown() if args.markdown else table.render())
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
