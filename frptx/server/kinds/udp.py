# -*- test-case-name: frptx.test.test_udp -*-
"""frps's ``udp`` proxy: a public UDP port tunnelled over ONE work connection (§5.6).

Every datagram a user sends to ``remotePort`` (a ``UdpIngress`` routes it here)
becomes a ``UDPPacket`` with the user's address on the proxy's single work
connection (taken ``START_DELAY`` after the NewProxyResp, as frps does); every
UDPPacket frpc sends back is written from the public port (``UdpIngress.write``)
to the address it names.  There is no per-user connection, so when the work connection is lost the proxy stays
registered and just takes a new one (briefly backing off if the client does not
deliver one).  While it has none, at most ``MAX_PENDING`` datagrams wait;
more are dropped and counted, like frp's 1024-packet channels.
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Any, Protocol as TypingProtocol, cast

from twisted.internet.defer import CancelledError, Deferred, TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from frptx.protocols.packets import DROP_LOG_INTERVAL, PacketChannel
from frptx.server.ingress import UDP_PORT, UdpIngress
from frptx.server.kind import ProxyKind
from frptx.server.pool import PoolClosed
from frptx.server.proxies import ControlView, ProxyBase, ServerView, WorkConnection
from frptx.wire import NewProxy, StartWorkConn, UDPPacket

#: datagrams kept while the proxy has no work connection
MAX_PENDING = 1024
#: after its NewProxyResp, a new proxy waits this long before taking its first work
#: connection, as frps does: without tcpMux the NewProxyResp (control connection) and
#: the StartWorkConn (work connection) race, and a stock frpc refuses (0.65.0) or
#: black-holes (0.31.2) a work connection for a proxy it does not know to be running
START_DELAY = 0.5
#: frps closes a UDP work connection that delivered nothing (not even a Ping) this long
WORK_READ_TIMEOUT = 60.0
#: waiting for a work connection; a channel that dies sooner than MIN_LIFETIME backs off
RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)
MIN_LIFETIME = 1.0


@dataclasses.dataclass(frozen=True)
class UdpTiming:
    """When a udp proxy takes a work connection: frps's values by default, shorter in tests
    (``FrpServer(udp_timing=...)``) so a tunnel does not sit out half a second."""

    start_delay: float = START_DELAY
    retry_delays: tuple[float, ...] = RETRY_DELAYS


DEFAULT_UDP_TIMING = UdpTiming()


class UdpServerView(ServerView, TypingProtocol):
    """What a udp proxy reads of frps besides what every proxy does (``FrpServer`` has it)."""

    @property
    def udp_timing(self) -> UdpTiming: ...


class UdpProxy(ProxyBase):
    """One registered ``udp`` proxy on frps."""

    kind = "udp"

    ingress: UdpIngress | None

    def __init__(self, control: ControlView, msg: NewProxy) -> None:
        super().__init__(control, msg)
        self.reactor = control.server.reactor
        self.timing: UdpTiming = cast(UdpServerView, control.server).udp_timing
        self.channel: PacketChannel | None = None
        self.pending: collections.deque[UDPPacket] = collections.deque()
        #: datagrams dropped here (no work connection, unusable address); the channels count their own
        self.dropped = 0
        self.channels_used = 0
        self._waiting: Deferred[WorkConnection] | None = None
        self._retry: IDelayedCall | None = None
        self._failures = 0
        self._last_drop_log = float("-inf")

    @property
    def total_dropped(self) -> int:
        return self.dropped + (self.channel.dropped if self.channel is not None else 0)

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        """Called once frpc has been sent the NewProxyResp: take a work connection shortly."""
        if self.closed or self._retry is not None:
            return
        self._retry = self.reactor.callLater(self.timing.start_delay, self._take_work_connection)

    def close(self) -> Deferred[None] | None:
        """Stop the work connection and leave the public port; fires when the port is closed."""
        if self.closed:
            return None
        self._cancel_retry()
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.cancel()
        channel, self.channel = self.channel, None
        if channel is not None:
            channel.close()
        self.pending.clear()
        return super().close()

    # -- the work connection ---------------------------------------------------------
    def _take_work_connection(self) -> None:
        self._retry = None
        if self.closed or self.channel is not None or self._waiting is not None:
            return
        control = self.control
        d = control.get_work_connection()
        d.addTimeout(control.server.config.user_conn_timeout, self.reactor)
        self._waiting = d
        d.addCallbacks(self._got_work, self._no_work)
        d.addErrback(lambda f: self.log.failure("udp proxy [{name}]: work connection setup failed", f,
                                                name=self.name))

    def _got_work(self, work: WorkConnection) -> None:
        self._waiting = None
        if self.closed:
            self.control.pool.give_back(work)
            return
        work.start(StartWorkConn(proxy_name=self.name))
        channel = PacketChannel(work.protocol, self.work_codec(), self._from_client, self.reactor,
                                on_lost=self._work_lost, read_timeout=WORK_READ_TIMEOUT,
                                description=f"udp proxy [{self.name}] work connection", limiter=self.limiter)
        self.channel = channel
        self.channels_used += 1
        channel.start()
        if self.channel is not channel:
            return  # lost at once
        self.log.debug("udp proxy [{name}]: work connection ready", name=self.name)
        pending, self.pending = self.pending, collections.deque()
        for packet in pending:
            channel.send(packet)

    def _no_work(self, failure: Failure) -> None:
        self._waiting = None
        if self.closed or failure.check(CancelledError):
            return
        if failure.check(PoolClosed):
            return  # the client is offline: its control closes this proxy
        if failure.check(DeferredTimeout):
            why = f"no work connection from the client within {self.control.server.config.user_conn_timeout}s"
        else:
            why = failure.getErrorMessage()
        self.log.warn("udp proxy [{name}]: {why}", name=self.name, why=why)
        self._schedule_retry()

    def _work_lost(self, channel: PacketChannel) -> None:
        if self.channel is not channel:
            return
        self.channel = None
        self.dropped += channel.dropped
        if self.closed:
            return
        lifetime = self.reactor.seconds() - channel.started_at
        self.log.info("udp proxy [{name}]: work connection lost after {secs:.1f}s, taking a new one",
                      name=self.name, secs=lifetime)
        if lifetime >= MIN_LIFETIME:
            self._failures = 0
            self._take_work_connection()
        else:
            self._schedule_retry()

    def _schedule_retry(self) -> None:
        if self.closed or self._retry is not None:
            return
        delays = self.timing.retry_delays
        delay = delays[min(self._failures, len(delays) - 1)]
        self._failures += 1
        self._retry = self.reactor.callLater(delay, self._take_work_connection)

    def _cancel_retry(self) -> None:
        retry, self._retry = self._retry, None
        if retry is not None and retry.active():
            retry.cancel()

    # -- datagrams -------------------------------------------------------------------
    def user_datagram(self, datagram: bytes, addr: Any) -> None:
        """A user sent ``datagram`` to the public port: tunnel it to frpc."""
        if self.closed:
            return
        self.counter.inbound += len(datagram)
        packet = UDPPacket(content=datagram, remote_addr=(addr[0], addr[1]))
        channel = self.channel
        if channel is not None:
            channel.send(packet)
        elif len(self.pending) < MAX_PENDING:
            self.pending.append(packet)
        else:
            self._drop("no work connection and the queue is full")

    def _from_client(self, packet: UDPPacket) -> None:
        """frpc sent a reply: write it from the public port to the user it names."""
        addr = packet.remote_addr
        ingress = self.ingress
        if addr is None or ingress is None or self.closed:
            self._drop("a reply without a user address")
            return
        try:
            ingress.write(packet.content, addr)
        except Exception as e:  # unreachable/invalid address, EMSGSIZE...: this datagram only
            self._drop(f"cannot send to {addr[0]}:{addr[1]}: {e}")
            return
        self.counter.outbound += len(packet.content)

    def _drop(self, why: str) -> None:
        self.dropped += 1
        now = self.reactor.seconds()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL:
            self._last_drop_log = now
            self.log.warn("udp proxy [{name}]: dropped a datagram ({why}); {n} dropped so far", name=self.name,
                          why=why, n=self.dropped)


def _port_error(port: int, why: str) -> str:
    """frps's udp proxy reports its port manager's errors as "acquire port N error: ..."."""
    return f"acquire port {port} error: {why}"


KIND = ProxyKind("udp", UdpProxy, ingress=UDP_PORT, port_error=_port_error)
