"""frps's proxy kind registry, the stats wiring and the service tree, over MemoryReactorClock."""
from __future__ import annotations

from typing import Any

from twisted.application.service import IServiceCollection, MultiService
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest

from frptx.server.ingress import TCP_PORT
from frptx.server.kind import KindRegistry, ProxyKind
from frptx.server.kinds import builtin_kinds, tcp
from frptx.server.proxies import ProxyBase
from frptx.server.registry import FrpServer
from frptx.server.service import BindPortService, FrpsService
from frptx.server.stats import StatsCollector
from frptx.test.support import server_config
from frptx.test.test_protocols_server import FakeClient, login
from frptx.wire import CloseProxy, NewProxy, NewProxyResp


class KindRegistryTests(unittest.TestCase):
    def test_builtin_kinds(self) -> None:
        kinds = builtin_kinds()
        self.assertEqual(sorted(kinds), ["http", "https", "stcp", "sudp", "tcp", "tcpmux", "udp"])
        self.assertIs(kinds.get(""), kinds.get("tcp"))  # frp: a proxy without a type is tcp
        self.assertIsNone(kinds.get("xtcp"))

    def test_register_twice_refused(self) -> None:
        kinds = KindRegistry()
        kinds.register(tcp.KIND)
        self.assertRaises(ValueError, kinds.register, tcp.KIND)
        self.assertIsNone(kinds.get(""))  # no default unless one is named


class EchoNameProxy(ProxyBase):
    """A made-up kind with no ingress: registration alone is what is tested."""

    kind = "made-up"


class NewKindTests(unittest.TestCase):
    """A kind is served once registered, with no change to ``FrpServer``."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        kinds = builtin_kinds()
        kinds.register(ProxyKind("tcp-too", tcp.TcpProxy, ingress=TCP_PORT, port_error=lambda p, why: f"{p}: {why}"))
        kinds.register(ProxyKind("made-up", EchoNameProxy))
        self.server = FrpServer(server_config(False), self.reactor, kinds=kinds)
        self.client = FakeClient(self.server)
        self.client.send(login())
        self.client.replies()

    def new_proxy(self, **kw: Any) -> NewProxyResp:
        self.client.send(NewProxy(**kw))
        [r] = [m for m in self.client.replies() if isinstance(m, NewProxyResp)]
        return r

    def test_registered_kinds_are_served(self) -> None:
        self.assertEqual(self.new_proxy(proxy_name="a", proxy_type="tcp-too", remote_port=6000).remote_addr, ":6000")
        self.assertEqual([port for port, *_ in self.reactor.tcpServers], [6000])
        self.assertIsInstance(self.server.proxies["a"], tcp.TcpProxy)
        r = self.new_proxy(proxy_name="b", proxy_type="made-up")
        self.assertEqual((r.error, r.remote_addr), ("", ""))
        self.assertIsInstance(self.server.proxies["b"], EchoNameProxy)

    def test_kind_words_its_port_errors(self) -> None:
        self.new_proxy(proxy_name="a", proxy_type="tcp-too", remote_port=6000)
        self.assertEqual(self.new_proxy(proxy_name="c", proxy_type="tcp-too", remote_port=6000).error,
                         "6000: port already used")
        # tcp and tcp-too share the tcp ports: one port manager per ingress type, not per kind
        self.assertEqual(self.new_proxy(proxy_name="d", proxy_type="tcp", remote_port=6000).error,
                         "port already used")

    def test_failing_kind_leaves_no_port_open(self) -> None:
        def broken(control: Any, msg: NewProxy) -> ProxyBase:
            raise RuntimeError("boom")

        self.server.kinds.register(ProxyKind("broken", broken, ingress=TCP_PORT))
        self.assertEqual(self.new_proxy(proxy_name="x", proxy_type="broken", remote_port=6000).error,
                         "internal error: boom")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual((self.reactor.tcpServers, self.server.proxies), ([], {}))
        self.assertEqual(self.new_proxy(proxy_name="y", proxy_type="tcp", remote_port=6000).remote_addr, ":6000")

    def test_unregistered_kind_refused(self) -> None:
        self.assertEqual(self.new_proxy(proxy_name="x", proxy_type="xtcp").error,
                         "proxy type [xtcp] is not supported by this server")


class StatsWiringTests(unittest.TestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.stats = StatsCollector(clock=lambda: 1_700_000_000.0)
        self.server = FrpServer(server_config(False), self.reactor, stats=self.stats)

    def test_opened_and_closed_with_the_proxy(self) -> None:
        self.assertIs(self.server.stats, self.stats)
        c = FakeClient(self.server)
        c.send(login(user="alice", client_id="laptop"))
        c.replies()
        msg = NewProxy(proxy_name="ssh", proxy_type="tcp", remote_port=6000)
        c.send(msg)
        c.replies()
        record = self.stats.proxy("ssh")
        assert record is not None
        proxy = self.server.proxies["ssh"]
        self.assertEqual((record.kind, record.user, record.client_id, record.online, record.counter),
                         ("tcp", "alice", "laptop", True, proxy.counter))
        self.assertEqual((record.run_id, record.registration), (proxy.control.run_id, msg))
        proxy.counter.inbound += 7
        c.send(CloseProxy(proxy_name="ssh"))
        record = self.stats.proxy("ssh")
        assert record is not None
        self.assertEqual((record.online, record.total_in), (False, 7))

    def test_refused_proxy_not_recorded(self) -> None:
        c = FakeClient(self.server)
        c.send(login())
        c.replies()
        c.send(NewProxy(proxy_name="x", proxy_type="http"))
        [r] = c.replies()
        self.assertIn("not supported", r.error)
        self.assertEqual(list(self.stats.proxies()), [])

    def test_client_gone_closes_its_records(self) -> None:
        c = FakeClient(self.server)
        c.send(login())
        c.replies()
        c.send(NewProxy(proxy_name="a", proxy_type="stcp", sk="k"))
        self.assertTrue(self.stats.proxy("a").online)  # type: ignore[union-attr]
        c.protocol.connectionLost(None)
        self.assertFalse(self.stats.proxy("a").online)  # type: ignore[union-attr]


class ServiceTreeTests(unittest.TestCase):
    def test_bind_port_is_a_child_service(self) -> None:
        clock = MemoryReactorClock()
        service = FrpsService(server_config(False), clock)
        self.assertIsInstance(service, MultiService)
        child = IServiceCollection(service).getServiceNamed("bind-port")
        self.assertIsInstance(child, BindPortService)
        service.startService()
        self.assertTrue(child.running)
        self.assertEqual(len(clock.tcpServers), 1)
        self.assertIs(service.port, child.port)
        stopped: list[bool] = []
        self.patch(child.port, "stopListening", lambda: stopped.append(True))
        d = service.stopService()
        self.assertIsInstance(d, Deferred)
        self.assertEqual((stopped, child.running), ([True], False))
        self.successResultOf(d)

    def test_listen_failure_reported_to_on_fatal(self) -> None:
        from twisted.internet.error import CannotListenError

        clock = MemoryReactorClock()

        def refuse(*a: Any, **kw: Any) -> Any:
            raise CannotListenError("127.0.0.1", 7000, OSError("Address already in use"))

        self.patch(clock, "listenTCP", refuse)
        fatal: list[str] = []
        service = FrpsService(server_config(False), clock, on_fatal=fatal.append)
        service.startService()
        self.assertEqual(fatal, ["frps cannot listen on 127.0.0.1:0: Address already in use"])
        self.assertIsNone(service.port)
        without = FrpsService(server_config(False), clock)
        self.assertRaises(CannotListenError, without.startService)
