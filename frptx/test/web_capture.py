# -*- test-case-name: frptx.test.test_web_golden -*-
"""Capture real Go frp's dashboard / admin API responses as golden fixtures.

Run by hand, not by trial (the file name does not start with C{test_})::

    python -m frptx.test.web_capture /path/to/dir/with/frps-and-frpc

It starts the real frps and two frpc (all on 127.0.0.1, ports picked by the
kernel), pushes some bytes through a TCP proxy, stops one client so that one
proxy is offline, and stores every HTTP exchange (status, the headers that
matter, body) as C{frptx/test/data/captures/web-*.json}.  The web layer's golden
tests compare our answers with these: same keys, types, nesting and status
codes.  Whatever depends on the moment (ports, times, byte counts) is compared
by type only.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "data" / "captures"
HEADERS = ("Content-Type", "WWW-Authenticate", "Location", "Content-Length")


def free_ports(n: int) -> list[int]:
    """Ports the kernel considers free right now (a hand-run tool; races are acceptable here)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def echo_server() -> int:
    """A TCP echo server on a thread: the local service behind the captured proxies."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def serve() -> None:
        while True:
            conn, _ = srv.accept()

            def pump(c: socket.socket = conn) -> None:
                while data := c.recv(65536):
                    c.sendall(data)
                c.close()

            threading.Thread(target=pump, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1]


def request(url: str, method: str = "GET", auth: tuple[str, str] | None = None,
            body: bytes | None = None) -> dict[str, Any]:
    """One exchange, recorded without following redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kw: Any) -> None:
            return None

    req = urllib.request.Request(url, method=method, data=body)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    opener = urllib.request.build_opener(NoRedirect)
    try:
        resp = opener.open(req, timeout=10)
        status, headers, data = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, headers, data = e.code, e.headers, e.read()
    return {
        "method": method,
        "path": url.split("/", 3)[3] if url.count("/") >= 3 else "",
        "status": status,
        "headers": {h: headers[h] for h in HEADERS if headers.get(h) is not None},
        "body": data.decode("utf-8", "replace"),
    }


def wait_for(pred: Any, what: str, timeout: float = 20) -> Any:
    """Poll (a hand-run tool talking to foreign processes: there is no event to wait on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def main(bindir: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="frptx-web-capture-"))
    (bind, vhttp, vhttps, tcpmux, tcp_remote, udp_remote, dash, admin, admin_b, gone_remote) = free_ports(10)
    local = echo_server()
    auth_s, auth_c = ("admin", "secret"), ("cadmin", "csecret")
    (tmp / "frps.toml").write_text(f"""
bindAddr = "127.0.0.1"
bindPort = {bind}
vhostHTTPPort = {vhttp}
vhostHTTPSPort = {vhttps}
tcpmuxHTTPConnectPort = {tcpmux}
subDomainHost = "example.test"
maxPortsPerClient = 10
allowPorts = [{{ single = {tcp_remote} }}, {{ single = {udp_remote} }}, {{ single = {gone_remote} }}, {{ start = 1000, end = 1010 }}]
enablePrometheus = true
auth.token = "tok"
transport.maxPoolCount = 7
transport.heartbeatTimeout = 90
transport.tls.force = true
webServer.addr = "127.0.0.1"
webServer.port = {dash}
webServer.user = "{auth_s[0]}"
webServer.password = "{auth_s[1]}"
""")
    frpc_a = f"""
serverAddr = "127.0.0.1"
serverPort = {bind}
user = "alice"
auth.token = "tok"
loginFailExit = true
webServer.addr = "127.0.0.1"
webServer.port = {admin}
webServer.user = "{auth_c[0]}"
webServer.password = "{auth_c[1]}"

[[proxies]]
name = "ssh"
type = "tcp"
localIP = "127.0.0.1"
localPort = {local}
remotePort = {tcp_remote}

[[proxies]]
name = "dns"
type = "udp"
localIP = "127.0.0.1"
localPort = 5353
remotePort = {udp_remote}

[[proxies]]
name = "web"
type = "http"
localPort = {local}
customDomains = ["a.other.test"]
subdomain = "www"
locations = ["/", "/api"]
hostHeaderRewrite = "internal"

[[proxies]]
name = "secure"
type = "https"
localPort = {local}
subdomain = "s"

[[proxies]]
name = "secret"
type = "stcp"
secretKey = "k"
localPort = {local}

[[proxies]]
name = "p2p"
type = "xtcp"
secretKey = "k"
localPort = {local}

[[proxies]]
name = "mux"
type = "tcpmux"
multiplexer = "httpconnect"
customDomains = ["m.other.test"]
localPort = {local}

[[proxies]]
name = "socks"
type = "tcp"
remotePort = 1001
[proxies.plugin]
type = "socks5"

[[proxies]]
name = "denied"
type = "tcp"
localPort = {local}
remotePort = 2
"""
    (tmp / "frpc-a.toml").write_text(frpc_a)
    (tmp / "frpc-b.toml").write_text(f"""
serverAddr = "127.0.0.1"
serverPort = {bind}
auth.token = "tok"
loginFailExit = true
webServer.addr = "127.0.0.1"
webServer.port = {admin_b}

