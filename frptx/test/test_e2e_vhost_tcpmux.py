# -*- test-case-name: frptx.test.test_e2e_vhost_tcpmux -*-
"""tcpmux (httpconnect) proxies end to end on 127.0.0.1: CONNECTs routed on frps's
tcpmuxHTTPConnectPort, then raw; our frps with our frpc, and each against stock Go frp 0.65.0."""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from frptx.server.service import FrpsService
from frptx.test.gofrp import GoFrp, free_port
from frptx.test.support import (
    TOKEN,
    Collector,
    Tunnel,
    connect,
    listen_local,
    mode_cases,
    server_config,
    start_vhost_frps,
    with_timeout,
)
from frptx.vhost.httpconnect import CONNECT_OK, PROXY_AUTH_REQUIRED, not_found_response

WAIT = 20.0


class NamedEcho(Protocol):
    """Echoes with its name in front of the first answer."""

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.first = True

    def dataReceived(self, data: bytes) -> None:
        if self.first:
            self.first = False
            data = self.name + b":" + data
        self.transport.write(data)


class Echoes(Factory):
    def __init__(self, name: str) -> None:
        self.name = name.encode()

    def buildProtocol(self, addr: Any) -> Protocol:
        return NamedEcho(self.name)


def connect_head(host: str, auth: str = "") -> bytes:
    extra = f"Proxy-Authorization: Basic {auth}\r\n" if auth else ""
    return f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n{extra}\r\n".encode()


async def tunnel_through(port: int, head: bytes, payload: bytes) -> bytes:
    """CONNECT, wait for frps's 200, send ``payload``; returns what the backend answered."""
    c = Collector(head)
    await connect(port, c)
    data = await with_timeout(c.received_at_least(len(CONNECT_OK)), WAIT)
    assert data.startswith(CONNECT_OK), data
    c.transport.write(payload)
    data = await with_timeout(c.received_at_least(len(CONNECT_OK) + len(payload) + 2), WAIT)
    c.transport.loseConnection()
    await with_timeout(c.done, WAIT)
    return data[len(CONNECT_OK):]


async def refused(port: int, head: bytes) -> bytes:
    c = Collector(head)
    await connect(port, c)
    return await with_timeout(c.done, WAIT)


def tcpmux_proxy(name: str, port: int, **fields: Any) -> dict[str, Any]:
    doc = {"name": name, "type": "tcpmux", "multiplexer": "httpconnect", "localIP": "127.0.0.1",
           "localPort": port}
    doc.update(fields)
    return doc


def start_frps(testcase: TestCase, tunnel: Tunnel, **extra: Any) -> FrpsService:
    """Our frps with a tcpmuxHTTPConnectPort on a free port (chosen by the kernel: the listener gets 0)."""
    return start_vhost_frps(testcase, tunnel, "tcpmuxHTTPConnectPort", "vhost_tcpmux", **extra)


