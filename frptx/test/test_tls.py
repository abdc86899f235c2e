# -*- test-case-name: frptx.test.test_tls -*-
"""
Tests for L{frptx.transport.tls_context}, L{frptx.transport.tls_server} and L{frptx.transport.tls_client}: the frps first-byte sniffer, frpc's TLS
client layer, certificate handling and error descriptions.

Most tests use real sockets on 127.0.0.1 because the interesting failures
(alerts, verification, half-close) come from OpenSSL and the TCP transport,
which memory transports would not reproduce.  The PKI is generated once per
run with C{cryptography} (EC keys: fast, and Go accepts them).
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import os
import warnings
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL, crypto
from twisted.internet import reactor as _global_reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IHalfCloseableProtocol, IOpenSSLServerConnectionCreator, ISSLTransport
from twisted.internet.protocol import ClientFactory, Factory, Protocol, connectionDone
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import Logger, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from zope.interface import implementer

from frptx import logs
from frptx.transport import tls_client, tls_context, tls_server
from frptx.transport.certs import TLSConfigError

reactor: Any = _global_reactor

# -- test PKI -------------------------------------------------------------------

_NOW = datetime.datetime.now(datetime.timezone.utc)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _make_ca(cn: str) -> tuple[x509.Certificate, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW - datetime.timedelta(days=1))
        .not_valid_after(_NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_leaf(
    ca: tuple[x509.Certificate, Any],
    cn: str,
    *,
    server: bool,
    not_after: datetime.datetime | None = None,
) -> tuple[bytes, bytes]:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW - datetime.timedelta(days=2))
        .not_valid_after(not_after or (_NOW + datetime.timedelta(days=10)))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(cn), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return _pem_cert(builder.sign(ca_key, hashes.SHA256())), _pem_key(key)


def _make_frp_0_31_cert() -> tuple[bytes, bytes]:
    """
    Like frps v0.31.2's built-in certificate: RSA-1024, serial 1, empty
    subject and issuer, notBefore = notAfter = 0001-01-01 (Go's zero time).

    C{cryptography} refuses dates before 1950, so this one is built with
    pyOpenSSL's deprecated mutators.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pkey = crypto.PKey.from_cryptography_key(key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        cert = crypto.X509()
        cert.set_version(2)
        cert.set_serial_number(1)
        cert.set_notBefore(b"00010101000000Z")
        cert.set_notAfter(b"00010101000000Z")
        cert.set_pubkey(pkey)
        cert.sign(pkey, "sha256")
    return crypto.dump_certificate(crypto.FILETYPE_PEM, cert), _pem_key(key)


@functools.cache
def _pki() -> dict[str, bytes]:
    """All PEM blobs the tests need, generated once per run."""
    ca = _make_ca("frptx test CA")
    other = _make_ca("unrelated CA")
    out: dict[str, bytes] = {"ca": _pem_cert(ca[0]), "other_ca": _pem_cert(other[0])}
    out["server"], out["server_key"] = _make_leaf(ca, "frps.test", server=True)
    out["client"], out["client_key"] = _make_leaf(ca, "frpc", server=False)
    out["expired"], out["expired_key"] = _make_leaf(
        ca, "frps.test", server=True, not_after=_NOW - datetime.timedelta(days=1)
    )
    out["other_client"], out["other_client_key"] = _make_leaf(other, "frpc", server=False)
    out["old_frps"], out["old_frps_key"] = _make_frp_0_31_cert()
    return out


class _PKIMixin:
    """Writes the test PKI to files, since the API takes file names."""

    mktemp: Callable[[], str]

    def pki_files(self) -> dict[str, str]:
        d = self.mktemp()
        os.makedirs(d)
        paths = {}
        for name, blob in _pki().items():
            path = os.path.join(d, name + ".pem")
            with open(path, "wb") as f:
                f.write(blob)
            paths[name] = path
        return paths


# -- protocols --------------------------------------------------------------------


@implementer(IHalfCloseableProtocol)
class _Echo(Protocol):
    """
    Server side: echoes, records whether it runs over TLS, and answers a
    half-close with C{b"bye"} before closing (to prove the read side closed
    while the write side still worked).
    """

    factory: _EchoFactory

    def connectionMade(self) -> None:
        self.tls = ISSLTransport.providedBy(self.transport)
        self.half_closed = False
        self.peer_certificate: Any = None
        self.lost: Deferred[None] = Deferred()
        self.factory.connections.append(self)

    def dataReceived(self, data: bytes) -> None:
        if self.tls and self.peer_certificate is None:
            self.peer_certificate = self.transport.getPeerCertificate()
        self.transport.write(data)

    def readConnectionLost(self) -> None:
        self.half_closed = True
        self.transport.write(b"bye")
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.reason = reason
        self.lost.callback(None)  # not the Failure: that would errback


class _EchoFactory(Factory):
    protocol = _Echo

    def __init__(self) -> None:
        self.connections: list[_Echo] = []


class _Collector(Protocol):
    """
    Client side: sends C{message}, collects until C{expect} bytes arrived,
    then closes; C{done} fires with the protocol once the connection is gone.
    """

    def __init__(self, message: bytes, expect: int, half_close: bool = False) -> None:
        self.message = message
        self.expect = expect
        self.half_close = half_close
        self.received = b""
        self.tls = False
        self.reason: Failure | None = None
        self.done: Deferred[_Collector] = Deferred()

    def connectionMade(self) -> None:
        self.tls = ISSLTransport.providedBy(self.transport)
        self.transport.write(self.message)
        if self.half_close:
            self.transport.loseWriteConnection()

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= self.expect:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.reason = reason
        self.done.callback(self)


class _CollectorFactory(ClientFactory):
    """One L{_Collector}; a failed connect errbacks its C{done}."""

    def __init__(self, proto: _Collector) -> None:
        self.proto = proto
        self.events: list[str] = []

    def buildProtocol(self, addr: Any) -> _Collector:
        return self.proto

    def startedConnecting(self, connector: Any) -> None:
        self.events.append("startedConnecting")

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.events.append("clientConnectionFailed")
        self.proto.done.errback(reason)

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        self.events.append("clientConnectionLost")


# -- real-socket tests -----------------------------------------------------------


class _SocketTestBase(_PKIMixin, TestCase):
    timeout = 30

    def listen(
        self, *, force: bool = False, context: Any = None, **server_tls: str
    ) -> tuple[int, _EchoFactory, tls_server.TLSSniffingFactory]:
        """An echo server behind the sniffer on 127.0.0.1; cleaned up after the test."""
        echo = _EchoFactory()
        if context is None:
            context = tls_context.server_context_factory(**server_tls)
        sniffing = tls_server.TLSSniffingFactory(echo, context, force=force, reactor=reactor)
        port = reactor.listenTCP(0, sniffing, interface="127.0.0.1")
        self.addCleanup(self._shutdown, port, sniffing)
        return port.getHost().port, echo, sniffing

    @inlineCallbacks
    def _shutdown(self, port: Any, sniffing: tls_server.TLSSniffingFactory) -> Any:
        yield port.stopListening()
        # Wait for server-side connections to be gone so trial sees a clean
        # reactor.  One still open after the bound is a failure (aborted only
        # so the next test starts clean), never something to wait out.
        for _ in range(1000):
            if not sniffing.protocols:
                return
            yield deferLater(reactor, 0.01, lambda: None)
        for p in list(sniffing.protocols):
            p.transport.abortConnection()
        self.fail("server connections did not close")

    def connect(self, port: int, message: bytes = b"hello frp", **kw: Any) -> Deferred[_Collector]:
        """Dial C{port}; the result fires with the L{_Collector} once closed."""
        return self.dial(port, message, **kw)[0]

    def dial(
        self,
        port: int,
        message: bytes = b"hello frp",
        *,
        creator: Any = None,
        custom_first_byte: bool = True,
        expect: int | None = None,
        half_close: bool = False,
    ) -> tuple[Deferred[_Collector], _CollectorFactory]:
        proto = _Collector(message, len(message) if expect is None else expect, half_close)
        factory = _CollectorFactory(proto)
        outer: Any = factory
        if creator is not None:
            outer = tls_client.wrap_client_factory(factory, creator, custom_first_byte=custom_first_byte)
        reactor.connectTCP("127.0.0.1", port, outer)
        d = proto.done
        d.addTimeout(10, reactor)
        return d, factory


class SniffingServerTests(_SocketTestBase):
    """
    One frps port serves plain, 0x17+TLS and raw TLS connections.
    """

    @inlineCallbacks
    def test_plain(self) -> Any:
        port, echo, _ = self.listen()
        c = yield self.connect(port)
        self.assertEqual(c.received, b"hello frp")
        self.assertFalse(c.tls)
        self.assertFalse(echo.connections[0].tls)

    @inlineCallbacks
    def test_plain_first_byte_kept(self) -> Any:
        """
        A plain frp connection starts with a message type byte; the sniffer
        must hand it on, even when it arrives alone.
        """
        port, echo, _ = self.listen()
        c = yield self.connect(port, b"o")
        self.assertEqual(c.received, b"o")

    @inlineCallbacks
    def test_custom_first_byte_tls(self) -> Any:
        port, echo, _ = self.listen()
        creator = tls_context.client_connection_creator(server_addr="127.0.0.1")
        c = yield self.connect(port, creator=creator, custom_first_byte=True)
        self.assertEqual(c.received, b"hello frp")
        self.assertTrue(c.tls)
        self.assertTrue(echo.connections[0].tls)

    @inlineCallbacks
    def test_raw_tls(self) -> Any:
        port, echo, _ = self.listen()
        creator = tls_context.client_connection_creator(server_addr="127.0.0.1")
        c = yield self.connect(port, creator=creator, custom_first_byte=False)
        self.assertEqual(c.received, b"hello frp")
        self.assertTrue(echo.connections[0].tls)

    @inlineCallbacks
    def test_all_on_one_port(self) -> Any:
        port, echo, _ = self.listen()
        creator = tls_context.client_connection_creator(server_addr="127.0.0.1")
        results = []
        for kw in ({}, {"creator": creator, "custom_first_byte": True},
                   {"creator": creator, "custom_first_byte": False}):
            c = yield self.connect(port, b"x" * 100000, **kw)
            results.append((len(c.received), c.tls))
        self.assertEqual(results, [(100000, False), (100000, True), (100000, True)])
        self.assertEqual([p.tls for p in echo.connections], [False, True, True])

    @inlineCallbacks
    def test_force_refuses_plain(self) -> Any:
        events: list[dict[str, Any]] = []
        self.patch(tls_server.TLSSniffingFactory, "_log", Logger(observer=events.append))
        self.patch(logs, "throttle", logs.LogThrottle())  # no earlier test's line suppresses this one
        port, echo, _ = self.listen(force=True)
        c = yield self.connect(port)
        self.assertEqual(c.received, b"")
        self.assertEqual(echo.connections, [])
        texts = [formatEvent(e) for e in events]
        self.assertTrue(
            any("non-TLS connection received on a TLS-only server" in t and "127.0.0.1" in t for t in texts),
            texts,
        )

    @inlineCallbacks
    def test_force_accepts_tls(self) -> Any:
        port, echo, _ = self.listen(force=True)
        creator = tls_context.client_connection_creator(server_addr="127.0.0.1")
        c = yield self.connect(port, creator=creator)
        self.assertEqual(c.received, b"hello frp")

    @inlineCallbacks
    def test_half_close_plain(self) -> Any:
        """
        frp relays half-closes; the sniffer must not turn the peer's FIN into
        a full close when the inner protocol can handle it.
        """
        port, echo, _ = self.listen()
        c = yield self.connect(port, b"hello", expect=100, half_close=True)
        self.assertEqual(c.received, b"hellobye")
        self.assertTrue(echo.connections[0].half_closed)
        yield echo.connections[0].lost
        self.assertIsInstance(echo.connections[0].reason.value, ConnectionDone)

    @inlineCallbacks
    def test_half_close_before_sniff(self) -> Any:
        """A peer that sends FIN before any byte is simply closed."""
        port, echo, sniffing = self.listen()
        c = yield self.connect(port, b"", expect=1, half_close=True)
        self.assertEqual(c.received, b"")
        self.assertEqual(echo.connections, [])

    @inlineCallbacks
    def test_wrapped_factory_refuses(self) -> Any:
        port, echo, _ = self.listen()
        echo.buildProtocol = lambda addr: None  # type: ignore[method-assign]
        c = yield self.connect(port)
        self.assertEqual(c.received, b"")


class MutualTLSTests(_SocketTestBase):
    """frps with trustedCaFile requires a client certificate from that CA."""

    def setUp(self) -> None:
        self.f = self.pki_files()
        # force=False: trustedCaFile implies it, as in frp.
        self.port, self.echo, self.sniffing = self.listen(
            force=False,
            cert_file=self.f["server"],
            key_file=self.f["server_key"],
            trusted_ca_file=self.f["ca"],
        )

    @inlineCallbacks
    def test_accepted(self) -> Any:
        creator = tls_context.client_connection_creator(
            server_addr="127.0.0.1",
            server_name="frps.test",
            cert_file=self.f["client"],
            key_file=self.f["client_key"],
            trusted_ca_file=self.f["ca"],
        )
        c = yield self.connect(self.port, creator=creator)
        self.assertEqual(c.received, b"hello frp")
        server = self.echo.connections[0]
        self.assertEqual(server.peer_certificate.get_subject().CN, "frpc")

    @inlineCallbacks
    def test_no_client_certificate(self) -> Any:
        creator = tls_context.client_connection_creator(server_addr="127.0.0.1")
        c = yield self.connect(self.port, creator=creator)
        self.assertEqual(c.received, b"")
        self.assertIn("client certificate required by frps", tls_context.describe_tls_error(c.reason))
        yield self.echo.connections[0].lost
        reason = self.echo.connections[0].reason
        self.assertIn("client presented no certificate", tls_context.describe_tls_error(reason, side="server"))

    @inlineCallbacks
    def test_client_certificate_from_other_ca(self) -> Any:
        creator = tls_context.client_connection_creator(
            server_addr="127.0.0.1",
            cert_file=self.f["other_client"],
            key_file=self.f["other_client_key"],
        )
        c = yield self.connect(self.port, creator=creator)
        self.assertEqual(c.received, b"")
        self.assertIn("frps rejected the client certificate", tls_context.describe_tls_error(c.reason))
        yield self.echo.connections[0].lost
        reason = self.echo.connections[0].reason
        self.assertIn(
            "client certificate not trusted by trustedCaFile", tls_context.describe_tls_error(reason, side="server")
        )

    @inlineCallbacks
    def test_plain_refused(self) -> Any:
        self.assertTrue(self.sniffing.force)
        c = yield self.connect(self.port)
        self.assertEqual(c.received, b"")
        self.assertEqual(self.echo.connections, [])


class ClientVerificationTests(_SocketTestBase):
    """frpc with trustedCaFile checks chain and name; without it nothing."""

    def setUp(self) -> None:
        self.f = self.pki_files()

    def serve(self, cert: str = "server") -> int:
        port, _, _ = self.listen(cert_file=self.f[cert], key_file=self.f[cert + "_key"])
        return port

    @inlineCallbacks
    def check(self, port: int, **creator_kw: str) -> Any:
        creator = tls_context.client_connection_creator(**creator_kw)  # type: ignore[arg-type]
        c = yield self.connect(port, creator=creator)
        return c

    @inlineCallbacks
    def test_right_ca_and_name(self) -> Any:
        c = yield self.check(
            self.serve(), server_addr="127.0.0.1", server_name="frps.test", trusted_ca_file=self.f["ca"]
        )
        self.assertEqual(c.received, b"hello frp")

    @inlineCallbacks
    def test_ip_address_name(self) -> Any:
        """Without serverName the serverAddr IP is checked against IP SANs."""
        c = yield self.check(self.serve(), server_addr="127.0.0.1", trusted_ca_file=self.f["ca"])
        self.assertEqual(c.received, b"hello frp")

    @inlineCallbacks
    def test_wrong_ca(self) -> Any:
        c = yield self.check(
            self.serve(), server_addr="127.0.0.1", server_name="frps.test", trusted_ca_file=self.f["other_ca"]
        )
        self.assertEqual(c.received, b"")
        self.assertIsInstance(c.reason.value, tls_context.CertificateVerifyError)
        self.assertIn(
            "TLS handshake failed: server certificate not trusted by trustedCaFile (wrong CA?)",
            tls_context.describe_tls_error(c.reason),
        )

    @inlineCallbacks
    def test_name_mismatch(self) -> Any:
        c = yield self.check(
            self.serve(), server_addr="127.0.0.1", server_name="other.test", trusted_ca_file=self.f["ca"]
        )
        self.assertEqual(c.received, b"")
        self.assertIn(
            "TLS handshake failed: server certificate name mismatch: expected other.test "
            "(the certificate is valid for frps.test, 127.0.0.1)",
            tls_context.describe_tls_error(c.reason),
        )

    @inlineCallbacks
    def test_ip_mismatch(self) -> Any:
        port, _, _ = self.listen(cert_file=self.f["server"], key_file=self.f["server_key"])
        creator = tls_context.client_connection_creator(server_addr="127.0.0.2", trusted_ca_file=self.f["ca"])
        # connect to 127.0.0.1 but expect the name 127.0.0.2
        c = yield self.connect(port, creator=creator)
        self.assertIn("name mismatch: expected 127.0.0.2", tls_context.describe_tls_error(c.reason))

    @inlineCallbacks
    def test_expired(self) -> Any:
        c = yield self.check(
            self.serve("expired"), server_addr="127.0.0.1", server_name="frps.test", trusted_ca_file=self.f["ca"]
        )
        self.assertEqual(c.received, b"")
        self.assertIn("TLS handshake failed: server certificate has expired", tls_context.describe_tls_error(c.reason))

    @inlineCallbacks
    def test_insecure_accepts_generated(self) -> Any:
        """frp's default: no trustedCaFile, frps with its generated certificate."""
        port, _, _ = self.listen()
        c = yield self.connect(port, creator=tls_context.client_connection_creator(server_addr="localhost"))
        self.assertEqual(c.received, b"hello frp")

    @inlineCallbacks
    def test_insecure_accepts_expired_and_unknown(self) -> Any:
        c = yield self.check(self.serve("expired"), server_addr="127.0.0.1", server_name="wrong.test")
        self.assertEqual(c.received, b"hello frp")

    @inlineCallbacks
    def test_insecure_accepts_frp_0_31_certificate(self) -> Any:
        """
        frps v0.31.2 presents an RSA-1024 certificate with zero validity
        dates; frpc (no verification) must still connect.
        """
        pem = _pki()
        key = crypto.PKey.from_cryptography_key(serialization.load_pem_private_key(pem["old_frps_key"], None))
        cert = crypto.X509.from_cryptography(x509.load_pem_x509_certificate(pem["old_frps"]))
        port, _, _ = self.listen(context=_LowSecurityServer(key, cert))
        c = yield self.check(port, server_addr="127.0.0.1")
        self.assertEqual(c.received, b"hello frp")

    def test_weak_server_key_rejected_at_startup(self) -> None:
        """A certificate OpenSSL will not serve is a config error, not a per-connection one."""
        with self.assertRaises(TLSConfigError) as e:
            tls_context.server_context_factory(cert_file=self.f["old_frps"], key_file=self.f["old_frps_key"])
        self.assertIn("key too small", str(e.exception))

    def test_mismatched_key_rejected_at_startup(self) -> None:
        with self.assertRaises(TLSConfigError):
            tls_context.server_context_factory(cert_file=self.f["server"], key_file=self.f["client_key"])


@implementer(IOpenSSLServerConnectionCreator)
class _LowSecurityServer:
    """
    A server that serves an RSA-1024 certificate, like frps 0.31.2.  OpenSSL
    refuses to load such a key at its default security level, so the level
    is lowered before the certificate is set.
    """

    def __init__(self, key: crypto.PKey, cert: crypto.X509) -> None:
        self._ctx = SSL.Context(SSL.TLS_METHOD)
        self._ctx.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
        self._ctx.use_certificate(cert)
        self._ctx.use_privatekey(key)

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        return SSL.Connection(self._ctx, None)


class SessionResumptionTests(_SocketTestBase):
    """frpc resumes TLS sessions (tickets), so work connections skip the full handshake."""

    def reused(self, creator: Any) -> int:
        from OpenSSL._util import lib as ssl_lib

        if not hasattr(ssl_lib, "SSL_session_reused"):
            raise SkipTest("this pyOpenSSL does not bind SSL_session_reused")
        return int(ssl_lib.SSL_session_reused(creator._previous._ssl))

    @inlineCallbacks
    def test_second_connection_resumes(self) -> Any:
        port, _, _ = self.listen()
        creator = tls_context.client_connection_creator(server_addr="127.0.0.1")
        first = yield self.connect(port, creator=creator)
        self.assertEqual(first.received, b"hello frp")
        self.assertEqual(self.reused(creator), 0)
        second = yield self.connect(port, b"again", creator=creator)
        self.assertEqual(second.received, b"again")
        self.assertEqual(self.reused(creator), 1)
        self.assertEqual(creator._previous.get_cipher_name(), "TLS_AES_128_GCM_SHA256")

    @inlineCallbacks
    def test_resumes_with_verification_and_client_certificates(self) -> Any:
        f = self.pki_files()
        port, _, _ = self.listen(cert_file=f["server"], key_file=f["server_key"], trusted_ca_file=f["ca"])
        creator = tls_context.client_connection_creator(server_addr="127.0.0.1", server_name="frps.test",
                                                trusted_ca_file=f["ca"], cert_file=f["client"],
                                                key_file=f["client_key"])
        for message in (b"one", b"two", b"three"):
            c = yield self.connect(port, message, creator=creator)
            self.assertEqual(c.received, message)
        self.assertEqual(self.reused(creator), 1)


class PlainServerTests(_SocketTestBase):
    """A TLS frpc against a plain (non-TLS) server fails quickly and clearly."""

    @inlineCallbacks
    def _against_plain_echo(self, custom_first_byte: bool) -> Any:
        echo = _EchoFactory()
        port = reactor.listenTCP(0, echo, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        creator = tls_context.client_connection_creator(server_addr="127.0.0.1")
        c = yield self.connect(port.getHost().port, creator=creator, custom_first_byte=custom_first_byte)
        self.assertEqual(c.received, b"")
        self.assertIn(
            "server does not speak TLS (is transport.tls.enable set on frpc but frps is plain?)",
            tls_context.describe_tls_error(c.reason),
        )
        for server in echo.connections:
            yield server.lost

    def test_custom_first_byte(self) -> Any:
        return self._against_plain_echo(True)

    def test_raw(self) -> Any:
        return self._against_plain_echo(False)

    @inlineCallbacks
    def test_plain_server_closes(self) -> Any:
        """Like a plain Go frps: reads the first byte, dislikes it, closes."""

        closed: Deferred[None] = Deferred()

        class Closer(Protocol):
            def dataReceived(self, data: bytes) -> None:
                self.transport.loseConnection()

            def connectionLost(self, reason: Failure | None = None) -> None:
                closed.callback(None)

        port = reactor.listenTCP(0, Factory.forProtocol(Closer), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        creator = tls_context.client_connection_creator(server_addr="127.0.0.1")
        c = yield self.connect(port.getHost().port, creator=creator)
        self.assertIsInstance(c.reason.value, (ConnectionLost, ConnectionDone, SSL.Error))
        self.assertIn("frps does not speak TLS", tls_context.describe_tls_error(c.reason))
        yield closed.addTimeout(10, reactor)  # the server side closed too


class ClientFactoryTests(_SocketTestBase):
    @inlineCallbacks
    def test_callbacks_forwarded(self) -> Any:
        """connectTCP's ClientFactory callbacks reach the wrapped factory."""
        probe = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        port = probe.getHost().port
        yield probe.stopListening()
        creator = tls_context.client_connection_creator(server_addr="127.0.0.1")
        d, factory = self.dial(port, creator=creator)
        yield self.assertFailure(d, Exception)
        self.assertEqual(factory.events, ["startedConnecting", "clientConnectionFailed"])

    @inlineCallbacks
    def test_connection_lost_forwarded(self) -> Any:
        port, _, _ = self.listen()
        creator = tls_context.client_connection_creator(server_addr="127.0.0.1")
        d, factory = self.dial(port, creator=creator)
        yield d
        yield deferLater(reactor, 0, lambda: None)
        self.assertEqual(factory.events, ["startedConnecting", "clientConnectionLost"])


# -- memory tests -------------------------------------------------------------------


class ClientHelloTests(_PKIMixin, SynchronousTestCase):
    """What frpc puts on the wire first."""

    def hello(self, creator: Any, custom_first_byte: bool) -> bytes:
        factory = tls_client.wrap_client_factory(
            Factory.forProtocol(Protocol), creator, custom_first_byte=custom_first_byte,
            clock=MemoryReactorClock(),
        )
        proto = factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        return transport.value()

    def test_custom_first_byte(self) -> None:
        data = self.hello(tls_context.client_connection_creator(server_addr="127.0.0.1"), True)
        self.assertEqual(data[:2], b"\x17\x16")

    def test_raw(self) -> None:
        data = self.hello(tls_context.client_connection_creator(server_addr="127.0.0.1"), False)
        self.assertEqual(data[:1], b"\x16")

    def test_sni_server_name(self) -> None:
        data = self.hello(tls_context.client_connection_creator(server_addr="10.1.2.3", server_name="frps.example"), True)
        self.assertIn(b"frps.example", data)

    def test_sni_server_addr(self) -> None:
        data = self.hello(tls_context.client_connection_creator(server_addr="frps.example"), True)
        self.assertIn(b"frps.example", data)

    def test_no_ip_in_sni(self) -> None:
        for addr in ("10.1.2.3", "::1", "[::1]"):
            data = self.hello(tls_context.client_connection_creator(server_addr=addr), True)
            self.assertNotIn(addr.strip("[]").encode(), data)

    def test_no_ip_in_sni_verifying(self) -> None:
        f = self.pki_files()
        data = self.hello(tls_context.client_connection_creator(server_addr="10.1.2.3", trusted_ca_file=f["ca"]), True)
        self.assertNotIn(b"10.1.2.3", data)

    def test_builds_none(self) -> None:
        factory = tls_client.wrap_client_factory(
            Factory.forProtocol(Protocol), tls_context.client_connection_creator(server_addr="x"), custom_first_byte=True
        )
        factory.wrappedFactory.buildProtocol = lambda addr: None  # type: ignore[attr-defined]
        self.assertIsNone(factory.buildProtocol(None))


class _FakeFactory(Factory):
    def __init__(self) -> None:
        self.built: list[Protocol] = []

    def buildProtocol(self, addr: Any) -> Protocol:
        p = _Recorder()
        self.built.append(p)
        return p


class _Recorder(Protocol):
    def __init__(self) -> None:
        self.data = b""

    def dataReceived(self, data: bytes) -> None:
        self.data += data


class SnifferMemoryTests(SynchronousTestCase):
    """The sniffer's timer and plain path, on a fake clock."""

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.inner = _FakeFactory()
        self.factory = tls_server.TLSSniffingFactory(
            self.inner, tls_context.server_context_factory(), force=False, reactor=self.clock
        )
        self.proto = self.factory.buildProtocol(None)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def test_timeout_closes_silent_connection(self) -> None:
        self.clock.advance(9.9)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.2)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.inner.built, [])

    def test_data_cancels_timeout(self) -> None:
        self.proto.dataReceived(b"\x00\x01")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(20)
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.inner.built[0].data, b"\x00\x01")
        self.proto.dataReceived(b"more")
        self.assertEqual(self.inner.built[0].data, b"\x00\x01more")

    def test_connection_lost_cancels_timeout(self) -> None:
        self.proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.factory.protocols, {})

    def test_custom_byte_dropped(self) -> None:
        """0x17 is consumed; the TLS layer sees the ClientHello from 0x16 on."""
        self.proto.dataReceived(b"\x17")
        delegate = self.proto._delegate
        self.assertIsInstance(delegate, tls_server.ServerTLSProtocol)
        self.assertIs(delegate.wrappedProtocol, self.inner.built[0])

    def test_custom_timeout(self) -> None:
        factory = tls_server.TLSSniffingFactory(
            self.inner, tls_context.server_context_factory(), force=False, reactor=self.clock, sniff_timeout=1
        )
        proto = factory.buildProtocol(None)
        t = StringTransport()
        proto.makeConnection(t)
        self.clock.advance(1)
        self.assertTrue(t.disconnecting)


