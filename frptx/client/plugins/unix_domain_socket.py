# -*- test-case-name: frptx.test.test_plugin_unix_domain_socket -*-
"""``unix_domain_socket``: each work connection is relayed to a Unix socket.

frp dials ``unixPath`` per work connection and joins the two (and writes the
proxy protocol header first when the proxy has one; that header is the
caller's business here: it can be passed as early data).
"""
from __future__ import annotations

from typing import Any, ClassVar

from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.interfaces import IProtocolFactory

from frptx.client.plugins.base import ClientPlugin
from frptx.client.plugins.tunnel import TunnelFactory, TunnelProtocol


class UnixDomainSocketProtocol(TunnelProtocol):
    """Dial the socket as soon as the work connection is attached."""

    def __init__(self, reactor: Any, path: str) -> None:
        super().__init__(reactor)
        self.path = path

    def connectionMade(self) -> None:
        self.dial(UNIXClientEndpoint(self.reactor, self.path))


class UnixDomainSocketPlugin(ClientPlugin):
    name: ClassVar[str] = "unix_domain_socket"
    option_names: ClassVar[tuple[str, ...]] = ("unixPath",)
    required: ClassVar[tuple[str, ...]] = ("unixPath",)

    def __init__(self, options: Any, prefix: str = "plugin") -> None:
        super().__init__(options, prefix)
        self.unix_path = self.option_str("unixPath")

    def build(self, reactor: Any) -> IProtocolFactory:
        return TunnelFactory(lambda: UnixDomainSocketProtocol(reactor, self.unix_path))
