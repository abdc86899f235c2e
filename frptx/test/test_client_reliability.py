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


class RefusedProxyRetryTests(unittest.TestCase):
    """A proxy frps refused is registered again after a bounded backoff (Go frpc: every 30 s)."""

    def setUp(self) -> None:
        from twisted.logger import Logger

        from frptx.client.client import FrpClient
        from frptx.client.proxy_manager import ProxyManager
        from frptx.test.support import tcp_proxy

        self.reactor = MemoryReactorClock()
        self.reactor.advance(1000)  # small, exact float arithmetic for the schedule
        self.events: list[dict[str, Any]] = []
        self.patch(ProxyManager, "log", Logger(observer=self.events.append))
        cfg = client_config(7000, False, False, [tcp_proxy("ssh", 22, 6000), tcp_proxy("web", 80, 6080)])
        self.client = FrpClient(cfg, self.reactor)
        self.pm = self.client.proxy_manager
        self.server = FakeServer(self.client.factory.buildProtocol(None))
        self.server.received()
        self.server.accept_login("0123456789abcdef")
        self.assertEqual([m.proxy_name for m in self.server.received()], ["ssh", "web"])

    def new_proxies(self) -> list[str]:
        """Names in the NewProxy messages frpc sent since the last call (Pings are answered)."""
        from frptx.wire import NewProxy, Ping, Pong

        msgs = self.server.received()
        for m in msgs:
            if isinstance(m, Ping):
                self.server.send(Pong())
        return [m.proxy_name for m in msgs if isinstance(m, NewProxy)]

    def warnings(self) -> list[str]:
        from twisted.logger import LogLevel, formatEvent

        return [formatEvent(e) for e in self.events if e["log_level"] >= LogLevel.warn]

    def refuse(self, name: str, error: str) -> None:
        from frptx.wire import NewProxyResp

        self.server.send(NewProxyResp(proxy_name=name, error=error))

    def test_refused_proxy_is_sent_again_within_30s(self) -> None:
        self.refuse("web", "proxy [web] already exists")
        self.reactor.advance(30)
        self.assertEqual(self.new_proxies(), ["web"])

    def test_refused_proxy_retried_with_bounded_backoff(self) -> None:
        from frptx.wire import NewProxyResp

        self.server.send(NewProxyResp(proxy_name="ssh", remote_addr=":6000"))
        self.refuse("web", "proxy [web] already exists")
        status = self.pm.status["web"]
        self.assertEqual((status.phase, status.error, status.failures),
                         ("start error", "proxy [web] already exists", 1))
        self.assertEqual(status.next_retry, self.reactor.seconds() + 2.0)
        self.assertEqual(self.warnings(), ["proxy [web] start error: proxy [web] already exists (retrying in 2s)"])
        delays = []
        for _ in range(7):
            status = self.pm.status["web"]
            delay = status.next_retry - self.reactor.seconds()
            delays.append(delay)
            self.new_proxies()  # answers the heartbeat
            self.reactor.advance(delay - 0.5)
            self.assertEqual(self.new_proxies(), [])
            self.reactor.advance(0.5)
            self.assertEqual(self.new_proxies(), ["web"])  # only the refused one
            self.assertEqual(self.pm.status["web"].phase, "wait start")
            self.refuse("web", "port already used")
        self.assertEqual(delays, [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0])  # bounded by Go frpc's 30 s
        self.assertEqual(len(self.warnings()), 8)  # one line per refusal, each naming its retry
        self.assertEqual(self.pm.status["ssh"].phase, "running")
        # once frps takes it, it is running and the backoff starts over
        running = self.pm.when_running("web")
        self.reactor.advance(30)
        self.assertEqual(self.new_proxies(), ["web"])
        self.assertFalse(running.called)
        self.server.send(NewProxyResp(proxy_name="web", remote_addr=":6080"))
        self.assertEqual(self.successResultOf(running).remote_addr, ":6080")
        status = self.pm.status["web"]
        self.assertEqual((status.phase, status.error, status.failures, status.next_retry),
                         ("running", "", 0, None))
        self.reactor.advance(60)
        self.assertEqual(self.new_proxies(), [])
        self.refuse("ssh", "port unavailable")
        self.assertEqual(self.pm.status["ssh"].next_retry, self.reactor.seconds() + 2.0)

    def test_no_retry_while_offline_and_fresh_start_on_login(self) -> None:
        self.refuse("web", "port already used")
        self.server.protocol.connectionLost(Failure(Exception("gone")))
        self.assertEqual(self.pm.status["web"].phase, "new")
        self.assertEqual(self.pm._timers, {})  # no retry without a control
        self.reactor.advance(60)
        relogin = FakeServer(self.client.factory.buildProtocol(None))
        relogin.received()
        relogin.accept_login("0123456789abcdef")
        self.assertEqual([m.proxy_name for m in relogin.received()], ["ssh", "web"])  # once each
        self.assertEqual(self.pm.status["web"].failures, 0)

    def test_reload_removing_a_refused_proxy_cancels_its_retry(self) -> None:
        import dataclasses

        self.refuse("web", "port already used")
        kept = tuple(p for p in self.client.config.proxies if p.name != "web")
        self.pm.apply(dataclasses.replace(self.client.config, proxies=kept))
        self.assertEqual(self.pm._timers, {})
        self.reactor.advance(60)
        self.assertEqual(self.new_proxies(), [])
