"""End to end: frps and frpc services in this process, real sockets on 127.0.0.1.

Every tunnel test runs in each transport mode (tcpMux on/off x TLS on/off): the
classes are generated from one mixin by ``mode_cases``.
"""
from __future__ import annotations

import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest

from frptx.test.support import (
    MODES,
    QUICK_BACKOFF,
    Collector,
    Echo,
    EchoFactory,
    LogWatch,
    Tunnel,
    async_test,
    connect,
    digest,
    free_port,
    listen_local,
    mode_cases,
    roundtrip,
    tcp_proxy,
    until,
    with_timeout,
)


class Sink(Protocol):
    """Counts what arrives; the test pauses and resumes its transport."""

    def connectionMade(self) -> None:
        self.received = 0
        self.wanted: list[tuple[int, Deferred[None]]] = []
        self.factory.sinks.append(self)
        waiters, self.factory.waiters = self.factory.waiters, []
        for d in waiters:
            d.callback(self)

    def dataReceived(self, data: bytes) -> None:
        self.received += len(data)
        ready = [w for w in self.wanted if self.received >= w[0]]
        for w in ready:
            self.wanted.remove(w)
            w[1].callback(None)

    def received_at_least(self, count: int) -> Deferred[None]:
        if self.received >= count:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self.wanted.append((count, d))
        return d


class SinkFactory(Factory):
    protocol = Sink

    def __init__(self) -> None:
        self.sinks: list[Sink] = []
        self.waiters: list[Deferred[Sink]] = []

    def next_sink(self) -> Deferred[Sink]:
        """Fires with the next sink that connects."""
        d: Deferred[Sink] = Deferred()
        self.waiters.append(d)
        return d


