# -*- test-case-name: frptx.test.test_yamux_twisted -*-
"""Tests for the Twisted yamux adapter (``frptx.mux.transport``).

Most tests run two ``YamuxProtocol``s in memory (``twisted.test.iosim``) or one against a
``StringTransport`` with a ``task.Clock``; one test pushes 1000 concurrent echo streams
through a real loopback TCP connection.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.internet import error, reactor as global_reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer, ISSLTransport
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from frptx.mux import YamuxError, YamuxProtocol, YamuxStream
from frptx.mux.transport import Half, StreamState
from frptx.mux.yamux import DATA, SYN, WINDOW_UPDATE, encode_header

KIB = 1024


def h(hexstr: str) -> bytes:
    return bytes.fromhex(hexstr)


@implementer(IHalfCloseableProtocol)
class Echo(Protocol):
    """Echoes, and closes once the peer half-closed (like an HTTP/1.0 server)."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)

    def readConnectionLost(self) -> None:
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass


@implementer(IHalfCloseableProtocol)
class Recorder(Protocol):
    """Records everything that happens to it."""

    def __init__(self, on_made: Callable[[Recorder], None] | None = None) -> None:
        self.data = bytearray()
        self.made = False
        self.read_lost = False
        self.write_lost = False
        self.reason: Failure | None = None
        self.done: Deferred[Recorder] = Deferred()
        self.on_made = on_made
        self.close_on_read_lost = True

    def connectionMade(self) -> None:
        self.made = True
        if self.on_made is not None:
            self.on_made(self)

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def readConnectionLost(self) -> None:
        self.read_lost = True
        if self.close_on_read_lost:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        self.write_lost = True

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.reason = reason
        self.done.callback(self)


