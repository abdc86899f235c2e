# -*- test-case-name: frptx.test.test_web_frps_api -*-
"""
In-memory L{FrpsState} and L{FrpcState} for the web layer's tests.

They keep plain records and answer from them, with the same rules as frp's
collector (offline proxies keep their numbers until pruned, traffic history is
today first), so tests can drive them like a server: register, disconnect,
add traffic.  L{scenario} fills one with what the golden captures of real frp
contain.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

from twisted.internet.defer import Deferred, fail, succeed

from frptx.web.state import (
    TRAFFIC_DAYS,
    ClientRecord,
    ConfigError,
    ProxyConf,
    ProxyRecord,
    ProxyStatus,
    ServerInfo,
    ServerStats,
    TrafficHistory,
)


class FakeFrpsState:
    """A whole frps' web-visible state in dictionaries."""

    def __init__(self, info: ServerInfo | None = None) -> None:
        self.info = info or ServerInfo(version="0.65.0", bind_port=7000)
        self.proxies_by_name: dict[str, ProxyRecord] = {}
        self.history: dict[str, tuple[list[int], list[int]]] = {}
        self.clients_by_key: dict[str, ClientRecord] = {}
        self.type_counts: dict[str, int] = {}
        self.kicked: list[str] = []

    # -- driving it ---------------------------------------------------------

    def add_client(self, key: str, **kw: object) -> ClientRecord:
        now = time.time()
        c = ClientRecord(key=key, first_connected_at=now, last_connected_at=now, **kw)  # type: ignore[arg-type]
        self.clients_by_key[key] = c
        return c

    def add_proxy(self, conf: ProxyConf, client_key: str = "", started: float | None = None, **kw: object) -> None:
        client = self.clients_by_key.get(client_key)
        p = ProxyRecord(name=conf.name, type=conf.type, online=True, conf=conf,
                        user=client.user if client else "", client_id=client.client_id if client else "",
                        run_id=client.run_id if client else "",
                        client_version=client.version if client else "",
                        last_start_time=started if started is not None else time.time(), **kw)  # type: ignore[arg-type]
        self.proxies_by_name[conf.name] = p
        self.history.setdefault(conf.name, ([0] * TRAFFIC_DAYS, [0] * TRAFFIC_DAYS))
        self.type_counts[conf.type] = self.type_counts.get(conf.type, 0) + 1
        if client:
            self.clients_by_key[client_key] = dataclasses.replace(client, proxy_count=client.proxy_count + 1)

    def close_proxy(self, name: str, at: float | None = None) -> None:
        p = self.proxies_by_name[name]
        self.proxies_by_name[name] = dataclasses.replace(
            p, online=False, cur_conns=0, last_close_time=at if at is not None else time.time())
        self.type_counts[p.type] -= 1

    def add_traffic(self, name: str, day: int, tin: int, tout: int) -> None:
        """Bytes on C{day} days ago (0 = today)."""
        h_in, h_out = self.history[name]
        h_in[day] += tin
        h_out[day] += tout
        p = self.proxies_by_name[name]
        self.proxies_by_name[name] = dataclasses.replace(
            p, today_traffic_in=h_in[0], today_traffic_out=h_out[0],
            total_traffic_in=p.total_traffic_in + tin, total_traffic_out=p.total_traffic_out + tout)

    def disconnect_client(self, key: str) -> None:
        c = self.clients_by_key[key]
        self.clients_by_key[key] = dataclasses.replace(c, online=False, disconnected_at=time.time())
        for p in list(self.proxies_by_name.values()):
            if p.online and c.user == p.user and c.client_id == p.client_id and c.run_id == p.run_id:
                self.close_proxy(p.name)

    # -- FrpsState ------------------------------------------------------------

    def server_info(self) -> ServerInfo:
        return self.info

    def server_stats(self) -> ServerStats:
        ps = self.proxies_by_name.values()
        return ServerStats(
            total_traffic_in=sum(p.today_traffic_in for p in ps),
            total_traffic_out=sum(p.today_traffic_out for p in ps),
            cur_conns=sum(p.cur_conns for p in ps),
            client_counts=sum(1 for c in self.clients_by_key.values() if c.online),
            proxy_type_counts=dict(self.type_counts),
        )

    def proxies(self) -> Sequence[ProxyRecord]:
        return list(self.proxies_by_name.values())

    def traffic(self, name: str) -> TrafficHistory | None:
        if name not in self.proxies_by_name:
            return None
        h_in, h_out = self.history[name]
        return TrafficHistory(name, list(h_in), list(h_out))

    def clients(self) -> Sequence[ClientRecord]:
        return list(self.clients_by_key.values())

    def kick_client(self, key: str) -> bool:
        c = self.clients_by_key.get(key)
        if c is None or not c.online:
            return False
        self.kicked.append(key)
        self.disconnect_client(key)
        return True

    def prune_offline_proxies(self) -> tuple[int, int]:
        total = len(self.proxies_by_name)
        gone = [n for n, p in self.proxies_by_name.items() if not p.online]
        for n in gone:
            del self.proxies_by_name[n]
            del self.history[n]
        return len(gone), total


