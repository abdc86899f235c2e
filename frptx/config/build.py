# -*- test-case-name: frptx.test.test_config -*-
"""
Turn a structurally checked document (see L{frptx.config.schema}) into the
frozen dataclasses of L{frptx.config.model}, applying frp's defaults and the
value rules frp enforces (ranges, allowed words, required keys, duplicates).

Every rule records a C{(path, reason)} error and carries on, so the user
sees all problems at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .model import (
    PROXY_CONFIG_TYPES,
    AuthConfig,
    ClientConfig,
    ClientTLSConfig,
    ClientTransportConfig,
    FrozenMap,
    HealthCheckConfig,
    HTTPPluginConfig,
    LoadBalancerConfig,
    LogConfig,
    PluginConfig,
    PortRange,
    ProxyConfig,
    ProxyTransportConfig,
    ServerConfig,
    ServerTLSConfig,
    ServerTransportConfig,
    VisitorConfig,
    VisitorTransportConfig,
    WebServerConfig,
)
from .schema import index, join

__all__ = ["build_server_config", "build_client_config"]

AUTH_METHODS = ("token", "oidc")
AUTH_SCOPES = ("HeartBeats", "NewWorkConns")
LOG_LEVELS = ("trace", "debug", "info", "warn", "error")
TRANSPORT_PROTOCOLS = ("tcp", "kcp", "quic", "websocket", "wss", "auto")
WIRE_PROTOCOLS = ("v1", "v2")
HTTP_PLUGIN_OPS = ("Login", "NewProxy", "CloseProxy", "Ping", "NewWorkConn", "NewUserConn")
#: Proxy types whose backend is a local port (unless a plugin serves it).
LOCAL_PORT_REQUIRED = ("tcp", "udp", "stcp", "sudp")
_BANDWIDTH = re.compile(r"^\d+(\.\d+)?(MB|KB)$")

Errors = list[tuple[str, str]]
Doc = Mapping[str, Any]


def _sub(doc: Doc, key: str) -> Doc:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _or(value: Any, default: Any) -> Any:
    """
    frp's C{util.EmptyOr}: a zero value (absent, 0, "") means "use the
    default", so files that spell out C{0} behave as in frp.
    """
    return default if value in (None, 0, "") and value is not False else value


def _one_of(errors: Errors, path: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        errors.append((path, f"must be one of {', '.join(allowed)}; got {value!r}"))


def _port(
    errors: Errors, path: str, value: int | None, *, allow_zero: bool, required: bool = False
) -> None:
    if value is None or (value == 0 and required):
        if required:
            errors.append((path, "required (a port in 1..65535)"))
        return
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        errors.append((path, f"port must be in {low}..65535, got {value}"))


def _non_negative(errors: Errors, path: str, value: int | None) -> None:
    if value is not None and value < 0:
        errors.append((path, f"must be >= 0, got {value}"))


def _strings(values: Any) -> tuple[str, ...]:
    return tuple(v for v in (values or ()) if isinstance(v, str))


def _frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return FrozenMap({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _snake(name: str) -> str:
    """C{hostHeaderRewrite -> host_header_rewrite}, C{enableHTTP2 -> enable_http2}."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


# ---------------------------------------------------------------------------
# shared pieces
# ---------------------------------------------------------------------------


def _auth(errors: Errors, doc: Doc, path: str) -> AuthConfig:
    method = _or(doc.get("method"), "token")
    _one_of(errors, join(path, "method"), method, AUTH_METHODS)
    scopes = doc.get("additionalScopes") or []
    for i, scope in enumerate(scopes):
        if scope is not None and scope not in AUTH_SCOPES:
            errors.append(
                (
                    index(join(path, "additionalScopes"), i),
                    f"must be one of {', '.join(AUTH_SCOPES)}; got {scope!r}",
                )
            )
    source = doc.get("tokenSource")
    if source:
        if doc.get("token"):
            errors.append((join(path, "tokenSource"), "cannot be used together with auth.token"))
        kind = source.get("type", "")
        if kind not in ("file", "exec"):
            errors.append((join(path, "tokenSource.type"), f"must be file or exec; got {kind!r}"))
        elif kind == "file" and not _sub(source, "file").get("path"):
            errors.append((join(path, "tokenSource.file.path"), "required when type is file"))
    return AuthConfig(
        method=method,
        token=doc.get("token", ""),
        additional_scopes=frozenset(_strings(scopes)) & frozenset(AUTH_SCOPES),
    )