class _Greeter(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"hello")


class MemoryHandshakeTests(SynchronousTestCase):
    """
    A complete client/server handshake in memory, the client's bytes fed to
    the sniffer one at a time: the worst case of TCP segmentation (frp 0.31.2
    itself sends 0x17 as a separate segment).
    """

    def handshake(self, custom_first_byte: bool) -> _Recorder:
        clock = MemoryReactorClock()
        inner = _FakeFactory()
        sniffing = tls_server.TLSSniffingFactory(inner, tls_context.server_context_factory(), force=True, reactor=clock)
        server = sniffing.buildProtocol(None)
        server_transport = StringTransport()
        server.makeConnection(server_transport)
        client = tls_client.wrap_client_factory(
            Factory.forProtocol(_Greeter),
            tls_context.client_connection_creator(server_addr="127.0.0.1"),
            custom_first_byte=custom_first_byte,
            clock=clock,
        ).buildProtocol(None)
        client_transport = StringTransport()
        client.makeConnection(client_transport)
        for _ in range(20):
            data = client_transport.value()
            client_transport.clear()
            for i in range(len(data)):
                server.dataReceived(data[i : i + 1])
            data = server_transport.value()
            server_transport.clear()
            if data:
                client.dataReceived(data)
            clock.advance(0)  # flush TLS write batching
            if inner.built and inner.built[0].data:
                break
        self.assertFalse(server_transport.disconnecting)
        self.assertEqual(len(inner.built), 1)
        self.assertTrue(ISSLTransport.providedBy(inner.built[0].transport))
        return inner.built[0]

    def test_custom_first_byte(self) -> None:
        self.assertEqual(self.handshake(True).data, b"hello")

    def test_raw(self) -> None:
        self.assertEqual(self.handshake(False).data, b"hello")


