# -*- test-case-name: frptx.test.test_e2e_vhost_https -*-
"""https proxies end to end on 127.0.0.1: TLS routed by SNI on frps's vhostHTTPSPort and
relayed untouched; our frps with our frpc, and each against stock Go frp 0.65.0."""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from OpenSSL import SSL
from twisted.internet import reactor, ssl
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from frptx.config import parse_server_config
from frptx.server.service import FrpsService
from frptx.server.vhost_https import HttpsVhost, SniProtocol
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
from frptx.transport.certs import generate_self_signed
from frptx.vhost.sni import UNRECOGNIZED_NAME_ALERT

WAIT = 20.0


class NamedEcho(Protocol):
    """Echoes with its name in front of the first answer."""

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.first = True

    def dataReceived(self, data: bytes) -> None:
        if self.first:
            self.first = False
            data = self.name + b":" + data
        self.transport.write(data)


class TLSBackends(Factory):
    def __init__(self, name: str) -> None:
        self.name = name.encode()

    def buildProtocol(self, addr: Any) -> Protocol:
        return NamedEcho(self.name)


def tls_backend(testcase: TestCase, name: str) -> int:
    """A TLS echo server (self-signed) on 127.0.0.1."""
    from twisted.protocols.tls import TLSMemoryBIOFactory

    cert_pem, key_pem = generate_self_signed(name)
    options = ssl.PrivateCertificate.loadPEM(cert_pem + key_pem).options()
    return listen_local(testcase, TLSMemoryBIOFactory(options, False, TLSBackends(name)))


