"""Inline writes: sent before the reactor turns, the rest through Twisted's buffer, in order."""
from __future__ import annotations

import os
import socket

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.testing import StringTransport
from twisted.trial import unittest
from zope.interface import implementer

from frptx.test.support import digest, with_timeout
from frptx.test.test_e2e import async_test
from frptx.transport.inline import write_now, write_sequence_now
from frptx.transport.internals_tcp import tcp_unsent_bytes


class _Connected(Protocol):
    def __init__(self, made: Deferred[Protocol]) -> None:
        self.made = made

    def connectionMade(self) -> None:
        self.made.callback(self)


class InlineWriteTests(unittest.TestCase):
    timeout = 30

    async def pair(self) -> tuple[Protocol, socket.socket]:
        """A Twisted TCP client connection and the raw socket it is connected to."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        self.addCleanup(listener.close)
        made: Deferred[Protocol] = Deferred()
        factory = ClientFactory.forProtocol(lambda: _Connected(made))  # type: ignore[arg-type]
        connector = reactor.connectTCP("127.0.0.1", listener.getsockname()[1], factory)
        self.addCleanup(connector.disconnect)
        protocol = await with_timeout(made, 10)
        peer, _ = listener.accept()
        peer.settimeout(10)
        self.addCleanup(peer.close)
        return protocol, peer

    @async_test
    async def test_sent_before_the_reactor_turns(self) -> None:
        protocol, peer = await self.pair()
        write_now(protocol.transport, b"hello")
        self.assertEqual(tcp_unsent_bytes(protocol.transport), 0)  # nothing left to Twisted
        self.assertEqual(peer.recv(100), b"hello")  # already in the kernel, no reactor turn needed
        write_sequence_now(protocol.transport, [b"a", b"bc", b"", b"def"])
        self.assertEqual(peer.recv(100), b"abcdef")

    @async_test
    async def test_what_the_socket_refuses_is_buffered_in_order(self) -> None:
        protocol, peer = await self.pair()
        protocol.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        payload = os.urandom(4 * 1024 * 1024)
        write_now(protocol.transport, payload[:1000])
        write_now(protocol.transport, payload[1000:3 * 1024 * 1024])  # far more than the socket takes
        self.assertTrue(tcp_unsent_bytes(protocol.transport))
        chunks = [payload[3 * 1024 * 1024 + i:3 * 1024 * 1024 + i + 65536] for i in range(0, 1024 * 1024, 65536)]
        write_sequence_now(protocol.transport, chunks)  # queued behind the buffered bytes, not sent first
        # Everything is written or buffered now; a normal send buffer drains it quickly
        # (through a 4 KiB one the kernel paces loopback by delayed ACKs: seconds of idling).
        protocol.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        received = bytearray()
        peer.setblocking(False)
        done: Deferred[None] = Deferred()

        @implementer(IReadDescriptor)
        class Drain:
            """Reads the raw peer whenever the reactor says it is readable."""

            def fileno(self) -> int:
                return peer.fileno()

            def logPrefix(self) -> str:
                return "drain"

            def connectionLost(self, reason: object) -> None:
                pass

            def doRead(self) -> None:
                try:
                    while True:
                        data = peer.recv(1 << 20)
                        if not data:
                            break
                        received.extend(data)
                except BlockingIOError:
                    pass
                if len(received) >= len(payload) and not done.called:
                    reactor.removeReader(self)
                    done.callback(None)

        drain = Drain()
        reactor.addReader(drain)
        self.addCleanup(lambda: reactor.removeReader(drain))
        await with_timeout(done, 20)
        self.assertEqual(digest(bytes(received)), digest(payload))

    def test_other_transports_use_their_write(self) -> None:
        t = StringTransport()
        write_now(t, b"x")
        write_sequence_now(t, [b"y", b"z"])
        self.assertEqual(t.value(), b"xyz")
