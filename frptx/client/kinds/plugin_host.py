# -*- test-case-name: frptx.test.test_client_plugins_e2e -*-
"""Serving a proxy's work connections with its client plugin (``proxies[].plugin``).

Instead of dialing ``localIP:localPort``, a proxy with a plugin hands each started
work connection to a protocol of the plugin's factory (``frptx.client.plugins``):
through the proxy's encryption/compression transforms (``connect_through``), with
the bytes read before the hand-over replayed.  The factory is made once per proxy
configuration, so options are checked when the config is loaded
(``check_plugins``), with the key path, as frp refuses to start such a proxy.
"""
from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IHalfCloseableProtocol, IProtocolFactory
from twisted.python.failure import Failure

from frptx.client.plugins import PluginConfigError, create_plugin
from frptx.config import ClientConfig, ConfigError, ProxyConfig
from frptx.protocols.codec import StreamCodec
from frptx.protocols.transforms import connect_through

#: proxy types whose work connections a plugin may serve (frp: the TCP-stream kinds)
PLUGIN_KINDS = ("tcp", "stcp", "xtcp", "http", "https", "tcpmux")

_factories: dict[tuple[str, ProxyConfig], IProtocolFactory] = {}


def check_plugins(config: ClientConfig) -> None:
    """Make every active proxy's plugin once; ``ConfigError`` naming ``proxies[i].plugin.<key>``."""
    errors: list[tuple[str, str]] = []
    for i, proxy in enumerate(config.proxies):
        if not proxy.plugin.type:
            continue
        if proxy.type not in PLUGIN_KINDS:
            errors.append((f"proxies[{i}].plugin", f"plugins serve stream proxies, not {proxy.type}"))
            continue
        try:
            create_plugin({"type": proxy.plugin.type, **proxy.plugin.options}, f"proxies[{i}].plugin")
        except PluginConfigError as e:
            errors.append((e.path, e.message))
    if errors:
        raise ConfigError(errors)


def plugin_factory(proxy: ProxyConfig, reactor: Any) -> IProtocolFactory:
    """The plugin protocol factory of ``proxy`` (made on first use, then reused)."""
    key = (proxy.name, proxy)
    factory = _factories.get(key)
    if factory is None:
        for old in [k for k in _factories if k[0] == proxy.name]:  # a reloaded proxy replaces its factory
            del _factories[old]
        plugin = create_plugin({"type": proxy.plugin.type, **proxy.plugin.options}, f"[{proxy.name}].plugin")
        factory = _factories[key] = plugin.build(reactor)
    return factory


class _Forward:
    """The work connection's raw events, handed to the plugin protocol (or its transform wrapper)."""

    def __init__(self, target: Any, work: Any) -> None:
        self.target = target
        self.work = work

    def data_received(self, data: bytes) -> None:
        self.target.dataReceived(data)

    def read_connection_lost(self) -> None:
        if IHalfCloseableProtocol.providedBy(self.target):
            self.target.readConnectionLost()
        else:  # a protocol without half-close: the peer is done, so is the connection
            self.work.close()

    def connection_lost(self, reason: Failure | None = None) -> None:
        self.target.connectionLost(reason)


def serve_with_plugin(reactor: Any, proxy: ProxyConfig, work: Any, codec: StreamCodec | None,
                      src_addr: str = "", src_port: int = 0) -> None:
    """Hand the started, paused work connection ``work`` to ``proxy``'s plugin."""
    address = (IPv6Address if ":" in src_addr else IPv4Address)("TCP", src_addr or "127.0.0.1", src_port)
    protocol = plugin_factory(proxy, reactor).buildProtocol(address)
    if protocol is None:
        work.close()
        return
    early, eof = work.take_early()
    target = connect_through(codec, protocol, work.transport)
    work.end = _Forward(target, work)
    if early:
        target.dataReceived(early)
    if eof:
        work.end.read_connection_lost()
    if work.transport is not None and not work.closed:
        work.transport.resumeProducing()
