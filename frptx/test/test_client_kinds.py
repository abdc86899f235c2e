"""frpc's seams (issue 11): protocols behind small interfaces, the proxy-kind registry,
per-kind proxy config types and visitors as child services, on MemoryReactorClock."""
from __future__ import annotations

import dataclasses
from typing import Any

from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from frptx.client import kinds
from frptx.client.client import FrpClient
from frptx.client.service import FrpcService
from frptx.client.udp import SudpVisitor
from frptx.client.visitors import StcpVisitor
from frptx.config import (
    HttpProxyConfig,
    ProxyConfig,
    StcpProxyConfig,
    SudpProxyConfig,
    TcpProxyConfig,
    UdpProxyConfig,
    parse_client_config,
)
from frptx.protocols.client import ClientControlProtocol, ClientWorkProtocol
from frptx.protocols.tracking import ConnectionSet
from frptx.test.support import client_config, tcp_proxy
from frptx.test.test_protocols_client import FakeServer
from frptx.wire import Login, LoginResp, MessageWriter, NewProxy, NewWorkConn, Ping, StartWorkConn


class RecordingSession:
    def __init__(self, control: ClientControlProtocol) -> None:
        self.control = control
        self.events: list[Any] = []

    def connection_made(self) -> None:
        self.events.append("made")
        self.control.send(Ping())

    def message_received(self, msg: Any) -> None:
        self.events.append(msg)

    def connection_lost(self, reason: Failure | None) -> None:
        self.events.append("lost")


class RecordingHandler:
    """A ControlHandler and WorkDispatcher that is not frpc: the protocols need nothing more."""

    def __init__(self) -> None:
        self.connections = ConnectionSet(MemoryReactorClock())
        self.sessions: list[RecordingSession] = []
        self.started: list[tuple[ClientWorkProtocol, StartWorkConn]] = []

    def open_session(self, control: ClientControlProtocol) -> RecordingSession:
        session = RecordingSession(control)
        self.sessions.append(session)
        return session

    def new_work_conn(self) -> NewWorkConn:
        return NewWorkConn(run_id="r1")

    def work_started(self, work: ClientWorkProtocol, msg: StartWorkConn) -> None:
        self.started.append((work, msg))


class ProtocolInterfaceTests(unittest.TestCase):
    def test_control_protocol_only_feeds_its_session(self) -> None:
        handler = RecordingHandler()
        server = FakeServer(ClientControlProtocol(handler))
        [session] = handler.sessions
        self.assertEqual(server.received(), [Ping()])
        self.assertEqual(len(handler.connections), 1)
        server.send(LoginResp(run_id="x"))
        server.protocol.connectionLost(Failure(Exception("gone")))
        self.assertEqual(session.events, ["made", LoginResp(run_id="x"), "lost"])
        self.assertEqual(len(handler.connections), 0)

    def test_work_protocol_announces_and_hands_over(self) -> None:
        handler = RecordingHandler()
        work = FakeServer(ClientWorkProtocol(handler))
        self.assertEqual(work.received(), [NewWorkConn(run_id="r1")])
        work.send(StartWorkConn(proxy_name="p"))
        [(protocol, msg)] = handler.started
        self.assertIs(protocol, work.protocol)
        self.assertEqual(msg, StartWorkConn(proxy_name="p"))

    def test_refused_work_connection_is_not_handed_over(self) -> None:
        handler = RecordingHandler()
        work = FakeServer(ClientWorkProtocol(handler))
        work.send(StartWorkConn(proxy_name="p", error="no such proxy"))
        self.assertEqual(handler.started, [])
        self.assertTrue(work.transport.disconnecting)


