# -*- test-case-name: frptx.test.test_protocols_server -*-
"""Which public ports proxies may use, and which they hold.

frps answers NewProxy with frp's own error strings ("port not allowed", "port
already used", "port unavailable", "no available port", "exceed the
max_ports_per_client"), so frpc users see the messages they know.  A port freed
by a closing proxy is only reusable once its socket is really closed:
``released`` remembers that moment so a proxy re-registered right after a
reload or a reconnect waits for it instead of failing with "port unavailable".
"""
from __future__ import annotations

import random
from collections.abc import Iterable

from twisted.internet.defer import Deferred, gatherResults, succeed

from frptx.config import PortRange

#: the ports a NewProxy may name (0 = any); frp's port manager only knows these
MIN_PORT = 1
MAX_PORT = 65535


class PortError(Exception):
    """A NewProxy asked for a port it cannot have; ``str()`` is frp's error text."""


class TooManyPorts(PortError):
    """``maxPortsPerClient`` reached (frp checks it before looking at the port itself)."""


class PortManager:
    """Allocation of public TCP ports across all clients."""

    #: how many random candidates to try for ``remote_port: 0``
    CANDIDATES = 16

    def __init__(self, allow: Iterable[PortRange], max_per_client: int, rng: random.Random | None = None) -> None:
        self.allow = tuple(allow)
        self.max_per_client = max_per_client
        self.used: dict[int, str] = {}  # port -> run id of the owning client
        self._closing: dict[int, Deferred[None]] = {}
        self._previous: dict[str, int] = {}  # proxy name -> last port, for remote_port 0
        self._rng = rng or random.Random()

    def allowed(self, port: int) -> bool:
        return not self.allow or any(r.start <= port <= r.end for r in self.allow)

    def count_for(self, run_id: str) -> int:
        return sum(1 for owner in self.used.values() if owner == run_id)

    def candidates(self, name: str, requested: int, run_id: str) -> list[int]:
        """Ports to try binding, in order; raises ``PortError`` with frp's text."""
        if self.max_per_client > 0 and self.count_for(run_id) >= self.max_per_client:
            raise TooManyPorts("exceed the max_ports_per_client")
        if requested:
            # remotePort comes off the wire as any int64: outside 1..65535 it is simply
            # not one of the ports frp hands out (and would make listen() overflow)
            if not MIN_PORT <= requested <= MAX_PORT or not self.allowed(requested):
                raise PortError("port not allowed")
            if requested in self.used:
                raise PortError("port already used")
            return [requested]
        out: list[int] = []
        previous = self._previous.get(name)
        if previous and previous not in self.used and self.allowed(previous):
            out.append(previous)
        if not self.allow:
            out.append(0)  # let the kernel pick a free ephemeral port
            return out
        total = sum(r.end - r.start + 1 for r in self.allow)
        tries = 0
        while len(out) < self.CANDIDATES and tries < self.CANDIDATES * 4 and tries < total * 4:
            tries += 1
            r = self._rng.choice(self.allow)
            port = self._rng.randint(r.start, r.end)
            if port not in self.used and port not in out:
                out.append(port)
        if not out:
            raise PortError("no available port")
        return out

    def acquire(self, port: int, name: str, run_id: str) -> None:
        self.used[port] = run_id
        self._previous[name] = port

    def release(self, port: int, closed: Deferred[None] | None = None) -> None:
        """Free ``port``; ``closed`` fires once its listening socket is gone."""
        self.used.pop(port, None)
        if closed is not None and not closed.called:
            self._closing[port] = closed

            def done(result: object) -> object:
                if self._closing.get(port) is closed:
                    del self._closing[port]
                return result

            closed.addBoth(done)

    def wait_released(self, ports: Iterable[int]) -> Deferred[None]:
        """Fires once none of ``ports`` is still being closed by us."""
        pending = [self._closing[p] for p in ports if p in self._closing]
        if not pending:
            return succeed(None)
        return gatherResults([_observe(d) for d in pending]).addCallback(lambda _: None)


def _observe(d: Deferred[None]) -> Deferred[None]:
    """A Deferred that fires when ``d`` does, without touching ``d``'s own result."""
    observer: Deferred[None] = Deferred()

    def fire(result: object) -> object:
        observer.callback(None)
        return result

    d.addBoth(fire)
    return observer
