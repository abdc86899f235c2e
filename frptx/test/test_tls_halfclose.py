# -*- test-case-name: frptx.test.test_tls_halfclose -*-
"""
Half-close over TLS (L{frptx.transport.tls_transport.HalfCloseableTLSTransport}):
C{loseWriteConnection} sends C{close_notify} and keeps reading; the peer's
C{close_notify} is C{readConnectionLost} for half-closeable protocols.

Real sockets on 127.0.0.1 between L{tls_server.TLSSniffingFactory} (server) and
L{tls_client.wrap_client_factory} (client), once with frpc's C{0x17} first byte and
once with a raw ClientHello (C{0x16}).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import Any

from OpenSSL import SSL
from twisted.internet import reactor as _global_reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import ClientFactory, Factory, Protocol, connectionDone
from twisted.internet.task import deferLater
from twisted.protocols.basic import FileSender
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from frptx.transport import internals, tls_client, tls_context, tls_server

reactor: Any = _global_reactor

MiB = 1024 * 1024
BIG = bytes(range(256)) * (MiB // 256)

Hook = Callable[["_Peer"], None]


@functools.cache
def _server_context() -> Any:
    return tls_context.server_context_factory()


class _Peer(Protocol):
    """
    Records what happens to it; C{on_*} hooks script the test.  Not
    half-closeable (see L{_HalfPeer}).
    """

    def __init__(
        self,
        on_connect: Hook | None = None,
        on_data: Hook | None = None,
        on_read_lost: Hook | None = None,
    ) -> None:
        self.on_connect = on_connect
        self.on_data = on_data
        self.on_read_lost = on_read_lost
        self.received = b""
        self.events: list[str] = []
        self.reason: Failure | None = None
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.events.append("connectionMade")
        if self.on_connect is not None:
            self.on_connect(self)

    def dataReceived(self, data: bytes) -> None:
        if "readConnectionLost" in self.events:
            self.events.append("data after readConnectionLost!")
        self.received += data
        if self.on_data is not None:
            self.on_data(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.events.append("connectionLost")
        self.reason = reason
        self.lost.callback(None)


@implementer(IHalfCloseableProtocol)
class _HalfPeer(_Peer):
    def readConnectionLost(self) -> None:
        self.events.append("readConnectionLost")
        if self.on_read_lost is not None:
            self.on_read_lost(self)

    def writeConnectionLost(self) -> None:
        self.events.append("writeConnectionLost")


class _OneProtocolFactory(Factory):
    def __init__(self, proto: Protocol) -> None:
        self.proto = proto

    def buildProtocol(self, addr: Any) -> Protocol:
        return self.proto


class _OneClientFactory(ClientFactory, _OneProtocolFactory):
    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.proto.lost.errback(reason)  # type: ignore[attr-defined]


def _once(hook: Hook) -> Hook:
    """C{hook} on the first call only (for C{on_data})."""
    done: list[bool] = []

    def wrapper(p: _Peer) -> None:
        if not done:
            done.append(True)
            hook(p)

    return wrapper


def _send_and_half_close(data: bytes) -> Hook:
    def hook(p: _Peer) -> None:
        p.transport.write(data)  # type: ignore[union-attr]
        p.transport.loseWriteConnection()  # type: ignore[union-attr]

    return hook


def _send_and_close(data: bytes) -> Hook:
    def hook(p: _Peer) -> None:
        p.transport.write(data)  # type: ignore[union-attr]
        p.transport.loseConnection()  # type: ignore[union-attr]

    return hook


def _send(data: bytes) -> Hook:
    def hook(p: _Peer) -> None:
        p.transport.write(data)  # type: ignore[union-attr]

    return hook


class _HalfCloseTestsMixin:
    """The scenarios; subclasses pick the first byte."""

    custom_first_byte: bool
    timeout = 30

    # TestCase API, for the type checker
    addCleanup: Any
    assertEqual: Any
    assertIsInstance: Any
    assertIn: Any
    assertNotIn: Any
    assertTrue: Any
    fail: Any

    def run_pair(self, server: _Peer, client: _Peer) -> Deferred[None]:
        """
        Connect C{client} to C{server} over TLS; fires when both saw
        C{connectionLost} (each after its socket closed).
        """
        sniffing = tls_server.TLSSniffingFactory(
            _OneProtocolFactory(server), _server_context(), force=False, reactor=reactor
        )
        port = reactor.listenTCP(0, sniffing, interface="127.0.0.1")
        self.addCleanup(self._stop, port, sniffing)
        creator = tls_context.client_connection_creator(server_addr="127.0.0.1")
        outer = tls_client.wrap_client_factory(
            _OneClientFactory(client), creator, custom_first_byte=self.custom_first_byte
        )
        reactor.connectTCP("127.0.0.1", port.getHost().port, outer)
        return self._both(server, client)

    @inlineCallbacks
    def _both(self, server: _Peer, client: _Peer) -> Any:
        client.lost.addTimeout(10, reactor)
        yield client.lost
        server.lost.addTimeout(10, reactor)
        yield server.lost

    @inlineCallbacks
    def _stop(self, port: Any, sniffing: tls_server.TLSSniffingFactory) -> Any:
        yield port.stopListening()
        for _ in range(200):
            if not sniffing.protocols:
                return
            yield deferLater(reactor, 0.01, lambda: None)
        for p in list(sniffing.protocols):
            p.transport.abortConnection()
        self.fail("server connection was not closed")

    def assertDone(self, *peers: _Peer) -> None:
        for p in peers:
            self.assertIsInstance(p.reason.value, ConnectionDone)  # type: ignore[union-attr]

    # (1) client half-closes, server answers with a lot and closes

    @inlineCallbacks
    def test_client_half_close(self) -> Any:
        """
        The server sees C{readConnectionLost} after the client's data, can
        still send 1 MiB, and both ends close cleanly.
        """
        server = _HalfPeer(on_connect=_send(b"hi"), on_read_lost=_send_and_close(BIG))
        client = _HalfPeer(on_data=_once(_send_and_half_close(b"request")))
        yield self.run_pair(server, client)
        self.assertEqual(server.received, b"request")
        self.assertEqual(server.events, ["connectionMade", "readConnectionLost", "connectionLost"])
        self.assertEqual(client.received, b"hi" + BIG)
        self.assertEqual(
            client.events, ["connectionMade", "writeConnectionLost", "readConnectionLost", "connectionLost"]
        )
        self.assertDone(server, client)

    @inlineCallbacks
    def test_client_half_close_producer(self) -> Any:
        """
        As L{test_client_half_close}, but the reply comes from a (pull)
        producer, so TLS producer pausing runs after the half-close.
        """

        def reply(p: _Peer) -> None:
            d = FileSender().beginFileTransfer(io.BytesIO(BIG), p.transport)
            d.addCallback(lambda _: p.transport.loseConnection())  # type: ignore[union-attr]

        server = _HalfPeer(on_connect=_send(b"hi"), on_read_lost=reply)
        client = _HalfPeer(on_data=_once(_send_and_half_close(b"request")))
        yield self.run_pair(server, client)
        self.assertEqual(server.received, b"request")
        self.assertEqual(client.received, b"hi" + BIG)
        self.assertDone(server, client)

    # (2) the mirror: the server half-closes, the client goes on sending

    @inlineCallbacks
    def test_server_half_close(self) -> Any:
        """
        The server's C{loseWriteConnection} is C{readConnectionLost} on the
        client, which sends 1 MiB more; writes after the half-close are
        dropped.
        """

        def half_close(p: _Peer) -> None:
            p.transport.write(b"greeting")  # type: ignore[union-attr]
            p.transport.loseWriteConnection()  # type: ignore[union-attr]
            p.transport.write(b"dropped")  # type: ignore[union-attr]
            p.transport.writeSequence([b"dropped", b"too"])  # type: ignore[union-attr]

        server = _HalfPeer(on_data=_once(half_close))
        client = _HalfPeer(on_connect=_send(b"hello"), on_read_lost=_send_and_close(BIG))
        yield self.run_pair(server, client)
        self.assertEqual(client.received, b"greeting")
        self.assertEqual(client.events, ["connectionMade", "readConnectionLost", "connectionLost"])
        self.assertEqual(server.received, b"hello" + BIG)
        self.assertEqual(
            server.events, ["connectionMade", "writeConnectionLost", "readConnectionLost", "connectionLost"]
        )
        self.assertDone(server, client)

    # (3) both sides half-close

    @inlineCallbacks
    def test_both_half_close(self) -> Any:
        """
        Once both C{close_notify}s crossed, both ends close their sockets
        and get C{ConnectionDone} (trial would report a dirty reactor
        otherwise).
        """
        server = _HalfPeer(on_connect=_send(b"hi"), on_read_lost=_send_and_half_close(b"answer"))
        client = _HalfPeer(on_data=_once(_send_and_half_close(b"question")))
        yield self.run_pair(server, client)
        self.assertEqual(server.received, b"question")
        self.assertEqual(client.received, b"hi" + b"answer")
        self.assertEqual(
            server.events, ["connectionMade", "readConnectionLost", "writeConnectionLost", "connectionLost"]
        )
        self.assertEqual(
            client.events, ["connectionMade", "writeConnectionLost", "readConnectionLost", "connectionLost"]
        )
        self.assertDone(server, client)

    # (4) protocols that cannot half-close

    @inlineCallbacks
    def test_not_half_closeable_server(self) -> Any:
        """The peer's C{close_notify} still closes a plain protocol."""
        server = _Peer(on_connect=_send(b"hi"))
        client = _HalfPeer(on_data=_once(_send_and_half_close(b"request")))
        yield self.run_pair(server, client)
        self.assertEqual(server.received, b"request")
        self.assertEqual(server.events, ["connectionMade", "connectionLost"])
        self.assertEqual(client.events, ["connectionMade", "writeConnectionLost", "readConnectionLost",
                                         "connectionLost"])
        self.assertDone(server, client)

    @inlineCallbacks
    def test_not_half_closeable_client(self) -> Any:
        server = _HalfPeer(on_data=_once(_send_and_half_close(b"reply")))
        client = _Peer(on_connect=_send(b"hello"))
        yield self.run_pair(server, client)
        self.assertEqual(client.received, b"reply")
        self.assertEqual(client.events, ["connectionMade", "connectionLost"])
        self.assertDone(server, client)

    # (5) loseConnection / abortConnection after loseWriteConnection

    @inlineCallbacks
    def test_lose_connection_after_half_close(self) -> Any:
        """
        C{loseConnection} after C{loseWriteConnection} closes at once, even
        though the peer (half-closeable, still open for writing) never
        answers with its own C{close_notify}.
        """

        def half_then_close(p: _Peer) -> None:
            p.transport.write(b"request")  # type: ignore[union-attr]
            p.transport.loseWriteConnection()  # type: ignore[union-attr]
            reactor.callLater(0.05, p.transport.loseConnection)  # type: ignore[union-attr]

        server = _HalfPeer(on_connect=_send(b"hi"))
        client = _HalfPeer(on_data=_once(half_then_close))
        yield self.run_pair(server, client)
        self.assertEqual(server.received, b"request")
        self.assertEqual(server.events, ["connectionMade", "readConnectionLost", "connectionLost"])
        self.assertEqual(client.events, ["connectionMade", "writeConnectionLost", "connectionLost"])
        self.assertDone(server, client)

    @inlineCallbacks
    def test_server_lose_connection_after_half_close(self) -> Any:
        def half_then_close(p: _Peer) -> None:
            p.transport.write(b"reply")  # type: ignore[union-attr]
            p.transport.loseWriteConnection()  # type: ignore[union-attr]
            p.transport.loseConnection()  # type: ignore[union-attr]

        server = _HalfPeer(on_data=_once(half_then_close))
        client = _HalfPeer(on_connect=_send(b"hello"))
        yield self.run_pair(server, client)
        self.assertEqual(client.received, b"reply")
        self.assertEqual(client.events, ["connectionMade", "readConnectionLost", "connectionLost"])
        self.assertDone(server, client)

    @inlineCallbacks
    def test_abort_after_half_close(self) -> Any:
        def half_then_abort(p: _Peer) -> None:
            p.transport.write(b"request")  # type: ignore[union-attr]
            p.transport.loseWriteConnection()  # type: ignore[union-attr]
            p.transport.abortConnection()  # type: ignore[union-attr]

        server = _HalfPeer(on_connect=_send(b"hi"))
        client = _HalfPeer(on_data=_once(half_then_abort))
        yield self.run_pair(server, client)
        # Twisted reports the abort as ConnectionLost: after the TCP abort
        # OpenSSL sees a truncated stream.
        self.assertIsInstance(client.reason.value, (ConnectionAborted, ConnectionLost))  # type: ignore[union-attr]
        self.assertIn("connectionLost", server.events)

    # (6) loseWriteConnection before the handshake is done

    @inlineCallbacks
    def test_half_close_before_handshake(self) -> Any:
        """
        Both ends write and half-close in C{connectionMade}, before the
        handshake: the data arrives first, then the C{close_notify}s.
        """
        server = _HalfPeer(on_connect=_send_and_half_close(b"server data"))
        client = _HalfPeer(on_connect=_send_and_half_close(b"client data"))
        yield self.run_pair(server, client)
        self.assertEqual(server.received, b"client data")
        self.assertEqual(client.received, b"server data")
        for p in (server, client):
            self.assertEqual(p.events[:2], ["connectionMade", "writeConnectionLost"])
            self.assertEqual(sorted(p.events[2:]), ["connectionLost", "readConnectionLost"])
            self.assertEqual(p.events[-1], "connectionLost")
        self.assertDone(server, client)

    @inlineCallbacks
    def test_client_half_close_before_handshake(self) -> Any:
        server = _HalfPeer(on_read_lost=_send_and_close(BIG))
        client = _HalfPeer(on_connect=_send_and_half_close(b"early"))
        yield self.run_pair(server, client)
        self.assertEqual(server.received, b"early")
        self.assertEqual(client.received, BIG)
        self.assertDone(server, client)

    @inlineCallbacks
    def test_half_close_only_before_handshake(self) -> Any:
        """Nothing written: the C{close_notify} alone still follows the handshake."""
        server = _HalfPeer(on_read_lost=_send_and_close(b"ok"))
        client = _HalfPeer(on_connect=lambda p: p.transport.loseWriteConnection())  # type: ignore[union-attr]
        yield self.run_pair(server, client)
        self.assertEqual(server.received, b"")
        self.assertEqual(client.received, b"ok")
        self.assertDone(server, client)

    # plain loseConnection against a half-closeable peer

    @inlineCallbacks
    def test_lose_connection_to_half_closeable_peer(self) -> Any:
        """
        A full close looks like a half-close to a half-closeable peer (as a
        TCP FIN does); whatever it still sends is not delivered to the
        protocol that called C{loseConnection}, which closed its socket right
        after its C{close_notify} (as Go does): the late write may meet a
        reset, as it would over TCP.
        """
        server = _HalfPeer(on_connect=_send(b"hi"), on_read_lost=_send_and_close(b"late"))
        client = _HalfPeer(on_data=_once(_send_and_close(b"bye")))
        yield self.run_pair(server, client)
        self.assertEqual(server.received, b"bye")
        self.assertEqual(server.events, ["connectionMade", "readConnectionLost", "connectionLost"])
        self.assertEqual(client.received, b"hi")
        self.assertDone(client)
        self.assertIsInstance(server.reason.value, (ConnectionDone, ConnectionLost))  # type: ignore[union-attr]

    # loseConnection while the application had paused reading

    @inlineCallbacks
    def test_lose_connection_while_paused(self) -> Any:
        """
        A protocol that paused its transport (frpc's work connection does while
        it dials the local service) and then closes is closed at once, whatever
        the peer does: it does not wait for a C{close_notify} it will not read.
        """

        def pause_and_close(p: _Peer) -> None:
            p.transport.pauseProducing()  # type: ignore[union-attr]
            p.transport.loseConnection()  # type: ignore[union-attr]

        for server in (_Peer(on_connect=_send(b"hi")),
                       _HalfPeer(on_connect=_send(b"hi"), on_read_lost=_send_and_close(b"late"))):
            client = _Peer(on_data=_once(pause_and_close))
            yield self.run_pair(server, client)
            self.assertEqual(client.received, b"hi")
            self.assertDone(client)
            # the server's answer may meet the closed socket (a reset), as over TCP
            self.assertIsInstance(server.reason.value, (ConnectionDone, ConnectionLost))  # type: ignore[union-attr]


