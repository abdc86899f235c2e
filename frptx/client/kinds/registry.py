# -*- test-case-name: frptx.test.test_protocols_client -*-
"""The table of proxy kinds frpc runs: ``kind name -> ClientKind``.

Each kind module (``frptx.client.kinds.tcp``, ...) registers one ``ClientKind``
at import; ``frptx.client.kinds`` imports tcp and http, and ``kind_for`` the other
built-in ones when first asked for them.  Later client plugins register the same way.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from frptx.client.context import ClientContext
from frptx.config import ClientConfig, ProxyConfig
from frptx.protocols.client import ClientWorkProtocol
from frptx.protocols.codec import StreamCodec
from frptx.wire import NewProxy

#: runs a work connection frps started for a proxy (already switched to raw bytes, paused)
WorkHandler = Callable[[ClientContext, ProxyConfig, ClientWorkProtocol, "StreamCodec | None"], None]


@dataclass(frozen=True)
class ClientKind:
    """One proxy kind on frpc: what its NewProxy carries and what its work connections do."""

    name: str
    #: the NewProxy fields of this kind, from its config (the common ones are added for it)
    new_proxy_fields: Callable[[Any], dict[str, Any]]
    work_started: WorkHandler


_KINDS: dict[str, ClientKind] = {}
#: built-in kinds registered when first looked up (their modules, in this package): a frpc
#: whose proxies are tcp and http does not keep the secret and UDP kinds (nor frpc's UDP code)
_ON_FIRST_USE = {"stcp": "stcp", "sudp": "sudp", "udp": "udp"}


def register(kind: ClientKind) -> ClientKind:
    """Make ``kind`` the handler of proxies whose ``type`` is ``kind.name``."""
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Forget kind ``name`` (a plugin unloading; tests)."""
    _KINDS.pop(name, None)
    _ON_FIRST_USE.pop(name, None)


def kind_for(name: str) -> ClientKind | None:
    """The registered kind called ``name``, if any."""
    kind = _KINDS.get(name)
    if kind is None and name in _ON_FIRST_USE:
        importlib.import_module(f"{__package__}.{_ON_FIRST_USE.pop(name)}")  # registers it
        kind = _KINDS.get(name)
    return kind


def registered() -> tuple[str, ...]:
    return tuple(dict.fromkeys([*_KINDS, *_ON_FIRST_USE]))


def new_proxy_message(client_config: ClientConfig, proxy: ProxyConfig) -> NewProxy:
    """The NewProxy registering ``proxy`` (wire name carries the ``user.`` prefix)."""
    t = proxy.transport
    kind = kind_for(proxy.type)
    return NewProxy(
        proxy_name=client_config.wire_name(proxy.name),
        proxy_type=proxy.type,
        use_encryption=t.use_encryption,
        use_compression=t.use_compression,
        # frp sends the limit as configured, and the mode only when it is not the default "client"
        bandwidth_limit=t.bandwidth_limit,
        bandwidth_limit_mode="" if t.bandwidth_limit_mode == "client" else t.bandwidth_limit_mode,
        # every proxy carries its loadBalancer settings, as frpc sends them; frps decides what they mean
        group=proxy.load_balancer.group,
        group_key=proxy.load_balancer.group_key,
        metas=dict(proxy.metadatas),
        annotations=dict(proxy.annotations),
        **(kind.new_proxy_fields(proxy) if kind is not None else {}),
    )
