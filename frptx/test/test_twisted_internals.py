# -*- test-case-name: frptx.test.test_twisted_internals -*-
"""
Canaries for L{frptx.transport.internals}: every private Twisted (and pyOpenSSL)
attribute frptx relies on, checked for presence, signature and behaviour.

When a Twisted release changes one of them, a test here fails with a message
naming the Twisted attribute and the frptx function that relies on it; fix that
function (and only it) in L{frptx.transport.internals}.
"""
from __future__ import annotations

import inspect
import re
import socket
from pathlib import Path
from typing import Any

from OpenSSL import SSL
from twisted.internet import reactor as _global_reactor, tcp
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol, IReadDescriptor, ISystemHandle
from twisted.internet.protocol import ClientFactory, Factory, Protocol, connectionDone
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

import frptx
from frptx.transport import internals, internals_tcp
from frptx.transport.tls_context import client_connection_creator, server_context_factory

reactor: Any = _global_reactor


def _changed(attribute: str, user: str) -> str:
    return (f"Twisted changed {attribute}, which {user} (frptx.transport.internals*) relies on: "
            f"adapt {user} to the new Twisted")


# -- real TCP connections over 127.0.0.1 -----------------------------------------------------


class _Recorder(Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.chunks: list[bytes] = []
        self.made: Deferred[None] = Deferred()
        self.lost: Deferred[list[Failure]] = Deferred()
        self.got: Deferred[None] | None = None
        self.want = 0

    def connectionMade(self) -> None:
        self.made.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self.chunks.append(data)
        if self.got is not None and len(self.received) >= self.want:
            got, self.got = self.got, None
            got.callback(None)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback([reason])


def _wait_for(recorder: _Recorder, size: int) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    recorder.want = size
    recorder.got = d
    if len(recorder.received) >= size:
        recorder.got = None
        d.callback(None)
    return d


@implementer(IHalfCloseableProtocol)
class _HalfRecorder(_Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.read_lost: Deferred[None] = Deferred()
        self.write_lost: Deferred[None] = Deferred()

    def readConnectionLost(self) -> None:
        self.read_lost.callback(None)

    def writeConnectionLost(self) -> None:
        self.write_lost.callback(None)


class _One(ClientFactory):
    noisy = False

    def __init__(self, protocol: Protocol) -> None:
        self.p = protocol

    def buildProtocol(self, addr: Any) -> Protocol:
        return self.p


class TCPTransportCanaries(TestCase):
    """``twisted.internet.tcp.Connection`` internals, on real loopback connections."""

    @inlineCallbacks
    def connect(self, server_cls: type[_Recorder] = _Recorder,
                client_cls: type[_Recorder] = _Recorder) -> Any:
        server, client = server_cls(), client_cls()
        port = reactor.listenTCP(0, _One(server), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        reactor.connectTCP("127.0.0.1", port.getHost().port, _One(client))
        yield server.made
        yield client.made

        def close() -> Deferred[Any]:
            for p in (server, client):
                if p.transport is not None and p.transport.connected:
                    p.transport.abortConnection()
            return server.lost.addCallback(lambda _: client.lost)

        self.addCleanup(close)
        return server, client

    def test_classes(self) -> None:
        for cls in (tcp.Server, tcp.Client):
            self.assertTrue(issubclass(cls, tcp.Connection),
                            _changed(f"twisted.internet.tcp.{cls.__name__} (no longer a tcp.Connection)",
                                     "is_plain_tcp / tcp_idle"))
        self.assertIs(tcp.Connection.TLS, False, _changed("tcp.Connection.TLS", "is_plain_tcp / tcp_idle"))

    @inlineCallbacks
    def test_write_buffer_attributes(self) -> Any:
        server, _client = yield self.connect()
        t = server.transport
        self.assertTrue(internals_tcp.is_plain_tcp(t), _changed("tcp.Server / tcp.Connection.TLS", "is_plain_tcp"))
        self.assertTrue(ISystemHandle.providedBy(t))
        self.assertIsInstance(t.getHandle(), socket.socket)
        for name in ("dataBuffer", "offset", "_tempDataBuffer", "_tempDataLen", "_writeDisconnected",
                     "_shouldShutdown", "bufferSize", "connected", "disconnecting"):
            self.assertTrue(hasattr(t, name),
                            _changed(f"tcp.Connection.{name} (missing)", "tcp_idle / take_tcp_write_buffer"))
        self.assertTrue(internals_tcp.tcp_idle(t), _changed("an idle tcp.Connection's write buffer", "tcp_idle"))
        self.assertEqual(internals_tcp.tcp_unsent_bytes(t), 0)

    @inlineCallbacks
    def test_written_bytes_wait_in_the_buffer(self) -> Any:
        """``write`` queues (``_tempDataBuffer``/``_tempDataLen``, then ``dataBuffer``
        from ``offset``); the functions see it and can take it back."""
        server, client = yield self.connect()
        t = server.transport
        t.write(b"abc")
        t.writeSequence([b"de", b"f"])
        self.assertEqual(internals_tcp.tcp_unsent_bytes(t), 6,
                         _changed("tcp.Connection.write buffering (dataBuffer/offset/_tempDataLen)",
                                  "tcp_unsent_bytes"))
        self.assertFalse(internals_tcp.tcp_idle(t), _changed("tcp.Connection.write buffering", "tcp_idle"))
        self.assertEqual(internals_tcp.take_tcp_write_buffer(t), b"abcdef",
                         _changed("tcp.Connection._tempDataBuffer / dataBuffer", "take_tcp_write_buffer"))
        self.assertEqual(internals_tcp.tcp_unsent_bytes(t), 0)
        self.assertTrue(internals_tcp.tcp_idle(t))
        # nothing taken is sent by Twisted later; what is written next arrives alone
        t.write(b"next")
        yield _wait_for(client, 4)
        self.assertEqual(client.received, b"next",
                         _changed("tcp.Connection write buffer (taken bytes were still sent)",
                                  "take_tcp_write_buffer"))

    @inlineCallbacks
    def test_bytes_taken_from_a_partly_sent_buffer(self) -> Any:
        """Once ``doWrite`` moved the queue to ``dataBuffer`` and sent part of it
        (``offset``), the rest is what is taken."""
        server, client = yield self.connect()
        t = server.transport
        client.transport.pauseProducing()  # the peer stops reading: the socket fills
        big = bytes(range(256)) * 64 * 1024  # 16 MiB: more than the socket buffers take
        t.write(big)
        t.doWrite()  # Twisted's own write turn: sends what the socket takes
        unsent = internals_tcp.tcp_unsent_bytes(t)
        assert unsent is not None
        self.assertGreater(unsent, 0)
        self.assertGreater(t.offset, 0, _changed("tcp.Connection.offset (bytes of dataBuffer already sent)",
                                                 "take_tcp_write_buffer"))
        taken = internals_tcp.take_tcp_write_buffer(t)
        self.assertEqual(len(taken), unsent)
        self.assertEqual(taken, big[len(big) - unsent:],
                         _changed("tcp.Connection.dataBuffer/offset", "take_tcp_write_buffer"))
        client.transport.resumeProducing()
        yield _wait_for(client, len(big) - unsent)
        self.assertEqual(client.received, big[:len(big) - unsent])

    @inlineCallbacks
    def test_write_side_closed(self) -> Any:
        server, client = yield self.connect(client_cls=_HalfRecorder)
        t = server.transport
        t.loseWriteConnection()
        yield client.read_lost
        self.assertTrue(t.connected)
        self.assertFalse(internals_tcp.tcp_idle(t),
                         _changed("tcp.Connection._writeDisconnected (set by loseWriteConnection)", "tcp_idle"))

    @inlineCallbacks
    def test_buffer_size_bounds_reads(self) -> Any:
        server, client = yield self.connect()
        self.assertTrue(internals_tcp.set_tcp_buffer_size(server.transport, 10))
        self.assertFalse(internals_tcp.set_tcp_buffer_size(object(), 10))
        client.transport.write(b"x" * 100)
        yield _wait_for(server, 100)
        self.assertLessEqual(max(map(len, server.chunks)), 10,
                             _changed("tcp.Connection.bufferSize (no longer the read size)",
                                      "set_tcp_buffer_size"))

    @inlineCallbacks
    def test_close_now_skips_shutdown(self) -> Any:
        server, client = yield self.connect()
        t = server.transport
        calls: list[str] = []
        real = t.socket

        class Spy:
            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            def shutdown(self, how: int) -> None:
                calls.append("shutdown")
                real.shutdown(how)

        t.socket = Spy()
        internals_tcp.close_tcp_now([t], Failure(ConnectionDone()))
        [reason] = yield server.lost
        self.assertIsInstance(reason.value, ConnectionDone)
        self.assertFalse(t.connected)
        self.assertEqual(calls, [], _changed("tcp.Connection._shouldShutdown (shutdown(2) still made)",
                                             "close_tcp_now"))
        yield client.lost  # the peer sees the close

    @inlineCallbacks
    def test_read_registration_handed_over(self) -> Any:
        from twisted.internet.epollreactor import EPollReactor

        server, client = yield self.connect()
        t = server.transport
        if not isinstance(reactor, EPollReactor):
            raise self.skipTest("the hand-over is made for the epoll reactor only")
        events: list[str] = []

        @implementer(IReadDescriptor)
        class Taker:
            def fileno(self) -> int:
                return int(t.fileno())

            def doRead(self) -> None:
                events.append("read")
                t.socket.recv(100)

            def connectionLost(self, reason: Any) -> None:
                events.append("lost")

            def logPrefix(self) -> str:
                return "Taker"

        taker = Taker()
        self.assertTrue(internals_tcp.hand_over_read_registration(reactor, t, taker),
                        _changed("EPollReactor._selectables / _reads / _writes", "hand_over_read_registration"))
        self.assertIn(taker, reactor.getReaders(), _changed("EPollReactor._selectables", "hand_over_read_registration"))
        self.assertNotIn(t, reactor.getReaders())
        self.assertFalse(internals_tcp.hand_over_read_registration(reactor, t, taker))  # t is no longer registered
        read: Deferred[None] = Deferred()
        taker.doRead = lambda: (events.append("read"), t.socket.recv(100), read.called or read.callback(None))
        client.transport.write(b"ping")
        yield read
        reactor.removeReader(taker)
        self.assertEqual(events, ["read"])
        self.assertNotIn(taker, reactor.getReaders())

    def test_read_registration_needs_the_epoll_attributes(self) -> None:
        self.assertFalse(internals_tcp.hand_over_read_registration(object(), object(), object()))

    def test_close_now_marks_all_disconnecting_first(self) -> None:
        order: list[tuple[str, bool]] = []

        class FakeTCP:
            connected = True
            disconnecting = False

            def __init__(self, name: str) -> None:
                self.name = name

            def connectionLost(self, reason: Failure) -> None:
                order.append((self.name, all(x.disconnecting for x in pair)))
                self.connected = False

        pair = [FakeTCP("a"), FakeTCP("b")]
        internals_tcp.close_tcp_now(pair, Failure(ConnectionDone()))
        self.assertEqual(order, [("a", True), ("b", True)])
        self.assertEqual([x._shouldShutdown for x in pair], [False, False])  # type: ignore[attr-defined]


# -- TLSMemoryBIOProtocol ---------------------------------------------------------------------


class _Hooks(internals.TLSMemoryBIOHooks):
    """Records which of Twisted's private hooks Twisted called."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.calls: list[str] = []

    def _write(self, data: bytes) -> None:
        self.calls.append("_write")
        super()._write(data)

    def _deliver(self, pieces: list[bytes]) -> None:
        if pieces:
            self.calls.append("_flushReceiveBIO")
        super()._deliver(pieces)

    def handshake_checked(self) -> None:
        self.calls.append("handshake_checked")

    def pending_writes_flushed(self) -> None:
        self.calls.append("pending_writes_flushed")

    def peer_close_notify(self) -> None:
        self.calls.append("peer_close_notify")
        super().peer_close_notify()


class _Inner(Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.reason = reason


class TLSProtocolCanaries(SynchronousTestCase):
    """``twisted.protocols.tls.TLSMemoryBIOProtocol`` internals, over iosim."""

    #: Twisted's private methods frptx overrides or calls, with their positional parameters
    METHODS = {
        "_write": 1, "_flushSendBIO": 0, "_flushReceiveBIO": 0, "_checkHandshakeStatus": 0,
        "_unbufferPendingWrites": 0, "_shutdownTLS": 0, "_tlsShutdownFinished": 1, "_bufferedWrite": 1,
    }
    #: Twisted's private state frptx reads, once connected
    STATE = ("_tlsConnection", "_appSendBuffer", "_lostTLSConnection", "_handshakeDone", "_aborted", "_producer",
             "_reason")

    def test_methods_and_signatures(self) -> None:
        for name, positional in self.METHODS.items():
            method = getattr(TLSMemoryBIOProtocol, name, None)
            self.assertIsNotNone(method, _changed(f"TLSMemoryBIOProtocol.{name} (missing)", "TLSMemoryBIOHooks"))
            params = [p for p in inspect.signature(method).parameters.values()
                      if p.name != "self" and p.default is inspect.Parameter.empty]
            self.assertEqual(len(params), positional,
                             _changed(f"the signature of TLSMemoryBIOProtocol.{name}", "TLSMemoryBIOHooks"))

    def pair(self, write_early: bytes = b"") -> tuple[_Hooks, _Hooks, _Inner, _Inner, Any]:
        server_inner, client_inner = _Inner(), _Inner()
        server_factory = TLSMemoryBIOFactory(server_context_factory(), False, Factory())
        creator = client_connection_creator(server_addr="127.0.0.1")
        client_factory = TLSMemoryBIOFactory(creator, True, Factory())
        client, server, pump = connectedServerAndClient(
            lambda: _Hooks(server_factory, server_inner), lambda: _Hooks(client_factory, client_inner),
            greet=False)
        if write_early:
            client.write(write_early)
        pump.flush()
        return client, server, client_inner, server_inner, pump

    def test_state(self) -> None:
        client, server, *_ = self.pair()
        for p in (client, server):
            for name in self.STATE:
                self.assertTrue(hasattr(p, name), _changed(f"TLSMemoryBIOProtocol.{name} (missing)",
                                                           "TLSMemoryBIOHooks"))
            self.assertIsInstance(p.tls_connection, SSL.Connection,
                                  _changed("TLSMemoryBIOProtocol._tlsConnection", "TLSMemoryBIOHooks.tls_connection"))
            self.assertTrue(p.handshake_done, _changed("TLSMemoryBIOProtocol._handshakeDone", "handshake_done"))
            self.assertEqual(p.held_writes, 0)
            self.assertFalse(p.tls_lost)
            self.assertFalse(p.aborted)
            self.assertFalse(p.has_producer)
            self.assertIn("handshake_checked", p.calls,
                          _changed("TLSMemoryBIOProtocol._checkHandshakeStatus (not called)", "handshake_checked"))

    def test_data_path_goes_through_the_overrides(self) -> None:
        client, server, client_inner, server_inner, pump = self.pair()
        client.write(b"hello")
        server.write(b"world")
        pump.flush()
        self.assertEqual(server_inner.received, b"hello")
        self.assertEqual(client_inner.received, b"world")
        for p in (client, server):
            self.assertIn("_write", p.calls, _changed("TLSMemoryBIOProtocol.write (no longer calls _write)",
                                                      "TLSMemoryBIOHooks._write"))
            self.assertIn("_flushReceiveBIO", p.calls,
                          _changed("TLSMemoryBIOProtocol.dataReceived (no longer calls _flushReceiveBIO)",
                                   "TLSMemoryBIOHooks._flushReceiveBIO"))

    def test_taken_over_connection_is_left_alone(self) -> None:
        """``take_tls_over``: with ``_lostTLSConnection`` set, Twisted's TLS layer neither
        writes nor shuts down, and its ``connectionLost`` goes straight to the application
        without touching OpenSSL (``bio_shutdown``)."""
        client, server, client_inner, server_inner, pump = self.pair()

        class Owner:
            closed: list[bool] = []

            def close(self, abort: bool = False) -> None:
                self.closed.append(abort)

        owner = Owner()
        connection = server.tls_connection
        server.tls_connection.send(b"in the BIO")
        lower: Any = server.transport  # iosim's: give it a TCP transport's (empty) write buffer
        lower.dataBuffer, lower.offset, lower._tempDataBuffer, lower._tempDataLen = b"", 0, [], 0
        calls, unsent = internals.take_tls_over(server, owner)
        self.assertTrue(unsent, "the BIO's ciphertext is handed over")
        self.assertIs(calls.connection, connection)
        self.assertTrue(server.tls_lost, _changed("TLSMemoryBIOProtocol._lostTLSConnection", "take_tls_over"))
        server.write(b"dropped")
        self.assertEqual(calls.take(), b"", _changed("TLSMemoryBIOProtocol.write (writes once lost)", "take_tls_over"))
        server.loseConnection()
        server.abortConnection()
        self.assertEqual(owner.closed, [False, True])
        self.assertEqual(connection.get_shutdown(), 0, _changed("TLSMemoryBIOProtocol.loseConnection", "take_tls_over"))
        server.connectionLost(Failure(ConnectionDone()))
        self.assertIsInstance(server_inner.reason, Failure)
        self.assertEqual(connection.get_shutdown(), 0,
                         _changed("TLSMemoryBIOProtocol.connectionLost (touches OpenSSL once lost)", "take_tls_over"))

    def test_writes_held_during_the_handshake(self) -> None:
        server_inner, client_inner = _Inner(), _Inner()
        server_factory = TLSMemoryBIOFactory(server_context_factory(), False, Factory())
        client_factory = TLSMemoryBIOFactory(client_connection_creator(server_addr="127.0.0.1"), True, Factory())
        client, server, pump = connectedServerAndClient(
            lambda: _Hooks(server_factory, server_inner), lambda: _Hooks(client_factory, client_inner),
            greet=False)
        # connected, ClientHello sent, no answer yet: writes are held
        client.write(b"x" * 10)
        self.assertEqual(client.held_writes, 1, _changed("TLSMemoryBIOProtocol._appSendBuffer", "held_writes"))
        self.assertEqual(internals_tcp.tls_held_plaintext(client), 10,
                         _changed("TLSMemoryBIOProtocol._appSendBuffer", "tls_held_plaintext"))
        pump.flush()
        self.assertIn("pending_writes_flushed", client.calls,
                      _changed("TLSMemoryBIOProtocol._unbufferPendingWrites (not called)", "pending_writes_flushed"))
        self.assertEqual(client.held_writes, 0)
        self.assertEqual(server_inner.received, b"x" * 10)

    def test_close_notify_and_shutdown(self) -> None:
        client, server, client_inner, server_inner, pump = self.pair()
        client.loseConnection()
        pump.flush()
        self.assertIn("peer_close_notify", server.calls,
                      _changed("TLSMemoryBIOProtocol._flushReceiveBIO's ZeroReturnError", "peer_close_notify"))
        self.assertTrue(server.tls_lost, _changed("TLSMemoryBIOProtocol._lostTLSConnection", "tls_lost"))
        self.assertIsNotNone(server_inner.reason)
        self.assertIsNotNone(client_inner.reason)

    def test_finish_tls(self) -> None:
        client, server, client_inner, server_inner, pump = self.pair()
        client.finish_tls(Failure(SSL.Error([("SSL routines", "", "canary")])))
        pump.flush()
        self.assertTrue(client.tls_lost)
        assert client_inner.reason is not None
        self.assertIsInstance(client_inner.reason.value, SSL.Error,
                              _changed("TLSMemoryBIOProtocol._tlsShutdownFinished(reason)", "finish_tls"))


class EPollDispatchCanaries(TestCase):
    """``lean_epoll_dispatch`` replaces what ``twisted.internet.epollreactor`` calls ``log``."""

    def setUp(self) -> None:
        try:
            from twisted.internet import epollreactor
        except ImportError:
            raise self.skipTest("no epoll here") from None
        self.epollreactor = epollreactor
        self.addCleanup(internals_tcp.restore_epoll_dispatch)

    def test_module_shape(self) -> None:
        from twisted.python import log

        self.assertIs(self.epollreactor.log, log, _changed("epollreactor.log", "lean_epoll_dispatch"))
        source = inspect.getsource(self.epollreactor.EPollReactor.doPoll)
        self.assertIn("log.callWithLogger(", source,
                      _changed("EPollReactor.doPoll (no longer dispatches through log.callWithLogger)",
                               "lean_epoll_dispatch"))
        self.assertTrue(internals_tcp.lean_epoll_dispatch())
        self.assertTrue(internals_tcp.lean_epoll_dispatch())  # twice is once
        self.assertIs(self.epollreactor.log.msg, log.msg)  # everything else is the real module
        internals_tcp.restore_epoll_dispatch()
        self.assertIs(self.epollreactor.log, log)

    def test_handler_exceptions_still_logged(self) -> None:
        internals_tcp.lean_epoll_dispatch()

        class Selectable:
            def logPrefix(self) -> str:
                return "Sel"

        def boom() -> None:
            raise ZeroDivisionError("in a handler")

        self.assertIsNone(self.epollreactor.log.callWithLogger(Selectable(), boom))
        [failure] = self.flushLoggedErrors(ZeroDivisionError)
        self.assertEqual(self.epollreactor.log.callWithLogger(Selectable(), lambda x: x + 1, 1), 2)

    @inlineCallbacks
    def test_events_still_dispatched(self) -> Any:
        if not isinstance(reactor, self.epollreactor.EPollReactor):
            raise self.skipTest("not running on the epoll reactor")
        internals_tcp.lean_epoll_dispatch()
        server, client = yield TCPTransportCanaries.connect(self)  # type: ignore[arg-type]
        client.transport.write(b"through the lean dispatch")
        yield _wait_for(server, 25)
        self.assertEqual(b"".join(server.chunks), b"through the lean dispatch")


class PyOpenSSLCanaries(SynchronousTestCase):
    def test_x509_error_string(self) -> None:
        self.assertEqual(internals.x509_error_string(10), "certificate has expired",
                         "pyOpenSSL changed OpenSSL._util.ffi/lib.X509_verify_cert_error_string, which "
                         "frptx.transport.internals.x509_error_string relies on")

    def test_cffi_binding(self) -> None:
        """The TLS data path calls OpenSSL through pyOpenSSL's binding (``internals.CFFI_CALLS``):
        ``OpenSSL._util.ffi/lib``, a connection's ``_ssl``, ``_into_ssl``, ``_from_ssl``, and
        pyOpenSSL's ``_raise_ssl_error(ssl, result)`` / ``_handle_bio_errors(bio, result)``."""
        message = ("pyOpenSSL changed OpenSSL._util or SSL.Connection's _ssl/_into_ssl/_from_ssl/"
                   "_raise_ssl_error/_handle_bio_errors, which frptx.transport.internals.CFFI_CALLS relies "
                   "on (it falls back to the slower API_CALLS)")
        self.assertTrue(internals.TLS_CFFI, message)
        self.assertIsNotNone(internals.CFFI_CALLS, message)
        from OpenSSL._util import ffi

        connection = SSL.Connection(server_context_factory().getContext(), None)
        for name in ("_ssl", "_into_ssl", "_from_ssl"):
            self.assertIsInstance(getattr(connection, name, None), ffi.CData, message)
        for name in ("_raise_ssl_error", "_handle_bio_errors"):
            params = list(inspect.signature(getattr(SSL.Connection, name)).parameters)
            self.assertEqual(len(params), 3, message)  # self, ssl or bio, result


# -- importing the reactor without pyOpenSSL (frptx.transport.internals_reactor) ---------------

#: run in a fresh interpreter (here the reactor is imported long ago): import the reactor the
#: way frptx's makeService does, report what got imported, then prove TLS works regardless
_REACTOR_CHILD = r"""
import json, sys
from frptx.transport.internals_reactor import import_reactor

reactor = import_reactor()
seen = {
    "openssl": "OpenSSL" in sys.modules,
    "left_hidden": "OpenSSL" in sys.modules and sys.modules["OpenSSL"] is None,
    "tls_modules": sorted(m for m in ("twisted.protocols.tls", "twisted.internet.ssl",
                                      "twisted.internet._sslverify", "twisted.internet._newtls")
                          if m in sys.modules),
}
from twisted.internet import endpoints, posixbase, tcp

seen["startTLS"] = hasattr(tcp.Server, "startTLS")
seen["posixbase_tls"] = posixbase.tls is not None
seen["endpoints_tls"] = endpoints.TLSMemoryBIOFactory is not None

from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.protocols.tls import TLSMemoryBIOFactory
from frptx.transport.tls_context import client_connection_creator, server_context_factory

class Echo(Protocol):
    def dataReceived(self, data):
        self.transport.write(data)

class Client(Protocol):
    got = b""
    def connectionMade(self):
        self.transport.write(b"through TLS")
    def dataReceived(self, data):
        self.got += data
        if len(self.got) >= 11:
            seen["echoed"] = self.got.decode()
            self.transport.loseConnection()
            reactor.stop()

port = reactor.listenTCP(0, TLSMemoryBIOFactory(server_context_factory(), False, Factory.forProtocol(Echo)),
                         interface="127.0.0.1")
reactor.connectTCP("127.0.0.1", port.getHost().port,
                   TLSMemoryBIOFactory(client_connection_creator(server_addr="127.0.0.1"), True,
                                       ClientFactory.forProtocol(Client)))
reactor.callLater(30, reactor.stop)
reactor.run()
seen["openssl_after_tls"] = "OpenSSL" in sys.modules
print(json.dumps(seen))
"""


class ReactorWithoutOpenSSLCanaries(SynchronousTestCase):
    """``import_reactor`` in a fresh process: no pyOpenSSL until TLS is used, and TLS still works."""

    def test_reactor_import_leaves_pyopenssl_out_and_tls_works(self) -> None:
        import json
        import subprocess
        import sys

        from frptx.test.support import child_env

        run = subprocess.run([sys.executable, "-c", _REACTOR_CHILD], capture_output=True, text=True,
                             timeout=60, env=child_env())
        self.assertEqual(run.returncode, 0, run.stderr)
        seen = json.loads(run.stdout.strip().splitlines()[-1])
        what = "frptx.transport.internals_reactor.import_reactor (TLS_OPTIONAL_MODULES)"
        self.assertFalse(seen["openssl"], _changed("the reactor's imports (pyOpenSSL imported anyway)", what))
        self.assertEqual(seen["tls_modules"], [], _changed("the reactor's imports (TLS modules imported)", what))
        self.assertFalse(seen["left_hidden"], "import_reactor left OpenSSL unimportable")
        # the documented price: no startTLS, no listenSSL/connectSSL; frptx uses neither
        self.assertFalse(seen["startTLS"], _changed("tcp.Server's startTLS mixin", what))
        self.assertFalse(seen["posixbase_tls"], _changed("posixbase's optional TLS import", what))
        # what frptx does use is complete
        self.assertTrue(seen["endpoints_tls"], "endpoints imported after import_reactor lack TLS")
        self.assertEqual(seen.get("echoed"), "through TLS", "TLS through TLSMemoryBIOFactory failed")
        self.assertTrue(seen["openssl_after_tls"])

    def test_reactor_already_imported(self) -> None:
        """Under trial (or twistd --reactor) the reactor exists: it is returned, nothing is hidden."""
        import sys

        from frptx.transport.internals_reactor import import_reactor

        self.assertIs(import_reactor(), reactor)
        self.assertIsNotNone(sys.modules.get("OpenSSL"))

    def test_frptx_uses_no_entry_point_the_hiding_removes(self) -> None:
        """``startTLS``, ``listenSSL``, ``connectSSL`` and ``SSL4*Endpoint`` need what is not imported."""
        root = Path(frptx.__file__).parent
        pattern = re.compile(r"\b(startTLS|listenSSL|connectSSL|SSL4ServerEndpoint|SSL4ClientEndpoint)\b")
        found = [f"{path.relative_to(root)}:{n}" for path in sorted(root.rglob("*.py"))
                 if not path.relative_to(root).as_posix().startswith("test/")
                 and path.relative_to(root).as_posix() not in INTERNALS
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if pattern.search(line.split("#", 1)[0])]
        self.assertEqual(found, [], "these would fail in a process whose reactor came from import_reactor")


#: the modules allowed to name Twisted's private attributes (split by what they may import)
INTERNALS = ("transport/internals.py", "transport/internals_tcp.py", "transport/internals_reactor.py")


class OnlyInOneModule(SynchronousTestCase):
    """No frptx module but L{frptx.transport.internals} names Twisted's private attributes
    (or subclasses C{TLSMemoryBIOProtocol}, whose hooks are all private)."""

    PRIVATE = re.compile(
        r"\.(_tlsConnection|_lostTLSConnection|_appSendBuffer|_handshakeDone|_aborted|_flushSendBIO"
        r"|_flushReceiveBIO|_checkHandshakeStatus|_unbufferPendingWrites|_shutdownTLS|_tlsShutdownFinished"
        r"|_bufferedWrite|dataBuffer|_tempDataBuffer|_tempDataLen|_writeDisconnected|_shouldShutdown"
        r"|_namespaceFromCallingContext|socket\.(send|recv|shutdown|sendmsg)|bufferSize\s*=)\b"
        r"|OpenSSL\._util|class \w+\(.*\bTLSMemoryBIOProtocol\b")

    def test_no_private_twisted_attribute_elsewhere(self) -> None:
        root = Path(frptx.__file__).parent
        found = []
        for path in sorted(root.rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if relative.startswith("test/") or relative in INTERNALS:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if self.PRIVATE.search(line.split("#", 1)[0]):
                    found.append(f"frptx/{relative}:{number}: {line.strip()}")
        self.assertEqual(found, [], "Twisted private attributes outside frptx.transport.internals")
