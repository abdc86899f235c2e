# -*- test-case-name: frptx.test.test_protocols_client -*-
"""frpc's protocols: the control connection and the work connections.

``ClientControlProtocol`` logs in, then (encrypted) registers proxies, answers
ReqWorkConn by opening work connections and keeps the heartbeat.
``ClientWorkProtocol`` announces itself with NewWorkConn, waits (without a time
limit: pooled connections idle) for StartWorkConn, dials the local service and
relays.  Both run unchanged over TCP, TLS or a yamux stream.
"""
from __future__ import annotations

import platform
import socket
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from frptx import FRP_PROTOCOL_VERSION
from frptx.protocols.codec import apply_codec, stream_codec
from frptx.protocols.message import MessageProtocol
from frptx.protocols.relay import Relay
from frptx.protocols.relayed import RelayedProtocol, start_relay
from frptx.protocols.tuning import tune
from frptx.wire import (
    Login,
    LoginResp,
    Message,
    NewProxyResp,
    NewWorkConn,
    Ping,
    Pong,
    ReqWorkConn,
    StartWorkConn,
    derive_key,
    privilege_key,
)

if TYPE_CHECKING:
    from frptx.client.client import FrpClient

LOGIN_RESPONSE_TIMEOUT = 10.0
LOCAL_DIAL_TIMEOUT = 10.0

_GO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i386": "386",
            "i686": "386", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def go_os_arch() -> tuple[str, str]:
    """This machine as Go's GOOS/GOARCH, which is what frps logs and shows."""
    machine = platform.machine().lower()
    return platform.system().lower() or "linux", _GO_ARCH.get(machine, machine)


class ClientControlProtocol(MessageProtocol):
    """One login session's control connection, from Login to close."""

    def __init__(self, client: FrpClient) -> None:
        super().__init__()
        self.client = client
        self.tracker = client.connections
        self.logged_in = False
        self.outcome_reported = False
        self._login_timer: IDelayedCall | None = None
        self._pinger: LoopingCall | None = None
        self._pong_deadline: IDelayedCall | None = None

    def connectionMade(self) -> None:
        cfg = self.client.config
        reactor = self.client.reactor
        timestamp = int(reactor.seconds())
        os_name, arch = go_os_arch()
        self.send(Login(
            version=FRP_PROTOCOL_VERSION,
            hostname=socket.gethostname(),
            os=os_name,
            arch=arch,
            user=cfg.user,
            privilege_key=privilege_key(cfg.auth.token, timestamp),
            timestamp=timestamp,
            run_id=self.client.run_id,
            client_id=cfg.client_id,
            metas=dict(cfg.metadatas),
            pool_count=cfg.transport.pool_count,
        ))
        self._login_timer = reactor.callLater(LOGIN_RESPONSE_TIMEOUT, self._login_timeout)

    def _login_timeout(self) -> None:
        self._login_timer = None
        self.client.login_failed(self, f"no login response from frps within {LOGIN_RESPONSE_TIMEOUT:g}s "
                                       "(do transport.tcpMux and transport.tls match the server's?)")
        self.close()

    def message_received(self, msg: Message) -> None:
        if not self.logged_in:
            self._login_response(msg)
        elif isinstance(msg, ReqWorkConn):
            self.client.open_work_connection()
        elif isinstance(msg, NewProxyResp):
            self.client.proxy_manager.new_proxy_response(msg)
        elif isinstance(msg, Pong):
            self._pong(msg)
        else:
            self.log.debug("ignoring {msg} on the control connection", msg=type(msg).__name__)

    def _login_response(self, msg: Message) -> None:
        if self._login_timer is not None and self._login_timer.active():
            self._login_timer.cancel()
        self._login_timer = None
        if not isinstance(msg, LoginResp):
            self.protocol_error(f"expected LoginResp, got {type(msg).__name__}")
            return
        if msg.error:
            self.client.login_failed(self, f"frps refused the login: {msg.error}")
            self.close()
            return
        self.logged_in = True
        self.start_encryption(derive_key(self.client.config.auth.token))
        self._start_heartbeat()
        self.client.logged_in(self, msg)

    # -- heartbeat ------------------------------------------------------------
    def _start_heartbeat(self) -> None:
        transport = self.client.config.transport
        if transport.heartbeat_interval > 0:
            self._pinger = LoopingCall(self._send_ping)
            self._pinger.clock = self.client.reactor
            self._pinger.start(transport.heartbeat_interval, now=False)
        self._arm_pong_deadline()

    def _arm_pong_deadline(self) -> None:
        timeout = self.client.config.transport.heartbeat_timeout
        if timeout <= 0 or self.closed:
            return
        if self._pong_deadline is not None and self._pong_deadline.active():
            self._pong_deadline.reset(timeout)
        else:
            self._pong_deadline = self.client.reactor.callLater(timeout, self._heartbeat_timeout)

    def _send_ping(self) -> None:
        cfg = self.client.config
        if "HeartBeats" in cfg.auth.additional_scopes:
            timestamp = int(self.client.reactor.seconds())
            self.send(Ping(privilege_key=privilege_key(cfg.auth.token, timestamp), timestamp=timestamp))
        else:
            self.send(Ping())

    def _pong(self, msg: Pong) -> None:
        if msg.error:
            self.log.error("frps rejected our heartbeat: {error}; reconnecting", error=msg.error)
            self.close()
            return
        self._arm_pong_deadline()

    def _heartbeat_timeout(self) -> None:
        self._pong_deadline = None
        self.log.warn("no heartbeat answer from frps for {timeout}s, reconnecting",
                      timeout=self.client.config.transport.heartbeat_timeout)
        self.close()

    def connectionLost(self, reason: Failure | None = None) -> None:
        super().connectionLost(reason)
        for timer in (self._login_timer, self._pong_deadline):
            if timer is not None and timer.active():
                timer.cancel()
        if self._pinger is not None and self._pinger.running:
            self._pinger.stop()
        self.client.control_lost(self, reason)


