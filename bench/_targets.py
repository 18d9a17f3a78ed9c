"""The issue 10 targets, each a ratio against its peer measured in the same run.

:func:`targets_table` reads the raw results of one ``python -m bench`` run
(the ``results`` mapping the runner writes to JSON: ``lifecycle``,
``throughput`` and/or ``http`` entries) and returns one table with a row per
target, its worst case, the ratio and whether it is met.  Rows whose inputs
were not measured in this run (a subset run, a skipped peer) are left out,
never filled in from another run, except the warm-start row, which compares
with the committed reference run (``bench/reference/results.json``) when
there is one, as issue 10 asks ("stays where it is or better").

Nothing here measures anything: it only compares what the benchmarks
recorded, so the table can be rebuilt from a saved JSON file
(``python -m bench._targets FILE.json``).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from bench._runner import Table, fmt_ms, fmt_ratio

__all__ = ["targets_table", "REFERENCE"]

#: The committed reference run (the warm-start row compares with it).
REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference",
                         "results.json")

#: Lifecycle kinds and the floor row each is compared with.
_FLOORS = {"tcp": "minimal loop (tcp)", "udp": "minimal loop (udp)",
           "unix": "minimal loop (unix)", "http": "minimal loop (http)",
           "smtp": "minimal loop (smtp)"}

_HTTP_NATIVE = "testservers HTTPServer"
_HTTP_COMPAT = "testservers TestHTTPServer"
_HTTP_PEER = "http.server ThreadingHTTPServer + TCP_NODELAY"
_HTTP_CEILING = "selectors ceiling"
_ECHO_OURS = "testservers TCPServer (on_data, reactor, record=False)"
_ECHO_RECORDING = "testservers TCPServer (on_data, reactor, record=True)"
_ECHO_PEER = "socketserver ThreadingTCPServer"


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def _rows(lc: dict[str, Any], group: str, warm: bool | None = None) -> list[dict[str, Any]]:
    out = []
    for entry in lc.values():
        if entry.get("group") != group or not entry.get("stop", {}).get("n"):
            continue
        is_warm = entry["server"].endswith("(warm)")
        if warm is not None and is_warm != warm:
            continue
        out.append(entry)
    return out


def _label(entry: dict[str, Any]) -> str:
    poll = entry.get("poll_interval")
    return f"{entry['kind']} {entry['server']}" + ("" if poll is None else f" @{poll:g}")


def _lifecycle_rows(lc: dict[str, Any], table: Table, reference: dict[str, Any] | None) -> None:
    floors = {e["kind"]: e for e in _rows(lc, "floor")}
    cold = _rows(lc, "ours", warm=False)
    warm = _rows(lc, "ours", warm=True)
    # Cold start vs CPython's helpers: the same kind and poll_interval, the
    # helper's start measured one cycle at a time (sequential rows) like ours.
    peers = {(e["kind"], e["poll_interval"]): e for e in _rows(lc, "peer")
             if e["server"].startswith("test_logging") and e.get("mode") == "sequential"}
    pairs = [(o, peers[(o["kind"], o["poll_interval"])]) for o in cold
             if (o["kind"], o["poll_interval"]) in peers]
    if pairs:
        o, p = max(pairs, key=lambda op: op[0]["start"]["median"] / op[1]["start"]["median"])
        ratio = o["start"]["median"] / p["start"]["median"]
        table.rows.append([
            "cold start()->ready median <= CPython test_logging helper's (same kind and "
            "poll_interval)", _label(o),
            f"{fmt_ms(o['start']['median'])} (p99 {fmt_ms(o['start']['p99'])}) vs "
            f"{fmt_ms(p['start']['median'])} (p99 {fmt_ms(p['start']['p99'])})",
            fmt_ratio(ratio), _yes(ratio <= 1.0)])
    with_floor = [o for o in cold if o["kind"] in floors]
    if with_floor:
        o = max(with_floor,
                key=lambda e: e["start"]["median"] / floors[e["kind"]]["start"]["median"])
        f = floors[o["kind"]]
        ratio = o["start"]["median"] / f["start"]["median"]
        table.rows.append([
            "cold start()->ready median <= 1.2x the minimal loop's", _label(o),
            f"{fmt_ms(o['start']['median'])} (p99 {fmt_ms(o['start']['p99'])}) vs "
            f"{fmt_ms(f['start']['median'])} (p99 {fmt_ms(f['start']['p99'])})",
            fmt_ratio(ratio), _yes(ratio <= 1.2)])
    if warm:
        o = max(warm, key=lambda e: e["start"]["median"])
        ref_entry = None
        if reference is not None:
            ref_lc = reference.get("results", {}).get("lifecycle", {}).get("data", {})
            ref_entry = ref_lc.get(f"{o['kind']}|{o['server']}|{o['poll_interval']:g}")
        if ref_entry is not None and ref_entry.get("start", {}).get("n"):
            ratio = o["start"]["median"] / ref_entry["start"]["median"]
            table.rows.append([
                "warm start()->ready median no worse than the reference run's", _label(o),
                f"{fmt_ms(o['start']['median'])} (p99 {fmt_ms(o['start']['p99'])}) vs "
                f"{fmt_ms(ref_entry['start']['median'])} (reference)",
                fmt_ratio(ratio), _yes(ratio <= 1.0)])
    stops = [o for o in cold + warm if o["kind"] in floors]
    if stops:
        o = max(stops, key=lambda e: e["stop"]["median"] / floors[e["kind"]]["stop"]["median"])
        f = floors[o["kind"]]
        ratio = o["stop"]["median"] / f["stop"]["median"]
        table.rows.append([
            "stop() median <= 1.3x the minimal loop's (every kind and poll_interval, cold "
            "and warm)", _label(o),
            f"{fmt_ms(o['stop']['median'])} vs {fmt_ms(f['stop']['median'])}",
            fmt_ratio(ratio), _yes(ratio <= 1.3)])
    if cold or warm:
        o = max(cold + warm, key=lambda e: e["stop"]["p99"])
        p99 = o["stop"]["p99"]
        table.rows.append([
            "stop() p99 < 1 ms (every kind and poll_interval, cold and warm)", _label(o),
            f"{fmt_ms(p99)} ms (median {fmt_ms(o['stop']['median'])})", "-",
            _yes(p99 < 1e-3)])


def _http_rows(http: dict[str, Any], table: Table) -> None:
    med = http.get("median") or {}
    runs = http.get("throughput") or {}

    def spread(name: str) -> str:
        v = runs.get(name) or []
        return f"{med[name]:,.0f}/s (min {min(v):,.0f})" if v else f"{med[name]:,.0f}/s"

    tool = http.get("load_tool", "")
    if _HTTP_NATIVE in med and _HTTP_PEER in med:
        ratio = med[_HTTP_NATIVE] / med[_HTTP_PEER]
        table.rows.append([
            f"HTTP keep-alive >= 3x ThreadingHTTPServer + TCP_NODELAY ({tool})", _HTTP_NATIVE,
            f"{spread(_HTTP_NATIVE)} vs {spread(_HTTP_PEER)}", fmt_ratio(ratio), _yes(ratio >= 3)])
    if _HTTP_NATIVE in med and _HTTP_CEILING in med:
        ratio = med[_HTTP_NATIVE] / med[_HTTP_CEILING]
        table.rows.append([
            "HTTP keep-alive >= 0.5x the no-parse selectors ceiling", _HTTP_NATIVE,
            f"{spread(_HTTP_NATIVE)} vs {spread(_HTTP_CEILING)}", fmt_ratio(ratio),
            _yes(ratio >= 0.5)])
    if _HTTP_NATIVE in med and _HTTP_COMPAT in med:
        ratio = med[_HTTP_COMPAT] / med[_HTTP_NATIVE]
        table.rows.append([
            'TestHTTPServer (protocol_version "HTTP/1.1") >= 0.8x the native server',
            _HTTP_COMPAT, f"{spread(_HTTP_COMPAT)} vs {spread(_HTTP_NATIVE)}",
            fmt_ratio(ratio), _yes(ratio >= 0.8)])


def _echo_rows(tcp: dict[str, Any], table: Table) -> None:
    def best(name: str) -> float | None:
        entry = tcp.get(name)
        return None if entry is None else float(entry["best_MB_s"])

    ours, peer, rec = best(_ECHO_OURS), best(_ECHO_PEER), best(_ECHO_RECORDING)
    if ours is not None and peer is not None:
        extra = ""
        if rec is not None:
            extra = f"; record=True {rec:,.0f} MB/s ({fmt_ratio(rec / ours)} of record=False)"
        table.rows.append([
            "reactor-native TCP echo (record=False) >= 1x socketserver's threaded echo",
            _ECHO_OURS, f"{ours:,.0f} vs {peer:,.0f} MB/s{extra}", fmt_ratio(ours / peer),
            _yes(ours >= peer)])


def _find(results: dict[str, Any], *path: str) -> Any:
    node: Any = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def targets_table(results: dict[str, Any], reference: dict[str, Any] | None = None) -> Table:
    """The issue 10 targets table for one run's ``results`` (see the module doc)."""
    if reference is None and os.path.exists(REFERENCE):
        try:
            with open(REFERENCE) as f:
                reference = json.load(f)
        except (OSError, ValueError):
            reference = None
    table = Table("Targets (issue 10): each against its peer, measured in this run",
                  ["target", "worst case", "value (median; p99 where timed)", "ratio", "met"])
    lc = _find(results, "lifecycle", "data")
    if lc:
        _lifecycle_rows(lc, table, reference)
    http = _find(results, "throughput", "data", "http") or _find(results, "http", "data")
    if http:
        _http_rows(http, table)
    tcp = _find(results, "throughput", "data", "tcp")
    if tcp:
        _echo_rows(tcp, table)
    table.notes.append("ratio: ours / the peer's (for start and stop lower is better, for "
                       "throughput higher); the worst case over every kind and poll_interval "
                       "measured is shown")
    table.notes.append("start: CPython's helpers are compared only where their cycles ran one "
                       "at a time (poll_interval 0.001 and 0.01), as ours do")
    return table


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench._targets RESULTS.json", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        doc = json.load(f)
    print(targets_table(doc.get("results", {})).markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
