"""Issue 5's targets and the one markdown table that compares them with a run's figures.

Kept apart from run.py so the targets are in one obvious place to read and edit.
A target is either a minimum ratio to direct (throughput, requests/s) or an
absolute bound on a figure (RSS); rows without a target show "—".
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from procs import MODES

# minimum frptx/direct ratio for iperf3 with one stream (both directions)
IPERF_ONE_STREAM = {"nomux": 0.60, "mux": 0.16, "mux+tls": 0.13, "nomux+tls": 0.35}
# minimum ratio for wrk keep-alive requests/s, by tcpMux (the issue names mux / nomux; TLS modes follow their mux)
KEEPALIVE_BY_MUX = {True: 0.20, False: 0.30}
NEW_CONN_RATIO = 0.10
RSS_IDLE_MIB = 40.0
RSS_PER_CONN_KIB = 25.0
RSS_CYCLES_PCT = 5.0


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
    Metric("wrk_keepalive.frps_cpu_us_per_req", "wrk keep-alive, frps CPU µs/request", "{:.1f}", False),
    Metric("wrk_keepalive.frpc_cpu_us_per_req", "wrk keep-alive, frpc CPU µs/request", "{:.1f}", False),
    Metric("wrk_close.req_s", "wrk new conn/request, req/s", "{:,.0f}"),
    Metric("wrk_close.p50_ms", "wrk new conn/request p50, ms", "{:.2f}", False),
    Metric("wrk_close.p99_ms", "wrk new conn/request p99, ms", "{:.2f}", False),
    Metric("wrk_close.frps_cpu_us_per_req", "wrk new conn/request, frps CPU µs/request", "{:.0f}", False),
    Metric("wrk_close.frpc_cpu_us_per_req", "wrk new conn/request, frpc CPU µs/request", "{:.0f}", False),
    Metric("wrk_vhost_keepalive.req_s", "wrk through the HTTP vhost, keep-alive, req/s", "{:,.0f}"),
    Metric("wrk_vhost_keepalive.p50_ms", "wrk HTTP vhost keep-alive p50, ms", "{:.2f}", False),
    Metric("wrk_vhost_keepalive.p99_ms", "wrk HTTP vhost keep-alive p99, ms", "{:.2f}", False),
    Metric("wrk_vhost_keepalive.frps_cpu_us_per_req", "wrk HTTP vhost keep-alive, frps CPU µs/request", "{:.1f}",
           False),
    Metric("wrk_vhost_keepalive.frpc_cpu_us_per_req", "wrk HTTP vhost keep-alive, frpc CPU µs/request", "{:.1f}",
           False),
    Metric("wrk_vhost_close.req_s", "wrk through the HTTP vhost, new conn/request, req/s", "{:,.0f}"),
    Metric("wrk_vhost_close.p50_ms", "wrk HTTP vhost new conn/request p50, ms", "{:.2f}", False),
    Metric("wrk_vhost_close.p99_ms", "wrk HTTP vhost new conn/request p99, ms", "{:.2f}", False),
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
    """(text, check(value, ratio)) for a row, or None when the issue sets no target for it."""
    def min_ratio(r: float) -> tuple[str, Callable[[float, float | None], bool]]:
        return f"≥ {r:.0%} of direct", lambda v, ratio: ratio is not None and ratio >= r

    if key in ("iperf3_1.gbit_s", "iperf3_1R.gbit_s"):
        return min_ratio(IPERF_ONE_STREAM[mode])
    if key == "wrk_keepalive.req_s":
        return min_ratio(KEEPALIVE_BY_MUX[MODES[mode]["tcpMux"]])
    if key == "wrk_close.req_s":
        return min_ratio(NEW_CONN_RATIO)
    if key.endswith("_idle_mib"):
        return f"≤ {RSS_IDLE_MIB:.0f} MiB", lambda v, _: v <= RSS_IDLE_MIB
    if key.endswith("_per_conn_kib"):
        return f"≤ {RSS_PER_CONN_KIB:.0f} KiB", lambda v, _: v <= RSS_PER_CONN_KIB
    if key.endswith("_cycles_pct"):
        return f"within ±{RSS_CYCLES_PCT:.0f}%", lambda v, _: abs(v) <= RSS_CYCLES_PCT
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten the per-mode results into table rows (also stored in the JSON).

    ``ratio_frp`` is frptx / Go frp, ``ratio`` frptx / direct (what the targets are about); for
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
                    row[side] = entry.get(side, {}).get(figure)
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
                    row["met"] = t[1](row["frptx"], row["ratio"])
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
