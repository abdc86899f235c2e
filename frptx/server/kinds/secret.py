# -*- test-case-name: frptx.test.test_e2e_visitors -*-
"""frps's ``stcp`` and ``sudp`` proxies: no public port, reached only through visitors.

frps does not look inside: the visitor connection's bytes (a TCP stream for
stcp, UDPPacket messages for sudp) are relayed to a work connection of the
provider, each side with its own encryption/compression.  The two kinds differ
only on frpc, so one class serves both.
"""
from __future__ import annotations

from frptx.server.kind import ProxyKind
from frptx.server.proxies import ControlView, ProxyBase
from frptx.wire import NewProxy


class SecretProxy(ProxyBase):
    """An ``stcp`` or ``sudp`` proxy."""

    accepts_visitors = True

    def __init__(self, control: ControlView, msg: NewProxy) -> None:
        super().__init__(control, msg)
        self.kind = msg.proxy_type

    def allows(self, user: str) -> bool:
        """frp's rule: the provider's own user always; ``allowUsers`` adds others, ``*`` everyone."""
        allowed = self.msg.allow_users
        return user == self.control.login.user or "*" in allowed or user in allowed


STCP = ProxyKind("stcp", SecretProxy)
SUDP = ProxyKind("sudp", SecretProxy)
