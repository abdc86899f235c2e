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

frp's master branch (after 0.68) adds a REST API v2 under C{/api/v2}
(C{server/http/controller_v2.go}, C{server/http/model/v2.go}): every answer,
errors included, is the envelope C{{"code","msg","data"}} as application/json;
lists are paged (C{page} from 1, C{pageSize} 1..200, default 50) into
C{{"total","page","pageSize","items"}}; times are Unix seconds.  We serve it
with those paths, field names, filters, orders and error messages, and, beyond
frp, C{DELETE /api/v2/clients/{key}} kicks a client like the v1 route does.

Everything is read from an L{FrpsState} at request time.
"""
from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs

from twisted.web import server

from frptx.web._http import (
    ANY,
    JSON,
    Route,
    RouterResource,
    go_json,
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

    def __init__(self, state: FrpsState, now: Callable[[], float] = time.time) -> None:
        self.state = state
        #: the current time (the traffic history's dates), injectable for tests
        self.now = now

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
            Route(b"GET", "/api/v2/users", self.v2_users),
            Route(b"GET", "/api/v2/system/info", self.v2_system_info),
            Route(b"POST", "/api/v2/system/prune", self.v2_system_prune),
            Route(b"GET", "/api/v2/clients", self.v2_clients),
            Route(b"GET", "/api/v2/clients/{key}", self.v2_client),
            Route(b"DELETE", "/api/v2/clients/{key}", self.v2_kick_client),
            Route(b"GET", "/api/v2/proxies", self.v2_proxies),
            Route(b"GET", "/api/v2/proxies/{name}", self.v2_proxy),
            Route(b"GET", "/api/v2/proxies/{name}/traffic", self.v2_proxy_traffic),
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

    # -- REST API v2 (frp's master branch) -----------------------------------

    def v2_system_info(self, request: server.Request) -> Any:
        info = self.state.server_info()
        stats = self.state.server_stats()
        return v2_ok({
            "version": info.version,
            "config": {
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
                "allowPortsStr": info.allow_ports,
                "tlsForce": info.tls_force,
            },
            "status": {
                "totalTrafficIn": stats.total_traffic_in,
                "totalTrafficOut": stats.total_traffic_out,
                "curConns": stats.cur_conns,
                "clientCounts": stats.client_counts,
                "proxyTypeCount": dict(sorted(stats.proxy_type_counts.items())),
            },
        })

    def v2_system_prune(self, request: server.Request) -> Any:
        prune_type = url_query(request).get("type", [""])[0].lower()
        if not prune_type:
            return v2_error(400, "type is required")
        if prune_type != V2_PRUNE_OFFLINE_PROXIES:
            return v2_error(400, f"type must be one of {V2_PRUNE_OFFLINE_PROXIES}")
        cleared, total = self.state.prune_offline_proxies()
        return v2_ok({"type": prune_type, "cleared": cleared, "total": total})

    def v2_users(self, request: server.Request) -> Any:
        query = url_query(request)
        try:
            page, size = v2_page_params(query)
        except V2Error as e:
            return v2_error(e.code, e.msg)
        counts: dict[str, list[int]] = {}
        for c in self.state.clients():
            counts.setdefault(c.user, [0, 0])[0] += 1
        for p in self._v2_proxies():
            counts.setdefault(p.user, [0, 0])[1] += 1
        q = _first(query, "q").lower()
        items = [{"user": user, "clientCount": n_clients, "proxyCount": n_proxies}
                 for user, (n_clients, n_proxies) in sorted(counts.items())
                 if not q or q in user.lower()]
        return v2_ok(v2_page(items, page, size))

    def v2_clients(self, request: server.Request) -> Any:
        query = url_query(request)
        try:
            page, size = v2_page_params(query)
            status = v2_status_filter(_first(query, "status"))
        except V2Error as e:
            return v2_error(e.code, e.msg)
        user = query.get("user")
        client_id, run_id = _first(query, "clientID"), _first(query, "runID")
        q = _first(query, "q").lower()
        found = []
        for c in self.state.clients():
            if user is not None and c.user != user[0]:
                continue
            if client_id and effective_client_id(c.client_id, c.run_id) != client_id:
                continue
            if run_id and c.run_id != run_id:
                continue
            if not _status_matches(c.online, status):
                continue
            item = v2_client_fields(c)
            if q and not _contains(q, (item["key"], item["user"], item["clientID"], item["runID"],
                                       item.get("version", ""), item.get("wireProtocol", ""),
                                       item["hostname"], item.get("clientIP", ""))):
                continue
            found.append(item)
        found.sort(key=lambda i: (i["user"], i["clientID"], i["key"]))
        return v2_ok(v2_page(found, page, size))

    def v2_client(self, request: server.Request, key: str) -> Any:
        if not _path_param_ok(request, 3):
            return v2_error(400, "invalid client key")
        c = self._client(key)
        if c is None:
            return v2_error(404, f"client {key} not found")
        item = v2_client_fields(c)
        cid = effective_client_id(c.client_id, c.run_id)
        mine = [p for p in self._v2_proxies()
                if p.user == c.user and effective_client_id(p.client_id, p.run_id) == cid]
        item["status"] = {"phase": "online" if c.online else "offline",
                          "curConns": sum(p.cur_conns for p in mine), "proxyCount": len(mine)}
        return v2_ok(item)

    def v2_kick_client(self, request: server.Request, key: str) -> Any:
        """Beyond frp: close the client's control connection (frpc logs in again by itself)."""
        if not _path_param_ok(request, 3):
            return v2_error(400, "invalid client key")
        c = self._client(key)
        if c is None:
            return v2_error(404, f"client {key} not found")
        if not c.online or not self.state.kick_client(key):
            return v2_error(409, f"client {key} is not online")
        return v2_ok(None)

    def _v2_proxies(self, proxy_type: str = "") -> list[ProxyRecord]:
        """frp lists only the proxy types it knows (C{apiV2ProxyTypes})."""
        return [p for p in self.state.proxies()
                if p.type == proxy_type or not proxy_type and p.type in V2_PROXY_TYPES]

    def v2_proxies(self, request: server.Request) -> Any:
        query = url_query(request)
        try:
            page, size = v2_page_params(query)
            status = v2_status_filter(_first(query, "status"))
            proxy_type = _first(query, "type").lower()
            if proxy_type and proxy_type not in V2_PROXY_TYPES:
                raise V2Error(400, "type must be one of " + ", ".join(V2_PROXY_TYPES))
        except V2Error as e:
            return v2_error(e.code, e.msg)
        user = query.get("user")
        client_id = _first(query, "clientID")
        q = _first(query, "q").lower()
        found = []
        for p in self._v2_proxies(proxy_type):
            item = v2_proxy_fields(p)
            if user is not None and item["user"] != user[0]:
                continue
            if client_id and item["clientID"] != client_id:
                continue
            if not _status_matches(p.online, status):
                continue
            if q and not _contains(q, _proxy_search_values(p, item)):
                continue
            found.append(item)
        found.sort(key=lambda i: (i["spec"]["type"], i["name"]))
        return v2_ok(v2_page(found, page, size))

    def v2_proxy(self, request: server.Request, name: str) -> Any:
        if not _path_param_ok(request, 3):
            return v2_error(400, "invalid proxy name")
        p = self._find(name)
        if p is None:
            return v2_error(404, "no proxy info found")
        return v2_ok(v2_proxy_fields(p))

    def v2_proxy_traffic(self, request: server.Request, name: str) -> Any:
        if not _path_param_ok(request, 3):
            return v2_error(400, "invalid proxy name")
        hist = self.state.traffic(name)
        if hist is None:
            return v2_error(404, "no proxy info found")
        today = datetime.date.fromtimestamp(self.now())
        history = []
        for age in range(V2_TRAFFIC_DAYS - 1, -1, -1):
            history.append({
                "date": (today - datetime.timedelta(days=age)).isoformat(),
                "trafficIn": hist.traffic_in[age] if age < len(hist.traffic_in) else 0,
                "trafficOut": hist.traffic_out[age] if age < len(hist.traffic_out) else 0,
            })
        return v2_ok({"name": name, "unit": "bytes", "granularity": "day", "history": history})


