# -*- test-case-name: frptx.test.test_web_frps_api_v2 -*-
"""
frps' REST API v2 (frp's master branch, C{/api/v2/...}).

There is no released frp binary with v2 to capture golden exchanges from, so
the expected bodies here are written from frp master's Go source: the structs
of C{server/http/model/v2.go} (field names, order, C{omitempty}), the envelope
of C{pkg/util/http/handler.go} (C{MakeHTTPHandlerFuncV2}) and the rules of
C{server/http/controller_v2.go} (paging, filters, sort orders, error messages).
Go marshals struct fields in declaration order, so key order is checked too.
"""
from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from twisted.internet.task import Clock
from twisted.trial import unittest

from frptx.client.backoff import BackoffPolicy
from frptx.test.support import Collector, EchoFactory, LogWatch, Tunnel, connect, listen_local, tcp_proxy, with_timeout
from frptx.test.test_e2e import async_test, free_port
from frptx.test.web_fakes import FakeFrpsState, scenario
from frptx.test.web_support import Response, Served, serve
from frptx.web.frps_api import GO_MAX_INT, FrpsAPI
from frptx.web.server import frps_site
from frptx.web.state import ProxyConf

AUTH = ("admin", "secret")
#: every time in the fixed scenario (Unix seconds)
T0 = 1_780_000_000


def fixed_scenario() -> FakeFrpsState:
    """L{scenario} with every timestamp at C{T0}, so bodies can be compared whole."""
    st = scenario()
    for key, c in st.clients_by_key.items():
        st.clients_by_key[key] = dataclasses.replace(
            c, first_connected_at=T0, last_connected_at=T0,
            disconnected_at=None if c.online else T0 + 60)
    for name, p in st.proxies_by_name.items():
        st.proxies_by_name[name] = dataclasses.replace(
            p, last_start_time=T0, last_close_time=None if p.online else T0 + 60)
    return st


#: V2ProxyTransportSpec / V2ProxyLoadBalancerSpec of a proxy with default options
TRANSPORT = {"useEncryption": False, "useCompression": False, "bandwidthLimit": "", "bandwidthLimitMode": "client"}
LB = {"loadBalancer": {"group": ""}}


def online_status(tin: int = 0, tout: int = 0, conns: int = 0) -> dict[str, Any]:
    """V2ProxyStatusResp of an online proxy (C{lastCloseAt} omitted: omitempty)."""
    return {"phase": "online", "todayTrafficIn": tin, "todayTrafficOut": tout, "curConns": conns,
            "lastStartAt": T0}