class PlainRecorder(Protocol):
    """No half-close support: a peer FIN closes the stream like TCP would."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.reason = reason


class ListFactory(Factory):
    """Hands out protocols made by ``make`` and remembers them."""

    def __init__(self, make: Callable[[], Protocol | None]) -> None:
        self.make = make
        self.built: list[Any] = []

    def buildProtocol(self, addr: Any) -> Protocol | None:  # type: ignore[override]
        p = self.make()
        if p is not None:
            self.built.append(p)
        return p


@implementer(IPushProducer)
class ChunkProducer:
    """A streaming producer that writes ``total`` bytes in ``chunk`` pieces while not paused."""

    def __init__(self, transport: YamuxStream, total: int, chunk: int) -> None:
        self.transport = transport
        self.total = total
        self.chunk = chunk
        self.sent = 0
        self.paused = True
        self.stopped = False
        self.payload = os.urandom(total)

    def resumeProducing(self) -> None:
        self.paused = False
        while not self.paused and self.sent < self.total and not self.stopped:
            piece = self.payload[self.sent : self.sent + self.chunk]
            self.sent += len(piece)
            self.transport.write(piece)

    def pauseProducing(self) -> None:
        self.paused = True

    def stopProducing(self) -> None:
        self.stopped = True


def mux_pair(
    factory: Factory | None,
    clock: Clock | None = None,
    **kw: Any,
) -> tuple[YamuxProtocol, YamuxProtocol, iosim.IOPump, Clock]:
    """A frpc-side and a frps-side YamuxProtocol joined in memory."""
    clock = clock or Clock()
    client = YamuxProtocol(is_client=True, reactor=clock, **kw)
    server = YamuxProtocol(is_client=False, reactor=clock, stream_factory=factory, **kw)
    pump = iosim.connect(
        server, iosim.makeFakeServer(server), client, iosim.makeFakeClient(client), clock=clock
    )
    return client, server, pump, clock


class StreamTests(SynchronousTestCase):
    def test_stream_ids_and_echo(self) -> None:
        client, server, pump, _ = mux_pair(ListFactory(Echo))
        recorders = [Recorder() for _ in range(3)]
        streams = [client.open_stream(r) for r in recorders]
        self.assertEqual([s.stream_id for s in streams], [1, 3, 5])
        self.assertTrue(all(r.made for r in recorders))
        for i, s in enumerate(streams):
            s.write(b"hello %d" % i)
            s.writeSequence([b" and", b" bye"])
            s.loseWriteConnection()
        pump.flush()
        for i, r in enumerate(recorders):
            self.assertEqual(bytes(r.data), b"hello %d and bye" % i)
            self.assertTrue(r.write_lost)
            self.assertTrue(r.read_lost)
            r.reason.trap(error.ConnectionDone)
        self.assertEqual(client.stream_count, 0)
        self.assertEqual(server.stream_count, 0)

    def test_get_peer_host_and_tcp_noops(self) -> None:
        client, server, pump, _ = mux_pair(ListFactory(Echo))
        stream = client.open_stream(Recorder())
        self.assertIs(stream.getPeer(), client.transport.getPeer())
        self.assertIs(stream.getHost(), client.transport.getHost())
        stream.setTcpNoDelay(True)
        stream.setTcpKeepAlive(True)
        self.assertTrue(stream.getTcpNoDelay())
        self.assertTrue(stream.connected)

    def test_half_close_data_flows_back(self) -> None:
        """Client FIN, server keeps sending, then closes."""
        server_side: list[Recorder] = []

        def make() -> Recorder:
            r = Recorder()
            r.close_on_read_lost = False
            server_side.append(r)
            return r

        client, server, pump, _ = mux_pair(ListFactory(make))
        rec = Recorder()
        stream = client.open_stream(rec)
        stream.write(b"request")
        stream.loseWriteConnection()
        pump.flush()
        srv = server_side[0]
        self.assertEqual(bytes(srv.data), b"request")
        self.assertTrue(srv.read_lost)
        self.assertTrue(rec.write_lost)
        self.assertFalse(rec.done.called)
        stream.write(b"ignored after FIN")
        srv.transport.write(b"response part 1, ")
        pump.flush()
        srv.transport.write(b"part 2")
        srv.transport.loseConnection()
        pump.flush()
        self.assertEqual(bytes(rec.data), b"response part 1, part 2")
        self.assertTrue(rec.read_lost)
        rec.reason.trap(error.ConnectionDone)
        srv.reason.trap(error.ConnectionDone)
        self.assertEqual(bytes(srv.data), b"request")
        self.assertEqual((client.stream_count, server.stream_count), (0, 0))

    def test_remote_fin_without_half_close(self) -> None:
        plain: list[PlainRecorder] = []
        client, server, pump, _ = mux_pair(ListFactory(lambda: plain.append(PlainRecorder()) or plain[-1]))
        rec = Recorder()
        rec.close_on_read_lost = False
        stream = client.open_stream(rec)
        stream.write(b"x")
        stream.loseWriteConnection()
        pump.flush()
        plain[0].reason.trap(error.ConnectionDone)
        self.assertEqual(bytes(plain[0].data), b"x")
        rec.reason.trap(error.ConnectionDone)
        self.assertEqual((client.stream_count, server.stream_count), (0, 0))

    def test_lose_connection_flushes_then_fin(self) -> None:
        """loseConnection: queued data, then FIN, then connectionLost(ConnectionDone);
        data the peer sends afterwards is discarded but its window keeps moving."""
        server_side: list[Recorder] = []

        def make() -> Recorder:
            r = Recorder()
            r.close_on_read_lost = False
            server_side.append(r)
            return r

        client, server, pump, _ = mux_pair(ListFactory(make), max_stream_window=256 * KIB)
        rec = Recorder()
        stream = client.open_stream(rec)
        payload = os.urandom(600 * KIB)  # more than a window: FIN waits for the data
        stream.write(payload)
        stream.loseConnection()
        self.assertTrue(stream.disconnecting)
        self.assertFalse(rec.done.called)
        pump.flush()
        rec.reason.trap(error.ConnectionDone)
        srv = server_side[0]
        self.assertEqual(bytes(srv.data), payload)
        self.assertTrue(srv.read_lost)
        # The server still sends 1 MiB: the closed side credits it, nothing stalls.
        srv.transport.write(os.urandom(1024 * KIB))
        pump.flush()
        self.assertEqual(server.session.send_queued(1), 0)
        self.assertEqual(client.stream_count, 1)  # waits for the peer's FIN
        srv.transport.loseConnection()
        pump.flush()
        self.assertEqual(bytes(rec.data), b"")
        self.assertEqual((client.stream_count, server.stream_count), (0, 0))

    def test_close_timeout_resets(self) -> None:
        server_side: list[Recorder] = []

        def make() -> Recorder:
            r = Recorder()
            r.close_on_read_lost = False
            server_side.append(r)
            return r

        client, server, pump, clock = mux_pair(ListFactory(make), keepalive_interval=0)
        stream = client.open_stream(Recorder())
        stream.loseConnection()
        pump.flush()
        self.assertEqual(client.stream_count, 1)
        clock.advance(299)
        self.assertEqual(client.stream_count, 1)
        clock.advance(2)
        pump.flush()
        self.assertEqual((client.stream_count, server.stream_count), (0, 0))
        server_side[0].reason.trap(error.ConnectionLost)

    def test_abort_and_remote_rst(self) -> None:
        server_side: list[Recorder] = []
        client, server, pump, _ = mux_pair(ListFactory(lambda: server_side.append(Recorder()) or server_side[-1]))
        rec = Recorder()
        stream = client.open_stream(rec)
        pump.flush()
        stream.abortConnection()
        rec.reason.trap(error.ConnectionAborted)
        pump.flush()
        server_side[0].reason.trap(error.ConnectionLost)
        self.assertEqual((client.stream_count, server.stream_count), (0, 0))
        stream.write(b"nothing happens")
        stream.loseConnection()

    def test_no_protocol_resets(self) -> None:
        client, server, pump, _ = mux_pair(ListFactory(lambda: None))
        rec = Recorder()
        client.open_stream(rec)
        pump.flush()
        rec.reason.trap(error.ConnectionLost)
        self.assertEqual((client.stream_count, server.stream_count), (0, 0))

    def test_no_factory_resets(self) -> None:
        client, server, pump, _ = mux_pair(None)
        rec = Recorder()
        client.open_stream(rec)
        pump.flush()
        rec.reason.trap(error.ConnectionLost)
        self.assertEqual(server.stream_count, 0)

    def test_backlog_overflow(self) -> None:
        """Streams left unaccepted by an earlier read fill the backlog: later SYNs get RST."""
        built: list[Recorder] = []
        server = YamuxProtocol(
            is_client=False, reactor=Clock(), accept_backlog=2, max_stream_window=256 * KIB,
            stream_factory=ListFactory(lambda: built.append(Recorder()) or built[-1]),
        )
        tr = StringTransport()
        server.makeConnection(tr)
        server.session._pending_accept = 2  # as if two earlier streams still waited for accept
        server.dataReceived(encode_header(WINDOW_UPDATE, SYN, 1, 0))
        self.assertEqual(built, [])
        self.assertEqual(tr.value(), h("000100080000000100000000"))
        self.assertEqual(server.stream_count, 0)

    def test_burst_of_syns_in_one_read(self) -> None:
        """300 SYNs in one read (a burst of users through tcpMux) are all accepted and ACKed:
        the backlog of 256 only counts streams the application did not accept (item 2)."""
        built: list[Recorder] = []
        server = YamuxProtocol(
            is_client=False, reactor=Clock(), max_stream_window=256 * KIB,
            stream_factory=ListFactory(lambda: built.append(Recorder()) or built[-1]),
        )
        tr = StringTransport()
        server.makeConnection(tr)
        ids = range(1, 601, 2)
        server.dataReceived(b"".join(encode_header(WINDOW_UPDATE, SYN, i, 0) for i in ids))
        self.assertEqual(len(built), 300)
        self.assertEqual(tr.value(), b"".join(encode_header(WINDOW_UPDATE, 2, i, 0) for i in ids))
        self.assertEqual(server.stream_count, 300)
        self.assertTrue(all(r.reason is None for r in built))

    def test_ack_sent_before_protocol_data(self) -> None:
        """The ACK goes out before anything the new protocol writes in connectionMade."""
        server = YamuxProtocol(
            is_client=False, reactor=Clock(), max_stream_window=256 * KIB,
            stream_factory=ListFactory(lambda: Recorder(on_made=lambda r: r.transport.write(b"hi"))),
        )
        tr = StringTransport()
        server.makeConnection(tr)
        server.dataReceived(h("000100010000000100000000"))
        self.assertEqual(tr.value(), h("000100020000000100000000") + encode_header(DATA, 0, 1, 2) + b"hi")


class LifecycleStateTests(SynchronousTestCase):
    """The stream's explicit state machine: named states for every path of its life."""

    def server_recorders(self) -> tuple[list[Recorder], ListFactory]:
        side: list[Recorder] = []

        def make() -> Recorder:
            r = Recorder()
            r.close_on_read_lost = False
            side.append(r)
            return r

        return side, ListFactory(make)

    def test_half_closes_then_closed(self) -> None:
        side, factory = self.server_recorders()
        client, server, pump, _ = mux_pair(factory, max_stream_window=256 * KIB)
        stream = client.open_stream(Recorder())
        self.assertEqual((stream.state, stream.send, stream.recv), (StreamState.OPEN, Half.OPEN, Half.OPEN))
        stream.write(os.urandom(300 * KIB))  # beyond the window: our FIN has to wait
        stream.loseWriteConnection()
        self.assertIs(stream.send, Half.FIN_PENDING)
        pump.flush()
        self.assertIs(stream.send, Half.CLOSED)  # out, writeConnectionLost told
        self.assertIs(stream.state, StreamState.OPEN)
        srv = side[0].transport
        assert isinstance(srv, YamuxStream)
        self.assertEqual((srv.recv, srv.send), (Half.CLOSED, Half.OPEN))  # the reply can still flow
        srv.loseWriteConnection()
        pump.flush()
        self.assertIs(stream.recv, Half.CLOSED)
        self.assertIs(stream.state, StreamState.CLOSED)
        self.assertIs(srv.state, StreamState.CLOSED)
        self.assertFalse(stream.connected)
        self.assertTrue(stream.disconnected)

    def test_peer_fin_pending_behind_paused_reads(self) -> None:
        side, factory = self.server_recorders()
        client, server, pump, _ = mux_pair(factory)
        rec = Recorder()
        rec.close_on_read_lost = False
        stream = client.open_stream(rec)
        pump.flush()
        stream.pauseProducing()
        side[0].transport.write(b"data")
        side[0].transport.loseWriteConnection()
        pump.flush()
        self.assertIs(stream.recv, Half.FIN_PENDING)
        self.assertFalse(rec.read_lost)
        stream.resumeProducing()
        self.assertIs(stream.recv, Half.CLOSED)
        self.assertTrue(rec.read_lost)
        self.assertEqual(bytes(rec.data), b"data")

    def test_lose_connection_is_closing_until_the_fin_is_out(self) -> None:
        _, factory = self.server_recorders()
        client, server, pump, _ = mux_pair(factory, max_stream_window=256 * KIB)
        stream = client.open_stream(Recorder())
        stream.write(os.urandom(300 * KIB))
        stream.loseConnection()
        self.assertIs(stream.state, StreamState.CLOSING)
        self.assertTrue(stream.disconnecting)
        stream.loseConnection()  # again: nothing changes
        self.assertIs(stream.state, StreamState.CLOSING)
        pump.flush()
        self.assertIs(stream.state, StreamState.CLOSED)

    def test_abrupt_ends_are_reset(self) -> None:
        _, factory = self.server_recorders()
        client, server, pump, _ = mux_pair(factory)
        aborted, reset = client.open_stream(Recorder()), client.open_stream(Recorder())
        pump.flush()
        aborted.abortConnection()
        self.assertIs(aborted.state, StreamState.RESET)
        self.assertEqual((aborted.send, aborted.recv), (Half.CLOSED, Half.CLOSED))
        server._streams[reset.stream_id].abortConnection()
        pump.flush()
        self.assertIs(reset.state, StreamState.RESET)
        lost = client.open_stream(Recorder())
        client.close()
        self.assertIs(lost.state, StreamState.RESET)

    def test_no_transition_out_of_an_end(self) -> None:
        client, server, pump, _ = mux_pair(ListFactory(Echo))
        stream = client.open_stream(Recorder())
        stream.abortConnection()
        with self.assertRaises(RuntimeError):
            stream._enter(StreamState.OPEN)
        stream.write(b"ignored")  # ended: every input is a no-op
        stream.loseWriteConnection()
        stream.loseConnection()
        self.assertIs(stream.state, StreamState.RESET)


