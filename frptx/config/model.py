# -*- test-case-name: frptx.test.test_config -*-
"""
Frozen, validated configuration values for frps and frpc.

Nothing downstream of L{frptx.config} ever reads a raw dict: the loader turns
the user's file into these dataclasses, with frp's defaults filled in and
snake_case attribute names.  Every value is immutable (mappings are
L{FrozenMap}, sequences are tuples) so that configurations can be shared
between services without defensive copies, compared with C{==} (the frpc
reload logic diffs L{ProxyConfig} objects that way) and hashed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = [
    "ConfigError",
    "FrozenMap",
    "PortRange",
    "AuthConfig",
    "LogConfig",
    "WebServerConfig",
    "ServerTLSConfig",
    "ServerTransportConfig",
    "ServerConfig",
    "ClientTLSConfig",
    "ClientTransportConfig",
    "ProxyTransportConfig",
    "LoadBalancerConfig",
    "HealthCheckConfig",
    "PluginConfig",
    "HTTPPluginConfig",
    "ProxyConfig",
    "TcpProxyConfig",
    "UdpProxyConfig",
    "StcpProxyConfig",
    "SudpProxyConfig",
    "XtcpProxyConfig",
    "HttpProxyConfig",
    "HttpsProxyConfig",
    "TcpmuxProxyConfig",
    "PROXY_CONFIG_TYPES",
    "VisitorTransportConfig",
    "VisitorConfig",
    "ClientConfig",
]

_V = TypeVar("_V")


class ConfigError(Exception):
    """
    One or more problems with a configuration.

    All problems found in a file are collected and raised together, so that
    the user can fix them in one go instead of one restart per typo.

    @ivar errors: C{(path, reason)} pairs; C{path} names the key
        (C{proxies[1].remotePort}) or, for problems with the file itself, the
        file name.
    @ivar source: the file (or other origin) the configuration came from.
    """

    def __init__(
        self, errors: list[tuple[str, str]] | tuple[tuple[str, str], ...], source: str = "<config>"
    ) -> None:
        self.errors: tuple[tuple[str, str], ...] = tuple(errors)
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(f"{path}: {reason}" for path, reason in self.errors)

    def __repr__(self) -> str:
        return f"ConfigError({self.errors!r}, source={self.source!r})"


class FrozenMap(Mapping[str, _V]):
    """
    An immutable, hashable mapping.

    L{types.MappingProxyType} would forbid mutation too, but it is not
    hashable, which would make every config dataclass that holds one
    unhashable; configurations are values, so they should be usable as
    dictionary keys and set members.
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, _V] | None = None) -> None:
        self._data: dict[str, _V] = dict(data or {})
        self._hash: int | None = None

    def __getitem__(self, key: str) -> _V:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


def _empty_map() -> FrozenMap[Any]:
    return FrozenMap()


@dataclass(frozen=True)
class PortRange:
    """
    An inclusive port range from frps' C{allowPorts}; C{{single: N}} becomes
    C{PortRange(N, N)}.
    """

    start: int
    end: int

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.start <= port <= self.end


@dataclass(frozen=True)
class AuthConfig:
    """C{auth}: how frpc proves itself to frps (token is the only method frptx runs)."""

    method: str = "token"
    token: str = ""
    additional_scopes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class LogConfig:
    """C{log}: where and how much to log."""

    to: str = "console"
    level: str = "info"
    max_days: int = 3
    disable_print_color: bool = False


@dataclass(frozen=True)
class WebServerConfig:
    """
    C{webServer}: frps dashboard (REST API, Prometheus) or frpc admin API; off
    while C{port} is 0.  C{tls_cert_file}/C{tls_key_file}: serve it over TLS.
    """

    addr: str = "127.0.0.1"
    port: int = 0
    user: str = ""
    password: str = ""
    assets_dir: str = ""
    pprof_enable: bool = False
    tls_cert_file: str = ""
    tls_key_file: str = ""


