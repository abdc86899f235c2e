# -*- test-case-name: frptx.test.test_e2e -*-
"""How frpc reaches frps and its local services.

``Dialer.dial(protocol)`` gives a protocol a connection to frps: a new TCP (or
TLS) connection without tcpMux, a new stream on the current yamux session with
it.  Control and work protocols never know which one they got.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IProtocol
from twisted.internet.protocol import ClientFactory, Factory
from twisted.python.failure import Failure

from frptx.config import ClientConfig
from frptx.protocols.tracking import TrackedConnection
from frptx.transport.connect import can_connect_fast, connect as fast_connect


class NotConnected(Exception):
    """No yamux session to frps is up (tcpMux), so no stream can be opened."""


class OneShotFactory(Factory):
    """Hands out one given protocol instance, for an endpoint's ``connect``.

    Quiet (no "Starting factory" line per connection), unlike the factory of
    ``twisted.internet.endpoints.connectProtocol``.
    """

    noisy = False

    def __init__(self, protocol: IProtocol) -> None:
        self.protocol_instance = protocol

    # Factory types buildProtocol as building a Protocol that takes a .factory;
    # this one hands out a caller's IProtocol, which is all IProtocolFactory asks for.
    def buildProtocol(self, addr: object) -> IProtocol:  # type: ignore[override]
        return self.protocol_instance


class _NotifyingFactory(ClientFactory):
    """Connects one ``TrackedConnection``; its ``on_connected`` hook fires the Deferred."""

    noisy = False

    def __init__(self, protocol: TrackedConnection) -> None:
        self.protocol_instance = protocol
        self.deferred: Deferred[IProtocol] = Deferred()
        protocol.on_connected = self._connected

    def _connected(self) -> None:
        if not self.deferred.called:
            self.deferred.callback(self.protocol_instance)  # type: ignore[arg-type]  # a Protocol

    def buildProtocol(self, addr: object) -> IProtocol:  # type: ignore[override]  # a caller's instance
        return self.protocol_instance  # type: ignore[return-value]  # a Protocol

    def clientConnectionFailed(self, connector: object, reason: Failure) -> None:
        self.failed(reason)

    def failed(self, reason: Failure) -> None:
        if not self.deferred.called:
            self.deferred.errback(reason)


def connect_tcp(reactor: Any, host: str, port: int, protocol: IProtocol, timeout: float,
                bind_address: tuple[str, int] | None = None,
                wrap: Callable[[ClientFactory], Factory] | None = None) -> Deferred[IProtocol]:
    """Connect ``protocol`` to host:port; the Deferred fires at connectionMade.

    frptx's own protocols (``TrackedConnection``) say when they are connected, so they
    are connected directly, with ``frptx.transport.connect`` for an IP literal (this is
    frpc's per-connection path), else ``reactor.connectTCP``: no wrapper protocol forwards
    each of their reads.  Any other protocol goes through
    ``TCP4ClientEndpoint``.  ``wrap`` puts a layer (TLS) in front of ``protocol``.
    """
    if isinstance(protocol, TrackedConnection):
        notifying = _NotifyingFactory(protocol)
        outer: Factory = wrap(notifying) if wrap else notifying
        if can_connect_fast(reactor, host):
            fast_connect(reactor, host, port, outer, timeout, notifying.failed, bind_address)
        else:
            reactor.connectTCP(host, port, outer, timeout=timeout, bindAddress=bind_address)
        return notifying.deferred
    # imported here: twisted.internet.endpoints imports pyOpenSSL, which plain frpc never needs
    from twisted.internet.endpoints import TCP4ClientEndpoint

    endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=timeout, bindAddress=bind_address)
    factory: Any = OneShotFactory(protocol)
    d = endpoint.connect(wrap(factory) if wrap else factory)
    return d.addCallback(lambda _: protocol)


class Dialer:
    """Opens connections to frps for control and work protocols."""

    def __init__(self, config: ClientConfig, reactor: Any,
                 tls_wrap: Callable[[ClientFactory], Factory] | None = None) -> None:
        self.config = config
        self.reactor = reactor
        self.tls_wrap = tls_wrap
        self.session: Any = None  # the live YamuxProtocol with tcpMux

    @property
    def bind_address(self) -> tuple[str, int] | None:
        ip = self.config.transport.connect_server_local_ip
        return (ip, 0) if ip else None

    def connect_factory(self, factory: ClientFactory) -> Any:
        """Start a connection to frps with ``factory`` (used by the login factory)."""
        cfg = self.config
        wrapped = self.tls_wrap(factory) if self.tls_wrap else factory
        return self.reactor.connectTCP(cfg.server_addr, cfg.server_port, wrapped,
                                       timeout=cfg.transport.dial_server_timeout, bindAddress=self.bind_address)

    def dial(self, protocol: IProtocol) -> Deferred[IProtocol]:
        """A new connection (or stream) to frps running ``protocol``."""
        if self.config.transport.tcp_mux:
            session = self.session
            if session is None or not session.is_open:
                return fail(NotConnected("no session to frps"))
            try:
                session.open_stream(protocol)
            except Exception as e:  # go-away received or session closing
                return fail(e)
            return succeed(protocol)
        cfg = self.config
        return connect_tcp(self.reactor, cfg.server_addr, cfg.server_port, protocol,
                           cfg.transport.dial_server_timeout, self.bind_address, self.tls_wrap)
