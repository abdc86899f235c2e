# -*- test-case-name: frptx.test.test_bandwidth -*-
"""Per-proxy bandwidth limits (``transport.bandwidthLimit`` / ``bandwidthLimitMode``).

What Go frp 0.65.0 does, and this module reproduces:

* ``bandwidthLimit`` is parsed by ``types.BandwidthQuantity``: surrounding
  space is ignored, the unit is exactly ``MB`` (1024 * 1024) or ``KB`` (1024),
  upper case only, after a float (``1.5MB``); bytes = the product truncated to
  an integer.  ``""`` means no limit, and so does any value that is not
  positive.  (:func:`parse_bandwidth`)
* ``bandwidthLimitMode`` ``client`` (default) limits in frpc, ``server`` in
  frps; only the named side limits.
* One ``golang.org/x/time/rate`` limiter per *proxy*, rate = limit bytes/s,
  burst = limit bytes, shared by all of the proxy's connections, and by both
  directions of each: frp wraps a work connection's reads *and* writes with
  the same limiter.  frpc applies it to the raw work connection (before
  encryption and compression), frps to the plain stream (after them).
* The bucket starts full; a read of ``n`` bytes is taken first and then
  *paid for* (the reader waits until the bucket would be back at zero), a
  write waits before it is sent.

:class:`TokenBucket` is the sans-IO core with frp's reservation arithmetic
(``consume(n)`` returns how long the caller must now wait).
:class:`LimitedProtocol` enforces it on a Twisted connection with
backpressure only, in the manner of ``twisted.protocols.policies.
ThrottlingFactory`` but exact and per proxy: after a read that overdraws the
bucket it pauses the transport (no more reads) for the computed delay; after
a write that overdraws it, it pauses the streaming producer registered on it
(the relay's other side).  Nothing is queued: what is in flight is at most
one read or one write, and pauses for the limit and pauses for ordinary
backpressure are tracked separately, so neither resumes what the other
paused.  Wrap each connection of a proxy with the proxy's
:class:`BandwidthLimiter` (:meth:`BandwidthLimiter.wrap` or
:class:`BandwidthLimitingFactory`).
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import (
    IDelayedCall,
    IHalfCloseableProtocol,
    IProtocol,
    IProtocolFactory,
    IPushProducer,
    IReactorTime,
)
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure
from zope.interface import alsoProvides, directlyProvides, implementer, providedBy

__all__ = [
    "KB",
    "MB",
    "parse_bandwidth",
    "TokenBucket",
    "BandwidthLimiter",
    "LimitedProtocol",
    "BandwidthLimitingFactory",
]

KB = 1024
MB = 1024 * 1024
_INT64_MAX = (1 << 63) - 1
# Go strconv.ParseFloat's decimal syntax (hex floats and inf/nan are refused here, see parse_bandwidth)
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def parse_bandwidth(text: str) -> int:
    """``transport.bandwidthLimit`` in bytes per second; ``0`` (or less) means no limit.

    Raises ``ValueError`` with frp's "unit not support" for anything but an
    ``MB``/``KB`` suffix.  Where Go would accept ``inf``, ``nan`` or a hex
    float and end up with a platform-dependent number, frptx refuses them.
    """
    s = text.strip()
    if not s:
        return 0
    if s.endswith("MB"):
        base = MB
    elif s.endswith("KB"):
        base = KB
    else:
        raise ValueError(f"invalid bandwidth limit {text!r}: unit not support (use MB or KB, e.g. 1MB, 512KB)")
    number = s[:-2]
    if not _DECIMAL.fullmatch(number):
        raise ValueError(f"invalid bandwidth limit {text!r}: {number!r} is not a number")
    value = float(number) * base
    if not math.isfinite(value) or abs(value) > _INT64_MAX:
        raise ValueError(f"invalid bandwidth limit {text!r}: out of range")
    return int(value)  # Go's int64(f): truncation toward zero


class TokenBucket:
    """A token bucket with ``golang.org/x/time/rate`` reservation semantics (sans-IO).

    Tokens are bytes.  The bucket starts full (``burst``) and refills at
    ``rate`` per second up to ``burst``.  :meth:`consume` always takes the
    tokens, possibly driving the level negative, and returns the seconds until
    it is back at zero: the time the caller must wait before its next use.
    That is how frp's limited reader and writer use ``WaitN``; a consume
    larger than ``burst`` is allowed (Twisted hands over reads as they come)
    and simply waits longer.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = float(rate)
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        if now > self._last:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now

    @property
    def tokens(self) -> float:
        """The current level (negative while callers owe time)."""
        self._refill()
        return self._tokens

    def consume(self, n: int) -> float:
        """Take ``n`` tokens; return how many seconds to wait before the next use (0 if none)."""
        self._refill()
        self._tokens -= n
        return -self._tokens / self.rate if self._tokens < 0 else 0.0