class TcpTunnelMixin:
    """The TCP tunnel behaviours of issue 2, for one transport mode."""

    mode: dict[str, bool]
    timeout = 45

    def tunnel(self, **server: Any) -> Tunnel:
        t = Tunnel(self, self.mode)
        t.start_server(**server)
        return t

    async def echo_tunnel(self, **server: Any) -> tuple[Tunnel, int, EchoFactory]:
        echo = EchoFactory()
        local = listen_local(self, echo)
        t = self.tunnel(**server)
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
        factory = SinkFactory()
        local = listen_local(self, factory)
        t = self.tunnel()
        t.start_client([tcp_proxy("p", local)])
        port = await t.remote_port("p")
        from frptx.test.test_process import Pusher

        limit = 64 * 1024 * 1024
        pusher = Pusher(2 * limit)  # without backpressure it would get all of it ahead
        connected = factory.next_sink()
        await connect(port, pusher)
        sink = await with_timeout(connected, 10)
        sink.transport.pauseProducing()
        # Every write is checked: the pusher may never get further ahead of the paused reader.
        pusher.ahead_limit = (lambda: sink.received, limit)
        # The buffers on the way (kernel ones autotuned) fill up, then the pusher must stop.
        await pusher.stalled()
        self.assertEqual(pusher.too_far_ahead, [])
        self.assertLess(pusher.sent - sink.received, limit)
        sink.transport.resumeProducing()
        await with_timeout(sink.received_at_least(pusher.total), 60)
        self.assertEqual(sink.received, pusher.total)
        self.assertEqual(pusher.too_far_ahead, [])
        await with_timeout(pusher.closed, 10)  # the sink's close came all the way back

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
        # "promptly": the refused dial itself closes the user, not a timeout later on; what
        # ends the user connection is told by the order of events, not by a stopwatch
        logs = LogWatch(self)
        refused = logs.next(f"connect to local service [127.0.0.1:{closed_port}] error")
        c = Collector(b"hello")
        await connect(down, c)
        await with_timeout(refused, 10)
        self.assertFalse(c.done.called, "the user was closed before frpc's dial failed")
        self.assertEqual(await with_timeout(c.done, 10), b"")
        self.assertEqual([line for line in logs.lines if "within" in line], [], "a timeout fired")
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
        await with_timeout(t.fatal.first(), 10)
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
        await with_timeout(held.received_at_least(len(b"before ")), 10)  # the relay is up
        gone_connections = echo_a.connections

        change2 = tcp_proxy("change", b)
        added = tcp_proxy("added", b)
        write([keep, change2, added])
        self.assertTrue(frpc.proxy_manager.reload())
        added_port = await t.remote_port("added")
        change_port = await t.remote_port("change")
        await until(lambda: "gone" not in t.frps.server.proxies, "proxy [gone] closed on frps")

        # removed proxy: its port no longer accepts tunnelled connections
        await self.assert_not_relayed(gone_port)
        self.assertEqual(echo_a.connections, gone_connections)
        # changed proxy now reaches service b
        before_b = echo_b.connections
        self.assertEqual(await roundtrip(change_port, b"changed", 5), b"changed")
        self.assertEqual(echo_b.connections, before_b + 1)
        self.assertEqual(await roundtrip(added_port, b"added", 5), b"added")
        # the held connection never noticed
        held.transport.write(b"after")
        held.transport.loseWriteConnection()
        self.assertEqual(await with_timeout(held.done, 5), b"before after")

    async def assert_not_relayed(self, port: int) -> None:
        """Nothing listens on ``port`` any more, or what accepts closes without relaying."""
        from twisted.internet.error import ConnectionRefusedError

        c = Collector(b"x", half_close=True)
        try:
            await connect(port, c)
        except ConnectionRefusedError:
            return
        self.assertEqual(await with_timeout(c.done, 10), b"", "a removed proxy still relays")

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
        remote = free_port()
        local = listen_local(self, EchoFactory())
        t = self.tunnel()
        t.start_client([tcp_proxy("echo", local, remote)], login_backoff=QUICK_BACKOFF)
        self.assertEqual(await t.remote_port("echo"), remote)
        bind_port = t.frps.bound_port
        first_run_id = t.frpc.client.run_id
        lost = LogWatch(self).next("control connection to frps lost")
        await t.frps.stopService()
        await with_timeout(lost, 10)
        t.start_server(bind_port=bind_port)
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
        await with_timeout(held.received_at_least(4), 10)  # echoed: the relay is up end to end
        await t.frpc.stopService()
        await t.frps.stopService()
        self.assertEqual((len(t.frpc.client.connections), len(t.frps.server.connections)), (0, 0))
        self.assertEqual((t.frpc.client.connections.aborted, t.frps.server.connections.aborted), (0, 0))
        self.assertEqual(await with_timeout(held.done, 5), b"open")

    @async_test
    async def test_bad_peers_cost_only_their_own_connection(self) -> None:
        """Garbage, oversized frames and vanishing users must not disturb other tunnels."""
        from frptx.factories.server import BindPortTimeouts

        # bind-port timeouts far beyond the waits here: every close below is frps's
        # answer to what it got, never a timeout running out
        hour = 3600.0
        t, port, _ = await self.echo_tunnel(timeouts=BindPortTimeouts(hour, hour, hour))
        held = Collector(b"")
        await connect(port, held)
        held.transport.write(b"held ")
        await with_timeout(held.received_at_least(len(b"held ")), 10)
        bind = t.frps.bound_port
        # Rejected on sight: frps closes these without waiting for more.
        for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # not frp at all
                     b"o" + (10241).to_bytes(8, "big") + b"{" * 64,  # a Login frame over the size limit
                     b"\x17" + b"\x00" * 200,  # frpc's TLS byte, then no TLS record
                     b"\x16\x03\x01\x00\x40" + b"\xee" * 64):  # a TLS record that is no handshake
            bad = Collector(junk)
            await connect(bind, bad)
            await with_timeout(bad.done, 15)  # (after a GoAway or a TLS alert, maybe)
        # Incomplete (frames that open no stream, a partial TLS record, nothing at all):
        # frps waits for more, for its bind-port timeouts (tested on a fake clock); the
        # peer's EOF must free the connection at once.
        for junk in (b"\x00" * 64, b"\x16\x03\x01\x40\x00" + os.urandom(300), b"", b"\x17"):
            bad = Collector(junk, half_close=True)
            await connect(bind, bad)
            await with_timeout(bad.done, 15)
        # a user that vanishes mid-stream (RST with the echo of its 1 MiB still coming)
        users = t.frps.server.proxies["echo"].users
        vanishing = Collector(os.urandom(1024 * 1024))
        await connect(port, vanishing)
        await with_timeout(vanishing.received_at_least(64 * 1024), 10)
        self.assertEqual(len(users), 2)
        vanishing.transport.abortConnection()
        await until(lambda: len(users) == 1, "the vanished user's connection closed on frps")
        self.assertEqual(await roundtrip(port, b"fresh"), b"fresh")
        held.transport.write(b"still")
        held.transport.loseWriteConnection()
        self.assertEqual(await with_timeout(held.done, 10), b"held still")
        self.assertEqual(len(t.frps.server.controls), 1)

    @async_test
    async def test_silent_peers_closed_by_bind_port_timeouts(self) -> None:
        """``FrpsService(timeouts=...)`` reaches the bind port: peers that never say enough are closed.

        (The timeouts themselves are tested on a fake clock; no frpc here, so short ones hurt nobody.)"""
        from frptx.factories.server import BindPortTimeouts

        t = Tunnel(self, self.mode)
        t.start_server(timeouts=BindPortTimeouts(sniff=0.05, first_message=0.05, first_stream=0.05))
        # nothing; half a frp message; an empty yamux window update on stream 0; a TLS byte, no hello
        for junk in (b"", b"o\x00\x00", bytes([0, 1, 0, 0]) + bytes(8), b"\x17"):
            silent = Collector(junk)
            await connect(t.frps.bound_port, silent)
            await with_timeout(silent.done, 10)
        await until(lambda: len(t.frps.server.connections) == 0, "every silent connection gone on frps")





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
        await with_timeout(t.fatal.first(), 15)
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
