"""Client plugins on real tunnels: frpc serves a proxy's work connections with its plugin.

Real clients (curl) go through frps' public port, every transport mode, with encryption
and compression on, and live behind a stock Go frps 0.65.0.
"""
from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet import reactor
from twisted.trial import unittest

from frptx.client.service import FrpcService
from frptx.config import ConfigError
from frptx.test.gofrp import GoFrp
from frptx.test.plugin_support import curl, listen_http_backend
from frptx.test.support import MODES, TOKEN, Tunnel, client_config, mode_cases
from frptx.test.test_e2e import async_test


def socks5_proxy(name: str = "socks", **transport: Any) -> dict[str, Any]:
    return {"name": name, "type": "tcp", "remotePort": 0, "transport": transport,
            "plugin": {"type": "socks5", "username": "u", "password": "p"}}


class PluginTunnelMixin:
    mode: dict[str, bool]
    timeout = 60

    @async_test
    async def test_socks5_plugin_through_the_tunnel(self) -> None:
        backend = listen_http_backend(self)
        t = Tunnel(self, self.mode)
        t.start_server()
        t.start_client([socks5_proxy(useEncryption=True, useCompression=True)])
        remote = await t.remote_port("socks")
        out, err, code = await curl("--socks5", f"127.0.0.1:{remote}", "--proxy-user", "u:p",
                                    f"http://127.0.0.1:{backend}/through/socks")
        self.assertEqual(code, 0, err)  # type: ignore[attr-defined]
        self.assertEqual(json.loads(out)["uri"], "/through/socks")  # type: ignore[attr-defined]
        out, err, code = await curl("--socks5", f"127.0.0.1:{remote}", "--proxy-user", "u:wrong",
                                    f"http://127.0.0.1:{backend}/")
        self.assertNotEqual(code, 0)  # type: ignore[attr-defined]

    @async_test
    async def test_static_file_plugin_with_a_range(self) -> None:
        root = os.path.abspath(self.mktemp())  # type: ignore[attr-defined]
        os.makedirs(root)
        with open(os.path.join(root, "data.bin"), "wb") as f:
            f.write(bytes(range(256)) * 4)
        t = Tunnel(self, self.mode)
        t.start_server()
        t.start_client([{"name": "files", "type": "tcp", "remotePort": 0,
                         "plugin": {"type": "static_file", "localPath": root, "stripPrefix": "static"}}])
        remote = await t.remote_port("files")
        out, err, code = await curl("-r", "0-99", f"http://127.0.0.1:{remote}/static/data.bin")
        self.assertEqual((code, out), (0, bytes(range(100))), err)  # type: ignore[attr-defined]


mode_cases(PluginTunnelMixin, globals(), unittest.TestCase)


class PluginConfigTests(unittest.TestCase):
    def test_bad_plugin_option_fails_with_its_key_path(self) -> None:
        cfg = client_config(7000, False, False, [
            {"name": "ok", "type": "tcp", "localPort": 1},
            {"name": "uds", "type": "tcp", "plugin": {"type": "unix_domain_socket", "unixPath": ""}}])
        with self.assertRaises(ConfigError) as e:
            FrpcService(cfg, reactor)
        self.assertIn("proxies[1].plugin.unixPath", str(e.exception))


class GoFrpsPluginTests(unittest.TestCase):
    """Our frpc's socks5 plugin behind a stock Go frps 0.65.0."""

    timeout = 60

    @async_test
    async def test_socks5_behind_go_frps(self) -> None:
        go = await GoFrp(self).frps(TOKEN, tcp_mux=True)
        backend = listen_http_backend(self)
        t = Tunnel(self, MODES["mux"])
        cfg = client_config(go.port, True, False, [socks5_proxy()])
        frpc = FrpcService(cfg, reactor, on_fatal=t.fatal.append)
        frpc.startService()
        t.frpc = frpc
        self.addCleanup(t.stop_checked, frpc, frpc.client.connections)
        remote = await t.remote_port("socks")
        out, err, code = await curl("--socks5-hostname", f"127.0.0.1:{remote}", "--proxy-user", "u:p",
                                    f"http://127.0.0.1:{backend}/via/go")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["uri"], "/via/go")


class ReadmeHttps2HttpTests(unittest.TestCase):
    """frp README's "Enable HTTPS for a local HTTP(S) service": an https proxy with https2http."""

    timeout = 60

    @async_test
    async def test_https_proxy_with_https2http_plugin(self) -> None:
        from frptx.test.test_e2e_vhost_https import start_frps

        backend = listen_http_backend(self)
        t = Tunnel(self, MODES["mux"])
        frps = start_frps(self, t)
        t.start_client([{"name": "test_https2http", "type": "https", "customDomains": ["test.example.com"],
                         "plugin": {"type": "https2http", "localAddr": f"127.0.0.1:{backend}",
                                    "hostHeaderRewrite": "127.0.0.1",
                                    "requestHeaders": {"set": {"x-from-where": "frp"}}}}])
        status = await t.frpc.proxy_manager.wait_settled("test_https2http")  # type: ignore[union-attr]
        self.assertEqual(status.phase, "running", status.error)
        assert frps.vhost_https is not None
        port = frps.vhost_https.bound_port
        out, err, code = await curl("-k", "--resolve", f"test.example.com:{port}:127.0.0.1",
                                    f"https://test.example.com:{port}/secure/path")
        self.assertEqual(code, 0, err)
        seen = json.loads(out)
        self.assertEqual(seen["uri"], "/secure/path")
        headers = {k.lower(): v for k, v in seen["headers"]}
        self.assertEqual((headers["host"], headers["x-from-where"]), ("127.0.0.1", "frp"))
