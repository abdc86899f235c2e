# -*- test-case-name: frptx.test.test_udp -*-
"""udp proxies on frpc: the work connection carries UDPPackets (``frptx.client.udp``)."""
from __future__ import annotations

from frptx.client.context import ClientContext
from frptx.client.kinds.registry import ClientKind, register
from frptx.client.kinds.tcp import remote_port_fields
from frptx.client.udp import attach_udp_work
from frptx.config import ProxyConfig
from frptx.protocols.client import ClientWorkProtocol
from frptx.protocols.codec import StreamCodec


def packet_channel(client: ClientContext, proxy: ProxyConfig, work: ClientWorkProtocol,
                   codec: StreamCodec | None) -> None:
    """Run the work connection as a UDPPacket channel to ``localIP:localPort``, beside the proxy's others (sudp)."""
    attach_udp_work(client, proxy, work, codec, exclusive=False)


def _work_started(client: ClientContext, proxy: ProxyConfig, work: ClientWorkProtocol,
                  codec: StreamCodec | None) -> None:
    # a udp proxy has exactly one work connection: a new one replaces the previous (as in frp)
    attach_udp_work(client, proxy, work, codec, exclusive=True)


KIND = register(ClientKind("udp", remote_port_fields, _work_started))
