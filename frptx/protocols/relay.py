# -*- test-case-name: frptx.test.test_relay -*-
"""Join two transports byte for byte, with backpressure and half-close.

Every tunnelled byte in frptx (public user <-> work connection on frps, work
connection <-> local service on frpc) goes through ``Relay``.  It keeps memory
bounded the Twisted way: each transport is registered as a *streaming producer*
on the other, so when one side's write buffer fills, the transport pauses reading
on the other side, and resumes it once drained.  A read EOF on one side becomes a
write shutdown (FIN) on the other, so request/response protocols that half-close
keep working; the relay closes both transports once both directions are done or
either connection is lost.

The protocols on both ends stay thin: they forward ``dataReceived``,
``readConnectionLost`` and ``connectionLost`` to their end's ``source``: the
``RelayEnd`` itself, or the ``TransformWrapper`` in front of it when that leg is
encrypted/compressed (``Relay(..., a_transforms=...)``).  A relay only ever
relays between two transports; a wrapped leg's transport is its wrapper.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol as TypingProtocol

from twisted.internet.interfaces import IHalfCloseableProtocol, ITransport
from twisted.python.failure import Failure
from zope.interface import implementer

from frptx import logs
from frptx.protocols.bandwidth import BandwidthLimiter, LimitedProtocol
from frptx.protocols.transforms import TransformChain, TransformWrapper
from frptx.protocols.tuning import tune
from frptx.transport.inline import write_now
from frptx.wire import ProtocolError


class TrafficCounter:
    """Byte counters of one proxy: ``inbound`` = user -> service, ``outbound`` = service -> user."""

    __slots__ = ("inbound", "outbound", "connections", "active")

    def __init__(self) -> None:
        self.inbound = 0
        self.outbound = 0
        self.connections = 0
        self.active = 0


class RelayEndProtocol(TypingProtocol):
    """What a relay end needs from the protocol it serves (for type checking)."""

    def attach_relay_end(self, end: RelayEnd, buffered: bytes) -> None: ...


class RelaySink(TypingProtocol):
    """What a connection's owner forwards its raw events to once it is relayed."""

    def data_received(self, data: bytes) -> None: ...

    def read_connection_lost(self) -> None: ...

    def connection_lost(self, reason: Failure | None = None) -> None: ...


def _supports_half_close(transport: ITransport) -> bool:
    half = getattr(transport, "half_closeable", None)  # a TransformWrapper knows its lower transport
    if half is not None:
        return bool(half)
    return callable(getattr(transport, "loseWriteConnection", None))


@implementer(IHalfCloseableProtocol)
class RelayEnd:
    """One side of a relay: the transport it reads from, and its peer end.

    ``source`` is what the connection's owner feeds: this end, or the wrapper that
    decodes for it (then ``transport`` is that wrapper and ``transforms`` its chain).
    """

    __slots__ = (
        "relay",
        "transport",
        "peer",
        "read_closed",
        "lost",
        "count_attr",
        "source",
        "transforms",
    )

    def __init__(self, relay: Relay, transport: ITransport, count_attr: str) -> None:
        self.relay = relay
        self.transport = transport
        self.peer: RelayEnd = self  # replaced by Relay.__init__
        self.read_closed = False
        self.lost = False
        self.count_attr = count_attr
        self.source: RelaySink = self
        self.transforms: TransformChain | None = None

    def data_received(self, data: bytes) -> None:
        """Bytes read on this side go to the other side's transport."""
        if self.peer.lost:
            return
        counter = self.relay.counter
        if counter is not None:
            setattr(counter, self.count_attr, getattr(counter, self.count_attr) + len(data))
        write_now(self.peer.transport, data)

    def read_connection_lost(self) -> None:
        """This side will send no more: pass the FIN on, keep the other direction open."""
        if self.read_closed:
            return
        self.read_closed = True
        peer = self.peer
        if peer.lost:
            self.relay.close()
        elif peer.read_closed:
            self.relay.close()
        elif _supports_half_close(peer.transport):
            # This side will produce nothing more, so it must stop being the peer's
            # producer first: a TCP transport whose buffer drains while a paused
            # producer is registered resumes that producer instead of sending the FIN.
            unregister_producer(peer.transport)
            peer.transport.loseWriteConnection()  # type: ignore[attr-defined]  # checked just above
        else:
            self.relay.close()

    def connection_lost(self, reason: Failure | None = None) -> None:
        """This side is gone: flush what we owe the other side, then close it."""
        if self.lost:
            return
        self.lost = True
        self.read_closed = True
        self.relay._end_lost(self)

    # the IProtocol names, so a TransformWrapper can deliver to a relay end like to any protocol
    dataReceived = data_received
    readConnectionLost = read_connection_lost
    connectionLost = connection_lost

    def writeConnectionLost(self) -> None:
        pass


