"""Ingresses (public ports) apart from proxies: routing, attach/detach, port allocation."""
from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial import unittest

from frptx.config import ServerConfig
from frptx.server.ingress import (
    TCP_PORT,
    UDP_PORT,
    PortIngresses,
    PublicConnectionProtocol,
    TcpIngress,
    UdpIngress,
    first_attached,
)
from frptx.server.ports import PortError
from frptx.test.support import server_config
from frptx.test.test_udp import UdpClock


class FakeProxy:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False
        self.users: list[PublicConnectionProtocol] = []
        self.datagrams: list[tuple[bytes, Any]] = []

    def user_connected(self, user: PublicConnectionProtocol) -> None:
        self.users.append(user)

    def user_datagram(self, datagram: bytes, addr: Any) -> None:
        self.datagrams.append((datagram, addr))


class Env:
    def __init__(self, reactor: Any, config: ServerConfig | None = None) -> None:
        self.reactor = reactor
        self.config = config or server_config(False)
        self.connections = None


def connect(ingress: TcpIngress) -> PublicConnectionProtocol | None:
    [factory] = [f for port, f, _, _ in ingress.reactor.tcpServers if port == ingress.port]
    protocol = factory.buildProtocol(None)
    if protocol is not None:
        protocol.makeConnection(StringTransport())
    return protocol  # type: ignore[no-any-return]


