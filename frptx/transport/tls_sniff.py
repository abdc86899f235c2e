# -*- test-case-name: frptx.test.test_tls -*-
"""
frps's bind port: plain frp and TLS frp on one port -- without pyOpenSSL until
a TLS client comes.

frpc with TLS writes the single byte C{0x17} on the raw socket before its
ClientHello unless C{disableCustomTLSFirstByte}; frps therefore looks at the
first byte of every accepted connection: C{0x17} means "TLS follows" (the
byte is dropped), C{0x16} is a raw ClientHello (kept, frp v0.38+), anything
else is plain frp -- unless the server is TLS-only (C{transport.tls.force},
or C{trustedCaFile}).  Those are three rules of the generic first-bytes
dispatcher, L{frptx.transport.sniff}, in L{PlainOrTLSFactory}.

L{PlainOrTLSFactory} takes the TLS side as any factory and imports nothing of
TLS itself.  frps with TLS settings builds that side at start-up (so that a bad
certificate stops it there: L{frptx.transport.tls_server.TLSSniffingFactory});
frps without them gets a self-signed certificate, which frp makes at start-up and
frptx makes when the first TLS client arrives (L{FactoryOnFirstUse}): a frps
whose clients do not use TLS never loads pyOpenSSL, about 6 MiB of RSS (see
L{frptx.transport.internals_reactor}).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from twisted.internet.interfaces import IAddress, ILoggingContext, IProtocol, IProtocolFactory, IReactorTime
from zope.interface import implementer

from frptx import logs
from frptx.transport.sniff import FirstBytesFactory, FirstBytesProtocol, Rule, first_bytes_are

__all__ = [
    "CUSTOM_TLS_FIRST_BYTE",
    "RAW_TLS_FIRST_BYTE",
    "SHARED_PORT_MAX_BYTES",
    "FactoryOnFirstUse",
    "PlainOrTLSFactory",
]

#: frpc's marker byte announcing "TLS follows" (golib C{FRPTLSHeadByte}).
CUSTOM_TLS_FIRST_BYTE = b"\x17"
#: First byte of any TLS handshake record, i.e. a raw ClientHello.
RAW_TLS_FIRST_BYTE = b"\x16"
#: bytes the bind port reads at most before deciding when a vhost shares it (a whole ClientHello)
SHARED_PORT_MAX_BYTES = 64 * 1024


class PlainOrTLSFactory(FirstBytesFactory):
    """
    frps bind-port factory: accept plain and TLS frp connections on one port.

    @ivar wrappedFactory: the frps factory every connection ends up in.
    @ivar tls: builds the protocol of a TLS connection (a TLS layer around a
        protocol of C{wrappedFactory}).
    @ivar force: refuse connections that do not start with a TLS byte
        (C{transport.tls.force}, or client certificates required).
    @ivar reactor: clock for the first-byte timeout (and TLS write batching).
    """

    _log = logs.logger(__name__)
    log_prefix = "TLSSniffer"

    def __init__(
        self,
        wrapped_factory: IProtocolFactory,
        tls: IProtocolFactory,
        *,
        force: bool,
        reactor: IReactorTime,
        sniff_timeout: float = 10.0,
        extra_rules: Sequence[Rule] = (),
    ) -> None:
        self.force = force
        self.wrappedFactory = wrapped_factory
        self.tls = tls
        self.reactor = reactor
        self.sniff_timeout = sniff_timeout
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


@implementer(IProtocolFactory)
class FactoryOnFirstUse:
    """
    A factory that C{make()} builds when the first connection needs it.

    For frps's TLS side without TLS settings: importing pyOpenSSL and making the
    self-signed certificate waits for the first TLS client.  Not started or
    stopped by the port (L{PlainOrTLSFactory} starts only the plain side).

    @ivar factory: the factory once made, else L{None}.
    """

    def __init__(self, make: Callable[[], IProtocolFactory]) -> None:
        self._make = make
        self.factory: IProtocolFactory | None = None

    def buildProtocol(self, addr: IAddress) -> IProtocol | None:
        if self.factory is None:
            self.factory = self._make()
        return self.factory.buildProtocol(addr)

    def doStart(self) -> None:
        pass

    def doStop(self) -> None:
        pass


def _anything(data: bytes) -> bool:
    return True
