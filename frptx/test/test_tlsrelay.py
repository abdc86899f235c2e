"""The TLS relay (``frptx.protocols.tlsrelay``): one plain TCP leg, one TLS leg, without Twisted.

Real sockets on 127.0.0.1 and real TLS: a plain "user" and a TLS "peer" connect to two
listeners whose server-side protocols are joined by ``start_relay``, as frps joins a
user connection to a TLS work connection (and frpc a TLS work connection to a local
service).
"""
from __future__ import annotations

import os
import shutil
import types
from collections.abc import Callable
from typing import Any

from OpenSSL import SSL
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface import implementer

from frptx.protocols.relay import Relay, TrafficCounter
from frptx.protocols.relayed import RelayedProtocol, start_relay
from frptx.protocols.splice import SpliceRelay
from frptx.protocols.tlsrelay import CIPHER_ROOM, MAX_TLS_BACKLOG, PLAIN_ROOM, TLSRelay
from frptx.protocols.tracking import ConnectionSet
from frptx.test.support import (
    MODES,
    Collector,
    EchoFactory,
    Tunnel,
    connect,
    digest,
    listen_local,
    tcp_proxy,
    until,
    with_timeout,
)
from frptx.test.test_e2e import async_test
from frptx.transport import internals, internals_tcp
from frptx.transport.tls_client import wrap_client_factory
from frptx.transport.tls_context import client_connection_creator, server_context_factory
from frptx.transport.tls_server import ServerTLSFactory

if not internals.TLS_CFFI:  # pragma: no cover
    skip = "the TLS relay needs pyOpenSSL's cffi binding"


