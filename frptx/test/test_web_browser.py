# -*- test-case-name: frptx.test.test_web_browser -*-
"""
The dashboard and the admin page in a real browser: headless Chromium loads
them from a site on 127.0.0.1:0 (over the in-memory fake state), and we check
the rendered DOM, the console, and keep a screenshot.

Skipped when no Chromium is installed (C{apt-get install chromium}), unless
C{FRPTX_REQUIRE_BROWSER=1}, which makes a missing browser a failure.
"""
from __future__ import annotations

import os
import re
import shutil

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial import unittest

from frptx.test.web_fakes import frpc_scenario, scenario
from frptx.test.web_support import serve
from frptx.web.server import frpc_site, frps_site

BROWSER_TIMEOUT = 90.0


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class _Collect(ProcessProtocol):
    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.ended: Deferred[int] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        code = 0 if reason.check(ProcessDone) else getattr(reason.value, "exitCode", None)
        self.ended.callback(code if code is not None else -1)


class ChromiumTestCase(unittest.TestCase):
    """
    A test case with headless Chromium (no tests of its own): C{setUp} skips (or
    fails, with C{FRPTX_REQUIRE_BROWSER=1}) without it; L{browse} runs it on a URL.
    """

    chromium: str | None
    profile: str

    def setUp(self) -> None:
        self.chromium = find_chromium()
        if self.chromium is None:
            if os.environ.get("FRPTX_REQUIRE_BROWSER") == "1":
                self.fail("FRPTX_REQUIRE_BROWSER=1 but no chromium found (apt-get install chromium)")
            raise unittest.SkipTest("no chromium installed (apt-get install chromium); "
                                    "set FRPTX_REQUIRE_BROWSER=1 to make this a failure")
        self.profile = self.mktemp()
        os.makedirs(self.profile)

    async def browse(self, url: str, *extra: str) -> tuple[str, str]:
        """Run headless Chromium on C{url}; its stdout and stderr. Killed after BROWSER_TIMEOUT."""
        args = [self.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={self.profile}",
                "--window-size=1280,900", "--virtual-time-budget=5000",
                "--enable-logging=stderr", "--v=0", *extra, url]
        proto = _Collect()
        proc = reactor.spawnProcess(proto, args[0], args, env=dict(os.environ))  # type: ignore[arg-type]
        killer = reactor.callLater(BROWSER_TIMEOUT, proc.signalProcess, "KILL")
        try:
            code = await proto.ended
        finally:
            if killer.active():
                killer.cancel()
        out, err = proto.out.decode("utf-8", "replace"), proto.err.decode("utf-8", "replace")
        self.assertEqual(code, 0, f"chromium exited {code}: {err[-2000:]}")
        return out, err

    def assert_clean_console(self, err: str) -> None:
        """
        Nothing on the page's console: no uncaught exception, no failed request, no
        console.error.  Chromium logs every console message at INFO without its level,
        and the pages log nothing when all is well, so any console line is a failure.
        """
        bad = [line for line in err.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
        self.assertEqual(bad, [])


class BrowserTests(ChromiumTestCase):
    async def test_frps_dashboard(self) -> None:
        state = scenario()
        # a week with some traffic on a few proxies, so the charts show something
        for day, (tin, tout) in enumerate([(300_000, 900_000), (120_000, 500_000), (0, 0), (450_000, 200_000),
                                           (80_000, 60_000), (220_000, 610_000), (50_000, 90_000)]):
            state.add_traffic("alice.ssh", day, tin, tout)
            state.add_traffic("alice.socks", day, tout // 3, tin // 2)
        served = serve(self, frps_site(state))
        url = f"http://127.0.0.1:{served.port}/static/"
        dom, err = await self.browse(url, "--dump-dom")
        self.assert_clean_console(err)
        self.assertIn("v0.65.0", dom)
        for name in ("alice.ssh", "alice.socks", "gone"):
            self.assertIn(f'data-name="{name}"', dom)
        for key in ("alice.run-a", "run-b"):
            self.assertIn(f'data-key="{key}"', dom)
        self.assertEqual(len(re.findall(r'<svg class="spark"', dom)), 3)
        self.assertIn('<div id="error" class="banner" hidden="">', dom)
        self.assertIn("example.test", dom)  # server info rendered

        shot = os.path.join(self.mktemp() + "-frps-dashboard.png")
        await self.browse(url, f"--screenshot={shot}")
        with open(shot, "rb") as f:
            png = f.read()
        self.assertTrue(png.startswith(b"\x89PNG"))
        self.assertGreater(len(png), 20_000)  # a rendered page, not a blank one

    async def test_frps_dashboard_http_tab_and_hostile_names(self) -> None:
        """Names from clients are text, never markup."""
        from frptx.web.state import ProxyConf

        state = scenario()
        state.add_proxy(ProxyConf("<img src=x onerror=alert(1)>", "tcp", remote_port=5))
        served = serve(self, frps_site(state))
        dom, err = await self.browse(f"http://127.0.0.1:{served.port}/static/", "--dump-dom")
        self.assert_clean_console(err)
        self.assertIn("&lt;img src=x onerror=alert(1)&gt;", dom)
        self.assertNotIn("<img src=x", dom)

    async def test_frpc_admin_page(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('serverAddr = "127.0.0.1"\nserverPort = 7000\n')
        served = serve(self, frpc_site(frpc_scenario(path)))
        url = f"http://127.0.0.1:{served.port}/static/"
        dom, err = await self.browse(url, "--dump-dom")
        self.assert_clean_console(err)
        for name in ("alice.ssh", "alice.denied", "alice.web"):
            self.assertIn(f'data-name="{name}"', dom)
        self.assertIn("port not allowed", dom)
        self.assertIn("127.0.0.1:55873", dom)
        shot = self.mktemp() + "-frpc-admin.png"
        await self.browse(url, f"--screenshot={shot}")
        self.assertTrue(os.path.getsize(shot) > 20_000)

    def test_console_check_catches_errors(self) -> None:
        """The console filter is not vacuous: Chromium's format for an uncaught error is caught."""
        for line in ('[1:1:1202/070618.981076:INFO:CONSOLE:1] "Uncaught ReferenceError: f is not defined", '
                     'source: http://127.0.0.1/static/app.js (1)',
                     '[1:1:1202/070618.981012:INFO:CONSOLE:1] "boom", source: http://127.0.0.1/static/app.js (1)'):
            self.assertRaises(self.failureException, self.assert_clean_console, "noise\n" + line + "\n")
        self.assert_clean_console("[1:1:1202/070527.780257:ERROR:dbus/bus.cc:405] Failed to connect to the bus\n")

