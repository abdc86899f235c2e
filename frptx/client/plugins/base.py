# -*- test-case-name: frptx.test.test_plugin_base -*-
"""What every frpc client plugin is: validated options and a protocol factory.

frpc hands a plugin each *started* work connection of its proxy (already past
NewWorkConn/StartWorkConn, possibly behind the encryption/compression
transforms).  A plugin therefore never listens: it is a protocol factory whose
protocols serve exactly one already-connected transport.  The caller does::

    factory = plugin.build(reactor)
    protocol = factory.buildProtocol(peer_address)
    protocol.makeConnection(work_transport)
    protocol.dataReceived(bytes_read_before)  # if any

Options are checked when the plugin is made (``ClientPlugin.from_options``),
so a bad ``plugin`` block fails at config time with the option's key path, the
way frp refuses to start a proxy whose plugin cannot be created.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from twisted.internet.interfaces import IProtocolFactory


class PluginConfigError(ValueError):
    """A plugin's options are unusable; ``path`` is the offending key (e.g. ``plugin.unixPath``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class ClientPlugin:
    """Base of the plugins in :data:`frptx.client.plugins.PLUGINS`.

    Subclasses declare ``name`` (frp's ``plugin.type``) and ``option_names``
    (frp's JSON keys, besides ``type``); ``__init__`` receives the options
    already filtered to those keys and raises :class:`PluginConfigError`.
    """

    name: ClassVar[str] = ""
    #: option keys frp accepts for this plugin (JSON/TOML names), ``type`` excluded
    option_names: ClassVar[tuple[str, ...]] = ()
    #: options that must be non-empty
    required: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: Mapping[str, Any], prefix: str = "plugin") -> None:
        self.options = dict(options)
        self.prefix = prefix

    @classmethod
    def from_options(cls, options: Mapping[str, Any], prefix: str = "plugin") -> ClientPlugin:
        """Check the keys and make the plugin (``prefix`` is the key path of the block)."""
        for key in options:
            if key != "type" and key not in cls.option_names:
                raise PluginConfigError(f"{prefix}.{key}", f"unknown option for plugin {cls.name!r}")
        for key in cls.required:
            if not options.get(key):
                raise PluginConfigError(f"{prefix}.{key}", f"required by plugin {cls.name!r}")
        return cls({k: v for k, v in options.items() if k != "type"}, prefix)

    def option_str(self, key: str) -> str:
        value = self.options.get(key, "")
        if value is None:
            return ""
        if not isinstance(value, str):
            raise PluginConfigError(f"{self.prefix}.{key}", "must be a string")
        return value

    def option_headers(self, key: str = "requestHeaders") -> dict[str, str]:
        """frp's ``HeaderOperations``: ``{"set": {name: value}}``."""
        value = self.options.get(key) or {}
        if not isinstance(value, Mapping):
            raise PluginConfigError(f"{self.prefix}.{key}", "must be a table with a 'set' table")
        unknown = [k for k in value if k != "set"]
        if unknown:
            raise PluginConfigError(f"{self.prefix}.{key}.{unknown[0]}", "unknown option")
        sets = value.get("set") or {}
        if not isinstance(sets, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in sets.items()):
            raise PluginConfigError(f"{self.prefix}.{key}.set", "must map header names to strings")
        return dict(sets)

    def option_bool(self, key: str, default: bool) -> bool:
        value = self.options.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise PluginConfigError(f"{self.prefix}.{key}", "must be true or false")
        return value

    def build(self, reactor: Any) -> IProtocolFactory:
        """The factory whose protocols each serve one started work connection."""
        raise NotImplementedError


def split_host_port(value: str, path: str) -> tuple[str, int]:
    """``host:port`` / ``[v6]:port`` as Go's ``net.Dial`` takes it (``localAddr``)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise PluginConfigError(path, f"{value!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "127.0.0.1", int(port)