class BackpressureTests(SynchronousTestCase):
    def test_slow_reader_stops_sender(self) -> None:
        """A paused reader stops its sender after one window; memory stays bounded
        while another stream on the same session keeps flowing."""
        window = 256 * KIB
        server_side: list[Recorder] = []

        def make() -> Protocol:
            if not server_side:
                r = Recorder(on_made=lambda r: r.transport.pauseProducing())
                server_side.append(r)
                return r
            return Echo()

        client, server, pump, _ = mux_pair(ListFactory(make), max_stream_window=window)
        slow = client.open_stream(Recorder())
        producer = ChunkProducer(slow, total=2 * 1024 * KIB, chunk=64 * KIB)
        slow.registerProducer(producer, True)
        producer.resumeProducing()
        fast_rec = Recorder()
        fast = client.open_stream(fast_rec)
        fast_payload = os.urandom(1024 * KIB)
        fast.write(fast_payload)
        fast.loseWriteConnection()
        for _ in range(200):
            if not pump.pump():
                break
            self.assertLessEqual(client.session.send_queued(slow.stream_id), 64 * KIB)
            self.assertLessEqual(producer.sent, window + 64 * KIB)
            buffered = sum(map(len, server_side[0].transport._rbuf))
            self.assertLessEqual(buffered, window)
        self.assertTrue(producer.paused)
        self.assertEqual(bytes(server_side[0].data), b"")
        self.assertEqual(sum(map(len, server_side[0].transport._rbuf)), window)
        self.assertEqual(bytes(fast_rec.data), fast_payload)  # the other stream flowed
        # The reader resumes: everything arrives, the producer finishes.
        server_side[0].transport.resumeProducing()
        for _ in range(200):
            pump.flush()
            if producer.sent == producer.total and not client.session.send_queued(slow.stream_id):
                break
            if not producer.paused:
                producer.resumeProducing()
        pump.flush()
        self.assertEqual(bytes(server_side[0].data), producer.payload)

    def test_paused_reader_defers_data_fin_and_window(self) -> None:
        """While paused: no delivery, no WindowUpdate, FIN held back; resume delivers
        data, then readConnectionLost, then connectionLost."""
        server_side: list[Recorder] = []

        def make() -> Recorder:
            r = Recorder(on_made=lambda r: r.transport.pauseProducing())
            server_side.append(r)
            return r

        client, server, pump, _ = mux_pair(ListFactory(make), max_stream_window=256 * KIB)
        rec = Recorder()
        stream = client.open_stream(rec)
        payload = os.urandom(200 * KIB)
        stream.write(payload)
        stream.loseWriteConnection()
        pump.flush()
        srv = server_side[0]
        self.assertEqual((bytes(srv.data), srv.read_lost), (b"", False))
        self.assertEqual(client.session.send_window(1), 56 * KIB)  # no update came back
        self.assertEqual(server.stream_count, 1)
        srv.transport.resumeProducing()
        self.assertEqual(bytes(srv.data), payload)
        self.assertTrue(srv.read_lost)
        pump.flush()
        srv.reason.trap(error.ConnectionDone)
        rec.reason.trap(error.ConnectionDone)
        self.assertEqual((client.stream_count, server.stream_count), (0, 0))

    def test_session_producer_pauses_stream_producers(self) -> None:
        client, server, pump, _ = mux_pair(ListFactory(Echo))
        stream = client.open_stream(Recorder())
        producer = ChunkProducer(stream, total=10, chunk=1)
        stream.registerProducer(producer, True)
        self.assertIs(client.transport.producer, client)
        client.pauseProducing()
        self.assertTrue(producer.paused)
        client.resumeProducing()
        self.assertEqual(producer.sent, 10)  # resumed: it wrote everything
        stream.unregisterProducer()
        client.pauseProducing()
        client.resumeProducing()

    def test_pull_producer(self) -> None:
        client, server, pump, clock = mux_pair(ListFactory(Echo))
        rec = Recorder()
        stream = client.open_stream(rec)

        class Pull:
            count = 0

            def resumeProducing(self) -> None:
                self.count += 1
                if self.count <= 3:
                    stream.write(b"%d" % self.count)
                else:
                    stream.unregisterProducer()
                    stream.loseWriteConnection()

            def stopProducing(self) -> None:
                pass

        stream.registerProducer(Pull(), False)
        for _ in range(10):
            clock.advance(0)
            pump.flush()
        self.assertEqual(bytes(rec.data), b"123")

    def test_register_twice(self) -> None:
        client, server, pump, _ = mux_pair(ListFactory(Echo))
        stream = client.open_stream(Recorder())
        stream.registerProducer(ChunkProducer(stream, 0, 1), True)
        self.assertRaises(RuntimeError, stream.registerProducer, ChunkProducer(stream, 0, 1), True)