[[proxies]]
name = "gone"
type = "tcp"
localPort = {local}
remotePort = {gone_remote}
""")
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(args, cwd=tmp, stdout=open(tmp / f"{len(procs)}.log", "wb"), stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    S, C = f"http://127.0.0.1:{dash}", f"http://127.0.0.1:{admin}"
    out: dict[str, Any] = {}
    try:
        start(f"{bindir}/frps", "-c", "frps.toml")
        wait_for(lambda: request(S + "/healthz")["status"] == 200, "frps")
        start(f"{bindir}/frpc", "-c", "frpc-a.toml")
        b = start(f"{bindir}/frpc", "-c", "frpc-b.toml")
        wait_for(lambda: "gone" in request(S + "/api/proxy/tcp", auth=auth_s)["body"]
                 and "alice.ssh" in request(S + "/api/proxy/tcp", auth=auth_s)["body"], "proxies")
        wait_for(lambda: "running" in request(C + "/api/status", auth=auth_c)["body"], "frpc status")
        # traffic through alice.ssh
        with socket.create_connection(("127.0.0.1", tcp_remote)) as s:
            s.sendall(b"x" * 1000)
            got = b""
            while len(got) < 1000:
                got += s.recv(65536)
            held = socket.create_connection(("127.0.0.1", tcp_remote))  # one open connection while capturing
            held.sendall(b"y" * 10)
            held.recv(10)
        b.terminate()
        b.wait()
        wait_for(lambda: '"status":"offline"' in request(S + "/api/proxy/tcp", auth=auth_s)["body"], "offline")

        def cap(name: str, url: str, **kw: Any) -> None:
            out[name] = request(url, **kw)

        cap("healthz", S + "/healthz")
        cap("unauthorized", S + "/api/serverinfo")
        cap("bad_password", S + "/api/serverinfo", auth=("admin", "nope"))
        cap("root", S + "/", auth=auth_s)
        cap("serverinfo", S + "/api/serverinfo", auth=auth_s)
        for t in ("tcp", "udp", "http", "https", "stcp", "xtcp", "tcpmux", "sudp", "nosuchtype"):
            cap(f"proxy_{t}", S + f"/api/proxy/{t}", auth=auth_s)
        cap("proxy_tcp_one", S + "/api/proxy/tcp/alice.ssh", auth=auth_s)
        cap("proxy_tcp_offline", S + "/api/proxy/tcp/gone", auth=auth_s)
        cap("proxy_http_one", S + "/api/proxy/http/alice.web", auth=auth_s)
        cap("proxy_tcp_missing", S + "/api/proxy/tcp/nosuch", auth=auth_s)
        cap("proxy_wrong_type", S + "/api/proxy/udp/alice.ssh", auth=auth_s)
        cap("traffic", S + "/api/traffic/alice.ssh", auth=auth_s)
        cap("traffic_missing", S + "/api/traffic/nosuch", auth=auth_s)
        cap("clients", S + "/api/clients", auth=auth_s)
        cap("method_not_allowed", S + "/api/serverinfo", method="POST", auth=auth_s)
        cap("delete_no_status", S + "/api/proxies", method="DELETE", auth=auth_s)
        cap("metrics", S + "/metrics", auth=auth_s)
        cap("delete_offline", S + "/api/proxies?status=offline", method="DELETE", auth=auth_s)
        cap("proxy_tcp_after_prune", S + "/api/proxy/tcp", auth=auth_s)
        held.close()
        frps_out, out = out, {}

        cap("healthz", C + "/healthz")
        cap("unauthorized", C + "/api/status")
        cap("status", C + "/api/status", auth=auth_c)
        cap("config", C + "/api/config", auth=auth_c)
        cap("put_empty", C + "/api/config", method="PUT", body=b"", auth=auth_c)
        cap("reload", C + "/api/reload", auth=auth_c)
        cap("put_bad", C + "/api/config", method="PUT", body=b"serverPort = 'x'\n[[proxies]\n", auth=auth_c)
        cap("reload_bad", C + "/api/reload", auth=auth_c)
        cap("put_unknown_key", C + "/api/config", method="PUT",
            body=frpc_a.replace('user = "alice"', 'user = "alice"\nnoSuchKey = 1').encode(), auth=auth_c)
        cap("reload_strict", C + "/api/reload?strictConfig=true", auth=auth_c)
        cap("reload_lax", C + "/api/reload?strictConfig=false", auth=auth_c)
        cap("put_invalid", C + "/api/config", method="PUT",
            body=frpc_a.replace('type = "udp"', 'type = "nosuch"').encode(), auth=auth_c)
        cap("reload_invalid", C + "/api/reload", auth=auth_c)
        cap("stop_get", C + "/api/stop", auth=auth_c)
        cap("put_ok", C + "/api/config", method="PUT", body=frpc_a.encode(), auth=auth_c)
        cap("reload_ok", C + "/api/reload", auth=auth_c)
        cap("stop", C + "/api/stop", method="POST", auth=auth_c)
        frpc_out = out
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait()
    for name, data in (("web-frps-0.65.0.json", frps_out), ("web-frpc-0.65.0.json", frpc_out)):
        (OUT / name).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print("wrote", OUT / name, len(data), "exchanges")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("FRPTX_GO_FRP_DIR", "."))