def _log(errors: Errors, doc: Doc) -> LogConfig:
    level = _or(doc.get("level"), "info")
    _one_of(errors, "log.level", level, LOG_LEVELS)
    max_days = _or(doc.get("maxDays"), 3)
    _non_negative(errors, "log.maxDays", max_days)
    return LogConfig(
        to=_or(doc.get("to"), "console"),
        level=level,
        max_days=max_days,
        disable_print_color=doc.get("disablePrintColor", False),
    )


def _web_server(errors: Errors, doc: Doc) -> WebServerConfig:
    port = doc.get("port", 0)
    _port(errors, "webServer.port", port, allow_zero=True)
    tls = doc.get("tls")
    if tls is not None:
        for key in ("certFile", "keyFile"):
            if not tls.get(key):
                errors.append((f"webServer.tls.{key}", "required when webServer.tls is set"))
    tls = tls or {}
    return WebServerConfig(
        tls_cert_file=tls.get("certFile", ""),
        tls_key_file=tls.get("keyFile", ""),
        addr=_or(doc.get("addr"), "127.0.0.1"),
        port=port,
        user=doc.get("user", ""),
        password=doc.get("password", ""),
        assets_dir=doc.get("assetsDir", ""),
        pprof_enable=doc.get("pprofEnable", False),
    )


def _plugin(doc: Doc) -> PluginConfig:
    if not doc or not doc.get("type"):
        return PluginConfig()
    options = {k: _frozen(v) for k, v in doc.items() if k != "type"}  # frp's keys, as the plugins take them
    return PluginConfig(type=doc["type"], options=FrozenMap(options))


# ---------------------------------------------------------------------------
# frps
# ---------------------------------------------------------------------------


def _allow_ports(errors: Errors, items: list[Any]) -> tuple[PortRange, ...]:
    ranges = []
    for i, item in enumerate(items):
        if item is None:
            continue
        path = index("allowPorts", i)
        single, start, end = item.get("single"), item.get("start"), item.get("end")
        if single is not None and (start is not None or end is not None):
            errors.append((path, "use either {single} or {start, end}, not both"))
            continue
        if single is not None:
            start = end = single
        elif start is None or end is None:
            missing = "start" if start is None else "end"
            errors.append((join(path, missing), "required (use {start, end} or {single})"))
            continue
        bad = False
        for key, port in (("single", single), ("start", start), ("end", end)):
            if port is not None and key in item and not 1 <= port <= 65535:
                errors.append((join(path, key), f"port must be in 1..65535, got {port}"))
                bad = True
        if bad:
            continue
        if start > end:
            errors.append((path, f"start ({start}) must not be greater than end ({end})"))
            continue
        ranges.append(PortRange(start, end))
    return tuple(ranges)


