# -*- test-case-name: frptx.test.test_web_frps_api -*-
"""
frps' REST API against the golden captures of real Go frp 0.65.0, and its
behaviour (auth, kick, prune, client filters) over real sockets on 127.0.0.1.
"""
from __future__ import annotations

import json
import time

from twisted.internet.task import Clock
from twisted.trial import unittest
from twisted.web import server
from twisted.web.test.requesthelper import DummyRequest

from frptx.test.web_fakes import FakeFrpsState, scenario
from frptx.test.web_support import golden, serve, shape
from frptx.web.frps_api import go_time, out_conf
from frptx.web.server import frps_site
from frptx.web.state import ProxyConf

AUTH = ("admin", "secret")
#: keys newer frp (0.68) added to proxy objects; 0.65 tools ignore them
NEWER_PROXY_KEYS = {"user", "clientID"}


def strip_newer(value: object) -> object:
    """Our proxy JSON without the keys 0.65.0 does not have, for the shape comparison."""
    if isinstance(value, dict):
        return {k: strip_newer(v) for k, v in value.items() if k not in NEWER_PROXY_KEYS}
    if isinstance(value, list):
        return [strip_newer(v) for v in value]
    return value


class GoldenTests(unittest.TestCase):
    """Every captured frps exchange: same status, content type, and JSON shape (or exact body)."""

    def setUp(self) -> None:
        self.gold = golden("frps")
        self.state = scenario()
        self.served = serve(self, frps_site(self.state, user=AUTH[0], password=AUTH[1],
                                            enable_prometheus=True, auth_fail_delay=0))

    async def check(self, name: str, path: str, method: str = "GET", auth: tuple[str, str] | None = AUTH,
                    exact: bool = False) -> object:
        g = self.gold[name]
        r = await self.served.request(path, method, auth=auth)
        self.assertEqual(r.status, g["status"], name)
        self.assertEqual(r.headers.get("content-type"), g["headers"].get("Content-Type"), name)
        if exact:
            self.assertEqual(r.body.decode(), g["body"], name)
            return None
        ours = r.json()
        self.assertEqual(shape(strip_newer(ours)), shape(json.loads(g["body"])), name)
        return ours

    async def test_serverinfo(self) -> None:
        ours = await self.check("serverinfo", "/api/serverinfo")
        assert isinstance(ours, dict)
        self.assertEqual(ours["version"], "0.65.0")
        self.assertEqual(ours["allowPortsStr"], "6000,6001,6002,1000-1010")
        self.assertIs(ours["tlsForce"], True)
        self.assertEqual(ours["totalTrafficIn"], 1000)
        self.assertEqual(ours["clientCounts"], 1)
        self.assertEqual(ours["proxyTypeCount"], json.loads(self.gold["serverinfo"]["body"])["proxyTypeCount"])

    async def test_proxies_by_type(self) -> None:
        for t in ("tcp", "udp", "http", "https", "stcp", "xtcp", "tcpmux", "sudp", "nosuchtype"):
            ours = await self.check(f"proxy_{t}", f"/api/proxy/{t}")
            theirs = json.loads(self.gold[f"proxy_{t}"]["body"])
            assert isinstance(ours, dict)
            self.assertEqual([p["name"] for p in ours["proxies"]], [p["name"] for p in theirs["proxies"]], t)
            self.assertEqual([p["status"] for p in ours["proxies"]], [p["status"] for p in theirs["proxies"]], t)
            # the conf objects are frp's, key for key, apart from the ports frp picked
            for a, b in zip(ours["proxies"], theirs["proxies"], strict=True):
                if b["conf"] and "remotePort" in b["conf"]:
                    b["conf"]["remotePort"] = a["conf"]["remotePort"]
                self.assertEqual(a["conf"], b["conf"], t)

    async def test_one_proxy(self) -> None:
        await self.check("proxy_tcp_one", "/api/proxy/tcp/alice.ssh")
        await self.check("proxy_http_one", "/api/proxy/http/alice.web")
        ours = await self.check("proxy_tcp_offline", "/api/proxy/tcp/gone")
        assert isinstance(ours, dict)
        self.assertEqual((ours["status"], ours["conf"]), ("offline", None))
        self.assertNotEqual(ours["lastCloseTime"], "")

    async def test_not_found(self) -> None:
        await self.check("proxy_tcp_missing", "/api/proxy/tcp/nosuch", exact=True)
        await self.check("proxy_wrong_type", "/api/proxy/udp/alice.ssh", exact=True)
        await self.check("traffic_missing", "/api/traffic/nosuch", exact=True)

    async def test_traffic(self) -> None:
        ours = await self.check("traffic", "/api/traffic/alice.ssh")
        self.assertEqual(ours, {"name": "alice.ssh", "trafficIn": [1000, 0, 5000, 0, 0, 0, 0],
                                "trafficOut": [1000, 0, 70000, 0, 0, 0, 0]})

    async def test_auth_and_plumbing(self) -> None:
        await self.check("healthz", "/healthz", auth=None, exact=True)
        await self.check("unauthorized", "/api/serverinfo", auth=None, exact=True)
        await self.check("bad_password", "/api/serverinfo", auth=("admin", "nope"), exact=True)
        r = await self.served.request("/api/serverinfo")
        self.assertEqual(r.headers["www-authenticate"], self.gold["unauthorized"]["headers"]["WWW-Authenticate"])
        await self.check("root", "/", exact=True)
        r = await self.served.request("/", auth=AUTH)
        self.assertEqual(r.headers["location"], "/static/")
        await self.check("method_not_allowed", "/api/serverinfo", method="POST", exact=True)
        # not even the 404 or the static files are visible without auth
        self.assertEqual((await self.served.request("/nosuch")).status, 401)
        self.assertEqual((await self.served.request("/static/")).status, 401)
        self.assertEqual((await self.served.request("/metrics")).status, 401)
        self.assertEqual((await self.served.request("/nosuch", auth=AUTH)).body, b"404 page not found\n")

    async def test_prune(self) -> None:
        await self.check("delete_no_status", "/api/proxies", method="DELETE", exact=True)
        self.assertIn("gone", self.state.proxies_by_name)
        await self.check("delete_offline", "/api/proxies?status=offline", method="DELETE", exact=True)
        self.assertNotIn("gone", self.state.proxies_by_name)
        ours = await self.check("proxy_tcp_after_prune", "/api/proxy/tcp")
        assert isinstance(ours, dict)
        self.assertEqual([p["name"] for p in ours["proxies"]], ["alice.socks", "alice.ssh"])