class SnifferHalfCloseMemoryTests(SynchronousTestCase):
    """Half-close when the delegate cannot handle it, or before sniffing."""

    def setUp(self) -> None:
        self.inner = _FakeFactory()
        factory = tls_server.TLSSniffingFactory(
            self.inner, tls_context.server_context_factory(), force=False, reactor=MemoryReactorClock()
        )
        self.proto = factory.buildProtocol(None)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def test_not_half_closeable_inner(self) -> None:
        """Like the TCP transport itself: a FIN closes a protocol that cannot half-close."""
        self.proto.dataReceived(b"o")
        self.proto.readConnectionLost()
        self.assertTrue(self.transport.disconnecting)

    def test_before_first_byte(self) -> None:
        self.proto.readConnectionLost()
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.inner.built, [])

    def test_write_connection_lost_ignored(self) -> None:
        self.proto.dataReceived(b"o")
        self.proto.writeConnectionLost()
        self.assertFalse(self.transport.disconnecting)


class CertificateTests(_PKIMixin, SynchronousTestCase):
    def test_generate_self_signed(self) -> None:
        cert_pem, key_pem = tls_context.generate_self_signed("frps")
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, None)
        self.assertIsInstance(key, ec.EllipticCurvePrivateKey)
        self.assertEqual(key.curve.name, "secp256r1")  # type: ignore[union-attr]
        self.assertEqual(cert.public_key().public_numbers(), key.public_key().public_numbers())  # type: ignore[union-attr]
        self.assertEqual(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, "frps")
        self.assertLess(cert.serial_number, 1 << 128)
        self.assertGreater(cert.serial_number, 0)
        now = datetime.datetime.now(datetime.timezone.utc)
        before = cert.not_valid_before_utc
        self.assertLess(abs((now - before) - datetime.timedelta(hours=1)), datetime.timedelta(minutes=5))
        self.assertGreater(cert.not_valid_after_utc - now, datetime.timedelta(days=3649))
        self.assertNotEqual(cert.serial_number, x509.load_pem_x509_certificate(tls_context.generate_self_signed()[0]).serial_number)

    def test_missing_files(self) -> None:
        with self.assertRaises(TLSConfigError) as e:
            tls_context.server_context_factory(cert_file="/nonexistent/c.pem", key_file="/nonexistent/k.pem")
        self.assertIn("transport.tls.certFile", str(e.exception))
        with self.assertRaises(TLSConfigError):
            tls_context.client_connection_creator(server_addr="x", trusted_ca_file="/nonexistent/ca.pem")

    def test_cert_without_key(self) -> None:
        f = self.pki_files()
        with self.assertRaises(TLSConfigError):
            tls_context.client_connection_creator(server_addr="x", cert_file=f["client"])

    def test_garbage_file(self) -> None:
        path = self.mktemp()
        with open(path, "w") as fh:
            fh.write("not a certificate")
        with self.assertRaises(TLSConfigError) as e:
            tls_context.server_context_factory(trusted_ca_file=path)
        self.assertIn("trustedCaFile", str(e.exception))