class CustomFirstByteHalfCloseTests(_HalfCloseTestsMixin, TestCase):
    """frpc's default: C{0x17}, then the ClientHello."""

    custom_first_byte = True


class RawClientHelloHalfCloseTests(_HalfCloseTestsMixin, TestCase):
    """C{disableCustomTLSFirstByte}: the ClientHello's C{0x16} first."""

    custom_first_byte = False


class PyOpenSSLMethodsHalfCloseTests(_HalfCloseTestsMixin, TestCase):
    """The same, with OpenSSL called through pyOpenSSL's methods (the data path's fallback,
    L{internals.API_CALLS}) instead of its cffi binding."""

    custom_first_byte = True

    def setUp(self) -> None:
        self.patch(internals.TLSMemoryBIOHooks, "tls_calls", internals.API_CALLS)


class OpenSSLAssumptionTests(TestCase):
    """
    What the half-close relies on, checked against the installed OpenSSL for
    TLS 1.2 and 1.3: sending after the peer's C{close_notify}, and receiving
    after our own.
    """

    def _pair(self, version: int) -> tuple[SSL.Connection, SSL.Connection]:
        server = SSL.Connection(_server_context().getContext(), None)
        server.set_accept_state()
        ctx = SSL.Context(SSL.TLS_METHOD)
        ctx.set_min_proto_version(version)
        ctx.set_max_proto_version(version)
        client = SSL.Connection(ctx, None)
        client.set_connect_state()
        for _ in range(10):
            for c in (client, server):
                try:
                    c.do_handshake()
                except SSL.WantReadError:
                    pass
            self._pump(client, server)
        return server, client

    @staticmethod
    def _pump(a: SSL.Connection, b: SSL.Connection) -> None:
        moved = True
        while moved:
            moved = False
            for src, dst in ((a, b), (b, a)):
                try:
                    data = src.bio_read(2**16)
                except SSL.WantReadError:
                    continue
                if data:
                    dst.bio_write(data)
                    moved = True

    @staticmethod
    def _read(c: SSL.Connection) -> bytes:
        out = b""
        while True:
            try:
                out += c.recv(2**16)
            except SSL.WantReadError:
                return out
            except SSL.ZeroReturnError:
                return out + b"<close_notify>"

    def _check(self, version: int, name: str) -> None:
        server, client = self._pair(version)
        self.assertEqual(client.get_protocol_version_name(), name)
        client.send(b"request")
        self.assertEqual(client.shutdown(), False)
        self._pump(client, server)
        self.assertEqual(self._read(server), b"request<close_notify>")
        server.send(b"reply")
        self._pump(client, server)
        self.assertEqual(self._read(client), b"reply")
        self.assertEqual(server.shutdown(), True)
        self._pump(client, server)
        self.assertEqual(self._read(client), b"<close_notify>")

    def test_tls12(self) -> None:
        self._check(SSL.TLS1_2_VERSION, "TLSv1.2")

    def test_tls13(self) -> None:
        self._check(SSL.TLS1_3_VERSION, "TLSv1.3")
