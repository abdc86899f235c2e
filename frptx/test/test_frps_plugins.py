"""frps asking its server plugins (in-process hooks here) over StringTransport and MemoryReactorClock.

Where each op is asked, what a refusal sends, what a rewrite changes, that a
slow plugin holds only its own connection (later messages wait, in order) and
that with no plugin nothing becomes asynchronous.  The HTTP side and real
clients are in ``test_e2e_server_plugins``.
"""
from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from frptx import FRP_PROTOCOL_VERSION
from frptx.server.control import ServerControl
from frptx.server.plugins import (
    CallablePlugin,
    CloseProxyContent,
    LoginContent,
    NewProxyContent,
    PluginResponse,
    address_text,
)
from frptx.server.registry import FrpServer
from frptx.test.support import TOKEN
from frptx.test.test_protocols_server import FakeClient, ServerTestBase, login
from frptx.wire import (
    CfbEncryptor,
    CloseProxy,
    LoginResp,
    MessageWriter,
    NewProxy,
    NewProxyResp,
    NewWorkConn,
    Ping,
    Pong,
    ReqWorkConn,
    StartWorkConn,
    derive_key,
)


class Hook:
    """An in-process plugin whose every answer the test gives: each call waits on a Deferred.

    ``answers`` maps an op to an immediate answer (a PluginResponse or None) instead.
    """

    def __init__(self, **answers: Any) -> None:
        self.answers = answers
        self.calls: list[tuple[str, Any, Deferred[Any]]] = []
        self.cancelled = 0

    def __call__(self, op: str, content: Any) -> Any:
        if op in self.answers:
            self.calls.append((op, content, Deferred()))
            answer = self.answers[op]
            return answer(content) if callable(answer) else answer

        def cancelled(d: Deferred[Any]) -> None:
            self.cancelled += 1

        d: Deferred[Any] = Deferred(cancelled)
        self.calls.append((op, content, d))
        return d

    def ops(self) -> list[str]:
        return [op for op, _, _ in self.calls]

    def pending(self, op: str) -> tuple[Any, Deferred[Any]]:
        [(content, d)] = [(c, d) for o, c, d in self.calls if o == op and not d.called]
        return content, d


class PluginServerTestBase(ServerTestBase):
    ops: tuple[str, ...] = ()

    def setUp(self) -> None:
        super().setUp()
        self.hook = Hook()
        self.use(self.ops)

    def use(self, ops: tuple[str, ...], hook: Hook | None = None, **config: Any) -> None:
        self.hook = hook or self.hook
        self.server = FrpServer(self.make_config(**config), self.reactor,
                                plugins=[CallablePlugin("hook", ops, self.hook)] if ops else ())


class FastPathTests(PluginServerTestBase):
    """No plugin for an op: no Deferred, no hold, the answer within the same call."""

    ops = ("CloseProxy",)  # a plugin exists, but not for these ops

    def test_login_and_work_connection_stay_synchronous(self) -> None:
        c = FakeClient(self.server)
        control = self.server.login(c.protocol, login())
        self.assertIsInstance(control, ServerControl)
        assert isinstance(control, ServerControl)
        work = FakeClient(self.server)
        handler = self.server.work_connection(work.protocol, NewWorkConn(run_id=control.run_id))
        self.assertNotIsInstance(handler, Deferred)
        self.assertIsNotNone(handler)
        self.assertEqual(self.hook.calls, [])


