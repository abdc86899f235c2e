# -*- test-case-name: frptx.test.test_tls -*-
"""
The optional TLS layer between TCP and everything else in frp.

Wire facts this module exists for (see docs/frp-protocol.md §1.3):

 - frpc with TLS writes the single byte C{0x17} on the raw socket before its
   ClientHello unless C{disableCustomTLSFirstByte}; frps therefore reads one
   byte from every accepted connection: C{0x17} means "TLS follows" (the byte
   is dropped), C{0x16} is a raw ClientHello (kept, frp v0.38+), anything else
   is plain frp -- unless the server is TLS-only.
 - frpc does not verify frps by default (Go's C{InsecureSkipVerify}); with
   C{trustedCaFile} it verifies the chain and the name (C{serverName}, else
   C{serverAddr}).  SNI carries that name but never an IP literal.
 - frps without a configured certificate makes a self-signed one at start-up.
 - frps with C{trustedCaFile} requires client certificates (mTLS) and is
   TLS-only.

Server side: L{TLSSniffingFactory} wraps the real frps factory; the
per-connection L{_TLSSniffingProtocol} stays C{transport.protocol} for the
life of the connection and delegates to either the inner protocol or a
L{TLSMemoryBIOProtocol} around it.  Client side: L{wrap_client_factory} for
C{connectTCP}, with L{client_connection_creator} for the TLS settings.

Both TLS transports support half-close (L{_HalfCloseableTLSTransport}):
C{loseWriteConnection} sends TLS C{close_notify} without touching the TCP
connection, so the relay can pass an EOF through TLS as it does over TCP.
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
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    ILoggingContext,
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    ISSLTransport,
    ITransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    trustRootFromCertificates,
)
from twisted.logger import Logger
from twisted.protocols.policies import WrappingFactory
from twisted.protocols.tls import (
    TLSMemoryBIOFactory,
    TLSMemoryBIOProtocol,
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
from frptx.transport.inline import write_now

__all__ = [
    "CUSTOM_TLS_FIRST_BYTE",
    "INSECURE_WARNING",
    "RAW_TLS_FIRST_BYTE",
    "CertificateNameMismatch",
    "CertificateVerifyError",
    "TLSConfigError",
    "TLSSniffingFactory",
    "TLSVerificationError",
    "client_connection_creator",
    "describe_tls_error",
    "generate_self_signed",
    "server_context_factory",
    "wrap_client_factory",
]

#: frpc's marker byte announcing "TLS follows" (golib C{FRPTLSHeadByte}).
CUSTOM_TLS_FIRST_BYTE = b"\x17"
#: First byte of any TLS handshake record, i.e. a raw ClientHello.
RAW_TLS_FIRST_BYTE = b"\x16"

#: The warning frpc logs once when TLS is on without C{trustedCaFile}.
INSECURE_WARNING = (
    "TLS is enabled but transport.tls.trustedCaFile is not set: the frps "
    "certificate is NOT verified, so the connection is encrypted but not "
    "authenticated (anyone in the path can impersonate frps); set "
    "transport.tls.trustedCaFile (and serverName) to verify it"
)

_log = Logger(observer=logs.observer)  # honours log.level, like every frptx logger


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
    there and fall back to our table / the bare number.
    """
    try:
        from OpenSSL._util import ffi, lib  # private, hence the guard

        return str(ffi.string(lib.X509_verify_cert_error_string(code)).decode("ascii", "replace"))
    except Exception:
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


# -- TLS half-close -------------------------------------------------------------


def _dropped_write(data: bytes) -> None:
    """A TLS transport's ``write`` once its write side is shut down: like TCP after
    ``shutdown(SHUT_WR)``, later writes go nowhere."""


#: ciphertext is read out of OpenSSL's memory BIO in pieces of this size
_BIO_READ = 1 << 16
#: plaintext is read out of OpenSSL in pieces of this size (a record holds 16 KiB)
_TLS_RECV = 1 << 15


