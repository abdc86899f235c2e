"""vhostHTTPPort and vhostHTTPSPort equal to bindPort: one port for frp, HTTP and HTTPS, as frp allows.

The bind port's first-bytes dispatcher hands an HTTP request line to the HTTP vhost and a
ClientHello naming an https proxy's domain to the HTTPS vhost; everything else (frpc's own
plain, yamux, 0x17 or raw TLS traffic) stays frps'.  Every transport mode, so frpc's own raw
TLS shares the port with the HTTPS vhost.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from frptx.factories.server import BindPortTimeouts
from frptx.server.service import FrpsService
from frptx.test.support import (
    Collector,
    EchoFactory,
    Tunnel,
    async_test,
    connect,
    free_port,
    listen_local,
    mode_cases,
    server_config,
    tcp_proxy,
    with_timeout,
)
from frptx.test.test_e2e_vhost_http import Backends, HeadEcho, exchange, get, http_proxy
from frptx.test.test_e2e_vhost_https import https_proxy, tls_backend, tls_exchange


class SharedPortMixin:
    mode: dict[str, bool]
    timeout = 60

    @async_test
    async def test_frp_http_and_https_on_one_port(self) -> None:
        port = free_port()
        t = Tunnel(self, self.mode)
        cfg = dataclasses.replace(server_config(self.mode["tcp_mux"], vhostHTTPPort=port, vhostHTTPSPort=port),
                                  bind_port=port)
        frps = FrpsService(cfg, reactor, timeouts=BindPortTimeouts())
        frps.startService()
        t.frps = frps
        self.addCleanup(t.stop_checked, frps, frps.server.connections)  # type: ignore[attr-defined]
        web = listen_local(self, Backends(HeadEcho, "web"))
        secure = tls_backend(self, "secure")  # type: ignore[arg-type]
        echo = listen_local(self, EchoFactory())
        frpc = t.start_client([http_proxy("web", web, customDomains=["web.example"]),
                               https_proxy("secure", secure, customDomains=["secure.example"]),
                               tcp_proxy("echo", echo)])
        for name in ("web", "secure", "echo"):
            status = await frpc.proxy_manager.wait_settled(name)
            self.assertEqual(status.phase, "running", status.error)  # type: ignore[attr-defined]
        [response] = await exchange(port, get("web.example", "/on/the/bind/port"))
        self.assertEqual(response.status, 200)  # type: ignore[attr-defined]
        self.assertIn(b"GET /on/the/bind/port HTTP/1.1\r\nHost: web.example", response.body)  # type: ignore[attr-defined]
        answer = await tls_exchange(port, "secure.example", b"hello over shared https")
        self.assertTrue(answer.startswith(b"secure:"), answer)  # type: ignore[attr-defined]
        c = Collector(b"the tunnel itself", half_close=True)
        await connect(await t.remote_port("echo"), c)
        self.assertEqual(await with_timeout(c.done, 10), b"the tunnel itself")  # type: ignore[attr-defined]


mode_cases(SharedPortMixin, globals(), TestCase)


class MatcherTests(TestCase):
    def test_http_methods_and_frp_traffic(self) -> None:
        from frptx.server.vhost_http import starts_with_http_method

        self.assertTrue(starts_with_http_method(b"GET / HTTP/1.1"))
        self.assertIsNone(starts_with_http_method(b"OPT"))
        for frp_first in (b"o", b"\x00", b"\x17", b"\x16", b"w"):
            self.assertFalse(starts_with_http_method(frp_first))

    def test_sni_routed_only_for_known_domains(self) -> None:
        from frptx.server.vhost_https import names_an_https_route
        from frptx.test.test_e2e_vhost_https import client_hello

        class Routes:
            def lookup(self, name: str) -> Any:
                return object() if name == "known.example" else None

        match = names_an_https_route(type("V", (), {"routes": Routes()})())  # type: ignore[arg-type]
        hello = client_hello("known.example")
        self.assertTrue(match(hello))
        self.assertIsNone(match(hello[:20]))
        self.assertFalse(match(client_hello("other.example")))
        self.assertFalse(match(client_hello(None)))
        self.assertFalse(match(b"\x17\x16\x03"))


class LiveSharedPortTests(TestCase):
    """A stock Go frpc 0.65.0 (TLS on, its default) with an http proxy, on our frps sharing one port."""

    timeout = 90

    @async_test
    async def test_go_frpc_http_on_the_bind_port(self) -> None:
        from frptx.test.gofrp import GoFrp
        from frptx.test.support import TOKEN

        go = GoFrp(self)
        port = free_port()
        t = Tunnel(self, {"tcp_mux": True, "tls": True})
        cfg = dataclasses.replace(server_config(True, vhostHTTPPort=port, vhostHTTPSPort=port), bind_port=port)
        frps = FrpsService(cfg, reactor, timeouts=BindPortTimeouts())
        frps.startService()
        t.frps = frps
        self.addCleanup(t.stop_checked, frps, frps.server.connections)
        web = listen_local(self, Backends(HeadEcho, "web"))
        frpc = go.frpc(go.frpc_config(port, TOKEN, True, True, [http_proxy("web", web, customDomains=["go.example"])]))
        await frpc.ready()
        [response] = await exchange(port, get("go.example", "/shared"))
        self.assertEqual((response.status, response.header("X-Backend")), (200, "web"))
