"""One function per measurement; each takes a port, so the same code measures direct and tunnelled.

Each returns a plain dict of figures (or raises ``MeasureError`` with a short reason),
so run.py can interleave direct and tunnel calls and keep every round in the JSON.
Everything is bounded: a duration or a count, plus a timeout on each client.
"""
from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from pathlib import Path

from procs import LOOPBACK, Processes


class MeasureError(Exception):
    """A measurement could not produce a figure (tool failed, timeout, connection refused)."""


# --- iperf3 -----------------------------------------------------------------------------------------


def iperf3(procs: Processes, binary: str, port: int, seconds: int, streams: int, reverse: bool) -> dict[str, float]:
    """Receiver-side throughput of ``iperf3 -c`` for ``seconds``; control and data connections all use ``port``."""
    args = [binary, "-c", LOOPBACK, "-p", str(port), "-t", str(seconds), "-P", str(streams), "-J",
            "--connect-timeout", "5000"]
    if reverse:
        args.append("-R")
    err = ""
    for attempt in range(2):  # the server answers "busy" for a moment after an aborted test
        status, out = procs.run(args, timeout=seconds + 30)
        try:
            report = json.loads(out[out.index("{"):])
        except ValueError:
            err = out.strip()[-200:] or f"exit {status}"
        else:
            if "error" in report:
                err = str(report["error"])
            else:
                end = report["end"]
                return {"gbit_s": end["sum_received"]["bits_per_second"] / 1e9,
                        "retransmits": float(end.get("sum_sent", {}).get("retransmits", 0))}
        time.sleep(1 + attempt)
    raise MeasureError(f"iperf3: {err}")


# --- wrk --------------------------------------------------------------------------------------------

WRK_SCRIPT = """\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nBENCHJSON {"requests": %d, "duration_us": %d, "p50_us": %.1f, "p99_us": %.1f, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def write_wrk_script(workdir: Path) -> Path:
    """wrk's Lua ``done`` hook prints exact figures as JSON, so nothing parses human units like "1.2ms"."""
    path = workdir / "report.lua"
    path.write_text(WRK_SCRIPT)
    return path


def wrk(procs: Processes, binary: str, script: Path, port: int, seconds: int, close: bool,
        threads: int = 2, connections: int = 10, host: str = "") -> dict[str, float]:
    """Requests/s and p50/p99 latency (ms) of wrk for ``seconds``; ``close`` = a new connection per request.

    ``host`` sends that ``Host`` header (what frps's HTTP virtual hosts route on) instead of wrk's
    default ``127.0.0.1:port``.
    """
    args = [binary, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "5s",
            "-s", str(script)]
    if close:
        args += ["-H", "Connection: close"]
    if host:
        args += ["-H", f"Host: {host}"]
    args.append(f"http://{LOOPBACK}:{port}/index.html")
    status, out = procs.run(args, timeout=seconds + 30)
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise MeasureError(f"wrk: {out.strip()[-200:] or f'exit {status}'}")
    r = json.loads(line[len("BENCHJSON "):])
    errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["status_errors"] + r["timeouts"]
    if r["requests"] == 0:
        raise MeasureError(f"wrk: no request completed ({errors} errors)")
    return {"req_s": r["requests"] / (r["duration_us"] / 1e6), "p50_ms": r["p50_us"] / 1e3,
            "p99_ms": r["p99_us"] / 1e3, "errors": float(errors), "requests": float(r["requests"])}


# --- echo-based: ping-pong, connect/close cycles, held connections ----------------------------------


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (what wrk and most tools report)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ping_pong(port: int, count: int, timeout: float = 60.0) -> dict[str, float]:
    """``count`` sequential 1-byte round trips on one connection; median and p99 in µs."""
    rtts: list[float] = []
    deadline = time.monotonic() + timeout
    with socket.create_connection((LOOPBACK, port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(50):  # warm-up: first bytes may wait for a work connection
            s.sendall(b"p")
            _recv1(s)
        clock = time.perf_counter_ns
        for _ in range(count):
            start = clock()
            s.sendall(b"p")
            _recv1(s)
            rtts.append((clock() - start) / 1e3)
            if time.monotonic() > deadline:
                break
    return {"median_us": statistics.median(rtts), "p99_us": percentile(rtts, 99), "count": float(len(rtts))}


def _recv1(s: socket.socket) -> None:
    if s.recv(1) != b"p":
        raise MeasureError("echo: connection closed")


def connect_cycles(port: int, count: int, workers: int = 8, timeout: float = 300.0) -> int:
    """``count`` times: connect, echo one byte end to end, close; returns how many completed.

    ``workers`` threads share the count: a tunnelled connect takes milliseconds of
    waiting (work connection set-up), so running a few at once keeps 10 000 cycles short.
    """
    deadline = time.monotonic() + timeout
    lock = threading.Lock()
    state = {"left": count, "done": 0}
    errors: list[Exception] = []

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                if state["left"] <= 0 or errors:
                    return
                state["left"] -= 1
            try:
                with socket.create_connection((LOOPBACK, port), timeout=10) as s:
                    s.sendall(b"p")
                    _recv1(s)
            except (OSError, MeasureError) as e:
                with lock:
                    errors.append(e)
                return
            with lock:
                state["done"] += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic() + 15))
    if errors:
        raise MeasureError(f"connect/close cycle {state['done'] + 1}: {errors[0]}")
    return state["done"]


def hold_connections(port: int, count: int, batch: int = 50, timeout: float = 180.0) -> list[socket.socket]:
    """Open ``count`` connections and prove each reaches the echo server; the caller closes them.

    Opened ``batch`` at a time (connect and send on all, then read all echoes): in
    parallel, but never so many waiting at once that frps' userConnTimeout could expire.
    """
    held: list[socket.socket] = []
    deadline = time.monotonic() + timeout
    try:
        while len(held) < count:
            fresh = [socket.create_connection((LOOPBACK, port), timeout=10)
                     for _ in range(min(batch, count - len(held)))]
            held += fresh
            for s in fresh:
                s.sendall(b"p")
            for s in fresh:
                _recv1(s)
            if time.monotonic() > deadline:
                raise MeasureError(f"only {len(held)} of {count} connections within {timeout:.0f} s")
    except BaseException:
        close_all(held)
        raise
    return held


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()
    socks.clear()


def rss_mib(pid: int) -> float:
    """Resident set size of one process (the twistd Python process itself) in MiB."""
    import psutil  # only here: without it run.py skips RSS instead of failing to start

    return psutil.Process(pid).memory_info().rss / (1 << 20)
