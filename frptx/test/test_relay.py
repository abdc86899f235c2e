"""The relay on StringTransports: producers, half-close, counters, close."""
from __future__ import annotations

from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from frptx.protocols.relay import Relay, TrafficCounter
from frptx.protocols.relayed import RelayedProtocol, start_relay


class HalfCloseTransport(StringTransport):
    """StringTransport that records a write shutdown like TCP's ``shutdown(SHUT_WR)``."""

    def __init__(self) -> None:
        super().__init__()
        self.write_closed = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True


def pair() -> tuple[RelayedProtocol, RelayedProtocol, Relay, TrafficCounter]:
    a, b = RelayedProtocol(), RelayedProtocol()
    a.makeConnection(HalfCloseTransport())
    b.makeConnection(HalfCloseTransport())
    counter = TrafficCounter()
    relay = Relay(a.transport, b.transport, counter=counter)
    return a, b, relay, counter


class RelayTests(unittest.TestCase):
    def test_paused_until_started_then_early_bytes_first(self) -> None:
        a, b, relay, counter = pair()
        self.assertEqual(a.transport.producerState, "paused")
        a.dataReceived(b"early ")
        start_relay(relay, a, b, *a.take_early()[:1], b"", False, False)
        a.dataReceived(b"late")
        self.assertEqual(b.transport.value(), b"early late")
        self.assertEqual(a.transport.producerState, "producing")
        self.assertEqual((counter.inbound, counter.outbound, counter.active), (10, 0, 1))

    def test_each_side_is_the_others_streaming_producer(self) -> None:
        a, b, relay, _ = pair()
        start_relay(relay, a, b, b"", b"")
        self.assertIs(b.transport.producer, a.transport)
        self.assertIs(a.transport.producer, b.transport)
        self.assertTrue(a.transport.streaming and b.transport.streaming)

    def test_half_close_passed_on_and_reply_still_flows(self) -> None:
        a, b, relay, counter = pair()
        start_relay(relay, a, b, b"", b"")
        a.dataReceived(b"request")
        a.readConnectionLost()
        self.assertTrue(b.transport.write_closed)
        self.assertFalse(b.transport.disconnecting)
        b.dataReceived(b"reply")
        self.assertEqual(a.transport.value(), b"reply")
        b.readConnectionLost()  # both directions done -> both closed
        self.assertTrue(a.transport.disconnecting and b.transport.disconnecting)
        self.assertEqual((counter.inbound, counter.outbound), (7, 5))

    def test_finished_side_stops_producing_for_its_peer_before_the_fin(self) -> None:
        """A paused producer left registered would make TCP resume it instead of sending the FIN."""
        a, b, relay, _ = pair()
        start_relay(relay, a, b, b"", b"")
        b.transport.producerPaused = True  # b's socket buffer is full right now
        a.readConnectionLost()
        self.assertIsNone(b.transport.producer)
        self.assertTrue(b.transport.write_closed)
        self.assertIs(a.transport.producer, b.transport)  # the other direction still flows with backpressure

    def test_early_eof_replayed(self) -> None:
        a, b, relay, _ = pair()
        a.readConnectionLost()
        data, eof = a.take_early()
        start_relay(relay, a, b, data, b"", eof, False)
        self.assertTrue(b.transport.write_closed)

    def test_loss_of_one_side_closes_the_other_and_finishes_once(self) -> None:
        closed: list[Relay] = []
        a, b = RelayedProtocol(), RelayedProtocol()
        a.makeConnection(HalfCloseTransport())
        b.makeConnection(HalfCloseTransport())
        counter = TrafficCounter()
        relay = Relay(a.transport, b.transport, counter=counter, on_close=closed.append)
        start_relay(relay, a, b, b"", b"")
        a.connectionLost(None)
        self.assertTrue(b.transport.disconnecting)
        self.assertIsNone(b.transport.producer)  # the lost side is no longer asked to produce
        self.assertEqual(closed, [])
        b.connectionLost(None)
        self.assertEqual(closed, [relay])
        self.assertEqual(counter.active, 0)

    def test_side_without_half_close_gets_full_close(self) -> None:
        a, b = RelayedProtocol(), RelayedProtocol()
        a.makeConnection(HalfCloseTransport())
        b.makeConnection(StringTransport())  # no loseWriteConnection
        relay = Relay(a.transport, b.transport)
        start_relay(relay, a, b, b"", b"")
        a.readConnectionLost()
        self.assertTrue(b.transport.disconnecting)
