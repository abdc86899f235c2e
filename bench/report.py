"""Issue 15's targets and the one markdown table that compares them with a run's figures.

Kept apart from run.py so the targets are in one obvious place to read and edit.
Issue 15 measures frptx against Go frp in the same run: every throughput and request
rate at least frp's, CPU per request (frps + frpc) and memory per held connection at
most frp's, idle RSS at most 48 MiB per process; the RSS drift after connect/close
cycles keeps issue 5's bound.  Rows without a target (latencies, the per-process CPU
split) show "—".
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RSS_IDLE_MIB = 48.0
RSS_CYCLES_PCT = 5.0
#: a figure per request: frps + frpc (the issue's CPU target is about the pair)
CPU_TOTAL = "cpu_us_per_req"


@dataclass(frozen=True)
class Metric:
    """One table row kind: where its figure lives in a mode's results and how to print it."""

    key: str  # "<measurement>.<figure>", e.g. "iperf3_1.gbit_s" or "rss.frps_idle_mib"
    label: str
    fmt: str
    higher_is_better: bool = True


METRICS = [
    Metric("iperf3_1.gbit_s", "iperf3 1 stream, Gbit/s", "{:.2f}"),
    Metric("iperf3_1R.gbit_s", "iperf3 1 stream -R, Gbit/s", "{:.2f}"),
    Metric("iperf3_8.gbit_s", "iperf3 8 streams, Gbit/s", "{:.2f}"),
    Metric("iperf3_8R.gbit_s", "iperf3 8 streams -R, Gbit/s", "{:.2f}"),
    Metric("wrk_keepalive.req_s", "wrk keep-alive, req/s", "{:,.0f}"),
    Metric("wrk_keepalive.p50_ms", "wrk keep-alive p50, ms", "{:.2f}", False),
    Metric("wrk_keepalive.p99_ms", "wrk keep-alive p99, ms", "{:.2f}", False),
    Metric("wrk_keepalive.cpu_us_per_req", "wrk keep-alive, CPU µs/request frps+frpc", "{:.1f}", False),
    Metric("wrk_keepalive.frps_cpu_us_per_req", "wrk keep-alive, frps CPU µs/request", "{:.1f}", False),
    Metric("wrk_keepalive.frpc_cpu_us_per_req", "wrk keep-alive, frpc CPU µs/request", "{:.1f}", False),
    Metric("wrk_close.req_s", "wrk new conn/request, req/s", "{:,.0f}"),
    Metric("wrk_close.p50_ms", "wrk new conn/request p50, ms", "{:.2f}", False),
    Metric("wrk_close.p99_ms", "wrk new conn/request p99, ms", "{:.2f}", False),
    Metric("wrk_close.cpu_us_per_req", "wrk new conn/request, CPU µs/request frps+frpc", "{:.0f}", False),
    Metric("wrk_close.frps_cpu_us_per_req", "wrk new conn/request, frps CPU µs/request", "{:.0f}", False),
    Metric("wrk_close.frpc_cpu_us_per_req", "wrk new conn/request, frpc CPU µs/request", "{:.0f}", False),
    Metric("wrk_vhost_keepalive.req_s", "wrk through the HTTP vhost, keep-alive, req/s", "{:,.0f}"),
    Metric("wrk_vhost_keepalive.p50_ms", "wrk HTTP vhost keep-alive p50, ms", "{:.2f}", False),
    Metric("wrk_vhost_keepalive.p99_ms", "wrk HTTP vhost keep-alive p99, ms", "{:.2f}", False),
    Metric("wrk_vhost_keepalive.cpu_us_per_req", "wrk HTTP vhost keep-alive, CPU µs/request frps+frpc", "{:.1f}",
           False),
    Metric("wrk_vhost_keepalive.frps_cpu_us_per_req", "wrk HTTP vhost keep-alive, frps CPU µs/request", "{:.1f}",
           False),
    Metric("wrk_vhost_keepalive.frpc_cpu_us_per_req", "wrk HTTP vhost keep-alive, frpc CPU µs/request", "{:.1f}",
           False),
    Metric("wrk_vhost_close.req_s", "wrk through the HTTP vhost, new conn/request, req/s", "{:,.0f}"),
    Metric("wrk_vhost_close.p50_ms", "wrk HTTP vhost new conn/request p50, ms", "{:.2f}", False),
    Metric("wrk_vhost_close.p99_ms", "wrk HTTP vhost new conn/request p99, ms", "{:.2f}", False),
    Metric("wrk_vhost_close.cpu_us_per_req", "wrk HTTP vhost new conn/request, CPU µs/request frps+frpc",
           "{:.0f}", False),
    Metric("wrk_vhost_close.frps_cpu_us_per_req", "wrk HTTP vhost new conn/request, frps CPU µs/request", "{:.0f}",
           False),
    Metric("wrk_vhost_close.frpc_cpu_us_per_req", "wrk HTTP vhost new conn/request, frpc CPU µs/request", "{:.0f}",
           False),
    Metric("pingpong.median_us", "1-byte ping-pong median, µs", "{:,.0f}", False),
    Metric("pingpong.p99_us", "1-byte ping-pong p99, µs", "{:,.0f}", False),
    Metric("rss.frps_idle_mib", "RSS frps idle, MiB", "{:.1f}", False),
    Metric("rss.frpc_idle_mib", "RSS frpc idle, MiB", "{:.1f}", False),
    Metric("rss.frps_per_conn_kib", "RSS frps per held conn, KiB", "{:.1f}", False),
    Metric("rss.frpc_per_conn_kib", "RSS frpc per held conn, KiB", "{:.1f}", False),
    Metric("rss.frps_cycles_pct", "RSS frps after cycles, Δ%", "{:+.1f}", False),
    Metric("rss.frpc_cycles_pct", "RSS frpc after cycles, Δ%", "{:+.1f}", False),
]


