"""Live interop with Go frp 0.65.0 for the proxy features of issue 14.

Each test puts a stock Go peer on one side and frptx on the other, so a
difference in what either side sends (StartWorkConn's addresses, NewProxy's
limit fields, the header bytes) shows up as a failed assertion here.
"""
from __future__ import annotations

import time
from typing import Any

from twisted.internet import reactor

from frptx.test.support import EchoFactory, connect, deferLater, listen_local, tcp_proxy, with_timeout
from frptx.test.test_bandwidth_relay import MIN_SECONDS, Sender, SinkFactory
from frptx.test.test_e2e import async_test
from frptx.test.test_e2e_proxy_protocol import HeaderEchoFactory
from frptx.test.test_interop_go import GO_DEFAULT, EchoReader, InteropBase, echo

LOOPBACK = "127.0.0.1"


class ProxyProtocolInterop(InteropBase):
    """``transport.proxyProtocolVersion`` with one side Go, one side frptx."""

    async def user_exchange(self, port: int, service: HeaderEchoFactory, version: int) -> None:
        payload = b"through a stock peer" * 500
        user = EchoReader(payload)  # no half-close: Go's relay would end both directions on it
        await connect(port, user)
        me = user.transport.getHost()
        self.assertEqual(await with_timeout(user.done, 20), payload)
        header = service.headers[-1]
        self.assertEqual((header.version, header.command, header.transport), (version, "PROXY", "tcp"))
        self.assertEqual(header.source, (LOOPBACK, me.port))
        self.assertEqual(header.destination, (LOOPBACK, port))

    @async_test
    async def test_our_frpc_behind_go_frps(self) -> None:
        """Go frps fills StartWorkConn; our frpc writes the header from it."""
        service = HeaderEchoFactory()
        local = listen_local(self, service)
        frps = await self.go_frps(GO_DEFAULT["tcp_mux"])
        frpc, _ = self.our_frpc(frps.port, GO_DEFAULT, [
            tcp_proxy("pp1", local, transport={"proxyProtocolVersion": "v1"}),
            tcp_proxy("pp2", local, transport={"proxyProtocolVersion": "v2"})])
        await self.user_exchange(await self.our_remote_port(frpc, "pp1"), service, 1)
        await self.user_exchange(await self.our_remote_port(frpc, "pp2"), service, 2)
        self.assertEqual(len(service.headers), 2)

    @async_test
    async def test_go_frpc_behind_our_frps(self) -> None:
        """Our frps fills StartWorkConn; Go frpc writes the header from it."""
        service = HeaderEchoFactory()
        local = listen_local(self, service)
        frps = self.our_frps(GO_DEFAULT["tcp_mux"])
        go = await self.go_frpc(frps.bound_port, GO_DEFAULT, [
            tcp_proxy("pp1", local, transport={"proxyProtocolVersion": "v1"}),
            tcp_proxy("pp2", local, transport={"proxyProtocolVersion": "v2"})])
        await self.user_exchange(await go.remote_port("pp1"), service, 1)
        await self.user_exchange(await go.remote_port("pp2"), service, 2)
        self.assertEqual(len(service.headers), 2)



class BandwidthLimitInterop(InteropBase):
    """A server-mode ``bandwidthLimit`` travels in NewProxy: the stock peer's frps/frpc must honour ours.

    Only a lower bound on the elapsed time is asserted (see ``test_bandwidth_relay``).
    """

    async def limited_transfer(self, port: int, sink: SinkFactory) -> None:
        started = time.monotonic()
        user = Sender()
        await connect(port, user)
        finished = await with_timeout(sink.done, 40)
        user.transport.loseConnection()
        self.assertGreaterEqual(finished - started, MIN_SECONDS)

    @async_test
    async def test_go_frpc_server_mode_limit_enforced_by_our_frps(self) -> None:
        sink = SinkFactory()
        local = listen_local(self, sink)
        frps = self.our_frps(GO_DEFAULT["tcp_mux"])
        go = await self.go_frpc(frps.bound_port, GO_DEFAULT, [tcp_proxy(
            "slow", local, transport={"bandwidthLimit": "512KB", "bandwidthLimitMode": "server"})])
        port = await go.remote_port("slow")
        self.assertIsNotNone(frps.server.proxies["slow"].limiter)
        await self.limited_transfer(port, sink)

    @async_test
    async def test_our_frpc_server_mode_limit_enforced_by_go_frps(self) -> None:
        sink = SinkFactory()
        local = listen_local(self, sink)
        frps = await self.go_frps(GO_DEFAULT["tcp_mux"])
        frpc, _ = self.our_frpc(frps.port, GO_DEFAULT, [tcp_proxy(
            "slow", local, transport={"bandwidthLimit": "512KB", "bandwidthLimitMode": "server"})])
        port = await self.our_remote_port(frpc, "slow")
        self.assertIsNone(frpc.proxy_manager.limiter(frpc.proxy_manager.proxies["slow"]))  # frps' job, not ours
        conf = (await self.go_dashboard_proxy(frps, "tcp", "slow"))["conf"]["transport"]
        self.assertEqual((conf.get("bandwidthLimit"), conf.get("bandwidthLimitMode")), ("512KB", "server"))
        await self.limited_transfer(port, sink)

    @async_test
    async def test_our_frpc_client_mode_limit_behind_go_frps(self) -> None:
        sink = SinkFactory()
        local = listen_local(self, sink)
        frps = await self.go_frps(GO_DEFAULT["tcp_mux"])
        frpc, _ = self.our_frpc(frps.port, GO_DEFAULT, [tcp_proxy(
            "slow", local, transport={"bandwidthLimit": "512KB"})])
        await self.limited_transfer(await self.our_remote_port(frpc, "slow"), sink)


class HealthCheckInterop(InteropBase):
    """Our frpc's health check withdraws the proxy from a stock Go frps and registers it again."""

    async def go_status(self, frps: Any, name: str, wanted: str) -> None:
        for _ in range(200):  # bounded: 20 s
            if (await self.go_dashboard_proxy(frps, "tcp", name))["status"] == wanted:
                return
            await deferLater(0.1)
        raise AssertionError(f"Go frps never showed proxy {name} {wanted}")

    @async_test
    async def test_check_failed_closes_the_proxy_on_go_frps(self) -> None:
        listener = reactor.listenTCP(0, EchoFactory(), interface=LOOPBACK)
        local = listener.getHost().port
        frps = await self.go_frps(GO_DEFAULT["tcp_mux"])
        frpc, _ = self.our_frpc(frps.port, GO_DEFAULT, [tcp_proxy("web", local, healthCheck={
            "type": "tcp", "intervalSeconds": 1, "timeoutSeconds": 1, "maxFailed": 1})])
        port = await self.our_remote_port(frpc, "web")
        self.assertEqual(await echo(port, b"up"), b"up")
        await listener.stopListening()
        await self.go_status(frps, "web", "offline")
        self.assertEqual(frpc.proxy_manager.status["web"].phase, "check failed")
        listener = reactor.listenTCP(local, EchoFactory(), interface=LOOPBACK)
        self.addCleanup(listener.stopListening)
        await with_timeout(frpc.proxy_manager.when_running("web"), 20)
        await self.go_status(frps, "web", "online")
        self.assertEqual(await echo(await self.our_remote_port(frpc, "web"), b"back"), b"back")
