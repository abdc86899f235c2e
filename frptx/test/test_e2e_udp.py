"""End to end: udp and sudp tunnels through real frps/frpc services on 127.0.0.1.

Every test runs in each transport mode (tcpMux on/off x TLS on/off).  Senders
keep a small window of datagrams in flight, so loopback buffers never overflow
and delivery can be asserted exactly: every datagram comes back once, to the
socket that sent it, byte for byte.
"""
from __future__ import annotations

import collections
import dataclasses
import os
import random
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.protocol import DatagramProtocol
from twisted.trial import unittest

from frptx.client.service import FrpcService
from frptx.client.udp import SudpVisitor, handlers_of
from frptx.protocols.packets import max_udp_payload
from frptx.test.support import (
    QUICK_UDP_TIMING,
    LogWatch,
    Tunnel,
    client_config,
    mode_cases,
    until,
    with_timeout,
)
from frptx.test.test_e2e import async_test

LOOPBACK = "127.0.0.1"


class UdpEcho(DatagramProtocol):
    """The proxied service: answers every datagram with itself."""

    noisy = False

    def __init__(self) -> None:
        self.received = 0
        self.peers: set[Any] = set()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.received += 1
        self.peers.add(addr)
        self.transport.write(datagram, addr)


class WindowedSender(DatagramProtocol):
    """Sends ``payloads`` to ``target`` with at most ``window`` unanswered; records replies.

    ``done`` fires when every payload came back (as a multiset); a reply that this
    socket never sent, or one too many, is recorded in ``foreign``.
    """

    noisy = False

    def __init__(self, target: int, payloads: list[bytes], window: int = 8) -> None:
        self.target = target
        self.payloads = payloads
        self.window = window
        self.expected: collections.Counter[bytes] = collections.Counter(payloads)
        self.next = 0
        self.replies = 0
        self.foreign: list[bytes] = []
        self.done: Deferred[None] = Deferred()

    def startProtocol(self) -> None:
        self.transport.connect(LOOPBACK, self.target)

    def go(self) -> Deferred[None]:
        for _ in range(self.window):
            self._send_next()
        return self.done

    def _send_next(self) -> None:
        if self.next < len(self.payloads):
            self.transport.write(self.payloads[self.next])
            self.next += 1

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if self.expected[datagram] > 0:
            self.expected[datagram] -= 1
            self.replies += 1
        else:
            self.foreign.append(datagram)
        self._send_next()
        if self.replies == len(self.payloads) and not self.done.called:
            self.done.callback(None)

    def status(self) -> str:
        return f"sent {self.next}/{len(self.payloads)}, answered {self.replies}, foreign {len(self.foreign)}"


def mixed_payloads(tag: bytes, count: int, rng: random.Random, big: int = 1500) -> list[bytes]:
    """``count`` datagrams of 1..1400 bytes plus a few of ``big`` bytes, each starting with ``tag``."""
    sizes = [1, 2, 3] + [rng.randint(1, 1400) for _ in range(count - 6)] + [big] * 3
    rng.shuffle(sizes)
    return [tag + rng.randbytes(n - 1) for n in sizes]


def udp_proxy(name: str, local_port: int, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": name, "type": "udp", "localIP": LOOPBACK, "localPort": local_port,
                           "remotePort": 0}
    doc.update(extra)
    return doc


