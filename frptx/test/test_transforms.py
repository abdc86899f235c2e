"""Stream transforms as wrappers: under any protocol, and under a relay leg."""
from __future__ import annotations

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface import implementer

from frptx.protocols.codec import StreamCodec, apply_codec
from frptx.protocols.relay import Relay, TrafficCounter
from frptx.protocols.relayed import RelayedProtocol, start_relay
from frptx.protocols.transforms import (
    CfbTransform,
    SnappyTransform,
    TransformChain,
    TransformWrapper,
    connect_through,
)
from frptx.test.test_relay import HalfCloseTransport
from frptx.wire import derive_key


class Recorder(Protocol):
    """A protocol that knows nothing of transforms: records what it sees."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.lost: list[Failure | None] = []

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost.append(reason)


@implementer(IHalfCloseableProtocol)
class HalfCloseRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.read_eof = False

    def readConnectionLost(self) -> None:
        self.read_eof = True

    def writeConnectionLost(self) -> None:
        pass


def frp(secret: str = "k") -> TransformChain:
    return TransformChain([SnappyTransform(), CfbTransform(derive_key(secret))])


class ChainTests(unittest.TestCase):
    def test_same_wire_as_stream_codec(self) -> None:
        """The chain decodes what StreamCodec encodes and vice versa, at any chunking."""
        codec, chain = StreamCodec("k", True, True), frp()
        wire = codec.encode(b"hello " * 100) + codec.encode(b"world")
        self.assertEqual(b"".join(chain.decode(wire[i:i + 7]) for i in range(0, len(wire), 7)),
                         b"hello " * 100 + b"world")
        back = StreamCodec("k", True, True)
        self.assertEqual(back.decode(chain.encode(b"x" * 5000)), b"x" * 5000)

    def test_empty_chain_is_falsy_and_needs_no_wrapper(self) -> None:
        self.assertFalse(TransformChain())
        for chain in (None, TransformChain()):
            t, proto = StringTransport(), Recorder()
            self.assertIs(connect_through(chain, proto, t), proto)
            self.assertIs(proto.transport, t)
        t, proto = StringTransport(), Recorder()
        wrapper = connect_through(frp(), proto, t)
        self.assertIsInstance(wrapper, TransformWrapper)
        self.assertIs(proto.transport, wrapper)
        self.assertIs(wrapper.transport, t)

    def test_flush_and_eof_pass_through_later_transforms(self) -> None:
        class Tail:
            """Owes b"!" at the end of each direction."""

            def encode(self, data: bytes) -> bytes:
                return data

            def decode(self, data: bytes) -> bytes:
                return data

            def flush(self) -> bytes:
                return b"!"

            def eof(self) -> bytes:
                return b"!"

        upper = TransformChain([Tail(), SnappyTransform()])
        lower = TransformChain([Tail(), SnappyTransform()])
        # what Tail owes at our FIN is compressed by the snappy transform after it
        self.assertEqual(lower.decode(upper.encode(b"ab") + upper.flush()), b"ab!")
        self.assertEqual(upper.eof(), b"!")


class WrapperUnderAnyProtocolTests(unittest.TestCase):
    """A protocol that is not a relay (a plugin, say) runs over an encrypted connection."""

    def setUp(self) -> None:
        self.lower = HalfCloseTransport()
        self.proto = HalfCloseRecorder()
        self.wrapper = TransformWrapper(frp(), self.proto)
        self.wrapper.makeConnection(self.lower)
        self.peer = frp()  # the far side of the connection

    def test_protocol_sees_plaintext_and_its_writes_are_encoded(self) -> None:
        self.assertIs(self.proto.transport, self.wrapper)
        wire = self.peer.encode(b"GET / HTTP/1.0\r\n\r\n")
        for i in range(len(wire)):  # byte by byte: IV and frames split anywhere
            self.wrapper.dataReceived(wire[i:i + 1])
        self.assertEqual(b"".join(self.proto.received), b"GET / HTTP/1.0\r\n\r\n")
        self.proto.transport.write(b"HTTP/1.0 200 OK\r\n")
        self.proto.transport.writeSequence([b"a", b"b"])
        self.assertNotIn(b"200", self.lower.value())
        self.assertEqual(self.peer.decode(self.lower.value()), b"HTTP/1.0 200 OK\r\nab")

    def test_half_close_both_ways(self) -> None:
        self.wrapper.readConnectionLost()
        self.assertTrue(self.proto.read_eof)
        self.assertFalse(self.lower.disconnecting)
        self.assertTrue(self.wrapper.half_closeable)
        self.wrapper.loseWriteConnection()
        self.assertTrue(self.lower.write_closed)

    def test_protocol_without_half_close_is_closed_at_eof(self) -> None:
        lower, proto = StringTransport(), Recorder()
        wrapper = TransformWrapper(frp(), proto)
        wrapper.makeConnection(lower)
        self.assertFalse(wrapper.half_closeable)
        wrapper.readConnectionLost()
        self.assertTrue(lower.disconnecting)

    def test_producer_and_consumer_are_the_lower_transports(self) -> None:
        producer = StringTransport()
        self.wrapper.registerProducer(producer, True)
        self.assertIs(self.lower.producer, producer)
        self.assertTrue(self.lower.streaming)
        self.wrapper.unregisterProducer()
        self.assertIsNone(self.lower.producer)
        self.wrapper.pauseProducing()
        self.assertEqual(self.lower.producerState, "paused")
        self.wrapper.resumeProducing()
        self.assertEqual(self.lower.producerState, "producing")

    def test_addresses_and_unknown_attributes_are_the_lower_transports(self) -> None:
        self.assertEqual(self.wrapper.getPeer(), self.lower.getPeer())
        self.assertEqual(self.wrapper.getHost(), self.lower.getHost())
        self.assertIs(self.wrapper.hostAddr, self.lower.hostAddr)
        with self.assertRaises(AttributeError):
            self.wrapper.no_such_attribute  # noqa: B018

    def test_connection_lost_reaches_the_protocol(self) -> None:
        self.wrapper.connectionLost(None)
        self.assertEqual(self.proto.lost, [None])

    def test_corrupt_stream_aborts_and_delivers_nothing_more(self) -> None:
        lower, proto = StringTransport(), Recorder()
        wrapper = TransformWrapper(TransformChain([SnappyTransform()]), proto)
        wrapper.makeConnection(lower)
        wrapper.dataReceived(b"not a snappy stream")
        wrapper.dataReceived(b"more")
        self.assertTrue(lower.disconnecting)
        self.assertEqual(proto.received, [])
        self.flushLoggedErrors()


def relay_pair(a_chain: TransformChain | None = None,
               b_chain: TransformChain | None = None) -> tuple[RelayedProtocol, RelayedProtocol, Relay, TrafficCounter]:
    a, b = RelayedProtocol(), RelayedProtocol()
    a.makeConnection(HalfCloseTransport())
    b.makeConnection(HalfCloseTransport())
    counter = TrafficCounter()
    relay = Relay(a.transport, b.transport, counter=counter, a_transforms=a_chain, b_transforms=b_chain)
    return a, b, relay, counter


class RelayLegTests(unittest.TestCase):
    def test_plain_relay_has_no_wrapper(self) -> None:
        a, b, relay, _ = relay_pair(None, TransformChain())
        self.assertIs(relay.a.transport, a.transport)
        self.assertIs(relay.b.transport, b.transport)
        self.assertTrue(relay.plain())

    def test_wrapped_leg_decodes_reads_and_encodes_writes(self) -> None:
        a, b, relay, counter = relay_pair(None, frp())
        self.assertFalse(relay.plain())
        frpc = frp()
        b.dataReceived(frpc.encode(b"early reply"))  # read before the relay starts
        start_relay(relay, a, b, *a.take_early()[:1], b.take_early()[0])
        self.assertIs(b.end, relay.b.source)
        a.dataReceived(b"request")
        self.assertEqual(frpc.decode(b.transport.value()), b"request")
        self.assertEqual(a.transport.value(), b"early reply")
        b.dataReceived(frpc.encode(b" and more"))
        self.assertEqual(a.transport.value(), b"early reply and more")
        self.assertEqual((counter.inbound, counter.outbound), (7, 20))

    def test_backpressure_registered_on_the_lower_transports(self) -> None:
        a, b, relay, _ = relay_pair(frp(), frp())
        start_relay(relay, a, b, b"", b"")
        self.assertIs(b.transport.producer, relay.a.transport)  # lower b pauses wrapper a ...
        relay.a.transport.pauseProducing()
        self.assertEqual(a.transport.producerState, "paused")  # ... which pauses lower a

    def test_half_close_through_the_wrapper(self) -> None:
        a, b, relay, _ = relay_pair(None, frp())
        start_relay(relay, a, b, b"", b"")
        a.readConnectionLost()
        self.assertTrue(b.transport.write_closed)
        self.assertIsNone(b.transport.producer)
        b.dataReceived(frp().encode(b"reply"))
        self.assertEqual(a.transport.value(), b"reply")
        b.readConnectionLost()
        self.assertTrue(a.transport.disconnecting and b.transport.disconnecting)

    def test_corrupt_leg_aborts_both(self) -> None:
        a, b, relay, _ = relay_pair(None, frp())
        start_relay(relay, a, b, b"", b"")
        b.dataReceived(b"\x00" * 16 + b"garbage that is no snappy stream")
        self.assertTrue(a.transport.disconnecting and b.transport.disconnecting)
        self.assertEqual(a.transport.value(), b"")

    def test_apply_codec_kept_for_callers(self) -> None:
        a, b, relay, _ = relay_pair()
        apply_codec(relay, "a", None)
        self.assertTrue(relay.plain())
        apply_codec(relay, "a", StreamCodec("k", True, False))
        self.assertIsInstance(relay.a.transport, TransformWrapper)
        with self.assertRaises(ValueError):
            relay.wrap("a", frp())
