# -*- test-case-name: frptx.test.test_web_frps_api -*-
"""
frps' dashboard REST API, with frp's paths, JSON field names and status codes.

frp 0.65.0 (the version we are compatible with, see the golden captures in
C{frptx/test/data/captures/web-frps-0.65.0.json}) has, behind basic auth:

  - C{GET /api/serverinfo}
  - C{GET /api/proxy/{type}} and C{GET /api/proxy/{type}/{name}}
  - C{GET /api/traffic/{name}} (7 days, today first)
  - C{DELETE /api/proxies?status=offline}

and C{GET /healthz} without auth.  0.65.0 has no C{/api/v2}.  Later frp (0.68)
added C{GET /api/proxies/{name}}, C{GET /api/clients} and
C{GET /api/clients/{key}}; we serve those with that release's shapes (JSON
bodies and C{{"Code","Msg"}} errors), so the same tools work against both.
Beyond frp: C{DELETE /api/clients/{key}} closes that client's control
connection.

Everything is read from an L{FrpsState} at request time.
"""
from __future__ import annotations

import time
from typing import Any

from twisted.web import server

from frptx.web._http import (
    ANY,
    Route,
    RouterResource,
    json_api,
    json_error,
    json_text,
    query_arg,
    text,
)
from frptx.web.state import ClientRecord, FrpsState, ProxyConf, ProxyRecord


def go_time(ts: float | None) -> str:
    """frp's C{"01-02 15:04:05"} local-time format for proxy start/close times ("" for never)."""
    if ts is None:
        return ""
    return time.strftime("%m-%d %H:%M:%S", time.localtime(ts))


def _base_conf(conf: ProxyConf) -> dict[str, Any]:
    """frp's C{ProxyBaseConfig} JSON as frps rebuilds it from the C{NewProxy} message."""
    out: dict[str, Any] = {"name": conf.name, "type": conf.type}
    if conf.annotations:
        out["annotations"] = dict(conf.annotations)
    transport: dict[str, Any] = {}
    if conf.use_encryption:
        transport["useEncryption"] = True
    if conf.use_compression:
        transport["useCompression"] = True
    transport["bandwidthLimit"] = conf.bandwidth_limit
    transport["bandwidthLimitMode"] = conf.bandwidth_limit_mode or "client"
    out["transport"] = transport
    if conf.metas:
        out["metadatas"] = dict(conf.metas)
    # groupKey is a shared secret: frp shows it, we deliberately do not
    out["loadBalancer"] = {"group": conf.group}
    out["healthCheck"] = {"type": "", "intervalSeconds": 0}
    out["localIP"] = "127.0.0.1"
    out["plugin"] = None
    return out


def _domains(conf: ProxyConf, out: dict[str, Any]) -> None:
    if conf.custom_domains:
        out["customDomains"] = list(conf.custom_domains)
    if conf.subdomain:
        out["subdomain"] = conf.subdomain


def out_conf(conf: ProxyConf) -> dict[str, Any]:
    """
    The C{conf} object of a proxy in frp's per-type "out conf" shape (C{TCPOutConf},
    C{HTTPOutConf}...): the base config plus the fields that type shows.
    """
    out = _base_conf(conf)
    t = conf.type
    if t in ("tcp", "udp"):
        out["remotePort"] = conf.remote_port
    elif t == "http":
        _domains(conf, out)
        out["locations"] = list(conf.locations) if conf.locations else None
        out["hostHeaderRewrite"] = conf.host_header_rewrite
    elif t == "https":
        _domains(conf, out)
    elif t == "tcpmux":
        _domains(conf, out)
        out["multiplexer"] = conf.multiplexer
        out["routeByHTTPUser"] = conf.route_by_http_user
    elif t in ("stcp", "xtcp"):
        pass
    else:
        # frp has no out-conf type for sudp and the like and marshals the whole config as a map
        # (keys sorted); the secret key and allowed users are not part of what we keep
        out = dict(sorted(out.items()))
    return out


def _proxy_fields(p: ProxyRecord, with_client_version: bool) -> dict[str, Any]:
    """The fields of frp's C{ProxyStatsInfo} (list) or C{GetProxyStatsResp} (single proxy)."""
    out: dict[str, Any] = {
        "name": p.name,
        "conf": out_conf(p.conf) if p.online and p.conf is not None else None,
    }
    if p.user:
        out["user"] = p.user
    if p.client_id:
        out["clientID"] = p.client_id
    if with_client_version and p.online and p.client_version:
        out["clientVersion"] = p.client_version
    out.update({
        "todayTrafficIn": p.today_traffic_in,
        "todayTrafficOut": p.today_traffic_out,
        "curConns": p.cur_conns,
        "lastStartTime": go_time(p.last_start_time),
        "lastCloseTime": go_time(p.last_close_time),
        "status": "online" if p.online else "offline",
    })
    return out


def client_fields(c: ClientRecord) -> dict[str, Any]:
    """frp 0.68's C{ClientInfoResp}, plus C{os}/C{arch} when known (extra keys old tools ignore)."""
    out: dict[str, Any] = {
        "key": c.key,
        "user": c.user,
        "clientID": c.client_id,
        "runID": c.run_id,
    }
    if c.version:
        out["version"] = c.version
    out["hostname"] = c.hostname
    if c.os:
        out["os"] = c.os
    if c.arch:
        out["arch"] = c.arch
    if c.address:
        out["clientIP"] = c.address
    out["firstConnectedAt"] = int(c.first_connected_at)
    out["lastConnectedAt"] = int(c.last_connected_at)
    if c.disconnected_at is not None:
        out["disconnectedAt"] = int(c.disconnected_at)
    out["online"] = c.online
    out["proxyCount"] = c.proxy_count
    return out