class NewerEndpointTests(unittest.TestCase):
    """C{/api/clients}, C{/api/proxies/{name}} (frp 0.68 shapes) and our client kick."""

    def setUp(self) -> None:
        self.state = scenario()
        self.served = serve(self, frps_site(self.state))

    async def test_clients(self) -> None:
        r = await self.served.request("/api/clients")
        self.assertEqual((r.status, r.headers["content-type"]), (200, "application/json"))
        clients = r.json()
        self.assertEqual([c["key"] for c in clients], ["run-b", "alice.run-a"])  # sorted by user, clientID, key
        alice = clients[1]
        self.assertEqual(set(alice), {"key", "user", "clientID", "runID", "version", "hostname", "os", "arch",
                                      "clientIP", "firstConnectedAt", "lastConnectedAt", "online", "proxyCount"})
        self.assertEqual((alice["online"], alice["proxyCount"], alice["os"]), (True, 8, "linux"))
        self.assertIsInstance(alice["firstConnectedAt"], int)
        self.assertIn("disconnectedAt", clients[0])
        for query, keys in (("status=online", ["alice.run-a"]), ("status=offline", ["run-b"]),
                            ("user=alice", ["alice.run-a"]), ("runId=run-b", ["run-b"]), ("status=ALL", None)):
            r = await self.served.request("/api/clients?" + query)
            got = [c["key"] for c in r.json()]
            self.assertEqual(got, keys if keys is not None else ["run-b", "alice.run-a"], query)

    async def test_client_detail(self) -> None:
        r = await self.served.request("/api/clients/alice.run-a")
        self.assertEqual(r.json()["hostname"], "alice-host")
        r = await self.served.request("/api/clients/nobody")
        self.assertEqual((r.status, r.json()), (404, {"Code": 404, "Msg": "client nobody not found"}))

    async def test_kick(self) -> None:
        r = await self.served.request("/api/clients/alice.run-a", method="DELETE")
        self.assertEqual((r.status, r.json()), (200, {"Code": 200, "Msg": "success"}))
        self.assertEqual(self.state.kicked, ["alice.run-a"])
        r = await self.served.request("/api/proxy/tcp/alice.ssh")
        self.assertEqual(r.json()["status"], "offline")
        # kicking it again: it is offline now
        r = await self.served.request("/api/clients/alice.run-a", method="DELETE")
        self.assertEqual(r.status, 404)

    async def test_proxy_by_name(self) -> None:
        r = await self.served.request("/api/proxies/alice.web")
        self.assertEqual((r.status, r.headers["content-type"]), (200, "application/json"))
        body = r.json()
        self.assertEqual((body["name"], body["user"], body["conf"]["subdomain"]), ("alice.web", "alice", "www"))
        r = await self.served.request("/api/proxies/nosuch")
        self.assertEqual((r.status, r.json()), (404, {"Code": 404, "Msg": "no proxy info found"}))

    async def test_encoded_names(self) -> None:
        """A proxy name with characters that need escaping in a URL still resolves."""
        self.state.add_proxy(ProxyConf("we ird/<x>", "tcp", remote_port=1))
        r = await self.served.request("/api/traffic/we%20ird%2F%3Cx%3E")
        self.assertEqual(r.status, 200)
        self.assertIn(b"\\u003cx\\u003e", r.body)  # Go's HTML-safe escaping
        self.assertEqual(r.json()["name"], "we ird/<x>")