class LoginPluginTests(PluginServerTestBase):
    ops = ("Login",)

    def pipelined_login_and_ping(self, c: FakeClient, **kw: Any) -> None:
        """Login and an encrypted Ping in one read, as a client that does not wait for LoginResp sends them."""
        writer = MessageWriter()  # the FakeClient's own turns encryption on when it reads the LoginResp
        data = writer.encode(login(**kw))
        writer.start_encryption(CfbEncryptor(derive_key(TOKEN)))
        c.send_raw(data + writer.encode(Ping()))

    def test_held_until_allowed_then_the_waiting_messages_are_read_in_order(self) -> None:
        c = FakeClient(self.server)
        self.pipelined_login_and_ping(c, user="alice", metas={"team": "a"})
        content, d = self.hook.pending("Login")
        self.assertIsInstance(content, LoginContent)
        self.assertEqual((content.login.user, dict(content.login.metas)), ("alice", {"team": "a"}))
        self.assertEqual(content.client_address, address_text(c.transport.getPeer()))
        # nothing answered, nothing more read: the Ping (encrypted) is still in the buffer
        self.assertEqual((c.transport.value(), self.server.controls), (b"", {}))
        self.assertEqual(c.transport.producerState, "paused")
        d.callback(None)
        replies = c.replies()
        self.assertEqual([type(m) for m in replies], [LoginResp, ReqWorkConn, Pong])
        self.assertEqual(replies[0].error, "")
        self.assertEqual(c.transport.producerState, "producing")
        self.assertEqual(len(self.server.controls), 1)

    def test_reject_answers_with_the_reason_and_closes(self) -> None:
        c = FakeClient(self.server)
        c.send(login(user="mallory"))
        self.hook.pending("Login")[1].callback(PluginResponse.rejected("no mallory here"))
        self.assertEqual(c.replies(), [LoginResp(version=FRP_PROTOCOL_VERSION, error="no mallory here")])
        self.assertTrue(c.closed)
        self.assertEqual(self.server.controls, {})

    def test_reject_without_detailed_errors_is_frps_summary(self) -> None:
        self.use(self.ops, detailedErrorsToClient=False)
        c = FakeClient(self.server)
        c.send(login())
        self.hook.pending("Login")[1].callback(PluginResponse.rejected("secret reason"))
        [resp] = c.replies()
        self.assertEqual(resp.error, "register control error")

    def test_rewrite_is_the_login_checked_and_kept(self) -> None:
        c = FakeClient(self.server)
        c.send(login(user="alice", pool_count=1))
        content, d = self.hook.pending("Login")
        rewritten = LoginContent(login(user="bob", pool_count=2, metas={"via": "plugin"}), content.client_address)
        d.callback(PluginResponse.rewrite(rewritten))
        replies = c.replies()
        self.assertEqual(replies[0].error, "")
        self.assertEqual(replies[1:], [ReqWorkConn()] * 2)
        [control] = self.server.controls.values()
        self.assertEqual((control.login.user, dict(control.login.metas)), ("bob", {"via": "plugin"}))
        # a rewrite with a wrong key is checked like the client's own Login
        c2 = FakeClient(self.server)
        c2.send(login())
        content, d = self.hook.pending("Login")
        d.callback(PluginResponse.rewrite({"privilege_key": "forged", "timestamp": 1, "version": "0.65.0"}))
        [resp] = c2.replies()
        self.assertEqual(resp.error, "token in login doesn't match token from configuration")

    def test_a_slow_plugin_holds_only_its_login_and_times_out(self) -> None:
        hook = Hook(Login=lambda content: Deferred() if content.login.user == "slow" else None)
        self.use(self.ops, hook)
        slow = FakeClient(self.server)
        slow.send(login(user="slow"))
        fast = FakeClient(self.server)
        fast.send(login(user="fast"))
        self.assertEqual(fast.replies()[0].error, "")
        self.assertEqual(slow.replies(), [])
        self.reactor.advance(9.9)
        self.assertEqual(slow.replies(), [])
        self.reactor.advance(0.2)  # the plugin timeout (10 s) refuses the login as a plugin error
        self.assertEqual(slow.replies(), [LoginResp(version=FRP_PROTOCOL_VERSION, error="send Login request to plugin error")])
        self.assertTrue(slow.closed)
        self.assertEqual([c.login.user for c in self.server.controls.values()], ["fast"])

    def test_client_gone_before_the_decision_registers_nothing(self) -> None:
        c = FakeClient(self.server)
        c.send(login())
        c.protocol.connectionLost(None)
        self.hook.pending("Login")[1].callback(None)
        self.assertEqual((c.transport.value(), self.server.controls), (b"", {}))

    def test_stopping_frps_refuses_pending_logins(self) -> None:
        c = FakeClient(self.server)
        c.send(login())
        self.server.close()
        self.assertEqual(self.hook.cancelled, 1)
        self.assertEqual(c.replies(), [LoginResp(version=FRP_PROTOCOL_VERSION, error="send Login request to plugin error")])