def _status_matches(online: bool, status: str) -> bool:
    """frp's client list filter: "online", "offline", anything else (or nothing) matches all."""
    if status == "online":
        return online
    if status == "offline":
        return not online
    return True



# -- REST API v2 helpers -------------------------------------------------------

#: the proxy types v2 lists, in frp's order (its C{type} filter's error message names them so)
V2_PROXY_TYPES = ("tcp", "udp", "http", "https", "tcpmux", "stcp", "xtcp", "sudp")
V2_DEFAULT_PAGE_SIZE = 50
V2_MAX_PAGE_SIZE = 200
V2_PRUNE_OFFLINE_PROXIES = "offline_proxies"
V2_TRAFFIC_DAYS = 7
#: Go's C{math.MaxInt} on the 64-bit platforms frp ships for; C{strconv.Atoi} overflows above it
GO_MAX_INT = 2**63 - 1
_GO_ATOI = re.compile(r"[+-]?[0-9]+")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")

T = TypeVar("T")


class V2Error(Exception):
    """A v2 request parameter is invalid: C{code} and C{msg} go into the error envelope."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def v2_ok(data: Any) -> tuple[int, bytes, bytes | None]:
    """frp's C{MakeHTTPHandlerFuncV2} success: C{{"code":200,"msg":"success","data":...}}."""
    return 200, go_json({"code": 200, "msg": "success", "data": data}) + b"\n", JSON


