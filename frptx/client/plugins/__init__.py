# -*- test-case-name: frptx.test.test_plugin_base -*-
"""frpc client plugins (frp's ``proxies[].plugin``), by ``plugin.type``.

Each plugin class takes its options (frp's JSON keys, listed in
``option_names`` so the config layer can validate ``plugin.*`` keys with key
paths) and builds a protocol factory whose protocols each serve one started
work connection; see :mod:`frptx.client.plugins.base`.

A plugin's module is imported when a config first names its type: between them
they pull in twisted.web, the endpoints and pyOpenSSL, about 3 MiB that a frpc
whose proxies use no plugin does not need.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from frptx.client.plugins.base import ClientPlugin, PluginConfigError

#: frp's ``plugin.type`` -> (module in this package, class); ``virtual_net`` is not implemented
_WHERE = {
    "unix_domain_socket": ("unix_domain_socket", "UnixDomainSocketPlugin"),
    "http_proxy": ("http_proxy", "HTTPProxyPlugin"),
    "socks5": ("socks5", "Socks5Plugin"),
    "static_file": ("static_file", "StaticFilePlugin"),
    "http2http": ("reverse", "HTTP2HTTPPlugin"),
    "http2https": ("reverse", "HTTP2HTTPSPlugin"),
    "https2http": ("reverse", "HTTPS2HTTPPlugin"),
    "https2https": ("reverse", "HTTPS2HTTPSPlugin"),
    "tls2raw": ("tls2raw", "TLS2RawPlugin"),
}


class _Registry(Mapping[str, type[ClientPlugin]]):
    """frp's ``plugin.type`` -> plugin class, each imported on first look-up."""

    def __getitem__(self, kind: str) -> type[ClientPlugin]:
        module, name = _WHERE[kind]
        cls: type[ClientPlugin] = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        return cls

    def __iter__(self) -> Iterator[str]:
        return iter(_WHERE)

    def __len__(self) -> int:
        return len(_WHERE)


#: frp's ``plugin.type`` -> plugin class
PLUGINS: Mapping[str, type[ClientPlugin]] = _Registry()


def create_plugin(options: Mapping[str, Any], prefix: str = "plugin") -> ClientPlugin:
    """The plugin for a ``plugin`` block (its ``type`` key picks the class)."""
    kind = options.get("type")
    cls = PLUGINS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise PluginConfigError(f"{prefix}.type", f"plugin [{kind}] is not registered")
    return cls.from_options(options, prefix)


__all__ = ["PLUGINS", "ClientPlugin", "PluginConfigError", "create_plugin"]