class BandwidthLimiter:
    """One proxy's limit, shared by all its connections (frp: one limiter per proxy)."""

    def __init__(self, bytes_per_second: int, clock: IReactorTime, burst: int | None = None) -> None:
        self.clock = clock
        self.bucket = TokenBucket(bytes_per_second, burst or bytes_per_second, clock.seconds)

    @classmethod
    def for_proxy(cls, limit: str, mode: str, side: str, clock: IReactorTime) -> BandwidthLimiter | None:
        """frp's rule: a limiter only if ``limit`` parses to a positive rate and ``mode`` names ``side``.

        ``side`` is ``"client"`` in frpc and ``"server"`` in frps.
        """
        rate = parse_bandwidth(limit)
        if rate <= 0 or (mode or "client") != side:
            return None
        return cls(rate, clock)

    def wrap(self, protocol: IProtocol) -> LimitedProtocol:
        """A protocol to hand the real transport; ``protocol`` sees it as its transport."""
        return LimitedProtocol(self, protocol)


class _Gate:
    """Pauses ``target`` while any reason holds; resumes it when the last reason goes."""

    __slots__ = ("target", "reasons")

    def __init__(self, target: IPushProducer | None) -> None:
        self.target = target
        self.reasons: set[str] = set()

    def pause(self, reason: str) -> None:
        was = bool(self.reasons)
        self.reasons.add(reason)
        if not was and self.target is not None:
            self.target.pauseProducing()

    def resume(self, reason: str) -> None:
        if reason not in self.reasons:
            return
        self.reasons.discard(reason)
        if not self.reasons and self.target is not None:
            self.target.resumeProducing()


@implementer(IPushProducer)
class _UpstreamProxy:
    """Registered with the real transport in place of the inner protocol's streaming producer."""

    def __init__(self, owner: LimitedProtocol) -> None:
        self._owner = owner

    def pauseProducing(self) -> None:
        self._owner._write_gate.pause("transport")

    def resumeProducing(self) -> None:
        self._owner._write_gate.resume("transport")

    def stopProducing(self) -> None:
        producer = self._owner._write_gate.target
        if producer is not None:
            producer.stopProducing()


