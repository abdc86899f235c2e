# -*- test-case-name: frptx.test.test_e2e -*-
"""tcp proxies on frpc: each work connection dials the local service and relays.

With ``transport.proxyProtocolVersion`` the local service first gets a PROXY
protocol header naming the user (StartWorkConn's source) and the frps address
the user reached (its destination), as Go frpc writes it; a header that cannot
be written closes the work connection (frp does the same).
"""
from __future__ import annotations

from typing import Any

from twisted.python.failure import Failure

from frptx import logs
from frptx.client.context import ClientContext
from frptx.client.kinds.plugin_host import serve_with_plugin
from frptx.client.kinds.registry import ClientKind, register
from frptx.config import ProxyConfig
from frptx.protocols.client import ClientWorkProtocol, LocalServiceProtocol
from frptx.protocols.codec import StreamCodec, apply_codec
from frptx.protocols.relay import Relay
from frptx.protocols.relayed import start_relay
from frptx.wire.proxy_protocol import ProxyProtocolError, work_conn_header

LOCAL_DIAL_TIMEOUT = 10.0

log = logs.logger(__name__)


def relay_to_local(client: ClientContext, proxy: ProxyConfig, work: ClientWorkProtocol,
                   codec: StreamCodec | None) -> None:
    """Dial ``localIP:localPort`` and relay the work connection to it (tcp, stcp).

    A proxy with a client plugin serves the work connection with the plugin instead.
    """
    if proxy.plugin.type:
        start = work.start_message
        serve_with_plugin(client.reactor, proxy, work, codec, start.src_addr if start else "",
                          start.src_port if start else 0)
        return
    try:
        header = proxy_protocol_header(proxy, work)
    except ProxyProtocolError as e:
        log.warn("proxy [{name}]: cannot write the PROXY protocol header: {why}", name=proxy.name, why=e)
        work.close()
        return
    local = LocalServiceProtocol()
    local.tracker = client.connections
    counter = client.proxy_manager.counter(proxy.name)
    d = client.connect_local(proxy.local_ip, proxy.local_port, local, LOCAL_DIAL_TIMEOUT)

    def connected(_: object) -> None:
        assert local.transport is not None and work.transport is not None  # both connected
        if work.closed or work.end is not None:
            local.transport.loseConnection()
            return
        if header:
            # before any tunnelled byte; splice sends the transport's pending bytes first
            local.transport.write(header)
        work.relay = Relay(work.transport, local.transport, counter=counter)
        apply_codec(work.relay, "a", codec)
        # bandwidthLimitMode client: frpc holds the proxy's traffic to the limit on the local-service leg
        work.relay.limit("b", client.proxy_manager.limiter(proxy))
        work_early, work_eof = work.take_early()
        local_early, local_eof = local.take_early()
        start_relay(work.relay, work, local, work_early, local_early, work_eof, local_eof,
                    reactor=client.reactor)

    def failed(failure: Failure) -> None:
        log.warn("proxy [{name}]: connect to local service [{ip}:{port}] error: {why}",
                 name=proxy.name, ip=proxy.local_ip, port=proxy.local_port, why=failure.getErrorMessage())
        work.close()

    d.addCallbacks(connected, failed)
    d.addErrback(lambda f: log.failure("proxy [{name}]: relay setup failed", f, name=proxy.name))


def proxy_protocol_header(proxy: ProxyConfig, work: ClientWorkProtocol) -> bytes | None:
    """The PROXY protocol header for this work connection's local service, or None (feature off, no source)."""
    version = proxy.transport.proxy_protocol_version
    msg = work.start_message
    if not version or msg is None:
        return None
    return work_conn_header(version, msg.src_addr, msg.src_port, msg.dst_addr, msg.dst_port)


def remote_port_fields(proxy: Any) -> dict[str, Any]:
    """tcp and udp proxies ask frps for ``remotePort`` (0: frps picks)."""
    return {"remote_port": proxy.remote_port}


KIND = register(ClientKind("tcp", remote_port_fields, relay_to_local))
