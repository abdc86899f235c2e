# -*- test-case-name: frptx.test.test_e2e -*-
"""``FrpsService``: the frps process as a Twisted ``MultiService``.

It owns the ``FrpServer`` state; its children are the listeners, today the bind
port (``BindPortService``), later the web server and health checks as siblings.
``startService`` fails loudly (``on_fatal``) when the bind port cannot be opened;
``stopService`` returns a Deferred that fires once the bind port and every proxy
port are closed.
"""
from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort

from frptx import logs
from frptx.config import ConfigError, ServerConfig, load_server_config
from frptx.factories.server import DEFAULT_TIMEOUTS, BindPortTimeouts, bind_port_factory
from frptx.protocols.tuning import LISTEN_BACKLOG
from frptx.server.kinds.udp import UdpTiming
from frptx.server.plugins import CallablePlugin, PluginCallable, ServerPlugin
from frptx.server.registry import FrpServer
from frptx.server.vhost_http import HttpVhostService, starts_with_http_method
from frptx.server.vhost_https import HttpsVhostService, names_an_https_route
from frptx.server.vhost_tcpmux import TcpmuxVhostService
from frptx.transport.address import bound_port
from frptx.transport.certs import TLSConfigError
from frptx.transport.sniff import Rule


class BindPortService(Service):
    """frps's bind port (``bindAddr:bindPort``): frpc's control, work and visitor connections."""

    log = logs.logger(__name__)
    name = "bind-port"

    def __init__(self, server: FrpServer, reactor: Any, on_fatal: Callable[[str], None] | None = None,
                 timeouts: BindPortTimeouts = DEFAULT_TIMEOUTS, shared: Sequence[Rule] = ()) -> None:
        self.server = server
        #: vhosts that share this port (their first-bytes rules come before frp's own)
        self.shared = tuple(shared)
        self.reactor = reactor
        self.port: IListeningPort | None = None
        self._on_fatal = on_fatal
        #: bind-port timeouts (frps's defaults; tests shorten them)
        self.timeouts = timeouts

    @property
    def bound_port(self) -> int:
        assert self.port is not None
        return bound_port(self.port)

    def startService(self) -> None:
        """Listen; a port in use or a bad TLS setup is reported to ``on_fatal`` (or raised)."""
        super().startService()
        cfg = self.server.config
        try:
            factory = bind_port_factory(self.server, self.reactor, self.timeouts, self.shared)
            self.port = self.reactor.listenTCP(cfg.bind_port, factory, interface=cfg.bind_addr,
                                               backlog=LISTEN_BACKLOG)
        except (CannotListenError, TLSConfigError) as e:
            if isinstance(e, CannotListenError):
                message = f"frps cannot listen on {cfg.bind_addr}:{cfg.bind_port}: {e.socketError}"
            else:
                message = f"frps TLS setup failed: {e}"
            self.log.critical("{message}", message=message)
            if self._on_fatal is None:
                raise
            self._on_fatal(message)
            return
        mode = ["tcpMux" if cfg.transport.tcp_mux else "no tcpMux",
                "TLS only" if cfg.transport.tls.force or cfg.transport.tls.trusted_ca_file else "plain or TLS"]
        self.log.info("frps listening on {addr}:{port} ({mode})", addr=cfg.bind_addr, port=self.bound_port,
                      mode=", ".join(mode))

    def stopService(self) -> Deferred[Any] | None:
        """Stop listening; fires when the port is closed."""
        super().stopService()
        port = self.port
        if port is None:
            return None
        return maybeDeferred(lambda: port.stopListening())


