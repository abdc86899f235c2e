# -*- test-case-name: frptx.test.test_e2e -*-
"""Knowing every open connection, so services can stop cleanly.

``stopService`` must return a Deferred that fires only when sockets are really
closed (TLS close_notify flushed, yamux sessions gone).  Protocols register
themselves in their owner's ``ConnectionSet`` at ``connectionMade`` and leave it
at ``connectionLost``; ``close_all`` asks every connection to close, aborts what
is still open after a grace period, and fires once the set is empty.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed

from frptx.protocols.relay import unregister_producer


class ConnectionSet:
    """The open connections (protocols with a ``transport``) owned by one service."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self._live: set[Any] = set()
        self._waiters: list[Deferred[None]] = []
        #: connections that did not close within the grace period and were aborted
        self.aborted = 0

    def __len__(self) -> int:
        return len(self._live)

    def add(self, protocol: Any) -> None:
        self._live.add(protocol)

    def discard(self, protocol: Any) -> None:
        self._live.discard(protocol)
        if not self._live and self._waiters:
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(None)

    def close_all(self, grace: float = 3.0) -> Deferred[None]:
        """Close every connection; abort stragglers after ``grace`` seconds."""
        if not self._live:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        for protocol in list(self._live):
            relay = _relay_of(protocol)
            if relay is not None:
                relay.close()  # a relay may own the sockets (splice): let it close them
            elif getattr(protocol, "transport", None) is not None:
                transport = protocol.transport
                # Nothing may keep producing into a connection we close; TLS, for one,
                # postpones its shutdown until its producer (a yamux session) unregisters.
                unregister_producer(transport)
                transport.loseConnection()

        def abort_stragglers() -> None:
            self.aborted += len(self._live)
            for protocol in list(self._live):
                relay = _relay_of(protocol)
                if relay is not None:
                    relay.abort()
                    continue
                abort = getattr(getattr(protocol, "transport", None), "abortConnection", None)
                if abort is not None:
                    abort()

        timer = self.clock.callLater(grace, abort_stragglers)
        d.addBoth(lambda r: (timer.cancel() if timer.active() else None, r)[1])
        return d


def _relay_of(protocol: Any) -> Any:
    end = getattr(protocol, "end", None)
    return getattr(end, "relay", None)


class TrackedConnection:
    """Mixin for frptx's protocols: joins its owner's ``ConnectionSet``, and says when connected.

    ``tracker`` (set by the owner) is the ``ConnectionSet`` that stopping a service closes
    and awaits.  ``on_connected``, if set, is called once, right after ``connectionMade``:
    frpc's dialer learns that a connection is up this way, with no wrapper protocol in
    front of every read (an endpoint's ``connect`` would add one per connection).
    """

    #: the owner's ConnectionSet, so stopping a service can close and await this connection
    tracker: Any = None
    #: called once after connectionMade (the dialer's notice that this connection is up)
    on_connected: Callable[[], None] | None = None

    def makeConnection(self, transport: Any) -> None:
        if self.tracker is not None:
            self.tracker.add(self)
        super().makeConnection(transport)  # type: ignore[misc]  # the Protocol it is mixed into
        hook = self.on_connected
        if hook is not None:
            self.on_connected = None
            hook()