class DescribeErrorTests(SynchronousTestCase):
    def ssl_error(self, reason: str) -> SSL.Error:
        return SSL.Error([("SSL routines", "", reason)])

    def test_plain_peer(self) -> None:
        self.assertIn("server does not speak TLS", tls_context.describe_tls_error(self.ssl_error("wrong version number")))
        self.assertIn(
            "peer sent plain text where TLS was expected",
            tls_context.describe_tls_error(Failure(self.ssl_error("http request")), side="server"),
        )

    def test_certificate_required(self) -> None:
        self.assertIn(
            "client certificate required by frps (transport.tls.trustedCaFile on frps)",
            tls_context.describe_tls_error(self.ssl_error("tlsv13 alert certificate required")),
        )

    def test_verify_codes(self) -> None:
        self.assertIn("has expired", tls_context.describe_tls_error(tls_context.CertificateVerifyError(10, 0, "CN=x")))
        self.assertIn("not trusted", tls_context.describe_tls_error(tls_context.CertificateVerifyError(20, 0, "CN=x")))
        self.assertIn("not yet valid", tls_context.describe_tls_error(tls_context.CertificateVerifyError(9, 0, "CN=x")))
        self.assertIn("verification failed", tls_context.describe_tls_error(tls_context.CertificateVerifyError(9999, 0, "CN=x")))

    def test_unknown(self) -> None:
        self.assertEqual(
            tls_context.describe_tls_error(self.ssl_error("something new")), "TLS handshake failed: something new"
        )
        self.assertEqual(tls_context.describe_tls_error(ValueError("x")), "ValueError: x")
        self.assertIn("TLS handshake failed", tls_context.describe_tls_error(SSL.Error()))

    def test_insecure_warning(self) -> None:
        self.assertIn("trustedCaFile", tls_context.INSECURE_WARNING)


