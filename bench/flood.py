"""Peers that never read: how much memory does frps keep while they flood it?

    python bench/flood.py [--seconds 10] [--go PATH_TO_GO_FRPS] [--floods yamux_ping,ctl_ping_nomux,ctl_ping_mux]

Starts ``twistd -n frps`` (or Go frps with ``--go``) on 127.0.0.1 and, for each flood, one client
socket that writes as fast as the kernel takes it and never reads:

* ``yamux_ping``: before login, yamux Ping SYN frames (every one asks for a Ping ACK);
* ``yamux_syn``: before login, yamux SYNs (each opens a stream frps must ACK or refuse);
* ``ctl_ping_nomux`` / ``ctl_ping_mux``: after a valid Login, frp Ping messages on the encrypted
  control channel (every one asks for a Pong), without / with tcpMux.

Prints frps's peak RSS during the flood, its RSS once the flooder closed, and the bytes the flooder
got into frps.  Issue 10, item 5 (Go frps: ~29 MiB).
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from frptx.wire import CfbEncryptor, Login, MessageWriter, Ping, derive_key, encode_message, privilege_key  # noqa: E402

TOKEN = "flood-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_frps(go: str | None, tcp_mux: bool, workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cfg = Path(workdir) / f"frps-{port}.toml"
    cfg.write_text(f'bindAddr = "127.0.0.1"\nbindPort = {port}\nauth.token = "{TOKEN}"\n'
                   f'transport.tcpMux = {"true" if tcp_mux else "false"}\nlog.level = "warn"\n')
    log = open(Path(workdir) / f"frps-{port}.log", "w")
    if go:
        cmd = [go, "-c", str(cfg)]
    else:
        twistd = Path(sys.executable).with_name("twistd")
        cmd = [str(twistd) if twistd.exists() else shutil.which("twistd") or "twistd", "-n", "--pidfile=",
               "frps", "--config", str(cfg)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("frps did not start")


def yamux_header(frame_type: int, flags: int, stream: int, length: int) -> bytes:
    return struct.pack(">BBHII", 0, frame_type, flags, stream, length)


def login_bytes(writer: MessageWriter) -> bytes:
    ts = int(time.time())
    return writer.encode(Login(version="0.65.0", os="linux", arch="amd64", privilege_key=privilege_key(TOKEN, ts),
                               timestamp=ts, pool_count=0))


def run_flood(kind: str, port: int, seconds: float, proc: psutil.Process) -> dict[str, float]:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # read nothing, and make it obvious
    mux = kind.endswith("_mux")
    writer = MessageWriter()
    stream_id = 1

    def frame(data: bytes) -> bytes:
        if not mux:
            return data
        return yamux_header(0, 0, stream_id, len(data)) + data

    plain_pings = encode_message(Ping()) * 4096
    next_id = 1
    if kind == "yamux_ping":
        block = b"".join(yamux_header(2, 1, 0, i) for i in range(4096))
    elif kind == "yamux_syn":
        block = b""
    else:
        first = b""
        if mux:
            first += yamux_header(1, 1, stream_id, 0)  # WindowUpdate SYN: open stream 1
        first += frame(login_bytes(writer))
        sock.sendall(first)
        time.sleep(0.5)  # LoginResp is on its way; we never read it
        writer.start_encryption(CfbEncryptor(derive_key(TOKEN)))
    sock.setblocking(False)
    sent = 0
    peak = 0.0
    start = time.monotonic()
    next_sample = start
    pending = b""
    while time.monotonic() - start < seconds:
        if not pending:
            if kind == "yamux_ping":
                pending = block
            elif kind == "yamux_syn":
                pending = b"".join(yamux_header(1, 1, i, 0) for i in range(next_id, next_id + 8192, 2))
                next_id += 8192
            else:
                # One encryption call per 4096 pings keeps the flooder ahead of frps.  Over
                # tcpMux frps grants window as it consumes; a flooder that never reads assumes so.
                pending = frame(writer._encryptor.encrypt(plain_pings))  # type: ignore[union-attr]
        try:
            n = sock.send(pending) if pending else 0
            sent += n
            pending = pending[n:]
        except BlockingIOError:
            time.sleep(0.002)
        except OSError as e:
            closed_after = time.monotonic() - start
            print(f"  ({kind}: frps closed the connection after {closed_after:.1f}s: {e})", flush=True)
            break
        now = time.monotonic()
        if now >= next_sample:
            peak = max(peak, proc.memory_info().rss)
            next_sample = now + 0.25
    peak = max(peak, proc.memory_info().rss)
    sock.close()
    time.sleep(3)
    after = proc.memory_info().rss
    return {"peak_mib": peak / 2**20, "after_close_mib": after / 2**20, "sent_mib": sent / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--go", default=None, help="path of a Go frps binary to measure instead")
    ap.add_argument("--floods", default="yamux_ping,yamux_syn,ctl_ping_nomux,ctl_ping_mux")
    ap.add_argument("--keep", default=None, help="keep frps configs and logs in this directory")
    args = ap.parse_args()
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or tmp
        for kind in args.floods.split(","):
            tcp_mux = kind != "ctl_ping_nomux"
            frps, port = start_frps(args.go, tcp_mux, workdir)
            try:
                p = psutil.Process(frps.pid)
                base = p.memory_info().rss / 2**20
                log_path = Path(workdir) / f"frps-{port}.log"
                log_before = log_path.stat().st_size
                r = run_flood(kind, port, args.seconds, p)
                log_bytes = log_path.stat().st_size - log_before
                who = "go" if args.go else "frptx"
                print(f"{kind:16s} {who:5s} idle {base:6.1f} MiB  peak {r['peak_mib']:7.1f} MiB"
                      f"  after close {r['after_close_mib']:7.1f} MiB  flooder wrote {r['sent_mib']:8.1f} MiB"
                      f"  frps log +{log_bytes / 1024:.0f} KiB",
                      flush=True)
            finally:
                frps.terminate()
                try:
                    frps.wait(10)
                except subprocess.TimeoutExpired:
                    frps.kill()


if __name__ == "__main__":
    main()
