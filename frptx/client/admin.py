# -*- test-case-name: frptx.test.test_frpc_admin -*-
"""frpc as its admin API sees it (``frptx.web.state.FrpcState``).

Reload through the API and SIGHUP are one code path (``FrpcService.reload``);
``stop`` asks the reactor to stop, so twistd shuts every service down cleanly,
after the response has been written (the web layer calls it later).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from frptx.config import ConfigError as ConfigFileError
from frptx.web.state import ConfigError, ProxyStatus


class FrpcWebState:
    """``FrpcState`` over a running ``FrpcService``."""

    def __init__(self, service: Any, stop: Callable[[], None]) -> None:
        self.service = service
        self._stop = stop

    def server_addr(self) -> str:
        return str(self.service.client.config.server_addr)

    def proxy_statuses(self) -> Sequence[ProxyStatus]:
        manager = self.service.proxy_manager
        out = []
        for name, proxy in manager.proxies.items():
            status = manager.status.get(name)
            plugin = getattr(getattr(proxy, "plugin", None), "type", "") or ""
            out.append(ProxyStatus(
                name=name, type=proxy.type, phase=status.phase if status is not None else "new",
                err=status.error if status is not None else "",
                local_ip=getattr(proxy, "local_ip", "") or "", local_port=getattr(proxy, "local_port", 0) or 0,
                plugin=plugin, remote_addr=status.remote_addr if status is not None else ""))
        return out

    def config_path(self) -> str:
        return self.service.proxy_manager.config_path or ""

    def reload(self, strict: bool) -> Deferred[None]:
        def as_api_error(failure: Failure) -> Failure:
            if failure.check(ConfigFileError):
                return Failure(ConfigError(str(failure.value)))
            return failure

        d: Deferred[None] = self.service.reload()
        return d.addErrback(as_api_error)

    def stop(self) -> None:
        self._stop()