def v2_error(status: int, msg: str) -> tuple[int, bytes, bytes | None]:
    """frp's v2 error: the same envelope with the status as C{code} and C{"data":null}."""
    return status, go_json({"code": status, "msg": msg, "data": None}) + b"\n", JSON


def url_query(request: server.Request) -> dict[str, list[str]]:
    """
    The URL's query like Go's C{URL.Query()}: from the URL only (Twisted's C{args}
    would also take a form-encoded POST body), blank values kept, so that
    C{?user=} is present and empty.
    """
    _, _, raw = request.uri.partition(b"?")
    return parse_qs(raw.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="replace")


def _first(query: dict[str, list[str]], name: str) -> str:
    """Go's C{Query().Get}: the first value, "" when absent."""
    values = query.get(name)
    return values[0] if values else ""


def _positive_int(raw: str, default: int, name: str) -> int:
    """frp's C{parseV2PositiveInt}: empty means the default; what C{strconv.Atoi} rejects or < 1 is a 400."""
    if raw == "":
        return default
    value = int(raw) if _GO_ATOI.fullmatch(raw) else 0
    if not 1 <= value <= GO_MAX_INT:
        raise V2Error(400, f"{name} must be a positive integer")
    return value


def v2_page_params(query: dict[str, list[str]]) -> tuple[int, int]:
    """C{page} (from 1) and C{pageSize} (1..200, default 50), checked in frp's order with its messages."""
    page = _positive_int(_first(query, "page"), 1, "page")
    size = _positive_int(_first(query, "pageSize"), V2_DEFAULT_PAGE_SIZE, "pageSize")
    if size > V2_MAX_PAGE_SIZE:
        raise V2Error(400, f"pageSize must be between 1 and {V2_MAX_PAGE_SIZE}")
    if page > GO_MAX_INT // size:
        raise V2Error(400, "page is too large")
    return page, size


def v2_page(items: Sequence[T], page: int, size: int) -> dict[str, Any]:
    """frp's C{V2PageResp}: the total before paging; a page past the end has no items (not an error)."""
    start = (page - 1) * size
    return {"total": len(items), "page": page, "pageSize": size, "items": list(items[start:start + size])}


def v2_status_filter(raw: str) -> str:
    status = raw.lower()
    if status not in ("", "all", "online", "offline"):
        raise V2Error(400, "status must be one of all, online, offline")
    return status


def _contains(q: str, values: Iterable[str]) -> bool:
    """frp's C{q} search: a case-insensitive substring of any of the values."""
    return any(q in v.lower() for v in values)


def _path_param_ok(request: server.Request, index: int) -> bool:
    """
    frp routes v2's C{{key}} and C{{name}} on the encoded path and C{PathUnescape}s
    them, answering 400 to a malformed escape; the router has decoded leniently.
    """
    raw = request.path.decode("latin-1").strip("/").split("/")
    return index < len(raw) and not _BAD_ESCAPE.search(raw[index])


