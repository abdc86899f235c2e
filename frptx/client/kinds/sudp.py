# -*- test-case-name: frptx.test.test_e2e_udp -*-
"""sudp proxies on frpc: registered like stcp; work connections carry UDPPackets like udp.

An sudp provider gets one work connection per visitor connection; they run side
by side (``frptx.client.udp.attach_udp_work``).
"""
from __future__ import annotations

from frptx.client.kinds.registry import ClientKind, register
from frptx.client.kinds.stcp import secret_fields
from frptx.client.kinds.udp import packet_channel

KIND = register(ClientKind("sudp", secret_fields, packet_channel))
