"""frps's dispatcher and control logic over StringTransport and MemoryReactorClock."""
from __future__ import annotations

import dataclasses
from typing import Any

from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial import unittest

from frptx.protocols.server import ServerConnectionProtocol
from frptx.server.registry import FrpServer
from frptx.test.support import TOKEN, server_config
from frptx.wire import (
    CfbDecryptor,
    CfbEncryptor,
    Login,
    LoginResp,
    MessageReader,
    MessageWriter,
    NewProxy,
    NewProxyResp,
    NewVisitorConn,
    NewVisitorConnResp,
    NewWorkConn,
    Ping,
    Pong,
    ReqWorkConn,
    StartWorkConn,
    derive_key,
    encode_message,
    privilege_key,
)


def login(token: str = TOKEN, run_id: str = "", pool_count: int = 1, version: str = "0.61.0", **kw: Any) -> Login:
    return Login(version=version, os="linux", arch="amd64", privilege_key=privilege_key(token, 1700000000),
                 timestamp=1700000000, run_id=run_id, pool_count=pool_count, **kw)


class FakeClient:
    """The client end of one connection: encodes what frpc would send, decodes replies."""

    def __init__(self, server: FrpServer) -> None:
        self.protocol = ServerConnectionProtocol(server)
        self.transport = StringTransport(peerAddress=None)
        self.protocol.makeConnection(self.transport)
        self.reader = MessageReader()
        self.writer = MessageWriter()
        self.encrypted = False

    def send(self, msg: Any) -> None:
        self.protocol.dataReceived(self.writer.encode(msg))

    def send_raw(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def replies(self) -> list[Any]:
        self.reader.feed(self.transport.value())
        self.transport.clear()
        out = []
        while True:
            msg = self.reader.next_message()
            if msg is None:
                return out
            out.append(msg)
            if isinstance(msg, LoginResp) and not msg.error and not self.encrypted:
                self.encrypted = True
                self.reader.start_decryption(CfbDecryptor(derive_key(TOKEN)))
                self.writer.start_encryption(CfbEncryptor(derive_key(TOKEN)))

    @property
    def closed(self) -> bool:
        return self.transport.disconnecting


class ServerTestBase(unittest.TestCase):
    tcp_mux = False

    def setUp(self) -> None:
        from frptx.test.test_udp import UdpClock

        self.reactor = UdpClock()  # a MemoryReactorClock that also fakes listenUDP
        self.server = FrpServer(self.make_config(), self.reactor)

    def make_config(self, **extra: Any) -> Any:
        return server_config(self.tcp_mux, **extra)

    def logged_in(self, **kw: Any) -> tuple[FakeClient, LoginResp]:
        c = FakeClient(self.server)
        c.send(login(**kw))
        replies = c.replies()
        self.assertIsInstance(replies[0], LoginResp)
        return c, replies[0]


class LoginTests(ServerTestBase):
    def test_login_ok_then_encrypted_reqworkconn_per_pool_count(self) -> None:
        c = FakeClient(self.server)
        c.send(login(pool_count=3))
        replies = c.replies()
        resp = replies[0]
        self.assertEqual(resp.error, "")
        self.assertEqual(len(resp.run_id), 16)
        self.assertEqual(replies[1:], [ReqWorkConn()] * 3)
        self.assertIn(resp.run_id, self.server.controls)

    def test_pool_count_capped_by_max_pool_count(self) -> None:
        c = FakeClient(self.server)
        c.send(login(pool_count=50))
        self.assertEqual(c.replies()[1:], [ReqWorkConn()] * 5)

    def test_wrong_token(self) -> None:
        c = FakeClient(self.server)
        c.send(login(token="wrong"))
        [resp] = c.replies()
        self.assertEqual(resp.error, "token in login doesn't match token from configuration")
        self.assertTrue(c.closed)
        self.assertEqual(self.server.controls, {})

    def test_any_version_accepted(self) -> None:
        """frps 0.65.0 logs Login.version but does not check it (0.31.2 wanted >= 0.18.0)."""
        for version in ("0.1.0", "0.17.9", "", "garbage", "v1"):
            c = FakeClient(self.server)
            c.send(login(version=version))
            resp = c.replies()[0]
            self.assertIsInstance(resp, LoginResp)
            self.assertEqual(resp.error, "", version)
            self.assertFalse(c.closed, version)
            self.assertEqual(self.server.controls[resp.run_id].login.version, version)

    def test_relogin_same_run_id_evicts_old_control(self) -> None:
        old, resp = self.logged_in(run_id="0123456789abcdef")
        old.send(NewProxy(proxy_name="ssh", proxy_type="tcp", remote_port=6000))
        self.assertEqual(self.server.proxies.keys(), {"ssh"})
        new, resp2 = self.logged_in(run_id="0123456789abcdef")
        self.assertEqual(resp2.run_id, "0123456789abcdef")
        self.assertTrue(old.closed)
        self.assertEqual(self.server.proxies, {})  # freed at once: no "already exists" on re-register
        new.send(NewProxy(proxy_name="ssh", proxy_type="tcp", remote_port=6000))
        [r] = [m for m in new.replies() if isinstance(m, NewProxyResp)]
        self.assertEqual((r.proxy_name, r.error, r.remote_addr), ("ssh", "", ":6000"))

    def test_client_id_conflict(self) -> None:
        self.logged_in(client_id="box-1")
        c = FakeClient(self.server)
        c.send(login(client_id="box-1"))
        [resp] = c.replies()
        self.assertEqual(resp.error, "client_id [box-1] for user [] is already online")


class DispatcherTests(ServerTestBase):
    def test_first_message_timeout(self) -> None:
        c = FakeClient(self.server)
        self.reactor.advance(9.9)
        self.assertFalse(c.closed)
        self.reactor.advance(0.2)
        self.assertTrue(c.closed)

    def test_ping_as_first_message_closes(self) -> None:
        c = FakeClient(self.server)
        c.send(Ping())
        self.assertTrue(c.closed)
        self.assertEqual(c.transport.value(), b"")

    def test_unknown_type_and_oversized_and_garbage_cost_only_their_connection(self) -> None:
        good, resp = self.logged_in()
        for junk in (b"x" + b"\x00" * 7 + b"\x02{}", b"o" + (10241).to_bytes(8, "big"),
                     b"o" + (-1).to_bytes(8, "big", signed=True), b"GET / HTTP/1.1\r\n\r\n",
                     b"o\x00\x00\x00\x00\x00\x00\x00\x05[1,2]"):
            bad = FakeClient(self.server)
            bad.send_raw(junk)
            self.assertTrue(bad.closed, junk)
        good.send(Ping())
        self.assertEqual(good.replies(), [Pong()])
        self.assertIn(resp.run_id, self.server.controls)

    def test_new_work_conn_unknown_run_id(self) -> None:
        c = FakeClient(self.server)
        c.send(NewWorkConn(run_id="nope"))
        [resp] = c.replies()
        self.assertEqual(resp, StartWorkConn(error="no client control found for run id [nope]"))
        self.assertTrue(c.closed)

    def test_new_visitor_conn_refused_with_error(self) -> None:
        c = FakeClient(self.server)
        c.send(NewVisitorConn(proxy_name="secret"))
        [resp] = c.replies()
        self.assertIsInstance(resp, NewVisitorConnResp)
        self.assertNotEqual(resp.error, "")
        self.assertTrue(c.closed)


class PoolTests(ServerTestBase):
    def test_pool_refill_after_use(self) -> None:
        ctl, resp = self.logged_in(pool_count=2)
        control = self.server.controls[resp.run_id]
        works = []
        for _ in range(2):
            w = FakeClient(self.server)
            w.send(NewWorkConn(run_id=resp.run_id))
            works.append(w)
        self.assertEqual(len(control.pool.idle), 2)
        got = []
        control.get_work_connection().addCallback(got.append)
        self.assertEqual(len(got), 1)
        self.assertEqual(ctl.replies(), [ReqWorkConn()])  # exactly one replacement
        control.get_work_connection().addCallback(got.append)
        self.assertEqual(ctl.replies(), [ReqWorkConn()])  # the last idle one, replaced
        control.get_work_connection().addCallback(got.append)  # pool empty: waits
        self.assertEqual(len(got), 2)
        # one for the waiting user, and the pool grows by one: it will keep 3 ready
        self.assertEqual(ctl.replies(), [ReqWorkConn(), ReqWorkConn()])
        self.assertEqual(control.pool.target, 3)
        for _ in range(4):
            FakeClient(self.server).send(NewWorkConn(run_id=resp.run_id))
        self.assertEqual(len(got), 3)
        self.assertEqual(len(control.pool.idle), 3)  # nothing thrown away
        self.assertEqual(ctl.replies(), [])

    def test_take_is_an_idle_connection_or_none(self) -> None:
        ctl, resp = self.logged_in(pool_count=1)
        control = self.server.controls[resp.run_id]
        ctl.replies()
        self.assertIsNone(control.take_work_connection())  # nothing idle: no waiter made, nothing asked
        self.assertEqual(ctl.replies(), [])
        FakeClient(self.server).send(NewWorkConn(run_id=resp.run_id))
        work = control.take_work_connection()
        self.assertIsNotNone(work)
        self.assertEqual(ctl.replies(), [ReqWorkConn()])  # replaced, as get() would
        self.assertEqual(control.pool.target, 1)  # an idle one was there: the pool does not grow

    def test_pool_growth_is_bounded(self) -> None:
        ctl, resp = self.logged_in(pool_count=1)
        control = self.server.controls[resp.run_id]
        FakeClient(self.server).send(NewWorkConn(run_id=resp.run_id))
        ctl.replies()
        for _ in range(50):  # a burst: every user after the first waits
            control.get_work_connection()
        self.assertEqual(control.pool.target, control.pool.capacity)
        self.assertEqual(control.pool.capacity, 1 + 10)
        self.assertEqual(len(ctl.replies()), 49 + 11)  # one per waiting user, plus the pool kept ready

    def test_pool_count_zero_keeps_one_spare_once_used(self) -> None:
        """Like frp's frps: every connection handed out is replaced, even with poolCount 0."""
        ctl, resp = self.logged_in(pool_count=0)
        control = self.server.controls[resp.run_id]
        self.assertEqual(ctl.replies(), [])  # nothing prefetched before the first user
        got = []
        control.get_work_connection().addCallback(got.append)
        self.assertEqual(ctl.replies(), [ReqWorkConn(), ReqWorkConn()])  # one for this user, one spare
        for _ in range(2):
            FakeClient(self.server).send(NewWorkConn(run_id=resp.run_id))
        self.assertEqual(len(got), 1)
        self.assertEqual(len(control.pool.idle), 1)
        control.get_work_connection().addCallback(got.append)
        self.assertEqual(len(got), 2)  # the spare, at once
        self.assertEqual(ctl.replies(), [ReqWorkConn()])  # and exactly one replacement

    def test_work_conn_wait_times_out(self) -> None:
        ctl, resp = self.logged_in(pool_count=0)
        control = self.server.controls[resp.run_id]
        d = control.get_work_connection()
        d.addTimeout(10, self.reactor)
        failures: list[Any] = []
        d.addErrback(failures.append)
        self.reactor.advance(10)
        self.assertEqual(len(failures), 1)

    def test_control_loss_closes_pool_and_proxies(self) -> None:
        ctl, resp = self.logged_in(pool_count=1)
        w = FakeClient(self.server)
        w.send(NewWorkConn(run_id=resp.run_id))
        ctl.send(NewProxy(proxy_name="p", proxy_type="tcp", remote_port=6001))
        ctl.protocol.connectionLost(None)
        self.assertTrue(w.closed)
        self.assertEqual(self.server.proxies, {})
        self.assertEqual(self.server.controls, {})


class ProxyRegistrationTests(ServerTestBase):
    def new_proxy(self, ctl: FakeClient, **kw: Any) -> NewProxyResp:
        ctl.send(NewProxy(**kw))
        [r] = [m for m in ctl.replies() if isinstance(m, NewProxyResp)]
        return r

    def test_name_taken(self) -> None:
        a, _ = self.logged_in()
        b, _ = self.logged_in()
        self.assertEqual(self.new_proxy(a, proxy_name="web", remote_port=6000).error, "")
        self.assertEqual(self.new_proxy(b, proxy_name="web", remote_port=6001).error, "proxy [web] already exists")
        self.assertEqual(self.new_proxy(b, proxy_name="web2", remote_port=6000).error, "port already used")

    def test_allow_ports_and_max_ports(self) -> None:
        self.server = FrpServer(self.make_config(allowPorts=[{"start": 6000, "end": 6010}, {"single": 7001}],
                                                 maxPortsPerClient=2), self.reactor)
        c, _ = self.logged_in()
        self.assertEqual(self.new_proxy(c, proxy_name="a", remote_port=5999).error, "port not allowed")
        self.assertEqual(self.new_proxy(c, proxy_name="b", remote_port=7001).remote_addr, ":7001")
        r = self.new_proxy(c, proxy_name="c", remote_port=0)
        self.assertTrue(6000 <= int(r.remote_addr[1:]) <= 6010, r)
        self.assertEqual(self.new_proxy(c, proxy_name="d", remote_port=6005).error,
                         "exceed the max_ports_per_client")

    def test_remote_port_out_of_range_not_allowed(self) -> None:
        """Any int64 may come off the wire; outside 1..65535 frps answers as frp does, listening nowhere."""
        c, _ = self.logged_in()
        for i, port in enumerate((65536, 70000, -1, 2 ** 63 - 1, -(2 ** 63))):
            r = self.new_proxy(c, proxy_name=f"t{i}", proxy_type="tcp", remote_port=port)
            self.assertEqual((r.proxy_name, r.error), (f"t{i}", "port not allowed"), port)
            r = self.new_proxy(c, proxy_name=f"u{i}", proxy_type="udp", remote_port=port)
            self.assertEqual(r.error, f"acquire port {port} error: port not allowed", port)
        self.assertEqual((self.reactor.tcpServers, self.reactor.udp_ports), ([], []))
        self.assertEqual(self.server.proxies, {})
        self.assertEqual(self.new_proxy(c, proxy_name="ok", remote_port=65535).remote_addr, ":65535")

    def test_udp_port_errors_worded_like_frps(self) -> None:
        a, _ = self.logged_in()
        self.assertEqual(self.new_proxy(a, proxy_name="dns", proxy_type="udp", remote_port=6053).error, "")
        self.assertEqual(self.new_proxy(a, proxy_name="dns2", proxy_type="udp", remote_port=6053).error,
                         "acquire port 6053 error: port already used")

    def test_unexpected_listen_error_still_answered(self) -> None:
        """A proxy whose set-up raises gets an error answer; the name is free again."""
        def broken(*args: Any, **kw: Any) -> Any:
            raise RuntimeError("boom")

        c, _ = self.logged_in()
        self.patch(self.reactor, "listenTCP", broken)
        r = self.new_proxy(c, proxy_name="web", remote_port=6000)
        self.assertEqual(r.error, "internal error: boom")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.server.proxies, {})
        self.assertEqual(self.server._pending_names, set())

    def test_login_pool_count_off_the_wire_is_bounded(self) -> None:
        c, _ = self.logged_in(pool_count=-(2 ** 63))
        self.assertEqual(c.replies(), [])  # nothing prefetched, no error
        c2, _ = self.logged_in(pool_count=2 ** 63 - 1)
        self.assertEqual(c2.replies(), [])  # capped at maxPoolCount (5): asked for in the login burst

    def test_unsupported_type(self) -> None:
        c, _ = self.logged_in()
        self.assertIn("not supported", self.new_proxy(c, proxy_name="h", proxy_type="http").error)


