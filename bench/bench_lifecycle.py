"""stop() and start()->ready latency, per server kind and poll_interval.

One *cycle* is: construct (bind and listen, as every library does in its
constructor), ``start()`` and wait until ready (``start->ready``), then
``stop()`` at once (``stop``).  Timed with ``time.perf_counter`` in the
calling thread, exactly as a test's setUp/tearDown would see it.

Fast subjects (ours, the floor, peers at poll_interval 0.001/0.01) run
*interleaved*: after each one's warm-up and pilot cycle, every round gives
each of them one cycle, in a new random order each round, so that a busy moment of the machine falls
on all rows alike instead of deciding a ratio by which row it hit (as
``bench_suite`` does).  Each cycle is still measured alone and the same way
for every subject.  Peers whose stop() waits out a long poll
(poll_interval 0.5 and 60) would need 100 s (or 3.3 hours) for 200 cycles
in a row, so they run *pipelined*: the main thread still creates, starts and
times each instance one at a time, and hands its stop() to a worker thread
that times it there, with a bounded number of stops outstanding.  Their
stop() spends its time asleep in ``select()``, so overlapping them changes
nothing that is measured.  Peers at poll_interval 60 get a handful of cycles
in one shared 60-second window (full run only).

``ours (warm)`` rows keep one extra server started for the whole loop, so the
reactor thread is already running: that is the common case in a test suite
with a session-wide server.  The cold rows start and join the reactor thread
in every cycle.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bench._runner import Report, Table, fmt_ms, fmt_ratio, progress, summarize
from bench._subjects import Instance, Subject, import_notes, subjects

POLLS = (0.001, 0.01, 0.5, 60.0)

#: A stop slower than this in the pilot cycle moves a job to the pipelined pass.
SLOW_STOP = 0.05

#: Stops outstanding at once in the pipelined pass.
PIPELINE_WIDTH = 25


@dataclass
class Job:
    subject: Subject
    poll: float | None  # None: the subject has no poll_interval knob
    variant: str = ""  # "warm" or ""
    create: list[float] = field(default_factory=list)
    start: list[float] = field(default_factory=list)
    stop: list[float] = field(default_factory=list)
    mode: str = "sequential"
    error: str | None = None

    @property
    def label(self) -> str:
        v = " (warm)" if self.variant == "warm" else ""
        return f"{self.subject.label}{v}"

    def make(self) -> Instance:
        return self.subject.create(self.poll if self.poll is not None else 0.5)


def _timed_start(job: Job) -> Instance:
    t0 = time.perf_counter()
    inst = job.make()
    t1 = time.perf_counter()
    inst.start()
    inst.wait_ready()
    t2 = time.perf_counter()
    job.create.append(t1 - t0)
    job.start.append(t2 - t1)
    return inst


def _timed_stop(job: Job, inst: Instance) -> None:
    t0 = time.perf_counter()
    inst.stop()
    job.stop.append(time.perf_counter() - t0)
    inst.cleanup()


def _run_pipelined(jobs: list[tuple[Job, int]], budget: float, width: int) -> None:
    """Start instances one at a time here; stop each one on a worker thread."""
    deadline = time.monotonic() + budget
    slots = threading.BoundedSemaphore(width)
    failures: list[tuple[Job, BaseException]] = []

    def stop_then_release(job: Job, inst: Instance) -> None:
        try:
            _timed_stop(job, inst)
        except BaseException as exc:  # reported after the batch
            failures.append((job, exc))
        finally:
            slots.release()

    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="bench-stop") as pool:
        for job, n in jobs:
            job.mode = "pipelined"
            for i in range(n):
                if time.monotonic() > deadline or job.error:
                    break
                # Bounded wait for a free slot: a stop that never returns
                # must not hang the benchmark.
                if not slots.acquire(timeout=max(0.1, deadline - time.monotonic()) + 120):
                    raise TimeoutError(f"{job.label}: stop() workers did not finish")
                try:
                    inst = _timed_start(job)
                except BaseException:
                    slots.release()
                    raise
                pool.submit(stop_then_release, job, inst)
                if i % 10 == 0:
                    progress(f"{job.label} poll={job.poll}: {i}/{n} started (pipelined)")
    for job, exc in failures:
        job.error = f"{type(exc).__name__}: {exc}"


def run(quick: bool) -> Report:
    n = 10 if quick else 200
    fast_budget = 0.5 if quick else 30.0
    kinds: tuple[str, ...] = ("tcp", "udp", "http", "smtp") if quick else (
        "tcp", "udp", "unix", "unixdgram", "http", "smtp")
    polls = (0.001, 0.01, 0.5, 60.0)
    subs = subjects(kinds)

    jobs: list[Job] = []
    for s in subs:
        if s.uses_poll:
            # --quick: peers at 0.01 and 0.5 only (enough to prove they run).
            peer_polls = (0.01, 0.5) if quick and s.group == "peer" else polls
            jobs.extend(Job(s, p) for p in peer_polls)
        else:
            jobs.append(Job(s, None))
        if s.group == "ours" and s.kind in ("tcp", "udp"):
            jobs.extend(Job(s, p, variant="warm") for p in ((0.5,) if quick else polls))

    slow_half: list[Job] = []
    slow_long: list[Job] = []
    skipped: list[str] = []
    fast: list[Job] = []
    for job in jobs:
        s = job.subject
        predicted_slow = s.group == "peer" and job.poll is not None and job.poll >= 0.1
        if predicted_slow:
            if job.poll is not None and job.poll >= 10:
                if quick:
                    skipped.append(f"{job.label} poll={job.poll:g}")
                    continue
                slow_long.append(job)
            else:
                slow_half.append(job)
            continue
        fast.append(job)
    # Cold rows first, all interleaved; then the warm rows, interleaved among
    # themselves with the resident server that makes them warm (it would make
    # the cold rows warm too).
    for group in ([j for j in fast if j.variant != "warm"],
                  [j for j in fast if j.variant == "warm"]):
        if group:
            _run_fast_interleaved(group, n, fast_budget, slow_half)

    if quick and slow_half:
        # One shared pipelined batch: enough to prove every peer runs.
        progress(f"{len(slow_half)} slow peers, 5 cycles each, pipelined", force=True)
        try:
            _run_pipelined([(j, 5) for j in slow_half], budget=5.0, width=5 * len(slow_half))
        except Exception as exc:
            for j in slow_half:
                j.error = j.error or f"{type(exc).__name__}: {exc}"
        slow_half = []
    for job in slow_half:
        progress(f"{job.label} poll={job.poll} pipelined", force=True)
        try:
            _run_pipelined([(job, n)], budget=40.0, width=PIPELINE_WIDTH)
        except Exception as exc:
            job.error = f"{type(exc).__name__}: {exc}"
    if slow_long:
        per = 8
        progress(f"{len(slow_long)} peers at poll_interval 60, {per} cycles each, "
                 "in one shared window (about 60 s)", force=True)
        try:
            _run_pipelined([(j, per) for j in slow_long], budget=30.0,
                           width=per * len(slow_long))
        except Exception as exc:
            for j in slow_long:
                j.error = j.error or f"{type(exc).__name__}: {exc}"

    return _report(jobs, quick, skipped)


def _run_fast_interleaved(jobs: list[Job], n: int, budget: float, slow: list[Job]) -> None:
    """Warm-up and pilot each job, then ``n`` cycles of each, one per job per round.

    ``budget`` is per job, as it was when they ran one after another; a
    peer whose pilot stop() is slow moves to ``slow`` (the pipelined pass).
    """
    resident: Any = None
    if any(j.variant == "warm" for j in jobs):
        import protocols

        resident = protocols.UDPServer()
        resident.start()
    try:
        live: list[Job] = []
        for job in jobs:
            try:
                for _ in range(2):  # untimed warm-up: first-call costs are not latency
                    inst = job.make()
                    inst.start()
                    inst.wait_ready()
                    inst.stop()
                    inst.cleanup()
                inst = _timed_start(job)  # the pilot cycle
                _timed_stop(job, inst)
            except Exception as exc:
                job.error = f"{type(exc).__name__}: {exc}"
                if job.subject.group == "ours":
                    raise
                continue
            if job.stop[-1] > SLOW_STOP and job.subject.group == "peer":
                slow.append(job)  # e.g. pytest-httpserver: measured in the pipelined pass
                continue
            live.append(job)
        deadline = time.monotonic() + budget * max(1, len(live))
        rounds = 0
        order = random.Random(len(live))  # reproducible
        while live and time.monotonic() < deadline:
            # A fresh order every round: each row follows every other one
            # about as often (the cycle after another library's runs with
            # colder caches, whichever row that is).
            this_round = list(live)
            order.shuffle(this_round)
            for job in this_round:
                try:
                    inst = _timed_start(job)
                    _timed_stop(job, inst)
                except Exception as exc:
                    job.error = f"{type(exc).__name__}: {exc}"
                    if job.subject.group == "ours":
                        raise
                    live.remove(job)
                    continue
                if len(job.stop) >= n:
                    live.remove(job)
            rounds += 1
            if rounds % 20 == 0:
                progress(f"interleaved round {rounds}/{n} ({len(live)} servers)")
    finally:
        if resident is not None:
            resident.stop()


def _report(jobs: list[Job], quick: bool, skipped: list[str]) -> Report:
    report = Report("lifecycle")
    cols = ["kind", "server", "poll_interval", "n", "start->ready median", "p99",
            "stop median", "p99", "max", "stop vs ours"]
    table = Table("stop() and start()->ready latency (ms)", cols)
    by_key: dict[tuple[str, float | None, str, str], Job] = {}
    for job in jobs:
        by_key[(job.subject.kind, job.poll, job.subject.group, job.variant)] = job
    data: dict[str, Any] = {}

    def ours_for(job: Job) -> Job | None:
        poll = job.poll if job.poll is not None else 0.5
        return by_key.get((job.subject.kind, poll, "ours", ""))

    for job in jobs:
        if not job.stop and not job.error:
            continue
        st, sp = summarize(job.start), summarize(job.stop)
        ours = ours_for(job)
        ratio = float("nan")
        if ours is not None and ours is not job and ours.stop and job.stop:
            ratio = sp["median"] / summarize(ours.stop)["median"]
        poll = "-" if job.poll is None else f"{job.poll:g}"
        if job.mode == "pipelined":
            poll += " (p)"
        row = [job.subject.kind, job.label, poll, str(sp["n"]), fmt_ms(st["median"]),
               fmt_ms(st["p99"]), fmt_ms(sp["median"]), fmt_ms(sp["p99"]), fmt_ms(sp["max"]),
               fmt_ratio(ratio) if job.subject.group != "ours" else ""]
        if job.error:
            row[-1] = f"error: {job.error[:60]}"
        table.rows.append(row)
        key = f"{job.subject.kind}|{job.label}|{poll}"
        data[key] = {
            "kind": job.subject.kind, "server": job.label, "group": job.subject.group,
            "poll_interval": job.poll, "mode": job.mode, "error": job.error,
            "create": summarize(job.create), "start": st, "stop": sp,
            "stop_samples_us": [round(v * 1e6) for v in job.stop],
            "start_samples_us": [round(v * 1e6) for v in job.start],
        }
        if job.stop:
            at = "" if job.poll is None else f" @{job.poll:g}"
            pipelined = " (p)" if job.mode == "pipelined" else ""
            report.distributions[f"{job.subject.kind} {job.label}{at}{pipelined}"] = (
                job.subject.group, list(job.stop))
    table.notes.append("'(p)': pipelined (the stop() calls of consecutive cycles overlap on "
                       "worker threads; each is still timed alone); other rows one cycle at a "
                       "time, interleaved: each round runs one cycle of every such row, in a new "
                       "random order (cold rows together, then warm rows together)")
    table.notes.append("stop vs ours: this row's stop median / testservers' (cold) stop median "
                       "for the same kind and poll_interval (0.5 for servers without one)")
    table.notes.append("warm: another testservers server keeps the reactor thread running; "
                       "cold rows start and join the reactor thread every cycle")
    table.notes.append("pytest-httpserver binds in start(), so its start->ready includes the bind")
    table.notes.append("test_logging TestSMTPServer has no ready event: start->ready is start()")
    for k, v in import_notes().items():
        table.notes.append(f"not measured: {k}: {v}")
    for s in skipped:
        table.notes.append(f"skipped in --quick (one cycle takes a minute): {s}")
    report.tables.append(table)
    report.tables.append(_item9_table(jobs))
    report.tables.append(_targets_table(jobs))
    report.tables.append(matrix_table(data, "stop"))
    report.tables.append(matrix_table(data, "start"))
    report.data = data
    return report


def matrix_table(data: dict[str, Any], metric: str) -> Table:
    """One row per server, one column per poll_interval: ``median / p99`` in ms.

    Built from :attr:`Report.data` (so it can be rebuilt from a saved JSON
    file's ``results.lifecycle.data``).
    """
    name = "stop()" if metric == "stop" else "start()->ready"
    t = Table(f"{name} latency by poll_interval, median / p99 (ms)",
              ["kind", "server"] + [f"{p:g}" for p in POLLS] + ["no poll_interval"])
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for entry in data.values():
        key = (entry["kind"], entry["server"])
        stats = entry[metric]
        poll = entry["poll_interval"]
        col = "no poll_interval" if poll is None else f"{poll:g}"
        if entry.get("error") and not stats.get("n"):
            cell = "fails"
        else:
            cell = f"{fmt_ms(stats['median'])} / {fmt_ms(stats['p99'])}"
        rows.setdefault(key, {})[col] = cell
    for (kind, server), cells in rows.items():
        t.rows.append([kind, server] + [cells.get(c, "") for c in t.columns[2:]])
    t.notes.append("servers without a poll_interval knob (the floor, aiosmtpd, "
                   "pytest-httpserver) have one column")
    return t


def _item9_table(jobs: list[Job]) -> Table:
    t = Table("TCP/UDP: testservers vs CPython test_logging helpers (ms; ratio = theirs/ours)",
              ["kind", "poll_interval", "ours stop med", "p99", "theirs stop med", "p99",
               "stop ratio", "ours start med", "p99", "theirs start med", "p99", "start ratio"])
    for kind in ("tcp", "udp"):
        for poll in (0.5, 0.01):
            ours = theirs = None
            for j in jobs:
                if j.subject.kind == kind and j.poll == poll and not j.variant:
                    if j.subject.group == "ours":
                        ours = j
                    elif j.label.startswith("test_logging"):
                        theirs = j
            if ours is None or theirs is None or not ours.stop or not theirs.stop:
                continue
            os_, ts = summarize(ours.stop), summarize(theirs.stop)
            ob, tb = summarize(ours.start), summarize(theirs.start)
            t.rows.append([kind, f"{poll:g}", fmt_ms(os_["median"]), fmt_ms(os_["p99"]),
                           fmt_ms(ts["median"]), fmt_ms(ts["p99"]),
                           fmt_ratio(ts["median"] / os_["median"]),
                           fmt_ms(ob["median"]), fmt_ms(ob["p99"]), fmt_ms(tb["median"]),
                           fmt_ms(tb["p99"]), fmt_ratio(tb["median"] / ob["median"])])
    t.notes.append("target (issue 2 item 9): our stop() median < 0.5 ms and p99 < 5 ms at any "
                   "poll_interval; >= 100x faster than the stdlib helpers at poll_interval 0.5")
    return t


def _targets_table(jobs: list[Job]) -> Table:
    t = Table("Targets (issue 5 item 4): testservers stop() and start()->ready",
              ["target", "worst row", "value", "met"])
    ours = [j for j in jobs if j.subject.group == "ours" and j.stop]
    checks: list[tuple[str, Callable[[Job], float], float]] = [
        ("stop() median < 0.5 ms", lambda j: summarize(j.stop)["median"], 0.5e-3),
        ("stop() p99 < 5 ms", lambda j: summarize(j.stop)["p99"], 5e-3),
        ("start->ready median < 0.5 ms", lambda j: summarize(j.start)["median"], 0.5e-3),
    ]
    for name, metric, limit in checks:
        if not ours:
            continue
        worst = max(ours, key=metric)
        value = metric(worst)
        t.rows.append([name, f"{worst.subject.kind} {worst.label} @{worst.poll:g}"
                       if worst.poll is not None else worst.label,
                       fmt_ms(value) + " ms", "yes" if value < limit else "NO"])
    return t
