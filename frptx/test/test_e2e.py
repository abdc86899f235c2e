"""End to end: frps and frpc services in this process, real sockets on 127.0.0.1.

Every tunnel test runs in each transport mode (tcpMux on/off x TLS on/off): the
classes are generated from one mixin by ``mode_cases``.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest

from frptx.test.support import (
    MODES,
    Collector,
    Echo,
    EchoFactory,
    Tunnel,
    connect,
    deferLater,
    digest,
    listen_local,
    mode_cases,
    roundtrip,
    tcp_proxy,
    with_timeout,
)


def async_test(f: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Deferred[Any]]:
    @functools.wraps(f)
    def run(self: Any) -> Deferred[Any]:
        return Deferred.fromCoroutine(f(self))

    return run


class Sink(Protocol):
    """Counts what arrives; the test pauses and resumes its transport."""

    def connectionMade(self) -> None:
        self.factory.sinks.append(self)
        self.received = 0

    def dataReceived(self, data: bytes) -> None:
        self.received += len(data)


class TcpTunnelMixin:
    """The TCP tunnel behaviours of issue 2, for one transport mode."""

    mode: dict[str, bool]
    timeout = 45

    def tunnel(self) -> Tunnel:
        t = Tunnel(self, self.mode)
        t.start_server()
        return t

    async def echo_tunnel(self) -> tuple[Tunnel, int, EchoFactory]:
        echo = EchoFactory()
        local = listen_local(self, echo)
        t = self.tunnel()
        t.start_client([tcp_proxy("echo", local)])
        self.current = t
        return t, await t.remote_port("echo"), echo

    @async_test
    async def test_8mib_byte_identical(self) -> None:
        _, port, _ = await self.echo_tunnel()
        payload = os.urandom(8 * 1024 * 1024)
        c = Collector(payload, half_close=True)
        await connect(port, c)
        received = await with_timeout(c.done, 30)
        self.assertEqual(len(received), len(payload))
        self.assertEqual(digest(received), digest(payload))

    @async_test
    async def test_slow_reader_holds_back_the_sender(self) -> None:
        """A service that stops reading stops the user's sender, with bounded buffering between.

        (nomux: in the kernel, through the splice relay; the other modes through Twisted's
        producers, TLS and yamux windows.)"""
        sinks: list[Sink] = []
        factory = Factory.forProtocol(Sink)
        factory.sinks = sinks  # type: ignore[attr-defined]
        local = listen_local(self, factory)
        t = self.tunnel()
        t.start_client([tcp_proxy("p", local)])
        port = await t.remote_port("p")
        from frptx.test.test_process import Pusher

        pusher = Pusher(256 * 1024 * 1024)
        await connect(port, Collector(b""))  # warm the pool
        await deferLater(0.2)
        await connect(port, pusher)
        await deferLater(0.5)
        sink = sinks[-1]
        sink.transport.pauseProducing()
        # the kernel buffers (autotuned) fill up, then the pusher must stop: wait for a stable count
        previous, stable = -1, 0
        for _ in range(40):
            await deferLater(0.25)
            stable = stable + 1 if pusher.sent == previous else 0
            previous = pusher.sent
            if stable >= 4:
                break
        self.assertGreaterEqual(stable, 4, "the pusher kept sending to a reader that does not read")
        self.assertTrue(pusher.paused)
        self.assertLess(pusher.sent - sink.received, 64 * 1024 * 1024)
        sink.transport.resumeProducing()
        for _ in range(600):
            if sink.received >= pusher.total:
                break
            await deferLater(0.1)
        self.assertEqual(sink.received, pusher.total)

    @async_test
    async def test_100_concurrent_connections(self) -> None:
        _, port, echo = await self.echo_tunnel()
        collectors = [Collector(f"conn {i} ".encode() * 100, half_close=True) for i in range(100)]
        await gatherResults([connect(port, c) for c in collectors])
        results = await with_timeout(gatherResults([c.done for c in collectors]), 30)
        for c, got in zip(collectors, results, strict=True):
            self.assertEqual(got, c.payload)
        self.assertEqual(echo.connections, 100)

    @async_test
    async def test_half_close_still_receives_reply(self) -> None:
        """The user shuts its write side; the service's reply still comes back."""

        class ReplyAfterEOF(Protocol):
            def __init__(self) -> None:
                self.buf = b""

            def dataReceived(self, data: bytes) -> None:
                self.buf += data

            def readConnectionLost(self) -> None:
                self.transport.write(b"got " + str(len(self.buf)).encode())
                self.transport.loseConnection()

            def writeConnectionLost(self) -> None:
                pass

        from twisted.internet.interfaces import IHalfCloseableProtocol
        from zope.interface import classImplements

        classImplements(ReplyAfterEOF, IHalfCloseableProtocol)
        local = listen_local(self, Factory.forProtocol(ReplyAfterEOF))
        t = self.tunnel()
        t.start_client([tcp_proxy("eof", local)])
        port = await t.remote_port("eof")
        c = Collector(b"x" * 5000, half_close=True)
        await connect(port, c)
        self.assertEqual(await with_timeout(c.done, 10), b"got 5000")

    @async_test
    async def test_local_service_down_closes_user_promptly(self) -> None:
        dead = listen_local(self, Factory.forProtocol(Echo))
        # find a port with nothing listening: open and close a listener
        port_obj = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
        closed_port = port_obj.getHost().port
        await port_obj.stopListening()
        t = self.tunnel()
        t.start_client([tcp_proxy("down", closed_port), tcp_proxy("up", dead)])
        down = await t.remote_port("down")
        up = await t.remote_port("up")
        c = Collector(b"hello")
        await connect(down, c)
        self.assertEqual(await with_timeout(c.done, 5), b"")
        # the other proxy of the same client is unaffected
        self.assertEqual(await roundtrip(up, b"still works", 5), b"still works")

    @async_test
    async def test_remote_port_in_use(self) -> None:
        busy = reactor.listenTCP(0, Factory.forProtocol(Echo), interface="127.0.0.1")
        self.addCleanup(busy.stopListening)
        local = listen_local(self, EchoFactory())
        t = self.tunnel()
        frpc = t.start_client([tcp_proxy("clash", local, busy.getHost().port), tcp_proxy("fine", local)])
        status = await frpc.proxy_manager.wait_settled("clash")
        self.assertEqual(status.phase, "start error")
        self.assertEqual(status.error, "port unavailable")
        port = await t.remote_port("fine")
        self.assertEqual(await roundtrip(port, b"ping", 5), b"ping")

    @async_test
    async def test_wrong_token_refused(self) -> None:
        t = self.tunnel()
        t.start_client([], token="not-the-token")
        for _ in range(50):
            if t.fatal:
                break
            await deferLater(0.1)
        self.assertEqual(len(t.fatal), 1)
        self.assertIn("token in login doesn't match token from configuration", t.fatal[0])
        self.assertEqual(t.frps.server.controls, {})

    @async_test
    async def test_allow_ports_refusal(self) -> None:
        local = listen_local(self, EchoFactory())
        t = Tunnel(self, self.mode)
        t.start_server(allowPorts=[{"start": 1, "end": 1023}])
        frpc = t.start_client([tcp_proxy("high", local, 40000), tcp_proxy("auto", local)])
        status = await frpc.proxy_manager.wait_settled("high")
        self.assertEqual((status.phase, status.error), ("start error", "port not allowed"))

    @async_test
    async def test_reload_add_remove_change_keeps_untouched_connection(self) -> None:
        import yaml

        echo_a, echo_b = EchoFactory(), EchoFactory()
        a, b = listen_local(self, echo_a), listen_local(self, echo_b)
        t = self.tunnel()
        path = self.mktemp() + ".yaml"

        def write(proxies: list[dict[str, Any]]) -> None:
            with open(path, "w") as f:
                yaml.safe_dump({
                    "serverAddr": "127.0.0.1", "serverPort": t.frps.bound_port,
                    "auth": {"token": "test-token"},
                    "transport": {"tcpMux": self.mode["tcp_mux"], "tls": {"enable": self.mode["tls"]}},
                    "proxies": proxies}, f)

        keep, gone, change = tcp_proxy("keep", a), tcp_proxy("gone", a), tcp_proxy("change", a)
        write([keep, gone, change])
        frpc = t.start_client([keep, gone, change], config_path=path)
        keep_port = await t.remote_port("keep")
        gone_port = await t.remote_port("gone")
        await t.remote_port("change")
        # an open connection through the untouched proxy
        held = Collector(b"")
        await connect(keep_port, held)
        held.transport.write(b"before ")
        await deferLater(0.2)

        change2 = tcp_proxy("change", b)
        added = tcp_proxy("added", b)
        write([keep, change2, added])
        self.assertTrue(frpc.proxy_manager.reload())
        added_port = await t.remote_port("added")
        await deferLater(0.3)
        change_port = await t.remote_port("change")

        # removed proxy: its port no longer accepts tunnelled connections
        self.assertNotIn("gone", t.frps.server.proxies)
        c = Collector(b"x")
        try:
            await connect(gone_port, c)
            self.assertEqual(await with_timeout(c.done, 5), b"")
        except Exception:
            pass  # connection refused is just as good
        # changed proxy now reaches service b
        before_b = echo_b.connections
        self.assertEqual(await roundtrip(change_port, b"changed", 5), b"changed")
        self.assertEqual(echo_b.connections, before_b + 1)
        self.assertEqual(await roundtrip(added_port, b"added", 5), b"added")
        # the held connection never noticed
        held.transport.write(b"after")
        held.transport.loseWriteConnection()
        self.assertEqual(await with_timeout(held.done, 5), b"before after")

    @async_test
    async def test_invalid_reload_keeps_running_proxies(self) -> None:
        local = listen_local(self, EchoFactory())
        t = self.tunnel()
        path = self.mktemp() + ".yaml"
        with open(path, "w") as f:
            f.write("serverAddr: 127.0.0.1\nproxies:\n  - name: x\n    type: tcp\n    localPort: 70000\n")
        frpc = t.start_client([tcp_proxy("echo", local)], config_path=path)
        port = await t.remote_port("echo")
        self.assertFalse(frpc.proxy_manager.reload())
        self.assertEqual(await roundtrip(port, b"alive", 5), b"alive")

    @async_test
    async def test_frps_restart_client_logs_in_again(self) -> None:
        import dataclasses

        from frptx.server.service import FrpsService

        remote = free_port()
        local = listen_local(self, EchoFactory())
        t = self.tunnel()
        t.start_client([tcp_proxy("echo", local, remote)])
        self.assertEqual(await t.remote_port("echo"), remote)
        bind_port = t.frps.bound_port
        first_run_id = t.frpc.client.run_id
        await t.frps.stopService()
        await deferLater(0.5)
        cfg = dataclasses.replace(t.frps.config, bind_port=bind_port)
        t.frps = FrpsService(cfg, reactor)
        t.frps.startService()
        await with_timeout(t.frpc.client.when_logged_in(), 30)
        self.assertEqual(t.frpc.client.run_id, first_run_id)
        self.assertEqual(await t.remote_port("echo"), remote)
        self.assertEqual(await roundtrip(remote, b"back again", 5), b"back again")


    @async_test
    async def test_stop_closes_everything_without_aborting(self) -> None:
        """stopService closes every connection cleanly (none waits out the abort timer)."""
        t, port, _ = await self.echo_tunnel()
        held = Collector(b"")
        await connect(port, held)
        held.transport.write(b"open")
        await deferLater(0.2)
        await t.frpc.stopService()
        await t.frps.stopService()
        self.assertEqual((len(t.frpc.client.connections), len(t.frps.server.connections)), (0, 0))
        self.assertEqual((t.frpc.client.connections.aborted, t.frps.server.connections.aborted), (0, 0))
        self.assertEqual(await with_timeout(held.done, 5), b"open")

    @async_test
    async def test_bad_peers_cost_only_their_own_connection(self) -> None:
        """Garbage, oversized frames and vanishing users must not disturb other tunnels."""
        t, port, _ = await self.echo_tunnel()
        held = Collector(b"")
        await connect(port, held)
        held.transport.write(b"held ")
        bind = t.frps.bound_port
        for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"o" + (10241).to_bytes(8, "big") + b"{" * 64,
                     b"\x00" * 64, b"\x17" + os.urandom(200), b"\x16\x03\x01" + os.urandom(300)):
            bad = Collector(junk)
            await connect(bind, bad)
            await with_timeout(bad.done, 15)
        # a user that vanishes mid-stream (RST after 1 MiB)
        vanishing = Collector(os.urandom(1024 * 1024))
        await connect(port, vanishing)
        await deferLater(0.1)
        vanishing.transport.abortConnection()
        await deferLater(0.3)
        self.assertEqual(await roundtrip(port, b"fresh"), b"fresh")
        held.transport.write(b"still")
        held.transport.loseWriteConnection()
        self.assertEqual(await with_timeout(held.done, 10), b"held still")
        self.assertEqual(len(t.frps.server.controls), 1)


