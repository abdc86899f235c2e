# -*- test-case-name: frptx.test.test_e2e -*-
"""``FrpsService``: the frps process as a Twisted ``MultiService``.

It owns the ``FrpServer`` state; its children are the listeners, today the bind
port (``BindPortService``), later the web server and health checks as siblings.
``startService`` fails loudly (``on_fatal``) when the bind port cannot be opened;
``stopService`` returns a Deferred that fires once the bind port and every proxy
port are closed.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort

from frptx import logs
from frptx.config import ServerConfig
from frptx.factories.server import DEFAULT_TIMEOUTS, BindPortTimeouts, bind_port_factory
from frptx.protocols.tuning import LISTEN_BACKLOG
from frptx.server.kinds.udp import UdpTiming
from frptx.server.registry import FrpServer
from frptx.transport.address import bound_port
from frptx.transport.certs import TLSConfigError


class BindPortService(Service):
    """frps's bind port (``bindAddr:bindPort``): frpc's control, work and visitor connections."""

    log = logs.logger()
    name = "bind-port"

    def __init__(self, server: FrpServer, reactor: Any, on_fatal: Callable[[str], None] | None = None,
                 timeouts: BindPortTimeouts = DEFAULT_TIMEOUTS) -> None:
        self.server = server
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
            factory = bind_port_factory(self.server, self.reactor, self.timeouts)
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

    name = "frps"

    def __init__(self, config: ServerConfig, reactor: Any = None,
                 on_fatal: Callable[[str], None] | None = None,
                 timeouts: BindPortTimeouts = DEFAULT_TIMEOUTS, udp_timing: UdpTiming | None = None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.config = config
        self.reactor = reactor
        self.server = FrpServer(config, reactor, udp_timing=udp_timing)
        self.bind_port = BindPortService(self.server, reactor, on_fatal, timeouts)
        self.bind_port.setServiceParent(self)
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

    def stopService(self) -> Deferred[None]:
        """Close the bind port, every proxy port and every connection; fires when all are gone."""
        pending: list[Deferred[Any]] = [self.server.close(), super().stopService()]
        pending.append(self.server.connections.close_all())
        return gatherResults(pending).addCallback(lambda _: None)
