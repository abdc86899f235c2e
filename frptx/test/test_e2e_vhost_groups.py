# -*- test-case-name: frptx.test.test_e2e_vhost_groups -*-
"""End to end: load-balancing groups of http, https and tcpmux proxies.

Our frps with several of our frpc in this process (and, live, two stock Go
frpc 0.65.0 in an http group), real sockets on 127.0.0.1.  Each member's local
service names itself in its answers, so a user learns which member served it.
Members join one after the other (each waits for the previous one to run), so
the joining order, and with it frps's exact round robin, is known.
"""
from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from frptx.server.service import FrpsService
from frptx.test import (
    test_e2e_vhost_http as http_e2e,
    test_e2e_vhost_https as https_e2e,
    test_e2e_vhost_tcpmux as tcpmux_e2e,
)
from frptx.test.gofrp import GoFrp, free_port
from frptx.test.support import TOKEN, LogWatch, Tunnel, listen_local, with_timeout
from frptx.vhost.httpconnect import CONNECT_OK

WAIT = 20.0


def lb(key: str = "k", name: str = "web") -> dict[str, Any]:
    return {"loadBalancer": {"group": name, "groupKey": key}}


class _Members(TestCase):
    """frps and frpc with one grouped proxy each; what every kind's tests share (no tests of its own)."""

    timeout = 60

    tunnel: Tunnel
    frps: FrpsService

    async def join(self, proxy: dict[str, Any], phase: str = "running") -> tuple[Any, str]:
        """Start an frpc with ``proxy``; wait until it settles in ``phase``; (frpc, its error)."""
        frpc = self.tunnel.start_client([proxy])
        status = await with_timeout(frpc.proxy_manager.wait_settled(proxy["name"]), WAIT)
        self.assertEqual(status.phase, phase, status.error)
        return frpc, status.error

    async def leave(self, frpc: Any, name: str) -> None:
        """Stop ``frpc`` and wait until frps closed its proxy ``name``."""
        gone = LogWatch(self).next(f"proxy [{name}] closed")
        await frpc.stopService()
        await with_timeout(gone, WAIT)


# -- http ----------------------------------------------------------------------------------

