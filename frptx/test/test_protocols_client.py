"""frpc's control/work protocols and login policy on MemoryReactorClock."""
from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from frptx import FRP_PROTOCOL_VERSION
from frptx.client.backoff import LOGIN_BACKOFF
from frptx.client.client import FrpClient
from frptx.protocols.client import ClientControlProtocol, ClientWorkProtocol
from frptx.test.support import TOKEN, client_config, tcp_proxy
from frptx.wire import (
    CfbDecryptor,
    CfbEncryptor,
    CloseProxy,
    Login,
    LoginResp,
    MessageReader,
    MessageWriter,
    NewProxy,
    NewProxyResp,
    NewWorkConn,
    Ping,
    Pong,
    ReqWorkConn,
    derive_key,
    privilege_key,
)


class FakeServer:
    """The frps end of a client connection."""

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.transport = StringTransport()
        self.reader = MessageReader()
        self.writer = MessageWriter()
        protocol.makeConnection(self.transport)

    def received(self) -> list[Any]:
        self.reader.feed(self.transport.value())
        self.transport.clear()
        out = []
        while (msg := self.reader.next_message()) is not None:
            out.append(msg)
        return out

    def send(self, msg: Any) -> None:
        self.protocol.dataReceived(self.writer.encode(msg))

    def accept_login(self, run_id: str = "abcdef0123456789") -> None:
        self.send(LoginResp(version="0.61.0", run_id=run_id))
        self.writer.start_encryption(CfbEncryptor(derive_key(TOKEN)))
        self.reader.start_decryption(CfbDecryptor(derive_key(TOKEN)))


class ClientTestBase(unittest.TestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1700000000)
        self.fatal: list[str] = []
        self.client = FrpClient(self.config(), self.reactor, on_fatal=self.fatal.append)

    def config(self, **extra: Any) -> Any:
        return client_config(7000, False, False, [tcp_proxy("ssh", 22, 6000), tcp_proxy("web", 80)], **extra)

    def connect_control(self) -> FakeServer:
        return FakeServer(ClientControlProtocol(self.client))


class LoginMessageTests(ClientTestBase):
    def test_login_fields(self) -> None:
        server = self.connect_control()
        [login] = server.received()
        self.assertIsInstance(login, Login)
        self.assertEqual(login.version, FRP_PROTOCOL_VERSION)
        self.assertEqual(login.timestamp, 1700000000)
        self.assertEqual(login.privilege_key, privilege_key(TOKEN, 1700000000))
        self.assertEqual(login.pool_count, 1)
        self.assertEqual(login.run_id, "")
        self.assertTrue(login.os and login.arch)

    def test_after_login_registers_every_proxy_encrypted(self) -> None:
        server = self.connect_control()
        server.received()
        server.accept_login()
        msgs = server.received()
        self.assertEqual([m.proxy_name for m in msgs if isinstance(m, NewProxy)], ["ssh", "web"])
        self.assertEqual(msgs[0].remote_port, 6000)
        self.assertEqual(self.client.run_id, "abcdef0123456789")
        # a re-login carries the run id so frps replaces the old control
        server2 = self.connect_control()
        [login2] = server2.received()
        self.assertEqual(login2.run_id, "abcdef0123456789")

    def test_rejected_proxy_does_not_stop_others(self) -> None:
        server = self.connect_control()
        server.received()
        server.accept_login()
        server.received()
        server.send(NewProxyResp(proxy_name="ssh", error="port already used"))
        server.send(NewProxyResp(proxy_name="web", remote_addr=":40000"))
        pm = self.client.proxy_manager
        self.assertEqual((pm.status["ssh"].phase, pm.status["ssh"].error), ("start error", "port already used"))
        self.assertEqual((pm.status["web"].phase, pm.status["web"].remote_addr), ("running", ":40000"))

    def test_user_prefix_on_wire_names(self) -> None:
        self.client = FrpClient(self.config(user="alice"), self.reactor)
        server = self.connect_control()
        server.received()
        server.accept_login()
        names = [m.proxy_name for m in server.received()]
        self.assertEqual(names, ["alice.ssh", "alice.web"])
        self.assertEqual(self.client.proxy_manager.by_wire_name("alice.web").name, "web")