class ControlPluginTests(PluginServerTestBase):
    ops = ("NewProxy", "Ping", "CloseProxy", "NewWorkConn")

    def logged_in_control(self) -> tuple[FakeClient, ServerControl]:
        c, resp = self.logged_in()
        return c, self.server.controls[resp.run_id]

    def test_new_proxy_rewrite_registers_the_rewritten_proxy(self) -> None:
        c, control = self.logged_in_control()
        c.send(NewProxy(proxy_name="web", proxy_type="tcp", remote_port=6000))
        content, d = self.hook.pending("NewProxy")
        self.assertIsInstance(content, NewProxyContent)
        self.assertEqual((content.user.user, content.user.run_id), ("", control.run_id))
        self.assertEqual(c.replies(), [])
        d.callback(PluginResponse.rewrite({"proxy_name": "web", "proxy_type": "tcp", "remote_port": 6001}))
        self.assertEqual(c.replies(), [NewProxyResp(proxy_name="web", remote_addr=":6001")])
        self.assertEqual(self.server.proxies["web"].remote_port, 6001)

    def test_new_proxy_reject(self) -> None:
        c, _ = self.logged_in_control()
        c.send(NewProxy(proxy_name="web", proxy_type="tcp", remote_port=6000))
        self.hook.pending("NewProxy")[1].callback(PluginResponse.rejected("port 6000 is reserved"))
        self.assertEqual(c.replies(), [NewProxyResp(proxy_name="web", error="port 6000 is reserved")])
        self.assertEqual(self.server.proxies, {})
        self.use(self.ops, detailedErrorsToClient=False)
        c, _ = self.logged_in_control()
        c.send(NewProxy(proxy_name="web", proxy_type="tcp", remote_port=6000))
        self.hook.pending("NewProxy")[1].callback(PluginResponse.rejected("port 6000 is reserved"))
        self.assertEqual(c.replies(), [NewProxyResp(proxy_name="web", error="new proxy [web] error")])

    def test_messages_after_a_pending_new_proxy_wait_for_it(self) -> None:
        """A CloseProxy sent right after its NewProxy closes the proxy, as in frp's one loop per client."""
        c, control = self.logged_in_control()
        c.send_raw(c.writer.encode(NewProxy(proxy_name="web", proxy_type="tcp", remote_port=6000))
                   + c.writer.encode(CloseProxy(proxy_name="web")))
        self.assertEqual(self.hook.ops(), ["NewProxy"])
        self.hook.pending("NewProxy")[1].callback(PluginResponse.allow())
        self.assertEqual(c.replies(), [NewProxyResp(proxy_name="web", remote_addr=":6000")])
        self.assertEqual((self.server.proxies, control.proxies), ({}, {}))
        # ... and the close was notified with who the client is
        [(_, content, _)] = [call for call in self.hook.calls if call[0] == "CloseProxy"]
        self.assertEqual(content, CloseProxyContent(control.user_info(), CloseProxy(proxy_name="web")))

    def test_close_proxy_notified_when_the_client_goes(self) -> None:
        c, control = self.logged_in_control()
        c.send(NewProxy(proxy_name="web", proxy_type="tcp", remote_port=6000))
        self.hook.pending("NewProxy")[1].callback(PluginResponse.allow())
        c.protocol.connectionLost(None)
        self.assertEqual([content.close_proxy.proxy_name for op, content, _ in self.hook.calls
                          if op == "CloseProxy"], ["web"])

    def test_ping_reject_and_allow(self) -> None:
        c, _ = self.logged_in_control()
        c.send(Ping())
        self.hook.pending("Ping")[1].callback(PluginResponse.rejected("ping refused"))
        self.assertEqual(c.replies(), [Pong(error="ping refused")])
        c.send(Ping())
        self.assertEqual(c.replies(), [])
        self.hook.pending("Ping")[1].callback(None)
        self.assertEqual(c.replies(), [Pong()])

    def test_new_work_conn_reject_and_allow(self) -> None:
        c, control = self.logged_in_control()
        work = FakeClient(self.server)
        work.send(NewWorkConn(run_id=control.run_id))
        content, d = self.hook.pending("NewWorkConn")
        self.assertEqual((content.user.run_id, content.new_work_conn.run_id), (control.run_id, control.run_id))
        self.assertEqual(work.transport.producerState, "paused")
        d.callback(PluginResponse.rejected("no more work"))
        self.assertEqual(work.replies(), [StartWorkConn(error="no more work")])
        self.assertTrue(work.closed)
        self.assertEqual(len(control.pool.idle), 0)
        ok = FakeClient(self.server)
        ok.send(NewWorkConn(run_id=control.run_id))
        self.hook.pending("NewWorkConn")[1].callback(None)
        self.assertEqual((ok.replies(), ok.closed, len(control.pool.idle)), ([], False, 1))

    def test_new_work_conn_for_a_client_gone_meanwhile(self) -> None:
        c, control = self.logged_in_control()
        work = FakeClient(self.server)
        work.send(NewWorkConn(run_id=control.run_id))
        c.protocol.connectionLost(None)
        self.hook.pending("NewWorkConn")[1].callback(None)
        self.assertEqual(work.replies(), [StartWorkConn(error=f"no client control found for run id "
                                                              f"[{control.run_id}]")])
        self.assertTrue(work.closed)


class HookErrorsTests(PluginServerTestBase):
    ops = ("Login",)

    def test_a_failing_hook_is_a_plugin_error(self) -> None:
        def broken(op: str, content: Any) -> None:
            raise RuntimeError("bug in the hook")

        self.server = FrpServer(self.make_config(), self.reactor, plugins=[CallablePlugin("b", ["Login"], broken)])
        c = FakeClient(self.server)
        c.send(login())
        self.assertEqual(c.replies(), [LoginResp(version=FRP_PROTOCOL_VERSION, error="send Login request to plugin error")])
