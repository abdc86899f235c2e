# -*- test-case-name: frptx.test.test_vhost_reuse -*-
"""frps's http vhost keeps work connections alive across requests, as Go frps's
``http.Transport`` does (``IdleBackends``, ``HTTPForwardProtocol`` with a
``ReusableEndpoint``): on a clock and StringTransports, end to end in every
transport mode, and against stock Go frp 0.65.0."""
from __future__ import annotations

import dataclasses
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.trial.unittest import TestCase

from frptx.factories.server import BindPortTimeouts
from frptx.protocols.httpforward import (
    IDLE_TIMEOUT,
    MAX_IDLE_PER_DESTINATION,
    SURPLUS_GRACE,
    Forward,
    HTTPForwardProtocol,
    IdleBackends,
    _Backend,
)
from frptx.server.service import FrpsService
from frptx.test.gofrp import GoFrp, free_port
from frptx.test.support import (
    TOKEN,
    Collector,
    Tunnel,
    async_test,
    connect,
    listen_local,
    mode_cases,
    server_config,
    until,
    with_timeout,
)
from frptx.test.test_e2e_vhost_http import (
    WAIT,
    Backends,
    HeadEcho,
    Silent,
    _AtPort,
    exchange,
    get,
    http_proxy,
    start_frps,
)
from frptx.vhost.http1 import RequestHead

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


# -- on a clock ------------------------------------------------------------------------

class _PoolEndpoint:
    """A ReusableEndpoint connecting each new backend to a StringTransport at once."""

    def __init__(self, clock: Clock, max_idle: int = 2, timeout: float = 10) -> None:
        self.idle = IdleBackends(clock, max_idle, timeout)
        self.protocols: list[Any] = []

    @property
    def transports(self) -> list[StringTransport]:
        return [p.transport for p in self.protocols]

    def connect(self, factory: Any) -> Deferred[Any]:
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(StringTransport())
        self.protocols.append(protocol)
        return defer.succeed(protocol)

    def take_idle(self) -> Protocol | None:
        return self.idle.take()

    def keep_idle(self, backend: Protocol) -> bool:
        return self.idle.put(backend)


class _Route:
    """Routes every request to ``endpoint`` with the user's own X-Client (a per-request rewrite)."""

    def __init__(self, endpoint: _PoolEndpoint) -> None:
        self.endpoint = endpoint

    def route(self, head: RequestHead, conn: Any) -> Forward:
        out = RequestHead(head.method, head.target, "HTTP/1.1", head.headers + (("X-Client", conn.name),))
        return Forward(self.endpoint, out)  # type: ignore[arg-type]

    def error_reply(self, head: Any, reason: Any, date: str) -> bytes:
        return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


def _user(clock: Clock, endpoint: _PoolEndpoint, name: str = "u") -> tuple[HTTPForwardProtocol, StringTransport]:
    forwarder = HTTPForwardProtocol(clock, _Route(endpoint))
    forwarder.name = name  # type: ignore[attr-defined]
    user = StringTransport()
    forwarder.makeConnection(user)
    return forwarder, user


def _lost(protocol: Any) -> None:
    """The peer closed the connection (a StringTransport never says so itself)."""
    protocol.transport.disconnecting = True
    protocol.connectionLost(Failure(ConnectionDone()))


