# -*- test-case-name: frptx.test.test_e2e_vhost_http -*-
"""frps's ``http`` proxy: routes on the shared ``vhostHTTPPort`` (``frptx.server.vhost_http``).

The proxy owns no port: at creation it adds its domains x locations (x its
``routeByHTTPUser``) to frps's ``HttpVhost``; a taken route or a bad domain
refuses the NewProxy with frp's text.  Requests arrive through the vhost, which
borrows this proxy's work connections one request at a time.
"""
from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from frptx.server.kind import ProxyKind, ProxyRefused
from frptx.server.proxies import ControlView, ProxyBase
from frptx.vhost.routing import DomainConfigError, RouteConflict, proxy_locations
from frptx.wire import NewProxy

#: frp's refusal when frps has no vhostHTTPPort
NOT_ENABLED = "type [http] not supported when vhost http port is not set"


class HttpProxy(ProxyBase):
    """One registered ``http`` proxy on frps."""

    kind = "http"

    def __init__(self, control: ControlView, msg: NewProxy) -> None:
        super().__init__(control, msg)
        vhost: Any = getattr(control.server, "http_vhost", None)
        if vhost is None:
            raise ProxyRefused(NOT_ENABLED)
        try:
            domains = vhost.register(self)
        except (DomainConfigError, RouteConflict) as e:
            raise ProxyRefused(str(e)) from None
        self.vhost = vhost
        port = control.server.config.vhost_http_port
        addrs = [d if port == 80 else f"{d}:{port}" for d in domains for _ in proxy_locations(msg.locations)]
        self._remote_addr = ",".join(addrs)

    @property
    def remote_addr(self) -> str:
        return self._remote_addr

    def close(self) -> Deferred[None] | None:
        if not self.closed:
            self.vhost.unregister(self)
        return super().close()


KIND = ProxyKind("http", HttpProxy)