@implementer(IProtocol)
class LimitedProtocol:
    """Sits between a transport and a protocol and holds the connection to the limit.

    To the transport it is the protocol; to the wrapped protocol it is the
    transport (everything it does not override is forwarded).  Half-close is
    passed through both ways.  Limiting writes needs a *streaming* producer
    registered on it (the relay's way); a pull producer is passed through
    unlimited.
    """

    def __init__(self, limiter: BandwidthLimiter, wrapped: IProtocol) -> None:
        self.limiter = limiter
        self.wrapped = wrapped
        self.transport: Any = None
        self._read_gate = _Gate(None)
        self._write_gate = _Gate(None)
        self._read_timer: IDelayedCall | None = None
        self._write_timer: IDelayedCall | None = None
        self.disconnecting = False
        if IHalfCloseableProtocol.providedBy(wrapped):
            alsoProvides(self, IHalfCloseableProtocol)

    # -- protocol face (called by the real transport)

    def makeConnection(self, transport: Any) -> None:
        # claim the transport's interfaces (ITCPTransport, IHalfCloseableTransport, ...), as ProtocolWrapper does
        directlyProvides(self, providedBy(transport), *(
            [IHalfCloseableProtocol] if IHalfCloseableProtocol.providedBy(self.wrapped) else []))
        self.transport = transport
        self._read_gate.target = transport
        self.connectionMade()

    def connectionMade(self) -> None:
        self.wrapped.makeConnection(self)  # type: ignore[arg-type]

    def dataReceived(self, data: bytes) -> None:
        self.wrapped.dataReceived(data)
        delay = self.limiter.bucket.consume(len(data))
        if delay > 0 and self.transport is not None:
            self._read_timer = self._hold(self._read_gate, self._read_timer, delay)

    def readConnectionLost(self) -> None:
        self.wrapped.readConnectionLost()  # type: ignore[attr-defined]

    def writeConnectionLost(self) -> None:
        self.wrapped.writeConnectionLost()  # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure | None = None) -> None:
        for timer in (self._read_timer, self._write_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._read_timer = self._write_timer = None
        self.wrapped.connectionLost(reason)  # type: ignore[arg-type]  # a relay end takes None too

    # the relay's sink names: a relay end's owner feeds its ``source`` (``Relay.limit``)
    data_received = dataReceived
    read_connection_lost = readConnectionLost
    connection_lost = connectionLost

    def attach(self, transport: Any, paused: bool) -> None:
        """Sit on ``transport`` without ``makeConnection`` (a relay leg that is already connected).

        ``paused``: the transport is paused, waiting for the relay; the first
        ``resumeProducing`` (the relay's start) resumes it.
        """
        self.transport = transport
        self._read_gate.target = transport
        if paused:
            self._read_gate.reasons.add("consumer")

    def _hold(self, gate: _Gate, timer: IDelayedCall | None, delay: float) -> IDelayedCall | None:
        """Pause ``gate`` for the limit until ``delay`` from now (extending a pause already running)."""
        if timer is not None and timer.active():
            if timer.getTime() < self.limiter.clock.seconds() + delay:
                timer.reset(delay)
            return timer
        gate.pause("limit")
        return self.limiter.clock.callLater(delay, gate.resume, "limit")

    # -- transport face (called by the wrapped protocol)

    def write(self, data: bytes) -> None:
        delay = self.limiter.bucket.consume(len(data))
        self.transport.write(data)
        if delay > 0 and self._write_gate.target is not None:
            self._write_timer = self._hold(self._write_gate, self._write_timer, delay)

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        self.disconnecting = True
        self.transport.loseConnection()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        if not streaming:
            self.transport.registerProducer(producer, False)
            return
        self._write_gate = _Gate(producer)
        self.transport.registerProducer(_UpstreamProxy(self), True)

    def unregisterProducer(self) -> None:
        if self._write_timer is not None and self._write_timer.active():
            self._write_timer.cancel()
        self._write_timer = None
        self._write_gate = _Gate(None)
        self.transport.unregisterProducer()

    # IPushProducer, for whoever consumes what this connection reads (the relay's backpressure)
    def pauseProducing(self) -> None:
        self._read_gate.pause("consumer")

    def resumeProducing(self) -> None:
        self._read_gate.resume("consumer")

    def stopProducing(self) -> None:
        self.transport.stopProducing()

    @property
    def paused_for_limit(self) -> bool:
        """True while reads or the registered producer are held back by the limit (for tests and stats)."""
        return "limit" in self._read_gate.reasons or "limit" in self._write_gate.reasons

    def __getattr__(self, name: str) -> Any:
        # getPeer, getHost, abortConnection, loseWriteConnection, setTcpNoDelay, ...
        if name.startswith("__") or self.__dict__.get("transport") is None:
            raise AttributeError(name)
        return getattr(self.__dict__["transport"], name)


class BandwidthLimitingFactory(WrappingFactory):
    """Wraps every connection ``wrappedFactory`` builds with one shared :class:`BandwidthLimiter`."""

    def __init__(self, limiter: BandwidthLimiter, wrappedFactory: IProtocolFactory) -> None:
        super().__init__(wrappedFactory)
        self.limiter = limiter

    def buildProtocol(self, addr: Any) -> Any:
        inner = self.wrappedFactory.buildProtocol(addr)
        if inner is None:
            return None
        return LimitedProtocol(self.limiter, inner)

