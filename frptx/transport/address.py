# -*- test-case-name: frptx.test.test_address -*-
"""The port number a listening port is bound to, typed.

``IListeningPort.getHost`` is declared to return any ``IAddress``, which has no
``port``; a port from ``listenTCP``/``listenUDP`` is bound to an IPv4 or IPv6
address, which does.  This narrows it in one place instead of every caller.
"""
from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IListeningPort

__all__ = ["bound_port"]


def bound_port(port: IListeningPort) -> int:
    """The port number ``port`` listens on (the real one when asked for port 0)."""
    host = port.getHost()
    if not isinstance(host, (IPv4Address, IPv6Address)):
        raise TypeError(f"{port!r} is not bound to an IP address: {host!r}")
    return host.port