class _HalfCloseableTLSTransport(TLSMemoryBIOProtocol):
    """
    L{TLSMemoryBIOProtocol} with half-close in both directions, so frp's
    relay can pass an EOF through a TLS connection the way it does over TCP,
    and with a faster data path (below).  It is not Twisted's default
    L{BufferingTLSTransport}: that one holds small writes until the next
    reactor turn (a C{callLater(0)} and a loop turn of latency per write),
    and frptx's writers (the relay, a yamux session, the message framing)
    already write whole reads, frame batches and messages.

     - L{loseWriteConnection} sends TLS C{close_notify} (after everything
       written before it, and after the handshake) but leaves the TCP
       connection open: application data from the peer keeps arriving.
     - The peer's C{close_notify} becomes C{readConnectionLost} for an
       L{IHalfCloseableProtocol}, which may keep writing.  Other protocols
       keep Twisted's behaviour: we answer with our C{close_notify} and close.
     - Once both C{close_notify}s have crossed, the TCP connection is closed
       and the protocol gets C{connectionLost(ConnectionDone)}.

    OpenSSL (checked with 3.0, TLS 1.2 and 1.3) sends after receiving the
    peer's C{close_notify} and receives after sending ours, so this works for
    both versions.  (RFC 5246 asks a TLS 1.2 peer to answer C{close_notify}
    at once; nothing enforces it, and a peer of ours only answers when its
    application is done -- the same as a TCP FIN.)  Go's C{crypto/tls}
    returns C{io.EOF} from C{Read} after a C{close_notify}, still allows
    C{Write}, and sends its own C{close_notify} on C{Close}, so to Go frp
    (which never half-closes) our half-close looks like an ordinary close.

    @ivar _writeShutdownRequested: L{loseWriteConnection} was called.
    @ivar _closeNotifySent: our C{close_notify} went out because of
        L{loseWriteConnection} (not C{loseConnection}).
    @ivar _closeNotifyReceived: the peer's C{close_notify} arrived; we no
        longer read from the TLS connection.
    """

    _writeShutdownRequested = False
    _closeNotifySent = False
    _closeNotifyReceived = False

    # -- the data path ------------------------------------------------------------
    #
    # Twisted reads the ciphertext out after every 16 KiB record and hands each
    # piece to the TCP transport, which sends it on a later reactor turn.  Here the
    # records of a write are made in a tight SSL_write loop (pyOpenSSL turns on
    # partial writes: one record per call), read out of the BIO once, and sent at
    # once when the socket's buffer is empty; the records that one TCP read brought
    # reach the application as one piece.

    def _write(self, data: bytes) -> None:
        if self._lostTLSConnection:
            return
        view = memoryview(data)
        offset = 0
        while offset < len(data):
            try:
                offset += self._tlsConnection.send(view[offset:])
            except SSL.WantReadError:
                self._bufferedWrite(bytes(view[offset:]))
                break
            except SSL.Error:
                self._tlsShutdownFinished(Failure())
                return
        # room for all the records at once: one read out of the BIO, no join
        self._flushSendBIO(len(data) + (len(data) >> 9) + 256)

    def _flushSendBIO(self, size: int = _BIO_READ) -> None:
        connection = self._tlsConnection
        if connection is None:
            return
        size = max(size, _BIO_READ)
        pieces = []
        while True:
            try:
                piece = connection.bio_read(size)
            except SSL.WantReadError:
                break
            pieces.append(piece)
            if len(piece) < size:
                break  # a short read emptied the BIO: no need to provoke WantReadError
        if pieces and self.transport is not None:
            write_now(self.transport, pieces[0] if len(pieces) == 1 else b"".join(pieces))

    # -- sending side -----------------------------------------------------------

    def loseWriteConnection(self) -> None:
        """
        Shut down the sending direction: send C{close_notify} once all data
        written so far has gone through TLS; later writes are dropped.
        Reading goes on until the peer's C{close_notify}, or L{loseConnection}.
        """
        if self._writeShutdownRequested or self.disconnecting or not self.connected:
            _log.debug("TLS half-close: loseWriteConnection ignored (requested={r}, disconnecting={d}, "
                       "connected={c})", r=self._writeShutdownRequested, d=self.disconnecting, c=self.connected)
            return
        if self._lostTLSConnection:
            return
        self._writeShutdownRequested = True
        # Everything written so far is in TLS already (or in _appSendBuffer while
        # the handshake is in progress); anything written later is dropped.
        self.write = _dropped_write  # type: ignore[method-assign]
        self._maybeSendCloseNotify()

    def _maybeSendCloseNotify(self) -> None:
        """
        Send the C{close_notify} L{loseWriteConnection} asked for, if the
        handshake is done and no application data waits for it.
        """
        if (
            not self._writeShutdownRequested
            or self._closeNotifySent
            or not self._handshakeDone
            or self._appSendBuffer
            or self._lostTLSConnection
            or self.disconnecting  # loseConnection took over the shutdown
            or self._tlsConnection is None
        ):
            if self._writeShutdownRequested and not self._closeNotifySent:
                _log.debug("TLS half-close: close_notify waits (handshake={h}, pending={p}, lost={l}, "
                           "disconnecting={d})", h=self._handshakeDone, p=len(self._appSendBuffer),
                           l=self._lostTLSConnection, d=self.disconnecting)
            return
        _log.debug("TLS half-close: sending close_notify")
        self._closeNotifySent = True
        try:
            self._tlsConnection.shutdown()
        except SSL.Error:
            self._tlsShutdownFinished(Failure())
            return
        self._flushSendBIO()
        if IHalfCloseableProtocol.providedBy(self.wrappedProtocol):
            try:
                self.wrappedProtocol.writeConnectionLost()
            except BaseException:
                _log.failure("writeConnectionLost of {protocol} failed", protocol=self.wrappedProtocol)
                self.abortConnection()
                return
        if self._closeNotifyReceived and not self._lostTLSConnection:
            # The peer had already half-closed: both directions are done.
            self._tlsShutdownFinished(None)

    def _checkHandshakeStatus(self) -> None:
        super()._checkHandshakeStatus()
        # Data buffered during the handshake is sent by _unbufferPendingWrites
        # (called right after this by dataReceived), which then sends the
        # close_notify; without such data it can go now.
        if self._handshakeDone and not self._appSendBuffer:
            self._maybeSendCloseNotify()

    def _unbufferPendingWrites(self) -> None:
        super()._unbufferPendingWrites()
        self._maybeSendCloseNotify()

    def loseConnection(self) -> None:
        if self._closeNotifySent and not self.disconnecting and self.connected:
            # Our close_notify is out and there is nothing left to send: stop
            # reading and close the TCP connection, like loseConnection after
            # a TCP shutdown(SHUT_WR).  Waiting for the peer's close_notify
            # could take as long as the peer likes.
            self.disconnecting = True
            self._lostTLSConnection = True
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        super().loseConnection()

    def _shutdownTLS(self) -> None:
        """
        Send our C{close_notify} and, once it was asked for by L{loseConnection},
        close the TCP connection after it -- without waiting for the peer's.

        Twisted keeps reading until the peer answers with its own
        C{close_notify}; a connection that is paused (a work connection whose
        local dial failed before the relay started) never reads it, and a peer
        that does not answer (an attacker after a yamux protocol error) keeps
        it open until some grace timer aborts it.  Go's C{tls.Conn.Close} sends
        C{close_notify} and closes the socket, so frptx closes like Go: at once,
        after the alert and everything before it have been handed to TCP.
        """
        super()._shutdownTLS()
        if (
            self.disconnecting
            and not self._aborted
            and not self._lostTLSConnection
            and self._tlsConnection is not None
            and self._tlsConnection.get_shutdown() & SSL.SENT_SHUTDOWN
        ):
            # connectionLost then reports the TCP reason (ConnectionDone), as a
            # local close over plain TCP does.
            self._lostTLSConnection = True
            self.transport.loseConnection()  # type: ignore[union-attr]

    # -- receiving side ---------------------------------------------------------

    def _flushReceiveBIO(self) -> None:
        """
        L{TLSMemoryBIOProtocol._flushReceiveBIO}, except that the records of
        one read reach the application as one C{dataReceived}, that the
        peer's C{close_notify} may be a half-close (see L{_peerCloseNotify}),
        and that nothing is delivered after C{loseConnection}.
        """
        pieces: list[bytes] = []
        while not self._lostTLSConnection and not self._closeNotifyReceived:
            try:
                pieces.append(self._tlsConnection.recv(_TLS_RECV))
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self._deliver(pieces)  # what came before close_notify goes first
                self._peerCloseNotify()
            except SSL.Error:
                self._deliver(pieces)
                self._tlsShutdownFinished(Failure())
        self._deliver(pieces)
        self._flushSendBIO()

    def _deliver(self, pieces: list[bytes]) -> None:
        # Like TCP, which stops reading at loseConnection: a peer that took our
        # close_notify as a half-close may still be sending.
        if pieces:
            data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            pieces.clear()
            if not self._aborted and not self.disconnecting:
                self.wrappedProtocol.dataReceived(data)

    def _peerCloseNotify(self) -> None:
        """The peer sent C{close_notify}: it will send no more data."""
        _log.debug("TLS half-close: close_notify received")
        sent = bool(self._tlsConnection.get_shutdown() & SSL.SENT_SHUTDOWN)
        half_closeable = IHalfCloseableProtocol.providedBy(self.wrappedProtocol)
        if half_closeable and self._closeNotifySent and not self.disconnecting:
            # We had half-closed: tell the protocol the peer is done too (as
            # TCP would), then close since both directions are finished.
            self._closeNotifyReceived = True
            self.wrappedProtocol.readConnectionLost()  # type: ignore[attr-defined]
            if self._lostTLSConnection:  # it called loseConnection
                return
        if sent or not half_closeable or (self.disconnecting and self._producer is None):
            # Twisted's behaviour: answer (unless we already did) and close.
            # Passing None means connectionLost gets the TCP transport's reason.
            self._shutdownTLS()
            self._tlsShutdownFinished(None)
            return
        self._closeNotifyReceived = True
        if self.disconnecting:
            # loseConnection is waiting for its producer to finish; the
            # shutdown at unregisterProducer now completes both directions.
            return
        self.wrappedProtocol.readConnectionLost()  # type: ignore[attr-defined]


