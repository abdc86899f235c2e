# -*- test-case-name: frptx.test.test_plugin_unix_domain_socket -*-
"""A work connection that becomes a byte tunnel to a connection frpc dials.

``unix_domain_socket`` and ``tls2raw`` dial at once; ``http_proxy`` (CONNECT)
and ``socks5`` first read a handshake to learn where to dial.  All of them
then join the two connections with :class:`frptx.protocols.relay.Relay`, so
the tunnel has the same backpressure and half-close as every other frptx relay.
While the dial is in flight the work connection is paused and anything it
already delivered is kept (at most one read) and written first.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IHalfCloseableProtocol, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from frptx import logs
from frptx.protocols.relay import Relay, RelaySink
from frptx.protocols.relayed import RelayedProtocol, start_relay


@implementer(IHalfCloseableProtocol)
class TunnelProtocol(Protocol):
    """Serve one work connection: a handshake (subclasses), then a relay.

    Subclasses override :meth:`handshake_received` and call :meth:`dial`.
    """

    log = logs.logger(__name__)

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.end: RelaySink | None = None
        self.relay: Relay | None = None
        self.lost = False
        self._dialing: Any = None
        self._held: list[bytes] = []
        self._held_eof = False

    # -- Protocol --------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.end is not None:
            self.end.data_received(data)
        elif self._dialing is not None:
            self._held.append(data)  # the transport is paused: at most a read's worth
        else:
            self.handshake_received(data)

    def readConnectionLost(self) -> None:
        if self.end is not None:
            self.end.read_connection_lost()
        elif self._dialing is not None:
            self._held_eof = True
        else:
            self.handshake_eof()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost = True
        if self.end is not None:
            self.end.connection_lost(reason)
        elif self._dialing is not None:
            dialing, self._dialing = self._dialing, None
            dialing.cancel()

    # -- for subclasses ----------------------------------------------------------------

    def handshake_received(self, data: bytes) -> None:
        """Bytes before the tunnel exists (the default dials at once: see ``connectionMade``)."""
        self._held.append(data)

    def handshake_eof(self) -> None:
        """The client closed before the tunnel was set up: nothing to do but close."""
        self.transport.loseConnection()  # type: ignore[union-attr]

    def tunnel_ready(self, local: RelayedProtocol) -> bytes:
        """The local connection is up; return bytes to send the client first (a reply)."""
        return b""

    def dial_failed(self, reason: Failure) -> None:
        """The local connection could not be made; the default closes the work connection."""
        self.log.warn("plugin dial failed: {error}", error=reason.getErrorMessage())
        self.transport.loseConnection()  # type: ignore[union-attr]

    def dial(self, endpoint: IStreamClientEndpoint, leftover: bytes = b"") -> None:
        """Connect ``endpoint``, then relay; ``leftover`` is client data already read."""
        self.transport.pauseProducing()  # type: ignore[union-attr]  # an IPushProducer
        if leftover:
            self._held.append(leftover)
        local = RelayedProtocol()
        self._dialing = endpoint.connect(_OneProtocolFactory(local))
        self._dialing.addCallbacks(self._connected, self._failed)

    def _connected(self, local: RelayedProtocol) -> None:
        self._dialing = None
        if self.lost:
            local.transport.loseConnection()  # type: ignore[union-attr]
            return
        reply = self.tunnel_ready(local)
        if reply:
            self.transport.write(reply)  # type: ignore[union-attr]
        if local.lost:
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        relay = Relay(self.transport, local.transport)  # type: ignore[arg-type]
        self.relay = relay
        local_early, local_eof = local.take_early()
        held, self._held = b"".join(self._held), []
        start_relay(relay, self, local, held, local_early, a_eof=self._held_eof, b_eof=local_eof)

    def _failed(self, reason: Failure) -> None:
        self._dialing = None
        if self.lost:
            return
        self.dial_failed(reason)


class _OneProtocolFactory(Factory):
    """Hands an endpoint the one protocol instance that was prepared for it."""

    def __init__(self, protocol: Protocol) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: Any) -> Protocol:
        return self._protocol


class TunnelFactory(Factory):
    """Protocols made by ``make`` (``make(reactor)``), each serving one work connection."""

    def __init__(self, make: Callable[[], Protocol]) -> None:
        self._make = make

    def buildProtocol(self, addr: Any) -> Protocol:
        protocol = self._make()
        protocol.factory = self
        return protocol
