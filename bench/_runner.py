"""The benchmark runner: CLI, progress, tables, JSON results and the SVG chart.

Contract for a benchmark module ``bench/bench_NAME.py``: it exposes
``run(quick: bool) -> Report`` (called on the main thread).  ``quick``
selects a short smoke run; the full run is what the README quotes.  Every
load loop inside is bounded both in count and in time, and only loopback
addresses are used.  A module may raise :class:`Skip` to say it cannot run
here (a missing optional peer, say); any other exception is an error that
makes ``python -m bench`` exit non-zero (CI fails on errors, never on
numbers).

Modules written by other people (``bench_http``, ``bench_smtp``) may instead
return a dict, a list of :class:`Table`, or ``None`` after printing their own
output; :func:`_coerce` accepts all of these.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BENCHMARKS",
    "Report",
    "Skip",
    "Table",
    "fmt_ms",
    "fmt_ratio",
    "main",
    "progress",
    "summarize",
]

#: Benchmarks in the order ``python -m bench`` runs them.  bench_http and
#: bench_smtp belong to the HTTP/SMTP server authors; throughput calls them.
BENCHMARKS = ["lifecycle", "idle", "ticks", "scale", "suite", "throughput", "hostile", "faults"]

#: Where results land, relative to this package.
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


class Skip(Exception):
    """Raised by a benchmark (or a subject) that cannot run on this machine."""


@dataclass
class Table:
    """One printed table: ``rows`` are lists of already formatted cells."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        cells = [self.columns] + [[str(c) for c in r] for r in self.rows]
        ncol = len(self.columns)
        widths = [max(len(r[i]) if i < len(r) else 0 for r in cells) for i in range(ncol)]
        out = [self.title, "=" * len(self.title)]

        def line(r: Sequence[str]) -> str:
            parts = []
            for i, w in enumerate(widths):
                c = r[i] if i < len(r) else ""
                # Left-align the first two (label) columns, right-align numbers.
                parts.append(c.ljust(w) if i < 2 else c.rjust(w))
            return "  ".join(parts).rstrip()

        out.append(line(self.columns))
        out.append("  ".join("-" * w for w in widths))
        out.extend(line(r) for r in cells[1:])
        out.extend(f"  * {n}" for n in self.notes)
        return "\n".join(out)

    def markdown(self) -> str:
        def cell(c: object) -> str:
            return str(c).replace("|", "\\|")

        out = [f"**{self.title}**", ""]
        out.append("| " + " | ".join(cell(c) for c in self.columns) + " |")
        aligns = (":---" if i < 2 else "---:" for i in range(len(self.columns)))
        out.append("|" + "|".join(aligns) + "|")
        for r in self.rows:
            out.append("| " + " | ".join(cell(c) for c in r) + " |")
        if self.notes:
            out.append("")
            out.extend(f"- {n}" for n in self.notes)
        return "\n".join(out)

    def as_json(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.columns, "rows": self.rows,
                "notes": self.notes}


@dataclass
class Report:
    """What one benchmark returns: tables to print and raw data for the JSON."""

    name: str
    tables: list[Table] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    #: Latency samples for the SVG chart: label -> (group, seconds...).
    distributions: dict[str, tuple[str, list[float]]] = field(default_factory=dict)


# -- statistics and formatting ---------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values."""
    if not sorted_values:
        return math.nan
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def summarize(values: Iterable[float]) -> dict[str, float]:
    """n, min, median, p99, max and mean of ``values`` (seconds in, seconds out)."""
    v = sorted(values)
    if not v:
        return {"n": 0, "min": math.nan, "median": math.nan, "p99": math.nan, "max": math.nan,
                "mean": math.nan}
    return {
        "n": len(v),
        "min": v[0],
        "median": statistics.median(v),
        "p99": percentile(v, 99),
        "max": v[-1],
        "mean": statistics.fmean(v),
    }