class UnreadRepliesTests(SynchronousTestCase):
    """A peer that floods Pings (or SYNs) and never reads its replies: once 256 KiB of
    replies piled up in a full write buffer the session stops reading until it drains
    (issue 10, item 5: frps grew to 1.1-1.8 GiB in 15-21 s)."""

    def _server(self) -> tuple[YamuxProtocol, StringTransport]:
        server = YamuxProtocol(is_client=False, reactor=Clock(), max_stream_window=256 * KIB,
                               stream_factory=ListFactory(Recorder))
        tr = StringTransport()
        server.makeConnection(tr)
        self.assertIs(tr.producer, server)
        return server, tr

    def test_ping_flood_stops_reading_until_drained(self) -> None:
        server, tr = self._server()
        server.pauseProducing()  # the socket's write buffer is full: the peer is not reading
        pings = b"".join(encode_header(2, SYN, 0, i) for i in range(5000))  # 60 000 bytes of ACKs each
        for _ in range(4):
            server.dataReceived(pings)
        self.assertEqual(tr.producerState, "producing")  # 240 000 bytes: still under the bound
        server.dataReceived(pings)
        self.assertEqual(tr.producerState, "paused")  # no longer reading the connection
        self.assertEqual(len(tr.value()), 25000 * 12)  # every Ping still got its ACK
        server.resumeProducing()  # the buffer drained
        self.assertEqual(tr.producerState, "producing")
        server.dataReceived(pings)  # the count starts again from the drain
        self.assertEqual(tr.producerState, "producing")

    def test_syn_flood_counts_too(self) -> None:
        server, tr = self._server()
        server.pauseProducing()
        syns = b"".join(encode_header(WINDOW_UPDATE, SYN, i, 0) for i in range(1, 2 * 22000, 2))
        server.dataReceived(syns)
        self.assertEqual(tr.producerState, "paused")

    def test_data_does_not_count(self) -> None:
        """Data (and the window updates it earns) is bounded by the stream windows, not by
        this rule: a busy peer whose buffer is full keeps being read."""
        server, tr = self._server()
        server.dataReceived(encode_header(WINDOW_UPDATE, SYN, 1, 0))
        server.pauseProducing()
        for _ in range(40):
            server.dataReceived(encode_header(DATA, 0, 1, 64 * KIB) + bytes(64 * KIB))
        self.assertEqual(tr.producerState, "producing")

    def test_not_paused_by_transport_keeps_reading(self) -> None:
        """Without a full write buffer nothing is stopped (nobody would resume it)."""
        server, tr = self._server()
        pings = b"".join(encode_header(2, SYN, 0, i) for i in range(5000))
        for _ in range(10):
            server.dataReceived(pings)
        self.assertEqual(tr.producerState, "producing")


