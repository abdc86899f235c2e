# -*- test-case-name: frptx.test.test_tls -*-
"""
frp's TLS settings: certificates, verification, OpenSSL contexts and the
errors a user can act on.

Wire facts this module exists for (see docs/frp-protocol.md §1.3):

 - frpc does not verify frps by default (Go's C{InsecureSkipVerify}); with
   C{trustedCaFile} it verifies the chain and the name (C{serverName}, else
   C{serverAddr}).  SNI carries that name but never an IP literal.
 - frps without a configured certificate makes a self-signed one at start-up.
 - frps with C{trustedCaFile} requires client certificates (mTLS) and is
   TLS-only.

The transports that use these settings: L{frptx.transport.tls_transport}
(half-close), L{frptx.transport.tls_client} (frpc), L{frptx.transport.tls_server}
(frps's bind port, behind the first-byte dispatcher of L{frptx.transport.sniff}).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from cryptography import x509
from OpenSSL import SSL
from OpenSSL.crypto import X509, PKey
from service_identity import VerificationError
from service_identity.cryptography import extract_patterns
from service_identity.hazmat import (
    DNS_ID,
    IPAddress_ID,
    ServiceID,
    verify_service_identity,
)
from twisted.internet import error as ierror
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    trustRootFromCertificates,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from frptx import logs
from frptx.transport.certs import (
    TLSConfigError,
    generate_self_signed,
    load_certificates,
    load_private_key,
)
from frptx.transport.internals import x509_error_string
from frptx.transport.tls_sniff import CUSTOM_TLS_FIRST_BYTE, RAW_TLS_FIRST_BYTE

__all__ = [
    "CUSTOM_TLS_FIRST_BYTE",
    "INSECURE_WARNING",
    "RAW_TLS_FIRST_BYTE",
    "CertificateNameMismatch",
    "CertificateVerifyError",
    "TLSConfigError",
    "TLSVerificationError",
    "client_connection_creator",
    "describe_tls_error",
    "generate_self_signed",
    "server_context_factory",
]


#: The warning frpc logs once when TLS is on without C{trustedCaFile}.
INSECURE_WARNING = (
    "TLS is enabled but transport.tls.trustedCaFile is not set: the frps "
    "certificate is NOT verified, so the connection is encrypted but not "
    "authenticated (anyone in the path can impersonate frps); set "
    "transport.tls.trustedCaFile (and serverName) to verify it"
)

_log = logs.logger(__name__)


# -- errors -----------------------------------------------------------------


class TLSVerificationError(Exception):
    """
    frpc rejected the frps certificate.

    Delivered to the application protocol's C{connectionLost} instead of
    OpenSSL's bare "certificate verify failed", which does not say I{why}.
    """


class CertificateVerifyError(TLSVerificationError):
    """
    The certificate chain did not verify against C{trustedCaFile}.

    @ivar code: the OpenSSL C{X509_V_ERR_*} number.
    @ivar depth: position in the chain (0 = the frps certificate itself).
    @ivar subject: the offending certificate's subject, for the log.
    """

    def __init__(self, code: int, depth: int, subject: str) -> None:
        self.code = code
        self.depth = depth
        self.subject = subject
        super().__init__(f"{_x509_error_text(code)} (depth {depth}, subject {subject!r})")


class CertificateNameMismatch(TLSVerificationError):
    """
    The chain is trusted but the certificate is for another name.

    @ivar expected: the name we checked (C{serverName} or C{serverAddr}).
    """

    def __init__(self, expected: str, detail: str) -> None:
        self.expected = expected
        self.detail = detail
        super().__init__(f"certificate does not match {expected!r}: {detail}")


# OpenSSL X509_V_ERR_* numbers we explain to users (stable across 1.1 – 4.0).
_X509_UNTRUSTED = {
    2: "unable to get issuer certificate",
    7: "certificate signature failure",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    24: "invalid CA certificate",
}
_X509_EXPIRED = 10
_X509_NOT_YET_VALID = 9
_X509_NAME_MISMATCH = {62, 64}  # HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH
_X509_WEAK = {66: "key too small", 67: "CA key too small", 68: "CA signature digest too weak"}


def _x509_error_text(code: int) -> str:
    """
    OpenSSL's own text for a verify error number.

    pyOpenSSL exposes no public call for this, so use its binding if it is
    there (L{frptx.transport.internals.x509_error_string}) and fall back to
    our table / the bare number.
    """
    text = x509_error_string(code)
    if text is not None:
        return text
    known = {**_X509_UNTRUSTED, **_X509_WEAK, 9: "certificate is not yet valid", 10: "certificate has expired"}
    return known.get(code, f"X509 verify error {code}")


# -- certificates and connection creators ------------------------------------


def _host_literal(host: str) -> str:
    """C{"[::1]"} -> C{"::1"}: config values may carry URL-style brackets."""
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _load_key_pair(cert_file: str, key_file: str, prefix: str) -> tuple[X509, PKey, list[X509]]:
    """Leaf certificate, key and extra chain from PEM files, as pyOpenSSL objects."""
    if bool(cert_file) != bool(key_file):
        raise TLSConfigError(f"{prefix}.certFile and {prefix}.keyFile must be set together")
    certs = load_certificates(cert_file, f"{prefix}.certFile")
    key = load_private_key(key_file, f"{prefix}.keyFile")
    return (
        X509.from_cryptography(certs[0]),
        PKey.from_cryptography_key(key),  # type: ignore[arg-type]
        [X509.from_cryptography(c) for c in certs[1:]],
    )


def _trust_root(trusted_ca_file: str, prefix: str) -> Any:
    """Every CA in C{trusted_ca_file} (Go: C{AppendCertsFromPEM})."""
    cas = load_certificates(trusted_ca_file, f"{prefix}.trustedCaFile")
    return trustRootFromCertificates([Certificate(X509.from_cryptography(c)) for c in cas])


def server_context_factory(
    *, cert_file: str = "", key_file: str = "", trusted_ca_file: str = ""
) -> CertificateOptions:
    """
    TLS settings for frps connections.

    Without C{cert_file}/C{key_file} a fresh self-signed certificate is made
    here, once, like frp does at start-up.  With C{trusted_ca_file} the
    client must present a certificate signed by one of those CAs (the caller
    must then also run the sniffer with C{force=True}, as frp implies
    C{tls.force}).

    @raise TLSConfigError: a file is missing or unusable.
    """
    extra: list[X509] = []
    if cert_file or key_file:
        cert, key, extra = _load_key_pair(cert_file, key_file, "transport.tls")
    else:
        cert_pem, key_pem = generate_self_signed()
        cert = X509.from_cryptography(x509.load_pem_x509_certificate(cert_pem))
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        key = PKey.from_cryptography_key(load_pem_private_key(key_pem, None))  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {"privateKey": key, "certificate": cert, "extraCertChain": extra}
    if trusted_ca_file:
        # trustRoot implies verify=True and requireCertificate=True, i.e.
        # Go's RequireAndVerifyClientCert.
        kwargs["trustRoot"] = _trust_root(trusted_ca_file, "transport.tls")
    # Session tickets let frpc resume instead of a full handshake per work connection
    # (Go's crypto/tls server issues them too).
    options = CertificateOptions(enableSessionTickets=True, **kwargs)
    _build_context_now(options, "transport.tls.certFile/keyFile")
    _prefer_aes128(options.getContext())
    return options


#: TLS 1.3 suites, fastest first: AES-128-GCM is what Go's crypto/tls picks on
#: hardware with AES instructions; OpenSSL would otherwise pick AES-256-GCM, about
#: 10% more CPU per byte through pyOpenSSL for no practical gain in strength.
TLS13_CIPHERSUITES = b"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"


def _prefer_aes128(context: SSL.Context) -> None:
    setter = getattr(context, "set_tls13_ciphersuites", None)
    if setter is not None:
        setter(TLS13_CIPHERSUITES)


def _build_context_now(options: CertificateOptions, what: str) -> None:
    """
    Make the OpenSSL context at configuration time.

    Twisted builds it lazily, on the first connection, so a key that does
    not match its certificate (or one OpenSSL finds too weak) would only
    show up as every connection failing.
    """
    try:
        options.getContext()
    except SSL.Error as e:
        raise TLSConfigError(f"{what} rejected by OpenSSL: {'; '.join(_openssl_reasons(e))}") from e


class _VerifyOnce:
    """
    Per-connection verify callback: chain errors and name mismatches become
    L{TLSVerificationError}s on the TLS protocol via C{failVerification}.

    OpenSSL only says "certificate verify failed"; the X509 error number
    (expired? unknown issuer?) is only visible in this callback, so we turn
    it into the failure the application sees.  Same mechanism as Twisted's
    own C{ClientTLSOptions} uses for name checks.
    """

    def __init__(self, tls_protocol: Any, expected: ServiceID, expected_text: str) -> None:
        self._protocol = tls_protocol
        self._expected = expected
        self._expected_text = expected_text
        self._failed = False

    def __call__(self, conn: SSL.Connection, cert: X509, errno: int, depth: int, ok: int) -> bool:
        if self._failed:
            return False
        try:
            reason: TLSVerificationError | None = None
            if not ok:
                subject = cert.to_cryptography().subject.rfc4514_string()
                reason = CertificateVerifyError(errno, depth, subject)
            elif depth == 0:
                patterns = extract_patterns(cert.to_cryptography())
                try:
                    verify_service_identity(patterns, [self._expected], [])
                except VerificationError:
                    reason = CertificateNameMismatch(self._expected_text, _describe_patterns(patterns))
            if reason is None:
                if depth == 0:
                    self._protocol = None  # done; break the reference cycle
                return True
            self._failed = True
            protocol, self._protocol = self._protocol, None
            if protocol is not None:
                protocol.failVerification(Failure(reason))
            return False
        except BaseException:
            # Exceptions escaping an OpenSSL callback get lost; log and refuse.
            _log.failure("while verifying the frps certificate")
            self._failed = True
            return False


def _describe_patterns(patterns: Any) -> str:
    """What names a certificate is valid for, for the mismatch message."""
    names = []
    for p in patterns:
        value = getattr(p, "pattern", p)
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        names.append(str(value))
    if not names:
        return "the certificate has no subjectAltName (Go and frptx ignore the CN)"
    return "the certificate is valid for " + ", ".join(names)


def _sni_bytes(name: str) -> bytes | None:
    """
    The SNI value for C{name}, or L{None} when it cannot be sent (Go sends
    whatever C{serverName} is; an unencodable name is simply left out
    rather than failing every connection).
    """
    try:
        return name.encode("idna")
    except UnicodeError:
        try:
            return name.encode("ascii")
        except UnicodeError:
            return None


@implementer(IOpenSSLClientConnectionCreator)
class _FrpcConnectionCreator:
    """
    Makes frpc's client connections: SNI only for DNS names, verification
    only when a trust root was configured.

    Twisted's C{optionsForClientTLS} always verifies, so it cannot express
    frp's default (no verification at all); this covers both cases with one
    code path.
    """

    def __init__(
        self, options: CertificateOptions, sni: str | None, expected: ServiceID | None, expected_text: str
    ) -> None:
        self._context = options.getContext()
        _prefer_aes128(self._context)
        self._previous: SSL.Connection | None = None
        self._sni = _sni_bytes(sni) if sni else None
        self._expected = expected
        self._expected_text = expected_text

    @property
    def verifies(self) -> bool:
        """Whether the frps certificate is checked (C{trustedCaFile} given)."""
        return self._expected is not None

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        conn = SSL.Connection(self._context, None)
        if self._sni:
            conn.set_tlsext_host_name(self._sni)
        # Resume the session of the previous connection: without tcpMux every work
        # connection is a TLS handshake, and a resumed one skips the certificate and
        # its signature.  (A session without a ticket yet is simply not offered.)
        previous, self._previous = self._previous, conn
        session = previous.get_session() if previous is not None else None
        if session is not None:
            conn.set_session(session)
        if self._expected is not None:
            conn.set_verify(
                SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                _VerifyOnce(tlsProtocol, self._expected, self._expected_text),
            )
        return conn


def client_connection_creator(
    *,
    server_addr: str,
    server_name: str = "",
    cert_file: str = "",
    key_file: str = "",
    trusted_ca_file: str = "",
) -> IOpenSSLClientConnectionCreator:
    """
    TLS settings for frpc's connections to frps.

    @param server_addr: C{serverAddr}; the fallback name for SNI and
        verification.
    @param server_name: C{transport.tls.serverName}.
    @param cert_file: client certificate (mTLS), with C{key_file}.
    @param trusted_ca_file: verify frps against these CAs and the name;
        without it nothing is verified (log L{INSECURE_WARNING}).

    @raise TLSConfigError: a file is missing or unusable.
    """
    name = _host_literal(server_name or server_addr)
    kwargs: dict[str, Any] = {}
    if cert_file or key_file:
        cert, key, extra = _load_key_pair(cert_file, key_file, "transport.tls")
        kwargs.update(privateKey=key, certificate=cert, extraCertChain=extra)
    expected: ServiceID | None = None
    if trusted_ca_file:
        kwargs["trustRoot"] = _trust_root(trusted_ca_file, "transport.tls")
        try:
            expected = IPAddress_ID(name) if _is_ip(name) else DNS_ID(name)
        except ValueError as e:
            raise TLSConfigError(
                f"cannot verify frps as {name!r} (transport.tls.serverName / serverAddr): {e}"
            ) from e
    options = CertificateOptions(enableSessionTickets=True, **kwargs)
    sni = None if (not name or _is_ip(name)) else name
    return _FrpcConnectionCreator(options, sni, expected, name)


# -- error descriptions --------------------------------------------------------

_PLAIN_PEER_REASONS = (
    "wrong version number",
    "packet length too long",
    "http request",
    "https proxy request",
    "unknown protocol",
    "record layer failure",
    "record too long",
    "unexpected message",
    "unexpected record",
    "bad record type",
    "length too short",
    "bad packet length",
    "invalid alert",
)


def _openssl_reasons(exc: BaseException) -> list[str]:
    """The reason strings of a pyOpenSSL error, lower-cased."""
    reasons: list[str] = []
    args = exc.args[0] if exc.args else None
    if isinstance(args, list):
        for entry in args:
            if isinstance(entry, tuple) and entry:
                reasons.append(str(entry[-1]).lower())
            else:
                reasons.append(str(entry).lower())
    if not reasons:
        text = str(exc).lower()
        if text:
            reasons.append(text)
    return reasons


def describe_tls_error(failure_or_exception: Failure | BaseException, *, side: str = "client") -> str:
    """
    One line a user can act on for a failed TLS connection.

    OpenSSL's messages ("wrong version number", "tlsv13 alert certificate
    required") describe the symptom on the wire; this names the frp setting
    that is most likely wrong.  Unknown errors fall back to the OpenSSL text.

    @param side: C{"client"} when we are frpc (the peer is frps), C{"server"}
        when we are frps.
    """
    exc = failure_or_exception.value if isinstance(failure_or_exception, Failure) else failure_or_exception
    server = side == "server"
    prefix = "TLS handshake failed: "
    if isinstance(exc, CertificateNameMismatch):
        return f"{prefix}server certificate name mismatch: expected {exc.expected} ({exc.detail})"
    if isinstance(exc, CertificateVerifyError):
        if exc.code == _X509_EXPIRED:
            return f"{prefix}server certificate has expired ({exc.subject})"
        if exc.code == _X509_NOT_YET_VALID:
            return f"{prefix}server certificate is not yet valid (clock skew?) ({exc.subject})"
        if exc.code in _X509_NAME_MISMATCH:
            return f"{prefix}server certificate name mismatch ({exc})"
        if exc.code in _X509_UNTRUSTED:
            return (
                f"{prefix}server certificate not trusted by trustedCaFile (wrong CA?): "
                f"{_x509_error_text(exc.code)} ({exc.subject})"
            )
        if exc.code in _X509_WEAK:
            return f"{prefix}server certificate rejected as too weak: {_x509_error_text(exc.code)}"
        return f"{prefix}server certificate verification failed: {exc}"
    if isinstance(exc, VerificationError):
        # From Twisted's own optionsForClientTLS, if a caller used that.
        names = []
        for mismatch in getattr(exc, "errors", []):
            ident = getattr(mismatch, "mismatched_id", None)
            name = getattr(ident, "hostname", None) or getattr(ident, "ip", None) or mismatch
            names.append(name.decode("ascii", "replace") if isinstance(name, bytes) else str(name))
        return f"{prefix}server certificate name mismatch: expected {', '.join(names) or exc}"
    if isinstance(exc, TLSConfigError):
        return f"TLS configuration error: {exc}"
    if isinstance(exc, SSL.Error):
        reasons = _openssl_reasons(exc)
        joined = "; ".join(reasons) or exc.__class__.__name__

        def has(*needles: str) -> bool:
            return any(n in r for r in reasons for n in needles)

        if has("peer did not return a certificate", "certificate required"):
            if server:
                return (
                    f"{prefix}client presented no certificate, but this frps requires one "
                    "(transport.tls.trustedCaFile is set; frpc needs transport.tls.certFile/keyFile)"
                )
            return (
                f"{prefix}client certificate required by frps (transport.tls.trustedCaFile on frps); "
                "set transport.tls.certFile and keyFile on frpc"
            )
        if has("certificate verify failed"):
            if server:
                return f"{prefix}client certificate not trusted by trustedCaFile (wrong CA?)"
            return f"{prefix}server certificate not trusted by trustedCaFile (wrong CA?)"
        if has("alert unknown ca", "alert bad certificate", "alert certificate unknown", "alert decrypt error"):
            if server:
                return f"{prefix}frpc rejected the frps certificate (not trusted by frpc's trustedCaFile?): {joined}"
            return (
                f"{prefix}frps rejected the client certificate (not signed by frps's "
                f"transport.tls.trustedCaFile?): {joined}"
            )
        if has("alert certificate expired"):
            who = "frps" if server else "client"
            return f"{prefix}the peer says our ({who}) certificate has expired"
        if has("no shared cipher", "alert handshake failure", "alert protocol version",
               "no protocols available", "version too low", "unsupported protocol"):
            return f"{prefix}no TLS version/cipher in common with the peer: {joined}"
        if has(*_PLAIN_PEER_REASONS):
            if server:
                return f"{prefix}peer sent plain text where TLS was expected ({joined})"
            return (
                f"{prefix}server does not speak TLS (is transport.tls.enable set on frpc but "
                f"frps is plain?) ({joined})"
            )
        return f"{prefix}{joined}"
    if isinstance(exc, (ierror.ConnectionDone, ierror.ConnectionLost)):
        how = "cleanly" if isinstance(exc, ierror.ConnectionDone) else "abruptly"
        if server:
            return f"connection closed {how} by the peer"
        return (
            f"connection closed {how} by frps (during the TLS handshake this usually means "
            "frps does not speak TLS, or it rejected this client)"
        )
    return f"{exc.__class__.__name__}: {exc}"
