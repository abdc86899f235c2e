# -*- test-case-name: frptx.test.test_tls -*-
"""
frpc's TLS layer: optionally frp's C{0x17} marker byte, then a TLS client
with half-close (L{frptx.transport.tls_transport}).

frpc with TLS writes C{0x17} on the raw socket before its ClientHello unless
C{disableCustomTLSFirstByte}; frps reads it to tell TLS from plain frp (see
L{frptx.transport.tls_server}).
"""

from __future__ import annotations

from twisted.internet.interfaces import (
    IAddress,
    IOpenSSLClientConnectionCreator,
    IProtocolFactory,
    IReactorTime,
    ISSLTransport,
    ITransport,
)
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from frptx.transport.tls_context import CUSTOM_TLS_FIRST_BYTE
from frptx.transport.tls_transport import HalfCloseableTLSTransport

__all__ = ["wrap_client_factory"]


@implementer(ISSLTransport)
class _ClientTLSProtocol(HalfCloseableTLSTransport):
    """
    frpc's TLS layer: optionally the marker byte, then the TLS client.
    """

    factory: _ClientTLSFactory

    def makeConnection(self, transport: ITransport) -> None:
        # Written straight to the socket before TLSMemoryBIOProtocol produces
        # the ClientHello, so it is guaranteed to be the first byte on the wire.
        if self.factory.custom_first_byte:
            transport.write(CUSTOM_TLS_FIRST_BYTE)
        super().makeConnection(transport)


class _ClientTLSFactory(TLSMemoryBIOFactory):
    """
    TLS client factory for C{connectTCP} or an endpoint; L{WrappingFactory}
    forwards the C{ClientFactory} callbacks to the wrapped factory.
    """

    protocol = _ClientTLSProtocol

    def __init__(
        self,
        creator: IOpenSSLClientConnectionCreator,
        wrapped_factory: IProtocolFactory,
        custom_first_byte: bool,
        clock: IReactorTime | None,
    ) -> None:
        super().__init__(creator, True, wrapped_factory, clock=clock)
        self.custom_first_byte = custom_first_byte

    def buildProtocol(self, addr: IAddress | None) -> _ClientTLSProtocol | None:  # type: ignore[override]
        inner = self.wrappedFactory.buildProtocol(addr)
        if inner is None:
            return None
        return _ClientTLSProtocol(self, inner)


def wrap_client_factory(
    factory: IProtocolFactory,
    creator: IOpenSSLClientConnectionCreator,
    *,
    custom_first_byte: bool,
    clock: IReactorTime | None = None,
) -> IProtocolFactory:
    """
    Put frp's client TLS layer around C{factory} for C{reactor.connectTCP}
    (or an endpoint's C{connect}).

    @param custom_first_byte: send C{0x17} first (C{not
        disableCustomTLSFirstByte}); required when frps shares its port with
        the HTTPS vhost, and by frps older than v0.38.
    @param clock: for TLS write batching; the global reactor if L{None}.
    """
    return _ClientTLSFactory(creator, factory, custom_first_byte, clock)