class SessionTests(SynchronousTestCase):
    def test_session_loss_closes_every_stream(self) -> None:
        server_side: list[Recorder] = []
        client, server, pump, _ = mux_pair(ListFactory(lambda: server_side.append(Recorder()) or server_side[-1]))
        recs = [Recorder() for _ in range(5)]
        for r in recs:
            client.open_stream(r)
        pump.flush()
        closed = client.when_closed()
        client.transport.loseConnection()
        pump.flush()
        for r in recs + server_side:
            r.reason.trap(error.ConnectionLost)
        self.assertEqual(len(server_side), 5)
        self.assertTrue(closed.called)
        self.assertFalse(client.is_open)
        self.assertFalse(server.is_open)
        self.assertEqual((client.stream_count, server.stream_count), (0, 0))
        self.assertRaises(YamuxError, client.open_stream, Recorder())
        self.assertTrue(server.when_closed().called)

    def test_close(self) -> None:
        client, server, pump, _ = mux_pair(ListFactory(Echo))
        rec = Recorder()
        client.open_stream(rec)
        pump.flush()
        d = client.when_closed()
        client.close("test over")
        rec.reason.trap(error.ConnectionLost)
        self.assertIn("test over", rec.reason.getErrorMessage())
        self.assertFalse(client.is_open)
        self.assertFalse(d.called)  # until the connection is really gone
        pump.flush()
        self.assertTrue(d.called)
        self.assertFalse(server.is_open)
        client.close()  # idempotent

    def test_go_away(self) -> None:
        client, server, pump, _ = mux_pair(ListFactory(Echo))
        rec = Recorder()
        stream = client.open_stream(rec)
        pump.flush()
        server.go_away()
        pump.flush()
        self.assertRaises(YamuxError, client.open_stream, Recorder())
        stream.write(b"still works")
        stream.loseWriteConnection()
        pump.flush()
        self.assertEqual(bytes(rec.data), b"still works")
        self.assertTrue(client.is_open)

    def test_keepalive(self) -> None:
        clock = Clock()
        proto = YamuxProtocol(is_client=True, reactor=clock)
        tr = StringTransport()
        proto.makeConnection(tr)
        self.assertIs(tr.producer, proto)
        clock.advance(29.9)
        self.assertEqual(tr.value(), b"")
        clock.advance(0.1)
        self.assertEqual(tr.value(), h("000200010000000000000000"))
        tr.clear()
        proto.dataReceived(h("000200020000000000000000"))
        clock.advance(10)
        self.assertTrue(proto.is_open)
        clock.advance(20)
        self.assertEqual(tr.value(), h("000200010000000000000001"))
        proto.dataReceived(h("000200010000000000000007"))  # the peer's own ping
        self.assertEqual(tr.value()[12:], h("000200020000000000000007"))

    def test_keepalive_timeout(self) -> None:
        clock = Clock()
        proto = YamuxProtocol(is_client=True, reactor=clock, keepalive_interval=30, keepalive_timeout=10)
        tr = StringTransport()
        proto.makeConnection(tr)
        rec = Recorder()
        proto.open_stream(rec)
        closed = proto.when_closed()
        clock.advance(30)
        clock.advance(9.9)
        self.assertTrue(proto.is_open)
        clock.advance(0.1)
        self.assertFalse(proto.is_open)
        self.assertTrue(tr.disconnecting)
        rec.reason.trap(error.ConnectionLost)
        proto.connectionLost(Failure(error.ConnectionLost()))
        self.assertTrue(closed.called)
        self.assertEqual(clock.getDelayedCalls(), [])

    def _server_on_string(self) -> tuple[YamuxProtocol, StringTransport, list[Recorder]]:
        built: list[Recorder] = []
        server = YamuxProtocol(
            is_client=False, reactor=Clock(), max_stream_window=256 * KIB,
            stream_factory=ListFactory(lambda: built.append(Recorder()) or built[-1]),
        )
        tr = StringTransport()
        server.makeConnection(tr)
        server.dataReceived(h("000100010000000100000000"))
        tr.clear()
        return server, tr, built

    def test_protocol_error_bad_version(self) -> None:
        server, tr, built = self._server_on_string()
        server.dataReceived(h("6f00000000000000b87b2276657273696f6e"))
        self.assertEqual(tr.value(), h("000300000000000000000001"))
        self.assertTrue(tr.disconnecting)
        self.assertFalse(server.is_open)
        built[0].reason.trap(error.ConnectionLost)
        self.assertEqual(server.stream_count, 0)
        server.connectionLost(Failure(error.ConnectionDone()))

    def test_protocol_error_oversized_data(self) -> None:
        server, tr, built = self._server_on_string()
        server.dataReceived(encode_header(DATA, 0, 1, 256 * KIB + 1))
        self.assertEqual(tr.value(), h("000300000000000000000001"))
        self.assertTrue(tr.disconnecting)
        built[0].reason.trap(error.ConnectionLost)
        server.connectionLost(Failure(error.ConnectionDone()))

    def test_remote_goaway_error_tears_down(self) -> None:
        server, tr, built = self._server_on_string()
        server.dataReceived(h("000300000000000000000002"))
        self.assertEqual(tr.value(), b"")
        self.assertTrue(tr.disconnecting)
        built[0].reason.trap(error.ConnectionLost)
        server.connectionLost(Failure(error.ConnectionDone()))

    def test_close_without_connection(self) -> None:
        proto = YamuxProtocol(is_client=True, reactor=Clock())
        self.assertRaises(YamuxError, proto.open_stream, Recorder())
        proto.close()
        self.assertTrue(proto.when_closed().called)


