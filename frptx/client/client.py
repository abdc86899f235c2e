# -*- test-case-name: frptx.test.test_protocols_client -*-
"""frpc's state across reconnects: run id, the live control, login outcome.

``FrpClient`` is what the control and work protocols talk to.  It is driven by
``LoginFactory`` (a ``ReconnectingClientFactory`` whose delays come from our own
``BackoffPolicy``: 1 s doubling to 20 s with jitter, reset only after a
*successful login*) and applies ``loginFailExit``: the first failed login ends the
process with the reason.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IDelayedCall, IProtocol
from twisted.internet.protocol import Protocol, ReconnectingClientFactory, connectionDone
from twisted.python.failure import Failure

from frptx import logs
from frptx.client import kinds
from frptx.client.backoff import LOGIN_BACKOFF, BackoffPolicy
from frptx.client.dialer import Dialer
from frptx.client.failures import describe_failure
from frptx.client.proxy_manager import ProxyManager
from frptx.client.session import LoginSession
from frptx.config import ClientConfig
from frptx.protocols.client import ClientControlProtocol, ClientWorkProtocol
from frptx.protocols.codec import stream_codec
from frptx.protocols.tracking import ConnectionSet
from frptx.protocols.tuning import tune
from frptx.wire import LoginResp, NewProxyResp, NewWorkConn, StartWorkConn, privilege_key

if TYPE_CHECKING:
    from frptx.mux import YamuxProtocol

__all__ = ["FrpClient", "LoginFactory", "describe_failure"]


class LoginFactory(ReconnectingClientFactory):
    """Builds the control connection (or the yamux session carrying it) and re-logs in.

    The reconnecting machinery is Twisted's; the schedule is ``policy`` (retry number
    ``retries - 1`` gets ``policy.delay``), so it does not depend on the Twisted version.
    ``resetDelay`` (called after a successful login) starts the schedule over.
    """

    noisy = False

    def __init__(self, client: FrpClient, policy: BackoffPolicy = LOGIN_BACKOFF,
                 uniform: Callable[[], float] | None = None) -> None:
        self.client = client
        self.clock = client.reactor
        self.policy = policy
        self._uniform = uniform
        self._retry_call: IDelayedCall | None = None
        self.resetDelay()

    def retry(self, connector: Any = None) -> None:
        if not self.continueTrying:
            return
        if connector is None:
            connector = self.connector
        self.retries += 1
        self.delay = (self.policy.delay(self.retries - 1) if self._uniform is None
                      else self.policy.delay(self.retries - 1, self._uniform))
        assert self.clock is not None  # set in __init__
        self._retry_call = self.clock.callLater(self.delay, connector.connect)

    def stopTrying(self) -> None:
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None
        super().stopTrying()

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        if self.client.config.transport.tcp_mux:
            return self.client.new_mux_session()
        return ClientControlProtocol(self.client)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.client.connection_failed(reason)
        if self.continueTrying:
            super().clientConnectionFailed(connector, reason)

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        if self.continueTrying:
            super().clientConnectionLost(connector, reason)
            self.client.log.info("reconnecting to frps in {delay:.1f}s", delay=self.delay)


class FrpClient:
    """frpc's core: login, proxies via ``proxy_manager``, work connections.

    It is the ``ControlHandler`` of its control connections (each gets a
    ``LoginSession``) and the ``WorkDispatcher`` of its work connections (a started
    one goes to its proxy kind's handler, ``frptx.client.kinds``); proxy kinds and
    visitors see it as a ``ClientContext``.
    """

    log = logs.logger(__name__)

    def __init__(self, config: ClientConfig, reactor: Any, on_fatal: Callable[[str], None] | None = None,
                 tls_wrap: Any = None, login_backoff: BackoffPolicy = LOGIN_BACKOFF) -> None:
        self.config = config
        self.reactor = reactor
        self.run_id = ""
        #: the live login session (its control connection is ``control.control``)
        self.control: LoginSession | None = None
        self.ever_logged_in = False
        self.stopping = False
        self.on_fatal = on_fatal
        self.dialer = Dialer(config, reactor, tls_wrap)
        self.factory = LoginFactory(self, login_backoff)
        self.connector: Any = None
        #: why the last yamux session ended (its streams only see "session lost")
        self.session_failure: Failure | None = None
        self._login_waiters: list[Deferred[LoginSession]] = []
        #: every open connection of frpc (control, work, local services, yamux session)
        self.connections = ConnectionSet(reactor)
        self.proxy_manager: ProxyManager = ProxyManager(self)

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> None:
        self.stopping = False
        self.factory.continueTrying = True
        self.connector = self.dialer.connect_factory(self.factory)

    def stop(self) -> Deferred[None]:
        """Stop re-logging in and close every connection; fires when they are gone."""
        self.stopping = True
        self.factory.stopTrying()
        if self.connector is not None and self.connector.state == "connecting":
            self.connector.stopConnecting()
        return self.connections.close_all()

    def when_logged_in(self) -> Deferred[LoginSession]:
        """Fires with the login session at the next successful login (or now)."""
        d: Deferred[LoginSession] = Deferred()
        if self.control is not None and self.control.logged_in:
            d.callback(self.control)
        else:
            self._login_waiters.append(d)
        return d

    # -- tcpMux -----------------------------------------------------------------
    def new_mux_session(self) -> YamuxProtocol:
        from frptx.mux import YamuxProtocol

        client = self

        class ClientSession(YamuxProtocol):
            def connectionMade(self) -> None:
                client.session_failure = None
                client.connections.add(self)
                tune(self.transport)
                super().connectionMade()
                client.dialer.session = self
                self.open_stream(ClientControlProtocol(client))

            def connectionLost(self, reason: Failure = connectionDone) -> None:
                if client.dialer.session is self:
                    client.dialer.session = None
                # streams only learn "session lost"; keep the real cause (e.g. a TLS error) for the log
                client.session_failure = reason
                super().connectionLost(reason)
                client.connections.discard(self)

        return ClientSession(is_client=True, reactor=self.reactor, coalesce_over_tls=True,
                             keepalive_interval=float(self.config.transport.tcp_mux_keepalive_interval))

    # -- ControlHandler ---------------------------------------------------------------
    def open_session(self, control: ClientControlProtocol) -> LoginSession:
        return LoginSession(self, control)

    # -- login outcome (SessionOwner) -----------------------------------------------------
    def logged_in(self, control: LoginSession, resp: LoginResp) -> None:
        first = not self.ever_logged_in
        self.ever_logged_in = True
        control.outcome_reported = True
        self.run_id = resp.run_id
        self.control = control
        self.factory.resetDelay()
        cfg = self.config
        self.log.info("{what} to frps {addr}:{port}, run id [{run_id}], server version {version}",
                      what="logged in" if first else "logged in again", addr=cfg.server_addr,
                      port=cfg.server_port, run_id=resp.run_id, version=resp.version)
        self.proxy_manager.logged_in(control)
        waiters, self._login_waiters = self._login_waiters, []
        for d in waiters:
            d.callback(control)

    def login_failed(self, control: LoginSession | None, why: str) -> None:
        if control is not None:
            if control.outcome_reported:
                return
            control.outcome_reported = True
        if not self.ever_logged_in and self.config.login_fail_exit and not self.stopping:
            self.fatal(f"login to frps at {self.config.server_addr}:{self.config.server_port} failed: {why}")
        else:
            self.log.warn("login to frps failed: {why}", why=why)

    def connection_failed(self, reason: Failure) -> None:
        self.login_failed(None, f"cannot connect: {describe_failure(reason)}")

    def control_lost(self, control: LoginSession, reason: Failure | None) -> None:
        if self.config.transport.tcp_mux and self.session_failure is not None:
            reason = self.session_failure
        if not control.logged_in:
            self.login_failed(control, "the connection closed before the login response: "
                                       f"{describe_failure(reason)} (do transport.tcpMux and transport.tls match "
                                       "the server's?)")
        if self.control is control:
            self.control = None
            self.proxy_manager.control_lost()
            if not self.stopping:
                self.log.warn("control connection to frps lost: {why}", why=describe_failure(reason))
        session = self.dialer.session
        if self.config.transport.tcp_mux and session is not None:
            session.close()  # the session belongs to this login; a new login means a new session

    def fatal(self, message: str) -> None:
        self.factory.stopTrying()
        self.stopping = True
        self.log.critical("{message}", message=message)
        if self.on_fatal is not None:
            self.on_fatal(message)

    def new_proxy_response(self, msg: NewProxyResp) -> None:
        self.proxy_manager.new_proxy_response(msg)

    # -- work connections (WorkDispatcher) ------------------------------------------
    def open_work_connection(self) -> None:
        d = self.dialer.dial(ClientWorkProtocol(self))
        d.addErrback(lambda f: self.log.warn("cannot open a work connection: {why}",
                                             why=describe_failure(f)))

    def new_work_conn(self) -> NewWorkConn:
        cfg = self.config
        if "NewWorkConns" in cfg.auth.additional_scopes:
            timestamp = int(self.reactor.seconds())
            return NewWorkConn(run_id=self.run_id, privilege_key=privilege_key(cfg.auth.token, timestamp),
                               timestamp=timestamp)
        return NewWorkConn(run_id=self.run_id)

    def work_started(self, work: ClientWorkProtocol, msg: StartWorkConn) -> None:
        """Hand a started work connection to its proxy kind (raw, paused, with its codec)."""
        proxy = self.proxy_manager.by_wire_name(msg.proxy_name)
        if proxy is None:
            work.log.warn("StartWorkConn for unknown proxy [{name}]", name=msg.proxy_name)
            work.close()
            return
        status = self.proxy_manager.status.get(proxy.name)
        if status is not None and status.phase == "check failed":
            # frp: a proxy withdrawn by its health check takes no more work connections
            work.log.info("proxy [{name}]: work connection refused, the health check failed", name=proxy.name)
            work.close()
            return
        kind = kinds.kind_for(proxy.type)
        if kind is None:
            work.log.warn("proxy [{name}]: frpc cannot run {type} proxies", name=proxy.name, type=proxy.type)
            work.close()
            return
        work.switch_to_raw()
        codec = stream_codec(self.config.auth.token, proxy.transport.use_encryption,
                             proxy.transport.use_compression)
        kind.work_started(self, proxy, work, codec)

    def connect_local(self, host: str, port: int, protocol: IProtocol, timeout: float) -> Deferred[IProtocol]:
        from frptx.client.dialer import connect_tcp

        return connect_tcp(self.reactor, host, port, protocol, timeout)
