"""Bandwidth limits wired into relays (``Relay.limit``), frpc (client mode) and frps (server mode).

The relay-leg tests run on a fake clock with StringTransports, so they can say
exactly when a leg is paused and resumed.  The real transfers assert only a
lower bound on the elapsed time: a limited transfer cannot finish faster than
the token bucket allows, however fast the machine is; no upper bound is checked.
"""
from __future__ import annotations

import time
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from frptx.client.kinds.registry import new_proxy_message
from frptx.protocols.bandwidth import KB, BandwidthLimiter
from frptx.protocols.relay import Relay
from frptx.protocols.splice import start_spliced
from frptx.protocols.transforms import TransformChain
from frptx.protocols.tuning import RELAY_BUFFER_SIZE
from frptx.test.support import MODES, Tunnel, client_config, connect, listen_local, tcp_proxy, with_timeout
from frptx.test.test_e2e import async_test
from frptx.wire import NewProxy

RATE = 1000  # bytes per second in the fake-clock tests (burst = one second's worth)


class HalfClosing(StringTransport):
    """A StringTransport that can shut its write side (a FIN)."""

    write_closed = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True


def paused(transport: StringTransport) -> bool:
    return transport.producerState == "paused"


class LimitedRelayLegTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.work, self.local = HalfClosing(), HalfClosing()
        for t in (self.work, self.local):
            t.pauseProducing()  # as the relayed protocols do until the relay starts
        self.relay = Relay(self.work, self.local)
        self.relay.limit("b", BandwidthLimiter(RATE, self.clock))
        self.relay.start()

    def test_start_resumes_both_legs(self) -> None:
        self.assertFalse(paused(self.work))
        self.assertFalse(paused(self.local))

    def test_writes_to_the_limited_leg_pause_the_other_leg_for_exactly_the_debt(self) -> None:
        self.relay.a.source.data_received(b"x" * RATE)  # the burst: no wait
        self.assertEqual(len(self.local.value()), RATE)
        self.assertFalse(paused(self.work))
        self.relay.a.source.data_received(b"y" * 500)  # written now, paid for by half a second
        self.assertEqual(len(self.local.value()), RATE + 500)  # nothing queued in the limiter
        self.assertTrue(paused(self.work))
        self.clock.advance(0.499)
        self.assertTrue(paused(self.work))
        self.clock.advance(0.001)
        self.assertFalse(paused(self.work))

    def test_reads_from_the_limited_leg_pause_it(self) -> None:
        self.relay.b.source.data_received(b"r" * (RATE + 2000))  # two seconds over the bucket
        self.assertEqual(len(self.work.value()), RATE + 2000)
        self.assertTrue(paused(self.local))
        self.clock.advance(1.999)
        self.assertTrue(paused(self.local))
        self.clock.advance(0.001)
        self.assertFalse(paused(self.local))

    def test_both_directions_share_one_bucket(self) -> None:
        self.relay.a.source.data_received(b"x" * 600)
        self.relay.b.source.data_received(b"r" * 600)  # 200 over: 0.2 s
        self.assertTrue(paused(self.local))
        self.clock.advance(0.2)
        self.assertFalse(paused(self.local))

    def test_limit_pause_and_backpressure_pause_are_separate(self) -> None:
        """The local service's full buffer pauses the work leg; the limit's timer must not resume it."""
        self.relay.a.source.data_received(b"x" * (RATE + 100))  # limit pause of the work leg (0.1 s)
        self.local.producer.pauseProducing()  # the local buffer is full: backpressure on the work leg too
        self.clock.advance(1)
        self.assertTrue(paused(self.work))  # still held by backpressure
        self.local.producer.resumeProducing()
        self.assertFalse(paused(self.work))

    def test_a_limited_relay_is_not_plain_and_never_spliced(self) -> None:
        self.assertFalse(self.relay.plain())
        self.assertFalse(start_spliced(self.relay, self.clock))
        self.assertTrue(Relay(StringTransport(), StringTransport()).plain())

    def test_half_close_passes_through_the_limiter(self) -> None:
        self.relay.a.source.read_connection_lost()
        self.assertEqual((self.local.write_closed, self.local.disconnecting), (True, False))  # a FIN, not a close
        self.relay.b.source.read_connection_lost()
        self.assertTrue(self.work.disconnecting and self.local.disconnecting)

    def test_limit_above_a_transform(self) -> None:
        """A leg with a codec is limited on its plain bytes (the limiter sits above the transform)."""
        clock = Clock()
        a, b = StringTransport(), StringTransport()
        relay = Relay(a, b)

        class Upper:
            def encode(self, data: bytes) -> bytes:
                return data.upper()

            def decode(self, data: bytes) -> bytes:
                return data.lower()

            def flush(self) -> bytes:
                return b""

            def eof(self) -> bytes:
                return b""

        relay.wrap("a", TransformChain([Upper()]))
        relay.limit("a", BandwidthLimiter(RATE, clock))
        relay.start()
        relay.a.source.data_received(b"HELLO" * 300)  # decoded, relayed, and 500 bytes over
        self.assertEqual(b.value(), b"hello" * 300)
        self.assertTrue(paused(a))
        clock.advance(0.5)
        self.assertFalse(paused(a))
        relay.b.source.data_received(b"abc")
        self.assertEqual(a.value(), b"ABC")


