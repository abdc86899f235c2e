"""frptx benchmark: direct loopback vs. real Go frp vs. frptx, per transport mode.

    python bench/run.py              # full run, ~15-20 minutes
    python bench/run.py --quick      # all modes in ~3-4 minutes

For each mode (nomux, mux, mux+tls, nomux+tls) it starts Go frp 0.65.0's ``frps``
and ``frpc`` and frptx's ``twistd -n frps`` and ``twistd -n frpc`` on 127.0.0.1,
from the same TOML configs (token auth, tcp proxies to a local iperf3 server,
nginx and an echo server), then measures direct, through frp and through frptx
back to back (for every measurement in every round) so machine drift hits all
three.  Prints one markdown table (absolute figures, frptx/frp, frptx/direct,
issue 15's target, met or not) and writes the figures as JSON.  Everything it
starts is stopped at the end, also on Ctrl-C or an error.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import measure
import procs as P
import report

DEFAULT_JSON = P.BENCH / "results" / "latest.json"


@dataclass(frozen=True)
class Settings:
    """Durations and counts; ``--quick`` shrinks them so all modes fit in ~3 minutes."""

    duration: int
    rounds: int
    pings: int
    cycles: int
    held: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        base = cls(duration=2, rounds=1, pings=1000, cycles=1000, held=1000) if args.quick else \
            cls(duration=4, rounds=3, pings=5000, cycles=10000, held=1000)
        return cls(duration=args.duration or base.duration, rounds=args.rounds or base.rounds,
                   pings=args.pings or base.pings, cycles=args.cycles or base.cycles, held=args.held or base.held)


@dataclass(frozen=True)
class Measurement:
    """A measurement run once direct and once through the tunnel per round."""

    name: str
    tool: str  # what must be installed ("" = nothing beyond Python)
    service: str  # which proxy it talks to (tunnel.remote key)
    run: Callable[[int], dict[str, float]]  # port -> figures
    direct: str = ""  # the local service measured directly, when not ``service`` (vhost -> nginx itself)


def measurements(s: Settings, tools: dict[str, str], pm: P.Processes, script: Path) -> list[Measurement]:
    ip, wk = tools.get("iperf3", ""), tools.get("wrk", "")
    d = s.duration
    return [
        Measurement("iperf3_1", "iperf3", "iperf", lambda port: measure.iperf3(pm, ip, port, d, 1, False)),
        Measurement("iperf3_1R", "iperf3", "iperf", lambda port: measure.iperf3(pm, ip, port, d, 1, True)),
        Measurement("iperf3_8", "iperf3", "iperf", lambda port: measure.iperf3(pm, ip, port, d, 8, False)),
        Measurement("iperf3_8R", "iperf3", "iperf", lambda port: measure.iperf3(pm, ip, port, d, 8, True)),
        Measurement("wrk_keepalive", "wrk", "http", lambda port: measure.wrk(pm, wk, script, port, d, False)),
        Measurement("wrk_close", "wrk", "http", lambda port: measure.wrk(pm, wk, script, port, d, True)),
        Measurement("wrk_vhost_keepalive", "wrk", "vhost",
                    lambda port: measure.wrk(pm, wk, script, port, d, False, host=P.VHOST_DOMAIN), "http"),
        Measurement("wrk_vhost_close", "wrk", "vhost",
                    lambda port: measure.wrk(pm, wk, script, port, d, True, host=P.VHOST_DOMAIN), "http"),
        Measurement("pingpong", "", "echo", lambda port: measure.ping_pong(port, s.pings)),
    ]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_mode(mode: str, s: Settings, pm: P.Processes, local: dict[str, int], tools: dict[str, str],
             notes: dict[str, str], script: Path, workdir: Path, log_level: str, res: dict[str, Any],
             only: frozenset[str] = frozenset(), frp_dir: Path | None = None, frp_note: str = "") -> None:
    """Start both tunnels for ``mode``, take every measurement into ``res``, stop the tunnels.

    Go frp (when ``frp_dir`` is given) and frptx run side by side from the same configs; each
    measurement goes direct, then through frp, then through frptx, round after round, so drift of
    the shared machine hits all three.  ``res`` belongs to the caller so that an interrupted mode
    still reports what it measured.
    """
    sub = workdir / mode.replace("+", "_")
    tunnels: dict[str, P.Tunnel] = {}
    missing: dict[str, str] = {}
    try:
        for impl in P.IMPLEMENTATIONS:
            if impl == "frp" and frp_dir is None:
                missing[impl] = frp_note or "no Go frp"
                continue
            try:
                tunnels[impl] = P.start_tunnel(pm, mode, local, sub, log_level, impl, frp_dir)
                P.wait_echo(tunnels[impl].remote["echo"])
            except (RuntimeError, OSError) as e:
                if impl == "frptx":
                    raise
                missing[impl] = f"Go frp did not start: {e}"
                log(f"  {missing[impl]}")
        time.sleep(1.0)  # let the pooled work connections and start-up garbage settle
        if wanted(only, "rss"):
            res["rss"] = {impl: {"skipped": why} for impl, why in missing.items()}
            for impl, tunnel in tunnels.items():
                log(f"{mode}: RSS of {impl}")
                res["rss"][impl] = measure_rss(s, tunnel)
        for m in measurements(s, tools, pm, script):
            if not wanted(only, m.name):
                res[m.name] = {"skipped": "not in --only"}
            if m.tool and m.tool not in tools:
                res[m.name] = {"skipped": notes.get(m.tool, f"{m.tool} missing")}
        sides: list[tuple[str, P.Tunnel | None]] = [("direct", None)]
        sides += [(impl, tunnels.get(impl)) for impl in P.IMPLEMENTATIONS]
        for rnd in range(s.rounds):
            for m in measurements(s, tools, pm, script):
                if m.name in res:
                    continue
                entry = res.setdefault(f"_{m.name}", {"direct": [], "frp": [], "frptx": [], "errors": {},
                                                      "missing": dict(missing)})
                for side, via in sides:
                    if side != "direct" and via is None:
                        continue
                    log(f"{mode} round {rnd + 1}/{s.rounds}: {m.name} {side}")
                    try:
                        if via is not None:
                            entry[side].append(with_cpu_cost(via, m.run, via.remote[m.service]))
                        else:
                            entry[side].append(m.run(local[m.direct or m.service]))
                    except (measure.MeasureError, OSError) as e:
                        entry["errors"][side] = str(e)
                        log(f"  failed: {e}")
    finally:
        for key in [k for k in res if k.startswith("_")]:
            res[key[1:]] = summarize(res.pop(key))
        for tunnel in tunnels.values():
            pm.stop(tunnel.frpc)
            pm.stop(tunnel.frps)


def with_cpu_cost(tunnel: P.Tunnel, run: Callable[[int], dict[str, float]], port: int) -> dict[str, float]:
    """``run(port)`` plus the CPU time frps and frpc spent per request (wrk runs), in µs.

    Ratios to direct move by about 10% between runs on a shared machine; CPU per request
    moves far less, which makes it the better before/after figure for one change.  The same
    psutil figures are taken for Go frp's processes.
    """
    procs = _cpu_processes(tunnel)
    before = [sum(p.cpu_times()[:2]) for p in procs]
    result = run(port)
    after = [sum(p.cpu_times()[:2]) for p in procs]
    requests = result.get("requests")
    if procs and requests:
        for name, b, a in zip(("frps", "frpc"), before, after, strict=True):
            result[f"{name}_cpu_us_per_req"] = (a - b) / requests * 1e6
    return result


def _cpu_processes(tunnel: P.Tunnel) -> list[Any]:
    try:
        import psutil
    except ImportError:
        return []
    try:
        return [psutil.Process(tunnel.frps.pid), psutil.Process(tunnel.frpc.pid)]
    except psutil.Error:
        return []


def wanted(only: frozenset[str], name: str) -> bool:
    """``--only`` selects measurements by name; empty means all of them."""
    return not only or name in only


def summarize(entry: dict[str, Any]) -> dict[str, Any]:
    """Median over rounds per figure, keeping every round for the JSON."""
    sides = ("direct", *P.IMPLEMENTATIONS)
    out: dict[str, Any] = {"rounds": {side: entry[side] for side in sides}}
    for side in sides:
        if entry[side]:
            out[side] = {f: statistics.median(r[f] for r in entry[side]) for f in entry[side][0]}
    if entry["errors"]:
        out["errors"] = entry["errors"]
    if entry["missing"]:
        out["missing"] = entry["missing"]
    return out


def measure_rss(s: Settings, tunnel: P.Tunnel) -> dict[str, Any]:
    """Idle RSS, RSS per held connection, and RSS drift over connect/close cycles, for frps and frpc."""
    if importlib.util.find_spec("psutil") is None:  # a test extra of frptx, not a runtime dependency
        return {"skipped": "psutil not installed (pip install psutil)"}
    pids = {"frps": tunnel.frps.pid, "frpc": tunnel.frpc.pid}

    def rss() -> dict[str, float]:
        return {name: measure.rss_mib(pid) for name, pid in pids.items()}

    out: dict[str, Any] = {}
    idle = rss()
    for name in pids:
        out[f"{name}_idle_mib"] = idle[name]
    port = tunnel.remote["echo"]
    try:
        log(f"connect/close cycles: warm-up 200, then {s.cycles}")
        measure.connect_cycles(port, 200)
        time.sleep(0.5)
        before = rss()
        started = time.monotonic()
        done = measure.connect_cycles(port, s.cycles)
        out["cycles"] = done
        out["cycles_s"] = time.monotonic() - started
        time.sleep(1.0)  # let closes propagate through frps and frpc
        after = rss()
        for name in pids:
            out[f"{name}_cycles_before_mib"] = before[name]
            out[f"{name}_cycles_after_mib"] = after[name]
            out[f"{name}_cycles_pct"] = (after[name] - before[name]) / before[name] * 100
        log(f"holding {s.held} connections")
        before = rss()
        held = measure.hold_connections(port, s.held)
        try:
            time.sleep(0.5)
            during = rss()
        finally:
            measure.close_all(held)
        for name in pids:
            out[f"{name}_held_before_mib"] = before[name]
            out[f"{name}_held_mib"] = during[name]
            out[f"{name}_per_conn_kib"] = (during[name] - before[name]) * 1024 / s.held
        out["held"] = s.held
        time.sleep(1.0)
    except (measure.MeasureError, OSError) as e:
        out["error"] = f"{type(e).__name__}: {e}"
        log(f"  RSS measurement failed: {out['error']}")
    return out


def machine() -> dict[str, Any]:
    """What the run ran on, for the JSON and the table's header."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"host": platform.node(), "cpu": cpu, "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short durations, one round, fewer cycles (~3 min)")
    p.add_argument("--modes", default=",".join(P.MODES), help="comma-separated subset of " + ", ".join(P.MODES))
    p.add_argument("--duration", type=int, default=0, help="seconds per iperf3/wrk run (quick 2, full 4)")
    p.add_argument("--rounds", type=int, default=0, help="interleaved rounds; medians are reported (quick 1, full 3)")
    p.add_argument("--pings", type=int, default=0, help="1-byte round trips per ping-pong (quick 1000, full 5000)")
    p.add_argument("--cycles", type=int, default=0, help="connect/close cycles for RSS drift (quick 1000, full 10000)")
    p.add_argument("--held", type=int, default=0, help="connections held for RSS per connection (1000)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"results file (default {DEFAULT_JSON})")
    p.add_argument("--keep", type=Path, help="directory for configs and logs, kept after the run")
    p.add_argument("--only", default="", help="comma-separated measurements to run (e.g. wrk_keepalive,rss); "
                   "default all")
    p.add_argument("--no-install", action="store_true", help="never apt-get install iperf3/wrk/nginx")
    p.add_argument("--log-level", default="warn", help="frps/frpc log.level (default warn)")
    p.add_argument("--frp", type=Path, metavar="DIR", help="Go frp's frps and frpc (default: what "
                   ".ci/fetch-go-frp provides)")
    p.add_argument("--no-frp", action="store_true", help="measure frptx and direct only")
    args = p.parse_args(argv)
    unknown = set(args.modes.split(",")) - set(P.MODES)
    if unknown:
        p.error(f"unknown mode(s) {', '.join(sorted(unknown))}; choose from {', '.join(P.MODES)}")
    return args


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM takes the same path as Ctrl-C: finish cleanly, stop every child, report what was measured."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    s = Settings.from_args(args)
    signal.signal(signal.SIGTERM, _interrupt)
    nofile = P.raise_nofile_limit()
    started = time.monotonic()
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": vars(s) | {"modes": args.modes.split(","), "quick": args.quick},
        "machine": machine() | {"nofile": nofile},
        "notes": [], "modes": {},
    }
    with tempfile.TemporaryDirectory(prefix="frptx-bench-") as scratch, P.Processes() as pm:
        workdir = (args.keep or Path(scratch)).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        tools, notes = P.ensure_tools(not args.no_install, workdir / "apt.log")
        frp_dir, frp_note = (None, "--no-frp") if args.no_frp else P.find_go_frp(args.frp, workdir / "fetch-go-frp.log")
        results["tools"] = tools | ({"frp": str(frp_dir)} if frp_dir else {})
        if frp_note:
            results["notes"].append(frp_note)
        results["notes"] += list(notes.values())
        if nofile < 4 * s.held + 256:
            results["notes"].append(f"RLIMIT_NOFILE is only {nofile}; holding {s.held} connections may fail")
        local = {"echo": P.start_echo(pm, workdir)}
        if "iperf3" in tools:
            local["iperf"] = P.start_iperf3(pm, tools["iperf3"], workdir)
        if "nginx" in tools:
            try:
                local["http"] = P.start_nginx(pm, tools["nginx"], workdir)
            except RuntimeError as e:
                notes["wrk"] = f"nginx did not start: {e}"
                results["notes"].append(notes["wrk"])
                tools.pop("wrk", None)
        if "wrk" in tools and "http" not in local:
            notes.setdefault("wrk", notes.get("nginx", "nginx missing"))
            tools.pop("wrk")
        script = measure.write_wrk_script(workdir)
        try:
            for mode in args.modes.split(","):
                log(f"mode {mode}")
                res: dict[str, Any] = {}
                results["modes"][mode] = res
                try:
                    run_mode(mode, s, pm, local, tools, notes, script, workdir, args.log_level, res,
                             frozenset(filter(None, args.only.split(","))), frp_dir, frp_note)
                except (RuntimeError, OSError) as e:
                    log(f"mode {mode} failed: {e}")
                    for m in ("rss", "iperf3_1", "iperf3_1R", "iperf3_8", "iperf3_8R", "wrk_keepalive",
                              "wrk_close", "wrk_vhost_keepalive", "wrk_vhost_close", "pingpong"):
                        res.setdefault(m, {"error": f"tunnel: {e}"})
        except KeyboardInterrupt:
            log("interrupted: stopping everything, reporting what was measured")
            results["notes"].append("interrupted before the end")
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    table = report.rows(results)
    results["table"] = table
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    print(f"frptx bench, {results['date']}, {'quick' if args.quick else 'full'}: {s.rounds} round(s) of "
          f"{s.duration} s, {s.pings} pings, {s.cycles} cycles, {s.held} held; medians of rounds; "
          f"{results['elapsed_s']:.0f} s in all")
    m = results["machine"]
    print(f"machine: {m['cpu']}, {m['cpus']} CPUs, {m['platform']}, Python {m['python']}; Go frp: "
          f"{results['tools'].get('frp', 'none')}\n")
    print(report.summary(table))
    print()
    print(report.markdown(table))
    for note in results["notes"]:
        print(f"\nnote: {note}")
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
