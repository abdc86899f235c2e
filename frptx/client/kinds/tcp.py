# -*- test-case-name: frptx.test.test_e2e -*-
"""tcp proxies on frpc: each work connection dials the local service and relays."""
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

LOCAL_DIAL_TIMEOUT = 10.0

log = logs.logger(__name__)


def relay_to_local(client: ClientContext, proxy: ProxyConfig, work: ClientWorkProtocol,
                   codec: StreamCodec | None) -> None:
    """Dial ``localIP:localPort`` and relay the work connection to it (tcp, stcp).

    A proxy with a client plugin serves the work connection with the plugin instead.
    """
    if proxy.plugin.type:
        start = work.start_msg
        serve_with_plugin(client.reactor, proxy, work, codec, start.src_addr if start else "",
                          start.src_port if start else 0)
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
        work.relay = Relay(work.transport, local.transport, counter=counter)
        apply_codec(work.relay, "a", codec)
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


def remote_port_fields(proxy: Any) -> dict[str, Any]:
    """tcp and udp proxies ask frps for ``remotePort`` (0: frps picks)."""
    return {"remote_port": proxy.remote_port}


KIND = register(ClientKind("tcp", remote_port_fields, relay_to_local))