def build_server_config(doc: Doc, errors: Errors) -> ServerConfig:
    """Build frps' configuration from a checked document, appending to C{errors}."""
    bind_addr = _or(doc.get("bindAddr"), "0.0.0.0")
    bind_port = doc.get("bindPort", 7000)
    _port(errors, "bindPort", bind_port, allow_zero=False)
    for key in ("kcpBindPort", "quicBindPort", "vhostHTTPPort", "vhostHTTPSPort", "tcpmuxHTTPConnectPort"):
        _port(errors, key, doc.get(key), allow_zero=True)
    _port(errors, "sshTunnelGateway.bindPort", _sub(doc, "sshTunnelGateway").get("bindPort"), allow_zero=True)

    t = _sub(doc, "transport")
    max_pool = t.get("maxPoolCount")
    _non_negative(errors, "transport.maxPoolCount", max_pool)
    tls = _sub(t, "tls")
    trusted_ca = tls.get("trustedCaFile", "")
    transport = ServerTransportConfig(
        tcp_mux=t.get("tcpMux", True),
        tcp_mux_keepalive_interval=_or(t.get("tcpMuxKeepaliveInterval"), 30),
        tcp_keepalive=_or(t.get("tcpKeepalive"), 7200),
        max_pool_count=_or(max_pool, 5),
        heartbeat_timeout=_or(t.get("heartbeatTimeout"), 90),
        tls=ServerTLSConfig(
            # frp: a trusted CA means client certificates are required, which
            # only makes sense when TLS itself is required.
            force=tls.get("force", False) or bool(trusted_ca),
            cert_file=tls.get("certFile", ""),
            key_file=tls.get("keyFile", ""),
            trusted_ca_file=trusted_ca,
        ),
    )

    for key in ("maxPortsPerClient", "userConnTimeout", "udpPacketSize", "vhostHTTPTimeout"):
        _non_negative(errors, key, doc.get(key))
    web_port = (doc.get("webServer") or {}).get("port") or 0
    if web_port and web_port == bind_port:
        errors.append(("webServer.port", f"{web_port} is also bindPort; the dashboard needs a port of its own"))
    http_plugins: list[HTTPPluginConfig] = []
    for i, plugin in enumerate(doc.get("httpPlugins") or []):
        if plugin is None:
            continue
        for j, op in enumerate(plugin.get("ops") or []):
            if op is not None and op not in HTTP_PLUGIN_OPS:
                errors.append(
                    (
                        index(join(index("httpPlugins", i), "ops"), j),
                        f"must be one of {', '.join(HTTP_PLUGIN_OPS)}; got {op!r}",
                    )
                )
        http_plugins.append(HTTPPluginConfig(
            name=plugin.get("name") or "", addr=plugin.get("addr") or "", path=plugin.get("path") or "",
            ops=tuple(op for op in plugin.get("ops") or [] if op), tls_verify=bool(plugin.get("tlsVerify", False))))

    return ServerConfig(
        bind_addr=bind_addr,
        bind_port=bind_port,
        proxy_bind_addr=_or(doc.get("proxyBindAddr"), bind_addr),
        auth=_auth(errors, _sub(doc, "auth"), "auth"),
        transport=transport,
        allow_ports=_allow_ports(errors, doc.get("allowPorts") or []),
        max_ports_per_client=doc.get("maxPortsPerClient", 0),
        user_conn_timeout=_or(doc.get("userConnTimeout"), 10),
        udp_packet_size=_or(doc.get("udpPacketSize"), 1500),
        detailed_errors_to_client=doc.get("detailedErrorsToClient", True),
        log=_log(errors, _sub(doc, "log")),
        kcp_bind_port=doc.get("kcpBindPort", 0),
        quic_bind_port=doc.get("quicBindPort", 0),
        vhost_http_port=doc.get("vhostHTTPPort", 0),
        vhost_https_port=doc.get("vhostHTTPSPort", 0),
        vhost_http_timeout=_or(doc.get("vhostHTTPTimeout"), 60),
        tcpmux_http_connect_port=doc.get("tcpmuxHTTPConnectPort", 0),
        tcpmux_passthrough=doc.get("tcpmuxPassthrough", False),
        subdomain_host=doc.get("subDomainHost", ""),
        custom_404_page=doc.get("custom404Page", ""),
        web_server=_web_server(errors, _sub(doc, "webServer")),
        enable_prometheus=doc.get("enablePrometheus", False),
        nathole_analysis_data_reserve_hours=_or(doc.get("natholeAnalysisDataReserveHours"), 168),
        http_plugins=tuple(http_plugins),
    )


# ---------------------------------------------------------------------------
# frpc
# ---------------------------------------------------------------------------