class LoopbackTests(TestCase):
    """Real sockets on 127.0.0.1: 1000 concurrent echo streams over one session."""

    timeout = 60

    @inlineCallbacks
    def test_thousand_streams(self) -> Any:
        server_protos: list[YamuxProtocol] = []

        def build_server(addr: Any) -> YamuxProtocol:
            p = YamuxProtocol(is_client=False, reactor=global_reactor, stream_factory=ListFactory(Echo))
            server_protos.append(p)
            return p

        server_factory = Factory.forProtocol(Echo)
        server_factory.buildProtocol = build_server  # type: ignore[method-assign]
        port = yield TCP4ServerEndpoint(global_reactor, 0, interface="127.0.0.1").listen(server_factory)
        self.addCleanup(port.stopListening)
        client = YamuxProtocol(is_client=True, reactor=global_reactor)
        yield connectProtocol(TCP4ClientEndpoint(global_reactor, "127.0.0.1", port.getHost().port), client)
        self.addCleanup(lambda: client.when_closed())
        self.addCleanup(client.close)

        payloads = [os.urandom(2000 + 37 * i) for i in range(1000)]
        recorders = []
        ids = []

        for payload in payloads:
            def send(r: Recorder, payload: bytes = payload) -> None:
                r.transport.write(payload[:1000])
                r.transport.write(payload[1000:])
                r.transport.loseWriteConnection()

            rec = Recorder(on_made=send)
            recorders.append(rec)
            ids.append(client.open_stream(rec).stream_id)
        self.assertEqual(ids[:3], [1, 3, 5])
        self.assertEqual(ids[-1], 1999)
        done = yield gatherResults([r.done for r in recorders])
        for rec, payload in zip(done, payloads, strict=True):
            self.assertEqual(bytes(rec.data), payload)
            rec.reason.trap(error.ConnectionDone)
        self.assertEqual(client.stream_count, 0)
        self.assertEqual(server_protos[0].stream_count, 0)
        server_closed = server_protos[0].when_closed()
        client.close()
        yield client.when_closed()
        yield server_closed


