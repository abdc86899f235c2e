# -*- test-case-name: frptx.test.test_e2e_vhost_tcpmux -*-
"""frps's tcpmux ``httpconnect``: one ``tcpmuxHTTPConnectPort`` shared by every ``tcpmux`` proxy.

Each connection opens with ``CONNECT host:port HTTP/1.1``
(:class:`frptx.vhost.httpconnect.ConnectReader`); it is routed on the host
(domain rules as http, location "", ``routeByHTTPUser`` matched against the
Proxy-Authorization user) and then relayed raw over a work connection of the
proxy, as a tcp user.  frp 0.65.0's order (see ``frptx.vhost.httpconnect``):
not a CONNECT -> closed silently; no route -> frp's 404 (``custom404Page`` if
set) and close; ``200 OK`` unless ``tcpmuxPassthrough``; then the proxy's
httpUser/httpPassword or ``407`` and close; with passthrough the backend gets
the CONNECT head too.
"""
from __future__ import annotations

from typing import Any

from frptx import logs
from frptx.config import ServerConfig
from frptx.protocols.tracking import ConnectionSet
from frptx.server.vhost_http import _read_page
from frptx.server.vhost_https import DomainVhost, FirstBytesRouter, RouterVhostService
from frptx.vhost.httpconnect import (
    CONNECT_OK,
    PROXY_AUTH_REQUIRED,
    ConnectError,
    ConnectReader,
    NeedMore,
    check_auth,
    not_found_response,
)

log = logs.logger(__name__)

#: how long a client has to send its CONNECT head (frp's vhost read timeout)
CONNECT_TIMEOUT = 30.0


class TcpmuxVhost(DomainVhost):
    """The routes of every tcpmux (httpconnect) proxy: domain and routeByHTTPUser."""

    hello_timeout = CONNECT_TIMEOUT

    def __init__(self, config: ServerConfig, reactor: Any) -> None:
        super().__init__(config, reactor)
        self.not_found_page = _read_page(config.custom_404_page)

    def route_key(self, msg: Any) -> tuple[str, tuple[str, ...]]:
        # a group's members must also share httpUser/httpPassword (frps's TCPMuxGroup)
        return msg.route_by_http_user, (msg.http_user, msg.http_pwd)


class ConnectProtocol(FirstBytesRouter):
    """A user of tcpmuxHTTPConnectPort: read the CONNECT, route it, then relay like a tcp user."""

    vhost: TcpmuxVhost

    def __init__(self, vhost: TcpmuxVhost, tracker: ConnectionSet | None = None) -> None:
        super().__init__(vhost, tracker)
        self.reader = ConnectReader()

    def examine(self, data: bytes) -> None:
        try:
            request = self.reader.feed(data)
        except ConnectError as e:
            log.debug("tcpmux: closing {peer}: {error}", peer=self.transport.getPeer(),  # type: ignore[union-attr]
                      error=str(e))
            self.refuse(b"")
            return
        if isinstance(request, NeedMore):
            return
        proxy = self.vhost.lookup(request.host, request.user)
        if proxy is None:
            log.debug("tcpmux: no route for {host!r}", host=request.host)
            self.refuse(not_found_response(self.vhost.not_found_page))
            return
        passthrough = self.vhost.config.tcpmux_passthrough
        if not passthrough:
            self.transport.write(CONNECT_OK)  # type: ignore[union-attr]  # frp answers before checking auth
        if not check_auth(proxy.msg.http_user, proxy.msg.http_pwd, request.user, request.password):
            self.refuse(PROXY_AUTH_REQUIRED)
            return
        self.hand_to(proxy, self.reader.buffered if passthrough else request.trailing)


class TcpmuxVhostService(RouterVhostService):
    """frps's ``tcpmuxHTTPConnectPort`` listener (on ``proxyBindAddr``): routed by the CONNECT request."""

    name = "vhost-tcpmux"
    what = "tcpmuxHTTPConnectPort"
    router = ConnectProtocol

    def __init__(self, vhost: TcpmuxVhost, reactor: Any, connections: ConnectionSet | None = None,
                 on_fatal: Any = None) -> None:
        super().__init__(vhost, reactor, vhost.config.tcpmux_http_connect_port, connections, on_fatal)
