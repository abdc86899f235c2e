# -*- test-case-name: frptx.test.test_tls -*-
"""
Certificate helpers for the frp TLS layer: the throw-away self-signed frps
certificate and PEM loading with error messages that name the config option.

Kept apart from L{frptx.transport.tls_context} so that the Twisted wiring there does
not drown in X.509 details, and so tests can build CAs with the same code.
"""

from __future__ import annotations

import datetime
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # cryptography's X.509 layer (~1.5 MiB) is imported by the functions that use it:
    # TLSConfigError is needed by every frps, X.509 only by one that meets TLS
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

__all__ = [
    "TLSConfigError",
    "generate_self_signed",
    "load_certificates",
    "load_private_key",
]


class TLSConfigError(ValueError):
    """
    A TLS option points at a file that cannot be used.

    A L{ValueError} so that configuration code can report it like any other
    bad value; the message names the option and the file, because "no start
    line" from OpenSSL alone does not tell the user which of three files is
    wrong.
    """


def _random_serial() -> int:
    """
    A positive serial with 128 random bits, like Go frp's
    C{rand.Int(rand.Reader, 1<<128)} (zero is not allowed by RFC 5280).
    """
    while True:
        serial = int.from_bytes(os.urandom(16), "big")
        if serial:
            return serial


def generate_self_signed(common_name: str = "frps") -> tuple[bytes, bytes]:
    """
    Create the certificate frps uses when the operator configured none.

    Like frp, a fresh key and certificate at every start-up, valid from one
    hour ago (tolerating clock skew) for ten years.  Nobody can verify it --
    frpc does not verify by default -- it only exists so that the TLS
    handshake has something to present.  frp makes an RSA-2048 key; frptx
    makes an ECDSA P-256 one (as strong, and its signatures cost a fraction
    of RSA's, which every work-connection handshake pays without tcpMux).

    @return: C{(certificate PEM, private key PEM)}; the key is unencrypted
        PKCS#8.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_random_serial())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _read(path: str, option: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TLSConfigError(f"cannot read {option} {path!r}: {e.strerror or e}") from e


def load_certificates(path: str, option: str) -> list[x509.Certificate]:
    """
    Read every PEM certificate in C{path}.

    A certificate file may carry intermediates after the leaf, and a CA file
    may hold several roots; Go's C{AppendCertsFromPEM} and
    C{tls.LoadX509KeyPair} accept both, so we do too.

    @param option: the config key, for the error message.
    @raise TLSConfigError: unreadable file or no certificate in it.
    """
    from cryptography import x509

    data = _read(path, option)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise TLSConfigError(f"{option} {path!r} holds no usable PEM certificate: {e}") from e
    if not certs:
        raise TLSConfigError(f"{option} {path!r} holds no PEM certificate")
    return certs


def load_private_key(path: str, option: str) -> PrivateKeyTypes:
    """
    Read an unencrypted PEM private key (PKCS#1, PKCS#8 or SEC1), as Go's
    C{tls.LoadX509KeyPair} does.

    @raise TLSConfigError: unreadable file or not an unencrypted key.
    """
    from cryptography.hazmat.primitives import serialization

    data = _read(path, option)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise TLSConfigError(f"{option} {path!r} holds no usable unencrypted PEM private key: {e}") from e
