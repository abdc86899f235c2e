# -*- test-case-name: frptx.test.test_protocols_server -*-
"""frps's shared state: logged-in clients by run id, proxies by name, public ports, stats.

``FrpServer`` is what every server-side connection talks to: it implements the
``ServerDispatcher`` the bind-port protocol is given (``frptx.protocols.server``)
and the ``ControlOwner`` each client's control is given.  It decides logins
(token, run id, replacing a stale control), files work connections into their
client's pool, and creates and closes proxies: the proxy's kind comes from the
``KindRegistry`` (``frptx.server.kinds``), its public port from the ingress type
the kind names (``frptx.server.ingress``); no kind is named here.

Server plugins (``frptx.server.plugins``: ``httpPlugins`` and in-process hooks)
are asked where frps 0.65.0 asks them: Login before the login is checked (a
rewrite changes the Login frps checks and keeps), NewWorkConn once the client is
found and before the token check, CloseProxy after a proxy closed.  With no
plugin for an op, the step is skipped entirely and the answer stays synchronous.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.python.failure import Failure

from frptx import FRP_PROTOCOL_VERSION, logs
from frptx.config import ServerConfig
from frptx.protocols.codec import stream_codec
from frptx.protocols.tracking import ConnectionSet
from frptx.server.clients import ClientHistory
from frptx.server.control import ServerControl, ServerWorkConnection
from frptx.server.groups import GroupRefused, Groups
from frptx.server.ingress import PortIngresses, PortIngressType
from frptx.server.kind import KindRegistry, ProxyKind, ProxyRefused
from frptx.server.kinds import builtin_kinds
from frptx.server.kinds.udp import DEFAULT_UDP_TIMING, UdpTiming
from frptx.server.plugins import (
    DEFAULT_TIMEOUT,
    OP_CLOSE_PROXY,
    OP_LOGIN,
    OP_NEW_WORK_CONN,
    CallablePlugin,
    CloseProxyContent,
    HTTPPlugin,
    LoginContent,
    NewWorkConnContent,
    PluginCallable,
    PluginDenied,
    PluginManager,
    ServerPlugin,
    UserInfo,
    address_text,
)
from frptx.server.ports import PortError, TooManyPorts
from frptx.server.proxies import ProxyBase
from frptx.server.stats import StatsCollector
from frptx.server.vhost_http import HttpVhost
from frptx.server.vhost_https import HttpsVhost
from frptx.server.vhost_tcpmux import TcpmuxVhost
from frptx.wire import (
    CloseProxy,
    Login,
    LoginResp,
    NewProxy,
    NewProxyResp,
    NewVisitorConn,
    NewVisitorConnResp,
    NewWorkConn,
    StartWorkConn,
    verify_privilege_key,
)

if TYPE_CHECKING:
    from frptx.protocols.server import Decision, ServerConnectionProtocol


class LoginRefused(Exception):
    """Login failed; ``str()`` is the text sent in LoginResp.error."""


class FrpServer:
    """All server-side state of one frps."""

    log = logs.logger(__name__)

    # An intersection for the reader; Python typing has none, so mypy takes it as Any.
    def __init__(self, config: ServerConfig, reactor: IReactorTCP & IReactorTime,  # type: ignore[valid-type]
                 udp_timing: UdpTiming | None = None, kinds: KindRegistry | None = None,
                 stats: StatsCollector | None = None, plugins: Iterable[ServerPlugin] = (),
                 plugin_timeout: float = DEFAULT_TIMEOUT) -> None:
        self.config = config
        self.reactor = reactor
        #: when udp proxies take work connections (frps's values unless a test shortens them)
        self.udp_timing = udp_timing or DEFAULT_UDP_TIMING
        self.kinds = kinds if kinds is not None else builtin_kinds()
        #: per-proxy traffic history for the dashboard, the API and Prometheus
        self.stats = stats if stats is not None else StatsCollector()
        #: every client seen, online or gone (bounded), for the dashboard and the API
        self.clients = ClientHistory()
        self.controls: dict[str, ServerControl] = {}
        self.proxies: dict[str, ProxyBase] = {}
        self._pending_names: set[str] = set()
        #: the public ports of each ingress type (tcp, udp), opened on demand
        self.ingresses: dict[str, PortIngresses] = {}
        #: load-balancing groups: proxies sharing one ingress
        self.groups = Groups()
        #: every open connection frps accepted (bind port and public ports)
        self.connections = ConnectionSet(reactor)
        #: server plugins: the ``httpPlugins`` of the config, in order, then ``plugins`` and ``add_plugin``'s
        self.plugins = PluginManager(clock=reactor, timeout=plugin_timeout)
        for entry in config.http_plugins:
            self.plugins.register(HTTPPlugin(entry.name, entry.addr, entry.path, entry.ops, reactor=reactor,
                                             tls_verify=entry.tls_verify))
            self.log.info("plugin [{name}] has been registered", name=entry.name)
        for plugin in plugins:
            self.plugins.register(plugin)
        #: the routes of vhostHTTPPort (None: http proxies are refused, as frp does without it)
        self.http_vhost = HttpVhost(config, reactor) if config.vhost_http_port else None
        #: the routes of vhostHTTPSPort (None: https proxies are refused)
        self.https_vhost = HttpsVhost(config, reactor) if config.vhost_https_port else None
        #: the routes of tcpmuxHTTPConnectPort (None: tcpmux proxies are refused)
        self.tcpmux_vhost = TcpmuxVhost(config, reactor) if config.tcpmux_http_connect_port else None

    def client_error(self, detailed: str, summary: str) -> str:
        """frp's ``detailedErrorsToClient``: the full reason, or only a summary."""
        return detailed if self.config.detailed_errors_to_client else summary

    # -- plugins -------------------------------------------------------------
    def add_plugin(self, plugin: ServerPlugin) -> None:
        """Ask ``plugin`` too (after those already registered), from the next operation on."""
        self.plugins.register(plugin)

    def add_hook(self, name: str, ops: Iterable[str], fn: PluginCallable) -> CallablePlugin:
        """An in-process plugin: ``fn(op, content)`` is asked about ``ops`` (see ``CallablePlugin``)."""
        plugin = CallablePlugin(name, ops, fn)
        self.add_plugin(plugin)
        return plugin

    # -- login -------------------------------------------------------------
    def login(self, protocol: ServerConnectionProtocol, msg: Login) -> Decision:
        """Check a Login; on success the returned control owns the connection.

        With Login plugins the decision is a Deferred (the protocol holds the
        connection meanwhile); a plugin's rewrite is the Login that is checked and kept.
        """
        if not self.plugins.wants(OP_LOGIN):
            return self._login(protocol, msg)
        assert protocol.transport is not None  # a connected protocol sent the Login
        content = LoginContent(msg, address_text(protocol.transport.getPeer()))

        def denied(failure: Failure) -> None:
            failure.trap(PluginDenied)
            self._refuse_login(protocol, self.client_error(str(failure.value), "register control error"))

        return self.plugins.login(content).addCallbacks(lambda c: self._login(protocol, c.login), denied)

    def _refuse_login(self, protocol: ServerConnectionProtocol, why: str) -> None:
        if protocol.transport is None or protocol.closed:
            return
        logs.throttle.warn(self.log, "login refused", "login from {peer} refused: {why}",
                           peer=protocol.transport.getPeer(), why=why)
        protocol.send(LoginResp(version=FRP_PROTOCOL_VERSION, error=why))
        protocol.close()

    def _login(self, protocol: ServerConnectionProtocol, msg: Login) -> ServerControl | None:
        if protocol.closed:
            self.log.info("login from a connection closed while its plugins decided: ignored")
            return None
        try:
            self._check_login(msg)
        except LoginRefused as e:
            self._refuse_login(protocol, str(e))
            return None
        run_id = msg.run_id or os.urandom(8).hex()
        old = self.controls.get(run_id)
        if old is not None:
            old.replace()
        control = ServerControl(self, protocol, msg, run_id)
        self.controls[run_id] = control
        control.start()
        self.clients.online(control)
        return control

    def _check_login(self, msg: Login) -> None:
        """Token and client id only: like frps 0.65.0, the version is logged, never checked.

        (frp 0.31.2 refused versions below 0.18.0; current frp dropped that rule, and
        frpc builds with an empty or unusual version string log in fine there.)
        """
        auth = self.config.auth
        if not verify_privilege_key(auth.token, msg.timestamp, msg.privilege_key):
            raise LoginRefused(self.client_error(
                "token in login doesn't match token from configuration", "register control error"))
        if msg.client_id:
            for other in self.controls.values():
                if (other.login.client_id == msg.client_id and other.login.user == msg.user
                        and other.run_id != msg.run_id):
                    raise LoginRefused(f"client_id [{msg.client_id}] for user [{msg.user}] is already online")

    def control_closed(self, control: ServerControl) -> None:
        if self.controls.get(control.run_id) is control:
            del self.controls[control.run_id]
        self.clients.offline(control)

    # -- work connections ---------------------------------------------------
    def work_connection(self, protocol: ServerConnectionProtocol, msg: NewWorkConn) -> Decision:
        """File a work connection into its client's pool (after the NewWorkConn plugins, if any)."""
        control = self.controls.get(msg.run_id)
        if control is None:
            self._refuse_work(protocol, f"no client control found for run id [{msg.run_id}]")
            return None
        if not self.plugins.wants(OP_NEW_WORK_CONN):
            return self._work_connection(protocol, control, msg)
        content = NewWorkConnContent(UserInfo.of(control.login, control.run_id), msg)

        def denied(failure: Failure) -> None:
            failure.trap(PluginDenied)
            self._refuse_work(protocol, self.client_error(str(failure.value), "invalid NewWorkConn"))

        return self.plugins.new_work_conn(content).addCallbacks(
            lambda c: self._work_connection(protocol, control, c.new_work_conn), denied)

    def _refuse_work(self, protocol: ServerConnectionProtocol, error: str) -> None:
        if protocol.transport is None or protocol.closed:
            return
        logs.throttle.warn(self.log, "work connection refused", "work connection from {peer} refused: {why}",
                           peer=protocol.transport.getPeer(), why=error)
        protocol.send(StartWorkConn(error=error))
        protocol.close()

    def _work_connection(self, protocol: ServerConnectionProtocol, control: ServerControl,
                         msg: NewWorkConn) -> ServerWorkConnection | None:
        if protocol.closed:
            return None
        if control.closed:
            self._refuse_work(protocol, f"no client control found for run id [{control.run_id}]")
            return None
        if "NewWorkConns" in self.config.auth.additional_scopes and not verify_privilege_key(
                control.token, msg.timestamp, msg.privilege_key):
            self._refuse_work(protocol, self.client_error(
                "token in NewWorkConn doesn't match token from configuration", "invalid NewWorkConn"))
            return None
        work = ServerWorkConnection(control, protocol)
        if not control.pool.add(work):
            self.log.debug("client [{run_id}]: work connection pool full, closed one", run_id=control.run_id)
            return None
        return work

    # -- proxies ---------------------------------------------------------------
    def port_ingresses(self, kind: PortIngressType) -> PortIngresses:
        """The ports of one ingress type (created on first use)."""
        ingresses = self.ingresses.get(kind.name)
        if ingresses is None:
            ingresses = self.ingresses[kind.name] = PortIngresses(kind, self)
        return ingresses

    def register_proxy(self, control: ServerControl, msg: NewProxy) -> Deferred[NewProxyResp]:
        """Create the proxy (opening its public port if it has one); fires with the NewProxyResp.

        The proxy is not started yet: the control sends the NewProxyResp first and
        then calls ``proxy.start()``, so nothing reaches frpc about a proxy before
        frpc has heard that it exists.
        """
        name = msg.proxy_name
        kind_name = msg.proxy_type

        def refusal(why: str) -> NewProxyResp:
            self.log.warn("client [{run_id}]: proxy [{name}] refused: {why}", run_id=control.run_id, name=name,
                          why=why)
            return NewProxyResp(proxy_name=name, error=self.client_error(why, f"new proxy [{name}] error"))

        kind = self.kinds.get(kind_name)
        if not name:
            return succeed(refusal("proxy name is empty"))
        if kind is None:
            return succeed(refusal(f"proxy type [{kind_name}] is not supported by this server"))
        if name in self.proxies or name in self._pending_names:
            return succeed(refusal(f"proxy [{name}] already exists"))
        if kind.ingress is None:
            try:
                proxy = kind.proxy(control, msg)
            except ProxyRefused as e:
                return succeed(refusal(str(e)))
            return succeed(self._registered(control, proxy))
        return self._register_on_port(control, msg, kind, kind.ingress, refusal)

    def _register_on_port(self, control: ServerControl, msg: NewProxy, kind: ProxyKind, ingress_type: PortIngressType,
                          refusal: Callable[[str], NewProxyResp]) -> Deferred[NewProxyResp]:
        name = msg.proxy_name
        ingresses = self.port_ingresses(ingress_type)
        group = msg.group if kind.groups else ""

        def port_refusal(why: str) -> NewProxyResp:
            return refusal(kind.port_error(msg.remote_port, why))

        def join_group() -> NewProxyResp | None:
            """Attach to the group's ingress if the group is open (None: this is its first member)."""
            existing = self.groups.get(ingress_type.name, group) if group else None
            if existing is None:
                return None
            try:
                existing.check(msg.group_key, msg.remote_port)
            except GroupRefused as e:
                return refusal(str(e))
            proxy = kind.proxy(control, msg)
            proxy.attach(existing.ingress)
            return self._registered(control, proxy)

        joined = join_group()
        if joined is not None:
            return succeed(joined)
        try:
            candidates = ingresses.candidates(name, msg.remote_port, control.run_id)
        except TooManyPorts as e:
            return succeed(refusal(str(e)))
        except PortError as e:
            return succeed(port_refusal(str(e)))
        self._pending_names.add(name)

        def bind(_: object) -> NewProxyResp:
            self._pending_names.discard(name)
            if control.closed:
                return NewProxyResp(proxy_name=name, error="client is offline")
            if name in self.proxies:
                return refusal(f"proxy [{name}] already exists")
            joined = join_group()  # another member may have opened the group while this one waited
            if joined is not None:
                return joined
            proxy = kind.proxy(control, msg)  # first: if it raises, no port is left open
            try:
                ingress = ingresses.open(candidates, msg.remote_port, name, control.run_id)
            except PortError as e:
                return port_refusal(str(e))
            if group:
                self.groups.create(ingress_type.name, group, msg.group_key, msg.remote_port, ingress)
            proxy.attach(ingress)
            return self._registered(control, proxy)

        def failed(failure: Failure) -> NewProxyResp:
            # whatever went wrong, frpc gets an answer and frps a traceback in its log
            self._pending_names.discard(name)
            self.log.failure("client [{run_id}]: registering proxy [{name}] failed", failure,
                             run_id=control.run_id, name=name)
            return NewProxyResp(proxy_name=name, error=self.client_error(
                f"internal error: {failure.getErrorMessage()}", f"new proxy [{name}] error"))

        return ingresses.wait_released(candidates).addCallback(bind).addErrback(failed)

    def _registered(self, control: ServerControl, proxy: ProxyBase) -> NewProxyResp:
        self.proxies[proxy.name] = proxy
        control.proxies[proxy.name] = proxy
        login = control.login
        self.stats.proxy_opened(proxy.name, proxy.kind, proxy.counter, user=login.user, client_id=login.client_id,
                                run_id=control.run_id, registration=proxy.msg)
        where = f"listening on {self.config.proxy_bind_addr}:{proxy.remote_port}" if proxy.remote_port \
            else "reachable through visitors"
        self.log.info("client [{run_id}]: {kind} proxy [{name}] {where}", run_id=control.run_id, kind=proxy.kind,
                      name=proxy.name, where=where)
        return NewProxyResp(proxy_name=proxy.name, remote_addr=proxy.remote_addr)

    # -- visitors --------------------------------------------------------------
    def visitor_connection(self, protocol: ServerConnectionProtocol, msg: NewVisitorConn) -> None:
        """Check a NewVisitorConn and, if allowed, join it to the provider's stcp/sudp proxy."""
        name = msg.proxy_name
        proxy = self.proxies.get(name)
        user = ""
        error = ""
        if proxy is None or not proxy.accepts_visitors:
            error = f"custom listener for [{name}] doesn't exist"
        elif not verify_privilege_key(proxy.msg.sk, msg.timestamp, msg.sign_key):
            error = f"visitor connection of [{name}] auth failed"
        elif msg.run_id:
            visitor_control = self.controls.get(msg.run_id)
            if visitor_control is None:
                error = f"no client control found for run id [{msg.run_id}]"
            else:
                user = visitor_control.login.user
        if not error and proxy is not None and not proxy.allows(user):
            error = f"visitor connection of [{name}] user [{user}] not allowed"
        if error:
            assert protocol.transport is not None  # a connected protocol sent the NewVisitorConn
            logs.throttle.warn(self.log, "visitor connection refused", "visitor connection from {peer} refused: {why}",
                               peer=protocol.transport.getPeer(), why=error)
            protocol.send(NewVisitorConnResp(proxy_name=name, error=error))
            protocol.close()
            return
        assert proxy is not None
        protocol.send(NewVisitorConnResp(proxy_name=name))
        protocol.switch_to_raw()
        proxy.visitor_connected(protocol, stream_codec(proxy.msg.sk, msg.use_encryption, msg.use_compression))

    def close_proxy(self, control: ServerControl, name: str) -> None:
        proxy = control.proxies.pop(name, None)
        if proxy is None:
            return
        registered = self.proxies.get(name) is proxy
        if registered:
            del self.proxies[name]
        proxy.close()  # its ingress gives the port back once the socket is closed
        if registered:
            self.stats.proxy_closed(name)
        self.log.info("client [{run_id}]: proxy [{name}] closed (in {inb} bytes, out {outb} bytes)",
                      run_id=control.run_id, name=name, inb=proxy.counter.inbound, outb=proxy.counter.outbound)
        if self.plugins.wants(OP_CLOSE_PROXY):
            # frp tells the CloseProxy plugins in the background and ignores their answers
            self.plugins.close_proxy(CloseProxyContent(UserInfo.of(control.login, control.run_id),
                                                       CloseProxy(proxy_name=name)))

    def close(self) -> Deferred[None]:
        """Drop every client (frps stopping); fires when all public ports are closed."""
        self.plugins.stop()
        pending: list[Deferred[None]] = []
        for control in list(self.controls.values()):
            for name in list(control.proxies):
                proxy = control.proxies[name]
                d = proxy.close()
                if d is not None:
                    pending.append(d)
            control.close()
        return gatherResults(pending).addCallback(lambda _: None)
