"""Shared pieces of the client-plugin tests: curl, backends, a pusher, certificates."""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest
from twisted.web import resource, server
from zope.interface import implementer

from frptx.protocols.transforms import connect_through
from frptx.test.support import listen_local, with_timeout
from frptx.transport.internals_tcp import tcp_unsent_bytes

CURL = shutil.which("curl")


async def curl(*args: str) -> tuple[bytes, bytes, int]:
    """Run curl (no proxy from the environment) and return (stdout, stderr, exit code)."""
    if CURL is None:
        if os.environ.get("CI") == "true":  # .ci/run installs curl: a missing one is a failure there
            raise AssertionError("curl is not installed, though CI installs it")
        raise SkipTest("curl is not installed (apt-get install -y curl)")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"}
    d = getProcessOutputAndValue(CURL, ["-sS", "--max-time", "10", "--noproxy", "", *args], env=env)
    out, err, code = await with_timeout(d, 20)
    return out, err, code


class EchoRequest(resource.Resource):
    """A backend answering every request with what it saw, as JSON."""

    isLeaf = True

    def render(self, request: Any) -> bytes:
        body = request.content.read()
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps({
            "method": request.method.decode(),
            "uri": request.uri.decode(),
            "headers": [[k.decode(), v.decode()] for k, vs in request.requestHeaders.getAllRawHeaders() for v in vs],
            "body": body.decode("latin-1"),
            "secure": bool(request.isSecure()),
        }).encode()


class _QuietSite(server.Site):
    def log(self, request: Any) -> None:
        pass


def echo_site() -> server.Site:
    return _QuietSite(EchoRequest())


def listen_http_backend(testcase: Any) -> int:
    return listen_local(testcase, echo_site())


def header(seen: dict[str, Any], name: str) -> list[str]:
    return [v for k, v in seen["headers"] if k.lower() == name.lower()]


@implementer(IPushProducer)
class Pusher(Protocol):
    """Writes ``prefix`` then ``total`` bytes as fast as its transport lets it (a producer).

    ``paused`` fires the first time the transport pushes back; ``sent`` counts.
    """

    def __init__(self, total: int, prefix: bytes = b"", chunk: int = 1 << 16, autostart: bool = True,
                 close_when_done: bool = True) -> None:
        self.autostart = autostart
        self.close_when_done = close_when_done
        self.total = total
        self.prefix = prefix
        self.chunk = b"x" * chunk
        self.sent = 0
        self.is_paused = False
        self.paused: Deferred[int] = Deferred()
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        if self.autostart:
            self.start()

    def start(self) -> None:
        self.transport.registerProducer(self, True)
        if self.prefix:
            self.transport.write(self.prefix)
        self.resumeProducing()

    def pauseProducing(self) -> None:
        self.is_paused = True
        if not self.paused.called:
            self.paused.callback(self.sent)

    def resumeProducing(self) -> None:
        self.is_paused = False
        while not self.is_paused and self.sent < self.total and self.transport is not None:
            n = min(len(self.chunk), self.total - self.sent)
            self.sent += n
            self.transport.write(self.chunk[:n])
        if self.sent >= self.total and not self.is_paused and self.transport is not None:
            self.transport.unregisterProducer()
            if self.close_when_done:
                self.transport.loseConnection()

    def stopProducing(self) -> None:
        self.is_paused = True

    def connectionLost(self, reason: Any = None) -> None:
        if not self.lost.called:
            self.lost.callback(None)


class Recording(Factory):
    """Wraps a factory and keeps the protocols it built (to look at their transports)."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self.built: list[Any] = []

    def buildProtocol(self, addr: Any) -> Any:
        protocol = self.factory.buildProtocol(addr)
        self.built.append(protocol)
        return protocol


class OneProtocol(Factory):
    """Hands out one prepared protocol per connection, in order."""

    def __init__(self, *protocols: Protocol) -> None:
        self.protocols = list(protocols)

    def buildProtocol(self, addr: Any) -> Protocol:
        return self.protocols.pop(0)


def buffered(transport: Any) -> int:
    """Bytes a Twisted TCP transport holds in its write buffer."""
    unsent = tcp_unsent_bytes(transport)
    assert unsent is not None, f"not a plain TCP transport: {transport!r}"
    return unsent


def make_cert(directory: str) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and localhost; returns (crt path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    crt_path = os.path.join(directory, "server.crt")
    key_path = os.path.join(directory, "server.key")
    with open(crt_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return crt_path, key_path


__all__ = ["curl", "defer", "reactor"]


@implementer(IHalfCloseableProtocol)
class HandOff(Protocol):
    """Stands in for frpc's work connection: reads a ``preamble``, then hands the
    connection to a plugin protocol, replaying what it read beyond the preamble.

    This is how frpc will use a plugin: ``buildProtocol``, ``makeConnection`` with
    the already-started transport, ``dataReceived`` with the bytes read early.
    """

    def __init__(self, plugin_factory: Any, preamble: bytes, chain: Any = None) -> None:
        self.plugin_factory = plugin_factory
        self.preamble = preamble
        self.chain = chain
        self.buffer = b""
        self.plugin: Any = None

    def dataReceived(self, data: bytes) -> None:
        if self.plugin is not None:
            self.plugin.dataReceived(data)
            return
        self.buffer += data
        if len(self.buffer) < len(self.preamble):
            return
        if not self.buffer.startswith(self.preamble):
            self.transport.loseConnection()
            return
        early = self.buffer[len(self.preamble):]
        protocol = self.plugin_factory.buildProtocol(self.transport.getPeer())
        # through the work connection's transforms (encryption, compression) if any
        self.plugin = connect_through(self.chain, protocol, self.transport)
        if early:
            self.plugin.dataReceived(early)

    def readConnectionLost(self) -> None:
        if self.plugin is None:
            self.transport.loseConnection()
            return
        half = IHalfCloseableProtocol(self.plugin, None)
        if half is not None:
            half.readConnectionLost()
        else:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Any = None) -> None:
        if self.plugin is not None:
            self.plugin.connectionLost(reason)


class HandOffFactory(Factory):
    def __init__(self, plugin_factory: Any, preamble: bytes, chain: Any = None) -> None:
        self.plugin_factory = plugin_factory
        self.preamble = preamble
        self.chain = chain

    def buildProtocol(self, addr: Any) -> Protocol:
        return HandOff(self.plugin_factory, self.preamble, self.chain() if self.chain else None)