class BindPortTLSOnFirstUseTests(TestCase):
    """frps without TLS settings makes its TLS side (pyOpenSSL, the self-signed certificate) for
    its first TLS client; with TLS settings, at start-up, so that a bad file stops frps there."""

    timeout = 30

    @staticmethod
    def tls_side(frps: Any) -> Any:
        from frptx.transport.tls_sniff import PlainOrTLSFactory

        factory = frps.bind_port.port.factory
        assert isinstance(factory, PlainOrTLSFactory)
        return factory.tls

    def test_made_for_the_first_tls_client(self) -> Deferred[None]:
        from frptx.test.support import MODES, EchoFactory, Tunnel, listen_local, roundtrip, tcp_proxy
        from frptx.transport.tls_sniff import FactoryOnFirstUse

        async def run() -> None:
            echo = listen_local(self, EchoFactory())
            plain = Tunnel(self, MODES["nomux"])
            frps = plain.start_server()
            tls_side = self.tls_side(frps)
            self.assertIsInstance(tls_side, FactoryOnFirstUse)
            plain.start_client([tcp_proxy("plain", echo)])
            self.assertEqual(await roundtrip(await plain.remote_port("plain"), b"plain"), b"plain")
            self.assertIsNone(tls_side.factory, "a plain client made frps build its TLS side")

            tls = Tunnel(self, MODES["nomux_tls"])
            tls.frps = frps
            tls.start_client([tcp_proxy("tls", echo)])
            self.assertEqual(await roundtrip(await tls.remote_port("tls"), b"over TLS"), b"over TLS")
            self.assertIsInstance(tls_side.factory, tls_server.ServerTLSFactory)
            made = tls_side.factory
            self.assertEqual(await roundtrip(await plain.remote_port("plain"), b"plain again"), b"plain again")
            self.assertIs(tls_side.factory, made, "made once")

        return Deferred.fromCoroutine(run())

    def test_tls_settings_are_checked_at_start(self) -> None:
        from frptx.server.service import FrpsService
        from frptx.test.support import server_config

        missing = os.path.join(self.mktemp(), "missing.pem")
        fatal: list[str] = []
        frps = FrpsService(server_config(False, transport={"tls": {"certFile": missing, "keyFile": missing}}),
                           _global_reactor, on_fatal=fatal.append)
        frps.startService()
        self.addCleanup(frps.stopService)
        self.assertEqual(len(fatal), 1, fatal)
        self.assertIn("frps TLS setup failed", fatal[0])
        self.assertIn("missing.pem", fatal[0])

    def test_force_builds_the_tls_side_at_start(self) -> None:
        from frptx.server.service import FrpsService
        from frptx.test.support import server_config

        frps = FrpsService(server_config(False, transport={"tls": {"force": True}}), _global_reactor)
        frps.startService()
        self.addCleanup(frps.stopService)
        self.assertIsInstance(self.tls_side(frps), tls_server.ServerTLSFactory)
