# -*- test-case-name: frptx.test.test_tls -*-
"""
frps's bind port: plain frp and TLS frp on one port.

frpc with TLS writes the single byte C{0x17} on the raw socket before its
ClientHello unless C{disableCustomTLSFirstByte}; frps therefore looks at the
first byte of every accepted connection: C{0x17} means "TLS follows" (the
byte is dropped), C{0x16} is a raw ClientHello (kept, frp v0.38+), anything
else is plain frp -- unless the server is TLS-only (C{transport.tls.force},
or C{trustedCaFile}).  Those are three rules of the generic first-bytes
dispatcher, L{frptx.transport.sniff}.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.interfaces import (
    IAddress,
    ILoggingContext,
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
    IReactorTime,
    ISSLTransport,
)
from twisted.internet.protocol import Factory
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from frptx import logs
from frptx.transport.sniff import FirstBytesFactory, FirstBytesProtocol, Rule, first_bytes_are
from frptx.transport.tls_context import CUSTOM_TLS_FIRST_BYTE, RAW_TLS_FIRST_BYTE
from frptx.transport.tls_transport import HalfCloseableTLSTransport

#: bytes the bind port reads at most before deciding when a vhost shares it (a whole ClientHello)
SHARED_PORT_MAX_BYTES = 64 * 1024

__all__ = ["ServerTLSFactory", "ServerTLSProtocol", "TLSSniffingFactory"]


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


class TLSSniffingFactory(FirstBytesFactory):
    """
    frps bind-port factory: accept plain and TLS frp connections on one port.

    @ivar wrappedFactory: the frps factory every connection ends up in.
    @ivar force: refuse connections that do not start with a TLS byte
        (C{transport.tls.force}); forced on when C{context_factory} requires
        client certificates (frps C{trustedCaFile}).
    @ivar reactor: clock for the first-byte timeout (and TLS write batching).
    @ivar tls_factory: holds the TLS settings for the per-connection
        L{TLSMemoryBIOProtocol}s; never used to build protocols itself.
    """

    _log = logs.logger(__name__)
    log_prefix = "TLSSniffer"

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
        # frp: trustedCaFile on frps implies tls.force.  A server context
        # that verifies peers (CertificateOptions.verify, set by
        # server_context_factory's trustRoot) requires client certificates,
        # and a plain connection could never satisfy that.
        self.force = force or bool(getattr(context_factory, "verify", False))
        self.wrappedFactory = wrapped_factory
        self.reactor = reactor
        self.sniff_timeout = sniff_timeout
        self.tls_factory = TLSMemoryBIOFactory(context_factory, False, wrapped_factory, clock=reactor)
        tls = ServerTLSFactory(self.tls_factory, wrapped_factory)
        # a vhost sharing this port (frps' vhostHTTPPort/vhostHTTPSPort == bindPort) comes first:
        # an HTTP method or a ClientHello naming one of its domains; frp's own traffic never starts so
        rules = [
            *extra_rules,
            Rule(first_bytes_are(CUSTOM_TLS_FIRST_BYTE), tls, skip=1, name="TLS"),
            Rule(first_bytes_are(RAW_TLS_FIRST_BYTE), tls, name="TLS"),
        ]
        if not self.force:
            rules.append(Rule(_anything, wrapped_factory, name="plain"))
        # a ClientHello is read whole before an SNI rule decides; otherwise one byte tells
        max_bytes = SHARED_PORT_MAX_BYTES if extra_rules else 1
        super().__init__(rules, clock=reactor, timeout=sniff_timeout, max_bytes=max_bytes,
                         started=[wrapped_factory, *(rule.factory for rule in extra_rules)])

    def unmatched(self, protocol: FirstBytesProtocol, data: bytes) -> None:
        logs.throttle.warn(
            self._log, "non-TLS on TLS-only",
            "non-TLS connection received on a TLS-only server from {peer}",
            peer=protocol.transport.getPeer(),  # type: ignore[union-attr]
        )

    def logPrefix(self) -> str:
        if ILoggingContext.providedBy(self.wrappedFactory):
            return f"{self.wrappedFactory.logPrefix()} (TLS sniffing)"
        return f"{self.wrappedFactory.__class__.__name__} (TLS sniffing)"


def _anything(data: bytes) -> bool:
    return True
