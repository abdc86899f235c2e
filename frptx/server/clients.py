# -*- test-case-name: frptx.test.test_dashboard -*-
"""The clients frps has seen: online ones and, bounded, those that left.

frp's dashboard lists clients by a key that survives reconnects (``{user}.{clientID}``,
the run id when frpc sends no client id), with when they first and last connected and
when they went away; ``ClientHistory`` keeps exactly that, fed by the registry at each
login and control close.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any


def client_key(user: str, client_id: str, run_id: str) -> str:
    """frp's key for a client across reconnects: ``{user}.{clientID}``, the run id without one."""
    ident = client_id or run_id
    return f"{user}.{ident}" if user else ident


@dataclass(frozen=True)
class SeenClient:
    key: str
    user: str
    client_id: str
    run_id: str
    hostname: str
    os: str
    arch: str
    version: str
    address: str
    first_connected_at: float
    last_connected_at: float
    disconnected_at: float | None = None


class ClientHistory:
    """Clients by ``client_key``: the live control of each online one, at most ``limit`` gone ones."""

    def __init__(self, clock: Callable[[], float] = time.time, limit: int = 1000) -> None:
        self._clock = clock
        self._limit = limit
        self._seen: OrderedDict[str, tuple[SeenClient, Any]] = OrderedDict()

    def online(self, control: Any) -> None:
        """A control logged in (its ``login``, ``run_id`` and ``protocol`` are read)."""
        login = control.login
        key = client_key(login.user, login.client_id, control.run_id)
        now = self._clock()
        old = self._seen.pop(key, None)
        transport = control.protocol.transport
        peer = transport.getPeer() if transport is not None else None
        seen = SeenClient(
            key=key, user=login.user, client_id=login.client_id, run_id=control.run_id,
            hostname=login.hostname, os=login.os, arch=login.arch, version=login.version,
            address=getattr(peer, "host", ""),
            first_connected_at=old[0].first_connected_at if old is not None else now,
            last_connected_at=now)
        self._seen[key] = (seen, control)

    def offline(self, control: Any) -> None:
        """A control closed; a newer login of the same client is left alone."""
        for key, (seen, live) in self._seen.items():
            if live is control:
                self._seen[key] = (replace(seen, disconnected_at=self._clock()), None)
                self._seen.move_to_end(key)
                break
        gone = [key for key, (_, live) in self._seen.items() if live is None]
        for key in gone[:max(0, len(gone) - self._limit)]:
            del self._seen[key]

    def control(self, key: str) -> Any:
        """The live control of client ``key``, or None."""
        entry = self._seen.get(key)
        return entry[1] if entry is not None else None

    def entries(self) -> list[tuple[SeenClient, Any]]:
        """Every client with its live control (None once it left), oldest change first."""
        return list(self._seen.values())