class TcpIngressTests(unittest.TestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.released: list[tuple[int, Deferred[None] | None]] = []
        self.ingress = TcpIngress(self.reactor, on_closed=lambda port, d: self.released.append((port, d)))
        self.ingress.listen(6000, "127.0.0.1")
        self.stopped: list[Deferred[None]] = []

        def stop_listening() -> Deferred[None]:
            self.stopped.append(Deferred())
            return self.stopped[-1]

        self.patch(self.ingress.listening, "stopListening", stop_listening)

    def test_users_go_to_the_attached_proxy(self) -> None:
        proxy = FakeProxy("a")
        self.ingress.attach(proxy)
        user = connect(self.ingress)
        self.assertEqual(proxy.users, [user])
        self.assertIs(user.proxy, proxy)  # type: ignore[union-attr]

    def test_no_proxy_no_connection(self) -> None:
        self.assertIsNone(connect(self.ingress))
        proxy = FakeProxy("a")
        self.ingress.attach(proxy)
        proxy.closed = True
        self.assertIsNone(connect(self.ingress))

    def test_policy_picks_among_open_proxies(self) -> None:
        """A group attaches several proxies; its policy sees only the open ones, in attach order."""
        seen: list[list[str]] = []

        def last(proxies: Any) -> Any:
            seen.append([p.name for p in proxies])
            return proxies[-1]

        ingress = TcpIngress(self.reactor, policy=last)
        ingress.listen(6001, "127.0.0.1")
        a, b, c = FakeProxy("a"), FakeProxy("b"), FakeProxy("c")
        for p in (a, b, c):
            ingress.attach(p)
        connect(ingress)
        c.closed = True
        connect(ingress)
        self.assertEqual(seen, [["a", "b", "c"], ["a", "b"]])
        self.assertEqual((len(b.users), len(c.users)), (1, 1))

    def test_closes_when_the_last_proxy_detaches(self) -> None:
        a, b = FakeProxy("a"), FakeProxy("b")
        self.ingress.attach(a)
        self.ingress.attach(b)
        self.assertIsNone(self.ingress.detach(a))
        self.assertFalse(self.ingress.closed)
        self.assertEqual(connect(self.ingress).proxy, b)  # type: ignore[union-attr]
        closed = self.ingress.detach(b)
        self.assertEqual(self.stopped, [closed])
        self.assertTrue(self.ingress.closed)
        self.assertEqual(self.released, [(6000, closed)])
        self.assertIsNone(self.ingress.detach(b))  # once only
        self.assertEqual(len(self.released), 1)

    def test_first_attached(self) -> None:
        self.assertIsNone(first_attached([]))
        self.assertEqual(first_attached(["x", "y"]), "x")


class UdpIngressTests(unittest.TestCase):
    def test_datagrams_routed_and_replies_written(self) -> None:
        clock = UdpClock()
        ingress = UdpIngress(clock, max_packet_size=4000)
        ingress.listen(0, "127.0.0.1")
        (port,) = clock.udp_ports
        self.assertEqual((port.max_packet_size, ingress.port), (4000, port.host.port))
        port.protocol.datagramReceived(b"lost", ("1.2.3.4", 5))  # nobody attached: dropped
        proxy = FakeProxy("dns")
        ingress.attach(proxy)
        port.protocol.datagramReceived(b"q", ("1.2.3.4", 5))
        ingress.write(b"a", ("1.2.3.4", 5))
        self.assertEqual((proxy.datagrams, port.written), ([(b"q", ("1.2.3.4", 5))], [(b"a", ("1.2.3.4", 5))]))
        ingress.detach(proxy)
        self.assertFalse(port.listening)


class PortIngressesTests(unittest.TestCase):
    def test_open_acquires_and_close_releases_once_closed(self) -> None:
        env = Env(MemoryReactorClock())
        ingresses = PortIngresses(TCP_PORT, env)  # type: ignore[arg-type]
        ingress = ingresses.open(ingresses.candidates("web", 6000, "r"), 6000, "web", "r")
        self.assertEqual((ingress.port, ingresses.ports.used), (6000, {6000: "r"}))
        with self.assertRaises(PortError) as e:
            ingresses.candidates("web2", 6000, "r")
        self.assertEqual(str(e.exception), "port already used")
        closing: Deferred[None] = Deferred()
        self.patch(ingress.listening, "stopListening", lambda: closing)
        proxy = FakeProxy("web")
        ingress.attach(proxy)
        ingress.detach(proxy)
        self.assertEqual(ingresses.ports.used, {})
        waited = ingresses.wait_released([6000])
        self.assertFalse(waited.called)  # the socket is not closed yet
        closing.callback(None)
        self.assertTrue(waited.called)

    def test_listen_failures_try_the_next_candidate(self) -> None:
        reactor = MemoryReactorClock()
        real = reactor.listenTCP

        def listen(port: int, *a: Any, **kw: Any) -> Any:
            if port == 6000:
                raise CannotListenError("", port, OSError("in use"))
            return real(port, *a, **kw)

        reactor.listenTCP = listen  # type: ignore[method-assign]
        ingresses = PortIngresses(TCP_PORT, Env(reactor))  # type: ignore[arg-type]
        self.assertEqual(ingresses.open([6000, 6001], 0, "web", "r").port, 6001)
        with self.assertRaises(PortError) as e:
            ingresses.open([6000], 6000, "x", "r")
        self.assertEqual(str(e.exception), "port unavailable")
        with self.assertRaises(PortError) as e:
            ingresses.open([6000], 0, "x", "r")
        self.assertEqual(str(e.exception), "no available port")

    def test_udp_ingress_uses_udp_packet_size(self) -> None:
        clock = UdpClock()
        ingresses = PortIngresses(UDP_PORT, Env(clock, server_config(False, udpPacketSize=9000)))  # type: ignore[arg-type]
        ingress = ingresses.open([0], 0, "dns", "r")
        self.assertEqual(clock.udp_ports[0].max_packet_size, 9000)
        self.assertEqual(ingresses.ports.used, {ingress.port: "r"})


class UserPausingTests(unittest.SynchronousTestCase):
    """A user is paused until its relay exists, and not at all when the relay starts at once."""

    class _Joining(FakeProxy):
        def user_connected(self, user: PublicConnectionProtocol) -> None:
            super().user_connected(user)
            user.end = object()  # type: ignore[assignment]  # what start_relay attaches

    def test_waiting_user_is_paused(self) -> None:
        user = PublicConnectionProtocol(FakeProxy("p"))
        transport = StringTransport()
        user.makeConnection(transport)
        self.assertEqual(transport.producerState, "paused")

    def test_user_joined_at_once_is_never_paused(self) -> None:
        transport = StringTransport()
        paused: list[bool] = []
        transport.pauseProducing = lambda: paused.append(True)  # type: ignore[method-assign]
        PublicConnectionProtocol(self._Joining("p")).makeConnection(transport)
        self.assertEqual(paused, [])

    def test_dialled_connection_joined_by_its_on_connected_notice(self) -> None:
        from frptx.protocols.client import LocalServiceProtocol

        local = LocalServiceProtocol()
        local.on_connected = lambda: setattr(local, "end", object())
        transport = StringTransport()
        local.makeConnection(transport)
        self.assertEqual(transport.producerState, "producing")
        waiting = LocalServiceProtocol()
        transport = StringTransport()
        waiting.makeConnection(transport)
        self.assertEqual(transport.producerState, "paused")