def alice_proxy(name: str, spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    """V2ProxyResp of one of alice's proxies (client without client id: clientID is the run id)."""
    return {"name": name, "user": "alice", "clientID": "run-a", "spec": spec, "status": status or online_status()}


def base(**fields: Any) -> dict[str, Any]:
    """A type block: V2ProxyBaseSpec then the type's own fields."""
    return {"transport": dict(TRANSPORT), **LB, **fields}


#: the whole proxy list, in frp's order (type, then name)
EXPECTED_PROXIES = [
    alice_proxy("alice.web", {"type": "http", "http": base(customDomains=["a.other.test"], subdomain="www",
                                                           locations=["/", "/api"],
                                                           hostHeaderRewrite="internal")}),
    alice_proxy("alice.secure", {"type": "https", "https": base(subdomain="s")}),
    alice_proxy("alice.secret", {"type": "stcp", "stcp": base()}),
    alice_proxy("alice.socks", {"type": "tcp", "tcp": base(remotePort=1001)}),
    alice_proxy("alice.ssh", {"type": "tcp", "tcp": base(remotePort=6000)}, online_status(1000, 1000, 1)),
    {"name": "gone", "user": "", "clientID": "run-b", "spec": {"type": "tcp", "tcp": {}},
     "status": {"phase": "offline", "todayTrafficIn": 0, "todayTrafficOut": 0, "curConns": 0,
                "lastStartAt": T0, "lastCloseAt": T0 + 60}},
    alice_proxy("alice.mux", {"type": "tcpmux", "tcpmux": base(customDomains=["m.other.test"],
                                                               multiplexer="httpconnect")}),
    alice_proxy("alice.dns", {"type": "udp", "udp": base(remotePort=6001)}),
    alice_proxy("alice.p2p", {"type": "xtcp", "xtcp": base()}),
]

#: ClientInfoResp of both clients, in frp's order (user, clientID, key)
EXPECTED_CLIENTS = [
    {"key": "run-b", "user": "", "clientID": "run-b", "runID": "run-b", "version": "0.65.0",
     "wireProtocol": "v1", "hostname": "bob-host", "clientIP": "127.0.0.1", "firstConnectedAt": T0,
     "lastConnectedAt": T0, "disconnectedAt": T0 + 60, "online": False},
    {"key": "alice.run-a", "user": "alice", "clientID": "run-a", "runID": "run-a", "version": "0.65.0",
     "wireProtocol": "v1", "hostname": "alice-host", "clientIP": "127.0.0.1", "firstConnectedAt": T0,
     "lastConnectedAt": T0, "online": True},
]


def ok(data: Any) -> dict[str, Any]:
    return {"code": 200, "msg": "success", "data": data}


def err(code: int, msg: str) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": None}


def page(items: list[Any], total: int | None = None, page: int = 1, size: int = 50) -> dict[str, Any]:
    return {"total": len(items) if total is None else total, "page": page, "pageSize": size, "items": items}


def keys_in_order(value: Any) -> Any:
    """Every object's keys, recursively, in order: Go marshals struct fields in declaration order."""
    if isinstance(value, dict):
        return [(k, keys_in_order(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [keys_in_order(v) for v in value]
    return None


class V2Case(unittest.TestCase):
    def setUp(self) -> None:
        self.state = fixed_scenario()
        self.clock = Clock()
        self.clock.advance(T0)
        self.served = serve(self, frps_site(self.state, user=AUTH[0], password=AUTH[1], clock=self.clock,
                                            auth_fail_delay=0))

    async def get(self, path: str, method: str = "GET", **kw: Any) -> Response:
        kw.setdefault("auth", AUTH)
        return await self.served.request(path, method, **kw)

    async def check(self, path: str, status: int, expected: Any, method: str = "GET", **kw: Any) -> None:
        """The whole answer: status, application/json, the envelope and its data, key order included."""
        r = await self.get(path, method, **kw)
        self.assertEqual(r.status, status, f"{method} {path}: {r.body!r}")
        self.assertEqual(r.headers.get("content-type"), "application/json", path)
        self.assertTrue(r.body.endswith(b"}\n"), path)  # json.Encoder's newline
        body = r.json()
        self.assertEqual(body, expected, path)
        self.assertEqual(keys_in_order(body), keys_in_order(expected), path)

    async def items(self, path: str) -> list[str]:
        r = await self.get(path)
        self.assertEqual(r.status, 200, f"{path}: {r.body!r}")
        return [i.get("name", i.get("key", i.get("user"))) for i in r.json()["data"]["items"]]


class SystemTests(V2Case):
    async def test_system_info(self) -> None:
        """V2SystemInfoResp: version, then config (allowPortsStr and tlsForce always there), then status."""
        await self.check("/api/v2/system/info", 200, ok({
            "version": "0.65.0",
            "config": {"bindPort": 7000, "vhostHTTPPort": 8080, "vhostHTTPSPort": 8443,
                       "tcpmuxHTTPConnectPort": 1337, "kcpBindPort": 0, "quicBindPort": 0,
                       "subdomainHost": "example.test", "maxPoolCount": 7, "maxPortsPerClient": 10,
                       "heartbeatTimeout": 90, "allowPortsStr": "6000,6001,6002,1000-1010", "tlsForce": True},
            "status": {"totalTrafficIn": 1000, "totalTrafficOut": 1000, "curConns": 1, "clientCounts": 1,
                       "proxyTypeCount": {"http": 1, "https": 1, "stcp": 1, "tcp": 2, "tcpmux": 1, "udp": 1,
                                          "xtcp": 1}},
        }))

    async def test_system_info_defaults_not_omitted(self) -> None:
        """Unlike v1's serverinfo, v2's config has no omitempty: "" and false are shown."""
        self.served = serve(self, frps_site(FakeFrpsState(), clock=self.clock))
        r = await self.get("/api/v2/system/info")
        data = r.json()["data"]
        self.assertEqual((data["config"]["allowPortsStr"], data["config"]["tlsForce"]), ("", False))
        self.assertEqual(data["status"]["proxyTypeCount"], {})

    async def test_prune(self) -> None:
        await self.check("/api/v2/system/prune", 400, err(400, "type is required"), "POST")
        await self.check("/api/v2/system/prune?type=clients", 400, err(400, "type must be one of offline_proxies"),
                         "POST")
        # the type comes from the URL only, never from a form body
        await self.check("/api/v2/system/prune", 400, err(400, "type is required"), "POST",
                         body=b"type=offline_proxies",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertIn("gone", self.state.proxies_by_name)
        await self.check("/api/v2/system/prune?type=OFFLINE_PROXIES", 200,
                         ok({"type": "offline_proxies", "cleared": 1, "total": 9}), "POST")
        self.assertNotIn("gone", self.state.proxies_by_name)
        await self.check("/api/v2/system/prune?type=offline_proxies", 200,
                         ok({"type": "offline_proxies", "cleared": 0, "total": 8}), "POST")
        self.assertEqual((await self.get("/api/v2/system/prune?type=offline_proxies")).status, 405)


class UserTests(V2Case):
    async def test_users(self) -> None:
        """V2UserResp per user of a client or a proxy (offline ones too), sorted by user; "" is a user."""
        await self.check("/api/v2/users", 200, ok(page([
            {"user": "", "clientCount": 1, "proxyCount": 1},
            {"user": "alice", "clientCount": 1, "proxyCount": 8},
        ])))
        await self.check("/api/v2/users?q=LiC", 200, ok(page([{"user": "alice", "clientCount": 1, "proxyCount": 8}])))
        await self.check("/api/v2/users?page=2&pageSize=1", 200,
                         ok(page([{"user": "alice", "clientCount": 1, "proxyCount": 8}], 2, 2, 1)))

    async def test_a_user_with_only_proxies(self) -> None:
        self.state.add_proxy(ProxyConf("orphan", "sudp"))
        self.state.proxies_by_name["orphan"] = dataclasses.replace(self.state.proxies_by_name["orphan"], user="bob")
        self.assertEqual(await self.items("/api/v2/users"), ["", "alice", "bob"])
        r = await self.get("/api/v2/users?q=bob")
        self.assertEqual(r.json()["data"]["items"], [{"user": "bob", "clientCount": 0, "proxyCount": 1}])


class ClientTests(V2Case):
    async def test_list(self) -> None:
        await self.check("/api/v2/clients", 200, ok(page(EXPECTED_CLIENTS)))

    async def test_filters(self) -> None:
        for query, keys in (
            ("status=online", ["alice.run-a"]), ("status=OFFLINE", ["run-b"]), ("status=all", ["run-b", "alice.run-a"]),
            ("user=alice", ["alice.run-a"]),
            ("user=", ["run-b"]),  # present and empty: the clients without a user
            ("user=nobody", []),
            ("clientID=run-a", ["alice.run-a"]),  # the effective client id (run id when none was sent)
            ("runID=run-b", ["run-b"]),
            ("q=BOB-HOST", ["run-b"]), ("q=v1", ["run-b", "alice.run-a"]), ("q=127.0.0", ["run-b", "alice.run-a"]),
            ("q=nothing-like-it", []),
            ("status=online&user=", []),
        ):
            self.assertEqual(await self.items("/api/v2/clients?" + query), keys, query)
        await self.check("/api/v2/clients?status=gone", 400, err(400, "status must be one of all, online, offline"))

    async def test_detail(self) -> None:
        """V2ClientDetailResp: ClientInfoResp's fields, then status over the client's proxies (offline too)."""
        await self.check("/api/v2/clients/alice.run-a", 200, ok(
            {**EXPECTED_CLIENTS[1], "status": {"phase": "online", "curConns": 1, "proxyCount": 8}}))
        await self.check("/api/v2/clients/run-b", 200, ok(
            {**EXPECTED_CLIENTS[0], "status": {"phase": "offline", "curConns": 0, "proxyCount": 1}}))
        await self.check("/api/v2/clients/nobody", 404, err(404, "client nobody not found"))
        await self.check("/api/v2/clients/bad%zzkey", 400, err(400, "invalid client key"))

    async def test_client_id_and_encoded_key(self) -> None:
        """A client that sent a client id is known by it; its key is matched on the encoded path."""
        self.state.add_client("team/x.laptop", user="team/x", client_id="laptop", run_id="r9", hostname="h")
        r = await self.get("/api/v2/clients/team%2Fx.laptop")
        self.assertEqual((r.status, r.json()["data"]["clientID"]), (200, "laptop"))
        self.assertEqual(await self.items("/api/v2/clients?clientID=laptop"), ["team/x.laptop"])
        self.assertEqual(await self.items("/api/v2/clients?clientID=r9"), [])

    async def test_kick(self) -> None:
        """Beyond frp: DELETE kicks an online client; its proxies go offline."""
        self.assertEqual((await self.get("/api/v2/clients/alice.run-a", "DELETE", auth=None)).status, 401)
        self.assertEqual(self.state.kicked, [])
        await self.check("/api/v2/clients/alice.run-a", 200, ok(None), "DELETE")
        self.assertEqual(self.state.kicked, ["alice.run-a"])
        r = await self.get("/api/v2/clients/alice.run-a")
        self.assertEqual(r.json()["data"]["status"]["phase"], "offline")
        self.assertEqual(await self.items("/api/v2/proxies?status=online"), [])
        await self.check("/api/v2/clients/alice.run-a", 409, err(409, "client alice.run-a is not online"), "DELETE")
        await self.check("/api/v2/clients/nobody", 404, err(404, "client nobody not found"), "DELETE")
        self.assertEqual(self.state.kicked, ["alice.run-a"])


class ProxyTests(V2Case):
    async def test_list(self) -> None:
        await self.check("/api/v2/proxies", 200, ok(page(EXPECTED_PROXIES)))

    async def test_filters(self) -> None:
        everyone = [p["name"] for p in EXPECTED_PROXIES]
        for query, names in (
            ("type=TCP", ["alice.socks", "alice.ssh", "gone"]), ("type=sudp", []),
            ("status=offline", ["gone"]), ("status=online", [n for n in everyone if n != "gone"]),
            ("user=", ["gone"]), ("user=alice", [n for n in everyone if n != "gone"]),
            ("clientID=run-b", ["gone"]),
            ("q=6000", ["alice.ssh"]),  # remote port
            ("q=OTHER.test", ["alice.web", "alice.mux"]),  # domains
            ("q=www", ["alice.web"]),  # subdomain
            ("q=offline", ["gone"]),  # phase
            ("q=udp", ["alice.dns"]),  # type
            ("type=tcp&status=online&q=socks", ["alice.socks"]),
        ):
            self.assertEqual(await self.items("/api/v2/proxies?" + query), names, query)
        await self.check("/api/v2/proxies?type=ftp", 400,
                         err(400, "type must be one of tcp, udp, http, https, tcpmux, stcp, xtcp, sudp"))
        await self.check("/api/v2/proxies?status=up", 400, err(400, "status must be one of all, online, offline"))

    async def test_spec_options_and_secrets(self) -> None:
        """Base spec options (omitempty maps, transport, group) are shown; secrets never are."""
        self.state.add_proxy(ProxyConf("opts", "sudp", use_encryption=True, use_compression=True,
                                       bandwidth_limit="1MB", bandwidth_limit_mode="server", group="g",
                                       group_key="group-secret", metas={"b": "2", "a": "1"},
                                       annotations={"note": "x"}), "alice.run-a")
        r = await self.get("/api/v2/proxies/opts")
        self.assertNotIn(b"group-secret", r.body)
        spec = r.json()["data"]["spec"]
        expected = {"type": "sudp", "sudp": {
            "annotations": {"note": "x"}, "metadatas": {"a": "1", "b": "2"},
            "transport": {"useEncryption": True, "useCompression": True, "bandwidthLimit": "1MB",
                          "bandwidthLimitMode": "server"},
            "loadBalancer": {"group": "g"}}}
        self.assertEqual(spec, expected)
        self.assertEqual(keys_in_order(spec), keys_in_order(expected))

    async def test_detail_and_traffic(self) -> None:
        await self.check("/api/v2/proxies/alice.ssh", 200, ok(EXPECTED_PROXIES[4]))
        await self.check("/api/v2/proxies/gone", 200, ok(EXPECTED_PROXIES[5]))
        await self.check("/api/v2/proxies/nosuch", 404, err(404, "no proxy info found"))
        await self.check("/api/v2/proxies/bad%2", 400, err(400, "invalid proxy name"))
        # V2ProxyTrafficResp: 7 local days, oldest first, dated from the injected clock
        day = 86400
        dates = [time.strftime("%Y-%m-%d", time.localtime(T0 - age * day)) for age in range(6, -1, -1)]
        ins, outs = [0, 0, 0, 0, 5000, 0, 1000], [0, 0, 0, 0, 70000, 0, 1000]
        await self.check("/api/v2/proxies/alice.ssh/traffic", 200, ok({
            "name": "alice.ssh", "unit": "bytes", "granularity": "day",
            "history": [{"date": d, "trafficIn": i, "trafficOut": o} for d, i, o in zip(dates, ins, outs, strict=True)],
        }))
        await self.check("/api/v2/proxies/nosuch/traffic", 404, err(404, "no proxy info found"))
        await self.check("/api/v2/proxies/bad%zz/traffic", 400, err(400, "invalid proxy name"))

    async def test_encoded_name(self) -> None:
        self.state.add_proxy(ProxyConf("a/b <c>", "tcp", remote_port=7))
        r = await self.get("/api/v2/proxies/a%2Fb%20%3Cc%3E")
        self.assertEqual((r.status, r.json()["data"]["name"]), (200, "a/b <c>"))
        self.assertIn(b"\\u003cc\\u003e", r.body)  # Go's HTML-safe escaping
        r = await self.get("/api/v2/proxies/a%2Fb%20%3Cc%3E/traffic")
        self.assertEqual((r.status, r.json()["data"]["name"]), (200, "a/b <c>"))


class PagingTests(V2Case):
    """frp's C{parseV2PageParams}: checks and messages, in its order, on every paged list."""

    async def test_pages(self) -> None:
        names = [p["name"] for p in EXPECTED_PROXIES]
        r = await self.get("/api/v2/proxies?page=2&pageSize=4")
        data = r.json()["data"]
        self.assertEqual((data["total"], data["page"], data["pageSize"]), (9, 2, 4))
        self.assertEqual([i["name"] for i in data["items"]], names[4:8])
        self.assertEqual(await self.items("/api/v2/proxies?page=3&pageSize=4"), names[8:])
        # past the end: an empty page, not an error; total still counts everything
        r = await self.get("/api/v2/proxies?page=4&pageSize=4")
        self.assertEqual(r.json()["data"], page([], 9, 4, 4))
        # the largest page frp accepts for the size: no overflow, just empty
        big = GO_MAX_INT // 200
        r = await self.get(f"/api/v2/proxies?page={big}&pageSize=200")
        self.assertEqual(r.json()["data"], page([], 9, big, 200))
        # Go's Atoi takes a sign; empty means the default; the first of repeated values counts
        self.assertEqual(await self.items("/api/v2/proxies?page=%2B2&pageSize=8"), names[8:])
        self.assertEqual(await self.items("/api/v2/proxies?page=&pageSize="), names)
        self.assertEqual(await self.items("/api/v2/proxies?pageSize=1&pageSize=5"), names[:1])
        r = await self.get("/api/v2/proxies?pageSize=200")
        self.assertEqual(r.json()["data"]["pageSize"], 200)

    async def test_bad_parameters(self) -> None:
        for query, msg in (
            ("page=0", "page must be a positive integer"),
            ("page=-1", "page must be a positive integer"),
            ("page=abc", "page must be a positive integer"),
            ("page=1.5", "page must be a positive integer"),
            ("page=%201", "page must be a positive integer"),  # no spaces, unlike Python's int()
            ("page=1_0", "page must be a positive integer"),  # nor underscores
            (f"page={GO_MAX_INT + 1}", "page must be a positive integer"),  # Atoi overflows
            ("pageSize=0", "pageSize must be a positive integer"),
            ("pageSize=x", "pageSize must be a positive integer"),
            ("pageSize=201", "pageSize must be between 1 and 200"),
            (f"page={GO_MAX_INT // 200 + 1}&pageSize=200", "page is too large"),
            (f"page={GO_MAX_INT}&pageSize=2", "page is too large"),
            ("page=0&pageSize=999", "page must be a positive integer"),  # page is checked first
            ("pageSize=999&status=bogus", "pageSize must be between 1 and 200"),  # paging before filters
        ):
            for path in ("/api/v2/proxies", "/api/v2/clients", "/api/v2/users"):
                await self.check(f"{path}?{query}", 400, err(400, msg))


class AuthAndRoutingTests(V2Case):
    async def test_every_route_needs_credentials(self) -> None:
        for method, path in (("GET", "/api/v2/system/info"), ("POST", "/api/v2/system/prune?type=offline_proxies"),
                             ("GET", "/api/v2/users"), ("GET", "/api/v2/clients"),
                             ("GET", "/api/v2/clients/alice.run-a"), ("DELETE", "/api/v2/clients/alice.run-a"),
                             ("GET", "/api/v2/proxies"), ("GET", "/api/v2/proxies/alice.ssh"),
                             ("GET", "/api/v2/proxies/alice.ssh/traffic")):
            for auth in (None, ("admin", "wrong")):
                r = await self.get(path, method, auth=auth)
                self.assertEqual((r.status, r.body), (401, b"Unauthorized\n"), f"{method} {path} {auth}")
        self.assertEqual(self.state.kicked, [])
        self.assertIn("gone", self.state.proxies_by_name)

    async def test_methods_and_unknown_paths(self) -> None:
        for method, path in (("POST", "/api/v2/users"), ("DELETE", "/api/v2/proxies"),
                             ("GET", "/api/v2/system/prune"), ("POST", "/api/v2/proxies/alice.ssh")):
            r = await self.get(path, method)
            self.assertEqual((r.status, r.body), (405, b""), f"{method} {path}")
        r = await self.get("/api/v2/nosuch")
        self.assertEqual((r.status, r.body), (404, b"404 page not found\n"))


class UnitTests(unittest.TestCase):
    def test_traffic_dates_follow_the_clock(self) -> None:
        """The history's dates come from the injected clock, not the wall clock."""
        from twisted.web.test.requesthelper import DummyRequest

        state = fixed_scenario()
        api = FrpsAPI(state, now=lambda: 86400.0 * 365)
        request = DummyRequest([b"api", b"v2", b"proxies", b"alice.ssh", b"traffic"])
        request.path = b"/api/v2/proxies/alice.ssh/traffic"
        status, body, _ = api.v2_proxy_traffic(request, "alice.ssh")
        self.assertEqual(status, 200)
        history = json.loads(body)["data"]["history"]
        self.assertEqual(history[-1]["date"], time.strftime("%Y-%m-%d", time.localtime(86400.0 * 365)))
        self.assertEqual(len(history), 7)


class RunningFrpsTests(unittest.TestCase):
    """v2 against a real in-process frps and frpc over 127.0.0.1."""

    timeout = 60

    @async_test
    async def test_v2_on_a_running_frps(self) -> None:
        t = Tunnel(self, {"tcp_mux": True, "tls": False})
        web_port = free_port()
        frps = t.start_server(webServer={"addr": "127.0.0.1", "port": web_port, "user": AUTH[0],
                                         "password": AUTH[1]})
        assert frps.web is not None and frps.web.listening is not None
        await frps.web.listening
        echo = listen_local(self, EchoFactory())
        # no clientID: frp names the client (and its proxies' client) by the run id
        t.start_client([tcp_proxy("echo", echo)], user="bob", login_backoff=BackoffPolicy(initial=0.05, jitter=0))
        remote = await t.remote_port("echo")
        c = Collector(b"y" * 2000, half_close=True)
        await connect(remote, c)
        self.assertEqual(len(await with_timeout(c.done, 10)), 2000)
        web = Served(web_port)

        [client] = (await web.request("/api/v2/clients", auth=AUTH)).json()["data"]["items"]
        self.assertEqual((client["user"], client["online"], client["wireProtocol"]), ("bob", True, "v1"))
        self.assertEqual(client["clientID"], client["runID"])
        self.assertEqual(client["key"], f"bob.{client['runID']}")
        [proxy] = (await web.request("/api/v2/proxies?type=tcp", auth=AUTH)).json()["data"]["items"]
        self.assertEqual((proxy["name"], proxy["clientID"], proxy["status"]["phase"]),
                         ("bob.echo", client["runID"], "online"))
        self.assertEqual((proxy["status"]["todayTrafficIn"], proxy["status"]["todayTrafficOut"]), (2000, 2000))
        self.assertEqual(proxy["spec"]["tcp"]["remotePort"], remote)
        detail = (await web.request(f"/api/v2/clients/{client['key']}", auth=AUTH)).json()["data"]
        self.assertEqual((detail["status"]["phase"], detail["status"]["proxyCount"]), ("online", 1))
        traffic = (await web.request("/api/v2/proxies/bob.echo/traffic", auth=AUTH)).json()["data"]
        self.assertEqual((traffic["history"][-1]["trafficIn"], traffic["history"][-1]["trafficOut"]), (2000, 2000))

        relogin = LogWatch(self).next("logged in again")
        r = await web.request(f"/api/v2/clients/{client['key']}", method="DELETE", auth=AUTH)
        self.assertEqual((r.status, r.json()), (200, {"code": 200, "msg": "success", "data": None}))
        await with_timeout(relogin, 20)
        again = (await web.request(f"/api/v2/clients/{client['key']}", auth=AUTH)).json()["data"]
        self.assertTrue(again["online"])
        self.assertNotEqual(again["runID"], "")
