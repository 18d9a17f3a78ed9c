"""Idle cost: CPU time and wake-ups per second of one started, unused server.

For each poll_interval, one server is started, left alone for a window of a
few seconds, and its serving thread is observed from outside:

* CPU: ``time.clock_gettime(time.pthread_getcpuclockid(ident))`` of the
  serving thread (ns resolution; the thread is alive while read).
* wake-ups: context switches of that thread
  (``/proc/self/task/<tid>/status``: voluntary + involuntary).  A thread
  blocked in ``select()`` that times out and loops switches once per pass.
* for testservers, also the reactor's own ``iterations`` counter (loop
  passes), the number the target is stated in.

``testservers + service_actions`` overrides ``service_actions()``, so it has
a tick to run every poll_interval: it should wake exactly 1/poll_interval
times a second and no more.  Every other testservers row should show zero.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bench._runner import Report, Table, fmt_num, progress
from bench._subjects import Instance, Subject, import_notes, subjects

POLLS = (0.001, 0.01, 0.5, 60.0)


def _ctx_switches(native_id: int) -> int:
    total = 0
    with open(f"/proc/self/task/{native_id}/status") as f:
        for line in f:
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def _thread_cpu(thread: threading.Thread) -> float:
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


class _TickingInstance(Instance):
    """testservers TCPServer with a service_actions() override (so it ticks)."""

    def __init__(self, poll: float) -> None:
        import protocols

        class Ticking(protocols.TCPServer):
            ticks = 0

            def service_actions(self) -> None:
                Ticking.ticks += 1

        self.server = Ticking(poll_interval=poll)

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def serving_thread(self) -> threading.Thread | None:
        import reactor

        r = reactor.current_reactor()
        return r.thread if r is not None else None


def _stop_in_background(inst: Instance, errors: list[str], label: str) -> threading.Thread:
    def stop() -> None:
        try:
            inst.stop()
            inst.cleanup()
        except Exception as exc:  # e.g. test_logging's join_thread() timeout at poll 60
            errors.append(f"{label}: stop() raised {type(exc).__name__}: {exc}")

    t = threading.Thread(target=stop, name=f"bench-stop {label}", daemon=True)
    t.start()
    return t


def measure(inst: Instance, window: float, stop: Any = None) -> dict[str, Any]:
    """Start ``inst``, let it settle, observe it for ``window`` seconds, stop it.

    ``stop``, if given, is called with ``inst`` instead of ``inst.stop()``
    (the benchmark hands slow peer stops to background threads).
    """
    import reactor

    inst.start()
    inst.wait_ready()
    try:
        time.sleep(0.05)  # let start-up passes finish
        thread = inst.serving_thread()
        if thread is None or thread.native_id is None:
            raise RuntimeError(f"no serving thread for {inst!r}")
        r = reactor.current_reactor()
        ours = r is not None and thread is r.thread
        it0 = r.iterations if (ours and r is not None) else 0
        cs0 = _ctx_switches(thread.native_id)
        cpu0 = _thread_cpu(thread)
        t0 = time.perf_counter()
        time.sleep(window)
        t1 = time.perf_counter()
        cpu1 = _thread_cpu(thread)
        cs1 = _ctx_switches(thread.native_id)
        it1 = r.iterations if (ours and r is not None) else 0
    finally:
        if stop is None:
            inst.stop()
            inst.cleanup()
        else:
            stop(inst)
    dt = t1 - t0
    return {
        "window_s": dt,
        "cpu_s": cpu1 - cpu0,
        "cpu_ms_per_s": (cpu1 - cpu0) * 1e3 / dt,
        "ctx_switches": cs1 - cs0,
        "wakeups_per_s": (cs1 - cs0) / dt,
        "loop_passes": (it1 - it0) if ours else None,
        "loop_passes_per_s": (it1 - it0) / dt if ours else None,
    }


def run(quick: bool) -> Report:
    window = 0.2 if quick else 2.0
    kinds: tuple[str, ...] = ("tcp",) if quick else ("tcp", "udp", "http", "smtp")
    polls = (0.01, 0.5) if quick else POLLS
    subs = [s for s in subjects(kinds, direct=False)]
    report = Report("idle")
    table = Table(f"Idle cost of one started server ({window:g} s window)",
                  ["poll_interval", "server", "loop passes/s", "wake-ups/s", "CPU ms/s"])
    rows: list[tuple[str, Subject | None, float | None]] = []
    skipped: list[str] = []
    # poll_interval 60 first: the peers' stop() calls then sleep out their
    # minute in the background while the other rows are measured.
    for pi in sorted(polls, reverse=True):
        for s in subs:
            if s.uses_poll:
                rows.append((f"{pi:g}", s, pi))
            if s.group == "ours" and s.kind == "tcp":
                rows.append((f"{pi:g}", None, pi))  # the ticking variant
    for s in subs:
        if not s.uses_poll:
            rows.append(("-", s, None))

    results: dict[str, Any] = {}
    background: list[threading.Thread] = []
    stop_errors: list[str] = []
    for poll_s, subj, poll in rows:
        label = subj.label if subj is not None else "testservers TCPServer + service_actions"
        slow_peer = (subj is not None and subj.group == "peer" and poll is not None
                     and poll >= 0.1)
        if slow_peer and quick and poll is not None and poll >= 10:
            skipped.append(f"{label} poll={poll_s}")
            continue
        progress(f"{label} poll={poll_s}")
        if subj is None:
            assert poll is not None
            inst: Instance = _TickingInstance(poll)
        else:
            inst = subj.create(poll if poll is not None else 0.5)
        stopper = None
        if slow_peer:
            def stopper(i: Instance, label: str = label) -> None:
                background.append(_stop_in_background(i, stop_errors, label))
        try:
            m = measure(inst, window, stopper)
        except Exception as exc:
            if subj is None or subj.group == "ours":
                raise
            table.rows.append([poll_s, label, "-", "-", f"error: {exc!r}"[:60]])
            continue
        results[f"{label}|{poll_s}"] = {"server": label, "poll_interval": poll, **m}
        passes = m["loop_passes_per_s"]
        table.rows.append([poll_s, label, "-" if passes is None else fmt_num(passes, 1),
                           fmt_num(m["wakeups_per_s"], 1), fmt_num(m["cpu_ms_per_s"], 2)])
    table.notes.append("loop passes/s: the reactor's own iteration counter (testservers only); "
                       "wake-ups/s: context switches of the serving thread")
    table.notes.append("+ service_actions: a server that overrides service_actions() must wake "
                       "once per poll_interval; every other testservers row should read 0")
    progress(f"waiting for {len(background)} background peer stop()s", force=True)
    deadline = time.monotonic() + 75
    for t in background:
        t.join(max(0.0, deadline - time.monotonic()))
    stop_errors.extend(f"{t.name}: still running after 75 s" for t in background if t.is_alive())
    for k, v in import_notes().items():
        table.notes.append(f"not measured: {k}: {v}")
    for e in stop_errors:
        table.notes.append(e)
    for sk in skipped:
        table.notes.append(f"skipped in --quick (its stop() takes a minute): {sk}")
    report.tables.append(table)

    targets = Table("Target (issue 5 item 4): an idle server makes no wake-ups",
                    ["server", "poll_interval", "loop passes in window", "met"])
    for v in results.values():
        if v["loop_passes"] is not None and "service_actions" not in v["server"]:
            targets.rows.append([v["server"], f"{v['poll_interval']:g}", str(v["loop_passes"]),
                                 "yes" if v["loop_passes"] == 0 else "NO"])
    report.tables.append(targets)
    report.data = {"window_s": window, "rows": results, "stop_errors": stop_errors}
    return report
