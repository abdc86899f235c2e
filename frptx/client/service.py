# -*- test-case-name: frptx.test.test_e2e -*-
"""``FrpcService``: the frpc process as a Twisted service.

It owns the ``FrpClient`` (login connector); its children are the listeners:
the ``ProxyManager`` (SIGHUP reloads the proxies) and, once the first login
succeeded, one child per visitor (``StcpVisitor``, ``SudpVisitor``).
``stopService`` stops the children, stops reconnecting and closes the session.
"""
from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, fail, gatherResults, maybeDeferred
from twisted.internet.error import CannotListenError

from frptx import logs
from frptx.client.backoff import LOGIN_BACKOFF, BackoffPolicy
from frptx.client.client import FrpClient
from frptx.client.kinds.plugin_host import check_plugins
from frptx.config import ClientConfig, ConfigError, VisitorConfig


def visitor_type(name: str) -> Callable[[FrpClient, VisitorConfig], Service]:
    """The listener service of visitor type ``name`` (``xtcp`` is served as ``stcp``).

    Imported here: the visitors (and frpc's UDP code) are not kept by a frpc without them.
    """
    if name == "sudp":
        from frptx.client.udp import SudpVisitor

        return SudpVisitor
    from frptx.client.visitors import StcpVisitor

    return StcpVisitor


def tls_wrapper(config: ClientConfig) -> Any:
    """The factory wrapper adding TLS (and frp's 0x17 first byte) when enabled."""
    tls = config.transport.tls
    if not tls.enable:
        return None
    from frptx.transport.tls_client import wrap_client_factory
    from frptx.transport.tls_context import client_connection_creator

    creator = client_connection_creator(server_addr=config.server_addr, server_name=tls.server_name,
                                        cert_file=tls.cert_file, key_file=tls.key_file,
                                        trusted_ca_file=tls.trusted_ca_file)
    custom = not tls.disable_custom_tls_first_byte
    return lambda factory: wrap_client_factory(factory, creator, custom_first_byte=custom)


class FrpcService(MultiService):
    """frpc: log in to frps, keep the proxies registered, serve work connections."""

    log = logs.logger(__name__)
    name = "frpc"

    def __init__(self, config: ClientConfig, reactor: Any = None, config_path: str | None = None,
                 on_fatal: Callable[[str], None] | None = None, install_sighup: bool = False,
                 login_backoff: BackoffPolicy = LOGIN_BACKOFF) -> None:
        super().__init__()
        check_plugins(config)
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor = reactor
        self.client = FrpClient(config, reactor, on_fatal=on_fatal, tls_wrap=tls_wrapper(config),
                                login_backoff=login_backoff)
        self.proxy_manager = self.client.proxy_manager
        self.proxy_manager.config_path = config_path
        self.proxy_manager.setServiceParent(self)
        self._install_sighup = install_sighup
        self._previous_sighup: Any = None
        self.visitors: dict[str, Any] = {}
        self._visitors_started = False
        self.web: Any = None
        web = config.web_server
        if web.port:
            from frptx.client.admin import FrpcWebState
            from frptx.web.server import WebServerService, site_from_config

            state = FrpcWebState(self, stop=lambda: reactor.callLater(0.1, reactor.stop))
            self.web = WebServerService(site_from_config("frpc", state, web, clock=reactor), reactor, web.addr,
                                        web.port, web.tls_cert_file, web.tls_key_file, what="admin API",
                                        on_fatal=on_fatal)
            self.web.setServiceParent(self)

    def startService(self) -> None:
        super().startService()
        cfg = self.client.config
        if cfg.transport.tls.enable and not cfg.transport.tls.trusted_ca_file:
            from frptx.transport.tls_context import INSECURE_WARNING

            self.log.warn("{message}", message=INSECURE_WARNING)
        if self._install_sighup and hasattr(signal, "SIGHUP"):
            self._previous_sighup = signal.signal(
                signal.SIGHUP, lambda *_: self.reactor.callFromThread(self._reload_logged))
        self.client.start()
        # like Go frpc, visitor ports open only once logged in: a visitor connection
        # needs the run id (frps checks the visitor's user by it)
        self.client.when_logged_in().addCallback(lambda _: self._start_visitors())

    def _start_visitors(self) -> None:
        if not self.running or self._visitors_started:
            return
        self._visitors_started = True
        for v in self.client.config.active_visitors():
            self._start_visitor(v)

    def _start_visitor(self, v: VisitorConfig) -> None:
        visitor = visitor_type(v.type)(self.client, v)
        try:
            visitor.setServiceParent(self)
        except CannotListenError as e:
            self.log.error("visitor [{name}] cannot listen on {addr}:{port}: {why}", name=v.name,
                           addr=v.bind_addr, port=v.bind_port, why=e.socketError)
            visitor.disownServiceParent()
            return
        self.visitors[v.name] = visitor

    # -- reload (SIGHUP and the admin API) -------------------------------------------
    def reload(self) -> Deferred[None]:
        """Re-read the config file: proxies diffed by name (``ProxyManager.apply``), visitors too.

        Fails with ``frptx.config.ConfigError`` (nothing changed) when the file does not load.
        Removed and changed visitors stop listening before changed and new ones start, so a
        visitor may keep its port.
        """
        path = self.proxy_manager.config_path
        if path is None:
            return fail(ConfigError([("<reload>", "frpc was not started from a config file")]))
        try:
            new_config = self.proxy_manager.loader(path)
            check_plugins(new_config)
        except ConfigError as e:
            self.log.error("reload of {path} rejected, keeping the running proxies and visitors:\n{errors}",
                           path=path, errors=str(e))
            return fail(e)
        old = {v.name: v for v in self.client.config.active_visitors()}
        self.proxy_manager.apply(new_config)
        new = {v.name: v for v in new_config.active_visitors()}
        gone = [name for name in old if new.get(name) != old[name]]
        coming = [new[name] for name in new if old.get(name) != new[name]]
        stopping = [maybeDeferred(self.visitors.pop(name).disownServiceParent)
                    for name in gone if name in self.visitors]
        if gone or coming:
            self.log.info("reload: visitors {gone} stopped, {coming} started", gone=len(gone), coming=len(coming))

        def start(_: object) -> None:
            if self._visitors_started and self.running:
                for v in coming:
                    self._start_visitor(v)

        return gatherResults(stopping).addCallback(start)

    def _reload_logged(self) -> None:
        self.reload().addErrback(lambda f: None if f.check(ConfigError) else self.log.failure("reload failed", f))

    def stopService(self) -> Any:
        if self._previous_sighup is not None:
            signal.signal(signal.SIGHUP, self._previous_sighup)
            self._previous_sighup = None
        # the children (visitors, proxy manager) stop first, then the login and its connections
        stopped = maybeDeferred(super().stopService)
        visitors, self.visitors = list(self.visitors.values()), {}
        self._visitors_started = False
        for visitor in visitors:
            visitor.disownServiceParent()  # a restart opens them again after its first login
        return gatherResults([stopped, self.client.stop()]).addCallback(lambda _: None)
