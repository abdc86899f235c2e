# -*- test-case-name: frptx.test.test_protocols_client -*-
"""``ProxyManager``: the client's proxies, registered on every login, reloadable.

After each login it sends NewProxy for every active proxy and logs each
NewProxyResp (a refused proxy does not stop the others).  ``reload()`` re-reads
the config file and diffs proxies by name, like buildbot's service reconfig:
unchanged proxies keep their connections, removed ones get CloseProxy, new ones
NewProxy, changed ones CloseProxy + NewProxy.  An invalid file is rejected with
a clear log and the running proxies stay as they were.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.application.service import Service
from twisted.internet.defer import Deferred

from frptx import logs
from frptx.config import ClientConfig, ConfigError, ProxyConfig, load_client_config
from frptx.protocols.relay import TrafficCounter
from frptx.wire import CloseProxy, NewProxy, NewProxyResp

if TYPE_CHECKING:
    from frptx.client.client import FrpClient
    from frptx.protocols.client import ClientControlProtocol


@dataclass
class ProxyStatus:
    """What frps last said about a proxy."""

    phase: str = "new"  # new | wait start | running | start error
    remote_addr: str = ""
    error: str = ""


def new_proxy_message(client_config: ClientConfig, proxy: ProxyConfig) -> NewProxy:
    """The NewProxy registering ``proxy`` (wire name carries the ``user.`` prefix)."""
    t = proxy.transport
    return NewProxy(
        proxy_name=client_config.wire_name(proxy.name),
        proxy_type=proxy.type,
        use_encryption=t.use_encryption,
        use_compression=t.use_compression,
        metas=dict(proxy.metadatas),
        annotations=dict(proxy.annotations),
        remote_port=proxy.remote_port,
        sk=proxy.secret_key,
        allow_users=tuple(proxy.allow_users),
    )


class ProxyManager(Service):
    """Owns the client's proxy configs and their registration state."""

    log = logs.logger()
    name = "proxy-manager"

    def __init__(self, client: FrpClient, config_path: str | None = None,
                 loader: Callable[[str], ClientConfig] = load_client_config) -> None:
        self.client = client
        self.config_path = config_path
        self.loader = loader
        self.proxies: dict[str, ProxyConfig] = {p.name: p for p in client.config.active_proxies()}
        self.status: dict[str, ProxyStatus] = {name: ProxyStatus() for name in self.proxies}
        self.counters: dict[str, TrafficCounter] = {}
        self._waiters: dict[str, list[Deferred[ProxyStatus]]] = {}

    # -- lookups -----------------------------------------------------------------
    def by_wire_name(self, wire_name: str) -> ProxyConfig | None:
        cfg = self.client.config
        for proxy in self.proxies.values():
            if cfg.wire_name(proxy.name) == wire_name or proxy.name == wire_name:
                return proxy
        return None

    def counter(self, name: str) -> TrafficCounter:
        return self.counters.setdefault(name, TrafficCounter())

    def wait_settled(self, name: str) -> Deferred[ProxyStatus]:
        """Fires with the status once frps has answered this proxy's NewProxy."""
        d: Deferred[ProxyStatus] = Deferred()
        status = self.status.get(name)
        if status is not None and status.phase in ("running", "start error"):
            d.callback(status)
        else:
            self._waiters.setdefault(name, []).append(d)
        return d

    # -- registration ------------------------------------------------------------
    def logged_in(self, control: ClientControlProtocol) -> None:
        for proxy in self.proxies.values():
            self._register(control, proxy)

    def _register(self, control: ClientControlProtocol | None, proxy: ProxyConfig) -> None:
        self.status[proxy.name] = ProxyStatus(phase="wait start")
        if control is not None:
            control.send(new_proxy_message(self.client.config, proxy))

    def new_proxy_response(self, msg: NewProxyResp) -> None:
        proxy = self.by_wire_name(msg.proxy_name)
        if proxy is None:
            self.log.debug("NewProxyResp for proxy [{name}] we no longer have", name=msg.proxy_name)
            return
        if msg.error:
            status = ProxyStatus(phase="start error", error=msg.error)
            self.log.warn("proxy [{name}] start error: {error}", name=proxy.name, error=msg.error)
        else:
            status = ProxyStatus(phase="running", remote_addr=msg.remote_addr)
            self.log.info("proxy [{name}] started, remote address [{addr}]", name=proxy.name,
                          addr=msg.remote_addr)
        self.status[proxy.name] = status
        for d in self._waiters.pop(proxy.name, []):
            d.callback(status)

    def control_lost(self) -> None:
        for name in self.status:
            self.status[name] = ProxyStatus()

    # -- reload --------------------------------------------------------------------
    def reload(self) -> bool:
        """Re-read the config file and apply proxy changes; False if it was invalid."""
        if self.config_path is None:
            self.log.warn("reload requested but frpc was not started from a config file")
            return False
        try:
            new_config = self.loader(self.config_path)
        except ConfigError as e:
            self.log.error("reload of {path} rejected, keeping the running proxies:\n{errors}",
                           path=self.config_path, errors=str(e))
            return False
        self.apply(new_config)
        return True

    def apply(self, new_config: ClientConfig) -> None:
        """Diff proxies by name against ``new_config`` and (re)register what changed."""
        old_client_config = self.client.config
        if _without_proxies(new_config) != _without_proxies(old_client_config):
            self.log.warn("reload: only proxies are reloaded; other changed settings need a restart")
        new = {p.name: p for p in new_config.active_proxies()}
        control = self.client.control if (self.client.control and self.client.control.logged_in) else None
        removed = [name for name in self.proxies if name not in new]
        changed = [name for name in self.proxies if name in new and new[name] != self.proxies[name]]
        added = [name for name in new if name not in self.proxies]
        for name in removed + changed:
            if control is not None:
                control.send(CloseProxy(proxy_name=old_client_config.wire_name(name)))
            del self.proxies[name]
            self.status.pop(name, None)
        # proxies are the only reloadable part: keep the running client config otherwise
        self.client.config = _with_proxies(old_client_config, new_config)
        self.client.dialer.config = self.client.config
        for name in changed + added:
            self.proxies[name] = new[name]
            self._register(control, new[name])
        self.log.info("reload: {added} added, {changed} changed, {removed} removed, {kept} unchanged",
                      added=len(added), changed=len(changed), removed=len(removed),
                      kept=len(self.proxies) - len(added) - len(changed))


def _without_proxies(cfg: ClientConfig) -> ClientConfig:
    import dataclasses

    return dataclasses.replace(cfg, proxies=(), start=(), visitors=())


def _with_proxies(base: ClientConfig, source: ClientConfig) -> ClientConfig:
    import dataclasses

    return dataclasses.replace(base, proxies=source.proxies, start=source.start, visitors=source.visitors)
