"""End to end: what a peer that misbehaves (or a local service that is down) must not do
to frps/frpc -- leak connections, linger, refuse bursts (issue 10).

Real frps/frpc services in this process, real sockets on 127.0.0.1.  Waits are on
events (a connection's ``connectionLost``), each bounded by a timeout far below the
10 s grace timers whose expiry the old code relied on.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.trial import unittest
from zope.interface import implementer

from frptx.test.support import (
    Collector,
    Echo,
    Tunnel,
    async_test,
    connect,
    mode_cases,
    tcp_proxy,
    with_timeout,
)
from frptx.transport import tls_client, tls_context


def when_lost(protocol: Any) -> Deferred[None]:
    """Fires once ``protocol`` got ``connectionLost`` (at once if its tracker already let it go)."""
    tracker = protocol.tracker
    if tracker is not None and protocol not in tracker._live:
        return succeed(None)
    d: Deferred[None] = Deferred()
    original = protocol.connectionLost

    def lost(reason: Any = None) -> None:
        original(reason)
        if not d.called:
            d.callback(None)

    protocol.connectionLost = lost
    return d


def raw_connections(tracker: Any) -> list[Any]:
    """Work/visitor connections that switched to raw bytes and are still open."""
    return [p for p in tracker._live if getattr(p, "_raw", False)]


async def closed_port() -> int:
    """A port with nothing listening on it."""
    port = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
    number = port.getHost().port
    await port.stopListening()
    return int(number)


class LocalServiceDownMixin:
    """A failed local dial leaves no work connection open on frpc or frps (item 8)."""

    mode: dict[str, bool]
    timeout = 45

    @async_test
    async def test_failed_local_dials_leak_no_work_connection(self) -> None:
        t = Tunnel(self, self.mode)
        t.start_server()
        t.start_client([tcp_proxy("down", await closed_port())])
        port = await t.remote_port("down")
        frpc_conns = t.frpc.client.connections  # type: ignore[union-attr]
        frps_conns = t.frps.server.connections  # type: ignore[union-attr]
        for _ in range(5):
            c = Collector(b"hello")
            await connect(port, c)
            self.assertEqual(await with_timeout(c.done, 5), b"")  # type: ignore[attr-defined]
            # Every work connection that carried a refused user closes, on both sides,
            # promptly (the old TLS one waited forever for a close_notify it never read).
            lingering = raw_connections(frpc_conns) + raw_connections(frps_conns)
            await with_timeout(gatherResults([when_lost(p) for p in lingering]), 5)
        self.assertEqual(raw_connections(frpc_conns), [])  # type: ignore[attr-defined]
        self.assertEqual(raw_connections(frps_conns), [])  # type: ignore[attr-defined]


mode_cases(LocalServiceDownMixin, globals(), unittest.TestCase)


@implementer(IHalfCloseableProtocol)
class _BadFramer(Protocol):
    """Breaks the yamux protocol at once; answers nothing (half-closeable: a TLS
    close_notify from frps does not make it close), so only frps can end the connection.

    ``closed`` fires when frps closed its socket: over plain TCP that is the FIN
    (``readConnectionLost``; frps never half-closes), over TLS the loss of the TCP
    connection (its ``readConnectionLost`` is only the close_notify)."""

    def __init__(self, use_tls: bool) -> None:
        self.use_tls = use_tls
        self.closed: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(bytes.fromhex("6f00000000000000b87b2276657273696f6e"))

    def readConnectionLost(self) -> None:
        if not self.use_tls and not self.closed.called:
            self.closed.callback(None)

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Any = None) -> None:
        if not self.closed.called:
            self.closed.callback(None)


class YamuxProtocolErrorTests(unittest.TestCase):
    """frps closes a tcpMux connection right after GoAway(1), over TLS as over TCP (item 7);
    it used to linger for the 10 s abort grace over TLS.  Go closes in 0.04 s."""

    timeout = 30

    async def _attack(self, use_tls: bool) -> None:
        t = Tunnel(self, {"tcp_mux": True, "tls": use_tls})
        frps = t.start_server()
        attacker = _BadFramer(use_tls)
        inner = ClientFactory()
        inner.buildProtocol = lambda addr: attacker  # type: ignore[method-assign]
        factory: Any = inner
        if use_tls:
            factory = tls_client.wrap_client_factory(
                inner, tls_context.client_connection_creator(server_addr="127.0.0.1"), custom_first_byte=True
            )
        connector = reactor.connectTCP("127.0.0.1", frps.bound_port, factory)
        self.addCleanup(connector.disconnect)
        await with_timeout(attacker.closed, 5)
        attacker.transport.loseConnection()

    @async_test
    async def test_plain(self) -> None:
        await self._attack(False)

    @async_test
    async def test_tls(self) -> None:
        await self._attack(True)
