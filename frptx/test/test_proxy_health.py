"""Health-checked proxies in frpc's ProxyManager (frp's proxy wrapper), on a fake clock and with a real service.

The unit tests drive a real ``FrpClient`` whose control connection is a
``FakeServer`` and whose health probes are Deferreds the test answers, so
every NewProxy/CloseProxy frpc sends can be checked against frp's rules.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial import unittest

from frptx.test.support import MODES, EchoFactory, Tunnel, client_config, roundtrip, tcp_proxy, until
from frptx.test.test_e2e import async_test
from frptx.test.test_protocols_client import FakeServer
from frptx.wire import CloseProxy, NewProxy, NewProxyResp, Ping, Pong

CHECK = {"type": "tcp", "intervalSeconds": 10, "timeoutSeconds": 3, "maxFailed": 2}


class FakeProbe:
    """Each call is one check; the test answers it."""

    def __init__(self) -> None:
        self.calls: list[Deferred[object]] = []

    def __call__(self) -> Deferred[object]:
        d: Deferred[object] = Deferred()
        self.calls.append(d)
        return d

    def answer(self, ok: bool) -> None:
        d = self.calls[-1]
        assert not d.called, "the last check was already answered"
        if ok:
            d.callback(None)
        else:
            d.errback(Failure(ConnectionRefusedError("connection refused")))


class HealthCheckedProxyTests(unittest.TestCase):
    def setUp(self) -> None:
        self.start(CHECK)

    def start(self, check: dict[str, Any]) -> None:
        from frptx.client.client import FrpClient

        self.reactor = MemoryReactorClock()
        cfg = client_config(7000, False, False, [tcp_proxy("web", 80, 6080, healthCheck=check),
                                                 tcp_proxy("plain", 22, 6000)])
        self.client = FrpClient(cfg, self.reactor)
        self.pm = self.client.proxy_manager
        self.probe = FakeProbe()
        self.pm.probe_factory = lambda proxy: self.probe
        self.server = self.login()

    def login(self) -> FakeServer:
        server = FakeServer(self.client.factory.buildProtocol(None))
        server.received()
        server.accept_login("0123456789abcdef")
        return server

    def sent(self) -> list[tuple[str, str]]:
        """(message type, proxy name) of the NewProxy/CloseProxy frpc sent since the last call."""
        out = []
        for m in self.server.received():
            if isinstance(m, Ping):
                self.server.send(Pong())
            elif isinstance(m, (NewProxy, CloseProxy)):
                out.append((type(m).__name__, m.proxy_name))
        return out

    def check(self, ok: bool) -> None:
        """Let the next check run (interval) and answer it."""
        self.reactor.advance(10)
        self.probe.answer(ok)

    def phase(self) -> str:
        return self.pm.status["web"].phase

    def test_registered_only_after_the_first_pass(self) -> None:
        self.assertEqual(self.sent(), [("NewProxy", "plain")])
        self.assertEqual((self.phase(), len(self.probe.calls)), ("new", 1))  # first check at start
        self.probe.answer(False)  # failures before the first pass: still unregistered, still "new"
        self.check(False)
        self.assertEqual((self.sent(), self.phase()), ([], "new"))
        self.check(True)
        self.assertEqual(self.sent(), [("NewProxy", "web")])
        self.assertEqual(self.phase(), "wait start")
        self.server.send(NewProxyResp(proxy_name="web", remote_addr=":6080"))
        self.assertEqual(self.phase(), "running")

    def test_withdrawn_after_max_failed_then_registered_again(self) -> None:
        self.probe.answer(True)
        self.server.send(NewProxyResp(proxy_name="web", remote_addr=":6080"))
        self.sent()
        self.check(False)  # 1 of maxFailed 2
        self.assertEqual((self.sent(), self.phase()), ([], "running"))
        self.check(False)
        self.assertEqual(self.sent(), [("CloseProxy", "web")])
        self.assertEqual(self.phase(), "check failed")
        self.check(False)  # stays withdrawn, nothing sent again
        self.assertEqual((self.sent(), self.phase()), ([], "check failed"))
        self.check(True)
        self.assertEqual(self.sent(), [("NewProxy", "web")])
        self.server.send(NewProxyResp(proxy_name="web", remote_addr=":6080"))
        self.assertEqual(self.phase(), "running")

    def test_withdrawn_proxy_refuses_work_connections(self) -> None:
        from frptx.protocols.client import ClientWorkProtocol
        from frptx.wire import StartWorkConn

        def start_work() -> FakeServer:
            work = FakeServer(ClientWorkProtocol(self.client))
            work.received()
            work.send(StartWorkConn(proxy_name="web", src_addr="127.0.0.1", src_port=5000))
            return work

        self.probe.answer(True)
        self.server.send(NewProxyResp(proxy_name="web", remote_addr=":6080"))
        self.assertFalse(start_work().transport.disconnecting)  # running: it dials the local service
        self.check(False)
        self.check(False)
        self.assertEqual(self.phase(), "check failed")
        self.assertTrue(start_work().transport.disconnecting)

    def test_a_check_that_times_out_fails(self) -> None:
        self.probe.answer(True)
        self.server.send(NewProxyResp(proxy_name="web", remote_addr=":6080"))
        self.sent()
        for _ in range(2):
            self.reactor.advance(10)  # the next check starts, and never answers
            self.reactor.advance(3)  # timeoutSeconds
        self.assertEqual(self.sent(), [("CloseProxy", "web")])
        self.assertEqual(self.phase(), "check failed")

    def test_answer_to_a_withdrawn_registration_is_ignored(self) -> None:
        self.probe.answer(True)  # NewProxy sent: "wait start"
        self.check(False)
        self.check(False)
        self.assertEqual(self.sent(), [("NewProxy", "plain"), ("NewProxy", "web"), ("CloseProxy", "web")])
        self.server.send(NewProxyResp(proxy_name="web", remote_addr=":6080"))  # late answer
        self.assertEqual(self.phase(), "check failed")

    def test_refused_proxy_is_retried_only_while_healthy(self) -> None:
        self.start(dict(CHECK, intervalSeconds=1, maxFailed=1))
        self.probe.answer(True)
        self.sent()
        self.server.send(NewProxyResp(proxy_name="web", error="port already used"))  # retry due at +2 s
        self.assertEqual(self.phase(), "start error")
        self.reactor.advance(1)
        self.probe.answer(False)  # unhealthy before the retry time
        self.assertFalse(self.pm.healthy("web"))
        self.assertEqual(self.phase(), "start error")  # frp withdraws only a registered proxy
        self.reactor.advance(1)  # the retry time (and the next check, left unanswered)
        self.assertEqual((self.sent(), self.phase()), ([], "start error"))
        self.probe.answer(True)  # healthy again: registered at once
        self.assertEqual(self.sent(), [("NewProxy", "web")])
        self.assertEqual(self.phase(), "wait start")

    def test_checker_stops_with_the_session_and_restarts_on_login(self) -> None:
        self.probe.answer(True)
        self.server.protocol.connectionLost(Failure(Exception("gone")))
        self.assertEqual(self.pm.checkers, {})
        calls = len(self.probe.calls)
        self.reactor.advance(60)
        self.assertEqual(len(self.probe.calls), calls)  # no checks while logged out
        self.server = self.login()
        self.assertEqual(self.sent(), [("NewProxy", "plain")])  # web waits for a pass again (frp: starts failed)
        self.assertEqual(len(self.probe.calls), calls + 1)
        self.probe.answer(True)
        self.assertEqual(self.sent(), [("NewProxy", "web")])

    def test_reload_and_stop_stop_the_checker(self) -> None:
        self.probe.answer(True)
        checker = self.pm.checkers["web"]
        cfg = client_config(7000, False, False, [tcp_proxy("plain", 22, 6000)])
        self.pm.apply(cfg)
        self.assertFalse(checker.running)
        self.assertNotIn("web", self.pm.checkers)
        calls = len(self.probe.calls)
        self.reactor.advance(60)
        self.assertEqual(len(self.probe.calls), calls)
        # a reload that adds a checked proxy starts its checker, unregistered until it passes
        self.sent()
        self.pm.apply(client_config(7000, False, False, [tcp_proxy("plain", 22, 6000),
                                                         tcp_proxy("web", 80, 6080, healthCheck=CHECK)]))
        self.assertEqual((self.sent(), self.phase()), ([], "new"))
        checker = self.pm.checkers["web"]
        self.pm.stopService()
        self.assertFalse(checker.running)
        calls = len(self.probe.calls)
        self.reactor.advance(60)
        self.assertEqual(len(self.probe.calls), calls)


class HealthCheckEndToEnd(unittest.TestCase):
    """A real local service stopped and restarted: frps loses the proxy and gets it back."""

    timeout = 60

    @async_test
    async def test_service_stopped_and_restarted(self) -> None:
        listener = reactor.listenTCP(0, EchoFactory(), interface="127.0.0.1")
        local = listener.getHost().port
        t = Tunnel(self, MODES["nomux"])
        t.start_server()
        frpc = t.start_client([tcp_proxy("web", local, healthCheck={
            "type": "tcp", "intervalSeconds": 1, "timeoutSeconds": 1, "maxFailed": 1})])
        pm = frpc.proxy_manager
        await pm.when_running("web")
        port = int(pm.status["web"].remote_addr.rsplit(":", 1)[1])
        self.assertEqual(await roundtrip(port, b"up"), b"up")
        await listener.stopListening()
        await until(lambda: pm.status["web"].phase == "check failed", "the failed check to withdraw the proxy")
        assert t.frps is not None
        await until(lambda: "web" not in t.frps.server.proxies, "frps to close the proxy")
        listener = reactor.listenTCP(local, EchoFactory(), interface="127.0.0.1")
        self.addCleanup(listener.stopListening)
        await pm.when_running("web")
        port = int(pm.status["web"].remote_addr.rsplit(":", 1)[1])
        self.assertEqual(await roundtrip(port, b"back"), b"back")