def _client_transport(errors: Errors, t: Doc) -> ClientTransportConfig:
    protocol = _or(t.get("protocol"), "tcp")
    _one_of(errors, "transport.protocol", protocol, TRANSPORT_PROTOCOLS)
    if protocol == "auto" and not _sub(t, "auto").get("enabled"):
        errors.append(("transport.auto.enabled", "must be true when transport.protocol is auto"))
    wire = _or(t.get("wireProtocol"), "v1")
    _one_of(errors, "transport.wireProtocol", wire, WIRE_PROTOCOLS)
    pool = t.get("poolCount")
    _non_negative(errors, "transport.poolCount", pool)
    interval = _or(t.get("heartbeatInterval"), 30)
    timeout = _or(t.get("heartbeatTimeout"), 90)
    if interval > 0 and timeout > 0 and timeout < interval:
        errors.append(
            (
                "transport.heartbeatTimeout",
                f"must not be less than transport.heartbeatInterval ({timeout} < {interval})",
            )
        )
    tls = _sub(t, "tls")
    return ClientTransportConfig(
        protocol=protocol,
        tcp_mux=t.get("tcpMux", True),
        tcp_mux_keepalive_interval=_or(t.get("tcpMuxKeepaliveInterval"), 30),
        pool_count=_or(pool, 1),
        heartbeat_interval=interval,
        heartbeat_timeout=timeout,
        dial_server_timeout=_or(t.get("dialServerTimeout"), 10),
        dial_server_keepalive=_or(t.get("dialServerKeepalive"), 7200),
        connect_server_local_ip=t.get("connectServerLocalIP", ""),
        tls=ClientTLSConfig(
            enable=tls.get("enable", True),
            disable_custom_tls_first_byte=tls.get("disableCustomTLSFirstByte", True),
            cert_file=tls.get("certFile", ""),
            key_file=tls.get("keyFile", ""),
            trusted_ca_file=tls.get("trustedCaFile", ""),
            server_name=tls.get("serverName", ""),
        ),
        wire_protocol=wire,
        proxy_url=t.get("proxyURL", ""),
    )


def _remote_port_fields(errors: Errors, doc: Doc, path: str) -> dict[str, Any]:
    """tcp, udp: the port frps listens on."""
    _port(errors, join(path, "remotePort"), doc.get("remotePort"), allow_zero=True)
    return {"remote_port": doc.get("remotePort", 0)}


def _secret_fields(errors: Errors, doc: Doc, path: str) -> dict[str, Any]:
    """stcp, sudp (and xtcp): the visitors' shared secret and who may visit."""
    return {"secret_key": doc.get("secretKey", ""), "allow_users": _strings(doc.get("allowUsers"))}


def _xtcp_fields(errors: Errors, doc: Doc, path: str) -> dict[str, Any]:
    return {
        **_secret_fields(errors, doc, path),
        "nat_traversal_disable_assisted_addrs": _sub(doc, "natTraversal").get("disableAssistedAddrs", False),
    }


def _domain_fields(errors: Errors, doc: Doc, path: str) -> dict[str, Any]:
    """http, https, tcpmux: the names frps routes to the proxy."""
    if not doc.get("customDomains") and not doc.get("subdomain"):
        errors.append((join(path, "customDomains"), "customDomains and subdomain must not both be empty"))
    return {"custom_domains": _strings(doc.get("customDomains")), "subdomain": doc.get("subdomain", "")}


def _http_fields(errors: Errors, doc: Doc, path: str) -> dict[str, Any]:
    return {
        **_domain_fields(errors, doc, path),
        "locations": _strings(doc.get("locations")),
        "http_user": doc.get("httpUser", ""),
        "http_password": doc.get("httpPassword", ""),
        "host_header_rewrite": doc.get("hostHeaderRewrite", ""),
        "request_headers": FrozenMap(_sub(doc, "requestHeaders").get("set") or {}),
        "response_headers": FrozenMap(_sub(doc, "responseHeaders").get("set") or {}),
        "route_by_http_user": doc.get("routeByHTTPUser", ""),
    }


def _tcpmux_fields(errors: Errors, doc: Doc, path: str) -> dict[str, Any]:
    fields = _domain_fields(errors, doc, path)
    _one_of(errors, join(path, "multiplexer"), doc.get("multiplexer", ""), ("httpconnect",))
    return {
        **fields,
        "http_user": doc.get("httpUser", ""),
        "http_password": doc.get("httpPassword", ""),
        "route_by_http_user": doc.get("routeByHTTPUser", ""),
        "multiplexer": doc.get("multiplexer", ""),
    }


FieldBuilder = Callable[[Errors, Doc, str], dict[str, Any]]

#: proxy type -> the checks and fields of that type (its class: L{PROXY_CONFIG_TYPES})
PROXY_FIELDS: dict[str, FieldBuilder] = {
    "tcp": _remote_port_fields,
    "udp": _remote_port_fields,
    "stcp": _secret_fields,
    "sudp": _secret_fields,
    "xtcp": _xtcp_fields,
    "http": _http_fields,
    "https": _domain_fields,
    "tcpmux": _tcpmux_fields,
}


