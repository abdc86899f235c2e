# -*- test-case-name: frptx.test.test_web_frpc_api -*-
"""frpc's admin API against the golden captures of real Go frpc 0.65.0."""
from __future__ import annotations

import json
import os

from twisted.trial import unittest

from frptx.test.web_fakes import frpc_scenario
from frptx.test.web_support import golden, serve, shape
from frptx.web.frpc_api import join_host_port
from frptx.web.server import frpc_site
from frptx.web.state import ConfigError, ProxyStatus

AUTH = ("cadmin", "csecret")


class FrpcAPITests(unittest.TestCase):
    def setUp(self) -> None:
        self.gold = golden("frpc")
        self.path = self.mktemp()
        with open(self.path, "w") as f:
            f.write(self.gold["config"]["body"])
        self.state = frpc_scenario(self.path)
        self.served = serve(self, frpc_site(self.state, user=AUTH[0], password=AUTH[1], auth_fail_delay=0))

    async def check(self, name: str, path: str, method: str = "GET", body: bytes | None = None,
                    auth: tuple[str, str] | None = AUTH, exact: bool = True) -> bytes:
        g = self.gold[name]
        r = await self.served.request(path, method, auth=auth, body=body)
        self.assertEqual(r.status, g["status"], name)
        self.assertEqual(r.headers.get("content-type"), g["headers"].get("Content-Type"), name)
        if exact:
            self.assertEqual(r.body.decode(), g["body"], name)
        return r.body

    async def test_status(self) -> None:
        body = await self.check("status", "/api/status")
        # with the same statuses, frp's bytes exactly (keys, grouping, order, remote address prefixes)
        self.assertEqual(shape(json.loads(body)), shape(json.loads(self.gold["status"]["body"])))

    async def test_status_empty(self) -> None:
        self.state.statuses = []
        r = await self.served.request("/api/status", auth=AUTH)
        self.assertEqual(r.body, b"{}")

    async def test_config_roundtrip(self) -> None:
        await self.check("config", "/api/config")
        await self.check("put_empty", "/api/config", method="PUT", body=b"")
        await self.check("put_ok", "/api/config", method="PUT", body=b"serverPort = 7001\n")
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"serverPort = 7001\n")
        r = await self.served.request("/api/config", auth=AUTH)
        self.assertEqual(r.body, b"serverPort = 7001\n")

    async def test_config_errors(self) -> None:
        self.state.path = ""
        r = await self.served.request("/api/config", auth=AUTH)
        self.assertEqual((r.status, r.body), (400, b"frpc has no config file path"))
        missing = os.path.join(self.mktemp(), "x.toml")
        self.state.path = missing
        r = await self.served.request("/api/config", auth=AUTH)
        self.assertEqual((r.status, r.body.decode()), (400, f"open {missing}: no such file or directory"))
        r = await self.served.request("/api/config", "PUT", auth=AUTH, body=b"x")
        self.assertEqual(r.status, 500)
        self.assertTrue(r.body.startswith(b"write content to frpc config file error: open "))

    async def test_new_config_file_is_private(self) -> None:
        path = self.mktemp()
        self.state.path = path
        await self.served.request("/api/config", "PUT", auth=AUTH, body=b"a = 1\n")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)

    async def test_reload(self) -> None:
        await self.check("reload", "/api/reload")
        self.state.reload_error = ConfigError('json: unknown field "noSuchKey"')
        await self.check("reload_strict", "/api/reload?strictConfig=true")
        self.assertEqual(self.state.reloads, [False, True])
        self.state.reload_error = ConfigError("unknown proxy type: nosuch")
        await self.check("reload_invalid", "/api/reload")
        for q, strict in (("1", True), ("T", True), ("false", False), ("bogus", False)):
            await self.served.request(f"/api/reload?strictConfig={q}", auth=AUTH)
            self.assertEqual(self.state.reloads[-1], strict, q)
        self.state.reload_error = RuntimeError("boom")
        r = await self.served.request("/api/reload", auth=AUTH)
        self.assertEqual((r.status, r.body), (500, b"boom"))
        self.flushLoggedErrors(RuntimeError)

    async def test_stop(self) -> None:
        await self.check("stop_get", "/api/stop")
        self.assertEqual(self.state.stopped, 0)
        await self.check("stop", "/api/stop", method="POST")
        # the stop runs after the response went out, on the next reactor turn
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        await deferLater(reactor, 0, lambda: None)
        self.assertEqual(self.state.stopped, 1)

    async def test_auth(self) -> None:
        await self.check("healthz", "/healthz", auth=None)
        await self.check("unauthorized", "/api/status", auth=None)


class UnitTests(unittest.TestCase):
    def test_join_host_port(self) -> None:
        self.assertEqual(join_host_port("::1", 80), "[::1]:80")
        self.assertEqual(join_host_port("127.0.0.1", 80), "127.0.0.1:80")
        self.assertEqual(join_host_port("example.test", 80), "example.test:80")

    def test_status_entry_error_hides_remote(self) -> None:
        from frptx.web.frpc_api import status_entry

        e = status_entry(ProxyStatus("a", "tcp", "start error", err="x", remote_addr=":1"), "s")
        self.assertEqual((e["remote_addr"], e["local_addr"]), ("", ""))
        e = status_entry(ProxyStatus("a", "udp", "running", local_ip="::1", local_port=5, remote_addr=":1"), "s")
        self.assertEqual((e["remote_addr"], e["local_addr"]), ("s:1", "[::1]:5"))


class LimitTests(unittest.TestCase):
    async def test_config_too_large(self) -> None:
        """A huge PUT is refused without touching the file (the body is never read whole)."""
        from frptx.web.frpc_api import MAX_CONFIG_BYTES

        path = self.mktemp()
        with open(path, "w") as f:
            f.write("a = 1\n")
        served = serve(self, frpc_site(frpc_scenario(path)))
        r = await served.request("/api/config", "PUT", body=b"#" * (MAX_CONFIG_BYTES + 1))
        self.assertEqual(r.status, 413)
        with open(path) as f:
            self.assertEqual(f.read(), "a = 1\n")
        r = await served.request("/healthz", "POST")
        self.assertEqual(r.status, 200)