# -- server side: the first-byte sniffer -------------------------------------


@implementer(ISSLTransport)
class _ServerTLSProtocol(_HalfCloseableTLSTransport):
    """
    TLS server layer under the sniffer; declares L{ISSLTransport} so the
    application can tell a TLS connection from a plain one.
    """


@implementer(IHalfCloseableProtocol, ILoggingContext)
class _TLSSniffingProtocol(Protocol):
    """
    Reads the first byte of an accepted connection and then gets out of the
    way: every later event is forwarded to the chosen delegate.

    It stays C{transport.protocol} (the reactor does not let us swap it), so
    it must forward everything the transport may call, including half-close
    notifications; producers need nothing since the delegate talks to the
    transport directly.
    """

    _log = Logger(observer=logs.observer)

    def __init__(self, factory: TLSSniffingFactory, addr: IAddress) -> None:
        self.factory = factory
        self._addr = addr
        self._delegate: IProtocol | None = None
        self._timeout: IDelayedCall | None = None
        self._done = False

    def logPrefix(self) -> str:
        if ILoggingContext.providedBy(self._delegate):
            return str(self._delegate.logPrefix())
        return "TLSSniffer"

    def connectionMade(self) -> None:
        self.factory.registerProtocol(self)
        self._timeout = self.factory.reactor.callLater(self.factory.sniff_timeout, self._timedOut)

    def _cancelTimeout(self) -> None:
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None

    def _timedOut(self) -> None:
        self._timeout = None
        self._done = True
        logs.throttle.info(
            self._log, "sniff timeout",
            "closing connection from {peer}: nothing received within {timeout}s",
            peer=self.transport.getPeer(),  # type: ignore[union-attr]
            timeout=self.factory.sniff_timeout,
        )
        self.transport.loseConnection()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if self._delegate is not None:
            self._delegate.dataReceived(data)
            return
        if self._done or not data:
            return
        self._done = True
        self._cancelTimeout()
        first = data[:1]
        if first == CUSTOM_TLS_FIRST_BYTE:
            tls, rest = True, data[1:]
        elif first == RAW_TLS_FIRST_BYTE:
            tls, rest = True, data
        elif self.factory.force:
            logs.throttle.warn(
                self._log, "non-TLS on TLS-only",
                "non-TLS connection received on a TLS-only server from {peer}",
                peer=self.transport.getPeer(),  # type: ignore[union-attr]
            )
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        else:
            tls, rest = False, data
        inner = self.factory.wrappedFactory.buildProtocol(self._addr)
        if inner is None:
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        delegate: IProtocol = _ServerTLSProtocol(self.factory.tls_factory, inner) if tls else inner
        self._delegate = delegate
        try:
            delegate.makeConnection(self.transport)  # type: ignore[arg-type]
        except BaseException:
            self._log.failure(
                "setting up the {kind} connection from {peer} failed",
                kind="TLS" if tls else "plain",
                peer=self.transport.getPeer(),  # type: ignore[union-attr]
            )
            if not getattr(delegate, "connected", True):
                # The TLS layer failed before the inner protocol was
                # connected: nobody to tell about the loss later.
                self._delegate = None
            self.transport.abortConnection()  # type: ignore[union-attr]
            return
        if rest:
            delegate.dataReceived(rest)

    def readConnectionLost(self) -> None:
        """
        The peer half-closed.  Pass it on if the delegate understands
        half-close; otherwise close, as the transport would have done for a
        protocol without L{IHalfCloseableProtocol}.
        """
        if self._delegate is not None and IHalfCloseableProtocol.providedBy(self._delegate):
            self._delegate.readConnectionLost()
        else:
            self._done = True
            self._cancelTimeout()
            self.transport.loseConnection()  # type: ignore[union-attr]

    def writeConnectionLost(self) -> None:
        if self._delegate is not None and IHalfCloseableProtocol.providedBy(self._delegate):
            self._delegate.writeConnectionLost()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancelTimeout()
        self._done = True
        self.factory.unregisterProtocol(self)
        delegate, self._delegate = self._delegate, None
        if delegate is not None:
            delegate.connectionLost(reason)


