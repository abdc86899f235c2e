"""frptx.transport.connect: frpc's own non-blocking connect, adopted by the reactor."""
from __future__ import annotations

import socket
from typing import Any

from twisted.internet import error, reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorSocket
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from frptx.test.support import Collector, EchoFactory, async_test, listen_local, with_timeout
from frptx.transport import connect as fast
from frptx.transport.internals_tcp import is_plain_tcp


class _OneProtocol(Factory):
    def __init__(self, protocol: Protocol) -> None:
        self.instance = protocol

    def buildProtocol(self, addr: Any) -> Protocol:
        return self.instance


def _failures() -> tuple[list[Failure], Any]:
    failures: list[Failure] = []
    return failures, failures.append


class ChoiceTests(SynchronousTestCase):
    def test_real_reactor_and_ip_literals(self) -> None:
        self.assertTrue(fast.can_connect_fast(reactor, "127.0.0.1"))
        self.assertTrue(fast.can_connect_fast(reactor, "::1"))

    def test_hostnames_and_fake_reactors_go_through_connect_tcp(self) -> None:
        self.assertFalse(fast.can_connect_fast(reactor, "localhost"))
        self.assertFalse(fast.can_connect_fast(MemoryReactorClock(), "127.0.0.1"))


@implementer(IReactorSocket)
class _AdoptingClock(MemoryReactorClock):
    """A fake clock that records adoptions (the fake reactor's poller is a set of writers)."""


class FailureTests(SynchronousTestCase):
    def setUp(self) -> None:
        # A listener whose accept queue is full and never drained: the kernel drops further
        # SYNs, so a connect to it stays in progress (a loopback connect is otherwise done at once).
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.addCleanup(self.listener.close)
        self.port = self.listener.getsockname()[1]
        for _ in range(3):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            filler.connect_ex(("127.0.0.1", self.port))
            self.addCleanup(filler.close)

    def test_timeout_closes_the_socket_and_fails_once(self) -> None:
        clock = _AdoptingClock()
        failures, on_failed = _failures()
        fast.connect(clock, "127.0.0.1", self.port, Factory.forProtocol(Protocol), 2.0, on_failed)
        [connecting] = clock.writers
        clock.advance(1.9)
        self.assertEqual(failures, [])
        clock.advance(0.2)
        [failure] = failures
        failure.trap(error.TimeoutError)
        self.assertEqual(clock.writers, set())
        self.assertEqual(connecting.sock.fileno(), -1)  # closed
        connecting.connectionLost(Failure(error.ConnectionDone()))  # late: no second report
        self.assertEqual(len(failures), 1)

    def test_reactor_dropping_the_attempt_fails_it(self) -> None:
        clock = _AdoptingClock()
        failures, on_failed = _failures()
        fast.connect(clock, "127.0.0.1", self.port, Factory.forProtocol(Protocol), 2.0, on_failed)
        [connecting] = clock.writers
        connecting.connectionLost(Failure(error.ConnectionDone()))
        [failure] = failures
        failure.trap(error.ConnectError)
        self.assertEqual(clock.getDelayedCalls(), [])  # the timeout is cancelled
        self.assertEqual(connecting.sock.fileno(), -1)

    def test_bad_bind_address_fails_at_once(self) -> None:
        failures, on_failed = _failures()
        fast.connect(_AdoptingClock(), "127.0.0.1", self.port, Factory.forProtocol(Protocol), 2.0, on_failed,
                     bind_address=("192.0.2.1", 0))  # not an address of this host
        [failure] = failures
        failure.trap(error.ConnectBindError)


class ImmediateTests(SynchronousTestCase):
    def test_loopback_connection_adopted_at_once(self) -> None:
        """A loopback connect is complete inside connect(2): no poller registration, no timer."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        self.addCleanup(listener.close)
        clock = _AdoptingClock()
        adopted: list[tuple[int, int, Any]] = []
        clock.adoptStreamConnection = lambda fd, family, factory: adopted.append((fd, family, factory))
        failures, on_failed = _failures()
        factory = Factory.forProtocol(Protocol)
        fast.connect(clock, "127.0.0.1", listener.getsockname()[1], factory, 2.0, on_failed)
        self.assertEqual(failures, [])
        self.assertEqual(clock.writers, set())
        self.assertEqual(clock.getDelayedCalls(), [])
        [(fd, family, got)] = adopted
        self.assertEqual((family, got), (socket.AF_INET, factory))


class LiveTests(TestCase):
    def _connect(self, host: str, port: int, protocol: Protocol,
                 bind: tuple[str, int] | None = None) -> Deferred[None]:
        """Fires at connectionMade (errback with the connect failure)."""
        d: Deferred[None] = Deferred()
        protocol.connectionMade = lambda: (Collector.connectionMade(protocol), d.callback(None))  # type: ignore
        fast.connect(reactor, host, port, _OneProtocol(protocol), 5.0, d.errback, bind)
        return d

    @async_test
    async def test_connects_and_relays_on_an_ordinary_tcp_transport(self) -> None:
        port = listen_local(self, EchoFactory())
        c = Collector(b"hello" * 1000, half_close=True)
        await with_timeout(self._connect("127.0.0.1", port, c), 10)
        self.assertTrue(is_plain_tcp(c.transport))  # splice and half-close work on it as on any
        self.assertEqual(c.transport.getPeer().port, port)
        self.assertEqual(await with_timeout(c.done, 10), b"hello" * 1000)

    @async_test
    async def test_bind_address(self) -> None:
        port = listen_local(self, EchoFactory())
        c = Collector(b"x", half_close=True)
        await with_timeout(self._connect("127.0.0.1", port, c, ("127.0.0.1", 0)), 10)
        self.assertEqual(c.transport.getHost().host, "127.0.0.1")
        self.assertEqual(await with_timeout(c.done, 10), b"x")

    @async_test
    async def test_ipv6(self) -> None:
        try:
            probe = socket.socket(socket.AF_INET6)
            probe.bind(("::1", 0))
            probe.close()
        except OSError:
            raise self.skipTest("no IPv6 loopback") from None
        listening = reactor.listenTCP(0, EchoFactory(), interface="::1")
        self.addCleanup(listening.stopListening)
        c = Collector(b"six", half_close=True)
        await with_timeout(self._connect("::1", listening.getHost().port, c), 10)
        self.assertEqual(await with_timeout(c.done, 10), b"six")

    @async_test
    async def test_refused(self) -> None:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # bound and closed: nothing listens there
        c = Collector()
        with self.assertRaises(error.ConnectionRefusedError):
            await with_timeout(self._connect("127.0.0.1", port, c), 10)
        self.assertIsNone(c.transport)
