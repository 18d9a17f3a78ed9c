"""Markdown from a saved results file: ``python -m bench._report bench/results/X.json``.

``--svg OUT.svg`` after the file name also rebuilds the stop() chart from the
saved samples.

Prints the machine line and every table of the run as Markdown (plus the
stop()/start() matrices rebuilt from the lifecycle data), for the README's
"Performance" section.  Reads only the JSON the runner wrote.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from bench._runner import Table, render_svg


def tables_of(doc: dict[str, Any]) -> list[tuple[str, Table]]:
    out: list[tuple[str, Table]] = []
    for name, res in doc["results"].items():
        for t in res.get("tables", []):
            out.append((name, Table(t["title"], t["columns"], t["rows"], t["notes"])))
        if name == "lifecycle" and res.get("data"):
            from bench.bench_lifecycle import matrix_table

            titles = {t["title"] for t in res.get("tables", [])}
            for metric in ("stop", "start"):
                m = matrix_table(res["data"], metric)
                if m.title not in titles:
                    out.append((name, m))
    return out


def chart_of(doc: dict[str, Any]) -> str:
    """The stop() latency chart, rebuilt from the lifecycle samples in ``doc``."""
    dists: dict[str, tuple[str, list[float]]] = {}
    for entry in doc["results"].get("lifecycle", {}).get("data", {}).values():
        if not entry.get("stop_samples_us"):
            continue
        poll = entry["poll_interval"]
        at = "" if poll is None else f" @{poll:g}"
        p = " (p)" if entry.get("mode") == "pipelined" else ""
        dists[f"{entry['kind']} {entry['server']}{at}{p}"] = (
            entry["group"], [us / 1e6 for us in entry["stop_samples_us"]])
    m = doc["machine"]
    return render_svg(dists, f"stop() latency, Python {m['python']}, {m['cpu_count']} CPUs "
                             f"({doc['mode']} run, {m['date_utc'][:10]})")


def main(argv: list[str]) -> int:
    """``X.json`` prints Markdown; ``X.json --svg OUT.svg`` also (re)writes the chart."""
    if len(argv) not in (1, 3) or (len(argv) == 3 and argv[1] != "--svg"):
        print(__doc__)
        return 2
    with open(argv[0]) as f:
        doc = json.load(f)
    if len(argv) == 3:
        with open(argv[2], "w") as f:
            f.write(chart_of(doc))
    m = doc["machine"]
    print(f"Run: `python -m bench` ({doc['mode']}), {m['date_utc']}, Python {m['python']} "
          f"({m['implementation']}), {m['cpu']} x{m['cpu_count']}, {m['platform']}; "
          f"load average before {m.get('loadavg_start')}, after {m.get('loadavg_end')}; "
          f"{doc['total_s']:.0f} s in total.\n")
    for name, table in tables_of(doc):
        print(f"<!-- {name} -->")
        print(table.markdown(), end="\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
