# -*- test-case-name: frptx.test.test_sniff -*-
"""Tests for L{frptx.transport.sniff}: the first-bytes -> factory dispatcher."""
from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import Logger, formatEvent
from twisted.python.failure import Failure
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from frptx import logs
from frptx.transport import sniff
from frptx.transport.sniff import FirstBytesFactory, Rule, first_bytes_are

ADDR = IPv4Address("TCP", "127.0.0.1", 5000)


@implementer(IHalfCloseableProtocol)
class _Recorder(Protocol):
    def __init__(self, name: str) -> None:
        self.name = name
        self.data = b""
        self.events: list[str] = []

    def connectionMade(self) -> None:
        self.events.append("made")

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def readConnectionLost(self) -> None:
        self.events.append("readLost")

    def writeConnectionLost(self) -> None:
        self.events.append("writeLost")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.events.append("lost")


class _Building(Factory):
    noisy = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.built: list[_Recorder] = []
        self.started = 0

    def buildProtocol(self, addr: Any) -> _Recorder:
        p = _Recorder(self.name)
        self.built.append(p)
        return p

    def doStart(self) -> None:
        self.started += 1

    def doStop(self) -> None:
        self.started -= 1


def _http_method(data: bytes) -> bool | None:
    """An HTTP request line, as virtual-host port sharing will route it."""
    for method in (b"GET ", b"POST ", b"HEAD "):
        decision = first_bytes_are(method)(data)
        if decision is None:
            return None
        if decision:
            return True
    return False


class FirstBytesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.http, self.tls, self.plain = _Building("http"), _Building("tls"), _Building("plain")
        self.events: list[dict[str, Any]] = []
        self.patch(sniff.FirstBytesProtocol, "_log", Logger(observer=self.events.append))
        self.patch(logs, "throttle", logs.LogThrottle())

    def connect(self, rules: list[Rule], **kw: Any) -> tuple[FirstBytesFactory, Any, StringTransport]:
        factory = FirstBytesFactory(rules, clock=self.clock, **kw)
        proto = factory.buildProtocol(ADDR)
        transport = StringTransport(peerAddress=ADDR)
        proto.makeConnection(transport)
        return factory, proto, transport

    def rules(self) -> list[Rule]:
        return [Rule(first_bytes_are(b"\x17"), self.tls, skip=1, name="tls"),
                Rule(first_bytes_are(b"\x16"), self.tls, name="tls"),
                Rule(_http_method, self.http, name="http"),
                Rule(lambda data: True, self.plain, name="plain")]

    def test_first_bytes_are(self) -> None:
        match = first_bytes_are(b"GET ")
        self.assertIsNone(match(b"G"))
        self.assertIsNone(match(b"GET"))
        self.assertTrue(match(b"GET /"))
        self.assertFalse(match(b"GO"))
        self.assertFalse(match(b"x"))

    def test_skip_drops_the_marker(self) -> None:
        _, proto, _ = self.connect(self.rules())
        proto.dataReceived(b"\x17\x16\x03\x01")
        self.assertEqual(self.tls.built[0].data, b"\x16\x03\x01")
        self.assertEqual(self.tls.built[0].events, ["made"])
        self.assertEqual(self.plain.built, [])

    def test_first_match_wins_and_bytes_are_replayed(self) -> None:
        _, proto, _ = self.connect(self.rules())
        proto.dataReceived(b"\x16abc")
        proto.dataReceived(b"def")
        self.assertEqual(self.tls.built[0].data, b"\x16abcdef")

    def test_undecided_rule_waits_for_more_bytes(self) -> None:
        _, proto, transport = self.connect(self.rules())
        proto.dataReceived(b"G")
        proto.dataReceived(b"E")
        self.assertEqual((self.http.built, self.plain.built), ([], []))
        proto.dataReceived(b"T / HTTP/1.1\r\n")
        self.assertEqual(self.http.built[0].data, b"GET / HTTP/1.1\r\n")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(transport.disconnecting)

    def test_undecided_rule_then_no_match_falls_through(self) -> None:
        _, proto, _ = self.connect(self.rules())
        proto.dataReceived(b"GE")
        proto.dataReceived(b"X")
        self.assertEqual(self.http.built, [])
        self.assertEqual(self.plain.built[0].data, b"GEX")

    def test_no_rule_matches(self) -> None:
        factory, proto, transport = self.connect(self.rules()[:3])
        proto.dataReceived(b"\x00\x01")
        self.assertTrue(transport.disconnecting)
        self.assertEqual((self.http.built, self.tls.built, self.plain.built), ([], [], []))
        texts = [formatEvent(e) for e in self.events]
        self.assertTrue(any("match no protocol" in t and "127.0.0.1" in t for t in texts), texts)
        proto.dataReceived(b"more")  # ignored after the decision
        proto.connectionLost(Failure(connectionDone.value))
        self.assertEqual(factory.protocols, {})

    def test_bounded_wait(self) -> None:
        """A rule that stays undecided cannot make the dispatcher buffer without end."""
        never = Rule(lambda data: None, self.http)
        _, proto, transport = self.connect([never], max_bytes=8)
        proto.dataReceived(b"1234567")
        self.assertFalse(transport.disconnecting)
        proto.dataReceived(b"89")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.http.built, [])
        self.assertEqual(proto._buffer, b"")

    def test_timeout_nothing_received(self) -> None:
        _, proto, transport = self.connect(self.rules(), timeout=5)
        self.clock.advance(4.9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.2)
        self.assertTrue(transport.disconnecting)
        texts = [formatEvent(e) for e in self.events]
        self.assertTrue(any("nothing received within 5s" in t for t in texts), texts)

    def test_timeout_undecided(self) -> None:
        _, proto, transport = self.connect(self.rules(), timeout=5)
        proto.dataReceived(b"PO")
        self.clock.advance(5)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.http.built, [])
        texts = [formatEvent(e) for e in self.events]
        self.assertTrue(any("the first 2 bytes matched no protocol within 5s" in t for t in texts), texts)
        proto.dataReceived(b"ST /")  # too late
        self.assertEqual(self.http.built, [])

    def test_factory_refuses(self) -> None:
        refusing = Factory.forProtocol(Protocol)
        refusing.buildProtocol = lambda addr: None  # type: ignore[method-assign]
        _, proto, transport = self.connect([Rule(lambda data: True, refusing)])
        proto.dataReceived(b"x")
        self.assertTrue(transport.disconnecting)

    def test_events_forwarded(self) -> None:
        factory, proto, _ = self.connect(self.rules())
        self.assertEqual(list(factory.protocols), [proto])
        proto.dataReceived(b"x")
        inner = self.plain.built[0]
        proto.readConnectionLost()
        proto.writeConnectionLost()
        proto.connectionLost(Failure(connectionDone.value))
        self.assertEqual(inner.events, ["made", "readLost", "writeLost", "lost"])
        self.assertEqual(factory.protocols, {})

    def test_half_close_before_decision_closes(self) -> None:
        _, proto, transport = self.connect(self.rules())
        proto.dataReceived(b"G")
        proto.readConnectionLost()
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_started_factories(self) -> None:
        factory = FirstBytesFactory(self.rules(), clock=self.clock, started=[self.plain])
        factory.doStart()
        self.assertEqual(self.plain.started, 1)
        factory.doStop()
        self.assertEqual(self.plain.started, 0)

    def test_over_iosim(self) -> None:
        """Bytes split across writes reach the chosen protocol in order, and its replies go back."""
        factory = FirstBytesFactory(self.rules(), clock=self.clock)

        class Client(Protocol):
            received = b""

            def dataReceived(self, data: bytes) -> None:
                self.received += data

        client, server, pump = connectedServerAndClient(lambda: factory.buildProtocol(ADDR), Client, greet=False)
        client.transport.write(b"PO")
        pump.flush()
        client.transport.write(b"ST /x HTTP/1.1\r\n")
        pump.flush()
        inner = self.http.built[0]
        self.assertEqual(inner.data, b"POST /x HTTP/1.1\r\n")
        inner.transport.write(b"HTTP/1.1 200 OK\r\n")  # type: ignore[union-attr]
        pump.flush()
        self.assertEqual(client.received, b"HTTP/1.1 200 OK\r\n")
