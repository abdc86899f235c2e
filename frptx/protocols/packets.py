# -*- test-case-name: frptx.test.test_udp -*-
"""UDPPacket messages over a work or visitor connection (frp-protocol.md §5.6, §5.7).

udp and sudp tunnels do not relay a byte stream: after StartWorkConn (or
NewVisitorConnResp) both ends exchange v1 ``UDPPacket`` frames, one per
datagram, through the proxy's optional snappy/AES stream transform, plus an
occasional ``Ping`` that keeps idle connections alive.  ``PacketChannel`` is that
exchange over a raw-mode ``MessageProtocol``, shared by frps's udp proxy, frpc's
udp/sudp handler and the sudp visitor.

Datagrams are cheap to lose and expensive to queue, so the channel never lets
memory grow with a slow peer: it is the transport's streaming producer, and
while the transport says "paused" (its write buffer is full) new datagrams are
dropped and counted, as frp drops what does not fit its 1024-packet channels.
A datagram whose frame body would exceed the peer's 10240-byte reader limit is
dropped too: sending it would make the Go reader close the whole tunnel.

With a ``limiter`` (a proxy's ``bandwidthLimit``) a ``LimitedProtocol`` sits
between the channel and the connection: reads pause while the bucket is
overdrawn, and datagrams to send are dropped while it is (frp's limited writer
blocks and its packet channels overflow; frptx drops at once instead of queueing).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.python.failure import Failure
from zope.interface import implementer

from frptx import logs
from frptx.protocols.bandwidth import BandwidthLimiter, LimitedProtocol
from frptx.protocols.codec import StreamCodec
from frptx.protocols.relay import unregister_producer
from frptx.wire import (
    MAX_MESSAGE_SIZE,
    MessageReader,
    MessageWriter,
    Ping,
    ProtocolError,
    UDPPacket,
)
from frptx.wire.frames import HEADER_SIZE

__all__ = ["DROP_LOG_INTERVAL", "PacketChannel", "max_udp_payload"]

#: drops are logged at most this often (seconds), with the running totals
DROP_LOG_INTERVAL = 5.0


def max_udp_payload(remote_addr: tuple[str, int] | None) -> int:
    """The largest datagram whose UDPPacket to ``remote_addr`` still fits a v1 frame."""
    overhead = len(UDPPacket(b"", remote_addr=remote_addr).encode_json()) + len(b'"c":"",')
    return (MAX_MESSAGE_SIZE - overhead) // 4 * 3


@implementer(IPushProducer)
class PacketChannel:
    """UDPPacket frames in and out of one raw-mode ``MessageProtocol``.

    ``on_packet(packet)`` is called for each UDPPacket received; ``on_lost(channel)``
    once when the connection is gone (for whatever reason).  ``read_timeout``
    closes a connection that delivered nothing for that many seconds (frps's
    60 s deadline, which frpc's Pings every 30 s keep from firing).
    """

    log = logs.logger(__name__)

    def __init__(
        self,
        protocol: Any,
        codec: StreamCodec | None,
        on_packet: Callable[[UDPPacket], None],
        clock: IReactorTime,
        *,
        on_lost: Callable[[PacketChannel], None] | None = None,
        read_timeout: float | None = None,
        description: str = "UDP tunnel",
        limiter: BandwidthLimiter | None = None,
    ) -> None:
        self.protocol = protocol
        self.transport = protocol.transport
        #: between the connection and this channel when the proxy's bandwidth is limited
        self.limited: LimitedProtocol | None = None
        if limiter is not None:
            self.limited = LimitedProtocol(limiter, self)  # type: ignore[arg-type]  # speaks IProtocol's names
            self.limited.attach(protocol.transport, paused=True)  # the raw-mode protocol is paused until start
            self.transport = self.limited
        self.codec = codec
        self.on_packet = on_packet
        self.on_lost = on_lost
        self.clock = clock
        self.read_timeout = read_timeout
        self.description = description
        self.reader = MessageReader()
        self.writer = MessageWriter()
        #: the transport's write buffer is full: datagrams are dropped, not queued
        self.paused = False
        self.closed = False
        self.lost = False
        self.started_at = clock.seconds()
        self.packets_in = 0
        self.packets_out = 0
        #: datagrams not sent: ``dropped_busy`` (transport paused) + ``dropped_oversize``
        self.dropped_busy = 0
        self.dropped_oversize = 0
        self._last_drop_log = float("-inf")
        self._logged_drops = 0
        self._last_read = self.started_at
        self._read_timer: Any = None

    @property
    def dropped(self) -> int:
        return self.dropped_busy + self.dropped_oversize

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        """Take over the (paused, raw-mode) protocol: early bytes first, then resume reading."""
        protocol = self.protocol
        protocol.end = self.limited if self.limited is not None else self
        if protocol.closed:
            # closed before we got it (cannot happen when attached right after the
            # message that switched it to raw mode): report it lost at once
            self.closed = True
            protocol.close()
            self.connection_lost(None)
            return
        self.transport.registerProducer(self, True)
        early, eof = protocol.take_early()
        if early:
            self.data_received(early)
        if eof:
            self.read_connection_lost()
            return
        if not self.closed:
            self.transport.resumeProducing()
            self._arm_read_timer()

    def close(self, reason: str | None = None) -> None:
        """Close the connection after pending writes; ``reason`` is logged if given."""
        if self.closed:
            return
        self.closed = True
        self._cancel_read_timer()
        if reason:
            self.log.info("{what}: closing: {reason}", what=self.description, reason=reason)
        unregister_producer(self.transport)
        self.protocol.close()

    def abort(self, reason: str) -> None:
        """Drop the connection now (the peer broke the protocol)."""
        if self.closed and self.lost:
            return
        self.log.warn("{what}: closing: {reason}", what=self.description, reason=reason)
        self.closed = True
        self._cancel_read_timer()
        unregister_producer(self.transport)
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            self.protocol.close()

    # -- IPushProducer: the transport tells us whether it can take more ----------------
    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        self.paused = True

    # -- incoming (the protocol's relay-end interface) ---------------------------------
    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self._last_read = self.clock.seconds()
        try:
            if self.codec is not None:
                data = self.codec.decode(data)
                if not data:
                    return
            self.reader.feed(data)
            while not self.closed:
                msg = self.reader.next_message()
                if msg is None:
                    break
                if isinstance(msg, UDPPacket):
                    self.packets_in += 1
                    self.on_packet(msg)
                elif isinstance(msg, Ping):
                    continue  # keepalive only; frps and frpc never answer it
                else:
                    raise ProtocolError(f"unexpected {type(msg).__name__} message")
        except ProtocolError as e:
            self.abort(str(e))

    def read_connection_lost(self) -> None:
        # The peer finished sending: a UDP tunnel has no half-open use.
        self.close()

    # the IProtocol names, for a LimitedProtocol in front of the channel
    def dataReceived(self, data: bytes) -> None:
        self.data_received(data)

    def readConnectionLost(self) -> None:
        self.read_connection_lost()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.connection_lost(reason)

    def makeConnection(self, transport: Any) -> None:
        pass  # never called: the channel takes over a connected protocol (``start``)

    def connection_lost(self, reason: Failure | None = None) -> None:
        if self.lost:
            return
        self.lost = True
        self.closed = True
        self.paused = True
        self._cancel_read_timer()
        self._report_drops(force=True)
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost(self)

    # -- outgoing -------------------------------------------------------------------
    def send(self, packet: UDPPacket) -> bool:
        """Send one datagram; False if it was dropped (closed, busy, or too large)."""
        if self.closed:
            return False
        if self.paused:
            self.dropped_busy += 1
            self._report_drops()
            return False
        frame = self.writer.encode(packet)
        if len(frame) - HEADER_SIZE > MAX_MESSAGE_SIZE:
            self.dropped_oversize += 1
            self._report_drops()
            return False
        self._write(frame)
        self.packets_out += 1
        return True

    def send_ping(self) -> None:
        """A keepalive; skipped while the transport is busy (it is not idle then)."""
        if not self.closed and not self.paused:
            self._write(self.writer.encode(Ping()))

    def _write(self, frame: bytes) -> None:
        if self.codec is not None:
            frame = self.codec.encode(frame)
        if frame:
            self.transport.write(frame)

    def _report_drops(self, force: bool = False) -> None:
        dropped = self.dropped
        if dropped == self._logged_drops:
            return
        now = self.clock.seconds()
        if not force and now - self._last_drop_log < DROP_LOG_INTERVAL:
            return
        self._last_drop_log = now
        self._logged_drops = dropped
        self.log.warn("{what}: dropped {busy} datagrams while the connection was busy and {big} too large "
                      "for a frame so far", what=self.description, busy=self.dropped_busy,
                      big=self.dropped_oversize)

    # -- read deadline ----------------------------------------------------------------
    def _arm_read_timer(self) -> None:
        if self.read_timeout is None or self.closed:
            return
        due = self._last_read + self.read_timeout - self.clock.seconds()
        self._read_timer = self.clock.callLater(max(due, 0.0), self._read_timer_fired)

    def _read_timer_fired(self) -> None:
        self._read_timer = None
        if self.closed or self.read_timeout is None:
            return
        if self.clock.seconds() - self._last_read >= self.read_timeout:
            self.close(f"nothing received for {self.read_timeout:g}s")
        else:
            self._arm_read_timer()

    def _cancel_read_timer(self) -> None:
        timer, self._read_timer = self._read_timer, None
        if timer is not None and timer.active():
            timer.cancel()