def free_port() -> int:
    """A port nothing listens on right now (closed again before use)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



mode_cases(TcpTunnelMixin, globals(), unittest.TestCase)


class MisconfigurationTests(unittest.TestCase):
    """Settings that must match on both sides fail fast with a message naming them."""

    timeout = 45

    async def fatal_login(self, server_mode: dict[str, bool], client_mode: dict[str, bool],
                          server_extra: dict[str, Any] | None = None, **client_extra: Any) -> str:
        t = Tunnel(self, server_mode)
        t.start_server(**(server_extra or {}))
        t.mode = client_mode
        t.start_client([], **client_extra)
        for _ in range(150):
            if t.fatal:
                break
            await deferLater(0.1)
        self.assertEqual(len(t.fatal), 1, "frpc did not give up on the first login")
        self.assertEqual(t.frps.server.controls, {})
        return t.fatal[0]

    @async_test
    async def test_client_mux_server_without_mux(self) -> None:
        why = await self.fatal_login(MODES["nomux"], MODES["mux"])
        self.assertIn("transport.tcpMux", why)

    @async_test
    async def test_client_without_mux_server_mux(self) -> None:
        why = await self.fatal_login(MODES["mux"], MODES["nomux"])
        self.assertIn("transport.tcpMux", why)

    @async_test
    async def test_plain_client_on_tls_only_server(self) -> None:
        why = await self.fatal_login(MODES["nomux"], MODES["nomux"], {"transport": {"tcpMux": False,
                                                                                    "tls": {"force": True}}})
        self.assertIn("transport.tls", why)

    def pki(self) -> dict[str, str]:
        from frptx.test.test_tls import _PKIMixin

        helper = _PKIMixin()
        helper.mktemp = self.mktemp  # type: ignore[method-assign]
        return helper.pki_files()

    @async_test
    async def test_wrong_ca_and_name_mismatch(self) -> None:
        files = self.pki()
        server_tls = {"transport": {"tcpMux": True, "tls": {"certFile": files["server"],
                                                             "keyFile": files["server_key"]}}}
        why = await self.fatal_login(MODES["mux_tls"], MODES["mux_tls"], server_tls,
                                     transport={"tls": {"enable": True, "trustedCaFile": files["other_ca"],
                                                        "serverName": "frps.test"}})
        self.assertIn("not trusted by trustedCaFile", why)
        why = await self.fatal_login(MODES["mux_tls"], MODES["mux_tls"], server_tls,
                                     transport={"tls": {"enable": True, "trustedCaFile": files["ca"],
                                                        "serverName": "other.test"}})
        self.assertIn("name mismatch", why)

    @async_test
    async def test_verified_tls_with_client_certificate(self) -> None:
        """mTLS end to end: frps requires a client certificate, frpc verifies frps."""
        files = self.pki()
        local = listen_local(self, EchoFactory())
        t = Tunnel(self, MODES["mux_tls"])
        t.start_server(transport={"tcpMux": True, "tls": {"certFile": files["server"], "keyFile": files["server_key"],
                                                          "trustedCaFile": files["ca"]}})
        t.start_client([tcp_proxy("echo", local)],
                       transport={"tls": {"enable": True, "trustedCaFile": files["ca"], "serverName": "frps.test",
                                          "certFile": files["client"], "keyFile": files["client_key"]}})
        port = await t.remote_port("echo")
        self.assertEqual(await roundtrip(port, b"verified both ways"), b"verified both ways")
