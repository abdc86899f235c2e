# -*- test-case-name: frptx.test.test_e2e -*-
"""Factories for frps's bind port.

The stack on one accepted TCP connection is built outside in, so each layer only
knows the one below it::

    TrackedSniffingFactory (plain / 0x17+TLS / 0x16 TLS)  transport.tls
      -> YamuxProtocol, one ServerConnectionProtocol per stream   transport.tcpMux
         or ServerConnectionProtocol directly

They depend on ``BindPortServer`` (config, clock, connection set and the
first-message dispatch), which ``frptx.server.registry.FrpServer`` implements.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol as TypingProtocol

from twisted.internet.interfaces import IAddress, IProtocol, IProtocolFactory
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from frptx import logs
from frptx.config import ServerConfig
from frptx.protocols.server import FIRST_MESSAGE_TIMEOUT, ServerConnectionProtocol, ServerDispatcher
from frptx.protocols.tracking import ConnectionSet
from frptx.protocols.tuning import tune
from frptx.transport.sniff import Rule
from frptx.transport.tls_sniff import FactoryOnFirstUse, PlainOrTLSFactory

log = logs.logger(__name__)

#: seconds a new yamux session may stay without opening a stream
FIRST_STREAM_TIMEOUT = 10.0
#: seconds an accepted connection may stay silent before its first byte
SNIFF_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True)
class BindPortTimeouts:
    """How long frps waits for a new bind-port connection to show what it is.

    Not frp settings (frp hard-codes them too), so not in the config: the defaults
    are what frps uses; tests pass shorter ones so a silent peer costs them
    milliseconds, not ten seconds.
    """

    #: nothing at all received (the first-byte dispatcher, ``TrackedSniffingFactory``)
    sniff: float = SNIFF_TIMEOUT
    #: no complete first frp message (Login, NewWorkConn, NewVisitorConn)
    first_message: float = FIRST_MESSAGE_TIMEOUT
    #: a yamux session that opens no stream
    first_stream: float = FIRST_STREAM_TIMEOUT


#: frps's own values
DEFAULT_TIMEOUTS = BindPortTimeouts()


class BindPortServer(ServerDispatcher, TypingProtocol):
    """What the bind port's factories need of frps besides the dispatch itself."""

    @property
    def config(self) -> ServerConfig: ...

    @property
    def connections(self) -> ConnectionSet: ...


class ServerConnectionFactory(Factory):
    """One ``ServerConnectionProtocol`` per accepted connection or yamux stream."""

    noisy = False

    def __init__(self, server: BindPortServer, first_message_timeout: float = FIRST_MESSAGE_TIMEOUT) -> None:
        self.server = server
        self.first_message_timeout = first_message_timeout

    def buildProtocol(self, addr: object) -> ServerConnectionProtocol:
        return ServerConnectionProtocol(self.server, self.first_message_timeout)


class YamuxServerFactory(Factory):
    """A yamux session per TCP connection; every stream gets a dispatcher.

    A session that opens no stream within ``first_stream_timeout`` is closed, the
    mux counterpart of the first-message timeout: frpc opens its control stream
    at once, so an idle session is a scanner or a client with the wrong settings.
    """

    noisy = False

    def __init__(self, server: BindPortServer, streams: IProtocolFactory,
                 first_stream_timeout: float = FIRST_STREAM_TIMEOUT) -> None:
        self.server = server
        self.streams = streams
        self.first_stream_timeout = first_stream_timeout

    def buildProtocol(self, addr: object) -> Protocol:
        from frptx.mux import YamuxProtocol

        cfg = self.server.config.transport
        reactor = self.server.reactor
        first_stream = _FirstStreamWatch(self.streams)
        session = YamuxProtocol(is_client=False, reactor=reactor, stream_factory=first_stream, coalesce_over_tls=True,
                                keepalive_interval=float(cfg.tcp_mux_keepalive_interval))

        def no_stream() -> None:
            if not first_stream.seen and session.is_open:
                assert session.transport is not None  # is_open: connected
                log.warn("closing yamux session from {peer}: no stream within {t:g}s (is frpc's "
                         "transport.tcpMux true like frps's?)", peer=session.transport.getPeer(),
                         t=self.first_stream_timeout)
                session.close()

        timer = reactor.callLater(self.first_stream_timeout, no_stream)

        def cancel_timer(result: object) -> object:
            if timer.active():
                timer.cancel()
            return result

        session.when_closed().addBoth(cancel_timer)
        return session


@implementer(IProtocolFactory)
class _FirstStreamWatch:
    """Passes streams to the dispatcher factory and remembers that one came."""

    def __init__(self, streams: IProtocolFactory) -> None:
        self.streams = streams
        self.seen = False

    def buildProtocol(self, addr: IAddress) -> IProtocol | None:
        self.seen = True
        return self.streams.buildProtocol(addr)

    def doStart(self) -> None:
        self.streams.doStart()

    def doStop(self) -> None:
        self.streams.doStop()


class TrackedSniffingFactory(PlainOrTLSFactory):
    """The bind port's dispatcher; registers every accepted connection in ``server.connections``."""

    def __init__(self, server: BindPortServer, *args: Any, **kwargs: Any) -> None:
        self.server = server
        super().__init__(*args, **kwargs)

    def registerProtocol(self, p: Any) -> None:
        super().registerProtocol(p)
        tune(p.transport)  # control, work and mux-session sockets all carry tunnelled bytes
        self.server.connections.add(p)

    def unregisterProtocol(self, p: Any) -> None:
        super().unregisterProtocol(p)
        self.server.connections.discard(p)


def bind_port_factory(server: BindPortServer, reactor: Any,
                      timeouts: BindPortTimeouts = DEFAULT_TIMEOUTS,
                      shared: Sequence[Rule] = ()) -> IProtocolFactory:
    """The factory for frps's bind port, per ``transport.tcpMux`` and ``transport.tls``.

    With TLS settings (a certificate, a CA, ``force``) the TLS side is built here, so
    that a bad file stops frps at start-up.  Without them, frps makes a self-signed
    certificate (as frp does) when the first TLS client arrives: until then pyOpenSSL
    is not imported, which a frps whose clients do not use TLS never needs.

    @raise TLSConfigError: a TLS file is missing or unusable.
    """
    config: ServerConfig = server.config
    factory: IProtocolFactory = ServerConnectionFactory(server, timeouts.first_message)
    if config.transport.tcp_mux:
        factory = YamuxServerFactory(server, factory, timeouts.first_stream)
    tls = config.transport.tls
    force = tls.force or bool(tls.trusted_ca_file)
    wrapped = factory

    def tls_side() -> IProtocolFactory:
        # lazily: pyOpenSSL and the TLS transport are imported only when TLS is used
        from frptx.transport.tls_context import server_context_factory
        from frptx.transport.tls_server import server_tls_factory

        context = server_context_factory(cert_file=tls.cert_file, key_file=tls.key_file,
                                         trusted_ca_file=tls.trusted_ca_file)
        return server_tls_factory(context, wrapped, reactor)

    tls_factory: IProtocolFactory
    if force or tls.cert_file or tls.key_file:
        tls_factory = tls_side()
    else:
        tls_factory = FactoryOnFirstUse(tls_side)
    return TrackedSniffingFactory(server, factory, tls_factory, force=force, reactor=reactor,
                                  sniff_timeout=timeouts.sniff, extra_rules=shared)
