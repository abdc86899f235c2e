# -*- test-case-name: frptx.test.test_plugin_https -*-
"""TLS for the plugins: the server side on the work connection, the client side to backends.

frp's ``NewServerTLSConfig(crtPath, keyPath, "")``: unless *both* paths are
set, a fresh self-signed certificate is made when the plugin is created.
Backends reached over HTTPS are not verified (Go: ``InsecureSkipVerify``),
but get SNI with their host name as Go's transport sends it.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from OpenSSL import SSL
from OpenSSL.crypto import X509, PKey
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IProtocolFactory
from twisted.internet.ssl import CertificateOptions
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from zope.interface import implementer

from frptx.client.plugins.base import PluginConfigError
from frptx.transport.certs import TLSConfigError, generate_self_signed, load_certificates, load_private_key


class _ServerOptions(CertificateOptions):
    """Without an ALPN list, ignore the client's offer instead of failing the handshake.

    Twisted's ALPN callback answers an empty choice when it has nothing to
    offer, which current OpenSSL turns into an "internal error" alert for any
    client that offers ALPN (curl always does); Go's server simply does not
    negotiate, which ``NO_OVERLAPPING_PROTOCOLS`` reproduces.
    """

    def _makeContext(self, *args: Any, **kwargs: Any) -> SSL.Context:
        context = super()._makeContext(*args, **kwargs)
        if not self._acceptableProtocols:
            context.set_alpn_select_callback(lambda connection, offered: SSL.NO_OVERLAPPING_PROTOCOLS)
        return context


def server_options(crt_path: str, key_path: str, prefix: str,
                   alpn: list[bytes] | None = None) -> CertificateOptions:
    """The certificate the work connection's TLS server presents, with ``alpn`` offered."""
    try:
        if crt_path and key_path:
            certs = load_certificates(crt_path, f"{prefix}.crtPath")
            key: Any = load_private_key(key_path, f"{prefix}.keyPath")
        else:
            cert_pem, key_pem = generate_self_signed("frp")
            certs = [x509.load_pem_x509_certificate(cert_pem)]
            key = load_pem_private_key(key_pem, None)
    except TLSConfigError as e:
        raise PluginConfigError(f"{prefix}.crtPath", str(e)) from e
    options = _ServerOptions(
        privateKey=PKey.from_cryptography_key(key),
        certificate=X509.from_cryptography(certs[0]),
        extraCertChain=[X509.from_cryptography(c) for c in certs[1:]],
        acceptableProtocols=alpn,
    )
    try:
        options.getContext()
    except SSL.Error as e:
        raise PluginConfigError(f"{prefix}.keyPath", f"certificate and key do not match: {e}") from e
    return options


class _WholeCloseTLSProtocol(TLSMemoryBIOProtocol):
    """Twisted's TLS layer, without the *TCP* half-close it would otherwise expose.

    ``ProtocolWrapper.__getattr__`` hands out the TCP transport's
    ``loseWriteConnection``, so a relay that half-closes "the TLS transport"
    would send a bare FIN under the TLS stream, which the client reports as a
    truncation.  With the attribute hidden the relay closes the whole
    connection instead (after flushing), and the client gets a close_notify.
    """

    loseWriteConnection = None


class _WholeCloseTLSFactory(TLSMemoryBIOFactory):
    protocol = _WholeCloseTLSProtocol


def tls_server_factory(options: CertificateOptions, wrapped: IProtocolFactory, reactor: Any) -> TLSMemoryBIOFactory:
    """Terminate TLS on each work connection, then run ``wrapped`` on the plaintext."""
    return _WholeCloseTLSFactory(options, False, wrapped, clock=reactor)


@implementer(IOpenSSLClientConnectionCreator)
class InsecureClientCreator:
    """TLS to a backend without verification (Go's ``InsecureSkipVerify: true``), with SNI."""

    def __init__(self, host: str) -> None:
        self._context = CertificateOptions(verify=False).getContext()
        try:
            ipaddress.ip_address(host)
            self._sni: bytes | None = None
        except ValueError:
            self._sni = host.encode("idna") if host else None

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        connection.set_app_data(tlsProtocol)
        if self._sni:
            connection.set_tlsext_host_name(self._sni)
        connection.set_connect_state()
        return connection
