"""``MessageProtocol`` against a peer that sends requests and never reads the answers
(issue 10, item 5: a control-channel Ping flood grew frps to 313-620 MiB)."""
from __future__ import annotations

from typing import Any

from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from frptx.mux import YamuxProtocol
from frptx.mux.yamux import DATA, SYN, WINDOW_UPDATE, encode_header
from frptx.protocols import message
from frptx.protocols.message import MessageProtocol
from frptx.transport.inline import pending_write_bytes
from frptx.wire import Message, MessageWriter, Ping, Pong, StartWorkConn


class PongProtocol(MessageProtocol):
    """Answers every Ping, like frps's control connection."""

    def message_received(self, msg: Message) -> None:
        if isinstance(msg, Ping):
            self.send(Pong())
        elif isinstance(msg, StartWorkConn):
            self.switch_to_raw()


class FakeTCP(StringTransport):
    """Twisted's TCP transport as far as buffering goes: a write buffer that only drains
    when told, ``dataBuffer``/``offset``/``_tempDataLen`` as ``pending_write_bytes``
    reads them, and a streaming producer paused by the write that finds the buffer over
    64 KiB and resumed once it drained (``abstract.FileDescriptor``)."""

    bufferSize = 64 * 1024

    def __init__(self) -> None:
        super().__init__()
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataLen = 0
        self._producer_paused = False

    def write(self, data: bytes) -> None:
        super().write(data)
        self._tempDataLen += len(data)
        if self.producer is not None and self.streaming and self._tempDataLen > self.bufferSize:
            self._producer_paused = True
            self.producer.pauseProducing()

    def drain(self) -> None:
        self._tempDataLen = 0
        if self.producer is not None and self._producer_paused:
            self._producer_paused = False
            self.producer.resumeProducing()


def pings(n: int, writer: MessageWriter | None = None) -> bytes:
    writer = writer or MessageWriter()
    return b"".join(writer.encode(Ping()) for _ in range(n))


#: a smaller bound keeps the tests quick (it must exceed the transport's 64 KiB)
BOUND = 128 * 1024


def flood(proto: MessageProtocol, tr: FakeTCP) -> None:
    """Pings until the protocol stops reading (at most 100 batches)."""
    batch = pings(1000)
    for _ in range(100):
        proto.dataReceived(batch)
        if tr.producerState == "paused":
            return


class ControlFloodTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(message, "MAX_UNREAD_REPLIES", BOUND)

    def test_stops_reading_while_replies_unread(self) -> None:
        proto = PongProtocol()
        tr = FakeTCP()
        proto.makeConnection(tr)
        pong = len(MessageWriter().encode(Pong()))
        batch = pings(1000)
        for _ in range(100):
            proto.dataReceived(batch)
            if tr.producerState == "paused":  # not reading the peer any more
                break
        self.assertEqual(tr.producerState, "paused")
        self.assertGreater(pending_write_bytes(tr), BOUND)
        self.assertLessEqual(pending_write_bytes(tr), BOUND + 1000 * pong)
        tr.drain()
        self.assertEqual(tr.producerState, "producing")
        self.assertIsNone(tr.producer)  # the gate is gone until the next time
        proto.dataReceived(pings(10))
        self.assertEqual(tr.producerState, "producing")

    def test_close_removes_the_gate(self) -> None:
        proto = PongProtocol()
        tr = FakeTCP()
        proto.makeConnection(tr)
        flood(proto, tr)
        self.assertEqual(tr.producerState, "paused")
        self.assertIsNotNone(tr.producer)
        proto.close()
        self.assertIsNone(tr.producer)  # a TLS transport would otherwise wait for it to close
        self.assertTrue(tr.disconnecting)

    def test_switch_to_raw_removes_the_gate(self) -> None:
        proto = PongProtocol()
        tr = FakeTCP()
        proto.makeConnection(tr)
        flood(proto, tr)
        proto.switch_to_raw()
        self.assertIsNone(tr.producer)  # the relay registers its own
        self.assertEqual(tr.producerState, "paused")  # raw connections wait paused

    def test_small_buffer_never_gates(self) -> None:
        proto = PongProtocol()
        tr = FakeTCP()
        proto.makeConnection(tr)
        proto.dataReceived(pings(1000))
        self.assertIsNone(tr.producer)
        self.assertEqual(tr.producerState, "producing")


class MuxControlFloodTests(SynchronousTestCase):
    """The same flood on a yamux stream: the Pongs queue behind the window the peer never
    grants; once 1 MiB waits, the stream stops reading, so it grants no window either."""

    def test_stream_stops_reading(self) -> None:
        self.patch(message, "MAX_UNREAD_REPLIES", BOUND)
        built: list[Any] = []

        def build() -> PongProtocol:
            built.append(PongProtocol())
            return built[-1]

        factory = Factory()
        factory.buildProtocol = lambda addr: build()  # type: ignore[method-assign]
        mux = YamuxProtocol(is_client=False, reactor=Clock(), stream_factory=factory)
        tr = StringTransport()
        mux.makeConnection(tr)
        mux.dataReceived(encode_header(WINDOW_UPDATE, SYN, 1, 0))
        stream = built[0].transport
        writer = MessageWriter()
        batch = pings(5000, writer)
        sent = 0
        for _ in range(20):  # 20 x 55 KB: within the 6 MiB window frps granted
            mux.dataReceived(encode_header(DATA, 0, 1, len(batch)) + batch)
            sent += len(batch)
        queued = mux.session.send_queued(1)
        self.assertGreater(queued, BOUND)
        self.assertLessEqual(queued, BOUND + 5000 * 20)
        self.assertTrue(stream._read_paused)
        self.assertGreater(sum(map(len, stream._rbuf)), 0)  # unread, so no window for the peer