class ProxyConfigTypeTests(unittest.TestCase):
    def test_loader_builds_each_kinds_type(self) -> None:
        cfg = parse_client_config({"proxies": [
            tcp_proxy("t", 22, 6000),
            {"name": "u", "type": "udp", "localPort": 53, "remotePort": 6053},
            {"name": "s", "type": "stcp", "localPort": 22, "secretKey": "k", "allowUsers": ["bob"]},
            {"name": "d", "type": "sudp", "localPort": 53, "secretKey": "k"},
        ]})
        self.assertEqual([type(p) for p in cfg.proxies],
                         [TcpProxyConfig, UdpProxyConfig, StcpProxyConfig, SudpProxyConfig])
        tcp, udp, stcp, sudp = cfg.proxies
        self.assertEqual((tcp.remote_port, udp.remote_port), (6000, 6053))  # type: ignore[attr-defined]
        self.assertEqual((stcp.secret_key, stcp.allow_users), ("k", ("bob",)))  # type: ignore[attr-defined]
        self.assertFalse(hasattr(tcp, "secret_key"))
        self.assertFalse(hasattr(stcp, "remote_port"))

    def test_base_constructor_builds_the_kinds_type(self) -> None:
        proxy = ProxyConfig(name="dns", type="udp", local_port=53)
        self.assertIs(type(proxy), UdpProxyConfig)
        self.assertEqual(proxy, UdpProxyConfig(name="dns", local_port=53))
        self.assertEqual(dataclasses.replace(proxy, local_port=54).local_port, 54)
        self.assertIs(type(ProxyConfig(name="x", type="not-a-kind")), ProxyConfig)
        self.assertEqual(HttpProxyConfig(name="w").type, "http")
        with self.assertRaises(dataclasses.FrozenInstanceError):
            proxy.local_port = 1  # type: ignore[misc]


class KindNewProxyTests(unittest.TestCase):
    def test_each_kind_sends_its_own_fields(self) -> None:
        cfg = client_config(7000, False, False, [], user="alice")
        tcp = TcpProxyConfig(name="t", local_port=22, remote_port=6000)
        stcp = StcpProxyConfig(name="s", local_port=22, secret_key="k", allow_users=("bob",))
        self.assertEqual(kinds.new_proxy_message(cfg, tcp),
                         NewProxy(proxy_name="alice.t", proxy_type="tcp", remote_port=6000))
        self.assertEqual(kinds.new_proxy_message(cfg, stcp),
                         NewProxy(proxy_name="alice.s", proxy_type="stcp", sk="k", allow_users=("bob",)))
        self.assertEqual(kinds.new_proxy_message(cfg, SudpProxyConfig(name="d", secret_key="z")).sk, "z")
        self.assertEqual(kinds.new_proxy_message(cfg, UdpProxyConfig(name="u", remote_port=7)).remote_port, 7)
        self.assertEqual(set(kinds.registered()) >= {"tcp", "udp", "stcp", "sudp"}, True)

    def test_kinds_imported_on_first_look_up(self) -> None:
        """stcp, sudp and udp are registered when first asked for (a frpc without them does not
        keep their modules), under their own names."""
        for name in ("tcp", "http", "https", "tcpmux", "stcp", "sudp", "udp"):
            kind = kinds.kind_for(name)
            self.assertIsNotNone(kind, name)
            self.assertEqual(kind.name, name)  # type: ignore[union-attr]
        self.assertIsNone(kinds.kind_for("nope"))

    def test_load_balancer_sent_as_frpc_does(self) -> None:
        """``loadBalancer.group``/``groupKey`` go in every NewProxy (frps decides what they mean)."""
        cfg = client_config(7000, False, False, [tcp_proxy("t", 22, 6000, loadBalancer={"group": "g", "groupKey": "k"})])
        msg = kinds.new_proxy_message(cfg, cfg.proxies[0])
        self.assertEqual(msg, NewProxy(proxy_name="t", proxy_type="tcp", remote_port=6000, group="g", group_key="k"))
        self.assertEqual((msg.to_json()["group"], msg.to_json()["group_key"]), ("g", "k"))


