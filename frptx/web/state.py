# -*- test-case-name: frptx.test.test_web_frps_api -*-
"""
What the web layer reads from frps and frpc, and the few things it may ask them to do.

The dashboard, the REST API and the Prometheus endpoint only ever see these
records and protocols, never the server's or client's objects: the registry and
the statistics collector behind them can be redesigned without touching the web
layer, and the web layer is tested against a small in-memory fake
(L{frptx.test.web_fakes}).  Every method is called on the reactor thread at
request (or scrape) time, so an implementation answers from what it already
keeps; nothing is computed per byte on the data path for the web layer's sake.

Records are frozen dataclasses: a snapshot handed to a request cannot change
under it while it is being rendered.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet.defer import Deferred

#: how many days of traffic history frp keeps per proxy (today first)
TRAFFIC_DAYS = 7


@dataclass(frozen=True)
class ServerInfo:
    """
    frps' configuration as the dashboard shows it (C{GET /api/serverinfo}).

    C{allow_ports} is frp's own rendering of C{allowPorts} ("8000,9000-9100"),
    empty when every port is allowed.
    """

    version: str
    bind_port: int
    vhost_http_port: int = 0
    vhost_https_port: int = 0
    tcpmux_http_connect_port: int = 0
    kcp_bind_port: int = 0
    quic_bind_port: int = 0
    subdomain_host: str = ""
    max_pool_count: int = 5
    max_ports_per_client: int = 0
    heartbeat_timeout: int = 90
    allow_ports: str = ""
    tls_force: bool = False


@dataclass(frozen=True)
class ServerStats:
    """
    Totals the dashboard's front page shows.

    Like frp, the traffic totals are today's (they reset at local midnight) and
    C{proxy_type_counts} counts the proxies currently registered, per type.
    """

    total_traffic_in: int = 0
    total_traffic_out: int = 0
    cur_conns: int = 0
    client_counts: int = 0
    proxy_type_counts: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ProxyConf:
    """
    A registered proxy's configuration as frps knows it: the fields of the
    client's C{NewProxy} message, which is all frps ever learns.

    The web layer renders it in frp's per-type "out conf" JSON shape; secrets
    the message carries (HTTP basic auth, the stcp/xtcp key) are not here on
    purpose, so they cannot leak through the API.
    """

    name: str
    type: str
    use_encryption: bool = False
    use_compression: bool = False
    bandwidth_limit: str = ""
    bandwidth_limit_mode: str = ""
    group: str = ""
    group_key: str = ""
    metas: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    remote_port: int = 0
    custom_domains: Sequence[str] = ()
    subdomain: str = ""
    locations: Sequence[str] = ()
    host_header_rewrite: str = ""
    multiplexer: str = ""
    route_by_http_user: str = ""


@dataclass(frozen=True)
class ProxyRecord:
    """
    One proxy frps has statistics for: online (registered now) or offline
    (its client went away; frp keeps the numbers until they are pruned).

    Times are POSIX timestamps (C{None}: never); the API formats them the way
    frp does.  C{conf} is C{None} for an offline proxy, as in frp.
    """

    name: str
    type: str
    online: bool
    conf: ProxyConf | None = None
    user: str = ""
    client_id: str = ""
    #: the run id of the client that registered it (frp's v2 API names a proxy's client by
    #: it when the client sent no client id)
    run_id: str = ""
    client_version: str = ""
    today_traffic_in: int = 0
    today_traffic_out: int = 0
    #: since frps started: what Prometheus' counters expose
    total_traffic_in: int = 0
    total_traffic_out: int = 0
    cur_conns: int = 0
    last_start_time: float | None = None
    last_close_time: float | None = None


@dataclass(frozen=True)
class TrafficHistory:
    """Bytes per local day for one proxy, today first (C{TRAFFIC_DAYS} entries)."""

    name: str
    traffic_in: Sequence[int]
    traffic_out: Sequence[int]


@dataclass(frozen=True)
class ClientRecord:
    """
    One frpc as frps' registry knows it.

    C{key} identifies the client across reconnects: frp's "{user}.{clientID}"
    (the run id when the client sent no client id).  Times are POSIX
    timestamps; C{disconnected_at} is C{None} while it is online.
    """

    key: str
    user: str = ""
    client_id: str = ""
    run_id: str = ""
    hostname: str = ""
    os: str = ""
    arch: str = ""
    version: str = ""
    address: str = ""
    online: bool = True
    first_connected_at: float = 0.0
    last_connected_at: float = 0.0
    disconnected_at: float | None = None
    proxy_count: int = 0
    #: the control connection's wire protocol (frp's v2 API shows it); frptx speaks v1 only
    wire_protocol: str = "v1"


class FrpsState(Protocol):
    """
    What frps exposes to its dashboard, REST API and Prometheus endpoint.
    """

    def server_info(self) -> ServerInfo:
        """frps' configuration, as shown by C{/api/serverinfo}."""

    def server_stats(self) -> ServerStats:
        """Totals right now."""

    def proxies(self) -> Sequence[ProxyRecord]:
        """Every proxy with statistics, online or offline, in any order."""

    def traffic(self, name: str) -> TrafficHistory | None:
        """The daily traffic of proxy C{name}, or C{None} if frps has no statistics for it."""

    def clients(self) -> Sequence[ClientRecord]:
        """Every client the registry remembers, online or offline, in any order."""

    def kick_client(self, key: str) -> bool:
        """
        Close the control connection of the online client C{key} (its proxies
        go offline; frpc will log in again by itself).  C{False} if no such
        online client.
        """

    def prune_offline_proxies(self) -> tuple[int, int]:
        """Forget the statistics of offline proxies; returns (cleared, total before)."""