def target(mode: str, key: str) -> tuple[str, Callable[[float, float | None], bool]] | None:
    """(text, check(value, frptx/frp ratio)) for a row, or None when issue 15 sets no target for it."""
    figure = key.split(".")[1]
    if figure in ("gbit_s", "req_s"):
        return "≥ frp", lambda v, ratio: ratio is not None and ratio >= 1.0
    if figure == CPU_TOTAL or figure.endswith("_per_conn_kib"):
        return "≤ frp", lambda v, ratio: ratio is not None and ratio <= 1.0
    if figure.endswith("_idle_mib"):
        return f"≤ {RSS_IDLE_MIB:.0f} MiB", lambda v, _: v <= RSS_IDLE_MIB
    if figure.endswith("_cycles_pct"):
        return f"within ±{RSS_CYCLES_PCT:.0f}%", lambda v, _: abs(v) <= RSS_CYCLES_PCT
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten the per-mode results into table rows (also stored in the JSON).

    ``ratio_frp`` is frptx / Go frp (what the targets are about), ``ratio`` frptx / direct; for
    latency and cost rows larger is worse.  A row whose figure is a change in percent has no ratio.
    """
    out = []
    for mode, res in results["modes"].items():
        for m in METRICS:
            measurement, figure = m.key.split(".")
            row: dict[str, Any] = {"mode": mode, "key": m.key, "label": m.label, "direct": None, "frp": None,
                                   "frptx": None, "ratio_frp": None, "ratio": None, "target": None, "met": None,
                                   "note": None, "frp_note": None}
            entry = res.get(measurement, {})
            if measurement == "rss" and "rss" not in res or entry.get("skipped") == "not in --only":
                continue  # left out with --only
            if "skipped" in entry or "error" in entry:
                row["note"] = row["frp_note"] = entry.get("skipped") or entry.get("error")
            if measurement == "rss":
                for impl in ("frp", "frptx"):
                    sub = entry.get(impl, {})
                    row[impl] = sub.get(figure)
                    if row[impl] is None and ("skipped" in sub or "error" in sub):
                        row["frp_note" if impl == "frp" else "note"] = sub.get("skipped") or sub.get("error")
            else:
                for side in ("direct", "frp", "frptx"):
                    got = entry.get(side, {})
                    if figure == CPU_TOTAL:
                        parts = [got.get(f"{p}_{CPU_TOTAL}") for p in ("frps", "frpc")]
                        row[side] = None if None in parts else sum(parts)
                    else:
                        row[side] = got.get(figure)
                errs = entry.get("errors", {})
                for impl, key in (("frp", "frp_note"), ("frptx", "note")):
                    if row[impl] is None and impl in errs:
                        row[key] = f"{impl}: {errs[impl]}"
                    elif row[impl] is None and impl in entry.get("missing", {}):
                        row[key] = entry["missing"][impl]
                if row["frptx"] is None and "direct" in errs and not row["note"]:
                    row["note"] = f"direct: {errs['direct']}"
                row["ratio"] = _ratio(row["frptx"], row["direct"])
            if not figure.endswith("_pct"):
                row["ratio_frp"] = _ratio(row["frptx"], row["frp"])
            t = target(mode, m.key)
            if t is not None:
                row["target"] = t[0]
                if row["frptx"] is not None:
                    row["met"] = t[1](row["frptx"], row["ratio_frp"])
            out.append(row)
    return out


def _pct(r: float | None) -> str:
    return "—" if r is None else f"{r:.1%}" if r < 2 else f"{r:.1f}×"


def markdown(table: list[dict[str, Any]]) -> str:
    """The table: direct is the ceiling, then Go frp, frptx, frptx/frp and frptx/direct."""
    fmts = {m.key: m.fmt for m in METRICS}
    lines = ["| mode | measurement | direct | frp | frptx | frptx/frp | frptx/direct | target | met |",
             "|---|---|---:|---:|---:|---:|---:|---|---|"]
    for r in table:
        fmt = fmts[r["key"]]
        direct = "—" if r["direct"] is None else fmt.format(r["direct"])
        cells = []
        for impl, note in (("frp", r["frp_note"]), ("frptx", r["note"])):
            if r[impl] is None:
                cells.append(f"n/a: {note}" if note else "n/a")
            else:
                cells.append(fmt.format(r[impl]))
        met = "—" if r["met"] is None else ("met" if r["met"] else "**not met**")
        lines.append(f"| {r['mode']} | {r['label']} | {direct} | {cells[0]} | {cells[1]} | {_pct(r['ratio_frp'])} "
                     f"| {_pct(r['ratio'])} | {r['target'] or '—'} | {met} |")
    return "\n".join(lines)


def summary(table: list[dict[str, Any]]) -> str:
    """One row per measurement, one column per mode: frptx / frp first, frptx / direct second,
    bold where issue 15's target is not met (the README's table)."""
    modes = list(dict.fromkeys(r["mode"] for r in table))
    by_key: dict[str, dict[str, dict[str, Any]]] = {}
    for r in table:
        by_key.setdefault(r["key"], {})[r["mode"]] = r
    lines = ["| frptx / frp · frptx / direct | " + " | ".join(modes) + " |",
             "|---|" + "---|" * len(modes)]
    for m in METRICS:
        rows = by_key.get(m.key)
        if not rows:
            continue
        cells = []
        for mode in modes:
            row = rows.get(mode)
            if row is None or row["frptx"] is None:
                cells.append("n/a")
                continue
            r = row
            if m.key.split(".")[1].endswith("_pct"):
                text = f"{m.fmt.format(r['frptx'])} (frp {m.fmt.format(r['frp'])})" if r["frp"] is not None \
                    else m.fmt.format(r["frptx"])
            else:
                text = _pct(r["ratio_frp"])
                if r["ratio"] is not None:
                    text += f" · {_pct(r['ratio'])}"
                if m.key.endswith("_idle_mib"):
                    text = f"{r['frptx']:.1f} MiB ({text})"
            cells.append(f"**{text}**" if r["met"] is False else text)
        lines.append(f"| {m.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    import json
    import sys

    results = json.loads(open(sys.argv[1], encoding="utf-8").read())
    table = rows(results)  # judged by the targets above, whatever the run stored
    print(summary(table) if "--summary" in sys.argv else markdown(table))
