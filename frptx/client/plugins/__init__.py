# -*- test-case-name: frptx.test.test_plugin_base -*-
"""frpc client plugins (frp's ``proxies[].plugin``), by ``plugin.type``.

Each plugin class takes its options (frp's JSON keys, listed in
``option_names`` so the config layer can validate ``plugin.*`` keys with key
paths) and builds a protocol factory whose protocols each serve one started
work connection; see :mod:`frptx.client.plugins.base`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from frptx.client.plugins.base import ClientPlugin, PluginConfigError
from frptx.client.plugins.http_proxy import HTTPProxyPlugin
from frptx.client.plugins.reverse import HTTP2HTTPPlugin, HTTP2HTTPSPlugin, HTTPS2HTTPPlugin, HTTPS2HTTPSPlugin
from frptx.client.plugins.socks5 import Socks5Plugin
from frptx.client.plugins.static_file import StaticFilePlugin
from frptx.client.plugins.tls2raw import TLS2RawPlugin
from frptx.client.plugins.unix_domain_socket import UnixDomainSocketPlugin

#: frp's ``plugin.type`` -> plugin class (``virtual_net`` is not implemented)
PLUGINS: dict[str, type[ClientPlugin]] = {
    cls.name: cls
    for cls in (
        UnixDomainSocketPlugin,
        HTTPProxyPlugin,
        Socks5Plugin,
        StaticFilePlugin,
        HTTP2HTTPPlugin,
        HTTP2HTTPSPlugin,
        HTTPS2HTTPPlugin,
        HTTPS2HTTPSPlugin,
        TLS2RawPlugin,
    )
}


def create_plugin(options: Mapping[str, Any], prefix: str = "plugin") -> ClientPlugin:
    """The plugin for a ``plugin`` block (its ``type`` key picks the class)."""
    kind = options.get("type")
    cls = PLUGINS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise PluginConfigError(f"{prefix}.type", f"plugin [{kind}] is not registered")
    return cls.from_options(options, prefix)


__all__ = ["PLUGINS", "ClientPlugin", "PluginConfigError", "create_plugin"]