class OurFrpsOurFrpcMixin:
    mode: dict[str, bool]
    timeout = 60

    async def _setup(self, proxies: list[dict[str, Any]], **server: Any) -> int:
        self.tunnel = Tunnel(self, self.mode)
        frps = start_frps(self, self.tunnel, **server)
        frpc = self.tunnel.start_client(proxies)
        for p in proxies:
            status = await frpc.proxy_manager.wait_settled(p["name"])
            self.assertEqual(status.phase, "running", status.error)
        assert frps.vhost_tcpmux is not None
        return frps.vhost_tcpmux.bound_port

    def test_routing_auth_and_refusals(self) -> Deferred[None]:
        async def run() -> None:
            a, b = listen_local(self, Echoes("a")), listen_local(self, Echoes("b"))
            port = await self._setup([
                tcpmux_proxy("a", a, customDomains=["a.test"]),
                tcpmux_proxy("b", b, customDomains=["a.test"], routeByHTTPUser="bob", httpUser="bob",
                             httpPassword="pw", transport={"useEncryption": True}),
            ])
            self.assertEqual(await tunnel_through(port, connect_head("a.test"), b"ping"), b"a:ping")
            # "bob:pw" in base64
            self.assertEqual(await tunnel_through(port, connect_head("A.test", "Ym9iOnB3"), b"ping"), b"b:ping")
            big = os.urandom(1 << 20)
            self.assertEqual(await tunnel_through(port, connect_head("a.test"), big), b"a:" + big)
            # bob with a wrong password ("bob:no"): frp's 200, then 407, then close
            self.assertEqual(await refused(port, connect_head("a.test", "Ym9iOm5v")), CONNECT_OK + PROXY_AUTH_REQUIRED)
            self.assertEqual(await refused(port, connect_head("nobody.test")), not_found_response())
            self.assertEqual(await refused(port, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"), b"")
            self.assertEqual(await tunnel_through(port, connect_head("a.test"), b"after"), b"a:after")
        return Deferred.fromCoroutine(run())

    def test_passthrough_forwards_the_connect_head(self) -> Deferred[None]:
        async def run() -> None:
            a = listen_local(self, Echoes("a"))
            port = await self._setup([tcpmux_proxy("a", a, customDomains=["a.test"])], tcpmuxPassthrough=True)
            head = connect_head("a.test")
            c = Collector(head)
            await connect(port, c)
            data = await with_timeout(c.received_at_least(len(head) + 2), WAIT)
            self.assertEqual(data, b"a:" + head)
            c.transport.loseConnection()
            await with_timeout(c.done, WAIT)
        return Deferred.fromCoroutine(run())

    def test_refused_without_port(self) -> Deferred[None]:
        async def run() -> None:
            other = Tunnel(self, self.mode)
            other.start_server()
            frpc = other.start_client([tcpmux_proxy("a", 1, customDomains=["a.test"])])
            status = await frpc.proxy_manager.wait_settled("a")
            self.assertEqual(status.error, "tcpmux with multiplexer httpconnect not supported because this "
                                           "feature is not enabled in server")
        return Deferred.fromCoroutine(run())


@dataclasses.dataclass
class _AtPort:
    bound_port: int


class Live(TestCase):
    """Against stock Go frp 0.65.0."""

    timeout = 90

    def test_go_frpc_against_our_frps(self) -> Deferred[None]:
        async def run() -> None:
            go = GoFrp(self)
            a = listen_local(self, Echoes("a"))
            tunnel = Tunnel(self, {"tcp_mux": True, "tls": False})
            frps = start_frps(self, tunnel)
            assert frps.vhost_tcpmux is not None
            config = go.frpc_config(frps.bound_port, TOKEN, True, False,
                                    [tcpmux_proxy("a", a, customDomains=["a.test"], httpUser="u", httpPassword="p")])
            frpc = go.frpc(config)
            await frpc.ready()
            port = frps.vhost_tcpmux.bound_port
            self.assertEqual(await tunnel_through(port, connect_head("a.test", "dTpw"), b"go"), b"a:go")
            self.assertEqual(await refused(port, connect_head("a.test")), CONNECT_OK + PROXY_AUTH_REQUIRED)
        return Deferred.fromCoroutine(run())

    def test_our_frpc_against_go_frps(self) -> Deferred[None]:
        async def run() -> None:
            go = GoFrp(self)
            vport = free_port()
            gofrps = await go.frps(TOKEN, tcpmuxHTTPConnectPort=vport)
            a = listen_local(self, Echoes("a"))
            tunnel = Tunnel(self, {"tcp_mux": True, "tls": False})
            tunnel.frps = _AtPort(gofrps.port)  # type: ignore[assignment]
            frpc = tunnel.start_client([tcpmux_proxy("a", a, customDomains=["a.test"], routeByHTTPUser="u",
                                                     transport={"useCompression": True})])
            status = await frpc.proxy_manager.wait_settled("a")
            self.assertEqual(status.phase, "running", status.error)
            self.assertEqual(await tunnel_through(vport, connect_head("a.test", "dTpw"), b"ours"), b"a:ours")
        return Deferred.fromCoroutine(run())


class Registration(TestCase):
    """What NewProxyResp says for vhost kinds (frps in memory, no sockets)."""

    def setUp(self) -> None:
        from twisted.internet.testing import MemoryReactorClock

        from frptx.server.registry import FrpServer
        from frptx.test.test_protocols_server import FakeClient, login

        cfg = server_config(False, vhostHTTPPort=80, vhostHTTPSPort=8443, tcpmuxHTTPConnectPort=1337,
                            subDomainHost="frp.test")
        self.server = FrpServer(cfg, MemoryReactorClock())
        self.client = FakeClient(self.server)
        self.client.send(login())
        self.client.replies()

    def new_proxy(self, **fields: Any) -> Any:
        from frptx.wire import NewProxy

        self.client.send(NewProxy(**fields))
        [resp] = self.client.replies()
        return resp

    def test_remote_addr_is_frp_canonical(self) -> None:
        r = self.new_proxy(proxy_name="h", proxy_type="http", custom_domains=("a.test",), subdomain="x",
                           locations=("/a", "/b"))
        self.assertEqual((r.error, r.remote_addr), ("", "a.test,a.test,x.frp.test,x.frp.test"))
        r = self.new_proxy(proxy_name="s", proxy_type="https", custom_domains=("a.test",))
        self.assertEqual((r.error, r.remote_addr), ("", "a.test:8443"))
        r = self.new_proxy(proxy_name="m", proxy_type="tcpmux", custom_domains=("a.test",), multiplexer="httpconnect")
        self.assertEqual((r.error, r.remote_addr), ("", "a.test:1337"))

    def test_refusals_use_frps_texts(self) -> None:
        r = self.new_proxy(proxy_name="m", proxy_type="tcpmux", custom_domains=("a.test",), multiplexer="other")
        self.assertEqual(r.error, "unknown multiplexer [other]")
        r = self.new_proxy(proxy_name="h", proxy_type="http", subdomain="a.b")
        self.assertEqual(r.error, "'.' and '*' are not supported in subdomain")
        r = self.new_proxy(proxy_name="h2", proxy_type="http", custom_domains=("y.x.frp.test",))
        self.assertEqual(r.error, "custom domain [y.x.frp.test] should not belong to subdomain host [frp.test]")
        self.assertEqual(sorted(self.server.proxies), [])

    def test_close_frees_the_routes(self) -> None:
        from frptx.wire import CloseProxy

        self.assertEqual(self.new_proxy(proxy_name="a", proxy_type="http", custom_domains=("a.test",)).error, "")
        self.assertEqual(self.new_proxy(proxy_name="b", proxy_type="http", custom_domains=("a.test",)).error,
                         "router config conflict")
        self.client.send(CloseProxy(proxy_name="a"))
        self.assertEqual(self.new_proxy(proxy_name="b", proxy_type="http", custom_domains=("a.test",)).error, "")


mode_cases(OurFrpsOurFrpcMixin, globals(), TestCase)
