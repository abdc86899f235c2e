"""frpc under adverse conditions, on MemoryReactorClock: visitors before login, refused proxies."""
from __future__ import annotations

from typing import Any

from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from frptx.client.service import FrpcService
from frptx.protocols.relayed import RelayedProtocol
from frptx.protocols.tuning import LISTEN_BACKLOG
from frptx.test.support import client_config
from frptx.test.test_protocols_client import FakeServer
from frptx.wire import NewVisitorConn


def stcp_visitor(name: str = "v", bind_port: int = 9000) -> dict[str, Any]:
    return {"name": name, "type": "stcp", "serverName": "secret", "secretKey": "k", "bindAddr": "127.0.0.1",
            "bindPort": bind_port}


class VisitorLoginTests(unittest.TestCase):
    """Go frpc opens visitor ports only after login; NewVisitorConn always carries the run id."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1700000000)
        cfg = client_config(7000, False, False, [], user="bob", visitors=[stcp_visitor()])
        self.service = FrpcService(cfg, self.reactor)
        self.service.startService()
        self.reactor.connectors[-1].state = "connected"  # what FrpClient.stop looks at
        self.addCleanup(self.stop)

    def stop(self) -> None:
        """Stop the service without waiting: StringTransports never report their close."""
        if self.service.running:
            self.service.stopService()

    def control_server(self) -> FakeServer:
        """The frps end of a (re)connection of frpc's login connector."""
        server = FakeServer(self.service.client.factory.buildProtocol(None))
        server.received()
        return server

    def dialled(self) -> list[Any]:
        """The factories of connections frpc dialled besides its login connector."""
        login = self.service.client.factory
        return [factory for _, _, factory, _, _ in self.reactor.tcpClients if factory is not login]

    def visitor_ports(self) -> list[int]:
        return [port for port, _, backlog, _ in self.reactor.tcpServers]

    def test_visitor_port_opens_after_login(self) -> None:
        self.assertEqual(self.visitor_ports(), [])  # not before the login
        server = self.control_server()
        self.assertEqual(self.visitor_ports(), [])
        server.accept_login("0123456789abcdef")
        [(port, _, backlog, interface)] = self.reactor.tcpServers
        self.assertEqual((port, backlog, interface), (9000, LISTEN_BACKLOG, "127.0.0.1"))
        # a re-login does not open it twice
        server.protocol.connectionLost(Failure(Exception("gone")))
        self.control_server().accept_login("0123456789abcdef")
        self.assertEqual(len(self.reactor.tcpServers), 1)

    def test_stop_before_login_never_opens_it(self) -> None:
        server = self.control_server()
        self.service.stopService()
        server.accept_login("0123456789abcdef")
        self.assertEqual(self.visitor_ports(), [])

    def local_connection(self) -> RelayedProtocol:
        factory = self.reactor.tcpServers[-1][1]
        local = factory.buildProtocol(None)
        local.makeConnection(StringTransport())
        return local

    def test_local_connection_between_logins_waits_for_the_run_id(self) -> None:
        server = self.control_server()
        server.accept_login("0123456789abcdef")
        server.protocol.connectionLost(Failure(Exception("gone")))
        local = self.local_connection()
        self.assertEqual(self.dialled(), [])  # held: no NewVisitorConn without a login
        self.reactor.advance(5)
        relogin = self.control_server()
        relogin.accept_login("0123456789abcdef")
        [factory] = self.dialled()
        visitor = FakeServer(factory.buildProtocol(None))
        [msg] = visitor.received()
        self.assertIsInstance(msg, NewVisitorConn)
        self.assertEqual((msg.run_id, msg.proxy_name), ("0123456789abcdef", "bob.secret"))
        self.assertFalse(local.transport.disconnecting)

    def test_local_connection_closed_if_no_login_comes(self) -> None:
        LOGIN_WAIT = 10  # frptx.client.visitors.LOGIN_WAIT
        server = self.control_server()
        server.accept_login("0123456789abcdef")
        server.protocol.connectionLost(Failure(Exception("gone")))
        self.service.client.factory.stopTrying()  # frps stays away
        local = self.local_connection()
        self.reactor.advance(LOGIN_WAIT)
        self.assertTrue(local.transport.disconnecting)
        self.assertEqual(self.service.visitors["v"].last_error, f"not logged in to frps within {LOGIN_WAIT:g}s")
