# -*- test-case-name: frptx.test.test_e2e_vhost_http -*-
"""http proxies end to end on 127.0.0.1: our frps's vhostHTTPPort with our frpc,
and each against the stock Go frp 0.65.0 (the other side)."""
from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from frptx.config import ConfigError, parse_client_config, parse_server_config
from frptx.protocols.httpforward import Forward, HTTPForwardProtocol
from frptx.server.service import FrpsService
from frptx.test.gofrp import GoFrp, free_port
from frptx.test.support import (
    TOKEN,
    Collector,
    Tunnel,
    connect,
    listen_local,
    mode_cases,
    start_vhost_frps,
    with_timeout,
)
from frptx.vhost.http1 import Data, EndOfMessage, ResponseHead, ResponseParser, get_header
from frptx.vhost.rewrite import NOT_FOUND_PAGE

WAIT = 20.0


# -- backends ---------------------------------------------------------------------

class HeadEcho(Protocol):
    """Answers each request with its own head (and a digest of its body) as the body."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.buf = b""
        self.body_left = -1
        self.head = b""
        self.hasher = hashlib.sha256()
        self.body_size = 0

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.body_left < 0:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                self.head, self.buf = self.buf[:end + 4], self.buf[end + 4:]
                length = 0
                for line in self.head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                self.body_left = length
                self.hasher = hashlib.sha256()
                self.body_size = 0
            take = self.buf[:self.body_left]
            self.buf = self.buf[len(take):]
            self.hasher.update(take)
            self.body_size += len(take)
            self.body_left -= len(take)
            if self.body_left:
                return
            self.body_left = -1
            self.answer()

    def answer(self) -> None:
        body = self.head
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Backend: %s\r\nX-Body-Sha256: %s\r\nX-Body-Size: %d\r\n"
            b"Connection: keep-alive\r\n\r\n"
            % (len(body), self.name.encode(), self.hasher.hexdigest().encode(), self.body_size) + body)


class BigDownload(HeadEcho):
    """Answers with ``size`` deterministic bytes (chunked, in 64 KiB writes, honouring backpressure)."""

    size = 0

    def answer(self) -> None:
        path = self.head.split(b" ")[1]
        self.size = int(path.rsplit(b"/", 1)[1])
        self.transport.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Body-Sha256: %s\r\n"
                             b"X-Body-Size: %d\r\n\r\n" % (self.hasher.hexdigest().encode(), self.body_size))
        self.sent = 0
        self.transport.registerProducer(self, False)

    def resumeProducing(self) -> None:
        if self.sent >= self.size:
            self.transport.unregisterProducer()
            self.transport.write(b"0\r\n\r\n")
            return
        n = min(65536, self.size - self.sent)
        self.transport.write(b"%x\r\n" % n + pattern(self.sent, n) + b"\r\n")
        self.sent += n

    def stopProducing(self) -> None:
        pass


@implementer(IHalfCloseableProtocol)
class UpgradeEcho(HeadEcho):
    """Switches to an echo protocol on ``Upgrade: echo``."""

    upgraded = False

    def dataReceived(self, data: bytes) -> None:
        if self.upgraded:
            self.transport.write(data)
        else:
            super().dataReceived(data)

    def answer(self) -> None:
        self.upgraded = True
        rest, self.buf = self.buf, b""
        self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        if rest:
            self.transport.write(rest)

    def readConnectionLost(self) -> None:
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass


class HangUp(HeadEcho):
    """Closes every connection at once."""

    def connectionMade(self) -> None:
        self.transport.loseConnection()


class Silent(HeadEcho):
    """Reads the request and never answers (a hung backend)."""

    def answer(self) -> None:
        pass


def pattern(offset: int, n: int) -> bytes:
    block = bytes(range(256)) * 256
    start = offset % len(block)
    out = (block[start:] + block * (n // len(block) + 2))[:n]
    return out


class Backends(Factory):
    def __init__(self, cls: type[HeadEcho], name: str) -> None:
        self.cls = cls
        self.name = name

    def buildProtocol(self, addr: Any) -> Protocol:
        return self.cls(self.name)


# -- an HTTP user -------------------------------------------------------------------

@dataclasses.dataclass
class Response:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        return get_header(self.headers, name)


def parse_responses(data: bytes, methods: list[str]) -> list[Response]:
    parser = ResponseParser(methods[0])
    events = parser.feed(data) + parser.feed_eof()
    out: list[Response] = []
    head: ResponseHead | None = None
    body = bytearray()
    i = 0
    while True:
        for event in events:
            if isinstance(event, ResponseHead):
                head = event
            elif isinstance(event, Data):
                body += event.data
            elif isinstance(event, EndOfMessage):
                assert head is not None
                out.append(Response(head.status, head.headers, bytes(body)))
                head, body = None, bytearray()
        i += 1
        if i >= len(methods) or not parser.finished:
            return out
        events = parser.start_next(methods[i])


async def exchange(port: int, raw: bytes, methods: list[str] | None = None) -> list[Response]:
    """Send ``raw`` (one or more requests, the last one closing) and parse what comes back."""
    c = Collector(raw)
    await connect(port, c)
    data = await with_timeout(c.done, WAIT)
    return parse_responses(data, methods or ["GET"])


def get(host: str, path: str = "/", extra: str = "", close: bool = True) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}" + ("Connection: close\r\n" if close else "")
            + "\r\n").encode()


def http_proxy(name: str, port: int, **fields: Any) -> dict[str, Any]:
    doc = {"name": name, "type": "http", "localIP": "127.0.0.1", "localPort": port}
    doc.update(fields)
    return doc


def start_frps(testcase: TestCase, tunnel: Tunnel, **extra: Any) -> FrpsService:
    """Our frps with a vhostHTTPPort on a free port (chosen by the kernel: the listener gets 0)."""
    return start_vhost_frps(testcase, tunnel, "vhostHTTPPort", "vhost_http", **extra)


class OurFrpsOurFrpcMixin:
    mode: dict[str, bool]
    timeout = 60

    async def _setup(self, proxies: list[dict[str, Any]], **server: Any) -> int:
        self.tunnel = Tunnel(self, self.mode)
        frps = start_frps(self, self.tunnel, **server)
        frpc = self.tunnel.start_client(proxies)
        for p in proxies:
            status = await frpc.proxy_manager.wait_settled(p["name"])
            self.assertEqual(status.phase, "running", status.error)
        assert frps.vhost_http is not None
        return frps.vhost_http.bound_port

    def test_domains_locations_and_404(self) -> Deferred[None]:
        async def run() -> None:
            a = listen_local(self, Backends(HeadEcho, "a"))
            b = listen_local(self, Backends(HeadEcho, "b"))
            c = listen_local(self, Backends(HeadEcho, "c"))
            port = await self._setup([
                http_proxy("a", a, customDomains=["a.example.com"]),
                http_proxy("b", b, customDomains=["*.wild.test", "b.example.com"]),
                http_proxy("c", c, customDomains=["b.example.com"], locations=["/api", "/static/"]),
            ])
            cases = [("a.example.com", "/", "a"), ("A.Example.com:80", "/x", "a"), ("x.wild.test", "/", "b"),
                     ("b.example.com", "/", "b"), ("b.example.com", "/api/v1", "c"),
                     ("b.example.com", "/static/x", "c"), ("b.example.com", "/statics", "b")]
            for host, path, backend in cases:
                [r] = await exchange(port, get(host, path))
                self.assertEqual((r.status, r.header("X-Backend")), (200, backend), (host, path))
            [r] = await exchange(port, get("nobody.example.com"))
            self.assertEqual(r.status, 404)
            self.assertEqual(r.body, NOT_FOUND_PAGE)
        return Deferred.fromCoroutine(run())

    def test_keep_alive_routes_each_request(self) -> Deferred[None]:
        async def run() -> None:
            a = listen_local(self, Backends(HeadEcho, "a"))
            b = listen_local(self, Backends(HeadEcho, "b"))
            port = await self._setup([http_proxy("a", a, customDomains=["a.test"]),
                                      http_proxy("b", b, customDomains=["b.test"])])
            raw = get("a.test", close=False) + get("b.test", close=False) + get("zz.test", close=False) \
                + get("a.test")
            rs = await exchange(port, raw, ["GET"] * 4)
            self.assertEqual([(r.status, r.header("X-Backend")) for r in rs],
                             [(200, "a"), (200, "b"), (404, None), (200, "a")])
        return Deferred.fromCoroutine(run())

    def test_rewrites_auth_and_headers(self) -> Deferred[None]:
        async def run() -> None:
            a = listen_local(self, Backends(HeadEcho, "a"))
            port = await self._setup([http_proxy(
                "a", a, customDomains=["a.test"], httpUser="u", httpPassword="p", hostHeaderRewrite="inner.local",
                requestHeaders={"set": {"x-from-frp": "yes"}}, responseHeaders={"set": {"X-Resp": "set"}})])
            [r] = await exchange(port, get("a.test"))
            self.assertEqual(r.status, 401)
            self.assertEqual(r.header("Www-Authenticate"), 'Basic realm="Restricted"')
            [r] = await exchange(port, get("a.test", extra="Authorization: Basic dTpw\r\n"))
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("X-Resp"), "set")
            head = r.body.decode()
            self.assertIn("Host: inner.local\r\n", head)
            self.assertIn("X-From-Frp: yes\r\n", head)
            self.assertIn("X-Forwarded-For: 127.0.0.1\r\n", head)
            self.assertIn("X-Forwarded-Host: a.test\r\n", head)
        return Deferred.fromCoroutine(run())

    def test_route_conflict(self) -> Deferred[None]:
        async def run() -> None:
            a = listen_local(self, Backends(HeadEcho, "a"))
            await self._setup([http_proxy("a", a, customDomains=["a.test"])])
            frpc2 = self.tunnel.start_client([http_proxy("dup", a, customDomains=["a.test"])])
            status = await frpc2.proxy_manager.wait_settled("dup")
            self.assertEqual(status.phase, "start error")
            self.assertIn("router config conflict", status.error)
        return Deferred.fromCoroutine(run())

    def test_refused_without_vhost_http_port(self) -> Deferred[None]:
        async def run() -> None:
            tunnel = Tunnel(self, self.mode)
            tunnel.start_server()
            frpc = tunnel.start_client([http_proxy("a", 1, customDomains=["a.test"])])
            status = await frpc.proxy_manager.wait_settled("a")
            self.assertEqual(status.phase, "start error")
            self.assertEqual(status.error, "type [http] not supported when vhost http port is not set")
        return Deferred.fromCoroutine(run())

    def test_stop_closes_idle_browser_connections(self) -> Deferred[None]:
        async def run() -> None:
            a = listen_local(self, Backends(HeadEcho, "a"))
            port = await self._setup([http_proxy("a", a, customDomains=["a.test"])])
            c = Collector(get("a.test", close=False))
            await connect(port, c)
            data = await with_timeout(c.received_at_least(1), WAIT)
            while not parse_responses(data, ["GET"]):
                data = await with_timeout(c.received_at_least(len(data) + 1), WAIT)
            assert self.tunnel.frps is not None
            await self.tunnel.frps.stopService()
            await with_timeout(c.done, WAIT)  # the keep-alive connection was closed by frps
        return Deferred.fromCoroutine(run())

    def test_upgrade_echo(self) -> Deferred[None]:
        async def run() -> None:
            a = listen_local(self, Backends(UpgradeEcho, "a"))
            port = await self._setup([http_proxy("a", a, customDomains=["ws.test"])])
            c = Collector(b"GET /ws HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
            await connect(port, c)
            head = await with_timeout(c.received_at_least(len(b"HTTP/1.1 101")), WAIT)
            self.assertTrue(head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), head)
            await with_timeout(c.received_at_least(c.received.find(b"\r\n\r\n") + 4 if b"\r\n\r\n" in c.received
                                                   else len(c.received) + 1), WAIT)
            start = bytes(c.received).find(b"\r\n\r\n") + 4
            payload = os.urandom(100_000)
            c.transport.write(payload)
            data = await with_timeout(c.received_at_least(start + len(payload)), WAIT)
            self.assertEqual(data[start:], payload)
            c.transport.loseConnection()
            await with_timeout(c.done, WAIT)
        return Deferred.fromCoroutine(run())

    def test_large_streaming_upload_and_download(self) -> Deferred[None]:
        async def run() -> None:
            a = listen_local(self, Backends(BigDownload, "a"))
            port = await self._setup([http_proxy("a", a, customDomains=["big.test"])])
            up = 16 << 20
            down = 24 << 20
            body = pattern(7, up)
            raw = (f"POST /dl/{down} HTTP/1.1\r\nHost: big.test\r\nContent-Length: {up}\r\n"
                   f"Connection: close\r\n\r\n").encode() + body
            [r] = await exchange(port, raw, ["POST"])
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("X-Body-Size"), str(up))
            self.assertEqual(r.header("X-Body-Sha256"), hashlib.sha256(body).hexdigest())
            self.assertEqual(len(r.body), down)
            self.assertEqual(hashlib.sha256(r.body).hexdigest(), hashlib.sha256(pattern(0, down)).hexdigest())
        return Deferred.fromCoroutine(run())

    def test_backend_down_is_404_and_custom_page(self) -> Deferred[None]:
        async def run() -> None:
            page = self.mktemp()
            with open(page, "wb") as f:
                f.write(b"<html>gone</html>")
            # a backend that hangs up at once (frpc then closes the work connection): frp's 404 page,
            # as for one that cannot be reached (a closing listener rather than a "free" port: no race)
            dead = listen_local(self, Backends(HangUp, "dead"))
            port = await self._setup([http_proxy("a", dead, customDomains=["a.test"])], custom404Page=page)
            [r] = await exchange(port, get("a.test"))
            self.assertEqual((r.status, r.body), (404, b"<html>gone</html>"))
            [r] = await exchange(port, get("other.test"))
            self.assertEqual((r.status, r.body), (404, b"<html>gone</html>"))
        return Deferred.fromCoroutine(run())

    def test_timeout_is_504(self) -> Deferred[None]:
        async def run() -> None:
            a = listen_local(self, Backends(Silent, "a"))
            port = await self._setup([http_proxy("a", a, customDomains=["a.test"])], vhostHTTPTimeout=1)
            [r] = await exchange(port, get("a.test"))
            self.assertEqual(r.status, 504)
        return Deferred.fromCoroutine(run())

    def test_malformed_request_costs_only_its_connection(self) -> Deferred[None]:
        async def run() -> None:
            a = listen_local(self, Backends(HeadEcho, "a"))
            port = await self._setup([http_proxy("a", a, customDomains=["a.test"])])
            c = Collector(b"GARBAGE\r\n\r\n")
            await connect(port, c)
            data = await with_timeout(c.done, WAIT)
            self.assertTrue(data.startswith(b"HTTP/1.1 400"), data)
            [r] = await exchange(port, get("a.test"))
            self.assertEqual(r.header("X-Backend"), "a")
        return Deferred.fromCoroutine(run())


class Config(TestCase):
    def test_http_enabled(self) -> None:
        cfg = parse_server_config({"vhostHTTPPort": 8080, "subDomainHost": "frp.test"})
        self.assertEqual(cfg.vhost_http_port, 8080)
        client = parse_client_config({"proxies": [http_proxy("a", 80, subdomain="x")]})
        self.assertEqual(client.proxies[0].type, "http")

    def test_xtcp_still_refused(self) -> None:
        with self.assertRaises(ConfigError):
            parse_client_config({"proxies": [{"name": "s", "type": "xtcp", "localPort": 1, "secretKey": "k"}]})


@dataclasses.dataclass
class _AtPort:
    """What ``Tunnel.start_client`` reads of a frps: where it listens (a Go frps here)."""

    bound_port: int


class Live(TestCase):
    """Against stock Go frp 0.65.0."""

    timeout = 90

    def test_go_frpc_against_our_frps(self) -> Deferred[None]:
        async def run() -> None:
            go = GoFrp(self)
            a = listen_local(self, Backends(HeadEcho, "a"))
            b = listen_local(self, Backends(HeadEcho, "b"))
            tunnel = Tunnel(self, {"tcp_mux": True, "tls": False})
            frps = start_frps(self, tunnel, subDomainHost="frp.test")
            assert frps.vhost_http is not None
            vport = frps.vhost_http.bound_port
            config = go.frpc_config(frps.bound_port, TOKEN, True, False, [
                http_proxy("a", a, customDomains=["a.test"], requestHeaders={"set": {"X-Go": "1"}}),
                http_proxy("b", b, subdomain="bee", locations=["/b"], httpUser="u", httpPassword="p"),
            ])
            frpc = go.frpc(config)
            await frpc.ready()
            [r] = await exchange(vport, get("a.test"))
            self.assertEqual((r.status, r.header("X-Backend")), (200, "a"))
            self.assertIn(b"X-Go: 1\r\n", r.body)
            [r] = await exchange(vport, get("bee.frp.test", "/b/x", "Authorization: Basic dTpw\r\n"))
            self.assertEqual((r.status, r.header("X-Backend")), (200, "b"))
            [r] = await exchange(vport, get("bee.frp.test", "/b/x"))
            self.assertEqual(r.status, 401)
            [r] = await exchange(vport, get("bee.frp.test", "/"))
            self.assertEqual(r.status, 404)
        return Deferred.fromCoroutine(run())

    def test_our_frpc_against_go_frps(self) -> Deferred[None]:
        async def run() -> None:
            go = GoFrp(self)
            vport = free_port()
            gofrps = await go.frps(TOKEN, vhostHTTPPort=vport, subDomainHost="frp.test")
            a = listen_local(self, Backends(HeadEcho, "a"))
            b = listen_local(self, Backends(UpgradeEcho, "b"))
            tunnel = Tunnel(self, {"tcp_mux": True, "tls": False})
            tunnel.frps = _AtPort(gofrps.port)  # type: ignore[assignment]
            frpc = tunnel.start_client([
                http_proxy("a", a, subdomain="a", locations=["/"], hostHeaderRewrite="in.local",
                           responseHeaders={"set": {"X-R": "1"}}),
                http_proxy("b", b, customDomains=["ws.test"], transport={"useEncryption": True,
                                                                          "useCompression": True}),
            ])
            for name in ("a", "b"):
                status = await frpc.proxy_manager.wait_settled(name)
                self.assertEqual(status.phase, "running", status.error)
            [r] = await exchange(vport, get("a.frp.test", "/p"))
            self.assertEqual((r.status, r.header("X-Backend"), r.header("X-R")), (200, "a", "1"))
            self.assertIn(b"Host: in.local\r\n", r.body)
            c = Collector(b"GET / HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
            await connect(vport, c)
            data = await with_timeout(c.received_at_least(1), WAIT)
            while b"\r\n\r\n" not in data:
                data = await with_timeout(c.received_at_least(len(data) + 1), WAIT)
            c.transport.write(b"hello")
            while b"hello" not in data:
                data = await with_timeout(c.received_at_least(len(data) + 1), WAIT)
            self.assertTrue(data.startswith(b"HTTP/1.1 101"), data)
            c.transport.loseConnection()
            await with_timeout(c.done, WAIT)
        return Deferred.fromCoroutine(run())


class _Endpoint:
    """Connects the forwarder's backend protocol to a StringTransport at once."""

    def __init__(self) -> None:
        self.transport = StringTransport()

    def connect(self, factory: Any) -> Deferred[Any]:
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(self.transport)
        return defer.succeed(protocol)


