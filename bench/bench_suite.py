"""Whole-suite overhead: 200 cycles of start / one request / 1 ms of work / stop.

Each cycle is what one test does with a fresh server: construct and start
it, wait until ready, make one real client request and check the answer
(an echoed line, an echoed datagram, ``GET /`` -> ``200 ok``, one
``smtplib.sendmail``), spend 1 ms on "test work" (``time.sleep(0.001)``),
then ``stop()``.  The work matters: stopping right after the request hides a
polling server's latency behind a race with its own ``select()`` wake-up,
which real tests do not get.

Reported per server: the wall time of 200 cycles, the median and p99 cycle,
and the ratios to the minimal selectors loop (the floor) and to our
CPython-compatible server of the same kind, all from this one run.

Servers that take about poll_interval per cycle (0.5 s) would need 100 s for
200 cycles; they run for a bounded time instead and their 200-cycle total is
projected from the cycles they did (``n`` says how many; marked ``*``).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench._runner import Report, Table, fmt_ms, fmt_num, fmt_ratio, percentile, progress
from bench._subjects import Subject, import_notes, request, subjects

CYCLES = 200
WORK = 0.001


def _at(poll: float | None) -> str:
    return "" if poll is None else f" @{poll:g}"


def cycle(subject: Subject, poll: float) -> float:
    """One timed cycle; raises if the server answers wrongly."""
    t0 = time.perf_counter()
    inst = subject.create(poll)
    try:
        inst.start()
        inst.wait_ready()
        request(subject.kind, inst)
        time.sleep(WORK)
    finally:
        inst.stop()
        elapsed = time.perf_counter() - t0
        inst.cleanup()
    return elapsed


def run(quick: bool) -> Report:
    n_target = 10 if quick else CYCLES
    kinds = ("tcp", "udp", "http", "smtp")
    subs = subjects(kinds, direct=not quick, native=True)
    jobs: list[tuple[Subject, float]] = []
    for s in subs:
        if s.group == "peer" and s.uses_poll:
            polls = (0.5, 0.01) if s.label.startswith("test_logging") else (0.5,)
            if quick and s.kind != "tcp":
                polls = (0.01,)  # --quick: one slow (0.5 s) peer is proof enough
            jobs.extend((s, p) for p in polls)
        elif quick and s.label.startswith("pytest-httpserver"):
            continue  # 0.5 s per cycle; the lifecycle benchmark covers it in --quick
        else:
            jobs.append((s, 0.5))
    report = Report("suite")
    table = Table(f"{CYCLES} cycles of start / one request / {WORK * 1e3:g} ms work / stop",
                  ["kind", "server", "poll_interval", "n", "200 cycles s", "cycle median ms",
                   "p99", "vs floor", "vs ours"])
    results: dict[tuple[str, str, float], dict[str, Any]] = {}
    samples: dict[tuple[str, str, float], list[float]] = {}
    errors: dict[tuple[str, str, float], str] = {}
    fast: list[tuple[Subject, float]] = []
    slow: list[tuple[Subject, float]] = []
    for s, poll in jobs:
        key = (s.kind, s.label, poll)
        samples[key] = []
        if s.group == "peer" and s.uses_poll and poll >= 0.1:
            slow.append((s, poll))  # a cycle waits out the poll: no warm-up needed
            continue
        progress(f"warm-up {s.label} poll={poll:g}")
        try:
            first = cycle(s, poll)  # untimed warm-up (imports, first-call caches)
        except Exception as exc:
            if s.group == "ours":
                raise
            errors[key] = f"{type(exc).__name__}: {exc}"
            continue
        (slow if first > 0.1 else fast).append((s, poll))

    # Fast servers run interleaved, one cycle of each per round, so that a
    # change in machine load (this is a shared 2-core box) hits all alike
    # and the ratios stay pairwise fair.
    budget = 10.0 if quick else 240.0
    t_start = time.monotonic()
    for i in range(n_target):
        if time.monotonic() - t_start > budget:
            break
        if i % 10 == 0:
            progress(f"interleaved round {i}/{n_target} ({len(fast)} servers)")
        for s, poll in list(fast):
            key = (s.kind, s.label, poll)
            try:
                samples[key].append(cycle(s, poll))
            except Exception as exc:
                if s.group == "ours":
                    raise
                errors[key] = f"{type(exc).__name__}: {exc}"
                fast.remove((s, poll))
    # Servers whose cycle takes about a poll_interval: bounded time each.
    for s, poll in slow:
        key = (s.kind, s.label, poll)
        progress(f"{s.label} poll={poll:g} (slow)", force=True)
        t_start = time.monotonic()
        try:
            while len(samples[key]) < n_target and \
                    time.monotonic() - t_start < (0.3 if quick else 15.0):
                samples[key].append(cycle(s, poll))
        except Exception as exc:
            errors[key] = f"{type(exc).__name__}: {exc}"

    for s, poll in jobs:
        key = (s.kind, s.label, poll)
        v = sorted(samples[key])
        results[key] = {
            "kind": s.kind, "server": s.label, "group": s.group,
            "poll_interval": poll if s.uses_poll else None, "n": len(v),
            "error": errors.get(key),
            "total_s": sum(v), "projected": len(v) < CYCLES,
            "total_200_s": statistics.fmean(v) * CYCLES if v else float("nan"),
            "median_s": statistics.median(v) if v else float("nan"),
            "p99_s": percentile(v, 99) if v else float("nan"),
            "cycles_ms": [round(x * 1e3, 3) for x in samples[key]],
        }

    def ref(kind: str, group: str, prefix: str) -> dict[str, Any] | None:
        for (k, lab, _p), r in results.items():
            if k == kind and r["group"] == group and lab.startswith(prefix) and r["n"]:
                return r
        return None

    for (kind, label, poll), r in results.items():
        floor = ref(kind, "floor", "minimal loop")
        ours = ref(kind, "ours", "testservers Test")
        vs_floor = r["total_200_s"] / floor["total_200_s"] if floor else float("nan")
        vs_ours = r["total_200_s"] / ours["total_200_s"] if ours and r["group"] != "ours" \
            else float("nan")
        r["vs_floor"], r["vs_ours"] = vs_floor, vs_ours
        total = fmt_num(r["total_200_s"], 2) + ("*" if r["projected"] else "")
        poll_s = f"{poll:g}" if r["poll_interval"] is not None else "-"
        if r["error"] and not r["n"]:
            table.rows.append([kind, label, poll_s, str(r["n"]), f"error: {r['error'][:60]}"])
            continue
        table.rows.append([kind, label, poll_s, str(r["n"]), total, fmt_ms(r["median_s"]),
                           fmt_ms(r["p99_s"]), fmt_ratio(vs_floor),
                           fmt_ratio(vs_ours) if r["group"] != "ours" else ""])
    table.notes.append("servers whose cycle is under 0.1 s run interleaved (one cycle of each "
                       "per round); the others run one after another for a bounded time")
    table.notes.append(f"*: projected to {CYCLES} cycles from the n cycles run within the "
                       "time budget (mean cycle x 200)")
    table.notes.append("vs floor / vs ours: 200-cycle time over the minimal loop's / over "
                       "testservers' CPython-compatible server of the same kind, same run")
    for what, why in import_notes().items():
        table.notes.append(f"not measured: {what}: {why}")
    report.tables.append(table)

    targets = Table("Targets (issue 5 item 4): suite within 1.5x of the floor, ahead of "
                    "every peer", ["kind", "server", "vs floor", "fastest peer: 200 cycles",
                                   "met"])
    for (kind, label, _poll), r in results.items():
        if r["group"] != "ours" or not r["n"]:
            continue
        peers = [p for p in results.values() if p["kind"] == kind and p["group"] == "peer"
                 and p["n"]]
        fastest = min(peers, key=lambda p: p["total_200_s"]) if peers else None
        ahead = fastest is None or r["total_200_s"] < fastest["total_200_s"]
        ok = r["vs_floor"] < 1.5 and ahead
        targets.rows.append([
            kind, label, fmt_ratio(r["vs_floor"]),
            f"{fastest['server']}{_at(fastest['poll_interval'])}: "
            f"{fmt_num(fastest['total_200_s'], 2)} s" if fastest else "-",
            "yes" if ok else "NO"])
    report.tables.append(targets)
    report.data = {f"{k}|{lab}|{p:g}": r for (k, lab, p), r in results.items()}
    return report
