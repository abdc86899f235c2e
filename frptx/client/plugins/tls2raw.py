# -*- test-case-name: frptx.test.test_plugin_https -*-
"""``tls2raw``: terminate TLS on the work connection, relay the plaintext to ``localAddr``.

frp completes the handshake first and only then dials ``localAddr``; here the
dial starts when the TLS layer hands the first plaintext-side event over
(``connectionMade`` of the wrapped protocol), i.e. as soon as the work
connection is attached; bytes the client sends meanwhile are held (the
transport is paused).  A failed handshake closes the work connection only.
"""
from __future__ import annotations

from typing import Any, ClassVar

from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IProtocolFactory

from frptx.client.plugins.base import ClientPlugin, split_host_port
from frptx.client.plugins.tls import server_options, tls_server_factory
from frptx.client.plugins.tunnel import TunnelFactory, TunnelProtocol


class TLS2RawProtocol(TunnelProtocol):
    def __init__(self, reactor: Any, host: str, port: int) -> None:
        super().__init__(reactor)
        self.host = host
        self.port = port

    def connectionMade(self) -> None:
        self.dial(HostnameEndpoint(self.reactor, self.host, self.port, timeout=30))


class TLS2RawPlugin(ClientPlugin):
    name: ClassVar[str] = "tls2raw"
    option_names: ClassVar[tuple[str, ...]] = ("localAddr", "crtPath", "keyPath")
    required: ClassVar[tuple[str, ...]] = ("localAddr",)

    def __init__(self, options: Any, prefix: str = "plugin") -> None:
        super().__init__(options, prefix)
        self.host, self.port = split_host_port(self.option_str("localAddr"), f"{prefix}.localAddr")
        self.tls_options = server_options(self.option_str("crtPath"), self.option_str("keyPath"), prefix)

    def build(self, reactor: Any) -> IProtocolFactory:
        inner = TunnelFactory(lambda: TLS2RawProtocol(reactor, self.host, self.port))
        return tls_server_factory(self.tls_options, inner, reactor)