class LoginFailExitTests(ClientTestBase):
    def test_wrong_token_is_fatal_with_reason(self) -> None:
        server = self.connect_control()
        server.received()
        server.send(LoginResp(version="0.61.0", error="token in login doesn't match token from configuration"))
        self.assertEqual(len(self.fatal), 1)
        self.assertIn("token in login doesn't match", self.fatal[0])
        self.assertTrue(server.transport.disconnecting)
        self.assertFalse(self.client.factory.continueTrying)

    def test_unreachable_server_is_fatal(self) -> None:
        self.client.factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertEqual(len(self.fatal), 1)
        self.assertIn("cannot connect", self.fatal[0])

    def test_version_refused(self) -> None:
        server = self.connect_control()
        server.send(LoginResp(error="Please upgrade your frpc version to at least 0.18.0"))
        self.assertIn("upgrade", self.fatal[0])

    def test_login_response_timeout(self) -> None:
        server = self.connect_control()
        self.reactor.advance(10.5)
        self.assertTrue(server.transport.disconnecting)
        self.assertIn("no login response", self.fatal[0])

    def test_no_exit_when_disabled_keeps_retrying(self) -> None:
        self.client = FrpClient(self.config(loginFailExit=False), self.reactor, on_fatal=self.fatal.append)
        self.client.factory.clientConnectionFailed(_Connector(), Failure(ConnectionRefusedError()))
        self.assertEqual(self.fatal, [])
        self.assertTrue(self.client.factory.continueTrying)


class _Connector:
    def __init__(self) -> None:
        self.attempts = 0

    def connect(self) -> None:
        self.attempts += 1

    def stopConnecting(self) -> None:
        from twisted.internet.error import NotConnectingError

        raise NotConnectingError()


class BackoffTests(ClientTestBase):
    """The login factory follows ``BackoffPolicy`` on the first login and after a login."""

    def retry_delays(self, factory: Any, connector: _Connector, count: int, lost: bool = False) -> list[float]:
        delays = []
        for _ in range(count):
            before = set(self.reactor.getDelayedCalls())
            if lost:
                factory.clientConnectionLost(connector, Failure(ConnectionRefusedError()))
            else:
                factory.clientConnectionFailed(connector, Failure(ConnectionRefusedError()))
            [call] = set(self.reactor.getDelayedCalls()) - before
            delays.append(round(call.getTime() - self.reactor.seconds(), 4))
            self.reactor.advance(call.getTime() - self.reactor.seconds())
        return delays

    def make_client(self) -> FrpClient:
        self.client = FrpClient(self.config(loginFailExit=False), self.reactor, on_fatal=self.fatal.append)
        # the midpoint of the jitter range: the schedule itself, exactly
        self.client.factory._uniform = lambda: 0.5
        return self.client

    def test_first_login_schedule(self) -> None:
        factory = self.make_client().factory
        connector = _Connector()
        self.assertEqual(self.retry_delays(factory, connector, 8), [1, 2, 4, 8, 16, 20, 20, 20])
        self.assertEqual(connector.attempts, 8)

    def test_schedule_starts_over_after_a_successful_login(self) -> None:
        factory = self.make_client().factory
        connector = _Connector()
        self.assertEqual(self.retry_delays(factory, connector, 4), [1, 2, 4, 8])
        server = self.connect_control()
        server.received()
        server.accept_login()
        # the control connection of that login is lost: the same schedule from its start
        self.assertEqual(self.retry_delays(factory, connector, 7, lost=True), [1, 2, 4, 8, 16, 20, 20])

    def test_injected_schedule(self) -> None:
        """``FrpcService(login_backoff=...)`` reaches the login factory (tests use a quick one)."""
        from frptx.client.backoff import BackoffPolicy
        from frptx.client.service import FrpcService

        policy = BackoffPolicy(initial=0.05, factor=2, maximum=0.2, jitter=0)
        service = FrpcService(self.config(loginFailExit=False), self.reactor, login_backoff=policy)
        self.assertEqual(self.retry_delays(service.client.factory, _Connector(), 4), [0.05, 0.1, 0.2, 0.2])
        self.assertIs(FrpcService(self.config(), self.reactor).client.factory.policy, LOGIN_BACKOFF)

    def test_jitter_spreads_each_delay_within_ten_percent(self) -> None:
        factory = self.make_client().factory
        draws = iter([0.0, 0.999999, 0.0, 0.999999])
        factory._uniform = lambda: next(draws)
        delays = self.retry_delays(factory, _Connector(), 4)
        self.assertEqual(delays, [0.9, 2.2, 3.6, 8.8])

    def test_stop_trying_cancels_the_pending_retry(self) -> None:
        factory = self.make_client().factory
        connector = _Connector()
        factory.clientConnectionFailed(connector, Failure(ConnectionRefusedError()))
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)
        factory.stopTrying()
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.reactor.advance(60)
        self.assertEqual(connector.attempts, 0)


