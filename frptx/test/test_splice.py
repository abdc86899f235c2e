"""splice(2) relaying: engaged for plain TCP legs, same bytes, half-close and resets."""
from __future__ import annotations

import os
import socket

from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.trial import unittest

from frptx.protocols.relay import Relay, TrafficCounter
from frptx.protocols.splice import SPLICE_AVAILABLE, SpliceRelay
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


class SpliceTests(unittest.TestCase):
    timeout = 60

    def setUp(self) -> None:
        if not SPLICE_AVAILABLE:
            raise unittest.SkipTest("os.splice needs Linux and Python 3.10+")

    async def tunnel(self, mode: str = "nomux", **proxy_extra: object) -> tuple[Tunnel, int]:
        local = listen_local(self, EchoFactory())
        t = Tunnel(self, MODES[mode])
        t.start_server()
        t.start_client([tcp_proxy("p", local, **proxy_extra)])
        return t, await t.remote_port("p")

    def relays(self, t: Tunnel) -> list[object]:
        return [u.relay for u in t.frps.server.proxies["p"].users]

    @async_test
    async def test_engaged_on_both_hops_and_bytes_identical(self) -> None:
        t, port = await self.tunnel()
        held = Collector(b"")
        await connect(port, held)
        held.transport.write(b"warm up")
        await with_timeout(held.received_at_least(7), 10)  # echoed: both relays are up
        [relay] = self.relays(t)
        self.assertIsNotNone(relay.spliced, "frps did not switch to splice")
        work = [p for p in t.frpc.client.connections._live if getattr(p, "relay", None) is not None]
        self.assertTrue(work and all(p.relay.spliced is not None for p in work), "frpc did not switch to splice")
        payload = os.urandom(16 * 1024 * 1024)
        held.transport.write(payload)
        held.transport.loseWriteConnection()  # half-close: the echo finishes, then closes
        received = await with_timeout(held.done, 30)
        self.assertEqual(digest(received), digest(b"warm up" + payload))
        proxy = t.frps.server.proxies["p"]
        self.assertEqual(proxy.counter.inbound, len(payload) + 7)
        self.assertEqual(proxy.counter.outbound, len(payload) + 7)
        await until(lambda: not proxy.users, "the user connection gone from frps")

    @async_test
    async def test_user_reset_closes_the_tunnel(self) -> None:
        t, port = await self.tunnel()
        c = Collector(b"")
        await connect(port, c)
        c.transport.write(b"x" * 1000)
        await with_timeout(c.received_at_least(1000), 10)
        [relay] = self.relays(t)
        self.assertIsNotNone(relay.spliced)
        c.transport.abortConnection()
        await until(lambda: not t.frps.server.proxies["p"].users, "the reset user connection gone from frps")
        fresh = Collector(b"after reset", half_close=True)
        await connect(port, fresh)
        self.assertEqual(await with_timeout(fresh.done, 10), b"after reset")

    @async_test
    async def test_not_used_when_bytes_are_transformed_or_wrapped(self) -> None:
        for mode, extra in (("nomux_tls", {}), ("mux", {}), ("nomux", {"transport": {"useEncryption": True}})):
            t, port = await self.tunnel(mode, **extra)
            c = Collector(b"")
            await connect(port, c)
            c.transport.write(b"hello")
            await with_timeout(c.received_at_least(5), 10)
            [relay] = self.relays(t)
            self.assertFalse(isinstance(relay.spliced, SpliceRelay), mode)  # nomux_tls: a TLSRelay
            c.transport.loseWriteConnection()
            self.assertEqual(await with_timeout(c.done, 10), b"hello")
            await t.frpc.stopService()
            await t.frps.stopService()


