"""Live against real Go frp 0.65.0: the reliability defects that concern a stock peer.

The Go binaries come from ``FRPTX_GO_FRP_DIR``; without it these tests skip,
unless ``FRPTX_REQUIRE_GO_FRP=1`` (CI), where that is a failure.  Each Go
process gets a generated TOML config, logs to its stdout, and the tests wait
for the lines frp prints (bounded), never for a fixed time; every process is
killed in the test's cleanup.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol, Protocol
from twisted.python.failure import Failure
from twisted.trial import unittest

from frptx.test.gofrp import READY_TIMEOUT, ChildProcess, GoFrp
from frptx.test.support import TOKEN, EchoFactory, Tunnel, connect, listen_local, tcp_proxy, with_timeout
from frptx.test.test_e2e import async_test, free_port


def spawn(testcase: unittest.TestCase, binary: str, config: dict[str, Any]) -> ChildProcess:
    """Run Go ``binary`` with ``config`` (as TOML, logging to stdout); killed in cleanup."""
    return GoFrp(testcase).spawn(binary, config)


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
        status = await with_timeout(frpc.proxy_manager.wait_settled("web"), READY_TIMEOUT)
        self.assertEqual((status.phase, status.error), ("start error", "proxy [web] already exists"))
        await holder.kill()
        status = await with_timeout(frpc.proxy_manager.when_running("web"), READY_TIMEOUT)
        self.assertEqual(status.remote_addr, f":{remote}")
        self.assertEqual(await echoed(remote, b"mine now"), b"mine now")
        self.assertEqual(mine.connections, 1)