class UdpTunnelMixin:
    """udp and sudp behaviours for one transport mode."""

    mode: dict[str, bool]
    timeout = 60

    def listen_udp(self, protocol: DatagramProtocol, port: int = 0) -> int:
        p = reactor.listenUDP(port, protocol, interface=LOOPBACK, maxPacketSize=65535)
        self.addCleanup(p.stopListening)  # type: ignore[attr-defined]
        return p.getHost().port

    def tunnel(self, **server: Any) -> Tunnel:
        t = Tunnel(self, self.mode)
        t.start_server(udp_timing=QUICK_UDP_TIMING, **server)
        return t

    def start_frpc(self, t: Tunnel, proxies: list[dict[str, Any]], visitors: list[dict[str, Any]] | None = None,
                   **extra: Any) -> FrpcService:
        """Like ``Tunnel.start_client``, but visitors listen on port 0 (the config refuses 0)."""
        assert t.frps is not None
        if visitors:
            extra["visitors"] = [dict(v, bindPort=1) for v in visitors]
        cfg = client_config(t.frps.bound_port, self.mode["tcp_mux"], self.mode["tls"], proxies, **extra)
        cfg = dataclasses.replace(cfg, visitors=tuple(dataclasses.replace(v, bind_port=0) for v in cfg.visitors))
        frpc = FrpcService(cfg, reactor, on_fatal=t.fatal.append)
        frpc.startService()
        self.addCleanup(t.stop_checked, frpc, frpc.client.connections)  # type: ignore[attr-defined]
        return frpc

    async def exchange(self, port: int, payload_sets: list[list[bytes]], timeout: float = 30) -> None:
        """Send each payload list from its own socket at once; assert exact, per-socket echoes."""
        senders = [WindowedSender(port, payloads) for payloads in payload_sets]
        for s in senders:
            self.listen_udp(s)
        try:
            await with_timeout(gatherResults([s.go() for s in senders]), timeout)
        except Exception:
            raise AssertionError("datagrams lost: " + "; ".join(s.status() for s in senders)) from None
        for s in senders:
            self.assertEqual(s.foreign, [])  # type: ignore[attr-defined]
            self.assertEqual(+s.expected, collections.Counter())  # type: ignore[attr-defined]

    async def udp_echo_tunnel(self, server: dict[str, Any] | None = None, **proxy: Any
                              ) -> tuple[Tunnel, int, UdpEcho]:
        echo = UdpEcho()
        local = self.listen_udp(echo)
        t = self.tunnel(**(server or {}))
        t.start_client([udp_proxy("echo", local, **proxy)])
        return t, await t.remote_port("echo"), echo

    # -- udp ------------------------------------------------------------------------------
    @async_test
    async def test_two_sockets_mixed_sizes(self) -> None:
        t, port, echo = await self.udp_echo_tunnel()
        rng = random.Random(1)
        await self.exchange(port, [mixed_payloads(b"A", 300, rng), mixed_payloads(b"B", 300, rng)])
        self.assertEqual(echo.received, 600)  # type: ignore[attr-defined]
        self.assertEqual(len(echo.peers), 2)  # type: ignore[attr-defined]
        proxy = t.frps.server.proxies["echo"]  # type: ignore[union-attr]
        self.assertEqual(proxy.channels_used, 1)  # type: ignore[attr-defined]
        self.assertEqual(proxy.total_dropped, 0)  # type: ignore[attr-defined]

    @async_test
    async def test_encryption_and_compression(self) -> None:
        t, port, _ = await self.udp_echo_tunnel(transport={"useEncryption": True, "useCompression": True})
        rng = random.Random(2)
        await self.exchange(port, [mixed_payloads(b"A", 200, rng), mixed_payloads(b"B", 200, rng)])
        counter = t.frps.server.proxies["echo"].counter  # type: ignore[union-attr]
        self.assertGreater(counter.inbound, 0)  # type: ignore[attr-defined]
        self.assertEqual(counter.inbound, counter.outbound)  # type: ignore[attr-defined]

    @async_test
    async def test_largest_datagram_passes_larger_is_dropped(self) -> None:
        """With udpPacketSize raised, a datagram whose frame would pass 10240 bytes is dropped, not sent."""
        echo = UdpEcho()
        local = self.listen_udp(echo)
        t = self.tunnel(udpPacketSize=16000)
        t.start_client([udp_proxy("echo", local)], udpPacketSize=16000)
        port = await t.remote_port("echo")
        sender = WindowedSender(port, [])
        self.listen_udp(sender)
        limit = max_udp_payload((LOOPBACK, sender.transport.getHost().port))
        self.assertGreater(limit, 7000)  # type: ignore[attr-defined]
        too_big = b"X" * (limit + 1)
        largest = os.urandom(limit)
        sender.payloads = [too_big, largest]
        sender.expected = collections.Counter([largest])
        sender.next = len(sender.payloads)  # sent by hand below, not by the window
        sender.transport.write(too_big)
        sender.transport.write(largest)
        # one socket, one work connection: had the big one passed, it would have come back first
        await until(lambda: sender.replies > 0 or sender.foreign, "a reply")
        self.assertEqual((sender.replies, sender.foreign), (1, []))  # type: ignore[attr-defined]
        proxy = t.frps.server.proxies["echo"]  # type: ignore[union-attr]
        self.assertEqual(proxy.channel.dropped_oversize, 1)  # type: ignore[attr-defined, union-attr]
        self.assertEqual(echo.received, 1)  # type: ignore[attr-defined]

    @async_test
    async def test_lost_work_connection_is_replaced(self) -> None:
        t, port, _ = await self.udp_echo_tunnel()
        rng = random.Random(3)
        await self.exchange(port, [mixed_payloads(b"A", 20, rng)])
        proxy = t.frps.server.proxies["echo"]  # type: ignore[union-attr]
        old = proxy.channel  # type: ignore[attr-defined]
        old.protocol.transport.abortConnection()
        await until(lambda: proxy.channel is not None and proxy.channel is not old,  # type: ignore[attr-defined]
                    "a new work connection on frps")
        self.assertIs(t.frps.server.proxies["echo"], proxy)  # type: ignore[union-attr, attr-defined]
        await self.exchange(port, [mixed_payloads(b"B", 50, rng), mixed_payloads(b"C", 50, rng)])
        self.assertEqual(proxy.channels_used, 2)  # type: ignore[attr-defined]
        # frpc drops the handler of the aborted connection
        await until(lambda: len(handlers_of(t.frpc.client, "echo")) == 1,  # type: ignore[union-attr]
                    "one udp handler left on frpc")

    # -- sudp ------------------------------------------------------------------------------
    async def sudp_pair(self, visitor_sk: str, **visitor_extra: Any) -> tuple[Tunnel, SudpVisitor, UdpEcho]:
        echo = UdpEcho()
        local = self.listen_udp(echo)
        t = self.tunnel()
        t.start_client([{"name": "secret", "type": "sudp", "secretKey": "s3cret", "localIP": LOOPBACK,
                         "localPort": local, "transport": {"useEncryption": True}}])
        status = await with_timeout(t.frpc.proxy_manager.wait_settled("secret"), 10)  # type: ignore[union-attr]
        self.assertEqual(status.phase, "running")  # type: ignore[attr-defined]
        visitor_frpc = self.start_frpc(t, [], visitors=[dict(
            {"name": "sv", "type": "sudp", "serverName": "secret", "secretKey": visitor_sk,
             "bindAddr": LOOPBACK}, **visitor_extra)])
        await with_timeout(visitor_frpc.client.when_logged_in(), 10)
        return t, visitor_frpc.visitors["sv"], echo

    @async_test
    async def test_sudp_visitor_echo(self) -> None:
        _, visitor, echo = await self.sudp_pair("s3cret", transport={"useEncryption": True,
                                                                    "useCompression": True})
        port = visitor.port.getHost().port
        rng = random.Random(4)
        await self.exchange(port, [mixed_payloads(b"A", 150, rng), mixed_payloads(b"B", 150, rng)])
        self.assertEqual(visitor.connections_opened, 1)  # type: ignore[attr-defined]
        self.assertEqual(len(echo.peers), 2)  # type: ignore[attr-defined]

    @async_test
    async def test_sudp_wrong_secret_no_traffic_refusal_logged(self) -> None:
        logs = LogWatch(self)
        _, visitor, echo = await self.sudp_pair("wrong")
        sender = WindowedSender(visitor.port.getHost().port, [b"hello"])
        self.listen_udp(sender)
        refused = logs.next("auth failed")
        sender.go()
        await with_timeout(refused, 10)
        # the datagram is dropped, not queued: nothing can reach the service any more
        await until(lambda: visitor.dropped > 0, "the datagram dropped by the visitor")
        self.assertEqual((sender.replies, echo.received), (0, 0))  # type: ignore[attr-defined]
        self.assertTrue(logs.matching("sudp visitor [sv]: cannot open the visitor connection: "  # type: ignore
                                      "visitor connection of [secret] auth failed"), logs.lines[-20:])
        self.assertEqual(visitor.dropped, 1)  # type: ignore[attr-defined]


mode_cases(UdpTunnelMixin, globals(), unittest.TestCase)
