# -*- test-case-name: frptx.test.test_web_interop -*-
"""
Real Go frpc 0.65.0's admin commands (C{frpc status}, C{frpc reload}, C{frpc stop})
against our admin API: the strongest check that existing tools work with it.

Needs C{FRPTX_GO_FRP_DIR} (a directory with Go C{frpc}; C{.ci/fetch-go-frp} prints
one); skipped without it unless C{FRPTX_REQUIRE_GO_FRP=1}.
"""
from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial import unittest

from frptx.test.web_fakes import frpc_scenario
from frptx.test.web_support import serve
from frptx.web.server import frpc_site
from frptx.web.state import ConfigError


def go_frpc() -> str:
    d = os.environ.get("FRPTX_GO_FRP_DIR", "")
    path = os.path.join(d, "frpc")
    if d and os.access(path, os.X_OK):
        return path
    if os.environ.get("FRPTX_REQUIRE_GO_FRP") == "1":
        raise AssertionError(f"FRPTX_REQUIRE_GO_FRP=1 but no executable frpc in FRPTX_GO_FRP_DIR={d!r}")
    raise unittest.SkipTest("set FRPTX_GO_FRP_DIR to a directory with Go frpc 0.65.0 (.ci/fetch-go-frp)")


class _Run(ProcessProtocol):
    def __init__(self) -> None:
        self.out = b""
        self.ended: Deferred[int] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(0 if reason.check(ProcessDone) else getattr(reason.value, "exitCode", -1) or -1)


class GoFrpcCommandTests(unittest.TestCase):
    def setUp(self) -> None:
        self.frpc = go_frpc()
        self.state = frpc_scenario()
        served = serve(self, frpc_site(self.state, user="admin", password="pw", auth_fail_delay=0))
        self.config = self.mktemp() + ".toml"
        with open(self.config, "w") as f:
            f.write(f'serverAddr = "127.0.0.1"\nserverPort = 7000\nwebServer.addr = "127.0.0.1"\n'
                    f'webServer.port = {served.port}\nwebServer.user = "admin"\nwebServer.password = "pw"\n')
        self.state.path = self.config

    async def run_frpc(self, *args: str) -> tuple[int, str]:
        proto = _Run()
        argv = [self.frpc, *args, "-c", self.config, "--api-timeout", "20s"]
        proc = reactor.spawnProcess(proto, argv[0], argv, env={})
        killer = reactor.callLater(60, proc.signalProcess, "KILL")
        try:
            code = await proto.ended
        finally:
            if killer.active():
                killer.cancel()
        return code, proto.out.decode("utf-8", "replace")

    async def test_status(self) -> None:
        code, out = await self.run_frpc("status")
        self.assertEqual(code, 0, out)
        for text in ("Proxy Status...", "TCP", "alice.ssh", "127.0.0.1:55873", "alice.denied", "port not allowed",
                     "HTTPS", "s.example.test:60589", "socks5"):
            self.assertIn(text, out)

    async def test_reload(self) -> None:
        code, out = await self.run_frpc("reload")
        self.assertEqual((code, out.strip()), (0, "reload success"))
        self.assertEqual(self.state.reloads, [True])  # frpc's --strict_config defaults to true
        self.state.reload_error = ConfigError("unknown proxy type: nosuch")
        code, out = await self.run_frpc("reload", "--strict_config=false")
        self.assertEqual((code, out.strip()), (1, "api status code [400]"))
        self.assertEqual(self.state.reloads, [True, False])

    async def test_stop(self) -> None:
        code, out = await self.run_frpc("stop")
        self.assertEqual((code, out.strip()), (0, "stop success"))
        from twisted.internet.task import deferLater

        await deferLater(reactor, 0, lambda: None)
        self.assertEqual(self.state.stopped, 1)

    async def test_wrong_password(self) -> None:
        with open(self.config) as f:
            text = f.read().replace('password = "pw"', 'password = "nope"')
        with open(self.config, "w") as f:
            f.write(text)
        code, out = await self.run_frpc("status")
        self.assertEqual((code, out.strip()), (1, "api status code [401]"))
