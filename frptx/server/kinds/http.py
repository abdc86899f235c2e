# -*- test-case-name: frptx.test.test_e2e_vhost_http -*-
"""frps's ``http`` and ``https`` proxies: routes on the shared ``vhostHTTPPort``
(``frptx.server.vhost_http``) and ``vhostHTTPSPort`` (``frptx.server.vhost_https``).

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
    #: the FrpServer attribute holding the vhost, the config attribute of its port
    vhost_attr = "http_vhost"
    port_attr = "vhost_http_port"
    default_port = 80
    not_enabled = NOT_ENABLED

    def __init__(self, control: ControlView, msg: NewProxy) -> None:
        super().__init__(control, msg)
        vhost: Any = getattr(control.server, self.vhost_attr, None)
        if vhost is None:
            raise ProxyRefused(self.not_enabled)
        try:
            domains = vhost.register(self)
        except (DomainConfigError, RouteConflict) as e:
            raise ProxyRefused(str(e)) from None
        self.vhost = vhost
        port = getattr(control.server.config, self.port_attr)
        per_domain = proxy_locations(msg.locations) if self.kind == "http" else [""]
        addrs = [d if port == self.default_port else f"{d}:{port}" for d in domains for _ in per_domain]
        self._remote_addr = ",".join(addrs)

    @property
    def remote_addr(self) -> str:
        return self._remote_addr

    def close(self) -> Deferred[None] | None:
        if not self.closed:
            self.vhost.unregister(self)
        return super().close()


class HttpsProxy(HttpProxy):
    """One registered ``https`` proxy on frps: its domains route TLS connections by SNI."""

    kind = "https"
    vhost_attr = "https_vhost"
    port_attr = "vhost_https_port"
    default_port = 443
    not_enabled = "type [https] not supported when vhost https port is not set"


KIND = ProxyKind("http", HttpProxy)
HTTPS = ProxyKind("https", HttpsProxy)