def _proxy(errors: Errors, doc: Doc, path: str) -> ProxyConfig | None:
    ptype = doc.get("type")
    if ptype is None:
        return None  # missing/unknown type was reported by the schema check
    plugin = _plugin(_sub(doc, "plugin"))

    local_port = doc.get("localPort")
    if not plugin.type and ptype in LOCAL_PORT_REQUIRED:
        _port(errors, join(path, "localPort"), local_port, allow_zero=False, required=True)
    else:
        _port(errors, join(path, "localPort"), local_port, allow_zero=True)
    build_fields = PROXY_FIELDS.get(ptype)
    kind_fields = build_fields(errors, doc, path) if build_fields is not None else {}

    t = _sub(doc, "transport")
    limit = t.get("bandwidthLimit", "")
    # the messages are frp's own words, after the key path
    if limit and not _BANDWIDTH.match(limit):
        errors.append((join(path, "transport.bandwidthLimit"),
                       f"unit not support: {limit!r} (a number and MB or KB, e.g. 1MB, 512KB)"))
    mode = _or(t.get("bandwidthLimitMode"), "client")
    if mode not in ("client", "server"):
        errors.append((join(path, "transport.bandwidthLimitMode"),
                       f"bandwidth limit mode should be client or server; got {mode!r}"))
    ppv = t.get("proxyProtocolVersion", "")
    if ppv and ppv not in ("v1", "v2"):
        errors.append((join(path, "transport.proxyProtocolVersion"),
                       f"not support proxy protocol version: {ppv} (use v1 or v2)"))

    hc = _sub(doc, "healthCheck")
    hc_type = hc.get("type", "")
    if hc_type:
        if hc_type not in ("tcp", "http"):
            errors.append((join(path, "healthCheck.type"),
                           f"not support health check type: {hc_type} (use tcp or http)"))
        if hc_type == "http" and not hc.get("path"):
            errors.append((join(path, "healthCheck.path"), "health check path should not be empty (type http)"))

    lb = _sub(doc, "loadBalancer")
    headers = tuple(
        (h.get("name", ""), h.get("value", "")) for h in (hc.get("httpHeaders") or []) if h is not None
    )
    config_type = PROXY_CONFIG_TYPES.get(ptype, ProxyConfig)
    return config_type(
        name=doc.get("name", ""),
        type=ptype,
        local_ip=_or(doc.get("localIP"), "127.0.0.1"),
        local_port=local_port or 0,
        enabled=doc.get("enabled", True),
        transport=ProxyTransportConfig(
            use_encryption=t.get("useEncryption", False),
            use_compression=t.get("useCompression", False),
            bandwidth_limit=limit,
            bandwidth_limit_mode=mode,
            proxy_protocol_version=ppv,
        ),
        metadatas=FrozenMap(doc.get("metadatas") or {}),
        annotations=FrozenMap(doc.get("annotations") or {}),
        load_balancer=LoadBalancerConfig(group=lb.get("group", ""), group_key=lb.get("groupKey", "")),
        health_check=HealthCheckConfig(
            type=hc_type,
            timeout_seconds=_or(hc.get("timeoutSeconds"), 3),
            max_failed=_or(hc.get("maxFailed"), 1),
            interval_seconds=_or(hc.get("intervalSeconds"), 10),
            path=hc.get("path", ""),
            http_headers=headers,
        ),
        plugin=plugin,
        **kind_fields,
    )