# ---------------------------------------------------------------------------
# frps
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerTLSConfig:
    """C{transport.tls} on frps."""

    force: bool = False
    cert_file: str = ""
    key_file: str = ""
    trusted_ca_file: str = ""


@dataclass(frozen=True)
class ServerTransportConfig:
    """C{transport} on frps."""

    tcp_mux: bool = True
    tcp_mux_keepalive_interval: int = 30
    tcp_keepalive: int = 7200
    max_pool_count: int = 5
    heartbeat_timeout: int = 90
    tls: ServerTLSConfig = field(default_factory=ServerTLSConfig)


@dataclass(frozen=True)
class HTTPPluginConfig:
    """
    One C{httpPlugins[]} entry: frps POSTs the operations in C{ops} to
    C{addr}+C{path} (C{http://} unless C{addr} has a scheme) and obeys the
    answer (see L{frptx.server.plugins}).  C{tls_verify} checks an
    C{https://} plugin's certificate (off by default, as in frp).
    """

    name: str = ""
    addr: str = ""
    path: str = ""
    ops: tuple[str, ...] = ()
    tls_verify: bool = False


@dataclass(frozen=True)
class ServerConfig:
    """The whole frps configuration."""

    bind_addr: str = "0.0.0.0"
    bind_port: int = 7000
    #: "" in the file is resolved to C{bind_addr} by the loader.
    proxy_bind_addr: str = ""
    auth: AuthConfig = field(default_factory=AuthConfig)
    transport: ServerTransportConfig = field(default_factory=ServerTransportConfig)
    allow_ports: tuple[PortRange, ...] = ()
    max_ports_per_client: int = 0
    user_conn_timeout: int = 10
    udp_packet_size: int = 1500
    detailed_errors_to_client: bool = True
    log: LogConfig = field(default_factory=LogConfig)
    # Recognised frp features that frptx does not run yet (the loader refuses
    # non-default values); kept so that enabling them is a small change.
    kcp_bind_port: int = 0
    quic_bind_port: int = 0
    vhost_http_port: int = 0
    vhost_https_port: int = 0
    vhost_http_timeout: int = 60
    tcpmux_http_connect_port: int = 0
    tcpmux_passthrough: bool = False
    subdomain_host: str = ""
    custom_404_page: str = ""
    web_server: WebServerConfig = field(default_factory=WebServerConfig)
    enable_prometheus: bool = False
    nathole_analysis_data_reserve_hours: int = 168
    http_plugins: tuple[HTTPPluginConfig, ...] = ()

    def port_allowed(self, port: int) -> bool:
        """
        May a client ask for C{port} as a remote port?  An empty
        C{allowPorts} allows everything, as in frp.
        """
        if not self.allow_ports:
            return True
        return any(port in r for r in self.allow_ports)


# ---------------------------------------------------------------------------
# frpc
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientTLSConfig:
    """C{transport.tls} on frpc; TLS on and no 0x17 first byte, like frp >= 0.50."""

    enable: bool = True
    disable_custom_tls_first_byte: bool = True
    cert_file: str = ""
    key_file: str = ""
    trusted_ca_file: str = ""
    server_name: str = ""


@dataclass(frozen=True)
class ClientTransportConfig:
    """C{transport} on frpc."""

    protocol: str = "tcp"
    tcp_mux: bool = True
    tcp_mux_keepalive_interval: int = 30
    pool_count: int = 1
    heartbeat_interval: int = 30
    heartbeat_timeout: int = 90
    dial_server_timeout: int = 10
    dial_server_keepalive: int = 7200
    connect_server_local_ip: str = ""
    tls: ClientTLSConfig = field(default_factory=ClientTLSConfig)
    wire_protocol: str = "v1"
    proxy_url: str = ""


@dataclass(frozen=True)
class ProxyTransportConfig:
    """C{proxies[].transport}."""

    use_encryption: bool = False
    use_compression: bool = False
    bandwidth_limit: str = ""
    bandwidth_limit_mode: str = "client"
    proxy_protocol_version: str = ""


@dataclass(frozen=True)
class LoadBalancerConfig:
    """C{proxies[].loadBalancer}."""

    group: str = ""
    group_key: str = ""