@implementer(ISSLTransport)
class _TLSStringTransport(StringTransport):
    """A StringTransport that says it is TLS, and counts its writes."""

    writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        super().write(data)

    def writeSequence(self, seq: Any) -> None:
        self.write(b"".join(seq))

    def getPeerCertificate(self) -> None:
        return None


class CoalescingTests(SynchronousTestCase):
    """``coalesce_over_tls``: a turn's frames leave in one write, over TLS only."""

    def session(self, transport: StringTransport) -> tuple[YamuxProtocol, Clock]:
        clock = Clock()
        mux = YamuxProtocol(is_client=True, reactor=clock, keepalive_interval=0, coalesce_over_tls=True)
        mux.makeConnection(transport)
        return mux, clock

    def test_tls_frames_of_one_turn_leave_together(self) -> None:
        transport = _TLSStringTransport()
        mux, clock = self.session(transport)
        streams = [mux.open_stream(Recorder()) for _ in range(3)]
        for i, s in enumerate(streams):
            s.write(b"request %d" % i)
        self.assertEqual(transport.value(), b"")  # nothing yet: the turn is not over
        clock.advance(0)
        self.assertEqual(transport.writes, 1)
        sent = transport.value()
        for i in range(3):
            self.assertIn(b"request %d" % i, sent)
        self.assertEqual(sent[:8], encode_header(WINDOW_UPDATE, SYN, 1, 0)[:8])  # the first SYN first
        mux.close()  # a close flushes at once and leaves no flush behind
        self.assertIsNone(mux._flush_call)

    def test_close_sends_what_is_pending(self) -> None:
        transport = _TLSStringTransport()
        mux, clock = self.session(transport)
        stream = mux.open_stream(Recorder())
        stream.write(b"last words")
        mux.close()
        self.assertIn(b"last words", transport.value())
        self.assertEqual([c for c in clock.getDelayedCalls() if c.getTime() == clock.seconds()], [])

    def test_plain_tcp_writes_at_once(self) -> None:
        transport = StringTransport()
        mux, clock = self.session(transport)
        stream = mux.open_stream(Recorder())
        stream.write(b"now")
        self.assertIn(b"now", transport.value())
        self.assertEqual(clock.getDelayedCalls(), [])


