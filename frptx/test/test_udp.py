"""udp/sudp building blocks on fake transports and a fake clock.

``PacketChannel`` (framing, codec, drops, backpressure), frps's ``UdpProxy``
(one work connection, buffering, replacement) and frpc's work handler (local
sockets per user, idle expiry, Pings, replacement) without any real socket.
"""
from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import (
    MemoryReactorClock,
    StringTransport,
    StringTransportWithDisconnection,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.trial import unittest

from frptx.client import udp as client_udp
from frptx.client.udp import (
    PEER_IDLE_TIMEOUT,
    PING_INTERVAL,
    attach_udp_work,
    handlers_of,
)
from frptx.config import ProxyConfig, ServerConfig
from frptx.protocols.codec import StreamCodec
from frptx.protocols.message import MessageProtocol
from frptx.protocols.packets import DROP_LOG_INTERVAL, PacketChannel, max_udp_payload
from frptx.protocols.relay import TrafficCounter
from frptx.protocols.tracking import ConnectionSet
from frptx.server.control import ServerWorkConnection
from frptx.server.ingress import UDP_PORT
from frptx.server.kinds import udp as server_udp
from frptx.server.kinds.udp import UdpProxy
from frptx.server.registry import FrpServer
from frptx.wire import (
    MAX_MESSAGE_SIZE,
    MessageReader,
    MessageWriter,
    NewProxy,
    Ping,
    Pong,
    StartWorkConn,
    UDPPacket,
    encode_message,
)

USER_A = ("203.0.113.7", 5353)
USER_B = ("198.51.100.9", 40000)


class RawProtocol(MessageProtocol):
    """A work connection already switched to raw mode (what the channel is given)."""

    def message_received(self, msg: Any) -> None:
        raise AssertionError(f"unexpected message {msg!r}")


def raw_protocol(transport: StringTransport | None = None) -> RawProtocol:
    p = RawProtocol()
    t = transport or StringTransportWithDisconnection()
    if isinstance(t, StringTransportWithDisconnection):
        t.protocol = p
    p.makeConnection(t)
    p.switch_to_raw()
    return p


def is_closing(transport: StringTransport) -> bool:
    """loseConnection was called (a StringTransportWithDisconnection disconnects at once)."""
    return bool(transport.disconnecting or not transport.connected)


def frames_from(data: bytes, codec: StreamCodec | None = None) -> list[Any]:
    if codec is not None:
        data = codec.decode(data)
    reader = MessageReader()
    reader.feed(data)
    out = []
    while (msg := reader.next_message()) is not None:
        out.append(msg)
    return out


def chunks(data: bytes, rng: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, 300)
        out.append(data[i:i + n])
        i += n
    return out


def channel_on(clock: MemoryReactorClock, codec: StreamCodec | None = None, **kw: Any
               ) -> tuple[PacketChannel, RawProtocol, list[UDPPacket]]:
    got: list[UDPPacket] = []
    protocol = raw_protocol()
    channel = PacketChannel(protocol, codec, got.append, clock, **kw)
    channel.start()
    return channel, protocol, got


# ----------------------------------------------------------------------------------------
# PacketChannel


class PacketChannelTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = MemoryReactorClock()

    def roundtrip(self, codecs: tuple[StreamCodec | None, StreamCodec | None], seed: int) -> None:
        rng = random.Random(seed)
        a, a_proto, _ = channel_on(self.clock, codecs[0])
        b, _, got = channel_on(self.clock, codecs[1])
        sent = [UDPPacket(content=rng.randbytes(rng.randint(0, 2000)), remote_addr=USER_A) for _ in range(200)]
        for i, packet in enumerate(sent):
            self.assertTrue(a.send(packet))
            if i % 50 == 0:
                a.send_ping()  # keepalives are skipped by the receiver
        for piece in chunks(a_proto.transport.value(), rng):
            b.data_received(piece)
        self.assertEqual(got, sent)
        self.assertEqual((a.packets_out, b.packets_in, b.closed), (200, 200, False))

    def test_roundtrip_plain_random_chunks(self) -> None:
        self.roundtrip((None, None), 1)

    def test_roundtrip_encrypted_compressed_random_chunks(self) -> None:
        self.roundtrip((StreamCodec("tok", True, True), StreamCodec("tok", True, True)), 2)

    def test_roundtrip_encrypted_only(self) -> None:
        self.roundtrip((StreamCodec("tok", True, False), StreamCodec("tok", True, False)), 3)

    def test_wire_format_is_plain_v1_frames(self) -> None:
        channel, proto, _ = channel_on(self.clock)
        channel.send(UDPPacket(content=b"hello", remote_addr=("203.0.113.7", 5353)))
        channel.send_ping()
        self.assertEqual(proto.transport.value(),
                         b"u" + (63).to_bytes(8, "big")
                         + b'{"c":"aGVsbG8=","r":{"IP":"203.0.113.7","Port":5353,"Zone":""}}'
                         + bytes.fromhex("6800000000000000027b7d"))

    def test_early_bytes_first_then_resumes(self) -> None:
        proto = raw_protocol()
        self.assertEqual(proto.transport.producerState, "paused")
        proto.dataReceived(encode_message(UDPPacket(content=b"early", remote_addr=USER_A))[:7])
        got: list[UDPPacket] = []
        channel = PacketChannel(proto, None, got.append, self.clock)
        channel.start()
        self.assertEqual(proto.transport.producerState, "producing")
        self.assertIs(proto.transport.producer, channel)
        proto.dataReceived(encode_message(UDPPacket(content=b"early", remote_addr=USER_A))[7:])
        self.assertEqual(got, [UDPPacket(content=b"early", remote_addr=USER_A)])

    def test_largest_datagram_sent_larger_dropped_and_counted(self) -> None:
        channel, proto, _ = channel_on(self.clock)
        limit = max_udp_payload(USER_A)
        self.assertTrue(channel.send(UDPPacket(content=b"x" * limit, remote_addr=USER_A)))
        frame = proto.transport.value()
        self.assertLessEqual(len(frame) - 9, MAX_MESSAGE_SIZE)
        self.assertGreater(len(frame) - 9 + 4, MAX_MESSAGE_SIZE)  # 3 more bytes would not fit
        proto.transport.clear()
        self.assertFalse(channel.send(UDPPacket(content=b"x" * (limit + 1), remote_addr=USER_A)))
        self.assertEqual(proto.transport.value(), b"")
        self.assertEqual((channel.dropped_oversize, channel.dropped), (1, 1))
        self.assertFalse(channel.closed)

    def test_paused_transport_drops_instead_of_queueing(self) -> None:
        channel, proto, _ = channel_on(self.clock)
        proto.transport.producer.pauseProducing()  # what a transport with a full buffer does
        for _ in range(1000):
            self.assertFalse(channel.send(UDPPacket(content=b"d" * 100, remote_addr=USER_A)))
        channel.send_ping()
        self.assertEqual(proto.transport.value(), b"")
        self.assertEqual(channel.dropped_busy, 1000)
        proto.transport.producer.resumeProducing()
        self.assertTrue(channel.send(UDPPacket(content=b"ok", remote_addr=USER_A)))
        self.assertEqual(frames_from(proto.transport.value()), [UDPPacket(content=b"ok", remote_addr=USER_A)])

    def test_drops_logged_at_most_every_few_seconds(self) -> None:
        events: list[dict[str, Any]] = []
        channel, proto, _ = channel_on(self.clock)
        channel.log = Logger(observer=events.append)  # type: ignore[misc]
        proto.transport.producer.pauseProducing()
        for _ in range(100):
            channel.send(UDPPacket(content=b"d", remote_addr=USER_A))
        self.assertEqual(len(events), 1)
        self.clock.advance(DROP_LOG_INTERVAL)
        channel.send(UDPPacket(content=b"d", remote_addr=USER_A))
        self.assertEqual(len(events), 2)
        self.assertEqual(events[-1]["busy"], 101)

    def test_unexpected_message_or_garbage_closes(self) -> None:
        for bad in (encode_message(Pong()), b"x" * 20, b"u" + (MAX_MESSAGE_SIZE + 1).to_bytes(8, "big")):
            channel, proto, got = channel_on(self.clock)
            lost: list[PacketChannel] = []
            channel.on_lost = lost.append
            channel.data_received(bad)
            self.assertTrue(channel.closed)
            self.assertTrue(is_closing(proto.transport))
            self.assertEqual(got, [])

    def test_ping_is_ignored(self) -> None:
        channel, _, got = channel_on(self.clock)
        channel.data_received(encode_message(Ping()) + encode_message(UDPPacket(content=b"a", remote_addr=USER_A)))
        self.assertEqual(got, [UDPPacket(content=b"a", remote_addr=USER_A)])
        self.assertFalse(channel.closed)

    def test_eof_closes_and_loss_reported_once(self) -> None:
        channel, proto, _ = channel_on(self.clock)
        lost: list[PacketChannel] = []
        channel.on_lost = lost.append
        proto.readConnectionLost()
        self.assertTrue(is_closing(proto.transport))
        self.assertIsNone(proto.transport.producer)  # unregistered before closing
        proto.connectionLost(Failure(Exception("gone")))
        proto.connectionLost(Failure(Exception("gone")))
        self.assertEqual(lost, [channel])
        self.assertFalse(channel.send(UDPPacket(content=b"late", remote_addr=USER_A)))

    def test_read_timeout(self) -> None:
        channel, proto, _ = channel_on(self.clock, read_timeout=60)
        self.clock.advance(50)
        channel.data_received(encode_message(Ping()))
        self.clock.advance(50)
        self.assertFalse(channel.closed)
        self.clock.advance(10)
        self.assertTrue(channel.closed)
        self.assertTrue(is_closing(proto.transport))


# ----------------------------------------------------------------------------------------
# fake UDP sockets


class FakeUdpPort:
    """A listening UDP socket that records what is written to it."""

    next_port = 20000

    def __init__(self, port: int, protocol: Any, interface: str, max_packet_size: int) -> None:
        if not port:
            FakeUdpPort.next_port += 1
            port = FakeUdpPort.next_port
        self.host = IPv4Address("UDP", interface or "0.0.0.0", port)
        self.protocol = protocol
        self.max_packet_size = max_packet_size
        self.connected_to: tuple[str, int] | None = None
        self.written: list[tuple[bytes, Any]] = []
        self.listening = True

    def connect(self, host: str, port: int) -> None:
        self.connected_to = (host, port)

    def write(self, datagram: bytes, addr: Any = None) -> None:
        self.written.append((datagram, addr))

    def getHost(self) -> IPv4Address:
        return self.host

    def stopListening(self) -> Deferred[None]:
        assert self.listening, "stopped twice"
        self.listening = False
        self.protocol.doStop()
        return succeed(None)


class UdpClock(MemoryReactorClock):
    def __init__(self) -> None:
        super().__init__()
        self.udp_ports: list[FakeUdpPort] = []

    def listenUDP(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192) -> FakeUdpPort:
        p = FakeUdpPort(port, protocol, interface, maxPacketSize)
        self.udp_ports.append(p)
        protocol.makeConnection(p)
        return p

    def live_ports(self) -> list[FakeUdpPort]:
        return [p for p in self.udp_ports if p.listening]


# ----------------------------------------------------------------------------------------
# frpc: the udp work handler


class FakeClient:
    def __init__(self, clock: UdpClock) -> None:
        self.reactor = clock
        self.connections = ConnectionSet(clock)
        self.config = SimpleNamespace(udp_packet_size=1500)
        counters: dict[str, TrafficCounter] = {}
        self.proxy_manager = SimpleNamespace(counter=lambda name: counters.setdefault(name, TrafficCounter()),
                                             limiter=lambda proxy: None)


class ClientUdpHandlerTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = UdpClock()
        self.client = FakeClient(self.clock)
        self.proxy = ProxyConfig(name="dns", type="udp", local_ip="127.0.0.1", local_port=53)
        self.writer = MessageWriter()

    def attach(self, proxy: ProxyConfig | None = None) -> RawProtocol:
        work = raw_protocol()
        attach_udp_work(self.client, proxy or self.proxy, work, None)  # type: ignore[arg-type]
        return work

    def from_frps(self, work: RawProtocol, content: bytes, user: tuple[str, int]) -> None:
        work.dataReceived(self.writer.encode(UDPPacket(content=content, remote_addr=user)))

    def test_socket_per_user_and_replies_tagged(self) -> None:
        work = self.attach()
        self.from_frps(work, b"q1", USER_A)
        self.from_frps(work, b"q2", USER_B)
        self.from_frps(work, b"q3", USER_A)
        a, b = self.clock.live_ports()
        self.assertEqual((a.connected_to, b.connected_to), (("127.0.0.1", 53), ("127.0.0.1", 53)))
        self.assertEqual(a.host.host, "127.0.0.1")
        self.assertEqual(([d for d, _ in a.written], [d for d, _ in b.written]), ([b"q1", b"q3"], [b"q2"]))
        b.protocol.datagramReceived(b"r2", ("127.0.0.1", 53))
        a.protocol.datagramReceived(b"r1", ("127.0.0.1", 53))
        self.assertEqual(frames_from(work.transport.value()),
                         [UDPPacket(content=b"r2", remote_addr=USER_B), UDPPacket(content=b"r1", remote_addr=USER_A)])
        counter = self.client.proxy_manager.counter("dns")
        self.assertEqual((counter.inbound, counter.outbound), (6, 4))
        self.assertEqual(len(self.client.connections), 2)  # the sockets are closed with frpc

    def test_idle_socket_expires_after_30s(self) -> None:
        work = self.attach()
        self.from_frps(work, b"q", USER_A)
        (port,) = self.clock.live_ports()
        self.clock.advance(20)
        port.protocol.datagramReceived(b"r", ("127.0.0.1", 53))  # activity resets the idle time
        self.clock.advance(PEER_IDLE_TIMEOUT - 1)
        self.assertTrue(port.listening)
        self.clock.advance(1)
        self.assertFalse(port.listening)
        self.assertEqual(len(self.client.connections), 0)
        (handler,) = handlers_of(self.client, "dns")  # type: ignore[arg-type]
        self.assertEqual(handler.peers, {})
        self.from_frps(work, b"again", USER_A)  # a new socket for the same user
        self.assertEqual(len(self.clock.live_ports()), 1)
        self.assertIsNot(self.clock.live_ports()[0], port)

    def test_ping_every_30s(self) -> None:
        work = self.attach()
        self.clock.advance(PING_INTERVAL - 1)
        self.assertEqual(work.transport.value(), b"")
        self.clock.advance(1)
        self.assertEqual(frames_from(work.transport.value()), [Ping()])

    def test_peer_limit_evicts_least_recently_used(self) -> None:
        self.patch(client_udp, "MAX_PEERS", 2)
        work = self.attach()
        self.from_frps(work, b"1", USER_A)
        self.from_frps(work, b"2", USER_B)
        self.from_frps(work, b"3", USER_A)  # A is now the most recent
        self.from_frps(work, b"4", ("192.0.2.1", 1))
        (handler,) = handlers_of(self.client, "dns")  # type: ignore[arg-type]
        self.assertEqual(list(handler.peers), [USER_A, ("192.0.2.1", 1)])
        self.assertEqual(handler.evicted, 1)
        self.assertEqual(len(self.clock.live_ports()), 2)

    def test_new_work_connection_replaces_previous(self) -> None:
        first = self.attach()
        self.from_frps(first, b"q", USER_A)
        (old_port,) = self.clock.live_ports()
        second = self.attach()
        self.assertTrue(is_closing(first.transport))
        self.assertFalse(old_port.listening)
        self.assertFalse(is_closing(second.transport))
        self.from_frps(second, b"q", USER_A)
        (new_port,) = self.clock.live_ports()
        new_port.protocol.datagramReceived(b"r", ("127.0.0.1", 53))
        self.assertEqual(frames_from(second.transport.value()), [UDPPacket(content=b"r", remote_addr=USER_A)])
        self.assertEqual(len(handlers_of(self.client, "dns")), 1)  # type: ignore[arg-type]
        second.connectionLost(Failure(Exception("gone")))
        self.assertEqual(handlers_of(self.client, "dns"), [])  # type: ignore[arg-type]
        self.assertEqual(self.clock.live_ports(), [])

    def test_sudp_work_connections_run_side_by_side(self) -> None:
        sudp = ProxyConfig(name="s", type="sudp", local_ip="127.0.0.1", local_port=53, secret_key="k")
        first = self.attach(sudp)
        second = self.attach(sudp)
        self.assertFalse(is_closing(first.transport) or is_closing(second.transport))
        self.assertEqual(len(handlers_of(self.client, "s")), 2)  # type: ignore[arg-type]

    def test_hostname_local_ip_is_resolved(self) -> None:
        resolved: Deferred[str] = Deferred()
        self.clock.resolve = lambda name, timeout=None: resolved  # type: ignore[method-assign]
        work = self.attach(ProxyConfig(name="dns", type="udp", local_ip="localhost", local_port=53))
        self.from_frps(work, b"early", USER_A)
        self.assertEqual(self.clock.live_ports(), [])
        resolved.callback("127.0.0.1")
        (port,) = self.clock.live_ports()
        self.assertEqual((port.connected_to, port.written), (("127.0.0.1", 53), [(b"early", None)]))


# ----------------------------------------------------------------------------------------
# frps: the udp proxy


class FakePool:
    def __init__(self) -> None:
        self.given_back: list[Any] = []

    def give_back(self, work: Any) -> None:
        self.given_back.append(work)


class FakeControl:
    def __init__(self, clock: UdpClock, timing: server_udp.UdpTiming = server_udp.DEFAULT_UDP_TIMING) -> None:
        self.server = SimpleNamespace(config=ServerConfig(), reactor=clock, connections=None, udp_timing=timing)
        self.pool = FakePool()
        self.requests: list[Deferred[Any]] = []
        self.run_id = "r"
        self.token = ""

    def get_work_connection(self) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.requests.append(d)
        return d


def listen_udp(proxy: UdpProxy) -> None:
    """Give ``proxy`` a public UDP port (an ingress) on 127.0.0.1, as frps's registry does."""
    ingress = UDP_PORT.create(proxy.control.server, lambda port, closed: None)  # type: ignore[arg-type]
    ingress.listen(0, "127.0.0.1")
    proxy.attach(ingress)


class UdpProxyTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = UdpClock()
        self.control = FakeControl(self.clock)
        self.proxy = UdpProxy(self.control, NewProxy(proxy_name="dns", proxy_type="udp"))  # type: ignore[arg-type]
        listen_udp(self.proxy)
        (self.port,) = self.clock.udp_ports
        self.proxy.start()
        self.assertEqual(self.control.requests, [])  # not before frps's start delay
        self.clock.advance(server_udp.START_DELAY)

    def give_work(self) -> RawProtocol:
        protocol = RawProtocol()
        t = StringTransportWithDisconnection()
        t.protocol = protocol
        protocol.makeConnection(t)
        self.control.requests[-1].callback(ServerWorkConnection(self.control, protocol))  # type: ignore[arg-type]
        return protocol

    def test_listens_with_udp_packet_size(self) -> None:
        self.assertEqual(self.port.max_packet_size, 1500)
        self.assertEqual(self.proxy.remote_port, self.port.host.port)

    def test_buffered_until_work_connection_then_tunnelled(self) -> None:
        self.assertEqual(len(self.control.requests), 1)
        self.port.protocol.datagramReceived(b"early", USER_A)
        work = self.give_work()
        self.port.protocol.datagramReceived(b"late", USER_B)
        self.assertEqual(frames_from(work.transport.value()), [
            StartWorkConn(proxy_name="dns"),
            UDPPacket(content=b"early", remote_addr=USER_A),
            UDPPacket(content=b"late", remote_addr=USER_B),
        ])
        work.dataReceived(encode_message(UDPPacket(content=b"reply", remote_addr=USER_A)))
        self.assertEqual(self.port.written, [(b"reply", USER_A)])
        self.assertEqual((self.proxy.counter.inbound, self.proxy.counter.outbound), (9, 5))

    def test_bounded_buffer_without_work_connection(self) -> None:
        for i in range(server_udp.MAX_PENDING + 5):
            self.port.protocol.datagramReceived(b"%d" % i, USER_A)
        self.assertEqual((len(self.proxy.pending), self.proxy.dropped), (server_udp.MAX_PENDING, 5))

    def test_lost_work_connection_replaced_without_restart(self) -> None:
        work = self.give_work()
        self.clock.advance(5)
        work.connectionLost(Failure(Exception("gone")))
        self.assertIsNone(self.proxy.channel)
        self.assertEqual(len(self.control.requests), 2)  # at once: it had lived long enough
        second = self.give_work()
        self.port.protocol.datagramReceived(b"x", USER_A)
        self.assertEqual(frames_from(second.transport.value())[-1], UDPPacket(content=b"x", remote_addr=USER_A))
        # a connection that dies at once is retaken only after a pause
        second.connectionLost(Failure(Exception("gone")))
        self.assertEqual(len(self.control.requests), 2)
        self.clock.advance(server_udp.RETRY_DELAYS[0])
        self.assertEqual(len(self.control.requests), 3)

    def test_frps_timing_by_default(self) -> None:
        self.assertEqual(server_udp.DEFAULT_UDP_TIMING,
                         server_udp.UdpTiming(start_delay=0.5, retry_delays=(0.5, 1.0, 2.0, 5.0, 10.0)))
        self.assertIs(FrpServer(ServerConfig(), self.clock).udp_timing, server_udp.DEFAULT_UDP_TIMING)

    def test_injected_timing(self) -> None:
        """``FrpServer(udp_timing=...)``: when the first work connection is taken, and retaken."""
        control = FakeControl(self.clock, server_udp.UdpTiming(start_delay=0.05, retry_delays=(0.2, 0.3)))
        proxy = UdpProxy(control, NewProxy(proxy_name="q", proxy_type="udp"))  # type: ignore[arg-type]
        listen_udp(proxy)
        proxy.start()
        self.clock.advance(0.04)
        self.assertEqual(control.requests, [])
        self.clock.advance(0.01)
        self.assertEqual(len(control.requests), 1)
        for retry, delay in enumerate((0.2, 0.3, 0.3)):
            control.requests[-1].errback(Failure(Exception("no work connection")))
            self.clock.advance(delay - 0.01)
            self.assertEqual(len(control.requests), retry + 1)
            self.clock.advance(0.01)
            self.assertEqual(len(control.requests), retry + 2)
        proxy.close()
        self.flushLoggedErrors()

    def test_read_deadline_60s(self) -> None:
        work = self.give_work()
        self.clock.advance(59)
        self.assertFalse(is_closing(work.transport))
        self.clock.advance(1)
        self.assertTrue(is_closing(work.transport))

    def test_close_stops_port_and_work_connection(self) -> None:
        work = self.give_work()
        d = self.proxy.close()
        self.assertIsInstance(d, Deferred)
        self.assertFalse(self.port.listening)
        self.assertTrue(is_closing(work.transport))
        work.connectionLost(Failure(Exception("closed")))
        self.assertEqual(len(self.control.requests), 1)  # no new work connection for a closed proxy

    def test_close_while_waiting_cancels(self) -> None:
        self.proxy.close()
        self.assertTrue(self.control.requests[0].called)
        self.assertFalse(self.port.listening)
