"""Live against real Go frp 0.65.0: the reliability defects that concern a stock peer.

The Go binaries come from ``FRPTX_GO_FRP_DIR``; without it these tests skip,
unless ``FRPTX_REQUIRE_GO_FRP=1`` (CI), where that is a failure.  Each Go
process gets a generated TOML config, logs to its stdout, and the tests wait
for the lines frp prints (bounded), never for a fixed time; every process is
killed in the test's cleanup.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol, ProcessProtocol, Protocol
from twisted.python.failure import Failure
from twisted.trial import unittest

from frptx.test.support import TOKEN, EchoFactory, Tunnel, connect, listen_local, tcp_proxy, with_timeout
from frptx.test.test_e2e import async_test, free_port

DIR_ENV = "FRPTX_GO_FRP_DIR"
REQUIRE_ENV = "FRPTX_REQUIRE_GO_FRP"
#: bound on waiting for a line from a Go process
LINE_TIMEOUT = 20.0


def go_binary(name: str) -> str:
    """Path of Go ``frps``/``frpc``; SkipTest without ``FRPTX_GO_FRP_DIR`` (a failure if it is required)."""
    directory = os.environ.get(DIR_ENV, "")
    path = Path(directory) / name
    if directory and path.is_file() and os.access(path, os.X_OK):
        return str(path)
    why = f"{DIR_ENV} is not set" if not directory else f"{path} is missing or not executable"
    message = f"live Go frp test: {why} (a directory with Go frp 0.65.0's frps and frpc)"
    if os.environ.get(REQUIRE_ENV) == "1":
        raise AssertionError(f"{REQUIRE_ENV}=1 but {message}")
    raise unittest.SkipTest(message)


def toml(doc: dict[str, Any]) -> str:
    """frp's config as TOML: nested dicts as dotted keys, ``proxies`` as ``[[proxies]]``."""
    def lines(prefix: str, d: dict[str, Any]) -> list[str]:
        out = []
        for key, value in d.items():
            if isinstance(value, dict):
                out += lines(f"{prefix}{key}.", value)
            else:
                out.append(f"{prefix}{key} = {json.dumps(value)}")  # JSON scalars/strings are valid TOML here
        return out

    body = lines("", {k: v for k, v in doc.items() if k != "proxies"})
    for proxy in doc.get("proxies", []):
        body += ["", "[[proxies]]"] + lines("", proxy)
    return "\n".join(body) + "\n"


class GoProcess(ProcessProtocol):
    """A running Go frps/frpc: its output lines, and Deferreds waiting for one."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self._buffer = b""
        self._waiters: list[tuple[str, Deferred[str]]] = []
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        *complete, self._buffer = (self._buffer + data).split(b"\n")
        for raw in complete:
            line = raw.decode("utf-8", "replace")
            self.lines.append(line)
            still = []
            for text, d in self._waiters:
                if text in line:
                    d.callback(line)
                else:
                    still.append((text, d))
            self._waiters = still

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        waiters, self._waiters = self._waiters, []
        for text, d in waiters:
            d.errback(AssertionError(f"{self.name} exited before printing {text!r}:\n" + "\n".join(self.lines)))
        self.ended.callback(None)

    def wait_for(self, text: str) -> Deferred[str]:
        """The first line (already printed or to come) containing ``text``, within ``LINE_TIMEOUT``."""
        for line in self.lines:
            if text in line:
                d: Deferred[str] = Deferred()
                d.callback(line)
                return d
        d = Deferred()
        self._waiters.append((text, d))

        def timed_out(f: Failure) -> Failure:
            if f.check(Exception) and not f.check(AssertionError):
                raise AssertionError(f"{self.name}: no line {text!r} within {LINE_TIMEOUT:g}s:\n"
                                     + "\n".join(self.lines[-30:]))
            return f

        return d.addTimeout(LINE_TIMEOUT, reactor).addErrback(timed_out)

    def kill(self) -> Deferred[None]:
        if not self.ended.called:
            self.transport.signalProcess("KILL")
        return self.ended


def spawn(testcase: unittest.TestCase, binary: str, config: dict[str, Any]) -> GoProcess:
    """Run Go ``binary -c <config as TOML>``, logging to stdout; killed in cleanup."""
    executable = go_binary(binary)
    config = dict(config, log={"to": "console", "level": "info", "disablePrintColor": True})
    tmp = Path(tempfile.mkdtemp(prefix="frptx-go-"))
    path = tmp / f"{binary}.toml"
    path.write_text(toml(config))
    proc = GoProcess(binary)
    reactor.spawnProcess(proc, executable, [executable, "-c", str(path)], env={"PATH": "/usr/bin:/bin"})
    testcase.addCleanup(lambda: path.unlink(missing_ok=True) or tmp.rmdir())
    testcase.addCleanup(proc.kill)
    return proc


def go_frpc_config(server_port: int, proxies: list[dict[str, Any]], tcp_mux: bool = True) -> dict[str, Any]:
    return {"serverAddr": "127.0.0.1", "serverPort": server_port, "auth": {"token": TOKEN},
            "loginFailExit": True, "transport": {"tcpMux": tcp_mux, "poolCount": 1}, "proxies": proxies}


class _Echoed(Protocol):
    """Sends a payload and fires once as many bytes came back (no half-close: Go frp's
    relay closes both sides at the first EOF, so a half-closing client loses the reply)."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.received = b""
        self.done: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.payload)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= len(self.payload) and not self.done.called:
            self.transport.loseConnection()
            self.done.callback(self.received)

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self.done.called:
            self.done.callback(self.received)


