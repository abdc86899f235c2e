"""How many of N users connecting at once through a tcp proxy are served.

    python bench/burst.py                 # frptx (twistd frps + frpc), 1000 users, 3 rounds
    python bench/burst.py --go DIR        # the same against Go frps/frpc from DIR
    python bench/burst.py --users 1000 --rounds 5 --mode mux

Real processes on 127.0.0.1: frps, frpc and ``bench/echo.py``.  Each round
starts them afresh, opens all N connections at once (non-blocking connects from one thread), sends
each a line with its number once it is connected, and counts the users whose
line came back; the others are counted by what happened to them (reset, refused,
timed out).  Bounded: every round ends after ``--timeout`` seconds.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import selectors
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parent))

import procs as P  # noqa: E402


def burst(port: int, users: int, timeout: float) -> dict[str, int]:
    """Open ``users`` connections at once; returns counts of served / reset / refused / timeout / other."""
    sel = selectors.DefaultSelector()
    state: dict[socket.socket, dict[str, object]] = {}
    counts = {"served": 0, "reset": 0, "refused": 0, "timeout": 0, "other": 0}
    for i in range(users):
        s = socket.socket()
        s.setblocking(False)
        rc = s.connect_ex((P.LOOPBACK, port))
        if rc not in (0, errno.EINPROGRESS):
            counts["refused" if rc == errno.ECONNREFUSED else "other"] += 1
            s.close()
            continue
        payload = b"%d\n" % i
        state[s] = {"payload": payload, "got": b"", "sent": False}
        sel.register(s, selectors.EVENT_WRITE)

    def finish(s: socket.socket, outcome: str) -> None:
        counts[outcome] += 1
        sel.unregister(s)
        del state[s]
        s.close()

    deadline = time.monotonic() + timeout
    while state and time.monotonic() < deadline:
        for key, _ in sel.select(max(0.0, deadline - time.monotonic())):
            s = cast(socket.socket, key.fileobj)
            st = state[s]
            try:
                if not st["sent"]:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                    s.send(st["payload"])  # type: ignore[arg-type]
                    st["sent"] = True
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                data = s.recv(64)
                if not data:
                    raise ConnectionResetError(errno.ECONNRESET, "closed before the echo")
                st["got"] = st["got"] + data  # type: ignore[operator]
                if st["got"] == st["payload"]:
                    finish(s, "served")
            except ConnectionResetError:
                finish(s, "reset")
            except ConnectionRefusedError:
                finish(s, "refused")
            except OSError:
                finish(s, "other")
    for s in list(state):
        finish(s, "timeout")
    return counts


def start_go(pm: P.Processes, bindir: Path, echo: int, workdir: Path, mux: bool) -> int:
    bind, remote = P.free_port(), P.free_port()
    frps = (f'bindAddr = "{P.LOOPBACK}"\nbindPort = {bind}\nproxyBindAddr = "{P.LOOPBACK}"\n'
            f'auth.token = "{P.TOKEN}"\ntransport.tcpMux = {str(mux).lower()}\nlog.level = "warn"\n')
    frpc = (f'serverAddr = "{P.LOOPBACK}"\nserverPort = {bind}\nauth.token = "{P.TOKEN}"\n'
            f'transport.tcpMux = {str(mux).lower()}\nlog.level = "warn"\n'
            f'[[proxies]]\nname = "burst"\ntype = "tcp"\nlocalIP = "{P.LOOPBACK}"\nlocalPort = {echo}\n'
            f'remotePort = {remote}\n')
    for name, text in (("frps", frps), ("frpc", frpc)):
        path = workdir / f"go-{name}.toml"
        path.write_text(text)
        proc = pm.start([str(bindir / name), "-c", str(path)], log=workdir / f"go-{name}.log")
        if name == "frps":
            P.wait_port(bind, proc=proc)
    P.wait_echo(remote)
    return remote


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--mode", choices=sorted(P.MODES), default="nomux")
    ap.add_argument("--go", metavar="DIR", help="run Go frps/frpc from DIR instead of frptx")
    args = ap.parse_args(argv)
    P.raise_nofile_limit()
    results = []
    what = f"Go frp ({args.go})" if args.go else "frptx"
    for r in range(args.rounds):
        # a fresh frps/frpc each round: the first burst after start is the one a user meets
        with P.Processes() as pm, tempfile.TemporaryDirectory(prefix="frptx-burst-") as tmp:
            workdir = Path(tmp)
            echo = P.start_echo(pm, workdir)
            if args.go:
                port = start_go(pm, Path(args.go), echo, workdir, P.MODES[args.mode]["tcpMux"])
            else:
                port = P.start_tunnel(pm, args.mode, {"burst": echo}, workdir).remote["burst"]
                P.wait_echo(port)
            counts = burst(port, args.users, args.timeout)
            results.append(counts)
            print(f"{what} {args.mode} round {r + 1}: served {counts['served']}/{args.users} "
                  + " ".join(f"{k}={v}" for k, v in counts.items() if k != "served" and v), flush=True)
    print(json.dumps({"what": what, "mode": args.mode, "users": args.users, "rounds": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
