# -*- test-case-name: frptx.test.test_plugin_http -*-
"""``http2http``, ``http2https``, ``https2http``, ``https2https``: reverse proxies to ``localAddr``.

Go frp runs ``httputil.ReverseProxy`` with a ``Rewrite`` hook, whose rules
(observable at the backend) are:

* the outbound request drops the client's ``Forwarded`` and
  ``X-Forwarded-*`` fields, then the plugin puts back: nothing
  (``http2http``); the client's own ``X-Forwarded-For/Host/Proto`` values
  unchanged (``http2https``); for the TLS-terminating ``https2*`` plugins,
  ``SetXForwarded``: the client's X-Forwarded-For plus the user's IP,
  ``X-Forwarded-Host`` = the request's Host, ``X-Forwarded-Proto: https``;
* hop-by-hop fields go (upgrades are kept), ``hostHeaderRewrite`` replaces
  Host, ``requestHeaders.set`` sets fields (canonical names);
* an unreachable backend gets ``502 Bad Gateway`` with an empty body;
* ``https2*`` answer ``421 Misdirected Request`` when the TLS server name
  (SNI) is not the request's host.

``enableHTTP2`` (``https2*``, default true): frptx's stack has no HTTP/2
server, so the TLS server offers only ``http/1.1`` by ALPN (clients then speak
HTTP/1.1, which every HTTP/2 client supports) and says so at start-up.
"""
from __future__ import annotations

from typing import Any, ClassVar

from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.python.failure import Failure

from frptx import logs
from frptx.client.plugins.base import ClientPlugin, split_host_port
from frptx.client.plugins.tls import InsecureClientCreator, server_options, tls_server_factory
from frptx.protocols.httpforward import Forward, HTTPForwardFactory, HTTPForwardProtocol, go_reply, origin_form
from frptx.vhost.http1 import RequestHead, get_header, header_values, remove_headers, set_header
from frptx.vhost.rewrite import canonical_header_key, http_date, rewrite_request
from frptx.vhost.routing import canonical_host

_FORWARDED = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto")

log = logs.logger(__name__)


class ReverseRoute:
    """Every request to ``localAddr``, rewritten by frp's rules for the plugin."""

    def __init__(self, reactor: Any, host: str, port: int, *, backend_tls: bool, front_tls: bool,
                 pass_forwarded: bool, host_rewrite: str, set_headers: dict[str, str]) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port
        self.backend_tls = backend_tls
        self.front_tls = front_tls
        self.pass_forwarded = pass_forwarded
        self.host_rewrite = host_rewrite
        self.set_headers = set_headers

    def endpoint(self) -> IStreamClientEndpoint:
        endpoint: IStreamClientEndpoint = HostnameEndpoint(self.reactor, self.host, self.port, timeout=30)
        if self.backend_tls:
            endpoint = wrapClientTLS(InsecureClientCreator(self.host), endpoint)
        return endpoint

    def route(self, head: RequestHead, conn: HTTPForwardProtocol) -> Forward | bytes:
        if self.front_tls:
            misdirected = self._misdirected(head, conn)
            if misdirected is not None:
                return misdirected
        original = head.headers
        if self.front_tls:
            out = rewrite_request(head, client_ip=conn.client_ip(), tls=True, host_rewrite=self.host_rewrite)
        else:
            out = rewrite_request(head, client_ip=None, host_rewrite=self.host_rewrite)
            headers = remove_headers(out.headers, _FORWARDED)
            if self.pass_forwarded:
                for name in _FORWARDED[1:]:
                    headers += tuple((name, v) for v in header_values(original, name))
            out = RequestHead(out.method, out.target, out.version, headers)
        headers = out.headers
        if get_header(headers, "Host") is None and head.version == "HTTP/1.0":
            headers += (("Host", f"{self.host}:{self.port}"),)
        for name, value in self.set_headers.items():
            if name.lower() in ("host", "content-length", "transfer-encoding", "trailer"):
                continue  # Go writes these from the request itself, never from the header map
            headers = set_header(headers, canonical_header_key(name), value)
        return Forward(self.endpoint(), RequestHead(out.method, origin_form(out.target), out.version, headers))

    def _misdirected(self, head: RequestHead, conn: HTTPForwardProtocol) -> bytes | None:
        handle = getattr(conn.transport, "getHandle", None)
        server_name = None
        if handle is not None:
            try:
                raw = handle().get_servername()
            except Exception:
                raw = None
            server_name = raw.decode("ascii", "replace") if raw else None
        if not server_name:
            return None
        if canonical_host(server_name) != canonical_host(get_header(head.headers, "Host") or ""):
            return go_reply(self._date(), head, 421)
        return None

    def _date(self) -> str:
        return http_date(self.reactor.seconds())

    def error_reply(self, head: RequestHead, reason: Failure, date: str) -> bytes:
        return go_reply(date, head, 502)


class _ReversePlugin(ClientPlugin):
    option_names: ClassVar[tuple[str, ...]] = ("localAddr", "hostHeaderRewrite", "requestHeaders")
    required: ClassVar[tuple[str, ...]] = ("localAddr",)
    front_tls: ClassVar[bool] = False
    backend_tls: ClassVar[bool] = False
    pass_forwarded: ClassVar[bool] = False

    def __init__(self, options: Any, prefix: str = "plugin") -> None:
        super().__init__(options, prefix)
        self.host, self.port = split_host_port(self.option_str("localAddr"), f"{prefix}.localAddr")
        self.host_rewrite = self.option_str("hostHeaderRewrite")
        self.set_headers = self.option_headers("requestHeaders")
        self.tls_options: Any = None
        if self.front_tls:
            self.enable_http2 = self.option_bool("enableHTTP2", True)
            self.tls_options = server_options(self.option_str("crtPath"), self.option_str("keyPath"), prefix,
                                              alpn=[b"http/1.1"])

    def build(self, reactor: Any) -> IProtocolFactory:
        route = ReverseRoute(reactor, self.host, self.port, backend_tls=self.backend_tls,
                             front_tls=self.front_tls, pass_forwarded=self.pass_forwarded,
                             host_rewrite=self.host_rewrite, set_headers=self.set_headers)
        factory: IProtocolFactory = HTTPForwardFactory(reactor, route)
        if self.front_tls:
            if self.enable_http2:
                log.info("plugin {name}: enableHTTP2 is set but frptx serves HTTP/1.1 only "
                         "(ALPN offers http/1.1; HTTP/2 clients fall back to it)", name=self.name)
            factory = tls_server_factory(self.tls_options, factory, reactor)
        return factory


class HTTP2HTTPPlugin(_ReversePlugin):
    name: ClassVar[str] = "http2http"


class HTTP2HTTPSPlugin(_ReversePlugin):
    name: ClassVar[str] = "http2https"
    backend_tls: ClassVar[bool] = True
    pass_forwarded: ClassVar[bool] = True


class HTTPS2HTTPPlugin(_ReversePlugin):
    name: ClassVar[str] = "https2http"
    option_names: ClassVar[tuple[str, ...]] = _ReversePlugin.option_names + ("enableHTTP2", "crtPath", "keyPath")
    front_tls: ClassVar[bool] = True


class HTTPS2HTTPSPlugin(HTTPS2HTTPPlugin):
    name: ClassVar[str] = "https2https"
    backend_tls: ClassVar[bool] = True
