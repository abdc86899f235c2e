# -*- test-case-name: frptx.test.test_stats -*-
"""frps's statistics: what the dashboard, the REST API and Prometheus read.

The data path keeps only plain integer counters (``TrafficCounter``: bytes each way,
connections, open connections), updated where the relay already touches them.  This
collector *pulls* from those counters when somebody asks (a scrape, an API call) and
at each day boundary, so it costs nothing per byte, and a long-lived connection's
bytes show up while it is still open.

Per proxy it keeps frp's shape: seven days of daily bytes in and out (plus a
lifetime total each way, which never goes down: what Prometheus counters need, as
a seven-day sum drops when a day leaves the window), current connections, last
start and close time, and the proxy's registration; the record outlives the proxy
(status "offline") so the dashboard can show what was there, up to
``max_offline`` records (the oldest closed ones go first), as frp keeps offline
proxies until they are pruned.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

#: days of history per counter, as frp's dashboard shows
HISTORY_DAYS = 7


class Counter(Protocol):
    """The live counters of one proxy (``frptx.protocols.relay.TrafficCounter``)."""

    inbound: int
    outbound: int
    connections: int
    active: int


def local_day(seconds: float) -> int:
    """The local calendar day of ``seconds`` since the epoch, as a day ordinal (frp rolls days locally)."""
    return date.fromtimestamp(seconds).toordinal()


@dataclass
class DailyCounter:
    """Totals for the last ``HISTORY_DAYS`` days; ``days[0]`` is the day ``today``."""

    today: int = 0
    days: list[int] = field(default_factory=lambda: [0] * HISTORY_DAYS)

    def add(self, amount: int, day: int) -> None:
        self.roll(day)
        self.days[0] += amount

    def roll(self, day: int) -> None:
        """Move the window so that ``days[0]`` is ``day``; a clock that went back keeps today's bucket."""
        if self.today == 0:
            self.today = day
        elif day > self.today:
            shift = min(day - self.today, HISTORY_DAYS)
            self.days = [0] * shift + self.days[:HISTORY_DAYS - shift]
            self.today = day

    @property
    def total(self) -> int:
        return sum(self.days)


@dataclass
class ProxyStats:
    """One proxy's record, online or (after it closed) offline."""

    name: str
    kind: str
    user: str = ""
    client_id: str = ""
    run_id: str = ""
    registration: Any = None
    traffic_in: DailyCounter = field(default_factory=DailyCounter)
    traffic_out: DailyCounter = field(default_factory=DailyCounter)
    last_start: float = 0.0
    last_close: float = 0.0
    counter: Counter | None = None
    #: the live counter's values when last pulled (the next pull adds only what is new)
    seen_in: int = 0
    seen_out: int = 0
    closed_connections: int = 0
    #: bytes since this record was created (it outlives restarts of the proxy); never decreases
    total_in: int = 0
    total_out: int = 0

    @property
    def online(self) -> bool:
        return self.counter is not None

    @property
    def current_connections(self) -> int:
        return self.counter.active if self.counter is not None else 0


class StatsCollector:
    """Per-proxy statistics of one frps, kept after proxies close (bounded)."""

    def __init__(self, clock: Callable[[], float] = time.time, max_offline: int = 1000,
                 day_of: Callable[[float], int] = local_day) -> None:
        self._clock = clock
        self._day_of = day_of
        self.max_offline = max_offline
        self._proxies: dict[str, ProxyStats] = {}
        self._offline: OrderedDict[str, None] = OrderedDict()
        self.total_in = DailyCounter()
        self.total_out = DailyCounter()

    # -- fed by the server ---------------------------------------------------
    def proxy_opened(self, name: str, kind: str, counter: Counter, *, user: str = "", client_id: str = "",
                     run_id: str = "", registration: Any = None) -> None:
        """A proxy started (again): its history carries on under the same name."""
        stats = self._proxies.get(name)
        if stats is None or stats.kind != kind:
            stats = ProxyStats(name=name, kind=kind)
            self._proxies[name] = stats
        self._offline.pop(name, None)
        stats.user, stats.client_id, stats.run_id, stats.registration = user, client_id, run_id, registration
        stats.counter = counter
        stats.seen_in, stats.seen_out = counter.inbound, counter.outbound
        stats.last_start = self._clock()

    def proxy_closed(self, name: str) -> None:
        stats = self._proxies.get(name)
        if stats is None or stats.counter is None:
            return
        self._pull(stats, self._day_of(self._clock()))
        stats.closed_connections += stats.counter.connections
        stats.counter = None
        stats.last_close = self._clock()
        self._offline[name] = None
        while len(self._offline) > self.max_offline:
            oldest, _ = self._offline.popitem(last=False)
            del self._proxies[oldest]

    # -- read by the web layer -------------------------------------------------
    def pull(self) -> None:
        """Bring every online proxy's history up to date with its live counters."""
        day = self._day_of(self._clock())
        for stats in self._proxies.values():
            if stats.counter is not None:
                self._pull(stats, day)
        self.total_in.roll(day)
        self.total_out.roll(day)

    def proxy(self, name: str) -> ProxyStats | None:
        stats = self._proxies.get(name)
        if stats is not None and stats.counter is not None:
            self._pull(stats, self._day_of(self._clock()))
        return stats

    def proxies(self) -> Iterator[ProxyStats]:
        self.pull()
        return iter(list(self._proxies.values()))

    def prune_offline(self) -> int:
        """Forget every offline proxy (frp's ``DELETE /api/proxies?status=offline``); returns how many."""
        names = list(self._offline)
        for name in names:
            del self._proxies[name]
        self._offline.clear()
        return len(names)

    def _pull(self, stats: ProxyStats, day: int) -> None:
        counter = stats.counter
        assert counter is not None
        new_in, new_out = counter.inbound - stats.seen_in, counter.outbound - stats.seen_out
        stats.seen_in, stats.seen_out = counter.inbound, counter.outbound
        stats.traffic_in.add(new_in, day)
        stats.traffic_out.add(new_out, day)
        stats.total_in += new_in
        stats.total_out += new_out
        self.total_in.add(new_in, day)
        self.total_out.add(new_out, day)
