"""Load-balancing groups on frps (``frptx.server.groups``), over MemoryReactorClock."""
from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest

from frptx.server.groups import GROUP_AUTH_FAILED, GROUP_DIFFERENT_PORT, RoundRobin
from frptx.server.ingress import TCP_PORT
from frptx.server.kind import ProxyKind
from frptx.server.kinds import tcp
from frptx.server.registry import FrpServer
from frptx.test.support import server_config
from frptx.test.test_protocols_server import FakeClient, login
from frptx.wire import CloseProxy, NewProxy, NewProxyResp

USER = IPv4Address("TCP", "127.0.0.1", 50000)


class RoundRobinTests(unittest.TestCase):
    def test_turns(self) -> None:
        policy = RoundRobin()
        self.assertEqual([policy(["a", "b", "c"]) for _ in range(6)], ["a", "b", "c", "a", "b", "c"])
        self.assertIsNone(policy([]))

    def test_members_leaving(self) -> None:
        """Fewer members than the turn counter: still a member, never an index error."""
        policy = RoundRobin()
        self.assertEqual([policy(["a", "b", "c"]) for _ in range(2)], ["a", "b"])
        self.assertEqual([policy(["a"]) for _ in range(3)], ["a", "a", "a"])


class GroupRegistrationTests(unittest.TestCase):
    """Several clients' tcp proxies in one group, as frps 0.65.0 treats them."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.server = FrpServer(server_config(False), self.reactor)
        self.clients: dict[str, FakeClient] = {}

    def client(self, run_id: str) -> FakeClient:
        if run_id not in self.clients:
            c = self.clients[run_id] = FakeClient(self.server)
            c.send(login(run_id=run_id))
            c.replies()
        return self.clients[run_id]

    def new_proxy(self, run_id: str, name: str, group: str = "web", key: str = "k", port: int = 6000,
                  **kw: Any) -> NewProxyResp:
        c = self.client(run_id)
        c.send(NewProxy(proxy_name=name, proxy_type="tcp", remote_port=port, group=group, group_key=key, **kw))
        [r] = [m for m in c.replies() if isinstance(m, NewProxyResp)]
        return r

    def route(self, count: int) -> list[str]:
        """Which proxy each of ``count`` arriving users is routed to (by the group's one listener)."""
        factory = [s[1] for s in self.reactor.tcpServers if s[0] == 6000][-1]
        out = []
        for _ in range(count):
            user = factory.buildProtocol(USER)
            out.append(user.proxy.name if user is not None else "")
        return out

    def test_members_share_one_listener(self) -> None:
        self.assertEqual(self.new_proxy("c1", "a").remote_addr, ":6000")
        self.assertEqual(self.new_proxy("c2", "b").remote_addr, ":6000")
        self.assertEqual(self.new_proxy("c3", "c").remote_addr, ":6000")
        self.assertEqual(len(self.reactor.tcpServers), 1)  # one socket for the group
        self.assertEqual(self.server.ingresses["tcp"].ports.used, {6000: "c1"})
        ingress = self.server.proxies["a"].ingress
        self.assertIs(self.server.proxies["b"].ingress, ingress)
        self.assertIs(self.server.proxies["c"].ingress, ingress)

    def test_spread_round_robin(self) -> None:
        for run_id, name in (("c1", "a"), ("c2", "b"), ("c3", "c")):
            self.new_proxy(run_id, name)
        self.assertEqual(self.route(7), ["a", "b", "c", "a", "b", "c", "a"])

    def test_same_client_two_members(self) -> None:
        self.new_proxy("c1", "a")
        self.assertEqual(self.new_proxy("c1", "b").remote_addr, ":6000")
        self.assertEqual(self.route(4), ["a", "b", "a", "b"])

    def test_key_mismatch(self) -> None:
        self.new_proxy("c1", "a", key="secret")
        r = self.new_proxy("c2", "b", key="wrong")
        self.assertEqual((r.error, r.remote_addr), (GROUP_AUTH_FAILED, ""))
        self.assertEqual(r.error, "group auth failed")
        self.assertNotIn("b", self.server.proxies)
        self.assertEqual(self.route(3), ["a", "a", "a"])

    def test_different_port(self) -> None:
        """A later member must ask the first member's remotePort (even the real port of a ``0`` group)."""
        self.new_proxy("c1", "a")
        r = self.new_proxy("c2", "b", port=6001, key="wrong")
        self.assertEqual(r.error, GROUP_DIFFERENT_PORT)  # frp checks the port before the key
        self.assertEqual(r.error, "group should have same remote port")
        self.assertEqual(len(self.reactor.tcpServers), 1)

    def test_any_port_group(self) -> None:
        self.server = FrpServer(server_config(False, allowPorts=[{"start": 7000, "end": 7010}]), self.reactor)
        first = self.new_proxy("c1", "a", port=0).remote_addr
        self.assertEqual(self.new_proxy("c2", "b", port=0).remote_addr, first)
        self.assertEqual(self.new_proxy("c3", "c", port=int(first[1:])).error, GROUP_DIFFERENT_PORT)

    def test_refused_detail_hidden(self) -> None:
        """Without ``detailedErrorsToClient`` the client sees frp's summary only."""
        self.server.config = server_config(False, detailedErrorsToClient=False)
        self.new_proxy("c1", "a")
        self.assertEqual(self.new_proxy("c2", "b", key="x").error, "new proxy [b] error")

    def test_other_group_other_port(self) -> None:
        self.new_proxy("c1", "a")
        self.assertEqual(self.new_proxy("c2", "b", group="other").error, "port already used")
        self.assertEqual(self.new_proxy("c2", "c", group="").error, "port already used")

    def test_member_leaving(self) -> None:
        for run_id, name in (("c1", "a"), ("c2", "b"), ("c3", "c")):
            self.new_proxy(run_id, name)
        self.client("c2").send(CloseProxy(proxy_name="b"))
        self.assertEqual(self.route(4), ["a", "c", "a", "c"])
        self.client("c3").protocol.connectionLost(None)  # a whole client gone
        self.assertEqual(self.route(2), ["a", "a"])
        self.assertEqual(len(self.server.groups), 1)
        self.assertEqual(self.server.ingresses["tcp"].ports.used, {6000: "c1"})

    def test_first_member_leaving_keeps_the_group(self) -> None:
        """The group's port stays open while any member is left, whoever opened it."""
        self.new_proxy("c1", "a")
        self.new_proxy("c2", "b")
        ingress = self.server.proxies["a"].ingress
        self.client("c1").send(CloseProxy(proxy_name="a"))
        assert ingress is not None
        self.assertFalse(ingress.closed)  # type: ignore[attr-defined]
        self.assertEqual(self.route(2), ["b", "b"])
        self.assertEqual(self.new_proxy("c3", "c").remote_addr, ":6000")
        self.assertEqual(self.new_proxy("c3", "d", key="bad").error, GROUP_AUTH_FAILED)  # still the first key

    def test_last_member_leaving_frees_the_port(self) -> None:
        self.new_proxy("c1", "a")
        self.new_proxy("c2", "b")
        ingress = self.server.proxies["a"].ingress
        self.client("c1").send(CloseProxy(proxy_name="a"))
        self.client("c2").send(CloseProxy(proxy_name="b"))
        assert ingress is not None
        self.assertTrue(ingress.closed)  # type: ignore[attr-defined]
        self.assertEqual(self.server.ingresses["tcp"].ports.used, {})
        self.assertEqual(len(self.server.groups), 0)
        # the group is gone: a new one starts with its own key, or a plain proxy takes the port
        self.assertEqual(self.new_proxy("c3", "c", key="new").remote_addr, ":6000")
        self.assertEqual(self.new_proxy("c1", "d", key="new").remote_addr, ":6000")
        self.assertEqual(len(self.reactor.tcpServers), 2)
        self.client("c3").send(CloseProxy(proxy_name="c"))
        self.client("c1").send(CloseProxy(proxy_name="d"))
        self.assertEqual(self.new_proxy("c2", "plain", group="").remote_addr, ":6000")

    def test_members_joining_while_the_first_waits_for_its_port(self) -> None:
        """Members arriving while the port is still closing join the group the first one opens."""
        self.new_proxy("c1", "old", group="")
        self.client("c1").send(CloseProxy(proxy_name="old"))
        # MemoryReactor's port closes at once; make the release pending by hand
        closing: Deferred[None] = Deferred()
        self.server.ingresses["tcp"].ports.release(6000, closing)
        c2, c3 = self.client("c2"), self.client("c3")
        c2.send(NewProxy(proxy_name="a", proxy_type="tcp", remote_port=6000, group="web", group_key="k"))
        c3.send(NewProxy(proxy_name="b", proxy_type="tcp", remote_port=6000, group="web", group_key="k"))
        self.assertEqual([m for m in c2.replies() + c3.replies() if isinstance(m, NewProxyResp)], [])
        closing.callback(None)
        [ra] = [m for m in c2.replies() if isinstance(m, NewProxyResp)]
        [rb] = [m for m in c3.replies() if isinstance(m, NewProxyResp)]
        self.assertEqual((ra.error, ra.remote_addr, rb.error, rb.remote_addr), ("", ":6000", "", ":6000"))
        self.assertEqual(self.route(2), ["a", "b"])

    def test_group_ignored_by_kinds_without_groups(self) -> None:
        """frps ignores ``group`` on kinds that have none (udp): each still needs a port of its own."""
        self.server.kinds.register(ProxyKind("tcp-nogroups", tcp.TcpProxy, ingress=TCP_PORT))
        c = self.client("c1")
        c.send(NewProxy(proxy_name="u1", proxy_type="tcp-nogroups", remote_port=6000, group="web", group_key="k"))
        c.send(NewProxy(proxy_name="u2", proxy_type="tcp-nogroups", remote_port=6000, group="web", group_key="k"))
        errors = [m.error for m in c.replies() if isinstance(m, NewProxyResp)]
        self.assertEqual(errors, ["", "port already used"])
        self.assertEqual(len(self.server.groups), 0)