class _FreshEndpoint(_Endpoint):
    """A new StringTransport for each connection."""

    def connect(self, factory: Any) -> Deferred[Any]:
        self.transport = StringTransport()
        return super().connect(factory)


class _Route:
    def __init__(self, endpoint: _Endpoint) -> None:
        self.endpoint = endpoint

    def route(self, head: Any, conn: Any) -> Forward:
        return Forward(self.endpoint, head)  # type: ignore[arg-type]

    def error_reply(self, head: Any, reason: Any, date: str) -> bytes:
        return b"error"


class ResponseTimeout(TestCase):
    """``vhostHTTPTimeout`` (the forwarder's ``response_timeout``) on a clock."""

    def test_counts_from_the_end_of_the_request(self) -> None:
        """A slow upload is no timeout; the wait for the response head starts once the request is sent."""
        clock = Clock()
        endpoint = _Endpoint()
        forwarder = HTTPForwardProtocol(clock, _Route(endpoint), None, response_timeout=10)
        user = StringTransport()
        forwarder.makeConnection(user)
        forwarder.dataReceived(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab")
        clock.advance(30)
        self.assertEqual(user.value(), b"")
        forwarder.dataReceived(b"cd")
        self.assertTrue(endpoint.transport.value().endswith(b"\r\n\r\nabcd"))
        clock.advance(9)
        self.assertEqual(user.value(), b"")
        clock.advance(1)
        self.assertTrue(user.value().startswith(b"HTTP/1.1 504 Gateway Timeout\r\n"), user.value())

    def test_response_head_in_time(self) -> None:
        clock = Clock()
        endpoint = _Endpoint()
        forwarder = HTTPForwardProtocol(clock, _Route(endpoint), None, response_timeout=10)
        user = StringTransport()
        forwarder.makeConnection(user)
        forwarder.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        clock.advance(9)
        backend = forwarder._backend
        assert backend is not None
        backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        clock.advance(60)
        self.assertTrue(user.value().startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertTrue(user.value().endswith(b"\r\n\r\nok"))


    def test_one_timer_for_the_requests_of_a_connection(self) -> None:
        """Keep-alive requests reuse one timer; each request still gets its full wait, counted from its end."""
        clock = Clock()
        endpoint = _FreshEndpoint()
        forwarder = HTTPForwardProtocol(clock, _Route(endpoint), None, response_timeout=10)
        user = StringTransport()
        forwarder.makeConnection(user)
        for _ in range(3):
            forwarder.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            clock.advance(4)
            backend = forwarder._backend
            assert backend is not None
            backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            self.assertEqual(len(clock.getDelayedCalls()), 1)
        # the timer set for the first request (due at 10) finds the third one (sent at 8) answered
        forwarder.dataReceived(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")  # sent at 12
        clock.advance(9.9)
        self.assertEqual(user.value().count(b"HTTP/1.1 200 OK"), 3)
        self.assertNotIn(b"504", user.value())
        clock.advance(0.1)
        self.assertIn(b"HTTP/1.1 504 Gateway Timeout\r\n", user.value())
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_timer_stops_with_the_connection(self) -> None:
        clock = Clock()
        endpoint = _Endpoint()
        forwarder = HTTPForwardProtocol(clock, _Route(endpoint), None, response_timeout=10)
        forwarder.makeConnection(StringTransport())
        forwarder.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        forwarder.connectionLost(None)
        self.assertEqual(clock.getDelayedCalls(), [])


mode_cases(OurFrpsOurFrpcMixin, globals(), TestCase)
