# -*- test-case-name: frptx.test.test_dialer -*-
"""Tests for L{frptx.client.dialer.connect_tcp}: a protocol instance connected through an endpoint."""
from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from frptx.client.dialer import connect_tcp
from frptx.transport.tls_client import wrap_client_factory
from frptx.transport.tls_context import client_connection_creator


class _Made(Protocol):
    made = 0

    def connectionMade(self) -> None:
        self.made += 1


class ConnectTCPTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def test_fires_at_connection_made_without_patching(self) -> None:
        protocol = _Made()
        d = connect_tcp(self.reactor, "frps.example", 7000, protocol, 5.0, ("127.0.0.1", 0))
        host, port, factory, timeout, bind = self.reactor.tcpClients[0]
        self.assertEqual((host, port, timeout, bind), ("frps.example", 7000, 5.0, ("127.0.0.1", 0)))
        self.assertNoResult(d)
        wrapper = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 7000))
        wrapper.makeConnection(StringTransport())
        self.assertIs(self.successResultOf(d), protocol)
        self.assertEqual(protocol.made, 1)
        self.assertNotIn("connectionMade", vars(protocol))  # the instance's method was not replaced
        self.assertIsNotNone(protocol.transport)

    def test_failure(self) -> None:
        d = connect_tcp(self.reactor, "127.0.0.1", 7000, _Made(), 5.0)
        factory = self.reactor.tcpClients[0][2]
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.failureResultOf(d, ConnectionRefusedError)

    def test_wrapped_in_tls(self) -> None:
        protocol = _Made()
        creator = client_connection_creator(server_addr="127.0.0.1")
        wrapped: list[Any] = []

        def wrap(factory: Any) -> Factory:
            wrapped.append(factory)
            return wrap_client_factory(factory, creator, custom_first_byte=True, clock=self.reactor)

        d = connect_tcp(self.reactor, "127.0.0.1", 7000, protocol, 5.0, wrap=wrap)
        factory = self.reactor.tcpClients[0][2]
        transport = StringTransport()
        factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 7000)).makeConnection(transport)
        self.assertIs(self.successResultOf(d), protocol)
        self.assertEqual(len(wrapped), 1)
        self.assertEqual(transport.value()[:2], b"\x17\x16")  # the marker, then the ClientHello
        self.assertEqual(protocol.made, 1)
        self.assertIsNot(protocol.transport, transport)  # the TLS layer sits in between