def fmt_ms(seconds: float) -> str:
    """Seconds as a compact millisecond string (``0.21``, ``12.3``, ``501``, ``60.0 s``)."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    ms = seconds * 1e3
    if ms >= 10_000:
        return f"{seconds:.1f} s"
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def fmt_ratio(value: float) -> str:
    if value is None or math.isnan(value) or math.isinf(value):
        return "-"
    if value >= 100:
        return f"{value:,.0f}x"
    if value >= 10:
        return f"{value:.1f}x"
    return f"{value:.2f}x"


def fmt_num(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


# -- progress ---------------------------------------------------------------

_progress_prefix = ""
_progress_tty = sys.stderr.isatty()
_progress_last = 0.0
_progress_started = time.monotonic()


def progress(message: str, *, force: bool = False) -> None:
    """Show what is running now (stderr; overwritten in place on a terminal).

    On a pipe (CI) only every message passed with ``force`` or at most one
    line per second is written, so logs stay short.
    """
    global _progress_last
    now = time.monotonic()
    text = f"[{now - _progress_started:6.1f}s] {_progress_prefix}{message}"
    if _progress_tty:
        sys.stderr.write("\r\x1b[K" + text[:150])
        sys.stderr.flush()
    elif force or now - _progress_last >= 1.0:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
        _progress_last = now


def _progress_done() -> None:
    if _progress_tty:
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()


# -- machine description ---------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "python_build": " ".join(platform.python_build()),
        "compiler": platform.python_compiler(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_bytes": mem,
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "loadavg_start": _loadavg(),
    }


def _loadavg() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on the machine skews latencies."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# -- the SVG chart ------------------------------------------------------------

_GROUP_COLORS = {"ours": "#1f77b4", "peer": "#d62728", "floor": "#2ca02c"}


def render_svg(distributions: dict[str, tuple[str, list[float]]], title: str) -> str:
    """A box plot per label on a logarithmic millisecond axis, as SVG text.

    Box: 25th-75th percentile; thick tick: median; whiskers: 1st-99th
    percentile; a small diamond: the maximum.  Dashed lines mark the
    targets (0.5 ms median, 5 ms p99).
    """
    items = [(label, grp, sorted(v)) for label, (grp, v) in distributions.items() if v]
    row_h, left, right, top = 18, 400, 30, 64
    width = 1100
    height = top + row_h * len(items) + 50
    lo_ms, hi_ms = 0.01, 100_000.0  # 10 us .. 100 s
    lo, hi = math.log10(lo_ms), math.log10(hi_ms)

    def x(seconds: float) -> float:
        ms = min(max(seconds * 1e3, lo_ms), hi_ms)
        return left + (math.log10(ms) - lo) / (hi - lo) * (width - left - right)

    def esc(s: str) -> str:
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14">{esc(title)}</text>',
        f'<text x="{width / 2}" y="34" text-anchor="middle" fill="#555">box p25-p75, '
        "bar median, whiskers p1-p99, diamond max; log scale</text>",
    ]
    y_axis = top + row_h * len(items)
    for e in range(int(lo), int(hi) + 1):
        xv = x(10**e / 1e3)
        label = f"{10**e:g} ms" if e < 3 else f"{10 ** (e - 3):g} s"
        out.append(f'<line x1="{xv:.1f}" y1="{top - 4}" x2="{xv:.1f}" y2="{y_axis}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{xv:.1f}" y="{y_axis + 14}" text-anchor="middle">{label}</text>')
    for target, name in ((0.5e-3, "0.5 ms"), (5e-3, "5 ms")):
        xv = x(target)
        out.append(
            f'<line x1="{xv:.1f}" y1="{top - 4}" x2="{xv:.1f}" y2="{y_axis}" stroke="#888" '
            'stroke-dasharray="4,3"/>'
        )
        out.append(f'<text x="{xv:.1f}" y="{top - 8}" text-anchor="middle" fill="#555">'
                   f"target {name}</text>")
    for i, (label, grp, v) in enumerate(items):
        yc = top + row_h * i + row_h / 2
        color = _GROUP_COLORS.get(grp, "#7f7f7f")
        if i % 2:
            out.append(f'<rect x="0" y="{yc - row_h / 2:.1f}" width="{width}" height="{row_h}" '
                       'fill="#f6f6f6"/>')
        out.append(f'<text x="{left - 8}" y="{yc + 4:.1f}" text-anchor="end" fill="{color}">'
                   f"{esc(label)} (n={len(v)})</text>")
        p1, p25, p50, p75, p99 = (percentile(v, q) for q in (1, 25, 50, 75, 99))
        out.append(f'<line x1="{x(p1):.1f}" y1="{yc:.1f}" x2="{x(p99):.1f}" y2="{yc:.1f}" '
                   f'stroke="{color}"/>')
        for w in (p1, p99):
            out.append(f'<line x1="{x(w):.1f}" y1="{yc - 4:.1f}" x2="{x(w):.1f}" y2="{yc + 4:.1f}" '
                       f'stroke="{color}"/>')
        bx = x(p25)
        out.append(f'<rect x="{bx:.1f}" y="{yc - 6:.1f}" width="{max(1.5, x(p75) - bx):.1f}" '
                   f'height="12" fill="{color}" fill-opacity="0.35" stroke="{color}"/>')
        out.append(f'<line x1="{x(p50):.1f}" y1="{yc - 7:.1f}" x2="{x(p50):.1f}" y2="{yc + 7:.1f}" '
                   f'stroke="{color}" stroke-width="3"/>')
        mx = x(v[-1])
        out.append(f'<path d="M{mx:.1f},{yc - 4:.1f} l4,4 l-4,4 l-4,-4 z" fill="{color}"/>')
    legend_y = height - 14
    for j, (grp, color) in enumerate(_GROUP_COLORS.items()):
        lx = left + j * 120
        out.append(f'<rect x="{lx}" y="{legend_y - 9}" width="10" height="10" fill="{color}"/>')
        name = {"ours": "testservers", "peer": "peers", "floor": "minimal loop"}[grp]
        out.append(f'<text x="{lx + 14}" y="{legend_y}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# -- running ----------------------------------------------------------------


def _coerce(name: str, result: Any) -> Report:
    """Accept the shapes other authors' modules may return."""
    if isinstance(result, Report):
        return result
    report = Report(name)
    if result is None:
        return report
    if isinstance(result, Table):
        report.tables.append(result)
    elif isinstance(result, list) and all(isinstance(t, Table) for t in result):
        report.tables.extend(result)
    elif isinstance(result, dict):
        report.data = result
    else:
        report.data = {"result": repr(result)}
    return report


