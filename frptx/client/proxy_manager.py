# -*- test-case-name: frptx.test.test_protocols_client -*-
"""``ProxyManager``: the client's proxies, registered on every login, reloadable.

After each login it sends NewProxy for every active proxy and logs each
NewProxyResp (a refused proxy does not stop the others).  A proxy frps refused
("already exists", "port already used", ...) is sent again after a bounded
backoff (``RETRY_DELAYS``, ending at Go frpc's fixed 30 s); each retry is one
log line, and ``status`` keeps the phase, frps's error and the next retry time.  ``reload()`` re-reads
the config file and diffs proxies by name, like buildbot's service reconfig:
unchanged proxies keep their connections, removed ones get CloseProxy, new ones
NewProxy, changed ones CloseProxy + NewProxy.  An invalid file is rejected with
a clear log and the running proxies stay as they were.

A proxy with a ``healthCheck`` (and a ``localPort``) follows frp's proxy wrapper
(``client/proxy/proxy_wrapper.go``): its ``HealthChecker`` starts with each login
session (frp builds the wrappers per control) and stops when the session ends,
on reload and on stop.  The proxy stays "new" (unregistered) until a check
passes; once the checker declares it failed, a registered ("running" or "wait
start") proxy is withdrawn with CloseProxy and shows "check failed"; the next
pass registers it again (NewProxy).  A refused proxy is retried only while healthy.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall

from frptx import logs
from frptx.client.context import LoginState
from frptx.client.dialer import Dialer
from frptx.client.health import HealthChecker, Probe, probe_for
from frptx.client.kinds.registry import new_proxy_message
from frptx.config import ClientConfig, ConfigError, ProxyConfig, load_client_config
from frptx.protocols.bandwidth import BandwidthLimiter
from frptx.protocols.relay import TrafficCounter
from frptx.wire import CloseProxy, NewProxyResp

__all__ = ["RETRY_DELAYS", "ProxyManager", "ProxyOwner", "ProxyStatus", "new_proxy_message"]


class ProxyOwner(Protocol):
    """What the proxy manager uses of the client (``FrpClient``)."""

    config: ClientConfig

    @property
    def reactor(self) -> Any: ...

    @property
    def dialer(self) -> Dialer: ...

    @property
    def control(self) -> LoginState | None: ...


#: seconds before NewProxy is sent again after the 1st, 2nd, ... refusal (then the last, for good)
RETRY_DELAYS = (2.0, 4.0, 8.0, 16.0, 30.0)


@dataclass
class ProxyStatus:
    """What frps last said about a proxy (what a status API shows)."""

    phase: str = "new"  # new | wait start | running | start error | check failed
    remote_addr: str = ""
    error: str = ""
    #: when (reactor seconds) NewProxy is sent again after a "start error"
    next_retry: float | None = None
    #: refusals in a row since the last success or login
    failures: int = 0


class ProxyManager(Service):
    """Owns the client's proxy configs and their registration state."""

    log = logs.logger(__name__)
    name = "proxy-manager"

    def __init__(self, client: ProxyOwner, config_path: str | None = None,
                 loader: Callable[[str], ClientConfig] = load_client_config) -> None:
        self.client = client
        self.config_path = config_path
        self.loader = loader
        self.proxies: dict[str, ProxyConfig] = {p.name: p for p in client.config.active_proxies()}
        self.status: dict[str, ProxyStatus] = {name: ProxyStatus() for name in self.proxies}
        self.counters: dict[str, TrafficCounter] = {}
        #: proxy name -> (the config it was made for, its limiter): one limiter per proxy, as in frp
        self._limiters: dict[str, tuple[ProxyConfig, BandwidthLimiter | None]] = {}
        self._waiters: dict[str, list[Deferred[ProxyStatus]]] = {}
        self._running_waiters: dict[str, list[Deferred[ProxyStatus]]] = {}
        self._timers: dict[str, IDelayedCall] = {}
        #: the health checkers of this login session, by proxy name
        self.checkers: dict[str, HealthChecker] = {}
        #: builds a proxy's health probe (tests inject fakes)
        self.probe_factory: Callable[[ProxyConfig], Probe] = self._real_probe

    # -- lookups -----------------------------------------------------------------
    def by_wire_name(self, wire_name: str) -> ProxyConfig | None:
        cfg = self.client.config
        for proxy in self.proxies.values():
            if cfg.wire_name(proxy.name) == wire_name or proxy.name == wire_name:
                return proxy
        return None

    def counter(self, name: str) -> TrafficCounter:
        return self.counters.setdefault(name, TrafficCounter())

    def limiter(self, proxy: ProxyConfig) -> BandwidthLimiter | None:
        """The proxy's client-mode bandwidth limiter, shared by all its connections (None: unlimited).

        A reload that changes the proxy gets a fresh one (its config differs).
        """
        cached = self._limiters.get(proxy.name)
        if cached is not None and cached[0] == proxy:
            return cached[1]
        t = proxy.transport
        limiter = BandwidthLimiter.for_proxy(t.bandwidth_limit, t.bandwidth_limit_mode, "client", self.client.reactor)
        self._limiters[proxy.name] = (proxy, limiter)
        return limiter

    def wait_settled(self, name: str) -> Deferred[ProxyStatus]:
        """Fires with the status once frps has answered this proxy's NewProxy."""
        d: Deferred[ProxyStatus] = Deferred()
        status = self.status.get(name)
        if status is not None and status.phase in ("running", "start error"):
            d.callback(status)
        else:
            self._waiters.setdefault(name, []).append(d)
        return d

    def when_running(self, name: str) -> Deferred[ProxyStatus]:
        """Fires with the status once frps has accepted this proxy (now if it has), retries included."""
        d: Deferred[ProxyStatus] = Deferred()
        status = self.status.get(name)
        if status is not None and status.phase == "running":
            d.callback(status)
        else:
            self._running_waiters.setdefault(name, []).append(d)
        return d

    # -- registration ------------------------------------------------------------
    def logged_in(self, control: LoginState) -> None:
        self._stop_checkers()
        for proxy in list(self.proxies.values()):
            self._start(control, proxy)

    def _start(self, control: LoginState | None, proxy: ProxyConfig) -> None:
        """Register ``proxy`` now, or (health-checked) once its first check passes."""
        if not _monitored(proxy):
            self._register(control, proxy)
            return
        self._cancel_timer(proxy.name)
        self.status[proxy.name] = ProxyStatus(phase="new")
        if control is None:
            return  # the next login starts its checker
        hc = proxy.health_check
        checker = HealthChecker(
            self.probe_factory(proxy),
            lambda: self._check_passed(proxy.name),
            lambda: self._check_failed(proxy.name),
            clock=self.client.reactor,
            interval=hc.interval_seconds,
            timeout=hc.timeout_seconds,
            max_failed=hc.max_failed,
            name=proxy.name,
        )
        self.checkers[proxy.name] = checker
        checker.start()

    def _real_probe(self, proxy: ProxyConfig) -> Probe:
        hc = proxy.health_check
        return probe_for(hc.type, proxy.local_ip, proxy.local_port, reactor=self.client.reactor,
                         path=hc.path, headers=hc.http_headers)

    def healthy(self, name: str) -> bool:
        """No health check, or its last verdict was a pass."""
        checker = self.checkers.get(name)
        return checker is None or checker.ok

    def _logged_in_control(self) -> LoginState | None:
        control = self.client.control
        return control if control is not None and control.logged_in else None

    def _check_passed(self, name: str) -> None:
        """frp: a healthy proxy that is "new" or "check failed" (or whose retry waited) sends NewProxy."""
        proxy, status, control = self.proxies.get(name), self.status.get(name), self._logged_in_control()
        if proxy is None or status is None or control is None:
            return
        if status.phase in ("new", "check failed") or (status.phase == "start error" and name not in self._timers):
            self.log.info("proxy [{name}]: health check passed, registering it", name=name)
            self._register(control, proxy, status.failures)

    def _check_failed(self, name: str) -> None:
        """frp: a registered proxy whose checks failed is withdrawn (CloseProxy) and shows "check failed"."""
        status = self.status.get(name)
        if status is None or status.phase not in ("running", "wait start"):
            return
        control = self._logged_in_control()
        if control is not None:
            control.send(CloseProxy(proxy_name=self.client.config.wire_name(name)))
        self._cancel_timer(name)
        self.status[name] = ProxyStatus(phase="check failed")
        self.log.warn("proxy [{name}]: health check failed, proxy closed on frps until it passes again",
                      name=name)

    def _stop_checker(self, name: str) -> None:
        checker = self.checkers.pop(name, None)
        if checker is not None:
            checker.stop()

    def _stop_checkers(self) -> None:
        for name in list(self.checkers):
            self._stop_checker(name)

    def _register(self, control: LoginState | None, proxy: ProxyConfig, failures: int = 0) -> None:
        self._cancel_timer(proxy.name)
        status = ProxyStatus(phase="wait start", failures=failures)
        self.status[proxy.name] = status
        if control is not None:
            control.send(new_proxy_message(self.client.config, proxy))

    def _schedule(self, name: str, delay: float) -> float:
        reactor = self.client.reactor
        self._timers[name] = reactor.callLater(delay, self._retry, name)
        return float(reactor.seconds() + delay)

    def _cancel_timer(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _retry(self, name: str) -> None:
        """Send NewProxy again for a refused proxy, if still logged in."""
        self._timers.pop(name, None)
        proxy = self.proxies.get(name)
        status = self.status.get(name)
        control = self.client.control
        if proxy is None or status is None or status.phase != "start error" or control is None \
                or not control.logged_in:
            return  # gone, or offline: the next login registers every proxy anyway
        if not self.healthy(name):
            return  # frp retries only a healthy proxy; the next passing check registers it
        # the refusal's warning announced this retry; its outcome is the next line
        self.log.debug("proxy [{name}]: registering it again (after {n} refusal{s})", name=name,
                       n=status.failures, s="" if status.failures == 1 else "s")
        self._register(control, proxy, status.failures)

    def new_proxy_response(self, msg: NewProxyResp) -> None:
        proxy = self.by_wire_name(msg.proxy_name)
        if proxy is None:
            self.log.debug("NewProxyResp for proxy [{name}] we no longer have", name=msg.proxy_name)
            return
        previous = self.status.get(proxy.name) or ProxyStatus()
        if previous.phase == "check failed":
            # frp ignores an answer to a NewProxy it has since withdrawn (not "wait start" any more)
            self.log.debug("NewProxyResp for proxy [{name}], withdrawn after a failed check: ignored",
                           name=proxy.name)
            return
        self._cancel_timer(proxy.name)
        if msg.error:
            failures = previous.failures + 1
            delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS)) - 1]
            status = ProxyStatus(phase="start error", error=msg.error, failures=failures,
                                 next_retry=self._schedule(proxy.name, delay))
            self.log.warn("proxy [{name}] start error: {error} (retrying in {delay:g}s)", name=proxy.name,
                          error=msg.error, delay=delay)
        else:
            status = ProxyStatus(phase="running", remote_addr=msg.remote_addr)
            self.log.info("proxy [{name}] started, remote address [{addr}]", name=proxy.name,
                          addr=msg.remote_addr)
        self.status[proxy.name] = status
        for d in self._waiters.pop(proxy.name, []):
            d.callback(status)
        if status.phase == "running":
            for d in self._running_waiters.pop(proxy.name, []):
                d.callback(status)

    def control_lost(self) -> None:
        self._cancel_all()
        self._stop_checkers()
        for name in self.status:
            self.status[name] = ProxyStatus()

    def _cancel_all(self) -> None:
        for name in list(self._timers):
            self._cancel_timer(name)

    def stopService(self) -> None:
        self._cancel_all()
        self._stop_checkers()
        super().stopService()

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
            self._cancel_timer(name)
            self._stop_checker(name)
            self._limiters.pop(name, None)
        # proxies are the only reloadable part: keep the running client config otherwise
        self.client.config = _with_proxies(old_client_config, new_config)
        self.client.dialer.config = self.client.config
        for name in changed + added:
            self.proxies[name] = new[name]
            self._start(control, new[name])
        self.log.info("reload: {added} added, {changed} changed, {removed} removed, {kept} unchanged",
                      added=len(added), changed=len(changed), removed=len(removed),
                      kept=len(self.proxies) - len(added) - len(changed))


def _monitored(proxy: ProxyConfig) -> bool:
    """frp health-checks a proxy only if it has a check type and a local port."""
    return bool(proxy.health_check.type) and proxy.local_port > 0


def _without_proxies(cfg: ClientConfig) -> ClientConfig:
    import dataclasses

    return dataclasses.replace(cfg, proxies=(), start=(), visitors=())


def _with_proxies(base: ClientConfig, source: ClientConfig) -> ClientConfig:
    import dataclasses

    return dataclasses.replace(base, proxies=source.proxies, start=source.start, visitors=source.visitors)