class TLSSniffingFactory(WrappingFactory):
    """
    frps bind-port factory: accept plain and TLS frp connections on one port.

    @ivar force: refuse connections that do not start with a TLS byte
        (C{transport.tls.force}); forced on when C{context_factory} requires
        client certificates (frps C{trustedCaFile}).
    @ivar reactor: clock for the first-byte timeout (and TLS write batching).
    @ivar tls_factory: holds the TLS settings for the per-connection
        L{TLSMemoryBIOProtocol}s; never used to build protocols itself.
    """

    protocol = _TLSSniffingProtocol  # type: ignore[assignment]

    def __init__(
        self,
        wrapped_factory: IProtocolFactory,
        context_factory: IOpenSSLServerConnectionCreator | Any,
        *,
        force: bool,
        reactor: IReactorTime,
        sniff_timeout: float = 10.0,
    ) -> None:
        super().__init__(wrapped_factory)
        # frp: trustedCaFile on frps implies tls.force.  A server context
        # that verifies peers (CertificateOptions.verify, set by
        # server_context_factory's trustRoot) requires client certificates,
        # and a plain connection could never satisfy that.
        self.force = force or bool(getattr(context_factory, "verify", False))
        self.reactor = reactor
        self.sniff_timeout = sniff_timeout
        self.tls_factory = TLSMemoryBIOFactory(context_factory, False, wrapped_factory, clock=reactor)

    def logPrefix(self) -> str:
        if ILoggingContext.providedBy(self.wrappedFactory):
            return f"{self.wrappedFactory.logPrefix()} (TLS sniffing)"
        return f"{self.wrappedFactory.__class__.__name__} (TLS sniffing)"

    def buildProtocol(self, addr: IAddress) -> _TLSSniffingProtocol:  # type: ignore[override]
        return _TLSSniffingProtocol(self, addr)


# -- client side ---------------------------------------------------------------


@implementer(ISSLTransport)
class _ClientTLSProtocol(_HalfCloseableTLSTransport):
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
    TLS client factory for C{connectTCP}; L{WrappingFactory} forwards the
    C{ClientFactory} callbacks to the wrapped factory.
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
    Put frp's client TLS layer around C{factory} for C{reactor.connectTCP}.

    @param custom_first_byte: send C{0x17} first (C{not
        disableCustomTLSFirstByte}); required when frps shares its port with
        the HTTPS vhost, and by frps older than v0.38.
    @param clock: for TLS write batching; the global reactor if L{None}.
    """
    return _ClientTLSFactory(creator, factory, custom_first_byte, clock)


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