async def echoed(port: int, payload: bytes) -> bytes:
    user = _Echoed(payload)
    await connect(port, user)
    return await with_timeout(user.done, 10)


class _UdpEcho(DatagramProtocol):
    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.transport.write(datagram, addr)


class _UdpClient(DatagramProtocol):
    def __init__(self) -> None:
        self.answer: Deferred[bytes] = Deferred()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if not self.answer.called:
            self.answer.callback(datagram)


class GoFrpcAgainstFrptxFrps(unittest.TestCase):
    timeout = 60

    @async_test
    async def test_remote_port_out_of_range_answered(self) -> None:
        """Go frpc does not check remotePort; frptx's frps answers 'port not allowed' like frps."""
        t = Tunnel(self, {"tcp_mux": True, "tls": False})
        frps = t.start_server()
        local = listen_local(self, EchoFactory())
        go = spawn(self, "frpc", go_frpc_config(frps.bound_port, [
            {"name": "big", "type": "tcp", "localIP": "127.0.0.1", "localPort": local, "remotePort": 70000},
            {"name": "ok", "type": "tcp", "localIP": "127.0.0.1", "localPort": local, "remotePort": 0}]))
        line = await go.wait_for("[big] start error")
        self.assertIn("port not allowed", line)
        await go.wait_for("[ok] start proxy success")
        self.assertEqual(set(frps.server.proxies), {"ok"})

    @async_test
    async def test_udp_proxy_keeps_its_first_work_connection(self) -> None:
        """frpc 0.65.0 drops a StartWorkConn that beats the NewProxyResp; frps must not send one."""
        for tcp_mux in (False, True):
            t = Tunnel(self, {"tcp_mux": tcp_mux, "tls": False})
            frps = t.start_server()
            echo = reactor.listenUDP(0, _UdpEcho(), interface="127.0.0.1")
            self.addCleanup(echo.stopListening)
            go = spawn(self, "frpc", go_frpc_config(frps.bound_port, [
                {"name": "dns", "type": "udp", "localIP": "127.0.0.1", "localPort": echo.getHost().port}],
                tcp_mux=tcp_mux))
            await go.wait_for("[dns] start proxy success")
            proxy = frps.server.proxies["dns"]
            client = _UdpClient()
            port = reactor.listenUDP(0, client, interface="127.0.0.1")
            self.addCleanup(port.stopListening)
            port.write(b"hello", ("127.0.0.1", proxy.remote_port))
            self.assertEqual(await with_timeout(client.answer, 15), b"hello")
            self.assertEqual(proxy.channels_used, 1, f"tcpMux={tcp_mux}: the first work connection was dropped")
            await go.kill()
            await frps.stopService()


class FrptxFrpcAgainstGoFrps(unittest.TestCase):
    timeout = 60

    @async_test
    async def test_refused_proxy_taken_once_the_name_is_free(self) -> None:
        """Go frps refuses a name another client holds; frptx's frpc gets it once that client leaves."""
        bind, remote = free_port(), free_port()
        frps = spawn(self, "frps", {"bindAddr": "127.0.0.1", "bindPort": bind, "proxyBindAddr": "127.0.0.1",
                                    "auth": {"token": TOKEN}, "transport": {"tcpMux": True}})
        await frps.wait_for("frps started successfully")
        other = listen_local(self, EchoFactory())
        holder = spawn(self, "frpc", go_frpc_config(bind, [
            {"name": "web", "type": "tcp", "localIP": "127.0.0.1", "localPort": other, "remotePort": remote}]))
        await holder.wait_for("[web] start proxy success")

        from frptx.client.service import FrpcService
        from frptx.test.support import client_config

        mine = EchoFactory()
        local = listen_local(self, mine)
        frpc = FrpcService(client_config(bind, True, False, [tcp_proxy("web", local, remote)]), reactor)
        frpc.startService()
        self.addCleanup(frpc.stopService)
        status = await with_timeout(frpc.proxy_manager.wait_settled("web"), LINE_TIMEOUT)
        self.assertEqual((status.phase, status.error), ("start error", "proxy [web] already exists"))
        await holder.kill()
        status = await with_timeout(frpc.proxy_manager.when_running("web"), LINE_TIMEOUT)
        self.assertEqual(status.remote_addr, f":{remote}")
        self.assertEqual(await echoed(remote, b"mine now"), b"mine now")
        self.assertEqual(mine.connections, 1)