class HeartbeatTests(ClientTestBase):
    def test_ping_every_interval_and_drop_without_pong(self) -> None:
        server = self.connect_control()
        server.received()
        server.accept_login()
        server.received()
        self.reactor.advance(29)
        self.assertEqual(server.received(), [])
        self.reactor.advance(1)
        self.assertEqual(server.received(), [Ping()])
        server.send(Pong())
        self.reactor.advance(30)
        self.assertEqual(server.received(), [Ping()])
        self.reactor.advance(59)
        self.assertFalse(server.transport.disconnecting)
        self.reactor.advance(2)  # 90 s after the last Pong
        self.assertTrue(server.transport.disconnecting)

    def test_pong_error_drops_control(self) -> None:
        server = self.connect_control()
        server.received()
        server.accept_login()
        server.send(Pong(error="invalid ping"))
        self.assertTrue(server.transport.disconnecting)

    def test_heartbeat_scope_signs_pings(self) -> None:
        self.client = FrpClient(self.config(auth={"token": TOKEN, "additionalScopes": ["HeartBeats"]}),
                                self.reactor)
        server = self.connect_control()
        server.received()
        server.accept_login()
        server.received()
        self.reactor.advance(30)
        [ping] = server.received()
        self.assertEqual(ping.privilege_key, privilege_key(TOKEN, ping.timestamp))


class WorkConnectionTests(ClientTestBase):
    def test_reqworkconn_opens_work_connection_with_run_id(self) -> None:
        server = self.connect_control()
        server.received()
        server.accept_login()
        server.send(ReqWorkConn())
        [(host, port, factory, timeout, bind)] = self.reactor.tcpClients
        self.assertEqual((host, port), ("127.0.0.1", 7000))
        work = FakeServer(factory.buildProtocol(None))
        self.assertEqual(work.received(), [NewWorkConn(run_id="abcdef0123456789")])

    def test_unknown_proxy_in_start_work_conn_closes(self) -> None:
        from frptx.wire import StartWorkConn

        self.client.run_id = "r"
        work = FakeServer(ClientWorkProtocol(self.client))
        work.received()
        work.send(StartWorkConn(proxy_name="nope"))
        self.assertTrue(work.transport.disconnecting)


class ReloadTests(ClientTestBase):
    def test_reload_diff_sends_close_and_new_proxy(self) -> None:
        server = self.connect_control()
        server.received()
        server.accept_login()
        server.received()
        new = client_config(7000, False, False, [tcp_proxy("ssh", 22, 6000), tcp_proxy("web", 81),
                                                  tcp_proxy("db", 5432)])
        self.client.proxy_manager.apply(new)
        msgs = server.received()
        self.assertEqual(msgs, [CloseProxy(proxy_name="web"),
                                new_proxy("web", 0), new_proxy("db", 0)])


def new_proxy(name: str, port: int) -> NewProxy:
    return NewProxy(proxy_name=name, proxy_type="tcp", remote_port=port)


class DescribeFailureTests(unittest.TestCase):
    def test_plain_failure_without_pyopenssl(self) -> None:
        """A frpc that never used TLS describes a failure without importing pyOpenSSL for it."""
        import sys
        from unittest import mock

        from frptx.client.failures import describe_failure

        with mock.patch.dict(sys.modules, {"OpenSSL.SSL": None}):  # importing it now fails
            sys.modules.pop("frptx.transport.tls_context", None)
            self.assertEqual(describe_failure(Failure(ConnectionRefusedError())), "Connection was refused by other side.")

    def test_tls_failure(self) -> None:
        from OpenSSL import SSL

        from frptx.client.failures import describe_failure
        from frptx.transport import tls_context  # noqa: F401  # a frpc with TLS has it

        reason = Failure(SSL.Error([("SSL routines", "", "wrong version number")]))
        self.assertIn("server does not speak TLS", describe_failure(reason))