class LocalServiceProtocol(RelayedProtocol):
    """frpc's connection to the proxied local service."""


class ClientWorkProtocol(MessageProtocol):
    """A work connection: NewWorkConn, then StartWorkConn, then the relay."""

    def __init__(self, client: FrpClient) -> None:
        super().__init__()
        self.client = client
        self.tracker = client.connections
        self.relay: Relay | None = None

    def connectionMade(self) -> None:
        tune(self.transport)
        cfg = self.client.config
        if "NewWorkConns" in cfg.auth.additional_scopes:
            timestamp = int(self.client.reactor.seconds())
            self.send(NewWorkConn(run_id=self.client.run_id,
                                  privilege_key=privilege_key(cfg.auth.token, timestamp), timestamp=timestamp))
        else:
            self.send(NewWorkConn(run_id=self.client.run_id))

    def message_received(self, msg: Message) -> None:
        if not isinstance(msg, StartWorkConn):
            self.protocol_error(f"expected StartWorkConn, got {type(msg).__name__}")
            return
        if msg.error:
            self.log.warn("frps refused a work connection: {error}", error=msg.error)
            self.close()
            return
        proxy = self.client.proxy_manager.by_wire_name(msg.proxy_name)
        if proxy is None:
            self.log.warn("StartWorkConn for unknown proxy [{name}]", name=msg.proxy_name)
            self.close()
            return
        self.switch_to_raw()
        codec = stream_codec(self.client.config.auth.token, proxy.transport.use_encryption,
                             proxy.transport.use_compression)
        if proxy.type in ("udp", "sudp"):
            from frptx.client.udp import attach_udp_work

            attach_udp_work(self.client, proxy, self, codec)
            return
        local = LocalServiceProtocol()
        local.tracker = self.client.connections
        counter = self.client.proxy_manager.counter(proxy.name)
        d = self.client.connect_local(proxy.local_ip, proxy.local_port, local, LOCAL_DIAL_TIMEOUT)

        def connected(_: object) -> None:
            assert local.transport is not None and self.transport is not None  # both connected
            if self.closed or self.end is not None:
                local.transport.loseConnection()
                return
            self.relay = Relay(self.transport, local.transport, counter=counter)
            apply_codec(self.relay, "a", codec)
            work_early, work_eof = self.take_early()
            local_early, local_eof = local.take_early()
            start_relay(self.relay, self, local, work_early, local_early, work_eof, local_eof,
                        reactor=self.client.reactor)

        def failed(failure: Failure) -> None:
            self.log.warn("proxy [{name}]: connect to local service [{ip}:{port}] error: {why}",
                          name=proxy.name, ip=proxy.local_ip, port=proxy.local_port,
                          why=failure.getErrorMessage())
            self.close()

        d.addCallbacks(connected, failed)
        d.addErrback(lambda f: self.log.failure("proxy [{name}]: relay setup failed", f, name=proxy.name))

