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
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from frptx.client.plugins.base import PluginConfigError
from frptx.transport.certs import TLSConfigError, generate_self_signed, load_certificates, load_private_key
from frptx.transport.tls_server import ServerTLSFactory


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
    options = CertificateOptions(
        privateKey=PKey.from_cryptography_key(key),
        certificate=X509.from_cryptography(certs[0]),
        extraCertChain=[X509.from_cryptography(c) for c in certs[1:]],
        acceptableProtocols=alpn,
    )
    try:
        context = options.getContext()  # built (and cached) now, so a bad pair fails at config time
    except SSL.Error as e:
        raise PluginConfigError(f"{prefix}.keyPath", f"certificate and key do not match: {e}") from e
    if not alpn:
        # Without an ALPN list, ignore the client's offer as Go's server does: Twisted's
        # own callback answers an empty choice, which current OpenSSL turns into an
        # "internal error" alert for any client that offers ALPN (curl always does).
        context.set_alpn_select_callback(_no_alpn)
    return options


def _no_alpn(connection: SSL.Connection, offered: list[bytes]) -> Any:
    return SSL.NO_OVERLAPPING_PROTOCOLS


def tls_server_factory(options: CertificateOptions, wrapped: IProtocolFactory, reactor: Any) -> ServerTLSFactory:
    """Terminate TLS on each work connection, then run ``wrapped`` on the plaintext.

    frptx's server TLS layer, not Twisted's bare one: it half-closes with a
    close_notify (Twisted's would hand a relay the *TCP* half-close, a bare FIN
    under the TLS stream that the client reports as a truncation).
    """
    return ServerTLSFactory(TLSMemoryBIOFactory(options, False, wrapped, clock=reactor), wrapped)


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
