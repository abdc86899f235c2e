# -*- test-case-name: frptx.test.test_e2e -*-
"""Factories for frps's bind port.

The stack on one accepted TCP connection is built outside in, so each layer only
knows the one below it::

    TLSSniffingFactory (plain / 0x17+TLS / 0x16 TLS)      transport.tls
      -> YamuxProtocol, one ServerConnectionProtocol per stream   transport.tcpMux
         or ServerConnectionProtocol directly
"""
from __future__ import annotations

from typing import Any

from twisted.internet.protocol import Factory, Protocol

from frptx.config import ServerConfig
from frptx.protocols.server import ServerConnectionProtocol
from frptx.server.registry import FrpServer


class ServerConnectionFactory(Factory):
    """One ``ServerConnectionProtocol`` per accepted connection or yamux stream."""

    noisy = False

    def __init__(self, server: FrpServer) -> None:
        self.server = server

    def buildProtocol(self, addr: object) -> ServerConnectionProtocol:
        return ServerConnectionProtocol(self.server)


class YamuxServerFactory(Factory):
    """A yamux session per TCP connection; every stream gets a dispatcher."""

    noisy = False

    def __init__(self, server: FrpServer, streams: Factory) -> None:
        self.server = server
        self.streams = streams

    def buildProtocol(self, addr: object) -> Protocol:
        from frptx.mux import YamuxProtocol

        cfg = self.server.config.transport
        return YamuxProtocol(is_client=False, reactor=self.server.reactor, stream_factory=self.streams,
                             keepalive_interval=float(cfg.tcp_mux_keepalive_interval))


def bind_port_factory(server: FrpServer, reactor: Any) -> Factory:
    """The factory for frps's bind port, per ``transport.tcpMux`` and ``transport.tls``."""
    config: ServerConfig = server.config
    factory: Factory = ServerConnectionFactory(server)
    if config.transport.tcp_mux:
        factory = YamuxServerFactory(server, factory)
    from frptx.transport.tls import TLSSniffingFactory, server_context_factory

    tls = config.transport.tls
    context = server_context_factory(cert_file=tls.cert_file, key_file=tls.key_file,
                                     trusted_ca_file=tls.trusted_ca_file)
    return TLSSniffingFactory(factory, context, force=tls.force or bool(tls.trusted_ca_file), reactor=reactor)