class KindRegistryTests(unittest.TestCase):
    """A kind registered from outside (as a client plugin will) gets its proxies' work connections."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1700000000)
        self.started: list[tuple[Any, ProxyConfig, ClientWorkProtocol, Any]] = []
        kinds.register(kinds.ClientKind("demo", lambda p: {"custom_domains": ("demo.example",)},
                                        lambda *args: self.started.append(args)))
        self.addCleanup(kinds.unregister, "demo")
        base = client_config(7000, False, False, [tcp_proxy("ssh", 22)])
        demo = ProxyConfig(name="d", type="demo", local_port=1,
                           transport=dataclasses.replace(base.proxies[0].transport, use_encryption=True))
        odd = ProxyConfig(name="odd", type="unregistered", local_port=1)
        self.client = FrpClient(dataclasses.replace(base, proxies=(*base.proxies, demo, odd)), self.reactor)
        self.client.run_id = "r"

    def test_new_proxy_carries_the_kinds_fields(self) -> None:
        server = FakeServer(ClientControlProtocol(self.client))
        [login] = server.received()
        self.assertIsInstance(login, Login)
        server.accept_login()
        msgs = {m.proxy_name: m for m in server.received()}
        self.assertEqual(msgs["d"], NewProxy(proxy_name="d", proxy_type="demo", use_encryption=True,
                                             custom_domains=("demo.example",)))
        self.assertEqual(msgs["ssh"].custom_domains, ())

    def test_work_connection_goes_to_the_kinds_handler(self) -> None:
        work = FakeServer(ClientWorkProtocol(self.client))
        work.received()
        work.protocol.dataReceived(MessageWriter().encode(StartWorkConn(proxy_name="d")) + b"early bytes")
        [(client, proxy, protocol, codec)] = self.started
        self.assertIs(client, self.client)
        self.assertEqual((proxy.name, proxy.type), ("d", "demo"))
        self.assertIs(protocol, work.protocol)
        self.assertIsNotNone(codec)  # useEncryption
        self.assertEqual(protocol.take_early(), (b"early bytes", False))  # raw from here on
        self.assertFalse(work.transport.disconnecting)
        self.assertEqual(self.reactor.tcpClients, [])  # no local dial: the kind decides

    def test_proxy_of_an_unregistered_kind_closes_the_work_connection(self) -> None:
        work = FakeServer(ClientWorkProtocol(self.client))
        work.send(StartWorkConn(proxy_name="odd"))
        self.assertTrue(work.transport.disconnecting)
        self.assertEqual(self.started, [])


def visitors(*ports: int) -> list[dict[str, Any]]:
    return [{"name": f"v{port}", "type": "sudp" if port % 2 else "stcp", "serverName": "s", "secretKey": "k",
             "bindAddr": "127.0.0.1", "bindPort": port} for port in ports]


class UdpReactor(MemoryReactorClock):
    def listenUDP(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192) -> Any:
        if port == 9003:
            raise CannotListenError(interface, port, OSError("in use"))
        transport = StringTransport()
        transport.getHost = lambda: type("Host", (), {"port": port})()  # type: ignore[method-assign]
        transport.stopListening = lambda: None  # type: ignore[attr-defined]
        return transport


class VisitorServiceTests(unittest.TestCase):
    """Visitors are child services of FrpcService, added after the first login."""

    def setUp(self) -> None:
        self.reactor = UdpReactor()
        self.reactor.advance(1700000000)
        cfg = client_config(7000, False, False, [], visitors=visitors(9000, 9001, 9003))
        self.service = FrpcService(cfg, self.reactor)
        self.service.startService()
        self.reactor.connectors[-1].state = "connected"  # what FrpClient.stop looks at
        self.addCleanup(lambda: self.service.running and self.service.stopService())

    def test_children(self) -> None:
        self.assertEqual(list(self.service), [self.service.proxy_manager])
        server = FakeServer(self.service.client.factory.buildProtocol(None))
        server.received()
        server.send(LoginResp(version="0.61.0", run_id="abcdef0123456789"))
        children = list(self.service)
        self.assertEqual([type(c) for c in children], [type(self.service.proxy_manager), StcpVisitor, SudpVisitor])
        self.assertTrue(all(c.running for c in children))
        self.assertEqual(sorted(self.service.visitors), ["v9000", "v9001"])  # v9003 could not listen
        self.service.stopService()
        self.assertEqual(list(self.service), [self.service.proxy_manager])
        self.assertFalse(any(c.running for c in children))
        self.assertEqual(self.service.visitors, {})