class HttpGroup(_Members):
    async def start(self, members: int = 2) -> tuple[int, list[Any]]:
        self.tunnel = Tunnel(self, {"tcp_mux": True, "tls": False})
        self.frps = http_e2e.start_frps(self, self.tunnel)
        frpcs = []
        for name in "ab"[:members]:
            local = listen_local(self, http_e2e.Backends(http_e2e.HeadEcho, name))
            frpc, _ = await self.join(http_e2e.http_proxy(f"web-{name}", local, customDomains=["g.test"],
                                                          locations=["/"], **lb()))
            frpcs.append(frpc)
        assert self.frps.vhost_http is not None
        return self.frps.vhost_http.bound_port, frpcs

    async def served(self, port: int, count: int) -> list[str | None]:
        """Who served ``count`` requests, each on a connection of its own."""
        out = []
        for _ in range(count):
            [r] = await http_e2e.exchange(port, http_e2e.get("g.test", "/x"))
            out.append(r.header("X-Backend") if r.status == 200 else str(r.status))
        return out

    def test_requests_alternate(self) -> Deferred[None]:
        """frps's HTTPGroup: each request to the next member, its first to the second member."""
        async def run() -> None:
            port, _ = await self.start()
            self.assertEqual(await self.served(port, 6), ["b", "a", "b", "a", "b", "a"])
            # per request, not per connection: one keep-alive connection reaches both
            raw = b"".join(http_e2e.get("g.test", "/k", close=False) for _ in range(3)) + http_e2e.get("g.test")
            rs = await http_e2e.exchange(port, raw, ["GET"] * 4)
            self.assertEqual([r.header("X-Backend") for r in rs], ["b", "a", "b", "a"])
            assert self.frps.server.http_vhost is not None
            self.assertEqual(len(self.frps.server.http_vhost.table), 1)
        return Deferred.fromCoroutine(run())

    def test_member_leaving_the_other_serves_all(self) -> Deferred[None]:
        async def run() -> None:
            port, (frpc_a, _) = await self.start()
            await self.leave(frpc_a, "web-a")
            self.assertEqual(await self.served(port, 4), ["b"] * 4)
        return Deferred.fromCoroutine(run())

    def test_wrong_key_and_other_route_refused(self) -> Deferred[None]:
        async def run() -> None:
            port, _ = await self.start()
            c = listen_local(self, http_e2e.Backends(http_e2e.HeadEcho, "c"))
            _, error = await self.join(http_e2e.http_proxy("web-c", c, customDomains=["g.test"], locations=["/"],
                                                           **lb("wrong")), "start error")
            self.assertEqual(error, "group auth failed")
            _, error = await self.join(http_e2e.http_proxy("web-d", c, customDomains=["g.test"],
                                                           locations=["/api"], **lb()), "start error")
            self.assertEqual(error, "group params invalid")
            # a proxy outside the group cannot take the group's route either
            _, error = await self.join(http_e2e.http_proxy("plain", c, customDomains=["g.test"], locations=["/"]),
                                       "start error")
            self.assertEqual(error, "router config conflict")
            self.assertEqual(sorted(await self.served(port, 4)), ["a", "a", "b", "b"])  # type: ignore[type-var]
        return Deferred.fromCoroutine(run())

    def test_last_member_leaving_removes_the_route(self) -> Deferred[None]:
        async def run() -> None:
            port, (frpc_a, frpc_b) = await self.start()
            await self.leave(frpc_a, "web-a")
            await self.leave(frpc_b, "web-b")
            self.assertEqual(await self.served(port, 1), ["404"])
            c = listen_local(self, http_e2e.Backends(http_e2e.HeadEcho, "c"))
            await self.join(http_e2e.http_proxy("plain", c, customDomains=["g.test"], locations=["/"]))
            self.assertEqual(await self.served(port, 2), ["c", "c"])
        return Deferred.fromCoroutine(run())

    def test_first_members_settings_stay(self) -> Deferred[None]:
        """The route keeps its first member's basic auth and header rewrites, as frps's does."""
        async def run() -> None:
            self.tunnel = Tunnel(self, {"tcp_mux": True, "tls": False})
            self.frps = http_e2e.start_frps(self, self.tunnel)
            a = listen_local(self, http_e2e.Backends(http_e2e.HeadEcho, "a"))
            b = listen_local(self, http_e2e.Backends(http_e2e.HeadEcho, "b"))
            frpc_a, _ = await self.join(http_e2e.http_proxy(
                "web-a", a, customDomains=["g.test"], httpUser="u", httpPassword="p",
                requestHeaders={"set": {"X-Member": "a"}}, **lb()))
            await self.join(http_e2e.http_proxy("web-b", b, customDomains=["g.test"],
                                                requestHeaders={"set": {"X-Member": "b"}}, **lb()))
            assert self.frps.vhost_http is not None
            port = self.frps.vhost_http.bound_port
            [r] = await http_e2e.exchange(port, http_e2e.get("g.test"))
            self.assertEqual(r.status, 401)
            await self.leave(frpc_a, "web-a")
            for _ in range(2):
                [r] = await http_e2e.exchange(port, http_e2e.get("g.test", extra="Authorization: Basic dTpw\r\n"))
                self.assertEqual((r.status, r.header("X-Backend")), (200, "b"))
                self.assertIn(b"X-Member: a\r\n", r.body)
        return Deferred.fromCoroutine(run())


# -- https ---------------------------------------------------------------------------------

