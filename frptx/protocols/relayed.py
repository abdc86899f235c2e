# -*- test-case-name: frptx.test.test_relay -*-
"""Protocols for connections that carry nothing but relayed bytes.

A public user connection on frps and a local-service connection on frpc do no
parsing at all: they wait (paused, so they read at most one chunk) until the other
leg of the tunnel exists, then forward every event to their ``RelayEnd``.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Protocol as TypingProtocol

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from frptx.protocols.relay import Relay, RelaySink
from frptx.protocols.splice import start_spliced
from frptx.protocols.tracking import TrackedConnection

#: loaded by every TLS transport of frptx (``frptx.transport.tls_transport``)
_TLS_INTERNALS = "frptx.transport.internals"


class RelayEndOwner(TypingProtocol):
    """A protocol that hands what it reads to a relay end once there is one."""

    end: RelaySink | None


@implementer(IHalfCloseableProtocol)
class RelayedProtocol(TrackedConnection, Protocol):
    """A byte pipe whose far side is attached later with ``join``."""

    def __init__(self) -> None:
        self.end: RelaySink | None = None
        self._early: list[bytes] = []
        self._early_eof = False
        self.lost = False
        self.lost_reason: Failure | None = None
        self.on_lost: Callable[[Failure | None], None] | None = None

    #: pause at connect until the other leg is attached; False for a protocol that must read
    #: first to know where the bytes go (a vhost router), and pauses itself before joining
    pause_until_joined = True

    def makeConnection(self, transport: Any) -> None:
        """Connect; then, unless the other leg was attached meanwhile, read nothing more
        until it is (backpressure from the start).

        ``connectionMade`` (a public user's, which asks its proxy for a work connection)
        and the dialer's ``on_connected`` notice run first: when either starts the relay at
        once, the socket is never paused, and a reading plain TCP socket goes to the splice
        relay with its poller registration as it is.
        """
        super().makeConnection(transport)
        if self.pause_until_joined and self.end is None and not self.lost and self.transport is not None:
            self.transport.pauseProducing()  # type: ignore[attr-defined]  # connected; an IPushProducer

    def dataReceived(self, data: bytes) -> None:
        end = self.end
        if end is not None:
            end.data_received(data)
        else:
            self._early.append(data)

    def readConnectionLost(self) -> None:
        if self.end is not None:
            self.end.read_connection_lost()
        else:
            self._early_eof = True

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost = True
        self.lost_reason = reason
        if self.tracker is not None:
            self.tracker.discard(self)
        if self.end is not None:
            self.end.connection_lost(reason)
        elif self.on_lost is not None:
            self.on_lost(reason)

    def take_early(self) -> tuple[bytes, bool]:
        """Bytes (and EOF) read before the relay existed."""
        data = b"".join(self._early)
        self._early = []
        return data, self._early_eof


def _start_tls_relayed(relay: Relay, reactor: Any, a_early: bytes, b_early: bytes) -> bool:
    """``frptx.protocols.tlsrelay.start_tls_relayed``, imported only by a process that has TLS
    connections: without frptx's TLS internals loaded, no leg can be a TLS transport, and a
    frps or frpc without TLS never imports pyOpenSSL."""
    if _TLS_INTERNALS not in sys.modules:
        return False
    from frptx.protocols.tlsrelay import start_tls_relayed

    return start_tls_relayed(relay, reactor, a_early, b_early)


def start_relay(relay: Relay, a_end_owner: RelayEndOwner, b_end_owner: RelayEndOwner, a_early: bytes, b_early: bytes,
                a_eof: bool = False, b_eof: bool = False, reactor: Any = None) -> None:
    """Attach ``relay``'s ends to their protocols and start it.

    The owners are protocols with an ``end`` attribute (``RelayedProtocol`` or a
    message protocol in raw mode).  EOFs seen before the relay existed are replayed.
    Given a ``reactor``, a relay between two plain TCP connections runs on splice(2)
    (``frptx.protocols.splice``), one between a plain TCP connection and a TLS one on a
    ``TLSRelay`` (``frptx.protocols.tlsrelay``); every other one on the portable
    producer/consumer path.
    """
    a_end_owner.end = relay.a.source
    b_end_owner.end = relay.b.source
    if reactor is not None and not (a_eof or b_eof) and (start_spliced(relay, reactor, a_early, b_early)
                                                         or _start_tls_relayed(relay, reactor, a_early, b_early)):
        return
    relay.start(a_early, b_early)
    if a_eof:
        relay.a.source.read_connection_lost()
    if b_eof:
        relay.b.source.read_connection_lost()