@dataclass(frozen=True)
class ProxyStatus:
    """
    One proxy or visitor as frpc sees it (C{GET /api/status}).

    C{phase} is frp's status word: "new", "wait start", "start error",
    "running", "check failed", "closed".  C{remote_addr} is what the server
    answered in C{NewProxyResp} (":6000" for tcp/udp, the URLs for http...);
    the API prefixes the server address for tcp and udp the way frp does.
    """

    name: str
    type: str
    phase: str
    err: str = ""
    local_ip: str = "127.0.0.1"
    local_port: int = 0
    plugin: str = ""
    remote_addr: str = ""


class ConfigError(Exception):
    """
    The configuration file cannot be loaded or is invalid: C{str(error)} is the
    message the admin API returns with status 400 (a reload changes nothing).
    """


class FrpcState(Protocol):
    """What frpc exposes to its admin API and admin page."""

    def server_addr(self) -> str:
        """C{serverAddr} as configured: the prefix of tcp/udp remote addresses."""

    def proxy_statuses(self) -> Sequence[ProxyStatus]:
        """Every configured proxy's status, in any order; empty before the first login."""

    def config_path(self) -> str:
        """The configuration file frpc was started with ("" if none)."""

    def reload(self, strict: bool) -> Deferred[None]:
        """
        Re-read the configuration file and apply its proxies and visitors.

        Fails with L{ConfigError} if the file does not load or validate (status
        400); any other failure is reported as status 500.
        """

    def stop(self) -> None:
        """Stop frpc gracefully (after the response has been written)."""


def server_info_from_config(cfg: Any, version: str) -> ServerInfo:
    """
    L{ServerInfo} from frps' C{ServerConfig} (C{frptx.config.model}); C{allowPorts}
    rendered as frp does ("6000,7000-7010": single ports bare, ranges with a dash).
    """
    allow = ",".join(str(r.start) if r.start == r.end else f"{r.start}-{r.end}" for r in cfg.allow_ports)
    return ServerInfo(
        version=version,
        bind_port=cfg.bind_port,
        vhost_http_port=cfg.vhost_http_port,
        vhost_https_port=cfg.vhost_https_port,
        tcpmux_http_connect_port=cfg.tcpmux_http_connect_port,
        kcp_bind_port=cfg.kcp_bind_port,
        quic_bind_port=cfg.quic_bind_port,
        subdomain_host=cfg.subdomain_host,
        max_pool_count=cfg.transport.max_pool_count,
        max_ports_per_client=cfg.max_ports_per_client,
        heartbeat_timeout=cfg.transport.heartbeat_timeout,
        allow_ports=allow,
        tls_force=cfg.transport.tls.force,
    )