class _FakeTCP:
    """Just what SpliceRelay uses of a Twisted TCP transport, over a real socket."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.socket = sock
        self.connected = True
        self.disconnecting = False
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataBuffer: list[bytes] = []
        self._tempDataLen = 0
        self.lost: object = None

    def fileno(self) -> int:
        return self.socket.fileno()

    def getHandle(self) -> socket.socket:
        return self.socket

    def unregisterProducer(self) -> None:
        pass

    def stopReading(self) -> None:
        pass

    def stopWriting(self) -> None:
        pass

    def connectionLost(self, reason: object) -> None:
        self.connected = False
        self.lost = reason

    def abortConnection(self) -> None:
        self.connectionLost("aborted")


class _Interest:
    """Records which endpoints a fake reactor would read from and write to."""

    def __init__(self) -> None:
        self.readers: set[object] = set()
        self.writers: set[object] = set()

    def addReader(self, e: object) -> None:
        self.readers.add(e)

    def removeReader(self, e: object) -> None:
        self.readers.discard(e)

    def addWriter(self, e: object) -> None:
        self.writers.add(e)

    def removeWriter(self, e: object) -> None:
        self.writers.discard(e)


class SpliceCopyPathTests(unittest.SynchronousTestCase):
    """The copy path for small reads, driven by hand over socket pairs."""

    def setUp(self) -> None:
        if not SPLICE_AVAILABLE:
            raise unittest.SkipTest("os.splice needs Linux and Python 3.10+")
        self.user_app, user_side = socket.socketpair()
        service_side, self.service_app = socket.socketpair()
        for s in (self.user_app, user_side, service_side, self.service_app):
            self.addCleanup(s.close)
        self.service_app.setblocking(False)
        self.user_app.setblocking(False)
        self.a, self.b = _FakeTCP(user_side), _FakeTCP(service_side)
        self.a.dataBuffer = b"unsent-a|"  # as if Twisted still held bytes for the user
        relay = Relay(self.a, self.b, counter=TrafficCounter())
        self.reactor = _Interest()
        self.splice = SpliceRelay(relay, self.reactor)
        self.relay = relay

    def read_all(self, sock: socket.socket) -> bytes:
        out = bytearray()
        while True:
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                return bytes(out)
            if not data:
                return bytes(out)
            out.extend(data)

    def test_small_messages_are_copied_in_order_with_backpressure(self) -> None:
        self.splice.start(a_buffered=b"early|")
        self.assertEqual(self.read_all(self.user_app), b"unsent-a|")  # taken from Twisted's buffer first
        sent = bytearray(b"early|")
        received = bytearray(self.read_all(self.service_app))
        blocked = False
        for i in range(3000):  # small messages while the service does not read: the socket buffers fill
            msg = b"%05d" % i + b"." * 995
            try:
                n = self.user_app.send(msg)
            except BlockingIOError:
                break
            sent.extend(msg[:n])
            self.splice.readable(self.splice.ea)
            if self.splice.ab.pending:
                blocked = True
                # waiting to write: not reading the user, waiting for the service side to drain
                self.assertNotIn(self.splice.ea, self.reactor.readers)
                self.assertIn(self.splice.eb, self.reactor.writers)
                break
        self.assertTrue(blocked, "the service side never pushed back")
        for _ in range(10000):
            if len(received) >= len(sent):
                break
            received.extend(self.read_all(self.service_app))
            self.splice.writable(self.splice.eb)
            if not self.splice.ab.pending and not self.splice.ab.in_pipe:
                self.splice.readable(self.splice.ea)
        self.assertEqual(bytes(received), bytes(sent))
        self.assertIn(self.splice.ea, self.reactor.readers)  # reading again once drained
        self.assertNotIn(self.splice.eb, self.reactor.writers)
        self.splice._count()
        self.assertEqual(self.relay.counter.inbound, len(sent))
        self.assertEqual(self.relay.counter.outbound, 0)  # the unsent frame is not traffic

    def test_half_close_and_clean_close(self) -> None:
        self.splice.start()
        self.read_all(self.user_app)
        self.user_app.sendall(b"request")
        self.user_app.shutdown(socket.SHUT_WR)
        self.splice.readable(self.splice.ea)  # a short read: the next poll reports the EOF
        self.assertFalse(self.splice.ab.done)
        self.splice.readable(self.splice.ea)
        self.assertEqual(self.read_all(self.service_app), b"request")  # and EOF: FIN passed on
        self.assertTrue(self.splice.ab.done)
        self.assertFalse(self.splice.finished)  # the other direction is still open
        self.service_app.sendall(b"reply")
        self.service_app.shutdown(socket.SHUT_WR)
        self.splice.readable(self.splice.eb)
        self.splice.readable(self.splice.eb)
        self.assertEqual(self.read_all(self.user_app), b"reply")
        self.assertTrue(self.splice.finished)
        self.assertIsInstance(self.a.lost, Failure)
        self.assertTrue(self.a.lost.check(ConnectionDone))  # type: ignore[union-attr]
        self.assertIs(self.a.lost, self.b.lost)
        self.assertEqual(self.a._shouldShutdown, False)
        self.assertEqual(self.reactor.readers | self.reactor.writers, set())

    def test_bulk_flow_switches_to_the_pipe_and_back(self) -> None:
        self.splice.start()
        self.read_all(self.user_app)
        big = os.urandom(200 * 1024)
        self.user_app.sendall(big[:100 * 1024])
        self.splice.readable(self.splice.ea)
        self.assertTrue(self.splice.ab.bulk)
        self.assertGreaterEqual(self.splice.ab.wfd, 0)
        received = bytearray(self.read_all(self.service_app))
        self.splice.writable(self.splice.eb)
        self.splice.readable(self.splice.ea)
        received.extend(self.read_all(self.service_app))
        self.user_app.sendall(b"small")
        self.splice.readable(self.splice.ea)
        self.assertFalse(self.splice.ab.bulk)
        self.splice.readable(self.splice.ea)
        received.extend(self.read_all(self.service_app))
        self.assertEqual(bytes(received), big[:100 * 1024] + b"small")

    def test_without_a_pipe_it_keeps_copying(self) -> None:
        """Out of file descriptors for a pipe: the bulk flow is copied, every byte arrives."""
        self.splice.start()
        self.read_all(self.user_app)
        failures = []

        def no_pipe2(flags: int) -> tuple[int, int]:
            failures.append(flags)
            raise OSError(24, "Too many open files")

        self.patch(os, "pipe2", no_pipe2)
        big = os.urandom(96 * 1024)
        self.user_app.sendall(big)
        received = bytearray()
        for _ in range(100):
            self.splice.readable(self.splice.ea)
            received.extend(self.read_all(self.service_app))
            if len(received) >= len(big):
                break
        self.assertEqual(bytes(received), big)
        self.assertEqual(len(failures), 1)  # asked once, then copying for good
        self.assertFalse(self.splice.ab.bulk)
        self.flushLoggedErrors()