def run_module(name: str, quick: bool) -> Report:
    """Import ``bench.bench_NAME`` and call its ``run(quick)``.

    :raises Skip: the module is absent or says it cannot run here.
    """
    try:
        module = importlib.import_module(f"bench.bench_{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"bench.bench_{name}":
            raise Skip(f"bench/bench_{name}.py does not exist (yet)") from None
        raise
    fn = getattr(module, "run", None) or getattr(module, "main", None)
    if fn is None:
        raise Skip(f"bench.bench_{name} has no run(quick) function")
    try:
        result = fn(quick=quick)
    except TypeError as exc:  # a module whose entry point takes no flag
        if "quick" not in str(exc):
            raise
        result = fn()
    return _coerce(name, result)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)


def main(argv: list[str] | None = None) -> int:
    global _progress_prefix
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="testservers benchmarks: stop/start latency, idle cost, tick precision, "
        "scale, whole-suite overhead and throughput, side by side with the peers.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true",
                        help="short smoke run (under a minute in total); numbers are rough")
    parser.add_argument("--no-save", action="store_true", help="do not write results/")
    parser.add_argument("--markdown", action="store_true",
                        help="also print the tables as Markdown (for the README)")
    parser.add_argument("--list", action="store_true", help="list benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(BENCHMARKS + ["http", "smtp"]))
        return 0
    names = args.names or BENCHMARKS
    known = set(BENCHMARKS) | {"http", "smtp"}
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {sorted(known)}")

    info = machine_info()
    mode = "quick" if args.quick else "full"
    print(f"testservers benchmarks ({mode}): Python {info['python']} "
          f"({info['implementation']}) on {info['cpu']} x{info['cpu_count']}, {info['platform']}")
    print(f"date {info['date_utc']}, load average {info['loadavg_start']}\n", flush=True)
    load = info["loadavg_start"]
    if load and load[0] > 0.5:
        print(f"note: the machine is busy (load {load[0]} before starting); latencies and "
              "ratios will be noisier than on an idle machine\n", flush=True)

    results: dict[str, Any] = {}
    distributions: dict[str, tuple[str, list[float]]] = {}
    failures = 0
    t_all = time.monotonic()
    for name in names:
        _progress_prefix = f"{name}: "
        progress("starting", force=True)
        t0 = time.monotonic()
        try:
            report = run_module(name, args.quick)
        except Skip as exc:
            _progress_done()
            print(f"[{name}] skipped: {exc}\n", flush=True)
            results[name] = {"skipped": str(exc)}
            continue
        except Exception:
            _progress_done()
            failures += 1
            tb = traceback.format_exc()
            print(f"[{name}] ERROR:\n{tb}", flush=True)
            results[name] = {"error": tb}
            continue
        elapsed = time.monotonic() - t0
        _progress_done()
        for table in report.tables:
            print(table.render(), end="\n\n")
            if args.markdown:
                print(table.markdown(), end="\n\n")
        print(f"[{name}] done in {elapsed:.1f} s\n", flush=True)
        results[name] = {
            "elapsed_s": elapsed,
            "loadavg_at_end": _loadavg(),
            "tables": [t.as_json() for t in report.tables],
            "data": report.data,
        }
        distributions.update(report.distributions)
    _progress_prefix = ""
    if any(name in results for name in ("lifecycle", "throughput", "http")):
        from bench._targets import targets_table

        targets = targets_table(results)
        if targets.rows:
            print(targets.render(), end="\n\n")
            if args.markdown:
                print(targets.markdown(), end="\n\n")
            results["targets"] = {"tables": [targets.as_json()]}
    total = time.monotonic() - t_all
    print(f"all benchmarks finished in {total:.1f} s"
          f"{f' with {failures} error(s)' if failures else ''}")

    if not args.no_save:
        os.makedirs(RESULTS_DIR, exist_ok=True)
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        suffix = "-quick" if args.quick else ""
        base = os.path.join(RESULTS_DIR, f"{stamp}{suffix}")
        info["loadavg_end"] = _loadavg()
        doc = {
            "machine": info,
            "mode": mode,
            "argv": sys.argv,
            "benchmarks_run": names,
            "total_s": total,
            "results": results,
        }
        with open(base + ".json", "w") as f:
            json.dump(_jsonable(doc), f, indent=1)
        print(f"results: {os.path.relpath(base + '.json')}")
        if distributions:
            svg = render_svg(
                distributions,
                f"stop() latency, Python {info['python']}, {info['cpu_count']} CPUs ({mode} run)",
            )
            with open(base + "-stop.svg", "w") as f:
                f.write(svg)
            print(f"chart:   {os.path.relpath(base + '-stop.svg')}")
    return 1 if failures else 0