@dataclass(frozen=True)
class HealthCheckConfig:
    """C{proxies[].healthCheck}; C{type == ""} means no health checking."""

    type: str = ""
    timeout_seconds: int = 3
    max_failed: int = 1
    interval_seconds: int = 10
    path: str = ""
    #: C{(name, value)} pairs, in file order.
    http_headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PluginConfig:
    """
    C{proxies[].plugin} / C{visitors[].plugin}; C{type == ""} means no plugin.
    C{options} holds the plugin-specific keys as frp spells them, e.g.
    C{{"unixPath": "/run/x.sock"}} (L{frptx.client.plugins} reads them).
    """

    type: str = ""
    options: Mapping[str, Any] = field(default_factory=_empty_map)


@dataclass(frozen=True)
class ProxyConfig:
    """
    One entry of C{proxies}: the fields every proxy type has (frp's
    C{ProxyBaseConfig} and backend).  Each type has its own subclass with its
    own fields (L{TcpProxyConfig}, L{StcpProxyConfig}, ...), found by type in
    L{PROXY_CONFIG_TYPES}.

    Like C{pathlib.Path}, calling C{ProxyConfig(name=..., type=t, ...)}
    builds the registered class for C{t} (so C{ProxyConfig(name="dns",
    type="udp", local_port=53)} is a L{UdpProxyConfig}); an unregistered
    type gets this base class.
    """

    name: str
    type: str
    local_ip: str = "127.0.0.1"
    local_port: int = 0
    enabled: bool = True
    transport: ProxyTransportConfig = field(default_factory=ProxyTransportConfig)
    metadatas: Mapping[str, str] = field(default_factory=_empty_map)
    annotations: Mapping[str, str] = field(default_factory=_empty_map)
    load_balancer: LoadBalancerConfig = field(default_factory=LoadBalancerConfig)
    health_check: HealthCheckConfig = field(default_factory=HealthCheckConfig)
    plugin: PluginConfig = field(default_factory=PluginConfig)

    def __new__(cls, *args: Any, **kwargs: Any) -> ProxyConfig:
        if cls is ProxyConfig:
            kind = kwargs.get("type", args[1] if len(args) > 1 else None)
            cls = PROXY_CONFIG_TYPES.get(kind, ProxyConfig) if isinstance(kind, str) else ProxyConfig
        return object.__new__(cls)


@dataclass(frozen=True)
class _RemotePortFields(ProxyConfig):
    remote_port: int = 0


@dataclass(frozen=True)
class _SecretFields(ProxyConfig):
    secret_key: str = ""
    allow_users: tuple[str, ...] = ()


@dataclass(frozen=True)
class _DomainFields(ProxyConfig):
    custom_domains: tuple[str, ...] = ()
    subdomain: str = ""


@dataclass(frozen=True)
class TcpProxyConfig(_RemotePortFields):
    """C{type: tcp}: frps listens on C{remotePort} (0: frps picks one)."""

    type: str = "tcp"


@dataclass(frozen=True)
class UdpProxyConfig(_RemotePortFields):
    """C{type: udp}: frps listens for datagrams on C{remotePort}."""

    type: str = "udp"


@dataclass(frozen=True)
class StcpProxyConfig(_SecretFields):
    """C{type: stcp}: reachable only through visitors that know C{secretKey}."""

    type: str = "stcp"


@dataclass(frozen=True)
class SudpProxyConfig(_SecretFields):
    """C{type: sudp}: the datagram counterpart of stcp."""

    type: str = "sudp"


@dataclass(frozen=True)
class XtcpProxyConfig(_SecretFields):
    """C{type: xtcp} (P2P; refused by frptx for now)."""

    type: str = "xtcp"
    nat_traversal_disable_assisted_addrs: bool = False