@implementer(IHalfCloseableProtocol)
class _Peer(Protocol):
    """A client that records what it gets, a half-close, and the end."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.eof = False
        self.eof_d: Deferred[None] = Deferred()
        self.lost: Deferred[None] = Deferred()
        self.reason: Failure | None = None
        self._wanted: list[tuple[int, Deferred[bytes]]] = []

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        for w in [w for w in self._wanted if len(self.received) >= w[0]]:
            self._wanted.remove(w)
            w[1].callback(bytes(self.received))

    def at_least(self, count: int) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        self._wanted.append((count, d))
        self.dataReceived(b"")
        return d

    def readConnectionLost(self) -> None:
        self.eof = True
        if not self.eof_d.called:
            self.eof_d.callback(None)

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure | None = None) -> None:
        for _, d in self._wanted:
            d.errback(AssertionError(f"lost after {len(self.received)} bytes"))
        self._wanted = []
        self.reason = reason
        if not self.eof_d.called:
            self.eof_d.callback(None)
        if not self.lost.called:
            self.lost.callback(None)


class _Served(RelayedProtocol):
    """A server-side leg that reads until joined, so early bytes are buffered."""

    pause_until_joined = False

    def __init__(self, into: list[Any]) -> None:
        super().__init__()
        into.append(self)
        self.gone: Deferred[None] = Deferred()
        self.on_lost = lambda reason: None

    def connectionLost(self, reason: Failure | None = None) -> None:
        super().connectionLost(reason)
        if not self.gone.called:
            self.gone.callback(None)


class _OpenSSLClient(ProcessProtocol):
    """``openssl s_client`` as the TLS peer (it can send KeyUpdates on command)."""

    def __init__(self, version: str = "-tls1_3") -> None:
        self.output = b""
        self.ended: Deferred[None] = Deferred()
        self.version = version

    def spawn(self, openssl: str, port: int) -> None:
        reactor.spawnProcess(self, openssl, [openssl, "s_client", "-connect", f"127.0.0.1:{port}", self.version,
                                             "-servername", "localhost"], env=os.environ.copy())

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived  # s_client reports its commands (KEYUPDATE) on stderr

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)

    def stop(self) -> Deferred[None]:
        if not self.ended.called:
            self.transport.signalProcess("TERM")  # type: ignore[union-attr]
        return self.ended


class Harness:
    """A plain user and a TLS peer, whose server-side legs a relay joins."""

    def __init__(self, testcase: unittest.TestCase) -> None:
        self.testcase = testcase
        self.plain_legs: list[_Served] = []
        self.tls_legs: list[_Served] = []
        self.user = _Peer()
        self.peer = _Peer()
        self.relay: Relay | None = None

    async def connect(self, tls_peer: Callable[[int], None] | None = None) -> None:
        """Connect the user and the TLS peer (ours, or one ``tls_peer(port)`` starts)."""
        plain = reactor.listenTCP(0, Factory.forProtocol(lambda: _Served(self.plain_legs)), interface="127.0.0.1")
        inner = Factory.forProtocol(lambda: _Served(self.tls_legs))
        tls_factory = TLSMemoryBIOFactory(server_context_factory(), False, inner, clock=reactor)
        tls = reactor.listenTCP(0, ServerTLSFactory(tls_factory, inner), interface="127.0.0.1")
        self.testcase.addCleanup(plain.stopListening)
        self.testcase.addCleanup(tls.stopListening)
        await connect(plain.getHost().port, self.user)
        if tls_peer is not None:
            tls_peer(tls.getHost().port)
        else:
            client_factory = wrap_client_factory(Factory.forProtocol(lambda: self.peer),
                                                 client_connection_creator(server_addr="127.0.0.1"),
                                                 custom_first_byte=False, clock=reactor)
            await TCP4ClientEndpoint(reactor, "127.0.0.1", tls.getHost().port).connect(client_factory)
        await until(lambda: bool(self.plain_legs and self.tls_legs and self.tls_legs[0].transport.handshake_done
                                 and (tls_peer is not None or self.peer.transport.handshake_done)),
                    "both legs connected, handshake done")
        self.testcase.addCleanup(self.cleanup)

    @property
    def tls_leg(self) -> _Served:
        return self.tls_legs[0]

    @property
    def plain_leg(self) -> _Served:
        return self.plain_legs[0]

    def start(self) -> Relay:
        """Join the legs as frps does (a = the plain user, b = the TLS work connection)."""
        a, b = self.plain_leg, self.tls_leg
        self.relay = Relay(a.transport, b.transport, counter=TrafficCounter())  # type: ignore[arg-type]
        a_early, a_eof = a.take_early()
        b_early, b_eof = b.take_early()
        start_relay(self.relay, a, b, a_early, b_early, a_eof, b_eof, reactor=reactor)
        return self.relay

    @property
    def tls_relay(self) -> TLSRelay:
        assert self.relay is not None
        self.testcase.assertIsInstance(self.relay.spliced, TLSRelay)
        return self.relay.spliced  # type: ignore[no-any-return]

    async def closed(self) -> None:
        """Both legs and both clients saw the end."""
        for name, d in (("plain leg", self.plain_leg.gone), ("tls leg", self.tls_leg.gone),
                        ("user", self.user.eof_d), ("peer", self.peer.eof_d)):
            try:
                await with_timeout(d, 10)
            except Exception as e:
                raise AssertionError(f"{name} not closed") from e

    def cleanup(self) -> None:
        for p in (self.user, self.peer):
            if p.transport is not None and p.transport.connected:
                p.transport.abortConnection()


class TLSRelayTests(unittest.TestCase):
    timeout = 60

    async def harness(self) -> Harness:
        h = Harness(self)
        await h.connect()
        return h

    @async_test
    async def test_bytes_both_ways_half_close_and_clean_close(self) -> None:
        h = await self.harness()
        h.start()
        relay = h.tls_relay
        up, down = os.urandom(3 * 1024 * 1024 + 17), os.urandom(2 * 1024 * 1024 + 5)
        h.user.transport.write(up)
        h.peer.transport.write(down)
        self.assertEqual(digest(await with_timeout(h.peer.at_least(len(up)), 20)), digest(up))
        self.assertEqual(digest(await with_timeout(h.user.at_least(len(down)), 20)), digest(down))
        # the user's EOF becomes our close_notify; the TLS peer may still send
        h.user.transport.loseWriteConnection()
        await with_timeout(h.peer.eof_d, 10)
        self.assertTrue(relay.up_done)
        self.assertFalse(relay.finished)
        self.assertTrue(h.peer.transport.connected)
        h.peer.transport.write(b"after close_notify")
        await with_timeout(h.user.at_least(len(down) + 18), 10)
        # the peer's close_notify becomes a FIN to the user; both done: both closed
        h.peer.transport.loseWriteConnection()
        await with_timeout(h.user.eof_d, 10)
        await h.closed()
        self.assertTrue(relay.finished)
        self.assertIsInstance(h.plain_leg.lost_reason, Failure)
        self.assertTrue(h.plain_leg.lost_reason.check(ConnectionDone))  # type: ignore[union-attr]
        self.assertTrue(h.tls_leg.lost_reason.check(ConnectionDone))  # type: ignore[union-attr]
        counter = h.relay.counter  # type: ignore[union-attr]
        self.assertEqual((counter.inbound, counter.outbound), (len(up), len(down) + 18))
        self.assertEqual(counter.active, 0)
        self.assertEqual(bytes(h.user.received), down + b"after close_notify")

    @async_test
    async def test_openssl_object_dropped_at_close(self) -> None:
        """The relay and the TLS protocol refer to each other (a cycle only the collector frees);
        the relay's hold on the OpenSSL object and its BIOs goes at close, not with the cycle
        (without this, 1000 connect/close cycles grew frps and frpc by 12-19%)."""
        import gc

        h = await self.harness()
        h.start()
        relay = h.tls_relay
        calls = relay.calls
        gc.disable()
        self.addCleanup(gc.enable)
        h.user.transport.loseWriteConnection()
        h.peer.transport.loseWriteConnection()
        await h.closed()
        self.assertTrue(relay.finished)
        self.assertIsNone(relay.calls)
        holders = [type(r).__name__ for r in gc.get_referrers(calls) if not isinstance(r, types.FrameType)]
        self.assertEqual(holders, [])  # only this test still holds it

    @async_test
    async def test_peer_close_notify_first_then_user_eof(self) -> None:
        h = await self.harness()
        h.start()
        h.peer.transport.write(b"reply")
        h.peer.transport.loseWriteConnection()  # close_notify: a FIN for the user
        await with_timeout(h.user.eof_d, 10)
        self.assertEqual(bytes(h.user.received), b"reply")
        self.assertFalse(h.tls_relay.finished)
        h.user.transport.write(b"late request")
        await with_timeout(h.peer.at_least(12), 10)
        h.user.transport.loseWriteConnection()
        await h.closed()
        self.assertEqual(bytes(h.peer.received), b"late request")
        self.assertTrue(h.peer.eof, "our close_notify went out before the TCP close")

    @async_test
    async def test_peer_fin_without_close_notify_is_a_half_close(self) -> None:
        h = await self.harness()
        h.start()
        h.peer.transport.write(b"last words")
        await with_timeout(h.user.at_least(10), 10)
        h.peer.transport.transport.loseWriteConnection()  # TCP FIN under TLS, no close_notify
        await with_timeout(h.user.eof_d, 10)
        relay = h.tls_relay
        self.assertTrue(relay.down_done)
        self.assertFalse(relay.finished)
        h.user.transport.write(b"still heard")
        await with_timeout(h.peer.at_least(11), 10)
        h.user.transport.loseWriteConnection()
        await with_timeout(h.plain_leg.gone, 10)
        await with_timeout(h.tls_leg.gone, 10)
        self.assertEqual(bytes(h.peer.received), b"still heard")

    @async_test
    async def test_nothing_lost_or_reordered_at_take_over(self) -> None:
        h = await self.harness()
        tls = h.tls_leg.transport
        plain = h.plain_leg.transport
        # read before the relay existed, on both legs
        h.user.transport.write(b"early-user|")
        h.peer.transport.write(b"early-peer|")
        await until(lambda: h.plain_leg._early and h.tls_leg._early, "early bytes read by both legs")
        # ciphertext in the TCP transport's write buffer (a StartWorkConn frame), then in the BIO
        conn = tls.tls_connection
        conn.send(b"frame-1|")
        tls.transport.write(conn.bio_read(65536))
        conn.send(b"frame-2|")
        # plaintext OpenSSL holds but nobody read: a record fed to the BIO, not SSL_read
        peer_conn = h.peer.transport.tls_connection
        peer_conn.send(b"held-in-ssl|")
        conn.bio_write(peer_conn.bio_read(65536))
        # plaintext unsent on the plain socket (a PROXY protocol header)
        plain.write(b"header|")
        h.start()
        self.assertIsInstance(h.relay.spliced, TLSRelay)  # type: ignore[union-attr]
        h.user.transport.write(b"later-user")
        h.peer.transport.write(b"later-peer")
        await until(lambda: len(h.peer.received) >= 37 and len(h.user.received) >= 40, "all bytes")
        self.assertEqual(bytes(h.peer.received), b"frame-1|frame-2|early-user|later-user")
        self.assertEqual(bytes(h.user.received), b"header|early-peer|held-in-ssl|later-peer")
        counter = h.relay.counter  # type: ignore[union-attr]
        self.assertEqual((counter.inbound, counter.outbound), (21, 33))  # frames and header are not traffic

    @async_test
    async def test_key_update_from_an_openssl_peer(self) -> None:
        """TLS 1.3 KeyUpdate (requested and not) from ``openssl s_client``, the only peer
        here that can send one, while the relay runs: bytes keep flowing both ways."""
        openssl = shutil.which("openssl")
        if openssl is None:
            raise unittest.SkipTest("no openssl command")
        h = Harness(self)
        client = _OpenSSLClient()
        self.addCleanup(client.stop)
        await h.connect(lambda port: client.spawn(openssl, port))
        h.start()
        self.assertIsInstance(h.relay.spliced, TLSRelay)  # type: ignore[union-attr]
        for i, command in enumerate((b"K\n", b"k\n", b"K\n")):
            client.transport.write(command)  # s_client sends a KeyUpdate (K: and asks for ours)
            await until(lambda i=i: client.output.count(b"KEYUPDATE") > i, "s_client sent the KeyUpdate")
            line = b"from peer %d\n" % i
            client.transport.write(line)
            await with_timeout(h.user.at_least(len(h.user.received) + len(line)), 10)
            reply = b"from user %d" % i
            h.user.transport.write(reply)
            await until(lambda reply=reply: reply in client.output, "s_client got the reply under the new keys")
        self.assertEqual(bytes(h.user.received), b"from peer 0\nfrom peer 1\nfrom peer 2\n")
        self.assertFalse(h.tls_relay.finished)

    @async_test
    async def test_what_openssl_writes_while_reading_goes_out(self) -> None:
        """What OpenSSL writes while it reads goes to the peer at once.  Here: a TLS 1.2
        peer asks to renegotiate and OpenSSL answers with its ``no_renegotiation`` alert
        from SSL_read; without the flush after SSL_read the peer would wait forever."""
        openssl = shutil.which("openssl")
        if openssl is None:
            raise unittest.SkipTest("no openssl command")
        h = Harness(self)
        client = _OpenSSLClient("-tls1_2")
        self.addCleanup(client.stop)
        await h.connect(lambda port: client.spawn(openssl, port))
        h.start()
        self.assertIsInstance(h.relay.spliced, TLSRelay)  # type: ignore[union-attr]
        client.transport.write(b"R\n")
        await until(lambda: b"no renegotiation" in client.output, "the peer got OpenSSL's answer")
        await with_timeout(client.ended, 10)  # s_client gives up on that answer and closes
        await with_timeout(h.plain_leg.gone, 10)
        await with_timeout(h.user.eof_d, 10)

    @async_test
    async def test_bad_record_closes_both(self) -> None:
        h = await self.harness()
        h.start()
        h.peer.transport.transport.write(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)  # not a valid record
        await h.closed()
        self.assertTrue(h.tls_relay.finished)
        self.assertFalse(h.tls_leg.lost_reason.check(ConnectionDone))  # type: ignore[union-attr]

    @async_test
    async def test_user_reset_closes_both(self) -> None:
        h = await self.harness()
        h.start()
        h.user.transport.write(b"x")
        await with_timeout(h.peer.at_least(1), 10)
        h.user.transport.abortConnection()
        await with_timeout(h.peer.lost, 10)
        await with_timeout(h.tls_leg.gone, 10)
        self.assertTrue(h.tls_relay.finished)

    @async_test
    async def test_readers_that_never_read_hold_memory_bounded(self) -> None:
        h = await self.harness()
        h.start()
        relay = h.tls_relay
        # the TLS peer stops reading: the user floods
        h.peer.transport.pauseProducing()
        h.user.transport.pauseProducing()
        chunk = os.urandom(1 << 20)
        sent_up = sent_down = 0
        for _ in range(48):
            h.user.transport.write(chunk)
            h.peer.transport.write(chunk)
            sent_up += len(chunk)
            sent_down += len(chunk)
        await until(lambda: relay._interest[0] is False and relay.out_tls != b"", "reading the user stopped")
        await until(lambda: relay._interest[1] is False and relay.out_plain != b"", "reading the peer stopped")
        self.assertLessEqual(len(relay.out_tls), CIPHER_ROOM + MAX_TLS_BACKLOG)
        self.assertLessEqual(len(relay.out_plain), PLAIN_ROOM)
        # the clients hold the rest: the relay did not read it
        self.assertGreater(internals_tcp.tcp_unsent_bytes(h.user.transport) or 0, 8 << 20)
        self.assertGreater(internals_tcp.tcp_unsent_bytes(h.peer.transport.transport) or 0, 8 << 20)
        h.peer.transport.resumeProducing()
        h.user.transport.resumeProducing()
        up = await with_timeout(h.peer.at_least(sent_up), 60)
        down = await with_timeout(h.user.at_least(sent_down), 60)
        self.assertEqual(digest(up), digest(chunk * 48))
        self.assertEqual(digest(down), digest(chunk * 48))

    @async_test
    async def test_closing_from_outside_sends_close_notify(self) -> None:
        h = await self.harness()
        h.start()
        h.user.transport.write(b"x")
        await with_timeout(h.peer.at_least(1), 10)
        tracked = ConnectionSet(reactor)
        tracked.add(h.plain_leg)
        h.plain_leg.tracker = tracked
        await with_timeout(tracked.close_all(), 10)  # closes through relay.close()
        await h.closed()
        self.assertTrue(h.peer.eof, "close_notify before the TCP close")

    @async_test
    async def test_tls_lose_connection_goes_through_the_relay(self) -> None:
        h = await self.harness()
        h.start()
        h.tls_leg.transport.loseConnection()  # frpc's work.close(), say
        await h.closed()
        self.assertTrue(h.tls_relay.finished)

    @async_test
    async def test_not_taken_over_before_the_handshake_or_with_held_writes(self) -> None:
        h = await self.harness()
        tls = h.tls_leg.transport
        self.assertTrue(internals.tls_takeover_ready(tls))
        tls._appSendBuffer.append(b"held")  # as if written during the handshake
        self.assertFalse(internals.tls_takeover_ready(tls))
        tls._appSendBuffer.clear()
        tls._handshakeDone = False
        self.assertFalse(internals.tls_takeover_ready(tls))
        h.start()
        self.assertIsNone(h.relay.spliced)  # type: ignore[union-attr]  # the portable path
        tls._handshakeDone = True
        h.user.transport.write(b"portable")
        self.assertEqual(await with_timeout(h.peer.at_least(8), 10), b"portable")
        h.user.transport.loseWriteConnection()
        await with_timeout(h.peer.eof_d, 10)
        h.peer.transport.loseWriteConnection()
        await h.closed()

    @async_test
    async def test_a_paused_leg_is_read_after_take_over(self) -> None:
        h = await self.harness()
        h.plain_leg.transport.pauseProducing()
        h.tls_leg.transport.pauseProducing()
        h.user.transport.write(b"waiting in the kernel")
        h.peer.transport.write(b"waiting too")
        h.start()
        self.assertEqual(await with_timeout(h.peer.at_least(21), 10), b"waiting in the kernel")
        self.assertEqual(await with_timeout(h.user.at_least(11), 10), b"waiting too")


class TLSRelayTunnelTests(unittest.TestCase):
    """Through frps and frpc (nomux with TLS): both hops taken over."""

    timeout = 60

    async def echoing(self, greeting: bytes) -> tuple[Tunnel, Collector]:
        """A nomux+TLS tunnel to an echo service, and a user whose ``greeting`` came back."""
        local = listen_local(self, EchoFactory())
        t = Tunnel(self, MODES["nomux_tls"])
        t.start_server()
        t.start_client([tcp_proxy("p", local)])
        port = await t.remote_port("p")
        held = Collector(b"")
        await connect(port, held)
        held.transport.write(greeting)
        await with_timeout(held.received_at_least(len(greeting)), 10)
        return t, held

    @async_test
    async def test_engaged_on_both_hops_and_bytes_identical(self) -> None:
        t, held = await self.echoing(b"warm up")
        [relay] = [u.relay for u in t.frps.server.proxies["p"].users]
        self.assertIsInstance(relay.spliced, TLSRelay, "frps did not take the relay over")
        work = [p for p in t.frpc.client.connections._live if getattr(p, "relay", None) is not None]
        self.assertTrue(work and all(isinstance(p.relay.spliced, TLSRelay) for p in work),
                        "frpc did not take the relay over")
        self.assertFalse(any(isinstance(p.relay.spliced, SpliceRelay) for p in work))
        payload = os.urandom(8 * 1024 * 1024)
        held.transport.write(payload)
        held.transport.loseWriteConnection()
        received = await with_timeout(held.done, 30)
        self.assertEqual(digest(received), digest(b"warm up" + payload))
        proxy = t.frps.server.proxies["p"]
        self.assertEqual(proxy.counter.inbound, len(payload) + 7)
        self.assertEqual(proxy.counter.outbound, len(payload) + 7)
        await until(lambda: not proxy.users, "the user connection gone from frps")

    @async_test
    async def test_stop_with_relays_running(self) -> None:
        t, held = await self.echoing(b"hello")
        await with_timeout(t.frpc.stopService(), 10)
        await with_timeout(t.frps.stopService(), 10)
        await with_timeout(held.done, 10)
        self.assertEqual(t.frps.server.connections.aborted if hasattr(t.frps.server, "connections") else 0, 0)


class TakeOverUnitTests(unittest.SynchronousTestCase):
    def test_encrypt_decrypt_through_pointers(self) -> None:
        from twisted.test.iosim import connectedServerAndClient

        from frptx.test.test_twisted_internals import _Hooks, _Inner

        server_factory = TLSMemoryBIOFactory(server_context_factory(), False, Factory())
        client_factory = TLSMemoryBIOFactory(client_connection_creator(server_addr="127.0.0.1"), True, Factory())
        client, server, pump = connectedServerAndClient(
            lambda: _Hooks(server_factory, _Inner()), lambda: _Hooks(client_factory, _Inner()), greet=False)
        pump.flush()
        a = internals.TakenOverTLS(client.tls_connection)
        b = internals.TakenOverTLS(server.tls_connection)
        plain, cipher, out = bytearray(b"hello" + bytes(100)), bytearray(1 << 16), bytearray(1 << 17)
        pp, cp, op = (internals.buffer_pointer(x) for x in (plain, cipher, out))
        self.assertEqual(a.encrypt(pp, 5), 5)
        n = a.ciphertext(cp, len(cipher))
        self.assertGreater(n, 5)
        b.feed(cp, n)
        got, error, more = b.decrypt(op, len(out))
        self.assertEqual((bytes(out[:got]), error, more), (b"hello", None, False))
        b.shutdown()
        close = b.take()
        cipher[:len(close)] = close
        a.feed(cp, len(close))
        got, error, more = a.decrypt(op, len(out))
        self.assertEqual(got, 0)
        self.assertIsInstance(error, SSL.ZeroReturnError)
