# -*- test-case-name: frptx.test.test_tls -*-
"""
frps's bind port, TLS side: the TLS layer under the frp protocols, and the
plain-or-TLS dispatcher (L{frptx.transport.tls_sniff}) with that side made at
once from a context factory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.interfaces import (
    IAddress,
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
    IReactorTime,
    ISSLTransport,
)
from twisted.internet.protocol import Factory
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from frptx.transport.sniff import Rule
from frptx.transport.tls_sniff import SHARED_PORT_MAX_BYTES, PlainOrTLSFactory
from frptx.transport.tls_transport import HalfCloseableTLSTransport

__all__ = ["SHARED_PORT_MAX_BYTES", "ServerTLSFactory", "ServerTLSProtocol", "TLSSniffingFactory",
           "server_tls_factory"]


@implementer(ISSLTransport)
class ServerTLSProtocol(HalfCloseableTLSTransport):
    """
    TLS server layer under the dispatcher; declares L{ISSLTransport} so the
    application can tell a TLS connection from a plain one.
    """


class ServerTLSFactory(Factory):
    """
    Builds a L{ServerTLSProtocol} around each protocol of C{wrapped}.

    @ivar tls_factory: holds the TLS settings (and the clock) for the
        per-connection protocols; never used to build protocols itself.
    """

    noisy = False

    def __init__(self, tls_factory: TLSMemoryBIOFactory, wrapped: IProtocolFactory) -> None:
        self.tls_factory = tls_factory
        self.wrapped = wrapped

    def buildProtocol(self, addr: IAddress) -> ServerTLSProtocol | None:  # type: ignore[override]
        inner = self.wrapped.buildProtocol(addr)
        if inner is None:
            return None
        return ServerTLSProtocol(self.tls_factory, inner)


class TLSSniffingFactory(PlainOrTLSFactory):
    """
    frps bind-port factory with its TLS side made at once from C{context_factory}.

    @ivar tls_factory: holds the TLS settings for the per-connection
        L{TLSMemoryBIOProtocol}s; never used to build protocols itself.
    """

    def __init__(
        self,
        wrapped_factory: IProtocolFactory,
        context_factory: IOpenSSLServerConnectionCreator | Any,
        *,
        force: bool,
        reactor: IReactorTime,
        sniff_timeout: float = 10.0,
        extra_rules: Sequence[Rule] = (),
    ) -> None:
        self.tls_factory = TLSMemoryBIOFactory(context_factory, False, wrapped_factory, clock=reactor)
        # frp: trustedCaFile on frps implies tls.force.  A server context
        # that verifies peers (CertificateOptions.verify, set by
        # server_context_factory's trustRoot) requires client certificates,
        # and a plain connection could never satisfy that.
        super().__init__(wrapped_factory, ServerTLSFactory(self.tls_factory, wrapped_factory),
                         force=force or bool(getattr(context_factory, "verify", False)), reactor=reactor,
                         sniff_timeout=sniff_timeout, extra_rules=extra_rules)


def server_tls_factory(context_factory: IOpenSSLServerConnectionCreator | Any, wrapped: IProtocolFactory,
                       reactor: IReactorTime) -> ServerTLSFactory:
    """The TLS side of frps's bind port: a L{ServerTLSProtocol} around each protocol of C{wrapped}."""
    return ServerTLSFactory(TLSMemoryBIOFactory(context_factory, False, wrapped, clock=reactor), wrapped)
