"""Live interop with real Go frp 0.65.0, both ways, on 127.0.0.1.

Each test runs one side as frptx (in this process; as ``twistd -n frps`` where
it must be SIGKILLed) and the other as Go frp (``frps``/``frpc`` child processes,
see ``gofrp``): a stock Go frpc against our frps (``GoFrpcOurFrps*``) and our
frpc against a stock Go frps (``OurFrpcGoFrps*``).  stcp/sudp put the provider on
one implementation and the visitor on the other, both ways at once, once behind
each frps.

Users never half-close here: Go frp does not pass a half-close on (see
``EchoReader``), so each exchange reads its whole echo back before closing.

Public ports are ``remotePort: 0`` unless a test needs a fixed one, so every
tunnel also checks that frps assigned a port and that the other side learned it:
from our frps's NewProxyResp as Go frpc's admin API reports it, or from Go frps's
NewProxyResp as our frpc saw it, cross-checked with Go frps's dashboard API.

The binaries come from ``FRPTX_GO_FRP_DIR``; without them these tests skip
(``FRPTX_REQUIRE_GO_FRP=1`` makes that a failure).
"""
from __future__ import annotations

import collections
import dataclasses
import os
import random
import re
import socket
import sys
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import DatagramProtocol, Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial import unittest

from frptx.client.service import FrpcService
from frptx.protocols.client import ClientWorkProtocol
from frptx.server.service import FrpsService
from frptx.test.gofrp import ChildProcess, GoFrp, GoFrpc, GoFrps, free_port, to_toml
from frptx.test.support import (
    MODES,
    TOKEN,
    EchoFactory,
    client_config,
    connect,
    deferLater,
    digest,
    listen_local,
    server_config,
    tcp_proxy,
    with_timeout,
)
from frptx.test.test_e2e import async_test
from frptx.test.test_e2e_udp import UdpEcho, WindowedSender, mixed_payloads, udp_proxy
from frptx.test.test_tls import _PKIMixin

#: the default Go frpc transport (tcpMux and TLS on): the mode of the tests that are not per mode
GO_DEFAULT = MODES["mux_tls"]
BIG = 4 * 1024 * 1024
SCOPES = ["HeartBeats", "NewWorkConns"]
ENC_COMP = {"useEncryption": True, "useCompression": True}
#: mutual TLS runs without tcpMux, where Go frpc reports TLS errors as they are
MTLS = MODES["nomux_tls"]


def big_payload() -> bytes:
    """Half compressible, half random: both snappy chunk kinds, and no pattern that hides a lost block."""
    return (b"frptx-interop " * 200_000)[: BIG // 2] + os.urandom(BIG // 2)


class EchoReader(Protocol):
    """Sends ``payload`` and reads until as many bytes came back, then closes (no half-close).

    Go frp does not pass a half-close on: its relay (golib ``io.Join``) closes both
    connections as soon as either direction ends, so a user that shuts its write
    side would lose the echo still in flight.  ``done`` also fires if the
    connection ends early, with what arrived.
    """

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.received = bytearray()
        self.done: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.payload)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= len(self.payload):
            self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        if not self.done.called:
            self.done.callback(bytes(self.received))


async def echo(port: int, payload: bytes, timeout: float = 15) -> bytes:
    """What came back for ``payload`` sent through ``port`` to an echo service."""
    r = EchoReader(payload)
    await connect(port, r)
    return await with_timeout(r.done, timeout)


async def until(condition: Callable[[], bool], timeout: float = 10, what: str = "") -> None:
    """Wait (bounded) for in-process state that has no Deferred of its own."""
    deadline = reactor.seconds() + timeout
    while not condition():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await deferLater(0.02)