class UdpStartOrderTests(ServerTestBase):
    def test_new_proxy_resp_before_the_first_start_work_conn(self) -> None:
        """frps's order: NewProxyResp, then (0.5 s later) the udp proxy's StartWorkConn.

        A pooled work connection is there at once; sending StartWorkConn on it
        before the NewProxyResp makes frpc 0.65.0 drop it and frpc 0.31.2 black-hole the proxy.
        """
        START_DELAY = 0.5  # frps's udp proxy sleeps 500 ms before taking a work connection
        ctl, resp = self.logged_in(pool_count=1)
        work = FakeClient(self.server)
        work.send(NewWorkConn(run_id=resp.run_id))
        events: list[str] = []
        for name, client in (("control", ctl), ("work", work)):
            write = client.transport.write
            client.transport.write = (lambda data, name=name, write=write:  # type: ignore[method-assign]
                                      (events.append(name), write(data))[1])
        ctl.send(NewProxy(proxy_name="dns", proxy_type="udp", remote_port=6053))
        self.assertEqual(work.transport.value(), b"", "StartWorkConn sent with (or before) the NewProxyResp")
        self.assertEqual(events, ["control"])
        [r] = ctl.replies()
        self.assertEqual((r.proxy_name, r.error, r.remote_addr), ("dns", "", ":6053"))
        self.reactor.advance(START_DELAY - 0.01)
        self.assertEqual(work.transport.value(), b"")
        self.reactor.advance(0.01)
        self.assertEqual(events[0], "control")
        self.assertIn("work", events)
        self.assertEqual(work.replies(), [StartWorkConn(proxy_name="dns")])

    def test_proxy_closed_before_its_start_takes_nothing(self) -> None:
        from frptx.wire import CloseProxy

        START_DELAY = 0.5
        ctl, resp = self.logged_in(pool_count=1)
        work = FakeClient(self.server)
        work.send(NewWorkConn(run_id=resp.run_id))
        ctl.send(NewProxy(proxy_name="dns", proxy_type="udp", remote_port=6053))
        proxy = self.server.proxies["dns"]
        ctl.send(CloseProxy(proxy_name="dns"))
        self.assertTrue(proxy.closed)
        self.assertIsNone(proxy._retry)  # the start timer is cancelled with the proxy
        self.reactor.advance(START_DELAY)
        self.assertEqual(work.transport.value(), b"")
        self.assertEqual(len(self.server.controls[resp.run_id].pool.idle), 1)


