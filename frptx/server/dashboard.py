# -*- test-case-name: frptx.test.test_dashboard -*-
"""frps as its dashboard, REST API and Prometheus endpoint see it.

``FrpsWebState`` implements ``frptx.web.state.FrpsState`` over the server's own
objects: clients from ``ClientHistory`` (online ones with their live control, and
a bounded history of those that left), proxies and traffic from the
``StatsCollector``.  It is
only asked at request or scrape time and answers from what frps already keeps.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from frptx import FRP_PROTOCOL_VERSION
from frptx.server.clients import ClientHistory
from frptx.server.stats import ProxyStats, StatsCollector
from frptx.web.state import (
    ClientRecord,
    ProxyConf,
    ProxyRecord,
    ServerInfo,
    ServerStats,
    TrafficHistory,
    server_info_from_config,
)


def proxy_conf(name: str, kind: str, msg: Any) -> ProxyConf | None:
    """The NewProxy fields frps shows for a proxy (no secrets: no sk, no http password)."""
    if msg is None:
        return None
    return ProxyConf(
        name=name, type=kind,
        use_encryption=bool(getattr(msg, "use_encryption", False)),
        use_compression=bool(getattr(msg, "use_compression", False)),
        bandwidth_limit=getattr(msg, "bandwidth_limit", "") or "",
        bandwidth_limit_mode=getattr(msg, "bandwidth_limit_mode", "") or "",
        group=getattr(msg, "group", "") or "",
        group_key=getattr(msg, "group_key", "") or "",
        metas=dict(getattr(msg, "metas", None) or {}),
        annotations=dict(getattr(msg, "annotations", None) or {}),
        remote_port=int(getattr(msg, "remote_port", 0) or 0),
        custom_domains=tuple(getattr(msg, "custom_domains", None) or ()),
        subdomain=getattr(msg, "subdomain", "") or "",
        locations=tuple(getattr(msg, "locations", None) or ()),
        host_header_rewrite=getattr(msg, "host_header_rewrite", "") or "",
        multiplexer=getattr(msg, "multiplexer", "") or "",
        route_by_http_user=getattr(msg, "route_by_http_user", "") or "",
    )


class FrpsWebState:
    """``FrpsState`` for one frps: ``server`` is its ``FrpServer``."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.history: ClientHistory = server.clients
        self.stats: StatsCollector = server.stats

    def server_info(self) -> ServerInfo:
        return server_info_from_config(self.server.config, FRP_PROTOCOL_VERSION)

    def server_stats(self) -> ServerStats:
        counts: dict[str, int] = {}
        conns = 0
        for p in self.stats.proxies():
            if p.online:
                counts[p.kind] = counts.get(p.kind, 0) + 1
                conns += p.current_connections
        return ServerStats(total_traffic_in=self.stats.total_in.days[0],
                           total_traffic_out=self.stats.total_out.days[0],
                           cur_conns=conns, client_counts=len(self.server.controls),
                           proxy_type_counts=counts)

    def _record(self, p: ProxyStats) -> ProxyRecord:
        control = self.server.controls.get(p.run_id) if p.online else None
        conf = proxy_conf(p.name, p.kind, p.registration) if p.online else None
        live = control.proxies.get(p.name) if control is not None else None
        if conf is not None and live is not None and p.kind in ("tcp", "udp") and live.remote_port:
            # like frp, the port actually bound (the client may have asked for 0: any port)
            conf = dataclasses.replace(conf, remote_port=live.remote_port)
        return ProxyRecord(
            name=p.name, type=p.kind, online=p.online, conf=conf,
            user=p.user, client_id=p.client_id, run_id=p.run_id,
            client_version=control.login.version if control is not None else "",
            today_traffic_in=p.traffic_in.days[0], today_traffic_out=p.traffic_out.days[0],
            total_traffic_in=p.total_in, total_traffic_out=p.total_out,
            cur_conns=p.current_connections,
            last_start_time=p.last_start or None, last_close_time=p.last_close or None)

    def proxies(self) -> Sequence[ProxyRecord]:
        return [self._record(p) for p in self.stats.proxies()]

    def traffic(self, name: str) -> TrafficHistory | None:
        p = self.stats.proxy(name)
        if p is None:
            return None
        return TrafficHistory(name=name, traffic_in=list(p.traffic_in.days), traffic_out=list(p.traffic_out.days))

    def clients(self) -> Sequence[ClientRecord]:
        return [ClientRecord(
            key=seen.key, user=seen.user, client_id=seen.client_id, run_id=seen.run_id,
            hostname=seen.hostname, os=seen.os, arch=seen.arch, version=seen.version, address=seen.address,
            online=control is not None, first_connected_at=seen.first_connected_at,
            last_connected_at=seen.last_connected_at, disconnected_at=seen.disconnected_at,
            proxy_count=len(control.proxies) if control is not None else 0)
            for seen, control in self.history.entries()]

    def kick_client(self, key: str) -> bool:
        control = self.history.control(key)
        if control is None or getattr(control, "closed", False):
            return False
        control.close()
        return True

    def prune_offline_proxies(self) -> tuple[int, int]:
        total = sum(1 for _ in self.stats.proxies())
        return self.stats.prune_offline(), total