def _visitor(errors: Errors, doc: Doc, path: str) -> VisitorConfig | None:
    vtype = doc.get("type")
    if vtype is None:
        return None
    server_name = doc.get("serverName", "")
    if not server_name:
        errors.append((join(path, "serverName"), "required"))
    bind_port = doc.get("bindPort", 0)
    if bind_port == 0:
        errors.append((join(path, "bindPort"), "required"))
    elif bind_port > 65535:
        errors.append((join(path, "bindPort"), f"port must be in 1..65535, got {bind_port}"))
    elif bind_port < 0 and vtype == "sudp":
        # frp: a negative port means "no listener, only redirected
        # connections", which sudp visitors cannot do.
        errors.append((join(path, "bindPort"), "must be positive for sudp visitors"))
    protocol = _or(doc.get("protocol"), "quic")
    if vtype == "xtcp":
        _one_of(errors, join(path, "protocol"), protocol, ("kcp", "quic"))
    t = _sub(doc, "transport")
    return VisitorConfig(
        name=doc.get("name", ""),
        type=vtype,
        server_name=server_name,
        server_user=doc.get("serverUser", ""),
        secret_key=doc.get("secretKey", ""),
        bind_addr=_or(doc.get("bindAddr"), "127.0.0.1"),
        bind_port=bind_port,
        transport=VisitorTransportConfig(
            use_encryption=t.get("useEncryption", False),
            use_compression=t.get("useCompression", False),
        ),
        enabled=doc.get("enabled", True),
        plugin=_plugin(_sub(doc, "plugin")),
        protocol=protocol,
        keep_tunnel_open=doc.get("keepTunnelOpen", False),
        max_retries_an_hour=_or(doc.get("maxRetriesAnHour"), 8),
        min_retry_interval=_or(doc.get("minRetryInterval"), 90),
        fallback_to=doc.get("fallbackTo", ""),
        fallback_timeout_ms=_or(doc.get("fallbackTimeoutMs"), 1000),
        nat_traversal_disable_assisted_addrs=_sub(doc, "natTraversal").get("disableAssistedAddrs", False),
    )


def _named_items(
    errors: Errors, items: list[Any], section: str, what: str
) -> list[tuple[str, Doc]]:
    """Check C{name} on each item (required, unique); return (path, item) pairs."""
    seen: set[str] = set()
    out = []
    for i, item in enumerate(items):
        if item is None:
            continue
        path = index(section, i)
        name = item.get("name", "")
        if not name:
            errors.append((join(path, "name"), "required"))
        elif name in seen:
            errors.append((join(path, "name"), f"duplicate {what} name {name!r}"))
        else:
            seen.add(name)
        out.append((path, item))
    return out


def build_client_config(doc: Doc, errors: Errors) -> ClientConfig:
    """Build frpc's configuration from a checked document, appending to C{errors}."""
    server_port = doc.get("serverPort", 7000)
    _port(errors, "serverPort", server_port, allow_zero=False)
    udp_packet_size = doc.get("udpPacketSize")
    _non_negative(errors, "udpPacketSize", udp_packet_size)

    proxies = []
    for path, item in _named_items(errors, doc.get("proxies") or [], "proxies", "proxy"):
        built = _proxy(errors, item, path)
        if built is not None:
            proxies.append(built)
    visitors = []
    for path, item in _named_items(errors, doc.get("visitors") or [], "visitors", "visitor"):
        built_v = _visitor(errors, item, path)
        if built_v is not None:
            visitors.append(built_v)

    # `start` selects proxies and visitors by name; a name that matches
    # nothing is almost certainly a typo that would silently drop a proxy.
    known = {
        item.get("name")
        for section in ("proxies", "visitors")
        for item in (doc.get(section) or [])
        if item is not None
    }
    start = doc.get("start") or []
    for i, name in enumerate(start):
        if name is not None and name not in known:
            errors.append((index("start", i), f"no proxy or visitor named {name!r}"))

    return ClientConfig(
        server_addr=_or(doc.get("serverAddr"), "0.0.0.0"),
        server_port=server_port,
        user=doc.get("user", ""),
        client_id=doc.get("clientID", ""),
        auth=_auth(errors, _sub(doc, "auth"), "auth"),
        login_fail_exit=doc.get("loginFailExit", True),
        transport=_client_transport(errors, _sub(doc, "transport")),
        metadatas=FrozenMap(doc.get("metadatas") or {}),
        start=_strings(start),
        proxies=tuple(proxies),
        visitors=tuple(visitors),
        log=_log(errors, _sub(doc, "log")),
        udp_packet_size=_or(udp_packet_size, 1500),
        web_server=_web_server(errors, _sub(doc, "webServer")),
        nat_hole_stun_server=_or(doc.get("natHoleStunServer"), "stun.easyvoip.com:3478"),
        dns_server=doc.get("dnsServer", ""),
        includes=_strings(doc.get("includes")),
    )
