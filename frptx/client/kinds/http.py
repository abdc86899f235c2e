# -*- test-case-name: frptx.test.test_e2e_vhost_http -*-
"""http (and https, tcpmux) proxies on frpc: the NewProxy carries the routing (domains, locations, auth,
rewrites, which frps applies); each work connection carries one HTTP exchange that
frpc relays to the local service without parsing it, as frp's frpc does."""
from __future__ import annotations

from typing import Any

from frptx.client.kinds.registry import ClientKind, register
from frptx.client.kinds.tcp import relay_to_local


def domain_fields(proxy: Any) -> dict[str, Any]:
    """http, https, tcpmux proxies name the domains frps routes to them."""
    return {"custom_domains": tuple(proxy.custom_domains), "subdomain": proxy.subdomain}


def http_fields(proxy: Any) -> dict[str, Any]:
    return {
        **domain_fields(proxy),
        "locations": tuple(proxy.locations),
        "http_user": proxy.http_user,
        "http_pwd": proxy.http_password,
        "host_header_rewrite": proxy.host_header_rewrite,
        "headers": dict(proxy.request_headers),
        "response_headers": dict(proxy.response_headers),
        "route_by_http_user": proxy.route_by_http_user,
    }


KIND = register(ClientKind("http", http_fields, relay_to_local))
#: https: frps routes the TLS stream by SNI and relays it untouched; frpc relays it like tcp
HTTPS = register(ClientKind("https", domain_fields, relay_to_local))


def tcpmux_fields(proxy: Any) -> dict[str, Any]:
    return {
        **domain_fields(proxy),
        "http_user": proxy.http_user,
        "http_pwd": proxy.http_password,
        "route_by_http_user": proxy.route_by_http_user,
        "multiplexer": proxy.multiplexer,
    }


#: tcpmux: frps routes the CONNECT, then the stream is raw; frpc relays it like tcp
TCPMUX = register(ClientKind("tcpmux", tcpmux_fields, relay_to_local))