@dataclass(frozen=True)
class HttpProxyConfig(_DomainFields):
    """C{type: http}: routed by frps's HTTP virtual host."""

    type: str = "http"
    locations: tuple[str, ...] = ()
    http_user: str = ""
    http_password: str = ""
    host_header_rewrite: str = ""
    request_headers: Mapping[str, str] = field(default_factory=_empty_map)
    response_headers: Mapping[str, str] = field(default_factory=_empty_map)
    route_by_http_user: str = ""


@dataclass(frozen=True)
class HttpsProxyConfig(_DomainFields):
    """C{type: https}: routed by SNI on frps's HTTPS virtual host."""

    type: str = "https"


@dataclass(frozen=True)
class TcpmuxProxyConfig(_DomainFields):
    """C{type: tcpmux}: routed by an HTTP CONNECT multiplexer on frps."""

    type: str = "tcpmux"
    http_user: str = ""
    http_password: str = ""
    route_by_http_user: str = ""
    multiplexer: str = ""


#: proxy type -> its config class (what C{ProxyConfig(type=...)} and the loader build)
PROXY_CONFIG_TYPES: dict[str, type[ProxyConfig]] = {
    "tcp": TcpProxyConfig,
    "udp": UdpProxyConfig,
    "stcp": StcpProxyConfig,
    "sudp": SudpProxyConfig,
    "xtcp": XtcpProxyConfig,
    "http": HttpProxyConfig,
    "https": HttpsProxyConfig,
    "tcpmux": TcpmuxProxyConfig,
}


@dataclass(frozen=True)
class VisitorTransportConfig:
    """C{visitors[].transport}."""

    use_encryption: bool = False
    use_compression: bool = False


@dataclass(frozen=True)
class VisitorConfig:
    """One entry of C{visitors}."""

    name: str
    type: str
    server_name: str
    server_user: str = ""
    secret_key: str = ""
    bind_addr: str = "127.0.0.1"
    bind_port: int = 0
    transport: VisitorTransportConfig = field(default_factory=VisitorTransportConfig)
    enabled: bool = True
    plugin: PluginConfig = field(default_factory=PluginConfig)
    # xtcp visitors
    protocol: str = "quic"
    keep_tunnel_open: bool = False
    max_retries_an_hour: int = 8
    min_retry_interval: int = 90
    fallback_to: str = ""
    fallback_timeout_ms: int = 1000
    nat_traversal_disable_assisted_addrs: bool = False


@dataclass(frozen=True)
class ClientConfig:
    """The whole frpc configuration."""

    server_addr: str = "0.0.0.0"
    server_port: int = 7000
    user: str = ""
    client_id: str = ""
    auth: AuthConfig = field(default_factory=AuthConfig)
    login_fail_exit: bool = True
    transport: ClientTransportConfig = field(default_factory=ClientTransportConfig)
    metadatas: Mapping[str, str] = field(default_factory=_empty_map)
    start: tuple[str, ...] = ()
    proxies: tuple[ProxyConfig, ...] = ()
    visitors: tuple[VisitorConfig, ...] = ()
    log: LogConfig = field(default_factory=LogConfig)
    udp_packet_size: int = 1500
    # Recognised frp features that frptx does not run yet.
    web_server: WebServerConfig = field(default_factory=WebServerConfig)
    nat_hole_stun_server: str = "stun.easyvoip.com:3478"
    dns_server: str = ""
    includes: tuple[str, ...] = ()

    def active_proxies(self) -> tuple[ProxyConfig, ...]:
        """
        The proxies frpc should register: enabled ones, and if C{start} is
        non-empty only those it names (frp's filtering rule).
        """
        wanted = set(self.start)
        return tuple(
            p for p in self.proxies if p.enabled and (not wanted or p.name in wanted)
        )

    def active_visitors(self) -> tuple[VisitorConfig, ...]:
        """Like L{active_proxies}, for visitors."""
        wanted = set(self.start)
        return tuple(
            v for v in self.visitors if v.enabled and (not wanted or v.name in wanted)
        )

    def wire_name(self, name: str) -> str:
        """
        The proxy name as sent to frps: frp prefixes C{user.} when a user is
        configured, so that several clients can share names.
        """
        return f"{self.user}.{name}" if self.user else name