class HeartbeatTests(ServerTestBase):
    def test_no_mux_client_dropped_after_timeout(self) -> None:
        c, _ = self.logged_in()
        self.reactor.advance(60)
        c.send(Ping())
        self.assertEqual(c.replies(), [Pong()])
        self.reactor.advance(89)
        self.assertFalse(c.closed)
        self.reactor.advance(2)
        self.assertTrue(c.closed)

    def test_wrong_heartbeat_token_scope(self) -> None:
        self.server = FrpServer(self.make_config(auth={"token": TOKEN, "additionalScopes": ["HeartBeats"]}),
                                self.reactor)
        c, _ = self.logged_in()
        c.send(Ping(privilege_key="bad", timestamp=1))
        [pong] = c.replies()
        self.assertEqual(pong.error, "token in heartbeat doesn't match token from configuration")
        c.send(Ping(privilege_key=privilege_key(TOKEN, 5), timestamp=5))
        self.assertEqual(c.replies(), [Pong()])


class MuxHeartbeatTests(ServerTestBase):
    tcp_mux = True

    def test_mux_client_without_pings_is_not_dropped(self) -> None:
        c, _ = self.logged_in()
        self.reactor.advance(500)
        self.assertFalse(c.closed)

    def test_mux_client_that_pings_is_held_to_it(self) -> None:
        c, _ = self.logged_in()
        c.send(Ping())
        self.reactor.advance(91)
        self.assertTrue(c.closed)