class HttpsGroup(_Members):
    async def start(self) -> tuple[int, list[Any]]:
        self.tunnel = Tunnel(self, {"tcp_mux": True, "tls": False})
        self.frps = https_e2e.start_frps(self, self.tunnel)
        frpcs = []
        for name in "ab":
            local = https_e2e.tls_backend(self, name)
            frpc, _ = await self.join(https_e2e.https_proxy(f"web-{name}", local, customDomains=["g.test"], **lb()))
            frpcs.append(frpc)
        assert self.frps.vhost_https is not None
        return self.frps.vhost_https.bound_port, frpcs

    async def served(self, port: int, count: int) -> list[str]:
        out = []
        for _ in range(count):
            answer = await https_e2e.tls_exchange(port, "g.test", b"hello")
            out.append(answer.split(b":", 1)[0].decode())
        return out

    def test_connections_alternate(self) -> Deferred[None]:
        """Each TLS connection to the next member, the first member first."""
        async def run() -> None:
            port, _ = await self.start()
            self.assertEqual(await self.served(port, 4), ["a", "b", "a", "b"])
        return Deferred.fromCoroutine(run())

    def test_member_leaving_and_wrong_key(self) -> Deferred[None]:
        async def run() -> None:
            port, (frpc_a, frpc_b) = await self.start()
            c = https_e2e.tls_backend(self, "c")
            _, error = await self.join(https_e2e.https_proxy("web-c", c, customDomains=["g.test"], **lb("wrong")),
                                       "start error")
            self.assertEqual(error, "group auth failed")
            _, error = await self.join(https_e2e.https_proxy("web-d", c, customDomains=["other.test"], **lb()),
                                       "start error")
            self.assertEqual(error, "group params invalid")
            await self.leave(frpc_a, "web-a")
            self.assertEqual(await self.served(port, 3), ["b"] * 3)
            await self.leave(frpc_b, "web-b")
            assert self.frps.server.https_vhost is not None
            self.assertEqual(len(self.frps.server.https_vhost.table), 0)
        return Deferred.fromCoroutine(run())


# -- tcpmux --------------------------------------------------------------------------------

class TcpmuxGroup(_Members):
    async def start(self) -> tuple[int, list[Any]]:
        self.tunnel = Tunnel(self, {"tcp_mux": True, "tls": False})
        self.frps = tcpmux_e2e.start_frps(self, self.tunnel)
        frpcs = []
        for name in "ab":
            local = listen_local(self, tcpmux_e2e.Echoes(name))
            frpc, _ = await self.join(tcpmux_e2e.tcpmux_proxy(f"web-{name}", local, customDomains=["g.test"],
                                                              httpUser="u", httpPassword="p", **lb()))
            frpcs.append(frpc)
        assert self.frps.vhost_tcpmux is not None
        return self.frps.vhost_tcpmux.bound_port, frpcs

    async def served(self, port: int, count: int) -> list[str]:
        out = []
        for _ in range(count):
            answer = await tcpmux_e2e.tunnel_through(port, tcpmux_e2e.connect_head("g.test", "dTpw"), b"hi")
            out.append(answer.split(b":", 1)[0].decode())
        return out

    def test_connections_alternate(self) -> Deferred[None]:
        async def run() -> None:
            port, _ = await self.start()
            self.assertEqual(await self.served(port, 4), ["a", "b", "a", "b"])
            reply = await tcpmux_e2e.refused(port, tcpmux_e2e.connect_head("g.test"))  # the group's auth holds
            self.assertTrue(reply.startswith(CONNECT_OK), reply)
            self.assertIn(b"407", reply)
        return Deferred.fromCoroutine(run())

    def test_member_leaving_and_refusals(self) -> Deferred[None]:
        async def run() -> None:
            port, (frpc_a, frpc_b) = await self.start()
            c = listen_local(self, tcpmux_e2e.Echoes("c"))
            _, error = await self.join(tcpmux_e2e.tcpmux_proxy("web-c", c, customDomains=["g.test"], httpUser="u",
                                                               httpPassword="p", **lb("wrong")), "start error")
            self.assertEqual(error, "group auth failed")
            # tcpmux members must share httpUser/httpPassword too
            _, error = await self.join(tcpmux_e2e.tcpmux_proxy("web-d", c, customDomains=["g.test"], httpUser="u",
                                                               httpPassword="other", **lb()), "start error")
            self.assertEqual(error, "group params invalid")
            await self.leave(frpc_a, "web-a")
            self.assertEqual(await self.served(port, 3), ["b"] * 3)
            await self.leave(frpc_b, "web-b")
            reply = await tcpmux_e2e.refused(port, tcpmux_e2e.connect_head("g.test", "dTpw"))
            self.assertIn(b"404", reply.split(b"\r\n", 1)[0])
        return Deferred.fromCoroutine(run())


# -- live: stock Go frpc ------------------------------------------------------------------------

