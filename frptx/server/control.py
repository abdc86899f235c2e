# -*- test-case-name: frptx.test.test_protocols_server -*-
"""Per-client state on frps: one ``ServerControl`` per logged-in frpc.

The control protocol only turns bytes into messages; this object holds what a
login owns — run id, proxies, the work-connection pool, the heartbeat deadline —
and decides what each message means.  When the control connection is lost, or a
new login with the same run id replaces it, everything it owns is closed.

It asks frps (the ``ControlOwner`` interface, implemented by ``FrpServer``) to
register and close proxies; proxies see it through ``proxies.ControlView``.

NewProxy and Ping go through frps's server plugins first, as in frp's
``control.go``: a refusal answers with the plugin's reason, a rewrite is what is
registered (or checked).  While a plugin decides, the control connection is held
(``MessageProtocol.hold``): the client's later messages wait, in order, as frp's
one message loop per client makes them wait.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol as TypingProtocol, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from frptx import FRP_PROTOCOL_VERSION, logs
from frptx.config import ServerConfig
from frptx.protocols.tracking import ConnectionSet
from frptx.server.plugins import (
    OP_NEW_PROXY,
    OP_PING,
    NewProxyContent,
    PingContent,
    PluginDenied,
    PluginManager,
    UserInfo,
)
from frptx.server.pool import WorkConnectionPool
from frptx.server.proxies import ProxyBase
from frptx.wire import (
    CloseProxy,
    Login,
    LoginResp,
    Message,
    NewProxy,
    NewProxyResp,
    Ping,
    Pong,
    ReqWorkConn,
    StartWorkConn,
    derive_key,
    verify_privilege_key,
)

if TYPE_CHECKING:
    from frptx.protocols.server import ServerConnectionProtocol

_T = TypeVar("_T")


class ControlOwner(TypingProtocol):
    """What a client's control needs of frps (``FrpServer``)."""

    @property
    def config(self) -> ServerConfig: ...

    @property
    def reactor(self) -> Any: ...

    @property
    def connections(self) -> ConnectionSet: ...

    @property
    def plugins(self) -> PluginManager: ...

    def client_error(self, detailed: str, summary: str) -> str: ...

    def register_proxy(self, control: ServerControl, msg: NewProxy) -> Deferred[NewProxyResp]: ...

    def close_proxy(self, control: ServerControl, name: str) -> None: ...

    def control_closed(self, control: ServerControl) -> None: ...


class ServerWorkConnection:
    """A work connection from a client, idle in its pool until a user needs it."""

    def __init__(self, control: ServerControl, protocol: ServerConnectionProtocol) -> None:
        self.control = control
        self.protocol = protocol
        self.started = False

    def message_received(self, msg: Message) -> None:
        self.protocol.protocol_error(f"unexpected {type(msg).__name__} on an idle work connection")

    def connection_lost(self, reason: Failure | None) -> None:
        if not self.started:
            self.control.pool.discard(self)

    def close(self) -> None:
        self.protocol.close()

    def start(self, msg: StartWorkConn, relay_now: bool = False) -> None:
        """Bind this connection to a user: StartWorkConn in clear, then raw bytes.

        ``relay_now``: the caller attaches the relay before it returns, so the connection
        need not be paused meanwhile.
        """
        self.started = True
        self.protocol.send(msg)
        self.protocol.switch_to_raw(pause=not relay_now)


