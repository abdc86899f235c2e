"""splice(2) relaying: engaged for plain TCP legs, same bytes, half-close and resets."""
from __future__ import annotations

import os

from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest

from frptx.protocols.splice import SPLICE_AVAILABLE
from frptx.test.support import MODES, Collector, EchoFactory, Tunnel, connect, deferLater, digest, listen_local, \
    tcp_proxy, with_timeout
from frptx.test.test_e2e import async_test


class Sink(Protocol):
    def connectionMade(self) -> None:
        self.factory.sinks.append(self)
        self.received = 0

    def dataReceived(self, data: bytes) -> None:
        self.received += len(data)


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
        await deferLater(0.3)
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
        await deferLater(0.2)
        self.assertEqual(proxy.users, set())

    @async_test
    async def test_user_reset_closes_the_tunnel(self) -> None:
        t, port = await self.tunnel()
        c = Collector(b"")
        await connect(port, c)
        c.transport.write(b"x" * 1000)
        await deferLater(0.3)
        [relay] = self.relays(t)
        self.assertIsNotNone(relay.spliced)
        c.transport.abortConnection()
        for _ in range(50):
            if not t.frps.server.proxies["p"].users:
                break
            await deferLater(0.1)
        self.assertEqual(t.frps.server.proxies["p"].users, set())
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
            await deferLater(0.3)
            [relay] = self.relays(t)
            self.assertIsNone(relay.spliced, mode)
            c.transport.loseWriteConnection()
            self.assertEqual(await with_timeout(c.done, 10), b"hello")
            await t.frpc.stopService()
            await t.frps.stopService()

    @async_test
    async def test_slow_reader_holds_back_the_sender(self) -> None:
        """Backpressure in the kernel: a reader that stops reading stops the pusher."""
        sinks: list[Sink] = []
        factory = Factory.forProtocol(Sink)
        factory.sinks = sinks  # type: ignore[attr-defined]
        local = listen_local(self, factory)
        t = Tunnel(self, MODES["nomux"])
        t.start_server()
        t.start_client([tcp_proxy("p", local)])
        port = await t.remote_port("p")
        from frptx.test.test_process import Pusher

        pusher = Pusher(256 * 1024 * 1024)
        await connect(port, Collector(b""))  # warm the pool
        await deferLater(0.2)
        await connect(port, pusher)
        await deferLater(0.5)
        sink = sinks[-1]
        sink.transport.pauseProducing()
        # the kernel buffers (autotuned) fill up, then the pusher must stop: wait for a stable count
        previous, stable = -1, 0
        for _ in range(40):
            await deferLater(0.25)
            stable = stable + 1 if pusher.sent == previous else 0
            previous = pusher.sent
            if stable >= 4:
                break
        self.assertGreaterEqual(stable, 4, "the pusher kept sending to a reader that does not read")
        self.assertTrue(pusher.paused)
        self.assertLess(pusher.sent - sink.received, 64 * 1024 * 1024)
        sink.transport.resumeProducing()
        for _ in range(300):
            if sink.received >= pusher.total:
                break
            await deferLater(0.1)
        self.assertEqual(sink.received, pusher.total)