class Live(TestCase):
    """Two stock Go frpc 0.65.0 in one http group against our frps."""

    timeout = 90

    def test_go_frpc_http_group_against_our_frps(self) -> Deferred[None]:
        async def run() -> None:
            go = GoFrp(self)
            tunnel = Tunnel(self, {"tcp_mux": True, "tls": False})
            frps = http_e2e.start_frps(self, tunnel)
            assert frps.vhost_http is not None
            vport = frps.vhost_http.bound_port
            frpcs = []
            for name in "abc":
                local = listen_local(self, http_e2e.Backends(http_e2e.HeadEcho, name))
                key = "wrong" if name == "c" else "k"
                config = go.frpc_config(frps.bound_port, TOKEN, True, False, [
                    http_proxy := http_e2e.http_proxy(f"web-{name}", local, customDomains=["g.test"], **lb(key))])
                frpc = go.frpc(config)
                if name == "c":
                    await frpc.proc.wait_for(f"[{http_proxy['name']}] start error: group auth failed")
                else:
                    await frpc.ready()
                frpcs.append(frpc)

            async def served(count: int) -> list[str | None]:
                out = []
                for _ in range(count):
                    [r] = await http_e2e.exchange(vport, http_e2e.get("g.test", "/x"))
                    out.append(r.header("X-Backend") if r.status == 200 else str(r.status))
                return out

            self.assertEqual(await served(6), ["b", "a", "b", "a", "b", "a"])
            gone = LogWatch(self).next("proxy [web-a] closed")
            await frpcs[0].proc.kill()
            await with_timeout(gone, WAIT)
            self.assertEqual(await served(4), ["b"] * 4)
        return Deferred.fromCoroutine(run())

    def test_go_frps_http_group_order(self) -> Deferred[None]:
        """The reference: a Go frps 0.65.0 spreads two of our frpc's grouped http proxies as ours does
        (first request to the second member, then in turn) and refuses a wrong key with the same text."""
        async def run() -> None:
            go = GoFrp(self)
            vport = free_port()
            gofrps = await go.frps(TOKEN, vhostHTTPPort=vport)
            tunnel = Tunnel(self, {"tcp_mux": True, "tls": False})
            tunnel.frps = http_e2e._AtPort(gofrps.port)  # type: ignore[assignment]
            for name in "abc":
                local = listen_local(self, http_e2e.Backends(http_e2e.HeadEcho, name))
                frpc = tunnel.start_client([http_e2e.http_proxy(f"web-{name}", local, customDomains=["g.test"],
                                                                **lb("wrong" if name == "c" else "k"))])
                status = await with_timeout(frpc.proxy_manager.wait_settled(f"web-{name}"), WAIT)
                if name == "c":
                    self.assertEqual((status.phase, status.error), ("start error", "group auth failed"))
                else:
                    self.assertEqual(status.phase, "running", status.error)
            out = []
            for _ in range(6):
                [r] = await http_e2e.exchange(vport, http_e2e.get("g.test", "/x"))
                out.append(r.header("X-Backend"))
            self.assertEqual(out, ["b", "a", "b", "a", "b", "a"])
        return Deferred.fromCoroutine(run())

    def test_go_frps_tcpmux_group_order(self) -> Deferred[None]:
        """The reference for tcpmux: a Go frps 0.65.0 hands connections to the members in turn, first
        member first (its members' accept loops take turns), as ours does."""
        async def run() -> None:
            go = GoFrp(self)
            mport = free_port()
            gofrps = await go.frps(TOKEN, tcpmuxHTTPConnectPort=mport)
            tunnel = Tunnel(self, {"tcp_mux": True, "tls": False})
            tunnel.frps = http_e2e._AtPort(gofrps.port)  # type: ignore[assignment]
            for name in "ab":
                local = listen_local(self, tcpmux_e2e.Echoes(name))
                frpc = tunnel.start_client([tcpmux_e2e.tcpmux_proxy(f"web-{name}", local, customDomains=["g.test"],
                                                                    **lb())])
                status = await with_timeout(frpc.proxy_manager.wait_settled(f"web-{name}"), WAIT)
                self.assertEqual(status.phase, "running", status.error)
            out = []
            for _ in range(6):
                answer = await tcpmux_e2e.tunnel_through(mport, tcpmux_e2e.connect_head("g.test"), b"hi")
                out.append(answer.split(b":", 1)[0].decode())
            self.assertEqual(out, ["a", "b", "a", "b", "a", "b"])
        return Deferred.fromCoroutine(run())
