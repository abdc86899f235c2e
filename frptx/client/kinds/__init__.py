# -*- test-case-name: frptx.test.test_protocols_client -*-
"""Proxy kinds on frpc, found by a proxy's ``type`` in a registry.

A kind says two things (``registry.ClientKind``): the fields its NewProxy carries
beyond the common ones, and what to do with a work connection frps started for
one of its proxies.  ``FrpClient.work_started`` looks the kind up by the proxy's
type and hands it the work connection (raw, paused) and its stream codec:
``tcp`` and ``stcp`` dial the local service and relay, ``udp`` and ``sudp`` run a
UDPPacket channel.  Importing this package registers tcp and http; the other
built-in kinds are imported (and registered) when ``kind_for`` first meets them.

How to add a proxy kind (frpc side)
-----------------------------------
1. ``frptx/config/model.py``: a frozen ``<Kind>ProxyConfig(ProxyConfig)`` with the
   kind's own fields and ``type: str = "<kind>"``, entered in ``PROXY_CONFIG_TYPES``;
   ``frptx/config/build.py``: its field builder (checks + values) in ``PROXY_FIELDS``;
   ``frptx/config/schema.py``: its keys in ``_PROXY`` (and, while frptx refuses it,
   its row in ``UNSUPPORTED_FEATURES`` -- delete the row to enable it).
2. ``frptx/client/kinds/<kind>.py``: ``register(ClientKind("<kind>", new_proxy_fields,
   work_started))`` -- reuse ``tcp.relay_to_local`` / ``udp.packet_channel`` when the
   work connection carries a plain stream or UDPPackets.
3. Import the module below, or name it in ``registry._ON_FIRST_USE``.
The frps side has its own kind module (``frptx/server/kinds/``).
"""
from __future__ import annotations

from frptx.client.kinds import http, tcp
from frptx.client.kinds.registry import ClientKind, kind_for, new_proxy_message, register, registered, unregister

__all__ = ["ClientKind", "kind_for", "new_proxy_message", "register", "registered", "unregister",
           "http", "tcp"]