class UnitTests(unittest.TestCase):
    def test_auth_fail_delay(self) -> None:
        """A wrong password is answered only after the delay, on the injected clock."""
        clock = Clock()
        site = frps_site(FakeFrpsState(), user="u", password="p", clock=clock)
        request = DummyRequest([b"api", b"serverinfo"])
        request.requestHeaders.addRawHeader(b"authorization", b"Basic dTp4")  # u:x
        res = site.getResourceFor(request)
        self.assertEqual(res.render(request), server.NOT_DONE_YET)
        self.assertEqual(request.finished, 0)
        clock.advance(0.2)
        self.assertEqual((request.responseCode, b"".join(request.written)), (401, b"Unauthorized\n"))

    def test_auth_accepts_only_both(self) -> None:
        site = frps_site(FakeFrpsState(), user="u", password="p", clock=Clock(), auth_fail_delay=0)
        for header, ok in ((b"Basic dTpw", True), (b"basic dTpw", True), (b"Basic dTp4", False),
                           (b"Basic eDpw", False), (b"Basic !!!", False), (b"Bearer dTpw", False),
                           (b"Basic dXA=", False)):
            request = DummyRequest([b"api", b"serverinfo"])
            request.path = b"/api/serverinfo"  # type: ignore[attr-defined]
            request.requestHeaders.addRawHeader(b"authorization", header)
            res = site.getResourceFor(request)
            res.render(request)
            self.assertEqual(request.responseCode in (None, 200), ok, header)

    def test_go_time(self) -> None:
        ts = time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1))
        self.assertEqual(go_time(ts), "03-04 05:06:07")
        self.assertEqual(go_time(None), "")

    def test_out_conf_options(self) -> None:
        c = out_conf(ProxyConf("a", "tcp", use_encryption=True, use_compression=True, bandwidth_limit="1MB",
                               bandwidth_limit_mode="server", group="g", metas={"k": "v"}, remote_port=9))
        self.assertEqual(c["transport"], {"useEncryption": True, "useCompression": True,
                                          "bandwidthLimit": "1MB", "bandwidthLimitMode": "server"})
        self.assertEqual((c["metadatas"], c["loadBalancer"], c["remotePort"]), ({"k": "v"}, {"group": "g"}, 9))
        sudp = out_conf(ProxyConf("s", "sudp"))
        self.assertEqual(list(sudp), sorted(sudp))


class ServerInfoFromConfigTests(unittest.TestCase):
    def test_from_frps_toml(self) -> None:
        """The frps configuration of the golden capture gives the serverinfo frp answered."""
        from frptx.config import parse_server_config
        from frptx.web.state import server_info_from_config

        gold = json.loads(golden("frps")["serverinfo"]["body"])
        cfg = parse_server_config({
            "bindPort": gold["bindPort"], "maxPortsPerClient": 10,
            "allowPorts": [{"single": 55873}, {"single": 59033}, {"single": 47379}, {"start": 1000, "end": 1010}],
            "transport": {"maxPoolCount": 7, "heartbeatTimeout": 90, "tls": {"force": True}},
        })
        info = server_info_from_config(cfg, "0.65.0")
        self.assertEqual((info.allow_ports, info.max_pool_count, info.tls_force, info.bind_port),
                         (gold["allowPortsStr"], 7, True, gold["bindPort"]))
