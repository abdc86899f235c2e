# -*- test-case-name: frptx.test.test_protocols_client -*-
"""frpc's per-login session: Login, its answer, the heartbeat (frps's ``ServerControl`` counterpart).

A ``LoginSession`` lives as long as one control connection.  It sends Login when
the connection is up, waits ``LOGIN_RESPONSE_TIMEOUT`` for LoginResp, switches
the connection to encryption, pings every ``heartbeatInterval`` and drops the
connection when no Pong came for ``heartbeatTimeout``.  What a login *means*
(the run id, registering proxies, loginFailExit, the reconnect schedule) is the
owner's (``FrpClient``): the session reports ``logged_in`` / ``login_failed`` /
``control_lost`` to it.  ``ClientControlProtocol`` only turns bytes into messages
and calls the session.
"""
from __future__ import annotations

import platform
import socket
from typing import Any, Protocol

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from frptx import FRP_PROTOCOL_VERSION, logs
from frptx.config import ClientConfig
from frptx.protocols.client import ClientControlProtocol
from frptx.wire import Login, LoginResp, Message, NewProxyResp, Ping, Pong, ReqWorkConn, derive_key, privilege_key

LOGIN_RESPONSE_TIMEOUT = 10.0

_GO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i386": "386",
            "i686": "386", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def go_os_arch() -> tuple[str, str]:
    """This machine as Go's GOOS/GOARCH, which is what frps logs and shows."""
    machine = platform.machine().lower()
    return platform.system().lower() or "linux", _GO_ARCH.get(machine, machine)


class SessionOwner(Protocol):
    """What a login session reports to (``FrpClient``)."""

    @property
    def config(self) -> ClientConfig: ...

    @property
    def reactor(self) -> Any: ...

    @property
    def run_id(self) -> str: ...

    def logged_in(self, session: LoginSession, resp: LoginResp) -> None: ...

    def login_failed(self, session: LoginSession | None, why: str) -> None: ...

    def control_lost(self, session: LoginSession, reason: Failure | None) -> None: ...

    def open_work_connection(self) -> None: ...

    def new_proxy_response(self, msg: NewProxyResp) -> None: ...


class LoginSession:
    """One login: its control connection, login outcome and heartbeat."""

    log = logs.logger(__name__)

    def __init__(self, owner: SessionOwner, control: ClientControlProtocol) -> None:
        self.owner = owner
        self.control = control
        self.logged_in = False
        #: the owner heard of this login's success or failure (reported once)
        self.outcome_reported = False
        self._login_timer: IDelayedCall | None = None
        self._pinger: LoopingCall | None = None
        self._pong_deadline: IDelayedCall | None = None

    # -- the connection, for the owner and the proxy manager ---------------------------
    @property
    def closed(self) -> bool:
        return self.control.closed

    def send(self, msg: Message) -> None:
        self.control.send(msg)

    def close(self) -> None:
        self.control.close()

    # -- ControlSession ----------------------------------------------------------------
    def connection_made(self) -> None:
        cfg = self.owner.config
        reactor = self.owner.reactor
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
            run_id=self.owner.run_id,
            client_id=cfg.client_id,
            metas=dict(cfg.metadatas),
            pool_count=cfg.transport.pool_count,
        ))
        self._login_timer = reactor.callLater(LOGIN_RESPONSE_TIMEOUT, self._login_timeout)

    def message_received(self, msg: Message) -> None:
        if not self.logged_in:
            self._login_response(msg)
        elif isinstance(msg, ReqWorkConn):
            self.owner.open_work_connection()
        elif isinstance(msg, NewProxyResp):
            self.owner.new_proxy_response(msg)
        elif isinstance(msg, Pong):
            self._pong(msg)
        else:
            self.log.debug("ignoring {msg} on the control connection", msg=type(msg).__name__)

    def connection_lost(self, reason: Failure | None) -> None:
        for timer in (self._login_timer, self._pong_deadline):
            if timer is not None and timer.active():
                timer.cancel()
        if self._pinger is not None and self._pinger.running:
            self._pinger.stop()
        self.owner.control_lost(self, reason)

    # -- login -------------------------------------------------------------------------
    def _login_timeout(self) -> None:
        self._login_timer = None
        self.owner.login_failed(self, f"no login response from frps within {LOGIN_RESPONSE_TIMEOUT:g}s "
                                      "(do transport.tcpMux and transport.tls match the server's?)")
        self.close()

    def _login_response(self, msg: Message) -> None:
        if self._login_timer is not None and self._login_timer.active():
            self._login_timer.cancel()
        self._login_timer = None
        if not isinstance(msg, LoginResp):
            self.control.protocol_error(f"expected LoginResp, got {type(msg).__name__}")
            return
        if msg.error:
            self.owner.login_failed(self, f"frps refused the login: {msg.error}")
            self.close()
            return
        self.logged_in = True
        self.control.start_encryption(derive_key(self.owner.config.auth.token))
        self._start_heartbeat()
        self.owner.logged_in(self, msg)

    # -- heartbeat ---------------------------------------------------------------------
    def _start_heartbeat(self) -> None:
        transport = self.owner.config.transport
        if transport.heartbeat_interval > 0:
            self._pinger = LoopingCall(self._send_ping)
            self._pinger.clock = self.owner.reactor
            self._pinger.start(transport.heartbeat_interval, now=False)
        self._arm_pong_deadline()

    def _arm_pong_deadline(self) -> None:
        timeout = self.owner.config.transport.heartbeat_timeout
        if timeout <= 0 or self.closed:
            return
        if self._pong_deadline is not None and self._pong_deadline.active():
            self._pong_deadline.reset(timeout)
        else:
            self._pong_deadline = self.owner.reactor.callLater(timeout, self._heartbeat_timeout)

    def _send_ping(self) -> None:
        cfg = self.owner.config
        if "HeartBeats" in cfg.auth.additional_scopes:
            timestamp = int(self.owner.reactor.seconds())
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
                      timeout=self.owner.config.transport.heartbeat_timeout)
        self.close()