class Relay:
    """Relay bytes between transports ``a`` and ``b`` until both are closed.

    ``start()`` registers the producers and resumes both transports; callers pause
    a transport (``pauseProducing``) while it waits for its peer to exist, then hand
    the bytes it already read to ``a_buffered`` / ``b_buffered``.
    """

    log = logs.logger(__name__)

    def __init__(
        self,
        a: ITransport,
        b: ITransport,
        *,
        counter: TrafficCounter | None = None,
        on_close: Callable[[Relay], None] | None = None,
        a_transforms: TransformChain | None = None,
        b_transforms: TransformChain | None = None,
    ) -> None:
        self.counter = counter
        self.a = RelayEnd(self, a, "inbound")
        self.b = RelayEnd(self, b, "outbound")
        self.a.peer = self.b
        self.b.peer = self.a
        self._on_close = on_close
        self.closed = False
        #: the SpliceRelay (or TLSRelay) moving the bytes without Twisted, once switched over
        self.spliced: Any = None
        if a_transforms:
            self.wrap("a", a_transforms)
        if b_transforms:
            self.wrap("b", b_transforms)

    def wrap(self, side: str, chain: TransformChain | None) -> None:
        """Make end ``side`` ("a" or "b") speak ``chain`` on the wire (before ``start``).

        The end's transport becomes a ``TransformWrapper`` over it: what the leg reads
        is decoded before it is relayed, what is relayed to it is encoded.  An empty
        chain changes nothing, so a plain leg keeps its bare transport (and splice).
        """
        if not chain:
            return
        end: RelayEnd = getattr(self, side)
        if end.transforms:
            raise ValueError(f"relay end {side} already has transforms")
        wrapper = TransformWrapper(chain, end, transport=end.transport)
        wrapper.on_error = self._corrupt
        end.transport = wrapper  # a full transport over the leg's own
        end.source = wrapper
        end.transforms = chain

    def limit(self, side: str, limiter: BandwidthLimiter | None) -> None:
        """Hold end ``side``'s traffic, both ways, to ``limiter`` (before ``start``; after ``wrap``).

        A ``LimitedProtocol`` goes between the end and its transport (above the
        leg's transforms, if any, so plain bytes are counted): it pauses the leg's
        reads after a read that overdraws the bucket, and the other leg (the
        producer of what is written here) after such a write.  Nothing is queued.
        The legs' transports are paused until ``start`` (their relayed protocols
        pause them on connect), and the limiter takes that pause over.
        """
        if limiter is None:
            return
        end: RelayEnd = getattr(self, side)
        if isinstance(end.transport, LimitedProtocol):
            raise ValueError(f"relay end {side} is already limited")
        limited = LimitedProtocol(limiter, end)  # type: ignore[arg-type]  # a relay end speaks IProtocol's names
        limited.attach(end.transport, paused=True)
        if end.transforms:
            end.source.wrappedProtocol = limited  # type: ignore[attr-defined]  # the TransformWrapper decodes into it
        else:
            end.source = limited
        end.transport = limited  # type: ignore[assignment]  # a full transport over the leg's own

    @property
    def limited(self) -> bool:
        return isinstance(self.a.transport, LimitedProtocol) or isinstance(self.b.transport, LimitedProtocol)

    def _corrupt(self, error: ProtocolError) -> None:
        self.abort()

    def plain(self) -> bool:
        """Neither leg transforms or limits its bytes (the first condition for splice)."""
        return not (self.a.transforms or self.b.transforms or self.limited)

    def begin(self) -> None:
        """Count the connection and tune both legs (once, whichever path moves the bytes)."""
        if self.counter is not None:
            self.counter.connections += 1
            self.counter.active += 1
        tune(self.a.transport)
        tune(self.b.transport)

    def start(self, a_buffered: bytes = b"", b_buffered: bytes = b"") -> None:
        """Begin relaying: bytes already read from either side are written first."""
        self.begin()
        a, b = self.a.transport, self.b.transport
        # Protocol.transport is typed ITransport, but connection transports (TCP, TLS,
        # yamux streams) are also IConsumers and IPushProducers.
        b.registerProducer(a, True)  # type: ignore[attr-defined]  # b's buffer full -> stop reading a
        a.registerProducer(b, True)  # type: ignore[attr-defined]
        if a_buffered:  # wire bytes: through the leg's wrapper, if it has one
            self.a.source.data_received(a_buffered)
        if b_buffered:
            self.b.source.data_received(b_buffered)
        for end in (self.a, self.b):
            if not end.lost:
                end.transport.resumeProducing()  # type: ignore[attr-defined]  # an IPushProducer (see above)

    def _end_lost(self, end: RelayEnd) -> None:
        peer = end.peer
        if not peer.lost:
            # unregister first: a closed transport must not be asked to produce again
            unregister_producer(peer.transport)
            peer.transport.loseConnection()
        if peer.lost:
            self._finished()

    def close(self) -> None:
        """Close both transports (after their pending writes are flushed)."""
        if self.spliced is not None:
            self.spliced.close()
            return
        for end in (self.a, self.b):
            if not end.lost:
                unregister_producer(end.transport)
                end.transport.loseConnection()

    def abort(self) -> None:
        """Drop both connections now, discarding buffered data."""
        if self.spliced is not None:
            self.spliced.close(abort=True)
            return
        for end in (self.a, self.b):
            if not end.lost:
                abort = getattr(end.transport, "abortConnection", None)
                if abort is not None:
                    abort()
                else:
                    end.transport.loseConnection()

    def _finished(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.counter is not None:
            self.counter.active -= 1
        if self._on_close is not None:
            self._on_close(self)


def unregister_producer(transport: ITransport) -> None:
    """Stop ``transport`` from pulling on its producer (if it has one) before it closes."""
    try:
        transport.unregisterProducer()  # type: ignore[attr-defined]  # connection transports are IConsumers
    except Exception:  # a transport already torn down may refuse; nothing to undo then
        pass