class NewWorkConnAuthTests(ServerTestBase):
    def test_new_work_conn_scope(self) -> None:
        self.server = FrpServer(self.make_config(auth={"token": TOKEN, "additionalScopes": ["NewWorkConns"]}),
                                self.reactor)
        _, resp = self.logged_in()
        bad = FakeClient(self.server)
        bad.send(NewWorkConn(run_id=resp.run_id))
        [r] = bad.replies()
        self.assertEqual(r.error, "token in NewWorkConn doesn't match token from configuration")
        good = FakeClient(self.server)
        good.send(NewWorkConn(run_id=resp.run_id, privilege_key=privilege_key(TOKEN, 9), timestamp=9))
        self.assertFalse(good.closed)
        self.assertEqual(len(self.server.controls[resp.run_id].pool.idle), 1)


class GoldenLoginTests(unittest.TestCase):
    def test_server_reply_shape_matches_capture(self) -> None:
        """LoginResp in clear, then IV + encrypted ReqWorkConn, as live frps 0.31.2 did."""
        reactor = MemoryReactorClock()
        cfg = dataclasses.replace(server_config(False), auth=dataclasses.replace(server_config(False).auth,
                                                                                 token="abc"))
        server = FrpServer(cfg, reactor)
        proto = ServerConnectionProtocol(server)
        transport = StringTransport()
        proto.makeConnection(transport)
        capture_login = bytes.fromhex(
            "6f00000000000000b87b2276657273696f6e223a22302e33312e32222c22686f73746e616d65223a22222c226f73223a226c"
            "696e7578222c2261726368223a22616d643634222c2275736572223a22222c2270726976696c6567655f6b6579223a223232"
            "626436333333663834306565656565303361643134663735666439366163222c2274696d657374616d70223a313730303030"
            "303030302c2272756e5f6964223a22222c226d65746173223a7b7d2c22706f6f6c5f636f756e74223a317d")
        proto.dataReceived(capture_login)
        out = transport.value()
        reader = MessageReader()
        reader.feed(out)
        resp = reader.next_message()
        self.assertIsInstance(resp, LoginResp)
        head = encode_message(resp)
        self.assertTrue(out.startswith(head))
        rest = out[len(head):]
        self.assertEqual(len(rest), 16 + 11)  # IV then one encrypted 11-byte ReqWorkConn frame
        dec = CfbDecryptor(derive_key("abc"))
        self.assertEqual(dec.decrypt(rest), bytes.fromhex("7200000000000000027b7d"))


