"""frps' dashboard wired to a running frps: REST API, Prometheus, kicking a client, client history."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial import unittest

from frptx.client.backoff import BackoffPolicy
from frptx.server.clients import ClientHistory, client_key
from frptx.test.support import Collector, EchoFactory, LogWatch, Tunnel, connect, listen_local, tcp_proxy, with_timeout
from frptx.test.test_e2e import async_test, free_port
from frptx.test.web_support import Served

MODE = {"tcp_mux": True, "tls": False}
AUTH = ("admin", "s3cret")


class DashboardTests(unittest.TestCase):
    timeout = 60

    async def start(self) -> tuple[Tunnel, Served, str]:
        t = Tunnel(self, MODE)
        web_port = free_port()
        frps = t.start_server(webServer={"addr": "127.0.0.1", "port": web_port, "user": AUTH[0],
                                         "password": AUTH[1]}, enablePrometheus=True)
        assert frps.web is not None and frps.web.listening is not None
        await frps.web.listening
        echo = listen_local(self, EchoFactory())
        t.start_client([tcp_proxy("echo", echo)], user="alice", clientID="laptop",
                       login_backoff=BackoffPolicy(initial=0.05, jitter=0))
        remote = await t.remote_port("echo")
        c = Collector(b"x" * 1000, half_close=True)
        await connect(remote, c)
        self.assertEqual(len(await with_timeout(c.done, 10)), 1000)
        return t, Served(web_port), "alice.echo"

    @async_test
    async def test_api_shows_the_running_proxy_and_its_traffic(self) -> None:
        t, web, name = await self.start()
        self.assertEqual((await web.request("/api/serverinfo")).status, 401)
        self.assertEqual((await web.request("/healthz")).status, 200)
        info = (await web.request("/api/serverinfo", auth=AUTH)).json()
        self.assertEqual(info["clientCounts"], 1)
        self.assertEqual(info["proxyTypeCount"], {"tcp": 1})
        proxies = (await web.request("/api/proxy/tcp", auth=AUTH)).json()["proxies"]
        [proxy] = proxies
        self.assertEqual((proxy["name"], proxy["status"]), (name, "online"))
        self.assertEqual((proxy["todayTrafficIn"], proxy["todayTrafficOut"]), (1000, 1000))
        traffic = (await web.request(f"/api/traffic/{name}", auth=AUTH)).json()
        self.assertEqual((traffic["trafficIn"][0], traffic["trafficOut"][0]), (1000, 1000))

    @async_test
    async def test_prometheus_series(self) -> None:
        t, web, name = await self.start()
        text = (await web.request("/metrics", auth=AUTH)).body.decode()
        samples = {(s.name, s.labels.get("name", "")): s.value
                   for family in text_string_to_metric_families(text) for s in family.samples}
        self.assertEqual(samples[("frp_server_client_counts", "")], 1)
        self.assertEqual(samples[("frp_server_traffic_in_total", name)], 1000)
        self.assertEqual(samples[("frp_server_traffic_out_total", name)], 1000)

    @async_test
    async def test_kick_a_client_then_it_logs_in_again(self) -> None:
        t, web, name = await self.start()
        assert t.frps is not None and t.frpc is not None
        key = client_key("alice", "laptop", "")
        [client] = (await web.request("/api/clients", auth=AUTH)).json()
        self.assertEqual((client["key"], client["online"]), (key, True))
        first_control = t.frps.server.clients.control(key)
        relogin = LogWatch(self).next("logged in again")
        self.assertEqual((await web.request(f"/api/clients/{key}", method="DELETE", auth=AUTH)).status, 200)
        self.assertTrue(first_control.closed)
        await with_timeout(relogin, 20)
        self.assertIsNotNone(t.frps.server.clients.control(key))
        self.assertIsNot(t.frps.server.clients.control(key), first_control)
        self.assertEqual((await web.request("/api/clients/nobody", method="DELETE", auth=AUTH)).status, 404)

    @async_test
    async def test_web_port_in_use_is_fatal_with_the_reason(self) -> None:
        t = Tunnel(self, MODE)
        from frptx.test.support import listen_local as occupy

        busy = occupy(self, EchoFactory())
        fatal: list[str] = []
        import dataclasses

        from twisted.internet import reactor

        from frptx.server.service import FrpsService
        from frptx.test.support import server_config

        cfg = dataclasses.replace(server_config(False, webServer={"addr": "127.0.0.1", "port": busy}), bind_port=0)
        frps = FrpsService(cfg, reactor, on_fatal=fatal.append)
        frps.startService()
        self.addCleanup(t.stop_checked, frps, frps.server.connections)
        self.assertEqual(len(fatal), 1)
        self.assertIn(f"dashboard cannot listen on 127.0.0.1:{busy}", fatal[0])


class ClientHistoryTests(unittest.TestCase):
    def control(self, run_id: str, user: str = "u", client_id: str = "") -> SimpleNamespace:
        login = SimpleNamespace(user=user, client_id=client_id, hostname="h", os="linux", arch="amd64",
                                version="0.65.0")
        transport = SimpleNamespace(getPeer=lambda: SimpleNamespace(host="127.0.0.1"))
        return SimpleNamespace(login=login, run_id=run_id, protocol=SimpleNamespace(transport=transport),
                               proxies={})

    def test_reconnect_keeps_first_seen_and_old_close_does_not_hide_new_login(self) -> None:
        now = [100.0]
        history = ClientHistory(clock=lambda: now[0])
        first, second = self.control("r1", client_id="c"), self.control("r2", client_id="c")
        history.online(first)
        now[0] = 200.0
        history.online(second)  # same key u.c: a new login before the old control closed
        history.offline(first)
        [(seen, live)] = history.entries()
        self.assertIs(live, second)
        self.assertEqual((seen.first_connected_at, seen.last_connected_at, seen.disconnected_at), (100, 200, None))

    def test_gone_clients_are_bounded(self) -> None:
        history = ClientHistory(limit=2)
        controls = [self.control(f"r{i}") for i in range(4)]
        for c in controls:
            history.online(c)
        for c in controls[:3]:
            history.offline(c)
        self.assertEqual([s.key for s, _ in history.entries()], ["u.r3", "u.r1", "u.r2"])


class FrpsReloadTests(unittest.TestCase):
    """frps reload (SIGHUP): token, allowPorts, maxPortsPerClient and dashboard credentials change live."""

    timeout = 60

    @async_test
    async def test_reload_applies_the_safe_settings_and_names_the_rest(self) -> None:
        import yaml
        from twisted.internet import reactor

        from frptx.config import load_server_config
        from frptx.server.service import FrpsService

        web_port = free_port()
        doc = {"bindAddr": "127.0.0.1", "bindPort": free_port(), "proxyBindAddr": "127.0.0.1",
               "auth": {"token": "old"}, "webServer": {"addr": "127.0.0.1", "port": web_port, "user": "a",
                                                       "password": "1"}}
        path = self.mktemp() + ".yaml"
        with open(path, "w") as f:
            yaml.safe_dump(doc, f)
        frps = FrpsService(load_server_config(path), reactor, config_path=path)
        frps.startService()
        t = Tunnel(self, MODE)
        self.addCleanup(t.stop_checked, frps, frps.server.connections)
        assert frps.web is not None and frps.web.listening is not None
        await frps.web.listening
        web = Served(web_port)
        echo = listen_local(self, EchoFactory())
        t.frps = frps
        t.start_client([tcp_proxy("before", echo)], token="old")
        await t.remote_port("before")

        allowed = free_port()
        doc.update(auth={"token": "new"}, allowPorts=[{"single": allowed}], maxPortsPerClient=3,
                   webServer=dict(doc["webServer"], password="2"), userConnTimeout=20)
        with open(path, "w") as f:
            yaml.safe_dump(doc, f)
        logged = LogWatch(self).next("reload of")
        self.assertTrue(frps.reload())
        line = await with_timeout(logged, 5)
        self.assertIn("applied auth.token, allowPorts, maxPortsPerClient, webServer credentials", line)
        self.assertIn("needs a restart to change: user_conn_timeout", line)
        self.assertEqual((await web.request("/api/serverinfo", auth=("a", "1"))).status, 401)
        self.assertEqual((await web.request("/api/serverinfo", auth=("a", "2"))).status, 200)
        # the client that logged in with the old token keeps working; new ports follow allowPorts
        c = Collector(b"still here", half_close=True)
        await connect(await t.remote_port("before"), c)
        self.assertEqual(await with_timeout(c.done, 10), b"still here")
        assert t.frpc is not None
        t.frpc.proxy_manager.apply(dataclasses.replace(t.frpc.client.config, proxies=(
            *t.frpc.client.config.proxies, *load_client_proxies([tcp_proxy("denied", echo, 1)]),
            *load_client_proxies([tcp_proxy("granted", echo, allowed)]))))
        self.assertEqual((await t.frpc.proxy_manager.wait_settled("denied")).error, "port not allowed")
        self.assertEqual(await t.remote_port("granted"), allowed)
        # an invalid file changes nothing
        with open(path, "w") as f:
            f.write("bindPrt: 1\n")
        self.assertFalse(frps.reload())
        self.assertEqual(frps.server.config.auth.token, "new")


def load_client_proxies(proxies: list[dict[str, object]]) -> tuple[object, ...]:
    from frptx.config import parse_client_config

    return parse_client_config({"proxies": proxies}).proxies