def scenario() -> FakeFrpsState:
    """The situation the golden frps capture was taken in (see C{web_capture.py})."""
    st = FakeFrpsState(ServerInfo(
        version="0.65.0", bind_port=7000, vhost_http_port=8080, vhost_https_port=8443,
        tcpmux_http_connect_port=1337, subdomain_host="example.test", max_pool_count=7,
        max_ports_per_client=10, heartbeat_timeout=90, allow_ports="6000,6001,6002,1000-1010", tls_force=True))
    st.add_client("alice.run-a", user="alice", run_id="run-a", hostname="alice-host", os="linux",
                  arch="amd64", version="0.65.0", address="127.0.0.1")
    st.add_client("run-b", run_id="run-b", hostname="bob-host", version="0.65.0", address="127.0.0.1")
    a = "alice.run-a"
    st.add_proxy(ProxyConf("alice.ssh", "tcp", remote_port=6000), a, cur_conns=1)
    st.add_proxy(ProxyConf("alice.socks", "tcp", remote_port=1001), a)
    st.add_proxy(ProxyConf("alice.dns", "udp", remote_port=6001), a)
    st.add_proxy(ProxyConf("alice.web", "http", custom_domains=["a.other.test"], subdomain="www",
                           locations=["/", "/api"], host_header_rewrite="internal"), a)
    st.add_proxy(ProxyConf("alice.secure", "https", subdomain="s"), a)
    st.add_proxy(ProxyConf("alice.secret", "stcp"), a)
    st.add_proxy(ProxyConf("alice.p2p", "xtcp"), a)
    st.add_proxy(ProxyConf("alice.mux", "tcpmux", custom_domains=["m.other.test"], multiplexer="httpconnect"), a)
    st.add_proxy(ProxyConf("gone", "tcp", remote_port=6002), "run-b")
    st.add_traffic("alice.ssh", 0, 1000, 1000)
    st.add_traffic("alice.ssh", 2, 5000, 70000)
    st.disconnect_client("run-b")
    return st


class FakeFrpcState:
    """frpc's admin-visible state: statuses, a config file, and a scripted reload."""

    def __init__(self, config_path: str = "", server_addr: str = "127.0.0.1") -> None:
        self.statuses: list[ProxyStatus] = []
        self.path = config_path
        self.addr = server_addr
        self.reload_error: Exception | None = None
        self.reloads: list[bool] = []
        self.stopped = 0

    def server_addr(self) -> str:
        return self.addr

    def proxy_statuses(self) -> Sequence[ProxyStatus]:
        return list(self.statuses)

    def config_path(self) -> str:
        return self.path

    def reload(self, strict: bool) -> Deferred[None]:
        self.reloads.append(strict)
        if self.reload_error is not None:
            return fail(self.reload_error)
        return succeed(None)

    def stop(self) -> None:
        self.stopped += 1


def frpc_scenario(config_path: str = "") -> FakeFrpcState:
    """The statuses of the golden frpc capture."""
    st = FakeFrpcState(config_path)
    st.statuses = [
        ProxyStatus("alice.ssh", "tcp", "running", local_port=51013, remote_addr=":55873"),
        ProxyStatus("alice.denied", "tcp", "start error", err="port not allowed", local_port=51013),
        ProxyStatus("alice.socks", "tcp", "running", plugin="socks5", remote_addr=":1001"),
        ProxyStatus("alice.dns", "udp", "running", local_port=5353, remote_addr=":59033"),
        ProxyStatus("alice.web", "http", "running", local_port=51013,
                    # frp lists each URL twice; the status passes through whatever the server answered
                    remote_addr="a.other.test:37903,a.other.test:37903,www.example.test:37903,www.example.test:37903"),
        ProxyStatus("alice.secure", "https", "running", local_port=51013, remote_addr="s.example.test:60589"),
        ProxyStatus("alice.secret", "stcp", "running", local_port=51013),
        ProxyStatus("alice.p2p", "xtcp", "running", local_port=51013),
        ProxyStatus("alice.mux", "tcpmux", "running", local_port=51013, remote_addr="m.other.test:54415"),
    ]
    return st


__all__ = ["FakeFrpsState", "FakeFrpcState", "scenario", "frpc_scenario", "ConfigError"]