def effective_client_id(client_id: str, run_id: str) -> str:
    """frp's C{ClientInfo.ClientID()}: the client id the client sent, else its run id."""
    return client_id or run_id


def v2_client_fields(c: ClientRecord) -> dict[str, Any]:
    """frp master's C{ClientInfoResp} (times in Unix seconds, 0 for never)."""
    out: dict[str, Any] = {
        "key": c.key,
        "user": c.user,
        "clientID": effective_client_id(c.client_id, c.run_id),
        "runID": c.run_id,
    }
    if c.version:
        out["version"] = c.version
    if c.wire_protocol:
        out["wireProtocol"] = c.wire_protocol
    out["hostname"] = c.hostname
    if c.address:
        out["clientIP"] = c.address
    out["firstConnectedAt"] = int(c.first_connected_at)
    out["lastConnectedAt"] = int(c.last_connected_at)
    if c.disconnected_at:
        out["disconnectedAt"] = int(c.disconnected_at)
    out["online"] = c.online
    return out


def v2_proxy_spec(p: ProxyRecord) -> dict[str, Any]:
    """
    frp's C{V2ProxySpec}: C{type} and that type's block, which is empty for an offline
    proxy (no configuration).  Secrets (stcp keys, http credentials, group keys) are
    never part of it.
    """
    spec: dict[str, Any] = {"type": p.type}
    if p.type not in V2_PROXY_TYPES:
        return spec
    block: dict[str, Any] = {}
    conf = p.conf if p.online else None
    if conf is not None:
        if conf.annotations:
            block["annotations"] = dict(sorted(conf.annotations.items()))
        if conf.metas:
            block["metadatas"] = dict(sorted(conf.metas.items()))
        block["transport"] = {
            "useEncryption": conf.use_encryption,
            "useCompression": conf.use_compression,
            "bandwidthLimit": conf.bandwidth_limit,
            "bandwidthLimitMode": conf.bandwidth_limit_mode or "client",
        }
        block["loadBalancer"] = {"group": conf.group}
        t = p.type
        if t in ("tcp", "udp"):
            block["remotePort"] = conf.remote_port
        elif t in ("http", "https", "tcpmux"):
            if conf.custom_domains:
                block["customDomains"] = list(conf.custom_domains)
            if conf.subdomain:
                block["subdomain"] = conf.subdomain
            if t == "http":
                if conf.locations:
                    block["locations"] = list(conf.locations)
                if conf.host_header_rewrite:
                    block["hostHeaderRewrite"] = conf.host_header_rewrite
            elif t == "tcpmux":
                if conf.multiplexer:
                    block["multiplexer"] = conf.multiplexer
                if conf.route_by_http_user:
                    block["routeByHTTPUser"] = conf.route_by_http_user
    spec[p.type] = block
    return spec


def v2_proxy_fields(p: ProxyRecord) -> dict[str, Any]:
    """frp's C{V2ProxyResp}."""
    status: dict[str, Any] = {
        "phase": "online" if p.online else "offline",
        "todayTrafficIn": p.today_traffic_in,
        "todayTrafficOut": p.today_traffic_out,
        "curConns": p.cur_conns,
    }
    if p.last_start_time:
        status["lastStartAt"] = int(p.last_start_time)
    if p.last_close_time:
        status["lastCloseAt"] = int(p.last_close_time)
    return {
        "name": p.name,
        "user": p.user,
        "clientID": effective_client_id(p.client_id, p.run_id),
        "spec": v2_proxy_spec(p),
        "status": status,
    }


def _proxy_search_values(p: ProxyRecord, item: dict[str, Any]) -> list[str]:
    """What frp's C{q} looks in for a proxy: names, type, owner, phase, and its port or domains."""
    values = [item["name"], item["spec"]["type"], item["user"], item["clientID"], item["status"]["phase"]]
    block = item["spec"].get(p.type, {})
    if "remotePort" in block:
        values.append(str(block["remotePort"]))
    values.extend(block.get("customDomains", ()))
    values.append(block.get("subdomain", ""))
    return values