class FrpsAPI:
    """The handlers, bound to one L{FrpsState}; L{routes} lists them for L{RouterResource}."""

    def __init__(self, state: FrpsState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            Route(ANY, "/healthz", self.healthz),
            Route(b"GET", "/api/serverinfo", self.serverinfo),
            Route(b"GET", "/api/proxy/{type}", self.proxies_by_type),
            Route(b"GET", "/api/proxy/{type}/{name}", self.proxy_by_type_and_name),
            Route(b"GET", "/api/proxies/{name}", self.proxy_by_name),
            Route(b"GET", "/api/traffic/{name}", self.traffic),
            Route(b"DELETE", "/api/proxies", self.delete_proxies),
            Route(b"GET", "/api/clients", self.clients),
            Route(b"GET", "/api/clients/{key}", self.client),
            Route(b"DELETE", "/api/clients/{key}", self.kick_client),
        ]

    def resource(self) -> RouterResource:
        return RouterResource(self.routes())

    # -- handlers ---------------------------------------------------------

    def healthz(self, request: server.Request) -> Any:
        return (200, b"", None)

    def serverinfo(self, request: server.Request) -> Any:
        info = self.state.server_info()
        stats = self.state.server_stats()
        body: dict[str, Any] = {
            "version": info.version,
            "bindPort": info.bind_port,
            "vhostHTTPPort": info.vhost_http_port,
            "vhostHTTPSPort": info.vhost_https_port,
            "tcpmuxHTTPConnectPort": info.tcpmux_http_connect_port,
            "kcpBindPort": info.kcp_bind_port,
            "quicBindPort": info.quic_bind_port,
            "subdomainHost": info.subdomain_host,
            "maxPoolCount": info.max_pool_count,
            "maxPortsPerClient": info.max_ports_per_client,
            "heartbeatTimeout": info.heartbeat_timeout,
        }
        if info.allow_ports:
            body["allowPortsStr"] = info.allow_ports
        if info.tls_force:
            body["tlsForce"] = True
        body.update({
            "totalTrafficIn": stats.total_traffic_in,
            "totalTrafficOut": stats.total_traffic_out,
            "curConns": stats.cur_conns,
            "clientCounts": stats.client_counts,
            "proxyTypeCount": dict(sorted(stats.proxy_type_counts.items())),
        })
        return json_text(body)

    def _find(self, name: str, proxy_type: str | None = None) -> ProxyRecord | None:
        for p in self.state.proxies():
            if p.name == name and (proxy_type is None or p.type == proxy_type):
                return p
        return None

    def proxies_by_type(self, request: server.Request, type: str) -> Any:
        found = sorted((p for p in self.state.proxies() if p.type == type), key=lambda p: p.name)
        return json_text({"proxies": [_proxy_fields(p, True) for p in found]})

    def proxy_by_type_and_name(self, request: server.Request, type: str, name: str) -> Any:
        p = self._find(name, type)
        if p is None:
            return text(404, "no proxy info found")
        return json_text(_proxy_fields(p, False))

    def proxy_by_name(self, request: server.Request, name: str) -> Any:
        p = self._find(name)
        if p is None:
            return json_error(404, "no proxy info found")
        return json_api(_proxy_fields(p, False))

    def traffic(self, request: server.Request, name: str) -> Any:
        hist = self.state.traffic(name)
        if hist is None:
            return text(404, "no proxy info found")
        return json_text({"name": name, "trafficIn": list(hist.traffic_in), "trafficOut": list(hist.traffic_out)})

    def delete_proxies(self, request: server.Request) -> Any:
        if query_arg(request, "status") != "offline":
            return text(400, "status only support offline")
        self.state.prune_offline_proxies()
        return (200, b"", None)

    def clients(self, request: server.Request) -> Any:
        user, client_id = query_arg(request, "user"), query_arg(request, "clientId")
        run_id, status = query_arg(request, "runId"), query_arg(request, "status").lower()
        items = [
            c for c in self.state.clients()
            if (not user or c.user == user)
            and (not client_id or c.client_id == client_id)
            and (not run_id or c.run_id == run_id)
            and _status_matches(c.online, status)
        ]
        items.sort(key=lambda c: (c.user, c.client_id, c.key))
        return json_api([client_fields(c) for c in items])

    def _client(self, key: str) -> ClientRecord | None:
        for c in self.state.clients():
            if c.key == key:
                return c
        return None

    def client(self, request: server.Request, key: str) -> Any:
        c = self._client(key)
        if c is None:
            return json_error(404, f"client {key} not found")
        return json_api(client_fields(c))

    def kick_client(self, request: server.Request, key: str) -> Any:
        if not self.state.kick_client(key):
            return json_error(404, f"client {key} not found or not online")
        return json_api({"Code": 200, "Msg": "success"})


def _status_matches(online: bool, status: str) -> bool:
    """frp's client list filter: "online", "offline", anything else (or nothing) matches all."""
    if status == "online":
        return online
    if status == "offline":
        return not online
    return True

