# -*- test-case-name: frptx.test.test_tls_datapath -*-
"""
The TLS data path's OpenSSL calls (L{frptx.transport.internals.TLSCalls}): the cffi
binding (what frptx uses) and pyOpenSSL's methods (the fallback) must behave the same
-- the same bytes, the same pieces, the same errors -- on memory-BIO connections
driven by hand, without a reactor.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from OpenSSL import SSL
from twisted.trial.unittest import SynchronousTestCase

from frptx.transport import internals
from frptx.transport.internals import API_CALLS, CFFI_CALLS, TLSCalls
from frptx.transport.tls_context import client_connection_creator, server_context_factory

MiB = 1 << 20


@functools.cache
def _server_context() -> SSL.Context:
    return server_context_factory().getContext()


def _client_context(tls12: bool = False) -> SSL.Context:
    if tls12:
        context = SSL.Context(SSL.TLS_METHOD)
        context.set_max_proto_version(SSL.TLS1_2_VERSION)
        return context
    return client_connection_creator(server_addr="127.0.0.1")._context  # type: ignore[attr-defined, no-any-return]


def _connections(server_context: SSL.Context | None = None, tls12: bool = False
                 ) -> tuple[SSL.Connection, SSL.Connection]:
    """A client and a server memory-BIO connection, handshake done (pyOpenSSL's own calls)."""
    server = SSL.Connection(server_context or _server_context(), None)
    server.set_accept_state()
    client = SSL.Connection(_client_context(tls12), None)
    client.set_connect_state()
    done = set()
    for _ in range(10):
        for me, peer in ((client, server), (server, client)):
            try:
                me.do_handshake()
                done.add(me)
            except SSL.WantReadError:
                pass
            try:
                peer.bio_write(me.bio_read(1 << 20))
            except SSL.WantReadError:
                pass
        if len(done) == 2:
            break
    assert len(done) == 2
    # the client takes the server's session tickets now, so later reads carry application data only
    try:
        client.recv(1)
    except SSL.WantReadError:
        pass
    return client, server


class _CallsTestsMixin:
    calls: TLSCalls

    assertEqual: Any
    assertIs: Any
    assertIsNone: Any
    assertIsInstance: Any
    assertNotIsInstance: Any
    assertTrue: Any

    def transfer(self, sender: SSL.Connection, receiver: SSL.Connection, data: bytes) -> bytes:
        """C{data} through C{sender} and C{receiver}: what the receiver reads."""
        self.assertEqual(self.calls.send(sender, data), len(data))
        self.calls.feed(receiver, self.calls.take(sender))
        got, error = self.calls.read(receiver)
        self.assertIsNone(error)
        return got

    def test_request_and_response(self) -> None:
        client, server = _connections()
        self.assertEqual(self.transfer(client, server, b"q" * 614), b"q" * 614)
        self.assertEqual(self.calls.take(server), b"", "reading produced nothing to send")
        self.assertEqual(self.transfer(server, client, b"r" * 614), b"r" * 614)

    def test_tls12(self) -> None:
        client, server = _connections(tls12=True)
        self.assertEqual(client.get_protocol_version_name(), "TLSv1.2")
        data = os.urandom(MiB)
        self.assertEqual(self.transfer(client, server, data), data)
        self.assertEqual(self.transfer(server, client, b"r" * 614), b"r" * 614)
        client.shutdown()
        self.calls.feed(server, self.calls.take(client))
        self.assertEqual(self.calls.read(server)[0], b"")

    def test_bulk(self) -> None:
        """More than one BIO buffer of records each way, and more plaintext than one read buffer."""
        client, server = _connections()
        data = os.urandom(3 * MiB + 12345)
        for start in range(0, len(data), 256 * 1024):
            self.assertEqual(self.calls.send(client, data[start:start + 256 * 1024]), len(data[start:start + 256 * 1024]))
        records = self.calls.take(client)
        self.assertTrue(len(records) > len(data))
        self.assertEqual(self.calls.take(client), b"")
        self.calls.feed(server, records)
        got, error = self.calls.read(server)
        self.assertIsNone(error)
        self.assertEqual(got, data)
        # one big write too
        self.assertEqual(self.transfer(server, client, data), data)

    def test_partial_record(self) -> None:
        client, server = _connections()
        self.calls.send(client, b"x" * 1000)
        records = self.calls.take(client)
        self.calls.feed(server, records[:500])
        self.assertEqual(self.calls.read(server), (b"", None))
        self.calls.feed(server, records[500:])
        self.assertEqual(self.calls.read(server), (b"x" * 1000, None))
        self.assertEqual(self.calls.read(server), (b"", None))

    def test_close_notify_after_data(self) -> None:
        """The data before the peer's close_notify comes with C{ZeroReturnError}."""
        client, server = _connections()
        self.calls.send(client, b"last words")
        client.shutdown()
        self.calls.feed(server, self.calls.take(client))
        got, error = self.calls.read(server)
        self.assertEqual(got, b"last words")
        self.assertIsInstance(error, SSL.ZeroReturnError)

    def test_corrupt_record(self) -> None:
        """What decrypts comes first; then pyOpenSSL's own error for the bad record."""
        client, server = _connections()
        self.calls.send(client, b"good")
        good = self.calls.take(client)
        self.calls.send(client, b"tampered")
        bad = bytearray(self.calls.take(client))
        bad[-1] ^= 1
        self.calls.feed(server, good + bytes(bad))
        got, error = self.calls.read(server)
        self.assertEqual(got, b"good")
        self.assertIsInstance(error, SSL.Error)
        self.assertNotIsInstance(error, SSL.ZeroReturnError)
        self.assertIn("bad record mac", str(error).lower())  # type: ignore[attr-defined]
        self.assertTrue(self.calls.take(server), "the alert for the peer")

    def test_plain_text_instead_of_tls(self) -> None:
        server = SSL.Connection(_server_context(), None)
        server.set_accept_state()
        self.calls.feed(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        got, error = self.calls.read(server)
        self.assertEqual(got, b"")
        self.assertIsInstance(error, SSL.Error)

    def test_write_before_the_handshake(self) -> None:
        """A client's first write starts the handshake and is not taken (it must read first)."""
        client = SSL.Connection(_client_context(), None)
        client.set_connect_state()
        self.assertEqual(self.calls.send(client, b"early"), 0)
        self.assertEqual(self.calls.take(client)[:1], b"\x16", "a ClientHello")
        self.assertEqual(self.calls.take(client), b"")

    def test_feed_after_eof(self) -> None:
        """A BIO write that fails raises pyOpenSSL's error (a memory BIO with EOF set refuses)."""
        client, server = _connections()
        server.bio_shutdown()
        got, error = self.calls.read(server)
        self.assertEqual(got, b"")
        self.assertIsInstance(error, SSL.SysCallError)  # "Unexpected EOF", as pyOpenSSL reports it


class CffiCallsTests(_CallsTestsMixin, SynchronousTestCase):
    calls = CFFI_CALLS or API_CALLS

    def setUp(self) -> None:
        if CFFI_CALLS is None:
            raise self.skipTest("pyOpenSSL's cffi binding is not available")  # type: ignore[misc]

    def test_is_the_default(self) -> None:
        self.assertIs(internals.TLSMemoryBIOHooks.tls_calls, CFFI_CALLS)

    def test_buffers_are_given_back(self) -> None:
        client, server = _connections()
        recv_before, bio_before = len(internals._RECV_BUFS), len(internals._BIO_BUFS)
        self.transfer(client, server, b"x" * 100_000)
        self.assertEqual((len(internals._RECV_BUFS), len(internals._BIO_BUFS)), (recv_before, bio_before))

    def test_reentered_read_has_its_own_buffer(self) -> None:
        """
        An OpenSSL callback that runs inside SSL_read (here the info callback on the
        peer's close_notify alert) and reads another connection does not overwrite the
        plaintext the outer read has not copied out yet.
        """
        other_client, other_server = _connections()
        self.calls.send(other_client, b"B" * 5000)
        self.calls.feed(other_server, self.calls.take(other_client))
        nested: list[tuple[bytes, Any]] = []
        context = server_context_factory().getContext()

        def info(connection: SSL.Connection, where: int, ret: int) -> None:
            if where & SSL.SSL_CB_READ_ALERT and not nested:
                nested.append(self.calls.read(other_server))

        context.set_info_callback(info)
        client, server = _connections(context)
        self.calls.send(client, b"A" * 5000)
        client.shutdown()
        self.calls.feed(server, self.calls.take(client))
        got, error = self.calls.read(server)
        self.assertEqual(nested, [(b"B" * 5000, None)])
        self.assertEqual(got, b"A" * 5000)
        self.assertIsInstance(error, SSL.ZeroReturnError)


class ApiCallsTests(_CallsTestsMixin, SynchronousTestCase):
    calls = API_CALLS