class ServerControl:
    """The server's view of one logged-in client."""

    log = logs.logger(__name__)

    def __init__(self, server: ControlOwner, protocol: ServerConnectionProtocol, login: Login, run_id: str) -> None:
        self.server = server
        self.protocol = protocol
        self.login = login
        self.run_id = run_id
        self.proxies: dict[str, ProxyBase] = {}
        cfg = server.config
        #: the token this client logged in with: its keys stay valid when frps reloads a new token
        self.token = cfg.auth.token
        self.pool: WorkConnectionPool[ServerWorkConnection] = WorkConnectionPool(
            min(login.pool_count, cfg.transport.max_pool_count), self._request_work_connection)
        self._heartbeat: IDelayedCall | None = None
        self.closed = False
        self.replaced = False

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        """Answer the login, switch on encryption, prefetch work connections."""
        self.protocol.send(LoginResp(version=FRP_PROTOCOL_VERSION, run_id=self.run_id))
        self.protocol.start_encryption(derive_key(self.token))
        if not self.server.config.transport.tcp_mux:
            self._arm_heartbeat()  # with tcpMux, only clients that send Pings are held to them
        self.pool.fill()
        assert self.protocol.transport is not None  # a connected protocol sent the Login
        self.log.info("client login: run id [{run_id}], address {peer}, version {version}, os {os}/{arch}",
                      run_id=self.run_id, peer=self.protocol.transport.getPeer(),
                      version=self.login.version, os=self.login.os, arch=self.login.arch)

    def _arm_heartbeat(self) -> None:
        timeout = self.server.config.transport.heartbeat_timeout
        if timeout <= 0 or self.closed:
            return
        if self._heartbeat is not None and self._heartbeat.active():
            self._heartbeat.reset(timeout)
        else:
            self._heartbeat = self.server.reactor.callLater(timeout, self._heartbeat_expired)

    def _heartbeat_expired(self) -> None:
        self.log.warn("client [{run_id}]: no heartbeat for {timeout}s, closing its control connection",
                      run_id=self.run_id, timeout=self.server.config.transport.heartbeat_timeout)
        self.close()

    def close(self) -> None:
        """Drop the control connection (``connection_lost`` does the cleanup)."""
        self.protocol.close()

    def replace(self) -> None:
        """A new login took this run id: free everything now, then drop the connection."""
        self.replaced = True
        self._cleanup()
        self.protocol.close()

    def connection_lost(self, reason: Failure | None) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._heartbeat is not None and self._heartbeat.active():
            self._heartbeat.cancel()
        self.pool.close()
        for name in list(self.proxies):
            self.server.close_proxy(self, name)
        self.server.control_closed(self)
        self.log.info("client [{run_id}] offline{why}", run_id=self.run_id,
                      why=" (replaced by a new login)" if self.replaced else "")

    # -- messages ------------------------------------------------------------
    def message_received(self, msg: Message) -> None:
        if isinstance(msg, NewProxy):
            plugins = self.server.plugins
            if not plugins.wants(OP_NEW_PROXY):
                self._new_proxy(msg)
                return
            name = msg.proxy_name

            def proxy_denied(e: PluginDenied) -> None:
                self.log.warn("client [{run_id}]: new proxy [{name}] type [{type}] error: {why}",
                              run_id=self.run_id, name=name, type=msg.proxy_type, why=str(e))
                self._send_if_open(NewProxyResp(proxy_name=name, error=self.server.client_error(
                    str(e), f"new proxy [{name}] error")))

            self._after_plugins(plugins.new_proxy(NewProxyContent(self.user_info(), msg)),
                                lambda c: self._new_proxy(c.new_proxy), proxy_denied)
        elif isinstance(msg, CloseProxy):
            self.server.close_proxy(self, msg.proxy_name)
        elif isinstance(msg, Ping):
            plugins = self.server.plugins
            if not plugins.wants(OP_PING):
                self._ping(msg)
                return

            def ping_denied(e: PluginDenied) -> None:
                self.log.warn("client [{run_id}]: received invalid ping: {why}", run_id=self.run_id, why=str(e))
                self.protocol.send(Pong(error=self.server.client_error(str(e), "invalid ping")))

            self._after_plugins(plugins.ping(PingContent(self.user_info(), msg)), lambda c: self._ping(c.ping),
                                ping_denied)
        else:
            self.log.debug("client [{run_id}]: ignoring {msg}", run_id=self.run_id, msg=type(msg).__name__)

    def user_info(self) -> UserInfo:
        """Who this client is, for server plugins."""
        return UserInfo.of(self.login, self.run_id)

    def _after_plugins(self, decision: Deferred[_T], allowed: Callable[[_T], None],
                       denied: Callable[[PluginDenied], None]) -> None:
        """Hold the connection until the plugins decide, then act (unless the client is gone).

        In-process plugins often answer at once: then nothing is held.
        """
        held = not decision.called
        if held:
            self.protocol.hold()
        decision.addCallbacks(lambda c: self._decided(allowed, c), lambda f: self._refused(denied, f))
        decision.addErrback(lambda f: self.log.failure("client [{run_id}]: acting on a plugin decision failed", f,
                                                       run_id=self.run_id))
        if held:
            decision.addBoth(lambda _: self.protocol.release())

    def _decided(self, allowed: Callable[[_T], None], content: _T) -> None:
        if not self.closed:
            allowed(content)

    def _refused(self, denied: Callable[[PluginDenied], None], failure: Failure) -> None:
        failure.trap(PluginDenied)
        if not self.closed:
            denied(failure.value)  # type: ignore[arg-type]  # trapped: a PluginDenied

    def _new_proxy(self, msg: NewProxy) -> None:
        self.server.register_proxy(self, msg).addCallback(self._send_if_open)

    def _send_if_open(self, msg: NewProxyResp) -> None:
        """Answer the NewProxy, then start the proxy (frps's order: a udp proxy takes
        its work connection only after frpc was told the proxy runs)."""
        if self.closed:
            return
        self.protocol.send(msg)
        proxy = self.proxies.get(msg.proxy_name) if not msg.error else None
        if proxy is not None and not proxy.closed:
            proxy.start()

    def _ping(self, msg: Ping) -> None:
        auth = self.server.config.auth
        if "HeartBeats" in auth.additional_scopes and not verify_privilege_key(
                self.token, msg.timestamp, msg.privilege_key):
            self.log.warn("client [{run_id}]: heartbeat with a wrong token", run_id=self.run_id)
            self.protocol.send(Pong(error=self.server.client_error(
                "token in heartbeat doesn't match token from configuration", "invalid ping")))
            return
        self._arm_heartbeat()
        self.protocol.send(Pong())

    # -- work connections ------------------------------------------------------
    def _request_work_connection(self) -> None:
        if not self.closed:
            self.protocol.send(ReqWorkConn())

    def take_work_connection(self) -> ServerWorkConnection | None:
        return self.pool.take()

    def get_work_connection(self) -> Deferred[ServerWorkConnection]:
        return self.pool.get()