class BindPortTimeoutTests(unittest.TestCase):
    """The bind port's three timeouts, defaults and injected values, on a fake clock."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def accept(self, factory: Any) -> tuple[Any, StringTransport]:
        from twisted.internet.address import IPv4Address

        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 50000))
        proto = factory.buildProtocol(transport.getPeer())
        proto.makeConnection(transport)
        return proto, transport

    def assert_closes_after(self, transport: StringTransport, seconds: float) -> None:
        self.reactor.advance(seconds - 0.1)
        self.assertFalse(transport.disconnecting, f"closed before {seconds}s")
        self.reactor.advance(0.2)
        self.assertTrue(transport.disconnecting, f"still open after {seconds}s")

    def test_defaults_are_frps_values(self) -> None:
        from frptx.factories.server import BindPortTimeouts

        self.assertEqual(BindPortTimeouts(), BindPortTimeouts(sniff=10.0, first_message=10.0, first_stream=10.0))
        server = FrpServer(server_config(False), self.reactor)
        self.assertEqual(ServerConnectionProtocol(server).first_message_timeout, 10.0)

    def test_first_message_timeout_injected(self) -> None:
        server = FrpServer(server_config(False), self.reactor)
        proto = ServerConnectionProtocol(server, first_message_timeout=0.5)
        transport = StringTransport()
        proto.makeConnection(transport)
        self.assert_closes_after(transport, 0.5)

    def yamux_session(self, first_stream_timeout: float | None) -> tuple[Any, StringTransport]:
        from frptx.factories.server import ServerConnectionFactory, YamuxServerFactory

        server = FrpServer(server_config(True), self.reactor)
        kw = {} if first_stream_timeout is None else {"first_stream_timeout": first_stream_timeout}
        return self.accept(YamuxServerFactory(server, ServerConnectionFactory(server), **kw))

    def test_yamux_session_without_stream_closed_after_default(self) -> None:
        _, transport = self.yamux_session(None)
        self.assert_closes_after(transport, 10.0)

    def test_yamux_session_without_stream_closed_after_injected(self) -> None:
        _, transport = self.yamux_session(1.5)
        self.assert_closes_after(transport, 1.5)

    def test_yamux_session_with_a_stream_stays(self) -> None:
        from frptx.mux.yamux import SYN, WINDOW_UPDATE, encode_header

        session, transport = self.yamux_session(1.5)
        session.dataReceived(encode_header(WINDOW_UPDATE, SYN, 1, 0))  # frpc opens its control stream
        self.reactor.advance(1.6)
        self.assertFalse(transport.disconnecting)
        # the stream itself still has its first-message timeout (10 s by default)
        self.reactor.advance(10)
        self.assertFalse(transport.disconnecting, "a stream's timeout must not close the session")

    def test_bind_port_factory_passes_every_timeout_on(self) -> None:
        """``FrpsService(timeouts=...)`` reaches every layer of the bind-port stack."""
        from frptx.factories.server import BindPortTimeouts, bind_port_factory

        timeouts = BindPortTimeouts(sniff=1.0, first_message=2.0, first_stream=3.0)
        for tcp_mux, first_byte_then, closes_after in ((False, b"", 1.0), (False, b"o", 2.0), (True, b"\x00", 3.0)):
            server = FrpServer(server_config(tcp_mux), self.reactor)
            proto, transport = self.accept(bind_port_factory(server, self.reactor, timeouts))
            if first_byte_then:
                proto.dataReceived(first_byte_then)  # an incomplete message / yamux header
            self.assert_closes_after(transport, closes_after)

    def test_service_hands_its_timeouts_to_the_bind_port(self) -> None:
        from frptx.factories.server import BindPortTimeouts
        from frptx.server.service import FrpsService

        timeouts = BindPortTimeouts(sniff=0.25)
        service = FrpsService(server_config(False), self.reactor, timeouts=timeouts)
        service.startService()
        self.addCleanup(service.stopService)
        [(_, factory, _, _)] = self.reactor.tcpServers
        self.assertEqual(factory.sniff_timeout, 0.25)
        self.assertEqual(FrpsService(server_config(False), self.reactor).timeouts, BindPortTimeouts())
