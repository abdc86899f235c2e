# -*- test-case-name: frptx.test.test_server_kinds -*-
"""Proxy kinds on frps: ``kind -> ProxyKind`` (how to build the proxy, which ingress it needs).

``FrpServer.register_proxy`` looks the NewProxy's ``proxyType`` up here and knows
no kind by name.  The built-in kinds are registered by
``frptx.server.kinds.builtin_kinds``; see that package for how to add one.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from frptx.server.ingress import PortIngressType
from frptx.server.proxies import ControlView, ProxyBase
from frptx.wire import NewProxy


def _as_is(port: int, why: str) -> str:
    return why


class ProxyRefused(Exception):
    """A kind's proxy constructor refuses the NewProxy; ``str()`` is frp's text for NewProxyResp."""


@dataclass(frozen=True)
class ProxyKind:
    """One proxy type as frps serves it."""

    #: the NewProxy ``proxyType`` (frp's ``type``)
    name: str
    #: builds the proxy for a client's NewProxy (cheap: nothing opens before ``attach``/``start``)
    proxy: Callable[[ControlView, NewProxy], ProxyBase]
    #: the public port the proxy needs, or None when users arrive another way (visitors)
    ingress: PortIngressType | None = None
    #: the NewProxyResp error for a port allocation failure ``why`` for ``remotePort``
    port_error: Callable[[int, str], str] = _as_is
    #: whether proxies of this kind may share their ingress in a load-balancing group
    #: (``NewProxy.group``; kinds without groups ignore the field, as frps does for udp)
    groups: bool = False


class KindRegistry:
    """The proxy kinds one frps serves."""

    def __init__(self, default: str = "") -> None:
        self._kinds: dict[str, ProxyKind] = {}
        #: the kind of a NewProxy that names none (frp: tcp)
        self.default = default

    def register(self, kind: ProxyKind) -> None:
        if kind.name in self._kinds:
            raise ValueError(f"proxy kind [{kind.name}] is already registered")
        self._kinds[kind.name] = kind

    def get(self, name: str) -> ProxyKind | None:
        """The kind called ``name`` (the default kind for ``""``), None if not served."""
        return self._kinds.get(name or self.default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)
