# -*- test-case-name: frptx.test.test_protocols_server -*-
"""frps's ``tcp`` proxy: users connect to a public TCP port (``remotePort``).

Each user connection the ingress routes here is paused at once and joined to a
work connection of the client (``join_to_work_connection``).  Proxies naming a
``loadBalancer.group`` share one port (``frptx.server.groups``).
"""
from __future__ import annotations

from frptx.server.ingress import TCP_PORT, PublicConnectionProtocol
from frptx.server.kind import ProxyKind
from frptx.server.proxies import ProxyBase, join_to_work_connection


class TcpProxy(ProxyBase):
    """One registered ``tcp`` proxy on frps."""

    kind = "tcp"

    def user_connected(self, user: PublicConnectionProtocol) -> None:
        join_to_work_connection(self, user)


KIND = ProxyKind("tcp", TcpProxy, ingress=TCP_PORT, groups=True)