class ReuseOnAClock(unittest.TestCase):
    def test_sequential_requests_share_one_backend_connection(self) -> None:
        """Keep-alive requests, on one user connection and then on another, go over one connection."""
        clock = Clock()
        endpoint = _PoolEndpoint(clock)
        first, user1 = _user(clock, endpoint, "one")
        for i in range(3):
            first.dataReceived(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i)
            endpoint.protocols[0].dataReceived(OK)
        second, user2 = _user(clock, endpoint, "two")
        second.dataReceived(b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
        endpoint.protocols[0].dataReceived(OK)
        self.assertEqual(len(endpoint.protocols), 1)
        sent = endpoint.transports[0].value()
        self.assertEqual(sent.count(b"GET /"), 4)
        # each request carries its own user's rewrite
        self.assertEqual(sent.count(b"X-Client: one\r\n"), 3)
        self.assertIn(b"GET /3 HTTP/1.1\r\nHost: a\r\nX-Client: two\r\n", sent)
        self.assertEqual(user1.value().count(b"HTTP/1.1 200 OK"), 3)
        self.assertEqual(user2.value().count(b"HTTP/1.1 200 OK"), 1)
        self.assertFalse(endpoint.transports[0].disconnecting)
        self.assertEqual(len(endpoint.idle), 1)

    def test_not_reused(self) -> None:
        """Connection: close (either way), an answer ended by the close, an upgrade: a new connection each."""
        cases = [
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\nok"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n", OK),
            # the backend says more than its answer
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", OK + b"HTTP/1.1 200 OK\r\n"),
        ]
        for request, answer in cases:
            clock = Clock()
            endpoint = _PoolEndpoint(clock)
            forwarder, user = _user(clock, endpoint)
            forwarder.dataReceived(request)
            backend = endpoint.protocols[0]
            backend.dataReceived(answer)
            if answer.endswith(b"\r\n\r\nok") and b"Content-Length" not in answer:
                _lost(backend)  # close-delimited: the close ends it
            self.assertIn(b"ok", user.value(), (request, answer))
            self.assertEqual(len(endpoint.idle), 0, (request, answer))
            self.assertTrue(endpoint.transports[0].disconnecting, (request, answer))

    def test_idle_timeout(self) -> None:
        clock = Clock()
        endpoint = _PoolEndpoint(clock, timeout=10)
        forwarder, user = _user(clock, endpoint)
        forwarder.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        endpoint.protocols[0].dataReceived(OK)
        clock.advance(9.9)
        self.assertEqual(len(endpoint.idle), 1)
        self.assertFalse(endpoint.transports[0].disconnecting)
        clock.advance(0.1)
        self.assertEqual(len(endpoint.idle), 0)
        self.assertTrue(endpoint.transports[0].disconnecting)
        self.assertEqual(clock.getDelayedCalls(), [])
        # the next request dials anew
        forwarder.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(len(endpoint.protocols), 2)

    def test_reuse_restarts_the_idle_timer(self) -> None:
        clock = Clock()
        endpoint = _PoolEndpoint(clock, timeout=10)
        forwarder, user = _user(clock, endpoint)
        for _ in range(3):
            forwarder.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            endpoint.protocols[0].dataReceived(OK)
            clock.advance(8)
        self.assertEqual((len(endpoint.protocols), len(endpoint.idle)), (1, 1))
        self.assertEqual(len(clock.getDelayedCalls()), 1)

    def test_pool_bound(self) -> None:
        """At most ``max_idle`` kept for long: one more finished exchange's connection is closed after the grace."""
        clock = Clock()
        endpoint = _PoolEndpoint(clock, max_idle=2)
        users = [_user(clock, endpoint, str(i)) for i in range(3)]
        for forwarder, _ in users:
            forwarder.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(len(endpoint.protocols), 3)
        for backend in endpoint.protocols:
            backend.dataReceived(OK)
        self.assertEqual(len(endpoint.idle), 3)
        clock.advance(SURPLUS_GRACE - 0.01)
        self.assertEqual([t.disconnecting for t in endpoint.transports], [False, False, False])
        clock.advance(0.01)
        # the oldest kept one goes; the two most recently used stay
        self.assertEqual(len(endpoint.idle), 2)
        self.assertEqual([t.disconnecting for t in endpoint.transports], [True, False, False])
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(10)
        self.assertEqual(len(endpoint.idle), 0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_burst_then_next_requests_reuse_the_surplus(self) -> None:
        """Answers that end together, then the same users' next requests: no new connection.

        Go closes a connection it cannot keep idle at once; on one reactor thread
        the answers of a burst all end before the next requests arrive, so that
        would dial a new work connection for a third of the requests.
        """
        clock = Clock()
        endpoint = _PoolEndpoint(clock, max_idle=2)
        users = [_user(clock, endpoint, str(i)) for i in range(4)]
        for _ in range(5):
            for forwarder, _user_t in users:
                forwarder.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            for forwarder, _user_t in users:
                forwarder._backend.dataReceived(OK)  # type: ignore[union-attr]
            clock.advance(0.001)
        self.assertEqual(len(endpoint.protocols), 4)
        self.assertEqual([t.disconnecting for t in endpoint.transports], [False] * 4)
        for _forwarder, user in users:
            self.assertEqual(user.value().count(b"HTTP/1.1 200 OK"), 5)
        clock.advance(SURPLUS_GRACE)
        self.assertEqual(len(endpoint.idle), 2)
        self.assertEqual(sum(t.disconnecting for t in endpoint.transports), 2)

    def test_surplus_grace_counts_from_when_kept(self) -> None:
        """A surplus connection used again is idle anew: the grace restarts with it."""
        clock = Clock()
        pool = IdleBackends(clock, max_idle=1, timeout=10, grace=1)
        conns = []
        for _ in range(2):
            backend = _Backend(pool)
            backend.makeConnection(StringTransport())
            conns.append(backend)
        self.assertTrue(pool.put(conns[0]))
        clock.advance(0.9)
        self.assertTrue(pool.put(conns[1]))
        clock.advance(0.2)  # conns[0]: 1.1 s idle and surplus
        self.assertEqual(len(pool), 1)
        self.assertTrue(conns[0].transport.disconnecting)
        self.assertIs(pool.take(), conns[1])
        self.assertTrue(pool.put(conns[1]))
        clock.advance(9.9)
        self.assertEqual(len(pool), 1)
        clock.advance(0.1)
        self.assertEqual(len(pool), 0)
        self.assertTrue(conns[1].transport.disconnecting)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_go_defaults(self) -> None:
        """Go frps's vhost Transport: MaxIdleConnsPerHost 5, IdleConnTimeout 60 s."""
        pool = IdleBackends(Clock())
        self.assertEqual((pool.max_idle, pool.timeout), (MAX_IDLE_PER_DESTINATION, IDLE_TIMEOUT))
        self.assertEqual((MAX_IDLE_PER_DESTINATION, IDLE_TIMEOUT), (5, 60.0))

    def test_peer_close_while_idle(self) -> None:
        clock = Clock()
        endpoint = _PoolEndpoint(clock)
        forwarder, user = _user(clock, endpoint)
        forwarder.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        endpoint.protocols[0].dataReceived(OK)
        _lost(endpoint.protocols[0])
        self.assertEqual(len(endpoint.idle), 0)
        self.assertEqual(clock.getDelayedCalls(), [])
        forwarder.dataReceived(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(len(endpoint.protocols), 2)
        endpoint.protocols[1].dataReceived(OK)
        self.assertEqual(user.value().count(b"HTTP/1.1 200 OK"), 2)

    def test_unasked_bytes_while_idle_close_it(self) -> None:
        clock = Clock()
        endpoint = _PoolEndpoint(clock)
        forwarder, user = _user(clock, endpoint)
        forwarder.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        endpoint.protocols[0].dataReceived(OK)
        endpoint.protocols[0].dataReceived(b"HTTP/1.1 200 OK\r\n")
        self.assertEqual(len(endpoint.idle), 0)
        self.assertTrue(endpoint.transports[0].disconnecting)
        self.assertEqual(user.value().count(b"HTTP/1.1"), 1)

    def test_stale_connection_retried_for_a_replayable_request(self) -> None:
        """A kept connection closed as a GET went out: the GET goes again on a fresh one, not lost."""
        clock = Clock()
        endpoint = _PoolEndpoint(clock)
        forwarder, user = _user(clock, endpoint)
        forwarder.dataReceived(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
        endpoint.protocols[0].dataReceived(OK)
        forwarder.dataReceived(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(len(endpoint.protocols), 1)
        _lost(endpoint.protocols[0])  # the backend's idle close crossed the request
        self.assertEqual(len(endpoint.protocols), 2)
        self.assertTrue(endpoint.transports[1].value().startswith(b"GET /2 HTTP/1.1\r\n"))
        endpoint.protocols[1].dataReceived(OK)
        self.assertEqual(user.value().count(b"HTTP/1.1 200 OK"), 2)
        self.assertFalse(user.disconnecting)

    def test_stale_connection_not_retried_after_an_answer_began_or_for_a_post(self) -> None:
        for request, partial in [(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi", b""),
                                 (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200 OK\r\n")]:
            clock = Clock()
            endpoint = _PoolEndpoint(clock)
            forwarder, user = _user(clock, endpoint)
            forwarder.dataReceived(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
            endpoint.protocols[0].dataReceived(OK)
            forwarder.dataReceived(request)
            if partial:
                endpoint.protocols[0].dataReceived(partial)
            _lost(endpoint.protocols[0])
            self.assertEqual(len(endpoint.protocols), 1, request)
            self.assertEqual(user.value().count(b"HTTP/1.1 200 OK"), 1, request)
            self.assertIn(b"HTTP/1.1 502 Bad Gateway", user.value(), request)

    def test_fresh_connection_not_retried(self) -> None:
        clock = Clock()
        endpoint = _PoolEndpoint(clock)
        forwarder, user = _user(clock, endpoint)
        forwarder.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        _lost(endpoint.protocols[0])
        self.assertEqual(len(endpoint.protocols), 1)
        self.assertIn(b"HTTP/1.1 502 Bad Gateway", user.value())

    def test_close_closes_idle_ones(self) -> None:
        clock = Clock()
        endpoint = _PoolEndpoint(clock)
        users = [_user(clock, endpoint, str(i)) for i in range(2)]
        for forwarder, _ in users:
            forwarder.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        for backend in endpoint.protocols:
            backend.dataReceived(OK)
        endpoint.idle.close()
        self.assertEqual([t.disconnecting for t in endpoint.transports], [True, True])
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertFalse(endpoint.idle.put(endpoint.protocols[0]))


# -- end to end -------------------------------------------------------------------------

class Counting(Backends):
    """Backends that count their TCP connections."""

    made = 0

    def buildProtocol(self, addr: Any) -> Protocol:
        self.made += 1
        return super().buildProtocol(addr)


class Closing(HeadEcho):
    """Answers ``Connection: close`` and closes."""

    def answer(self) -> None:
        body = self.head
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                             + body)
        self.transport.loseConnection()


def _keep(host: str, path: str = "/") -> bytes:
    return get(host, path, close=False)


class ReuseMixin:
    mode: dict[str, bool]
    timeout = 60

    async def _setup(self, proxies: list[dict[str, Any]]) -> tuple[int, Any]:
        tunnel = Tunnel(self, self.mode)
        cfg = dataclasses.replace(server_config(self.mode["tcp_mux"], vhostHTTPPort=8080), bind_port=0)
        frps = FrpsService(cfg, reactor, timeouts=BindPortTimeouts())
        assert frps.vhost_http is not None
        frps.vhost_http.listen_port = 0
        frps.startService()
        tunnel.frps = frps
        self.addCleanup(tunnel.stop_checked, frps, frps.server.connections)  # type: ignore[attr-defined]
        frpc = tunnel.start_client(proxies)
        for p in proxies:
            status = await frpc.proxy_manager.wait_settled(p["name"])
            self.assertEqual(status.phase, "running", status.error)  # type: ignore[attr-defined]
        assert frps.vhost_http is not None
        return frps.vhost_http.bound_port, frps

    @async_test
    async def test_keep_alive_requests_share_one_backend_connection(self) -> None:
        backends = Counting(HeadEcho, "a")
        a = listen_local(self, backends)
        port, frps = await self._setup([http_proxy("a", a, customDomains=["a.test", "b.test"])])
        rs = await exchange(port, _keep("a.test", "/1") + _keep("b.test", "/2") + get("a.test", "/3"), ["GET"] * 3)
        self.assertEqual([r.status for r in rs], [200] * 3)  # type: ignore[attr-defined]
        for host in ("b.test", "a.test"):  # new browser connections
            [r] = await exchange(port, get(host, "/4"))
            self.assertIn(b"X-Forwarded-Host: %s\r\n" % host.encode(), r.body)  # type: ignore[attr-defined]
        self.assertEqual(backends.made, 1)  # type: ignore[attr-defined]
        hosts = [r.body.split(b"X-Forwarded-Host: ")[1].split(b"\r\n")[0] for r in rs]
        self.assertEqual(hosts, [b"a.test", b"b.test", b"a.test"])  # type: ignore[attr-defined]

    @async_test
    async def test_connection_close_answer_not_reused(self) -> None:
        backends = Counting(Closing, "a")
        a = listen_local(self, backends)
        port, frps = await self._setup([http_proxy("a", a, customDomains=["a.test"])])
        for i in range(3):
            [r] = await exchange(port, get("a.test", f"/{i}"))
            self.assertEqual(r.status, 200)  # type: ignore[attr-defined]
        self.assertEqual(backends.made, 3)  # type: ignore[attr-defined]

    @async_test
    async def test_backend_closing_an_idle_connection(self) -> None:
        backends = Counting(HeadEcho, "a")
        service = []
        orig = backends.buildProtocol

        def build(addr: Any) -> Protocol:
            protocol = orig(addr)
            service.append(protocol)
            return protocol

        backends.buildProtocol = build  # type: ignore[method-assign]
        a = listen_local(self, backends)
        port, frps = await self._setup([http_proxy("a", a, customDomains=["a.test"])])
        [r] = await exchange(port, get("a.test"))
        pools = frps.server.http_vhost.idle
        self.assertEqual([len(p) for p in pools.values()], [1])  # type: ignore[attr-defined]
        service[0].transport.loseConnection()
        await until(lambda: sum(len(p) for p in pools.values()) == 0, "the idle connection gone")
        [r] = await exchange(port, get("a.test"))
        self.assertEqual(r.status, 200)  # type: ignore[attr-defined]
        self.assertEqual(backends.made, 2)  # type: ignore[attr-defined]

    @async_test
    async def test_proxy_closing_closes_its_idle_connections(self) -> None:
        """frps closes the proxy: its kept work connection goes, and so frpc's to the local service."""
        backends = Counting(HeadEcho, "a")
        gone: Deferred[None] = Deferred()
        orig = backends.buildProtocol

        def build(addr: Any) -> Protocol:
            protocol = orig(addr)
            lost = protocol.connectionLost

            def connection_lost(reason: Failure | None = None) -> None:
                lost(reason)  # type: ignore[arg-type]
                gone.callback(None)

            protocol.connectionLost = connection_lost  # type: ignore[method-assign]
            return protocol

        backends.buildProtocol = build  # type: ignore[method-assign]
        a = listen_local(self, backends)
        port, frps = await self._setup([http_proxy("a", a, customDomains=["a.test"])])
        [r] = await exchange(port, get("a.test"))
        self.assertEqual(r.status, 200)  # type: ignore[attr-defined]
        proxy = frps.server.proxies["a"]
        self.assertEqual(len(frps.server.http_vhost.idle[proxy]), 1)  # type: ignore[attr-defined]
        self.assertFalse(gone.called)  # type: ignore[attr-defined]
        proxy.close()
        await with_timeout(gone, WAIT)
        self.assertNotIn(proxy, frps.server.http_vhost.idle)  # type: ignore[attr-defined]

    @async_test
    async def test_slow_backend_stalls_no_other_proxy(self) -> None:
        """Proxy "slow"'s backend has a request and never answers; proxy "b" serves meanwhile."""
        asked: Deferred[None] = Deferred()

        class Hung(Silent):
            def answer(self) -> None:
                asked.callback(None)

        slow = listen_local(self, Backends(Hung, "slow"))
        b = listen_local(self, Backends(HeadEcho, "b"))
        port, frps = await self._setup([http_proxy("slow", slow, customDomains=["slow.test"]),
                                        http_proxy("b", b, customDomains=["b.test"])])
        hung = Collector(get("slow.test"))
        await connect(port, hung)
        await with_timeout(asked, WAIT)
        for i in range(3):
            [r] = await exchange(port, get("b.test", f"/{i}"))
            self.assertEqual((r.status, r.header("X-Backend")), (200, "b"))  # type: ignore[attr-defined]
        self.assertEqual(hung.received, b"")  # type: ignore[attr-defined]
        hung.transport.loseConnection()
        await hung.done


mode_cases(ReuseMixin, globals(), unittest.TestCase)


class Live(TestCase):
    """Against stock Go frp 0.65.0, a backend counting its connections."""

    timeout = 90

    def test_go_frpc_against_our_frps(self) -> Deferred[None]:
        async def run() -> None:
            go = GoFrp(self)
            backends = Counting(HeadEcho, "a")
            a = listen_local(self, backends)
            tunnel = Tunnel(self, {"tcp_mux": True, "tls": False})
            frps = start_frps(self, tunnel)
            assert frps.vhost_http is not None
            vport = frps.vhost_http.bound_port
            config = go.frpc_config(frps.bound_port, TOKEN, True, False,
                                    [http_proxy("a", a, customDomains=["a.test"])])
            frpc = go.frpc(config)
            await frpc.ready()
            rs = await exchange(vport, _keep("a.test", "/1") + _keep("a.test", "/2") + get("a.test", "/3"),
                                ["GET"] * 3)
            self.assertEqual([r.status for r in rs], [200] * 3)
            [r] = await exchange(vport, get("a.test", "/4"))
            self.assertEqual(r.status, 200)
            self.assertEqual(backends.made, 1)
        return Deferred.fromCoroutine(run())

    def test_our_frpc_against_go_frps(self) -> Deferred[None]:
        """Go frps reuses the work connection: our frpc keeps relaying it to the one backend connection."""
        async def run() -> None:
            go = GoFrp(self)
            vport = free_port()
            gofrps = await go.frps(TOKEN, vhostHTTPPort=vport)
            backends = Counting(HeadEcho, "a")
            a = listen_local(self, backends)
            tunnel = Tunnel(self, {"tcp_mux": True, "tls": False})
            tunnel.frps = _AtPort(gofrps.port)  # type: ignore[assignment]
            frpc = tunnel.start_client([http_proxy("a", a, customDomains=["a.test"])])
            status = await frpc.proxy_manager.wait_settled("a")
            self.assertEqual(status.phase, "running", status.error)
            for i in range(3):
                [r] = await exchange(vport, get("a.test", f"/{i}"))
                self.assertEqual(r.status, 200)
            self.assertEqual(backends.made, 1)
        return Deferred.fromCoroutine(run())

