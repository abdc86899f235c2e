# -*- test-case-name: frptx.test.test_protocols_server -*-
"""frps's shared state: logged-in clients by run id, proxies by name, ports.

``FrpServer`` is what every server-side connection talks to.  It decides logins
(token, version, run id, replacing a stale control), files work connections into
their client's pool, and creates and closes proxies.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.python.failure import Failure

from frptx import FRP_PROTOCOL_VERSION, logs
from frptx.config import ServerConfig
from frptx.protocols.codec import stream_codec
from frptx.protocols.tracking import ConnectionSet
from frptx.server.control import ServerControl, ServerWorkConnection
from frptx.server.ports import PortError, PortManager, TooManyPorts
from frptx.server.proxies import ProxyBase, SecretProxy, TcpProxy, join_to_work_connection
from frptx.wire import (
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
    from frptx.protocols.server import ServerConnectionProtocol
    from frptx.server.udp import UdpTiming


class LoginRefused(Exception):
    """Login failed; ``str()`` is the text sent in LoginResp.error."""


class FrpServer:
    """All server-side state of one frps."""

    log = logs.logger()

    # An intersection for the reader; Python typing has none, so mypy takes it as Any.
    def __init__(self, config: ServerConfig, reactor: IReactorTCP & IReactorTime,  # type: ignore[valid-type]
                 udp_timing: UdpTiming | None = None) -> None:
        from frptx.server.udp import DEFAULT_UDP_TIMING

        self.config = config
        self.reactor = reactor
        #: when udp proxies take work connections (frps's values unless a test shortens them)
        self.udp_timing = udp_timing or DEFAULT_UDP_TIMING
        self.controls: dict[str, ServerControl] = {}
        self.proxies: dict[str, ProxyBase] = {}
        self._pending_names: set[str] = set()
        self.ports = PortManager(config.allow_ports, config.max_ports_per_client)
        self.udp_ports = PortManager(config.allow_ports, config.max_ports_per_client)
        #: every open connection frps accepted (bind port and public ports)
        self.connections = ConnectionSet(reactor)

    def client_error(self, detailed: str, summary: str) -> str:
        """frp's ``detailedErrorsToClient``: the full reason, or only a summary."""
        return detailed if self.config.detailed_errors_to_client else summary

    # -- login -------------------------------------------------------------
    def login(self, protocol: ServerConnectionProtocol, msg: Login) -> ServerControl | None:
        """Check a Login; on success the returned control owns the connection."""
        try:
            self._check_login(msg)
        except LoginRefused as e:
            assert protocol.transport is not None  # a connected protocol sent the Login
            logs.throttle.warn(self.log, "login refused", "login from {peer} refused: {why}",
                               peer=protocol.transport.getPeer(), why=str(e))
            protocol.send(LoginResp(version=FRP_PROTOCOL_VERSION, error=str(e)))
            protocol.close()
            return None
        run_id = msg.run_id or os.urandom(8).hex()
        old = self.controls.get(run_id)
        if old is not None:
            old.replace()
        control = ServerControl(self, protocol, msg, run_id)
        self.controls[run_id] = control
        control.start()
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

    # -- work connections ---------------------------------------------------
    def work_connection(self, protocol: ServerConnectionProtocol, msg: NewWorkConn) -> ServerWorkConnection | None:
        control = self.controls.get(msg.run_id)
        error = ""
        if control is None:
            error = f"no client control found for run id [{msg.run_id}]"
        elif "NewWorkConns" in self.config.auth.additional_scopes and not verify_privilege_key(
                self.config.auth.token, msg.timestamp, msg.privilege_key):
            error = self.client_error("token in NewWorkConn doesn't match token from configuration",
                                      "invalid NewWorkConn")
        if control is None or error:
            assert protocol.transport is not None  # a connected protocol sent the NewWorkConn
            logs.throttle.warn(self.log, "work connection refused", "work connection from {peer} refused: {why}",
                               peer=protocol.transport.getPeer(), why=error)
            protocol.send(StartWorkConn(error=error))
            protocol.close()
            return None
        work = ServerWorkConnection(control, protocol)
        if not control.pool.add(work):
            self.log.debug("client [{run_id}]: work connection pool full, closed one", run_id=control.run_id)
            return None
        return work

    # -- proxies ---------------------------------------------------------------
    def _proxy_class(self, kind: str) -> type[ProxyBase] | None:
        if kind == "tcp":
            return TcpProxy
        if kind in ("stcp", "sudp"):
            return SecretProxy
        if kind == "udp":
            from frptx.server.udp import UdpProxy

            return UdpProxy
        return None

    def register_proxy(self, control: ServerControl, msg: NewProxy) -> Deferred[NewProxyResp]:
        """Create the proxy (opening its public port if it has one); fires with the NewProxyResp.

        The proxy is not started yet: the control sends the NewProxyResp first and
        then calls ``proxy.start()``, so nothing reaches frpc about a proxy before
        frpc has heard that it exists.
        """
        name = msg.proxy_name
        kind = msg.proxy_type or "tcp"

        def refusal(why: str) -> NewProxyResp:
            self.log.warn("client [{run_id}]: proxy [{name}] refused: {why}", run_id=control.run_id, name=name,
                          why=why)
            return NewProxyResp(proxy_name=name, error=self.client_error(why, f"new proxy [{name}] error"))

        proxy_class = self._proxy_class(kind)
        if not name:
            return succeed(refusal("proxy name is empty"))
        if proxy_class is None:
            return succeed(refusal(f"proxy type [{kind}] is not supported by this server"))
        if name in self.proxies or name in self._pending_names:
            return succeed(refusal(f"proxy [{name}] already exists"))
        if proxy_class is SecretProxy:
            return succeed(self._registered(control, SecretProxy(control, msg)))
        ports = self.udp_ports if kind == "udp" else self.ports

        def port_refusal(why: str) -> NewProxyResp:
            # frps's udp proxy reports its port manager's errors as "acquire port N error: ..."
            return refusal(f"acquire port {msg.remote_port} error: {why}" if kind == "udp" else why)

        try:
            candidates = ports.candidates(name, msg.remote_port, control.run_id)
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
            proxy = proxy_class(control, msg)
            error = "port unavailable"
            for port in candidates:
                if port and port in ports.used:
                    error = "port already used"
                    continue
                try:
                    proxy.listen(port, self.config.proxy_bind_addr)
                except (CannotListenError, OverflowError, ValueError, OSError):
                    continue
                ports.acquire(proxy.remote_port, name, control.run_id)
                return self._registered(control, proxy)
            return port_refusal(error if msg.remote_port else "no available port")

        def failed(failure: Failure) -> NewProxyResp:
            # whatever went wrong, frpc gets an answer and frps a traceback in its log
            self._pending_names.discard(name)
            self.log.failure("client [{run_id}]: registering proxy [{name}] failed", failure,
                             run_id=control.run_id, name=name)
            return NewProxyResp(proxy_name=name, error=self.client_error(
                f"internal error: {failure.getErrorMessage()}", f"new proxy [{name}] error"))

        return ports.wait_released(candidates).addCallback(bind).addErrback(failed)

    def _registered(self, control: ServerControl, proxy: ProxyBase) -> NewProxyResp:
        self.proxies[proxy.name] = proxy
        control.proxies[proxy.name] = proxy
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
        if not isinstance(proxy, SecretProxy):
            error = f"custom listener for [{name}] doesn't exist"
        elif not verify_privilege_key(proxy.msg.sk, msg.timestamp, msg.sign_key):
            error = f"visitor connection of [{name}] auth failed"
        elif msg.run_id:
            visitor_control = self.controls.get(msg.run_id)
            if visitor_control is None:
                error = f"no client control found for run id [{msg.run_id}]"
            else:
                user = visitor_control.login.user
        if not error and isinstance(proxy, SecretProxy) and not proxy.allows(user):
            error = f"visitor connection of [{name}] user [{user}] not allowed"
        if error:
            assert protocol.transport is not None  # a connected protocol sent the NewVisitorConn
            logs.throttle.warn(self.log, "visitor connection refused", "visitor connection from {peer} refused: {why}",
                               peer=protocol.transport.getPeer(), why=error)
            protocol.send(NewVisitorConnResp(proxy_name=name, error=error))
            protocol.close()
            return
        assert isinstance(proxy, SecretProxy)
        protocol.send(NewVisitorConnResp(proxy_name=name))
        protocol.switch_to_raw()
        join_to_work_connection(proxy, protocol,
                                stream_codec(proxy.msg.sk, msg.use_encryption, msg.use_compression))

    def close_proxy(self, control: ServerControl, name: str) -> None:
        proxy = control.proxies.pop(name, None)
        if proxy is None:
            return
        if self.proxies.get(name) is proxy:
            del self.proxies[name]
        ports = self.udp_ports if proxy.kind == "udp" else self.ports
        closed = proxy.close()
        if proxy.remote_port:
            ports.release(proxy.remote_port, closed)
        self.log.info("client [{run_id}]: proxy [{name}] closed (in {inb} bytes, out {outb} bytes)",
                      run_id=control.run_id, name=name, inb=proxy.counter.inbound, outb=proxy.counter.outbound)

    def close(self) -> Deferred[None]:
        """Drop every client (frps stopping); fires when all public ports are closed."""
        pending: list[Deferred[None]] = []
        for control in list(self.controls.values()):
            for name in list(control.proxies):
                proxy = control.proxies[name]
                d = proxy.close()
                if d is not None:
                    pending.append(d)
            control.close()
        return gatherResults(pending).addCallback(lambda _: None)
