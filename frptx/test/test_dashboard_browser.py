# -*- test-case-name: frptx.test.test_dashboard_browser -*-
"""
The frps dashboard and the frpc admin page in headless Chromium against a real
in-process frps and frpc on 127.0.0.1 (not the fake state of
L{frptx.test.test_web_browser}): a tcp and a udp proxy, real bytes through the
tcp one, then the rendered pages must show them.

Screenshots are kept in the test's temporary directory; with
C{FRPTX_SCREENSHOTS=<dir>} they are also copied there (that is how
C{docs/dashboard.png} is made).  Skipped without Chromium unless
C{FRPTX_REQUIRE_BROWSER=1}.
"""
from __future__ import annotations

import html
import os
import re
import shutil

from frptx.client.backoff import BackoffPolicy
from frptx.test.support import Collector, EchoFactory, Tunnel, connect, listen_local, tcp_proxy, with_timeout
from frptx.test.test_e2e import free_port
from frptx.test.test_web_browser import ChromiumTestCase

MODE = {"tcp_mux": True, "tls": False}
#: enough bytes that the page shows kilobytes
PAYLOAD = b"frptx" * 10_000


def row(dom: str, attr: str, value: str) -> list[str]:
    """The text of the cells of the table row with C{attr="value"} in a dumped DOM (fails if absent)."""
    m = re.search(rf'<tr {attr}="{re.escape(value)}">(.*?)</tr>', dom, re.S)
    if m is None:
        raise AssertionError(f"no row {attr}={value!r} in the page")
    return [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", m.group(1), re.S)]


class RunningDashboardTests(ChromiumTestCase):
    timeout = 240

    async def start(self) -> tuple[Tunnel, int, int, int]:
        """frps with a dashboard, frpc with an admin page, a tcp and a udp proxy; bytes through the tcp one."""
        t = Tunnel(self, MODE)
        web_port, admin_port = free_port(), free_port()
        # a fixed bind port, so that the page shows the real one rather than the 0 of "any port"
        frps = t.start_server(bind_port=free_port(), webServer={"addr": "127.0.0.1", "port": web_port})
        assert frps.web is not None and frps.web.listening is not None
        await frps.web.listening
        echo = listen_local(self, EchoFactory())
        udp = {"name": "dns", "type": "udp", "localIP": "127.0.0.1", "localPort": free_port(), "remotePort": 0}
        config_path = self.mktemp() + ".toml"
        with open(config_path, "w") as f:  # what the admin page's editor shows
            f.write(f'serverAddr = "127.0.0.1"\nserverPort = {frps.bound_port}\nuser = "alice"\n'
                    f'clientID = "laptop"\n\n[webServer]\naddr = "127.0.0.1"\nport = {admin_port}\n\n'
                    f'[[proxies]]\nname = "echo"\ntype = "tcp"\nlocalPort = {echo}\n\n'
                    f'[[proxies]]\nname = "dns"\ntype = "udp"\nlocalPort = {udp["localPort"]}\n')
        frpc = t.start_client([tcp_proxy("echo", echo), udp], config_path=config_path, user="alice",
                              clientID="laptop", login_backoff=BackoffPolicy(initial=0.05, jitter=0),
                              webServer={"addr": "127.0.0.1", "port": admin_port})
        assert frpc.web is not None and frpc.web.listening is not None
        await frpc.web.listening
        remote = await t.remote_port("echo")
        await t.remote_port("dns")
        c = Collector(PAYLOAD, half_close=True)
        await connect(remote, c)
        self.assertEqual(len(await with_timeout(c.done, 20)), len(PAYLOAD))
        return t, web_port, admin_port, remote

    async def screenshot(self, url: str, name: str) -> str:
        """A PNG of C{url} kept as an artifact (and copied to C{$FRPTX_SCREENSHOTS} if set)."""
        shot = self.mktemp() + f"-{name}.png"
        await self.browse(url, f"--screenshot={shot}")
        with open(shot, "rb") as f:
            png = f.read()
        self.assertTrue(png.startswith(b"\x89PNG"))
        self.assertGreater(len(png), 20_000)  # a rendered page, not a blank one
        out = os.environ.get("FRPTX_SCREENSHOTS")
        if out:
            os.makedirs(out, exist_ok=True)
            shutil.copy(shot, os.path.join(out, f"{name}.png"))
        return shot

    async def test_dashboard_and_admin_page_show_the_running_proxies(self) -> None:
        t, web_port, admin_port, remote = await self.start()
        base = f"http://127.0.0.1:{web_port}/static/"

        dom, err = await self.browse(base, "--dump-dom")
        self.assert_clean_console(err)
        self.assertIn('<div id="error" class="banner" hidden="">', dom)
        name, remote_cell, client, conns, today_in, today_out, _chart, status, started, closed = \
            row(dom, "data-name", "alice.echo")
        self.assertEqual((name, remote_cell, status, closed), ("alice.echo", f":{remote}", "online", ""))
        self.assertIn("alice.laptop", client)
        # 50 000 bytes each way went through it today
        self.assertEqual((today_in, today_out), ("48.8 KB", "48.8 KB"))
        self.assertNotEqual(started, "")
        key, user, *_, proxies, _kick = row(dom, "data-key", "alice.laptop")
        self.assertEqual((key, user, proxies), ("alice.laptop", "alice", "2"))
        self.assertIn('data-type="udp"', dom)

        # the udp proxy is on its own tab, which the URL's fragment selects
        dom, err = await self.browse(base + "#udp", "--dump-dom")
        self.assert_clean_console(err)
        name, remote_cell, *_, status, _started, _closed = row(dom, "data-name", "alice.dns")
        dns_port = await t.remote_port("dns")
        self.assertEqual((name, remote_cell, status), ("alice.dns", f":{dns_port}", "online"))
        self.assertNotIn('data-name="alice.echo"', dom)
        await self.screenshot(base, "dashboard")

        # frpc's admin page lists both proxies, running
        admin = f"http://127.0.0.1:{admin_port}/static/"
        dom, err = await self.browse(admin, "--dump-dom")
        self.assert_clean_console(err)
        for proxy, kind, remote_addr in (("echo", "tcp", f"127.0.0.1:{remote}"),
                                         ("dns", "udp", f"127.0.0.1:{dns_port}")):
            cells = row(dom, "data-name", proxy)
            self.assertEqual((cells[0], cells[1], cells[4], cells[5], cells[6]),
                             (proxy, kind, remote_addr, "running", ""), proxy)
        await self.screenshot(admin, "frpc-admin")
