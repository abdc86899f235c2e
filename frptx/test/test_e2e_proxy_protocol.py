"""End to end: ``transport.proxyProtocolVersion`` through real frps/frpc services on 127.0.0.1.

The local services parse the header with ``frptx.wire.proxy_protocol.parse_header``
and echo what follows it, so each test checks both that the header names the
user's own socket (source) and frps' public port (destination), and that no
tunnelled byte came before it or was lost after it.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.trial import unittest
from zope.interface import implementer

from frptx.test.support import MODES, Collector, Tunnel, connect, listen_local, tcp_proxy, with_timeout
from frptx.test.test_e2e import async_test
from frptx.wire.proxy_protocol import ProxyHeader, parse_header

LOOPBACK = "127.0.0.1"


@implementer(IHalfCloseableProtocol)
class HeaderEcho(Protocol):
    """Reads one PROXY header, records it, then echoes the rest of the stream (and the FIN)."""

    def connectionMade(self) -> None:
        self.buffer = b""
        self.header: ProxyHeader | None = None

    def dataReceived(self, data: bytes) -> None:
        if self.header is not None:
            self.transport.write(data)
            return
        self.buffer += data
        parsed = parse_header(self.buffer)  # raises on a stream that does not start with a header
        if parsed is None:
            return
        self.header, used = parsed
        self.factory.headers.append(self.header)
        rest, self.buffer = self.buffer[used:], b""
        if rest:
            self.transport.write(rest)

    def readConnectionLost(self) -> None:
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass


class HeaderEchoFactory(Factory):
    protocol = HeaderEcho

    def __init__(self) -> None:
        self.headers: list[ProxyHeader] = []


class UdpHeaderEcho(DatagramProtocol):
    """Each datagram must start with a header; echoes the payload after it."""

    noisy = False

    def __init__(self) -> None:
        self.headers: list[ProxyHeader] = []

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        parsed = parse_header(datagram)
        assert parsed is not None, datagram
        header, used = parsed
        self.headers.append(header)
        self.transport.write(datagram[used:], addr)


class UdpOnce(DatagramProtocol):
    noisy = False

    def __init__(self) -> None:
        self.reply: Deferred[bytes] = Deferred()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if not self.reply.called:
            self.reply.callback(datagram)


class ProxyProtocolTests(unittest.TestCase):
    timeout = 60

    async def tcp_exchange(self, version: str, mode: dict[str, bool], ptype: str = "tcp") -> None:
        service = HeaderEchoFactory()
        local = listen_local(self, service)
        t = Tunnel(self, mode)
        t.start_server()
        t.start_client([tcp_proxy("pp", local, transport={"proxyProtocolVersion": version})])
        port = await t.remote_port("pp")
        payload = b"hello through the tunnel" * 1000
        user = Collector(payload, half_close=True)
        await connect(port, user)
        me = user.transport.getHost()  # the user's socket, as frps saw it
        received = await with_timeout(user.done, 20)
        self.assertEqual(received, payload)
        self.assertEqual(len(service.headers), 1)
        header = service.headers[0]
        self.assertEqual(header.version, 1 if version == "v1" else 2)
        self.assertEqual((header.command, header.family, header.transport), ("PROXY", "inet", "tcp"))
        self.assertEqual(header.source, (LOOPBACK, me.port))
        self.assertEqual(header.destination, (LOOPBACK, port))

    @async_test
    async def test_tcp_v1(self) -> None:
        await self.tcp_exchange("v1", MODES["nomux"])

    @async_test
    async def test_tcp_v2_mux_tls(self) -> None:
        await self.tcp_exchange("v2", MODES["mux_tls"])

    @async_test
    async def test_no_header_without_the_setting(self) -> None:
        """Regression guard: without proxyProtocolVersion the service sees the user's bytes only."""
        from frptx.test.support import EchoFactory, roundtrip

        local = listen_local(self, EchoFactory())
        t = Tunnel(self, MODES["nomux"])
        t.start_server()
        t.start_client([tcp_proxy("plain", local)])
        port = await t.remote_port("plain")
        self.assertEqual(await roundtrip(port, b"PROXY-less"), b"PROXY-less")

    @async_test
    async def test_udp_header_per_datagram(self) -> None:
        echo = UdpHeaderEcho()
        service = reactor.listenUDP(0, echo, interface=LOOPBACK)
        self.addCleanup(service.stopListening)
        local = service.getHost().port
        t = Tunnel(self, MODES["mux"])
        t.start_server()
        t.start_client([{"name": "upp", "type": "udp", "localIP": LOOPBACK, "localPort": local, "remotePort": 0,
                         "transport": {"proxyProtocolVersion": "v2"}}])
        port = await t.remote_port("upp")
        for n in range(2):
            user = UdpOnce()
            sock = reactor.listenUDP(0, user, interface=LOOPBACK)
            self.addCleanup(sock.stopListening)
            sock.write(b"datagram %d" % n, (LOOPBACK, port))
            self.assertEqual(await with_timeout(user.reply, 20), b"datagram %d" % n)
            header = echo.headers[-1]
            self.assertEqual((header.version, header.command, header.transport), (2, "PROXY", "udp"))
            self.assertEqual(header.source, (LOOPBACK, sock.getHost().port))
            # frp names the local service itself as the destination of a datagram's header
            self.assertEqual(header.destination, (LOOPBACK, local))
        self.assertEqual(len(echo.headers), 2)
