# -*- test-case-name: frptx.test.test_e2e_vhost_http -*-
"""frps's ``http``, ``https`` and ``tcpmux`` proxies: routes on the shared ``vhostHTTPPort``
(``frptx.server.vhost_http``), ``vhostHTTPSPort`` (``frptx.server.vhost_https``) and
``tcpmuxHTTPConnectPort`` (``frptx.server.vhost_tcpmux``).

The proxy owns no port: at creation it adds its domains x locations (x its
``routeByHTTPUser``) to frps's ``HttpVhost``; a taken route or a bad domain
refuses the NewProxy with frp's text.  Requests arrive through the vhost, which
borrows this proxy's work connections one request at a time.  A proxy naming a
``loadBalancer.group`` shares its route with the group's other members
(``frptx.vhost.routing.GroupedRoutes``; refusals: ``group params invalid``,
``group auth failed``).
"""
from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from frptx.server.kind import ProxyKind, ProxyRefused
from frptx.server.proxies import ControlView, ProxyBase
from frptx.vhost.routing import DomainConfigError, RouteConflict, RouteGroupRefused, proxy_locations
from frptx.wire import NewProxy

#: frp's refusal when frps has no vhostHTTPPort
NOT_ENABLED = "type [http] not supported when vhost http port is not set"


class HttpProxy(ProxyBase):
    """One registered ``http`` proxy on frps."""

    kind = "http"
    #: the FrpServer attribute holding the vhost, the config attribute of its port
    vhost_attr = "http_vhost"
    port_attr = "vhost_http_port"
    not_enabled = NOT_ENABLED

    def __init__(self, control: ControlView, msg: NewProxy) -> None:
        super().__init__(control, msg)
        vhost: Any = getattr(control.server, self.vhost_attr, None)
        if vhost is None:
            raise ProxyRefused(self.not_enabled)
        try:
            domains = vhost.register(self)
        except (DomainConfigError, RouteConflict, RouteGroupRefused) as e:
            raise ProxyRefused(str(e)) from None
        self.vhost = vhost
        port = getattr(control.server.config, self.port_attr)
        per_domain = proxy_locations(msg.locations) if self.kind == "http" else [""]
        # frp's CanonicalAddr: the port is left out when it is 80 or 443
        addrs = [d if port in (80, 443) else f"{d}:{port}" for d in domains for _ in per_domain]
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
    not_enabled = "type [https] not supported when vhost https port is not set"


class TcpmuxProxy(HttpProxy):
    """One registered ``tcpmux`` proxy on frps: its domains route HTTP CONNECTs (httpconnect only)."""

    kind = "tcpmux"
    vhost_attr = "tcpmux_vhost"
    port_attr = "tcpmux_http_connect_port"
    not_enabled = "tcpmux with multiplexer httpconnect not supported because this feature is not enabled in server"

    def __init__(self, control: ControlView, msg: NewProxy) -> None:
        if msg.multiplexer != "httpconnect":
            raise ProxyRefused(f"unknown multiplexer [{msg.multiplexer}]")
        super().__init__(control, msg)


KIND = ProxyKind("http", HttpProxy)
HTTPS = ProxyKind("https", HttpsProxy)
TCPMUX = ProxyKind("tcpmux", TcpmuxProxy)
