"""Markdown from a saved results file: ``python -m bench._report bench/results/X.json``.

Prints the machine line and every table of the run as Markdown (plus the
stop()/start() matrices rebuilt from the lifecycle data), for the README's
"Performance" section.  Reads only the JSON the runner wrote.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from bench._runner import Table


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


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    with open(argv[0]) as f:
        doc = json.load(f)
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