@implementer(IHalfCloseableProtocol)
class _BadFramer(Protocol):
    """A peer that breaks the yamux protocol and then neither reads on nor closes: a TLS
    close_notify from frps is only a half-close to it, so it never answers one."""

    def __init__(self) -> None:
        self.read_lost = False

    def connectionMade(self) -> None:
        self.transport.write(h("6f00000000000000b87b2276657273696f6e"))

    def readConnectionLost(self) -> None:
        self.read_lost = True

    def writeConnectionLost(self) -> None:
        pass


class ProtocolErrorCloseTests(SynchronousTestCase):
    """After GoAway(1) the connection closes at once, over TLS as over TCP, without any
    timer firing (issue 10, item 7: over TLS it used to wait for the 10 s abort grace)."""

    def _connect(self, use_tls: bool) -> tuple[YamuxProtocol, _BadFramer, iosim.IOPump, Clock]:
        from frptx.transport import tls_client, tls_context, tls_server

        clock = Clock()
        servers: list[YamuxProtocol] = []

        def build_mux(addr: Any) -> YamuxProtocol:
            servers.append(YamuxProtocol(is_client=False, reactor=clock, stream_factory=ListFactory(Echo)))
            return servers[-1]

        inner = Factory()
        inner.buildProtocol = build_mux  # type: ignore[method-assign]
        attacker = _BadFramer()
        if use_tls:
            server_factory: Any = tls_server.TLSSniffingFactory(
                inner, tls_context.server_context_factory(), force=False, reactor=clock
            )
            client_inner = Factory()
            client_inner.buildProtocol = lambda addr: attacker  # type: ignore[method-assign]
            client_factory = tls_client.wrap_client_factory(
                client_inner, tls_context.client_connection_creator(server_addr="127.0.0.1"),
                custom_first_byte=True, clock=clock,
            )
            client_proto = client_factory.buildProtocol(None)
            server_proto = server_factory.buildProtocol(None)
        else:
            client_proto, server_proto = attacker, build_mux(None)
        pump = iosim.connect(
            server_proto, iosim.makeFakeServer(server_proto), client_proto, iosim.makeFakeClient(client_proto),
            clock=clock,
        )
        pump.flush()
        return servers[0], attacker, pump, clock

    def _assert_closed_without_timers(self, use_tls: bool) -> None:
        server, attacker, pump, clock = self._connect(use_tls)
        self.assertFalse(server.is_open)
        self.assertTrue(server.when_closed().called)  # the connection is gone: no clock advanced
        self.assertEqual(clock.seconds(), 0)

    def test_plain(self) -> None:
        self._assert_closed_without_timers(False)

    def test_tls(self) -> None:
        self._assert_closed_without_timers(True)
