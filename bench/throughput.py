"""Single-stream throughput through frptx vs. direct loopback, per transport mode.

A first, dependency-free benchmark (the full iperf3/wrk harness is issue 5): it
starts real ``twistd frps``/``twistd frpc`` processes on 127.0.0.1 for each mode,
a sink that discards what it reads, and pushes ``--mib`` MiB from a client,
interleaving direct and tunnelled runs so machine drift hits both.  Prints a
markdown table of MiB/s and the ratio to direct; everything it starts is stopped.

    python bench/throughput.py --mib 256 --rounds 3
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
MODES = {
    "nomux": {"tcpMux": False, "tls": False},
    "mux": {"tcpMux": True, "tls": False},
    "mux+tls": {"tcpMux": True, "tls": True},
    "nomux+tls": {"tcpMux": False, "tls": True},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """A TCP server on 127.0.0.1 that reads and discards, in a thread."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    @staticmethod
    def _drain(conn: socket.socket) -> None:
        buf = bytearray(1 << 20)
        with conn:
            while conn.recv_into(buf):
                pass
            conn.sendall(b"k")  # tell the sender everything arrived


def push(port: int, mib: int) -> float:
    """Seconds to send ``mib`` MiB to port and have the sink confirm it read them all."""
    chunk = b"\x5a" * (1 << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        start = time.perf_counter()
        for _ in range(mib):
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        if s.recv(1) != b"k":
            raise RuntimeError("sink did not confirm")
        return time.perf_counter() - start


def twistd() -> str:
    return str(Path(sys.executable).with_name("twistd"))


def start_tunnel(mode: dict[str, bool], sink_port: int, workdir: str) -> tuple[list[subprocess.Popen[bytes]], int]:
    bind, remote = free_port(), free_port()
    frps = {"bindAddr": "127.0.0.1", "bindPort": bind, "proxyBindAddr": "127.0.0.1", "auth": {"token": "bench"},
            "transport": {"tcpMux": mode["tcpMux"]}, "log": {"level": os.environ.get("FRPTX_BENCH_LOG", "warn")}}
    frpc = {"serverAddr": "127.0.0.1", "serverPort": bind, "auth": {"token": "bench"},
            "transport": {"tcpMux": mode["tcpMux"], "tls": {"enable": mode["tls"]}}, "log": {"level": os.environ.get("FRPTX_BENCH_LOG", "warn")},
            "proxies": [{"name": "sink", "type": "tcp", "localPort": sink_port, "remotePort": remote}]}
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = []
    os.makedirs(workdir, exist_ok=True)
    for name, cfg in (("frps", frps), ("frpc", frpc)):
        path = os.path.join(workdir, f"{name}.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f)
        procs.append(subprocess.Popen([twistd(), "-n", "--pidfile=", "--logfile", path + ".log", name, "--config",
                                       path], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if name == "frps":
            _wait_port(bind)
    _wait_port(remote)
    time.sleep(0.3)  # let the pooled work connection arrive
    return procs, remote


def _wait_port(port: int, seconds: float = 20) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} never opened")


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default="")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ", ".join(MODES))
    parser.add_argument("--keep", default="", help="directory for configs and logs (kept after the run)")
    args = parser.parse_args()
    sink = Sink()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.keep or scratch
        os.makedirs(workdir, exist_ok=True)
        for name in args.modes.split(","):
            mode = MODES[name]
            print(f"mode {name} ...", file=sys.stderr, flush=True)
            procs, remote = start_tunnel(mode, sink.port, os.path.join(workdir, name.replace("+", "_")))
            try:
                direct, tunnel = [], []
                for _ in range(args.rounds):
                    direct.append(args.mib / push(sink.port, args.mib))
                    tunnel.append(args.mib / push(remote, args.mib))
                best_d, best_t = max(direct), max(tunnel)
                results[name] = {"direct_mib_s": best_d, "tunnel_mib_s": best_t, "ratio": best_t / best_d}
            finally:
                stop(procs)
    print("| mode | direct MiB/s | frptx MiB/s | ratio |\n|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['direct_mib_s']:.0f} | {r['tunnel_mib_s']:.0f} | {r['ratio']:.0%} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