class LimitedPacketChannelTests(unittest.TestCase):
    """udp/sudp work connections: the proxy's limiter holds reads back and drops datagrams it cannot send."""

    def setUp(self) -> None:
        from frptx.test.test_udp import channel_on

        self.clock = Clock()
        self.channel, self.proto, self.got = channel_on(self.clock, limiter=BandwidthLimiter(RATE, self.clock))

    def test_started_channel_reads(self) -> None:
        self.assertFalse(paused(self.proto.transport))

    def test_reads_over_the_limit_pause_the_connection(self) -> None:
        from frptx.wire import UDPPacket, encode_message

        frame = encode_message(UDPPacket(content=b"d" * 1400, remote_addr=("127.0.0.1", 5000)))
        self.proto.dataReceived(frame)  # over the 1000-byte burst
        self.assertEqual(len(self.got), 1)  # delivered, then paid for
        self.assertTrue(paused(self.proto.transport))
        self.clock.advance((len(frame) - RATE) / RATE)
        self.assertFalse(paused(self.proto.transport))

    def test_sends_over_the_limit_drop_until_the_debt_is_paid(self) -> None:
        from frptx.wire import UDPPacket

        packet = UDPPacket(content=b"s" * 1200, remote_addr=("127.0.0.1", 5000))
        self.assertTrue(self.channel.send(packet))  # overdraws the bucket
        self.assertFalse(self.channel.send(packet))  # dropped, not queued
        self.assertEqual(self.channel.dropped_busy, 1)
        self.clock.advance(1)
        self.assertTrue(self.channel.send(packet))

    def test_without_a_limiter_nothing_is_held(self) -> None:
        from frptx.test.test_udp import channel_on
        from frptx.wire import UDPPacket

        channel, proto, _ = channel_on(self.clock)
        packet = UDPPacket(content=b"s" * 1200, remote_addr=("127.0.0.1", 5000))
        self.assertTrue(all(channel.send(packet) for _ in range(10)))
        self.assertIs(channel.transport, proto.transport)


class NewProxyFieldsTests(unittest.TestCase):
    def test_limit_travels_in_new_proxy_as_frp_sends_it(self) -> None:
        cfg = client_config(7000, False, False, [
            tcp_proxy("c", 22, transport={"bandwidthLimit": "1MB"}),
            tcp_proxy("s", 22, transport={"bandwidthLimit": "512KB", "bandwidthLimitMode": "server"})])
        c, s = (new_proxy_message(cfg, p) for p in cfg.proxies)
        self.assertEqual((c.bandwidth_limit, c.bandwidth_limit_mode), ("1MB", ""))  # the default mode is left out
        self.assertEqual((s.bandwidth_limit, s.bandwidth_limit_mode), ("512KB", "server"))
        wire = s.to_json()
        self.assertEqual((wire["bandwidth_limit"], wire["bandwidth_limit_mode"]), ("512KB", "server"))
        self.assertEqual(NewProxy.from_json(wire), s)