class InteropBase(unittest.TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.go = GoFrp(self)

    # -- our side, in this process ------------------------------------------------------------
    def our_frps(self, tcp_mux: bool, **extra: Any) -> FrpsService:
        frps = FrpsService(server_config(tcp_mux, **extra), reactor)
        frps.startService()
        self.addCleanup(lambda: frps.stopService() if frps.running else None)
        return frps

    def our_frpc(self, server_port: int, mode: dict[str, bool], proxies: list[dict[str, Any]],
                 visitors: list[dict[str, Any]] | None = None, **extra: Any) -> tuple[FrpcService, Deferred[str]]:
        """Our frpc (visitors listen on port 0); the Deferred fires with a fatal error (e.g. login refused)."""
        if visitors:
            extra["visitors"] = [dict(v, bindAddr="127.0.0.1", bindPort=1) for v in visitors]
        cfg = client_config(server_port, mode["tcp_mux"], mode["tls"], proxies, **extra)
        cfg = dataclasses.replace(cfg, visitors=tuple(dataclasses.replace(v, bind_port=0) for v in cfg.visitors))
        fatal: Deferred[str] = Deferred()
        frpc = FrpcService(cfg, reactor, on_fatal=lambda why: fatal.called or fatal.callback(why))
        frpc.startService()
        self.addCleanup(lambda: frpc.stopService() if frpc.running else None)
        return frpc, fatal

    async def our_remote_port(self, frpc: FrpcService, name: str) -> int:
        status = await with_timeout(frpc.proxy_manager.wait_settled(name), 15)
        self.assertEqual(status.phase, "running", status.error)
        host, _, port = status.remote_addr.rpartition(":")
        self.assertGreater(int(port), 0, f"frps gave no port: {status.remote_addr!r}")
        return int(port)

    # -- Go side ------------------------------------------------------------------------------------
    async def go_frps(self, tcp_mux: bool, **extra: Any) -> GoFrps:
        return await self.go.frps(TOKEN, tcp_mux=tcp_mux, **extra)

    async def go_frpc(self, server_port: int, mode: dict[str, bool], proxies: list[dict[str, Any]],
                      visitors: list[dict[str, Any]] | None = None, wait: bool = True, **extra: Any) -> GoFrpc:
        token = extra.pop("token", TOKEN)
        for attempt in range(5):
            # a fresh admin port each time: retried on the rare collision with another process
            frpc = self.go.frpc(self.go.frpc_config(server_port, token, mode["tcp_mux"], mode["tls"], proxies,
                                                    visitors, **dict(extra)))
            if not wait:
                return frpc
            try:
                await frpc.ready()
            except AssertionError:
                if attempt < 4 and not frpc.proc.running and frpc.proc.count("address already in use"):
                    continue
                raise
            return frpc
        raise AssertionError("unreachable")

    async def go_dashboard_proxy(self, frps: GoFrps, kind: str, name: str) -> dict[str, Any]:
        listing = await frps.api(f"/api/proxy/{kind}")
        for p in listing["proxies"]:
            if p["name"] == name:
                return p
        raise AssertionError(f"Go frps has no {kind} proxy {name}: {[p['name'] for p in listing['proxies']]}")

    # -- traffic ------------------------------------------------------------------------------------
    async def check_tcp(self, port: int, payload: bytes | None = None, concurrent: int = 20) -> int:
        """A multi-MiB echo compared by hash, then ``concurrent`` transfers at once, each checked.

        Returns the bytes sent (each came back once)."""
        payload = big_payload() if payload is None else payload
        received = await echo(port, payload, 40)
        self.assertEqual(len(received), len(payload))
        self.assertEqual(digest(received), digest(payload))
        collectors = [EchoReader(os.urandom(64 * 1024) + b"#%d" % i) for i in range(concurrent)]
        await gatherResults([connect(port, c) for c in collectors])
        results = await with_timeout(gatherResults([c.done for c in collectors]), 30)
        for c, got in zip(collectors, results, strict=True):
            self.assertEqual(digest(got), digest(c.payload))
        return len(payload) + sum(len(c.payload) for c in collectors)

    def listen_udp(self, protocol: DatagramProtocol) -> int:
        p = reactor.listenUDP(0, protocol, interface="127.0.0.1", maxPacketSize=65535)
        self.addCleanup(p.stopListening)
        return p.getHost().port

    async def check_udp(self, port: int, seed: int) -> None:
        """Two sockets, mixed sizes up to udpPacketSize (1500 bytes), every datagram echoed exactly once to its sender."""
        rng = random.Random(seed)
        senders = [WindowedSender(port, mixed_payloads(tag, 120, rng, big=1500)) for tag in (b"A", b"B")]
        for s in senders:
            self.listen_udp(s)
        try:
            await with_timeout(gatherResults([s.go() for s in senders]), 20)
        except Exception:
            raise AssertionError("datagrams lost: " + "; ".join(s.status() for s in senders)) from None
        for s in senders:
            self.assertEqual(s.foreign, [])
            self.assertEqual(+s.expected, collections.Counter())


# -- tcp in every transport mode -------------------------------------------------------------------

class GoFrpcOurFrpsTcpMixin:
    mode: dict[str, bool]

    @async_test
    async def test_tcp_remote_port_0_payload_and_concurrency(self: Any) -> None:
        echo = EchoFactory()
        local = listen_local(self, echo)
        # with TLS, frps refuses anything else: the cell cannot pass over a plain connection
        frps = self.our_frps(self.mode["tcp_mux"], transport={
            "tcpMux": self.mode["tcp_mux"], "tls": {"force": self.mode["tls"]}})
        go = await self.go_frpc(frps.bound_port, self.mode, [tcp_proxy("echo", local)])
        port = await go.remote_port("echo")
        self.assertEqual(port, frps.server.proxies["echo"].remote_port)
        await self.check_tcp(port)
        self.assertEqual(echo.connections, 21)


class OurFrpcGoFrpsTcpMixin:
    mode: dict[str, bool]

    @async_test
    async def test_tcp_remote_port_0_payload_and_concurrency(self: Any) -> None:
        echo = EchoFactory()
        local = listen_local(self, echo)
        frps = await self.go_frps(self.mode["tcp_mux"], transport={
            "tcpMux": self.mode["tcp_mux"], "tls": {"force": self.mode["tls"]}})
        frpc, _ = self.our_frpc(frps.port, self.mode, [tcp_proxy("echo", local)])
        port = await self.our_remote_port(frpc, "echo")
        self.assertEqual((await self.go_dashboard_proxy(frps, "tcp", "echo"))["conf"]["remotePort"], port)
        await self.check_tcp(port)
        self.assertEqual(echo.connections, 21)


for _mode_name, _mode in MODES.items():
    for _mixin, _prefix in ((GoFrpcOurFrpsTcpMixin, "GoFrpcOurFrps"), (OurFrpcGoFrpsTcpMixin, "OurFrpcGoFrps")):
        _name = f"{_prefix}Tcp_{_mode_name}"
        globals()[_name] = type(_name, (_mixin, InteropBase), {"mode": _mode, "__module__": __name__})
del _mode_name, _mode, _mixin, _prefix, _name


# -- everything else, once per direction -----------------------------------------------------------

class GoFrpcOurFrps(InteropBase):
    """Real Go frpc against our frps."""

    @async_test
    async def test_udp(self) -> None:
        echo = UdpEcho()
        local = self.listen_udp(echo)
        frps = self.our_frps(GO_DEFAULT["tcp_mux"])
        go = await self.go_frpc(frps.bound_port, GO_DEFAULT, [
            udp_proxy("uecho", local), udp_proxy("usecure", local, transport=ENC_COMP)])
        port = await go.remote_port("uecho")
        self.assertEqual(port, frps.server.proxies["uecho"].remote_port)
        await self.check_udp(port, seed=1)
        self.assertEqual(len(echo.peers), 2)
        await self.check_udp(await go.remote_port("usecure"), seed=5)
        self.assertEqual(len(echo.peers), 4)

    @async_test
    async def test_encryption_and_compression(self) -> None:
        local = listen_local(self, EchoFactory())
        frps = self.our_frps(False)
        mode = {"tcp_mux": False, "tls": False}  # nothing else hides the stream: frps sees only ciphertext
        go = await self.go_frpc(frps.bound_port, mode, [tcp_proxy(
            "secure", local, transport={"useEncryption": True, "useCompression": True})])
        port = await go.remote_port("secure")
        msg = frps.server.proxies["secure"].msg
        self.assertEqual((msg.use_encryption, msg.use_compression), (True, True))
        sent = await self.check_tcp(port, concurrent=5)
        counter = frps.server.proxies["secure"].counter
        self.assertEqual((counter.inbound, counter.outbound), (sent, sent))

    @async_test
    async def test_wrong_token_refused_others_served(self) -> None:
        local = listen_local(self, EchoFactory())
        frps = self.our_frps(GO_DEFAULT["tcp_mux"])
        good = await self.go_frpc(frps.bound_port, GO_DEFAULT, [tcp_proxy("good", local)])
        port = await good.remote_port("good")
        bad = await self.go_frpc(frps.bound_port, GO_DEFAULT, [tcp_proxy("bad", local)], token="wrong",
                                 wait=False)
        code = await bad.proc.when_ended(15)
        self.assertEqual(code, 1, bad.proc.output())
        await bad.proc.wait_for("token in login doesn't match token from configuration")
        self.assertNotIn("bad", frps.server.proxies)
        self.assertEqual(len(frps.server.controls), 1)
        await self.check_tcp(port, payload=b"still served" * 1000, concurrent=3)
        # and a new client still logs in
        again = await self.go_frpc(frps.bound_port, GO_DEFAULT, [tcp_proxy("again", local)])
        self.assertEqual(await echo(await again.remote_port("again"), b"hello"), b"hello")

    async def our_frps_process(self, bind_port: int) -> ChildProcess:
        """Our frps as ``twistd -n frps`` (so that it can really be killed), ready to serve."""
        from frptx.test.test_process import env, twistd

        path = self.go.tmp / "our-frps.toml"
        path.write_text(to_toml({"bindAddr": "127.0.0.1", "bindPort": bind_port, "proxyBindAddr": "127.0.0.1",
                                 "auth": {"token": TOKEN}, "transport": {"tcpMux": GO_DEFAULT["tcp_mux"]}}))
        proc = self.go.spawn_argv("our-frps", [*twistd(), "-n", "--pidfile=", "frps", "--config", str(path)],
                                  env())
        await proc.wait_for(f"frps listening on 127.0.0.1:{bind_port}", timeout=30)
        return proc

    @async_test
    async def test_frps_killed_and_restarted_frpc_logs_in_again(self) -> None:
        local = listen_local(self, EchoFactory())
        for attempt in range(5):
            bind_port = free_port()
            try:
                frps = await self.our_frps_process(bind_port)
                break
            except AssertionError:
                if attempt == 4:
                    raise  # else another process took the port just now: pick another
        remote = free_port()
        go = await self.go_frpc(bind_port, GO_DEFAULT, [tcp_proxy("echo", local, remote)])
        self.assertEqual(await go.remote_port("echo"), remote)
        self.assertEqual(await echo(remote, b"before"), b"before")
        mark = go.proc.mark()
        await frps.kill()  # SIGKILL: no goodbye to anyone
        await self.our_frps_process(bind_port)
        await go.ready(since=mark)
        run_ids = [re.search(r"get run id \[(\w+)\]", line).group(1)  # type: ignore[union-attr]
                   for line in go.proc.lines if "login to server success" in line]
        self.assertEqual(len(run_ids), 2)
        self.assertEqual(run_ids[0], run_ids[1])  # the new frps kept the run id frpc brought back
        self.assertEqual(await go.remote_port("echo"), remote)
        self.assertEqual(await echo(remote, b"back again"), b"back again")

    @async_test
    async def test_reload_and_unsupported_type(self) -> None:
        """An http proxy is refused (visibly, to Go frpc: no vhostHTTPPort) without harm to the others; a reload
        (frpc's admin API) closes, keeps and adds proxies through CloseProxy/NewProxy."""
        echo_a, echo_b = EchoFactory(), EchoFactory()
        a, b = listen_local(self, echo_a), listen_local(self, echo_b)
        frps = self.our_frps(GO_DEFAULT["tcp_mux"])
        keep, gone = tcp_proxy("keep", a), tcp_proxy("gone", a)
        web = {"name": "web", "type": "http", "localIP": "127.0.0.1", "localPort": a,
               "customDomains": ["frptx.test"]}
        go = await self.go_frpc(frps.bound_port, GO_DEFAULT, [keep, gone, web], wait=False)
        for line in ("[keep] start proxy success", "[gone] start proxy success",
                     "[web] start error: type [http] not supported when vhost http port is not set"):
            await go.proc.wait_for(line)
        self.assertEqual(sorted(frps.server.proxies), ["gone", "keep"])
        keep_port, gone_port = await go.remote_port("keep"), await go.remote_port("gone")
        self.assertEqual(await echo(gone_port, b"gone soon"), b"gone soon")

        mark = go.proc.mark()
        await go.reload(dict(go.config, proxies=[keep, tcp_proxy("new", b)]))
        await go.proc.wait_for("[new] start proxy success", since=mark)
        await until(lambda: "gone" not in frps.server.proxies, what="frps closing [gone]")
        self.assertEqual(sorted(frps.server.proxies), ["keep", "new"])
        self.assertEqual(await echo(keep_port, b"kept"), b"kept")
        self.assertEqual(await echo(await go.remote_port("new"), b"new"), b"new")
        self.assertEqual((echo_a.connections, echo_b.connections), (2, 1))
        try:
            self.assertEqual(await echo(gone_port, b"x"), b"")
        except ConnectionRefusedError:
            pass  # refused (the port is closed) is what normally happens

    @async_test
    async def test_signed_heartbeats_and_work_connections(self) -> None:
        """Ping/Pong and NewWorkConn signed (auth.additionalScopes); frps holds the client past its timeout."""
        local = listen_local(self, EchoFactory())
        frps = self.our_frps(False, auth={"token": TOKEN, "additionalScopes": SCOPES},
                             transport={"tcpMux": False, "heartbeatTimeout": 2})
        mode = MODES["nomux_tls"]
        go = await self.go_frpc(frps.bound_port, mode, [tcp_proxy("echo", local)],
                                auth={"token": TOKEN, "additionalScopes": SCOPES}, log={"level": "debug"},
                                transport={"heartbeatInterval": 1, "heartbeatTimeout": 2})
        (run_id,) = frps.server.controls
        # three Pongs are 3 s: longer than either side's 2 s heartbeat timeout
        await go.proc.wait_count("receive heartbeat from server", 3)
        self.assertEqual(go.proc.count("login to server success"), 1, go.proc.output())
        self.assertEqual(list(frps.server.controls), [run_id])
        self.assertEqual(await echo(await go.remote_port("echo"), b"signed"), b"signed")

    @async_test
    async def test_tls_with_custom_first_byte(self) -> None:
        """frp 0.31-0.49's TLS dialect: 0x17 before the ClientHello (disableCustomTLSFirstByte false)."""
        local = listen_local(self, EchoFactory())
        frps = self.our_frps(True, transport={"tcpMux": True, "tls": {"force": True}})
        go = await self.go_frpc(frps.bound_port, GO_DEFAULT, [tcp_proxy("echo", local)],
                                transport={"tls": {"enable": True, "disableCustomTLSFirstByte": False}})
        await self.check_tcp(await go.remote_port("echo"), payload=os.urandom(256 * 1024), concurrent=5)

    @async_test
    async def test_mutual_tls(self) -> None:
        """Certificates both ways: Go frpc verifies our frps's and presents its own, which our frps checks."""
        f = _PKIMixin.pki_files(self)
        local = listen_local(self, EchoFactory())
        frps = self.our_frps(False, transport={"tcpMux": False, "tls": {
            "certFile": f["server"], "keyFile": f["server_key"], "trustedCaFile": f["ca"]}})
        verify = {"enable": True, "trustedCaFile": f["ca"], "serverName": "frps.test"}
        go = await self.go_frpc(frps.bound_port, MTLS, [tcp_proxy("echo", local)], transport={
            "tls": dict(verify, certFile=f["client"], keyFile=f["client_key"])})
        await self.check_tcp(await go.remote_port("echo"), payload=os.urandom(256 * 1024), concurrent=5)
        # no client certificate: our frps refuses; a name the certificate lacks: Go frpc refuses
        errors = []
        for tls in (verify, dict(verify, serverName="other.test", certFile=f["client"], keyFile=f["client_key"])):
            bad = await self.go_frpc(frps.bound_port, MTLS, [tcp_proxy("bad", local)], wait=False,
                                     transport={"tls": tls})
            self.assertEqual(await bad.proc.when_ended(15), 1, bad.proc.output())
            self.assertEqual(bad.proc.count("login to server success"), 0)
            errors.append("\n".join(bad.proc.lines))  # stdout and stderr lines, in no fixed order
        # (without tcpMux: over yamux, Go frpc only reports "session shutdown")
        self.assertIn("remote error: tls: certificate required", errors[0])
        self.assertIn("certificate is valid for frps.test, not other.test", errors[1])
        self.assertEqual(sorted(frps.server.proxies), ["echo"])

    @async_test
    async def test_user_prefix_and_pool_count(self) -> None:
        local = listen_local(self, EchoFactory())
        frps = self.our_frps(GO_DEFAULT["tcp_mux"])
        go = await self.go_frpc(frps.bound_port, GO_DEFAULT, [tcp_proxy("echo", local)], user="alice",
                                transport={"poolCount": 3})
        self.assertEqual(sorted(frps.server.proxies), ["alice.echo"])
        (control,) = frps.server.controls.values()
        self.assertEqual(control.login.user, "alice")
        self.assertEqual(control.login.pool_count, 3)
        # frps fills the pool at login, before any user connects
        await until(lambda: len(control.pool.idle) == 3, what="3 pooled work connections")
        port = await go.remote_port("alice.echo")
        self.assertEqual(await echo(port, b"pooled"), b"pooled")


class OurFrpcGoFrps(InteropBase):
    """Our frpc against real Go frps."""

    @async_test
    async def test_udp(self) -> None:
        echo = UdpEcho()
        local = self.listen_udp(echo)
        frps = await self.go_frps(GO_DEFAULT["tcp_mux"])
        frpc, _ = self.our_frpc(frps.port, GO_DEFAULT, [
            udp_proxy("uecho", local), udp_proxy("usecure", local, transport=ENC_COMP)])
        port = await self.our_remote_port(frpc, "uecho")
        self.assertEqual((await self.go_dashboard_proxy(frps, "udp", "uecho"))["conf"]["remotePort"], port)
        await self.check_udp(port, seed=2)
        self.assertEqual(len(echo.peers), 2)
        await self.check_udp(await self.our_remote_port(frpc, "usecure"), seed=6)
        self.assertEqual(len(echo.peers), 4)

    @async_test
    async def test_encryption_and_compression(self) -> None:
        local = listen_local(self, EchoFactory())
        frps = await self.go_frps(False)
        mode = {"tcp_mux": False, "tls": False}
        frpc, _ = self.our_frpc(frps.port, mode, [tcp_proxy(
            "secure", local, transport={"useEncryption": True, "useCompression": True})])
        port = await self.our_remote_port(frpc, "secure")
        conf = (await self.go_dashboard_proxy(frps, "tcp", "secure"))["conf"]
        self.assertEqual((conf["transport"].get("useEncryption"), conf["transport"].get("useCompression")),
                         (True, True))
        await self.check_tcp(port, concurrent=5)

    @async_test
    async def test_wrong_token_refused_others_served(self) -> None:
        local = listen_local(self, EchoFactory())
        frps = await self.go_frps(GO_DEFAULT["tcp_mux"])
        good, _ = self.our_frpc(frps.port, GO_DEFAULT, [tcp_proxy("good", local)])
        port = await self.our_remote_port(good, "good")
        mark = frps.proc.mark()
        bad, fatal = self.our_frpc(frps.port, GO_DEFAULT, [tcp_proxy("bad", local)], token="wrong")
        why = await with_timeout(fatal, 15)
        self.assertIn("token in login doesn't match token from configuration", why)
        await frps.proc.wait_for("register control error: token in login doesn't match", since=mark)
        await self.check_tcp(port, payload=b"still served" * 1000, concurrent=3)
        again, _ = self.our_frpc(frps.port, GO_DEFAULT, [tcp_proxy("again", local)])
        self.assertEqual(await echo(await self.our_remote_port(again, "again"), b"hello"), b"hello")

    @async_test
    async def test_frps_killed_and_restarted_frpc_logs_in_again(self) -> None:
        local = listen_local(self, EchoFactory())
        frps = await self.go_frps(GO_DEFAULT["tcp_mux"])
        remote = free_port()
        frpc, _ = self.our_frpc(frps.port, GO_DEFAULT, [tcp_proxy("echo", local, remote)])
        self.assertEqual(await self.our_remote_port(frpc, "echo"), remote)
        self.assertEqual(await echo(remote, b"before"), b"before")
        run_id = frpc.client.run_id
        first = frpc.client.control
        await frps.restart()  # SIGKILL, then the same config again

        def logged_in_again() -> bool:
            control = frpc.client.control
            return control is not None and control is not first and control.logged_in

        await until(logged_in_again, timeout=30, what="frpc logging in to the new frps")
        self.assertEqual(await self.our_remote_port(frpc, "echo"), remote)
        self.assertEqual(frpc.client.run_id, run_id)
        self.assertEqual(await echo(remote, b"back again"), b"back again")

    @async_test
    async def test_reload_and_refused_port(self) -> None:
        """Go frps's refusal (allowPorts) reaches our frpc without harm to the others; a reload
        closes, keeps and adds proxies through CloseProxy/NewProxy."""
        echo_a, echo_b = EchoFactory(), EchoFactory()
        a, b = listen_local(self, echo_a), listen_local(self, echo_b)
        frps = await self.go_frps(GO_DEFAULT["tcp_mux"], allowPorts=[{"start": 20000, "end": 65000}])
        keep, gone, low = tcp_proxy("keep", a), tcp_proxy("gone", a), tcp_proxy("low", a, 1000)
        frpc, _ = self.our_frpc(frps.port, GO_DEFAULT, [keep, gone, low])
        status = await with_timeout(frpc.proxy_manager.wait_settled("low"), 15)
        self.assertEqual(status.phase, "start error")
        self.assertIn("port not allowed", status.error)
        keep_port, gone_port = await self.our_remote_port(frpc, "keep"), await self.our_remote_port(frpc, "gone")
        self.assertEqual(await echo(gone_port, b"gone soon"), b"gone soon")

        mark = frps.proc.mark()
        frpc.proxy_manager.apply(client_config(frps.port, GO_DEFAULT["tcp_mux"], GO_DEFAULT["tls"],
                                               [keep, tcp_proxy("new", b)]))
        new_port = await self.our_remote_port(frpc, "new")
        await frps.proc.wait_for("[gone] proxy closing", since=mark)
        self.assertEqual((await self.go_dashboard_proxy(frps, "tcp", "gone"))["status"], "offline")
        self.assertEqual(await echo(keep_port, b"kept"), b"kept")
        self.assertEqual(await echo(new_port, b"new"), b"new")
        self.assertEqual((echo_a.connections, echo_b.connections), (2, 1))
        try:
            self.assertEqual(await echo(gone_port, b"x"), b"")
        except ConnectionRefusedError:
            pass  # refused (the port is closed) is what normally happens

    @async_test
    async def test_signed_heartbeats_and_work_connections(self) -> None:
        """Ping/Pong and NewWorkConn signed (auth.additionalScopes); both keep the session past the timeout."""
        local = listen_local(self, EchoFactory())
        frps = await self.go_frps(False, auth={"token": TOKEN, "additionalScopes": SCOPES},
                                  transport={"tcpMux": False, "heartbeatTimeout": 2}, log={"level": "debug"})
        frpc, _ = self.our_frpc(frps.port, MODES["nomux_tls"], [tcp_proxy("echo", local)],
                                auth={"token": TOKEN, "additionalScopes": SCOPES},
                                transport={"heartbeatInterval": 1, "heartbeatTimeout": 2})
        port = await self.our_remote_port(frpc, "echo")
        control = frpc.client.control
        # three Pings are 3 s: longer than either side's 2 s heartbeat timeout
        await frps.proc.wait_count("receive heartbeat", 3)
        self.assertIs(frpc.client.control, control)
        self.assertTrue(control.logged_in)
        self.assertEqual(frps.proc.count("heartbeat timeout"), 0, frps.proc.output())
        self.assertEqual(await echo(port, b"signed"), b"signed")

    @async_test
    async def test_tls_with_custom_first_byte(self) -> None:
        """frp 0.31-0.49's TLS dialect: 0x17 before the ClientHello (disableCustomTLSFirstByte false)."""
        local = listen_local(self, EchoFactory())
        frps = await self.go_frps(True, transport={"tcpMux": True, "tls": {"force": True}})
        frpc, _ = self.our_frpc(frps.port, GO_DEFAULT, [tcp_proxy("echo", local)],
                                transport={"tls": {"enable": True, "disableCustomTLSFirstByte": False}})
        self.assertFalse(frpc.client.config.transport.tls.disable_custom_tls_first_byte)
        await self.check_tcp(await self.our_remote_port(frpc, "echo"), payload=os.urandom(256 * 1024),
                             concurrent=5)

    @async_test
    async def test_mutual_tls(self) -> None:
        """Certificates both ways: our frpc verifies Go frps's and presents its own, which Go frps checks."""
        f = _PKIMixin.pki_files(self)
        local = listen_local(self, EchoFactory())
        frps = await self.go_frps(False, transport={"tcpMux": False, "tls": {
            "force": True, "certFile": f["server"], "keyFile": f["server_key"], "trustedCaFile": f["ca"]}})
        verify = {"enable": True, "trustedCaFile": f["ca"], "serverName": "frps.test"}
        frpc, _ = self.our_frpc(frps.port, MTLS, [tcp_proxy("echo", local)], transport={
            "tls": dict(verify, certFile=f["client"], keyFile=f["client_key"])})
        await self.check_tcp(await self.our_remote_port(frpc, "echo"), payload=os.urandom(256 * 1024),
                             concurrent=5)
        # no client certificate: Go frps refuses; a CA that did not sign frps's certificate: we refuse
        _, no_cert = self.our_frpc(frps.port, MTLS, [tcp_proxy("bad", local)], transport={"tls": verify})
        why = await with_timeout(no_cert, 15)
        self.assertIn("login to frps", why)
        _, wrong_ca = self.our_frpc(frps.port, MTLS, [tcp_proxy("bad2", local)], transport={
            "tls": dict(verify, trustedCaFile=f["other_ca"], certFile=f["client"], keyFile=f["client_key"])})
        why = await with_timeout(wrong_ca, 15)
        self.assertIn("server certificate not trusted by trustedCaFile", why)
        self.assertEqual([p["name"] for p in (await frps.api("/api/proxy/tcp"))["proxies"]], ["echo"])

    @async_test
    async def test_user_prefix_and_pool_count(self) -> None:
        local = listen_local(self, EchoFactory())
        frps = await self.go_frps(False)
        mode = {"tcp_mux": False, "tls": False}
        frpc, _ = self.our_frpc(frps.port, mode, [tcp_proxy("echo", local)], user="alice",
                                transport={"poolCount": 3})
        port = await self.our_remote_port(frpc, "echo")
        self.assertEqual((await self.go_dashboard_proxy(frps, "tcp", "alice.echo"))["conf"]["remotePort"], port)

        def work_connections() -> int:
            return sum(isinstance(p, ClientWorkProtocol) for p in frpc.client.connections._live)

        # Go frps asks for poolCount work connections right after login
        await until(lambda: work_connections() == 3, what="3 work connections")
        self.assertEqual(await echo(port, b"pooled"), b"pooled")


# -- stcp / sudp: provider on one side, visitor on the other (both ways, behind each frps) ---------

class SecretMixin:
    """One Go frpc and one of ours, each providing a proxy the other visits."""

    go_frps_side: bool

    async def frps_port(self: Any, tcp_mux: bool) -> int:
        if self.go_frps_side:
            return (await self.go_frps(tcp_mux)).port
        return self.our_frps(tcp_mux).bound_port

    @async_test
    async def test_stcp_provider_and_visitor_on_different_implementations(self: Any) -> None:
        """Users alice (Go frpc) and bob (ours) each provide a proxy only the other may visit
        (allowUsers, serverUser); a proxy bob is not allowed to visit refuses him."""
        mode = MODES["mux_tls"] if self.go_frps_side else MODES["nomux"]
        go_echo, our_echo = EchoFactory(), EchoFactory()
        go_local, our_local = listen_local(self, go_echo), listen_local(self, our_echo)
        port = await self.frps_port(mode["tcp_mux"])
        go_visitor_port = free_port()
        go = await self.go_frpc(
            port, mode,
            [{"name": "go-prov", "type": "stcp", "secretKey": "s1", "localIP": "127.0.0.1", "localPort": go_local,
              "allowUsers": ["bob"], "transport": ENC_COMP},
             {"name": "private", "type": "stcp", "secretKey": "s1", "localIP": "127.0.0.1",
              "localPort": go_local}],
            visitors=[{"name": "go-vis", "type": "stcp", "serverName": "our-prov", "serverUser": "bob",
                       "secretKey": "s2", "bindAddr": "127.0.0.1", "bindPort": go_visitor_port,
                       "transport": ENC_COMP}],
            user="alice")
        frpc, _ = self.our_frpc(
            port, mode,
            [{"name": "our-prov", "type": "stcp", "secretKey": "s2", "localIP": "127.0.0.1",
              "localPort": our_local, "allowUsers": ["alice"]}],
            visitors=[{"name": "our-vis", "type": "stcp", "serverName": "go-prov", "serverUser": "alice",
                       "secretKey": "s1", "transport": {"useEncryption": True}},
                      {"name": "denied", "type": "stcp", "serverName": "private", "serverUser": "alice",
                       "secretKey": "s1"}],
            user="bob")
        status = await with_timeout(frpc.proxy_manager.wait_settled("our-prov"), 15)
        self.assertEqual(status.phase, "running", status.error)
        # our visitor -> Go provider
        await self.check_tcp(frpc.visitors["our-vis"].port.getHost().port, concurrent=5)
        self.assertEqual((go_echo.connections, our_echo.connections), (6, 0))
        # Go visitor -> our provider
        await self.check_tcp(go_visitor_port, concurrent=5)
        self.assertEqual((go_echo.connections, our_echo.connections), (6, 6))
        # alice's "private" admits only alice: frps refuses bob's visitor, and says so
        self.assertEqual(await echo(frpc.visitors["denied"].port.getHost().port, b"let me in"), b"")
        self.assertIn("not allowed", frpc.visitors["denied"].last_error)
        self.assertEqual(go_echo.connections, 6)
        self.assertTrue(go.proc.running)

    @async_test
    async def test_sudp_provider_and_visitor_on_different_implementations(self: Any) -> None:
        mode = MODES["nomux_tls"] if self.go_frps_side else MODES["mux"]
        go_echo, our_echo = UdpEcho(), UdpEcho()
        go_local, our_local = self.listen_udp(go_echo), self.listen_udp(our_echo)
        port = await self.frps_port(mode["tcp_mux"])
        go_visitor_port = free_port(socket.SOCK_DGRAM)
        await self.go_frpc(
            port, mode,
            [{"name": "go-prov", "type": "sudp", "secretKey": "s1", "localIP": "127.0.0.1", "localPort": go_local,
              "transport": {"useEncryption": True}}],
            visitors=[{"name": "go-vis", "type": "sudp", "serverName": "our-prov", "secretKey": "s2",
                       "bindAddr": "127.0.0.1", "bindPort": go_visitor_port,
                       "transport": {"useCompression": True}}])
        frpc, _ = self.our_frpc(
            port, mode,
            [{"name": "our-prov", "type": "sudp", "secretKey": "s2", "localIP": "127.0.0.1",
              "localPort": our_local, "transport": {"useCompression": True}}],
            visitors=[{"name": "our-vis", "type": "sudp", "serverName": "go-prov", "secretKey": "s1",
                       "transport": {"useEncryption": True}}])
        status = await with_timeout(frpc.proxy_manager.wait_settled("our-prov"), 15)
        self.assertEqual(status.phase, "running", status.error)
        await self.check_udp(frpc.visitors["our-vis"].port.getHost().port, seed=3)
        self.assertEqual((go_echo.received, our_echo.received), (240, 0))
        await self.check_udp(go_visitor_port, seed=4)
        self.assertEqual((go_echo.received, our_echo.received), (240, 240))


class SecretBehindOurFrps(SecretMixin, InteropBase):
    go_frps_side = False


class SecretBehindGoFrps(SecretMixin, InteropBase):
    go_frps_side = True


# -- the helper itself (runs without the Go binaries) ------------------------------------------

class HelperTests(unittest.TestCase):
    """``gofrp``'s TOML writer and line waiters, so an interop failure is never the helper's."""

    def test_toml_round_trip(self) -> None:
        if sys.version_info >= (3, 11):
            import tomllib
        else:
            import tomli as tomllib

        doc = {"serverAddr": "127.0.0.1", "serverPort": 7000, "loginFailExit": False,
               "auth": {"token": 'a "quoted" \\ token', "additionalScopes": SCOPES},
               "transport": {"tls": {"enable": True}, "poolCount": 3},
               "allowPorts": [{"start": 1, "end": 2}, {"single": 5}],
               "proxies": [tcp_proxy("a", 1, transport=ENC_COMP), tcp_proxy("b", 2)],
               "visitors": [{"name": "v", "type": "stcp", "serverName": "a", "bindPort": 3}]}
        self.assertEqual(tomllib.loads(to_toml(doc)), doc)

    def test_lines_across_chunks_and_fds(self) -> None:
        p = ChildProcess("p", Clock())
        first = p.wait_for("login to server success")
        p.childDataReceived(1, b"2026 [I] try to connect\n2026 [I] login to ser")
        p.childDataReceived(2, b"an error line\n")
        self.assertNoResult(first)
        p.childDataReceived(1, b"ver success, get run id [x]\r\n")
        self.assertEqual(self.successResultOf(first), "2026 [I] login to server success, get run id [x]")
        self.assertEqual(p.lines, ["2026 [I] try to connect", "an error line",
                                   "2026 [I] login to server success, get run id [x]"])
        # lines already seen count, unless they are before ``since``
        self.successResultOf(p.wait_for("try to connect"))
        self.assertNoResult(p.wait_for("try to connect", since=p.mark()))

    def test_waiter_added_by_a_callback_is_kept(self) -> None:
        p = ChildProcess("p", Clock())
        second: list[Deferred[str]] = []
        p.wait_for("one").addCallback(lambda _: second.append(p.wait_for("two")))
        p.childDataReceived(1, b"one\n")
        self.assertNoResult(second[0])
        p.childDataReceived(1, b"two\n")
        self.assertEqual(self.successResultOf(second[0]), "two")

    def test_timeout_and_exit_fail_waiters_with_the_output(self) -> None:
        clock = Clock()
        p = ChildProcess("frpc9", clock)
        p.childDataReceived(1, b"something else\n")
        late = p.wait_for("never", timeout=5)
        clock.advance(5)
        self.assertIn("frpc9: no line 'never' within 5s", str(self.failureResultOf(late, AssertionError).value))
        pending = p.wait_for("never either")
        ended = p.when_ended()
        p.childDataReceived(2, b"fatal: no partial line is lost")
        from twisted.internet.error import ProcessTerminated

        p.processEnded(Failure(ProcessTerminated(exitCode=1)))
        message = str(self.failureResultOf(pending, AssertionError).value)
        self.assertIn("frpc9 exited (1)", message)
        self.assertIn("frpc9| fatal: no partial line is lost", message)
        self.assertEqual(self.successResultOf(ended), 1)
        self.assertFalse(p.running)
