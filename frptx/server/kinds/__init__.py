# -*- test-case-name: frptx.test.test_server_kinds -*-
"""The proxy kinds frps serves, one module each.

- ``tcp``: a public TCP port per proxy (``kinds/tcp.py``)
- ``udp``: a public UDP port tunnelled over one work connection (``kinds/udp.py``)
- ``stcp``, ``sudp``: no public port, reached through visitors (``kinds/secret.py``)
- ``http``, ``https``, ``tcpmux``: routes on the shared vhostHTTPPort / vhostHTTPSPort /
  tcpmuxHTTPConnectPort (``kinds/http.py``, ``server/vhost_{http,https,tcpmux}.py``)

How to add a proxy kind (frps side)
-----------------------------------
1. Add ``frptx/server/kinds/<kind>.py`` with a ``ProxyBase`` subclass (what the
   proxy does with a user the ingress routes to it: ``user_connected`` for a TCP
   ingress, ``user_datagram`` for a UDP one; ``start``/``close`` for anything it
   runs itself) and ``KIND = ProxyKind("<kind>", YourProxy, ingress=TCP_PORT)``
   (``ingress=None`` if users arrive another way; ``port_error`` if frps words
   port errors differently for it).
2. Register it: one ``registry.register(<kind>.KIND)`` line in ``builtin_kinds``
   below.
3. Add its tests (``frptx/test/``).  Nothing in ``FrpServer`` names a kind: its
   ``register_proxy`` looks the kind up, opens the ingress the kind asks for (with
   the port allocation of that ingress type) and attaches the proxy to it.
A new *ingress* (a virtual-host route, a group listener) is a new class in
``frptx/server/ingress.py`` and a ``PortIngressType``-like opener.
"""
from __future__ import annotations

from frptx.server.kind import KindRegistry
from frptx.server.kinds import http, secret, tcp, udp


def builtin_kinds() -> KindRegistry:
    """A registry of every kind this frps serves."""
    registry = KindRegistry(default="tcp")  # frp's type when a proxy names none
    registry.register(tcp.KIND)
    registry.register(udp.KIND)
    registry.register(secret.STCP)
    registry.register(secret.SUDP)
    registry.register(http.KIND)
    registry.register(http.HTTPS)
    registry.register(http.TCPMUX)
    return registry