class FrpsService(MultiService):
    """frps: listen on ``bindAddr:bindPort`` and serve frp clients."""

    log = logs.logger(__name__)

    name = "frps"

    def __init__(self, config: ServerConfig, reactor: Any = None,
                 on_fatal: Callable[[str], None] | None = None,
                 timeouts: BindPortTimeouts = DEFAULT_TIMEOUTS, udp_timing: UdpTiming | None = None,
                 config_path: str | None = None, install_sighup: bool = False,
                 plugins: Iterable[ServerPlugin] = ()) -> None:
        super().__init__()
        self.config_path = config_path
        self._install_sighup = install_sighup
        self._previous_sighup: Any = None
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.config = config
        self.reactor = reactor
        #: ``plugins`` are asked after the config's ``httpPlugins`` (see ``frptx.server.plugins``)
        self.server = FrpServer(config, reactor, udp_timing=udp_timing, plugins=plugins)
        self.vhost_http: HttpVhostService | None = None
        self.vhost_https: HttpsVhostService | None = None
        shared: list[Rule] = []  # vhosts on frps' bind port, as frp allows (vhostHTTPPort == bindPort)
        if self.server.http_vhost is not None:
            self.vhost_http = HttpVhostService(self.server.http_vhost, reactor, on_fatal)
            if self.vhost_http.shares_bind_port:
                shared.append(Rule(starts_with_http_method, self.vhost_http.shared_factory(), name="HTTP vhost"))
        if self.server.https_vhost is not None:
            self.vhost_https = HttpsVhostService(self.server.https_vhost, reactor, self.server.connections, on_fatal)
            if self.vhost_https.shares_bind_port:
                shared.append(Rule(names_an_https_route(self.server.https_vhost), self.vhost_https.shared_factory(),
                                   name="HTTPS vhost"))
        self.bind_port = BindPortService(self.server, reactor, on_fatal, timeouts, shared)
        self.bind_port.setServiceParent(self)
        for vhost in (self.vhost_http, self.vhost_https):
            if vhost is not None:
                vhost.setServiceParent(self)
        self.vhost_tcpmux: TcpmuxVhostService | None = None
        if self.server.tcpmux_vhost is not None:
            self.vhost_tcpmux = TcpmuxVhostService(self.server.tcpmux_vhost, reactor, self.server.connections,
                                                   on_fatal)
            self.vhost_tcpmux.setServiceParent(self)
        self.web: Any = None
        web = config.web_server
        if web.port:
            from frptx.server.dashboard import FrpsWebState
            from frptx.web.server import WebServerService, site_from_config

            site = site_from_config("frps", FrpsWebState(self.server), web,
                                    enable_prometheus=config.enable_prometheus, clock=reactor)
            self.web = WebServerService(site, reactor, web.addr, web.port, web.tls_cert_file, web.tls_key_file,
                                        what="dashboard", on_fatal=on_fatal)
            self.web.setServiceParent(self)

    def add_plugin(self, plugin: ServerPlugin) -> None:
        """Ask ``plugin`` too (an ``HTTPPlugin``, a ``CallablePlugin``, ...), after those already registered."""
        self.server.add_plugin(plugin)

    def add_hook(self, name: str, ops: Iterable[str], fn: PluginCallable) -> CallablePlugin:
        """In-process server plugin: ``fn(op, content)`` returns None (allow), a ``PluginResponse`` or a
        Deferred of either (see ``frptx.server.plugins``)."""
        return self.server.add_hook(name, ops, fn)

    @property
    def port(self) -> IListeningPort | None:
        """The bind port's listening socket (None until started)."""
        return self.bind_port.port

    @property
    def timeouts(self) -> BindPortTimeouts:
        """The bind port's timeouts (frps's defaults; tests shorten them)."""
        return self.bind_port.timeouts

    @property
    def bound_port(self) -> int:
        """The bind port actually listened on (useful with ``bindPort: 0`` in tests)."""
        return self.bind_port.bound_port

    def startService(self) -> None:
        # before the children start: once "frps listening" is logged, a SIGHUP must reload, not kill
        if self._install_sighup and hasattr(signal, "SIGHUP"):
            self._previous_sighup = signal.signal(
                signal.SIGHUP, lambda *_: self.reactor.callFromThread(self.reload))
        super().startService()

    def reload(self) -> bool:
        """Re-read ``config_path`` and apply what can change safely on a running frps.

        Applied: ``auth.token`` (for new logins; clients already logged in keep their
        keys), ``allowPorts`` and ``maxPortsPerClient`` (for new proxies), the dashboard's
        ``webServer.user``/``password``.  Any other difference is logged as needing a
        restart.  An invalid file changes nothing.  (frp has no frps reload: #1145.)
        """
        if self.config_path is None:
            self.log.warn("reload requested but frps was not started from a config file")
            return False
        try:
            loaded = load_server_config(self.config_path)
        except ConfigError as e:
            self.log.error("reload of {path} rejected, nothing changed:\n{errors}", path=self.config_path,
                           errors=str(e))
            return False
        merged, restart = reloadable_part(self.config, loaded)
        applied = [key for key, old, new in (
            ("auth.token", self.config.auth.token, merged.auth.token),
            ("allowPorts", self.config.allow_ports, merged.allow_ports),
            ("maxPortsPerClient", self.config.max_ports_per_client, merged.max_ports_per_client),
            ("webServer credentials", (self.config.web_server.user, self.config.web_server.password),
             (merged.web_server.user, merged.web_server.password))) if old != new]
        self.config = self.server.config = merged
        for ingresses in self.server.ingresses.values():
            ingresses.ports.allow = tuple(merged.allow_ports)
            ingresses.ports.max_per_client = merged.max_ports_per_client
        if self.web is not None:
            self.web.site.resource.set_credentials(merged.web_server.user, merged.web_server.password)
        self.log.info("reload of {path}: applied {applied}{restart}", path=self.config_path,
                      applied=", ".join(applied) or "no change",
                      restart=f"; needs a restart to change: {', '.join(restart)}" if restart else "")
        return True

    def stopService(self) -> Deferred[None]:
        """Close the bind port, every proxy port and every connection; fires when all are gone."""
        if self._previous_sighup is not None:
            signal.signal(signal.SIGHUP, self._previous_sighup)
            self._previous_sighup = None
        pending: list[Deferred[Any]] = [self.server.close(), super().stopService()]
        pending.append(self.server.connections.close_all())
        return gatherResults(pending).addCallback(lambda _: None)


#: what ``FrpsService.reload`` applies to a running frps; everything else needs a restart
RELOADABLE = ("auth.token", "allowPorts", "maxPortsPerClient", "webServer.user", "webServer.password")


def reloadable_part(running: ServerConfig, loaded: ServerConfig) -> tuple[ServerConfig, list[str]]:
    """``running`` with the reloadable settings of ``loaded``, and the keys that differ otherwise."""
    merged = dataclasses.replace(
        running, auth=dataclasses.replace(running.auth, token=loaded.auth.token),
        allow_ports=loaded.allow_ports, max_ports_per_client=loaded.max_ports_per_client,
        web_server=dataclasses.replace(running.web_server, user=loaded.web_server.user,
                                       password=loaded.web_server.password))
    restart = [f.name for f in dataclasses.fields(loaded) if getattr(merged, f.name) != getattr(loaded, f.name)]
    return merged, restart