@implementer(IOpenSSLClientConnectionCreator)
class SniClient:
    """A TLS client sending ``name`` as SNI and verifying nothing (the backends are self-signed)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.context = SSL.Context(SSL.TLS_METHOD)

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        conn = SSL.Connection(self.context, None)
        conn.set_tlsext_host_name(self.name.encode())
        conn.set_connect_state()
        conn.set_app_data(tlsProtocol)
        return conn


async def tls_exchange(port: int, name: str, payload: bytes) -> bytes:
    """Connect with SNI ``name``, send ``payload`` and return the answer (``name:payload``-sized)."""
    c = Collector(payload)
    endpoint = wrapClientTLS(SniClient(name), TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5))
    await connectProtocol(endpoint, c)
    try:
        return await with_timeout(c.received_at_least(len(payload) + 2), WAIT)
    finally:
        c.transport.loseConnection()
        await with_timeout(c.done, WAIT)


def client_hello(name: str | None) -> bytes:
    """The ClientHello bytes an OpenSSL client sends for ``name``."""
    conn = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
    if name is not None:
        conn.set_tlsext_host_name(name.encode())
    conn.set_connect_state()
    try:
        conn.do_handshake()
    except SSL.WantReadError:
        pass
    return conn.bio_read(65536)


def https_proxy(name: str, port: int, **fields: Any) -> dict[str, Any]:
    doc = {"name": name, "type": "https", "localIP": "127.0.0.1", "localPort": port}
    doc.update(fields)
    return doc


def start_frps(testcase: TestCase, tunnel: Tunnel, **extra: Any) -> FrpsService:
    """Our frps with a vhostHTTPSPort on a free port (chosen by the kernel: the listener gets 0)."""
    return start_vhost_frps(testcase, tunnel, "vhostHTTPSPort", "vhost_https", **extra)


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
        assert frps.vhost_https is not None
        return frps.vhost_https.bound_port

    def test_routes_by_sni(self) -> Deferred[None]:
        async def run() -> None:
            a, b = tls_backend(self, "a"), tls_backend(self, "b")
            port = await self._setup([https_proxy("a", a, customDomains=["a.test"]),
                                      https_proxy("b", b, subdomain="bee",
                                                  transport={"useEncryption": True, "useCompression": True})],
                                     subDomainHost="frp.test")
            self.assertEqual(await tls_exchange(port, "a.test", b"ping"), b"a:ping")
            self.assertEqual(await tls_exchange(port, "BEE.frp.test", b"ping"), b"b:ping")
            big = os.urandom(1 << 20)
            answer = await tls_exchange(port, "a.test", big)
            self.assertEqual(answer, b"a:" + big)
        return Deferred.fromCoroutine(run())

    def test_unknown_or_missing_name_gets_the_alert_garbage_is_closed(self) -> Deferred[None]:
        async def run() -> None:
            a = tls_backend(self, "a")
            port = await self._setup([https_proxy("a", a, customDomains=["a.test"])])
            for name in ("nobody.test", None):
                c = Collector(client_hello(name))
                await connect(port, c)
                self.assertEqual(await with_timeout(c.done, WAIT), UNRECOGNIZED_NAME_ALERT)
            c = Collector(b"GET / HTTP/1.1\r\n\r\n")  # not TLS: closed without an alert
            await connect(port, c)
            self.assertEqual(await with_timeout(c.done, WAIT), b"")
            self.assertEqual(await tls_exchange(port, "a.test", b"still"), b"a:still")
        return Deferred.fromCoroutine(run())

    def test_refused_without_port_and_conflict(self) -> Deferred[None]:
        async def run() -> None:
            a = tls_backend(self, "a")
            await self._setup([https_proxy("a", a, customDomains=["a.test"])])
            frpc2 = self.tunnel.start_client([https_proxy("dup", a, customDomains=["a.test"])])
            status = await frpc2.proxy_manager.wait_settled("dup")
            self.assertEqual((status.phase, status.error), ("start error", "router config conflict"))
            other = Tunnel(self, self.mode)
            other.start_server()
            frpc3 = other.start_client([https_proxy("a", a, customDomains=["a.test"])])
            status = await frpc3.proxy_manager.wait_settled("a")
            self.assertEqual(status.error, "type [https] not supported when vhost https port is not set")
        return Deferred.fromCoroutine(run())


class HelloTimeout(TestCase):
    def test_silent_client_closed(self) -> None:
        """A client that never completes its hello is closed after HELLO_TIMEOUT (clock-driven)."""
        clock = Clock()
        vhost = HttpsVhost(parse_server_config({"vhostHTTPSPort": 443}), clock)
        protocol = SniProtocol(vhost)
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(client_hello("a.test")[:10])
        clock.advance(vhost.hello_timeout - 1)
        self.assertFalse(transport.disconnecting)
        clock.advance(1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")


@dataclasses.dataclass
class _AtPort:
    bound_port: int


class Live(TestCase):
    """Against stock Go frp 0.65.0."""

    timeout = 90

    def test_go_frpc_against_our_frps(self) -> Deferred[None]:
        async def run() -> None:
            go = GoFrp(self)
            a = tls_backend(self, "a")
            tunnel = Tunnel(self, {"tcp_mux": True, "tls": False})
            frps = start_frps(self, tunnel)
            assert frps.vhost_https is not None
            config = go.frpc_config(frps.bound_port, TOKEN, True, False,
                                    [https_proxy("a", a, customDomains=["*.wild.test"])])
            frpc = go.frpc(config)
            await frpc.ready()
            port = frps.vhost_https.bound_port
            self.assertEqual(await tls_exchange(port, "x.wild.test", b"go"), b"a:go")
        return Deferred.fromCoroutine(run())

    def test_our_frpc_against_go_frps(self) -> Deferred[None]:
        async def run() -> None:
            go = GoFrp(self)
            vport = free_port()
            gofrps = await go.frps(TOKEN, vhostHTTPSPort=vport)
            a = tls_backend(self, "a")
            tunnel = Tunnel(self, {"tcp_mux": True, "tls": False})
            tunnel.frps = _AtPort(gofrps.port)  # type: ignore[assignment]
            frpc = tunnel.start_client([https_proxy("a", a, customDomains=["a.test"],
                                                    transport={"useEncryption": True})])
            status = await frpc.proxy_manager.wait_settled("a")
            self.assertEqual(status.phase, "running", status.error)
            self.assertEqual(await tls_exchange(vport, "a.test", b"ours"), b"a:ours")
        return Deferred.fromCoroutine(run())


mode_cases(OurFrpsOurFrpcMixin, globals(), TestCase)
