# -*- test-case-name: frptx.test.test_sniff -*-
"""
One listening port, several protocols: hand each accepted connection to a
factory chosen by its first bytes.

frps's bind port takes plain frp, frp's C{0x17} marker followed by TLS, and a
raw TLS ClientHello (L{frptx.transport.tls_sniff.PlainOrTLSFactory}); a
virtual-host port shared with it will add "an HTTP method -> the HTTP vhost"
and "C{0x16} -> the HTTPS vhost".  L{FirstBytesFactory} holds the
L{Rule}s, in order; L{FirstBytesProtocol} buffers what arrives until a rule
decides (at most C{max_bytes}, within C{timeout} seconds of the injected
clock), then builds the chosen factory's protocol, connects it to the
transport and replays the bytes read so far (less the rule's C{skip}).

The reactor does not let a protocol be swapped under a transport, so the
dispatcher stays C{transport.protocol} for the life of the connection and
forwards every event, half-close included; after the choice that is one
attribute test per C{dataReceived}.  Producers need nothing: the chosen
protocol talks to the transport directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    ILoggingContext,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from frptx import logs

__all__ = ["FirstBytesFactory", "FirstBytesProtocol", "Rule", "first_bytes_are"]


class Rule(NamedTuple):
    """
    One way to serve a connection.

    @ivar match: given the bytes read so far (never empty), C{True} to take
        the connection, C{False} if it is not for this rule, L{None} if more
        bytes are needed to tell.  Rules are asked in order; an undecided
        rule holds back the rules after it.
    @ivar factory: builds the protocol that gets the connection.
    @ivar skip: leading bytes the rule consumes (frp's C{0x17} marker); the
        rest of what was read is replayed to the protocol.
    @ivar name: for log messages.
    """

    match: Callable[[bytes], bool | None]
    factory: IProtocolFactory
    skip: int = 0
    name: str = ""


def first_bytes_are(prefix: bytes) -> Callable[[bytes], bool | None]:
    """A L{Rule.match} for connections that start with C{prefix}."""
    size = len(prefix)

    def match(data: bytes) -> bool | None:
        if len(data) >= size:
            return data[:size] == prefix
        return None if prefix.startswith(data) else False

    return match


#: what L{FirstBytesFactory.choose} returns while a rule needs more bytes
_UNDECIDED: Any = object()


@implementer(IHalfCloseableProtocol, ILoggingContext)
class FirstBytesProtocol(Protocol):
    """
    Reads the first bytes of an accepted connection, hands it to the protocol
    of the matching rule, and then gets out of the way: every later event is
    forwarded to that delegate.
    """

    factory: FirstBytesFactory
    _log = logs.logger(__name__)

    def __init__(self, factory: FirstBytesFactory, addr: IAddress) -> None:
        self.factory = factory
        self._addr = addr
        self._delegate: IProtocol | None = None
        self._timeout: IDelayedCall | None = None
        self._buffer = b""
        self._done = False

    def logPrefix(self) -> str:
        if ILoggingContext.providedBy(self._delegate):
            return str(self._delegate.logPrefix())
        return self.factory.log_prefix

    def connectionMade(self) -> None:
        self.factory.registerProtocol(self)
        self._timeout = self.factory.clock.callLater(self.factory.timeout, self._timedOut)

    def _cancelTimeout(self) -> None:
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None

    def _timedOut(self) -> None:
        self._timeout = None
        self._done = True
        if self._buffer:
            what = f"the first {len(self._buffer)} bytes matched no protocol"
        else:
            what = "nothing received"
        self._buffer = b""
        logs.throttle.info(
            self._log, "sniff timeout",
            "closing connection from {peer}: {what} within {timeout}s",
            peer=self.transport.getPeer(),  # type: ignore[union-attr]
            what=what,
            timeout=self.factory.timeout,
        )
        self.transport.loseConnection()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if self._delegate is not None:
            self._delegate.dataReceived(data)
            return
        if self._done or not data:
            return
        if self._buffer:
            data = self._buffer + data
        rule = self.factory.choose(data)
        if rule is _UNDECIDED:
            if len(data) < self.factory.max_bytes:
                self._buffer = data
                return
            rule = None
        self._buffer = b""
        self._done = True
        self._cancelTimeout()
        if rule is None:
            self.factory.unmatched(self, data)
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        delegate = rule.factory.buildProtocol(self._addr)
        if delegate is None:
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        self._delegate = delegate
        try:
            delegate.makeConnection(self.transport)  # type: ignore[arg-type]
        except BaseException:
            self._log.failure(
                "setting up the {kind} connection from {peer} failed",
                kind=rule.name or "chosen",
                peer=self.transport.getPeer(),  # type: ignore[union-attr]
            )
            if not getattr(delegate, "connected", True):
                # A wrapper (TLS) failed before the inner protocol was
                # connected: nobody to tell about the loss later.
                self._delegate = None
            self.transport.abortConnection()  # type: ignore[union-attr]
            return
        rest = data[rule.skip:] if rule.skip else data
        if rest:
            delegate.dataReceived(rest)

    def readConnectionLost(self) -> None:
        """
        The peer half-closed.  Pass it on if the delegate understands
        half-close; otherwise close, as the transport would have done for a
        protocol without L{IHalfCloseableProtocol}.
        """
        if self._delegate is not None and IHalfCloseableProtocol.providedBy(self._delegate):
            self._delegate.readConnectionLost()
        else:
            self._done = True
            self._buffer = b""
            self._cancelTimeout()
            self.transport.loseConnection()  # type: ignore[union-attr]

    def writeConnectionLost(self) -> None:
        if self._delegate is not None and IHalfCloseableProtocol.providedBy(self._delegate):
            self._delegate.writeConnectionLost()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancelTimeout()
        self._done = True
        self._buffer = b""
        self.factory.unregisterProtocol(self)
        delegate, self._delegate = self._delegate, None
        if delegate is not None:
            delegate.connectionLost(reason)


class FirstBytesFactory(Factory):
    """
    Serve a listening port with the first L{Rule} that matches a connection's
    first bytes.

    @ivar rules: tried in order (see L{Rule.match}).
    @ivar clock: for the timeout.
    @ivar timeout: seconds a connection may take to send enough bytes.
    @ivar max_bytes: bytes buffered at most while rules are undecided; a
        connection that sent that many without a decision matches none.
    @ivar protocols: the open connections (keys; as
        L{twisted.protocols.policies.WrappingFactory} keeps them).
    """

    noisy = False
    log_prefix = "FirstBytes"

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        clock: IReactorTime,
        timeout: float = 10.0,
        max_bytes: int = 16,
        started: Sequence[IProtocolFactory] = (),
    ) -> None:
        """
        @param started: factories to start and stop with this one (the
            listening port starts and stops only the factory it was given).
        """
        self.rules = tuple(rules)
        self.clock = clock
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._started = tuple(started)
        self.protocols: dict[FirstBytesProtocol, int] = {}

    def choose(self, data: bytes) -> Rule | None:
        """The rule for a connection whose first bytes are C{data}, L{None}
        for none, or C{_UNDECIDED} while one needs more bytes."""
        for rule in self.rules:
            decision = rule.match(data)
            if decision is None:
                return _UNDECIDED  # type: ignore[no-any-return]
            if decision:
                return rule
        return None

    def unmatched(self, protocol: FirstBytesProtocol, data: bytes) -> None:
        """No rule takes the connection; it is closed after this (override to log)."""
        logs.throttle.warn(
            protocol._log, "sniff unmatched",
            "closing connection from {peer}: its first bytes match no protocol",
            peer=protocol.transport.getPeer(),  # type: ignore[union-attr]
        )

    def doStart(self) -> None:
        for factory in self._started:
            factory.doStart()
        super().doStart()

    def doStop(self) -> None:
        for factory in self._started:
            factory.doStop()
        super().doStop()

    def registerProtocol(self, p: FirstBytesProtocol) -> None:
        """Called at C{connectionMade} (a hook for subclasses, as in WrappingFactory)."""
        self.protocols[p] = 1

    def unregisterProtocol(self, p: FirstBytesProtocol) -> None:
        """Called at C{connectionLost}."""
        self.protocols.pop(p, None)

    def buildProtocol(self, addr: IAddress) -> FirstBytesProtocol:  # type: ignore[override]
        return FirstBytesProtocol(self, addr)