# -- real transfers: a lower bound on elapsed time only ---------------------------------------------

LIMIT = 512 * KB
TOTAL = 2 * 1024 * KB
#: a limited leg can overdraw the bucket by one read and one write in flight (a relay leg reads
#: up to RELAY_BUFFER_SIZE at once): in T seconds at most LIMIT (the burst) + LIMIT * T + SLACK pass
SLACK = 2 * RELAY_BUFFER_SIZE
MIN_SECONDS = (TOTAL - LIMIT - SLACK) / LIMIT  # 2.0 s (unlimited, the same transfer takes milliseconds)


class CountingSink(Protocol):
    def connectionMade(self) -> None:
        self.factory.received = 0

    def dataReceived(self, data: bytes) -> None:
        self.factory.received += len(data)
        if self.factory.received >= TOTAL and not self.factory.done.called:
            self.factory.done.callback(time.monotonic())


class SinkFactory(Factory):
    protocol = CountingSink

    def __init__(self) -> None:
        self.received = 0
        self.done: Deferred[float] = Deferred()


class Sender(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"z" * TOTAL)


class LimitedTransferMixin:
    timeout = 60

    async def transfer(self: Any, tunnel: Tunnel, port: int, sink: SinkFactory) -> float:
        started = time.monotonic()
        user = Sender()
        await connect(port, user)
        finished = await with_timeout(sink.done, 40)
        user.transport.loseConnection()
        return float(finished - started)


class LimitedTransferTests(LimitedTransferMixin, unittest.TestCase):
    async def limited(self, mode: str) -> None:
        sink = SinkFactory()
        local = listen_local(self, sink)
        t = Tunnel(self, MODES["nomux"])
        t.start_server()
        t.start_client([tcp_proxy("slow", local, transport={"bandwidthLimit": "512KB", "bandwidthLimitMode": mode})])
        port = await t.remote_port("slow")
        elapsed = await self.transfer(t, port, sink)
        self.assertGreaterEqual(elapsed, MIN_SECONDS)

    @async_test
    async def test_client_mode_holds_the_transfer_to_the_limit(self) -> None:
        await self.limited("client")

    @async_test
    async def test_server_mode_holds_the_transfer_to_the_limit(self) -> None:
        await self.limited("server")

    @async_test
    async def test_udp_proxy_with_a_limit_still_carries_datagrams(self) -> None:
        """The limited udp channel (both modes) starts reading and echoes what fits the burst."""
        from twisted.internet import reactor

        from frptx.test.test_e2e_proxy_protocol import UdpOnce
        from frptx.test.test_e2e_udp import UdpEcho

        echo = UdpEcho()
        service = reactor.listenUDP(0, echo, interface="127.0.0.1")
        self.addCleanup(service.stopListening)
        t = Tunnel(self, MODES["mux"])
        t.start_server()
        t.start_client([{"name": f"u{mode}", "type": "udp", "localIP": "127.0.0.1",
                         "localPort": service.getHost().port, "remotePort": 0,
                         "transport": {"bandwidthLimit": "512KB", "bandwidthLimitMode": mode}}
                        for mode in ("client", "server")])
        for mode in ("client", "server"):
            port = await t.remote_port(f"u{mode}")
            user = UdpOnce()
            sock = reactor.listenUDP(0, user, interface="127.0.0.1")
            self.addCleanup(sock.stopListening)
            sock.write(b"limited " + mode.encode(), ("127.0.0.1", port))
            self.assertEqual(await with_timeout(user.reply, 20), b"limited " + mode.encode())
