"""frpc's admin API on a running frpc: status, reload (proxies and visitors), and `frpc status/reload`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from twisted.trial import unittest

from frptx.config import load_client_config
from frptx.test.support import TOKEN, Collector, EchoFactory, LogWatch, Tunnel, connect, listen_local, with_timeout
from frptx.test.test_cli import ProcessTestCase
from frptx.test.test_e2e import async_test, free_port
from frptx.test.web_support import Served

MODE = {"tcp_mux": True, "tls": False}


class AdminTests(ProcessTestCase, unittest.TestCase):
    timeout = 60

    async def start(self, proxies: list[dict[str, Any]]) -> tuple[Tunnel, Served, str, dict[str, Any]]:
        t = Tunnel(self, MODE)
        frps = t.start_server()
        web_port = free_port()
        doc: dict[str, Any] = {
            "serverAddr": "127.0.0.1", "serverPort": frps.bound_port, "auth": {"token": TOKEN},
            "transport": {"tcpMux": True, "tls": {"enable": False}},
            "webServer": {"addr": "127.0.0.1", "port": web_port, "user": "admin", "password": "pw"},
            "proxies": proxies,
        }
        path = self.write("frpc.yaml", yaml.safe_dump(doc))
        from twisted.internet import reactor

        from frptx.client.service import FrpcService

        frpc = FrpcService(load_client_config(path), reactor, config_path=path, on_fatal=t.fatal.append)
        frpc.startService()
        t.frpc = frpc
        self.addCleanup(t.stop_checked, frpc, frpc.client.connections)
        assert frpc.web is not None and frpc.web.listening is not None
        await frpc.web.listening
        return t, Served(web_port), path, doc

    @async_test
    async def test_status_and_reload_through_the_api_including_visitors(self) -> None:
        echo = listen_local(self, EchoFactory())
        t, web, path, doc = await self.start([
            {"name": "echo", "type": "tcp", "localIP": "127.0.0.1", "localPort": echo},
            {"name": "secret", "type": "stcp", "secretKey": "k", "localIP": "127.0.0.1", "localPort": echo}])
        assert t.frpc is not None
        await t.remote_port("echo")
        await t.frpc.proxy_manager.wait_settled("secret")
        auth = ("admin", "pw")
        self.assertEqual((await web.request("/api/status")).status, 401)
        status = (await web.request("/api/status", auth=auth)).json()
        self.assertEqual([p["status"] for p in status["tcp"]], ["running"])
        self.assertEqual([p["name"] for p in status["stcp"]], ["secret"])

        # reload adds a visitor (ignored on reload before) and a proxy
        visitor_port = free_port()
        doc["visitors"] = [{"name": "v", "type": "stcp", "serverName": "secret", "secretKey": "k",
                            "bindAddr": "127.0.0.1", "bindPort": visitor_port}]
        doc["proxies"].append({"name": "more", "type": "tcp", "localIP": "127.0.0.1", "localPort": echo})
        Path(path).write_text(yaml.safe_dump(doc))
        self.assertEqual((await web.request("/api/reload", auth=auth)).status, 200)
        await t.remote_port("more")
        c = Collector(b"through a reloaded visitor", half_close=True)
        await connect(visitor_port, c)
        self.assertEqual(await with_timeout(c.done, 10), b"through a reloaded visitor")

        # an invalid file: 400 with the reason, nothing changes
        Path(path).write_text(yaml.safe_dump(dict(doc, proxies=[{"name": "x", "type": "tcp", "localPrt": 1}])))
        bad = await web.request("/api/reload", auth=auth)
        self.assertEqual(bad.status, 400)
        self.assertIn(b"localPrt: unknown key", bad.body)
        self.assertEqual(sorted(t.frpc.proxy_manager.proxies), ["echo", "more", "secret"])

    @async_test
    async def test_frpc_status_and_reload_commands(self) -> None:
        echo = listen_local(self, EchoFactory())
        t, web, path, doc = await self.start([{"name": "echo", "type": "tcp", "localIP": "127.0.0.1",
                                               "localPort": echo}])
        port = await t.remote_port("echo")
        status = self.spawn("frpc", "status", "-c", path)
        outcome = await with_timeout(status.ended, 30)
        self.assertEqual(outcome.status, 0, outcome.output)
        self.assertIn("TCP\nName  Status   LocalAddr", outcome.output)
        self.assertIn(f"127.0.0.1:{port}", outcome.output)
        reloaded = LogWatch(self).next("reload:")
        outcome = await with_timeout(self.spawn("frpc", "reload", "-c", path).ended, 30)
        self.assertEqual((outcome.status, outcome.output), (0, "reload success\n"))
        await with_timeout(reloaded, 10)
