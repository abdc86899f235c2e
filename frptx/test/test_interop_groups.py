"""Live interop with Go frp 0.65.0: load-balancing groups (``loadBalancer.group``/``groupKey``).

Two stock Go frpc in one group behind our frps, and two of our frpc in one group
behind a stock Go frps.  Go frps hands a user to whichever member's accept loop
has waited longest, which is not a rule it promises: against it the test only
asks that each member serves at least once in ``SPREAD_USERS`` users, a count for
which even a fair coin per user would fail with probability 2 * 2**-32 < 1e-9.
"""
from __future__ import annotations

from frptx.test.support import LogWatch, async_test, free_port, listen_local, with_timeout
from frptx.test.test_e2e_groups import NamedFactory, group, served_by, spread
from frptx.test.test_interop_go import GO_DEFAULT, InteropBase

#: users for an "each member at least once" check: P(one member never chosen) <= 2 * 2**-32 if random
SPREAD_USERS = 32


class GroupInterop(InteropBase):
    @async_test
    async def test_go_frpcs_in_one_group_behind_our_frps(self) -> None:
        a = listen_local(self, NamedFactory(b"A"))
        b = listen_local(self, NamedFactory(b"B"))
        c = listen_local(self, NamedFactory(b"C"))
        frps = self.our_frps(GO_DEFAULT["tcp_mux"])
        go_a = await self.go_frpc(frps.bound_port, GO_DEFAULT, [group("web-a", a)])
        go_b = await self.go_frpc(frps.bound_port, GO_DEFAULT, [group("web-b", b)])
        port = await go_a.remote_port("web-a")
        self.assertEqual(await go_b.remote_port("web-b"), port)
        # our frps takes the members in turn
        self.assertEqual(await spread(port, 10), {b"A": 5, b"B": 5})

        go_c = await self.go_frpc(frps.bound_port, GO_DEFAULT, [group("web-c", c, key="wrong")], wait=False)
        await go_c.proc.wait_for("[web-c] start error: group auth failed")

        logs = LogWatch(self)
        gone = logs.next("proxy [web-a] closed")
        await go_a.proc.kill()
        await with_timeout(gone, 15)
        self.assertEqual(await spread(port, 6), {b"B": 6})

    @async_test
    async def test_our_frpcs_in_one_group_behind_go_frps(self) -> None:
        a = listen_local(self, NamedFactory(b"A"))
        b = listen_local(self, NamedFactory(b"B"))
        c = listen_local(self, NamedFactory(b"C"))
        frps = await self.go_frps(GO_DEFAULT["tcp_mux"])
        # a fixed port: with remotePort 0 Go frps 0.65.0 reports one port and listens on another
        remote = free_port()
        frpc_a, _ = self.our_frpc(frps.port, GO_DEFAULT, [group("web-a", a, remote)])
        self.assertEqual(await self.our_remote_port(frpc_a, "web-a"), remote)
        frpc_b, _ = self.our_frpc(frps.port, GO_DEFAULT, [group("web-b", b, remote)])
        self.assertEqual(await self.our_remote_port(frpc_b, "web-b"), remote)
        seen = await spread(remote, SPREAD_USERS)
        self.assertEqual(set(seen), {b"A", b"B"}, seen)

        # Go frps's own words for a wrong key and a different port, as our frpc reports them
        frpc_c, _ = self.our_frpc(frps.port, GO_DEFAULT, [group("web-c", c, remote, key="wrong"),
                                                          group("web-d", c, remote + 1 if remote < 65535 else 1)])
        status = await with_timeout(frpc_c.proxy_manager.wait_settled("web-c"), 15)
        self.assertEqual((status.phase, status.error), ("start error", "group auth failed"))
        status = await with_timeout(frpc_c.proxy_manager.wait_settled("web-d"), 15)
        self.assertEqual((status.phase, status.error), ("start error", "group should have same remote port"))

        mark = frps.proc.mark()
        await frpc_a.stopService()
        await frps.proc.wait_for("client exit success", since=mark)
        self.assertEqual(await spread(remote, 6), {b"B": 6})
        self.assertEqual(await served_by(remote), b"B")

