"""``StatsCollector``: per-proxy daily traffic pulled from live counters, kept after close (bounded)."""
from __future__ import annotations

from twisted.trial import unittest

from frptx.protocols.relay import TrafficCounter
from frptx.server.stats import HISTORY_DAYS, DailyCounter, StatsCollector, local_day

DAY = 86400.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def day_of(seconds: float) -> int:
    return int(seconds // DAY)


class DailyCounterTests(unittest.TestCase):
    def test_roll_shifts_and_forgets_after_seven_days(self) -> None:
        c = DailyCounter()
        c.add(5, 100)
        c.add(3, 101)
        self.assertEqual(c.days, [3, 5, 0, 0, 0, 0, 0])
        c.add(1, 104)
        self.assertEqual(c.days, [1, 0, 0, 3, 5, 0, 0])
        c.roll(110)
        self.assertEqual(c.days, [0, 0, 0, 0, 0, 0, 1])
        c.roll(200)
        self.assertEqual(c.days, [0] * HISTORY_DAYS)

    def test_clock_going_back_keeps_todays_bucket(self) -> None:
        c = DailyCounter()
        c.add(5, 100)
        c.add(2, 99)
        self.assertEqual((c.today, c.days[0]), (100, 7))

    def test_local_day_is_a_calendar_day(self) -> None:
        self.assertEqual(local_day(1_700_000_000.0) - local_day(1_700_000_000.0 - DAY), 1)


class CollectorTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = FakeClock()
        self.stats = StatsCollector(clock=self.clock, max_offline=2, day_of=day_of)

    def test_live_bytes_show_while_the_connection_is_open(self) -> None:
        counter = TrafficCounter()
        self.stats.proxy_opened("web", "tcp", counter, user="u", run_id="r")
        counter.inbound += 100
        counter.outbound += 1000
        counter.active = 1
        web = self.stats.proxy("web")
        assert web is not None
        self.assertEqual((web.traffic_in.days[0], web.traffic_out.days[0], web.current_connections), (100, 1000, 1))
        # the next day: yesterday's bytes move down, new bytes go to the new day
        self.clock.now += DAY
        counter.inbound += 7
        self.stats.pull()
        self.assertEqual(web.traffic_in.days[:2], [7, 100])
        self.assertEqual(self.stats.total_in.days[:2], [7, 100])
        self.assertEqual(self.stats.total_out.days[:2], [0, 1000])

    def test_closed_proxy_is_kept_offline_and_resumes_its_history(self) -> None:
        first = TrafficCounter()
        self.stats.proxy_opened("web", "tcp", first)
        first.inbound = 50
        self.clock.now += 10
        self.stats.proxy_closed("web")
        web = self.stats.proxy("web")
        assert web is not None
        self.assertFalse(web.online)
        self.assertEqual((web.traffic_in.days[0], web.last_close - web.last_start), (50, 10))
        again = TrafficCounter()
        again.inbound = 999  # bytes from before the proxy (re)opened are not this proxy's
        self.stats.proxy_opened("web", "tcp", again)
        again.inbound += 1
        self.assertEqual(self.stats.proxy("web").traffic_in.days[0], 51)  # type: ignore[union-attr]

    def test_offline_records_are_bounded_oldest_first(self) -> None:
        for name in ("a", "b", "c"):
            self.stats.proxy_opened(name, "tcp", TrafficCounter())
        self.stats.proxy_opened("live", "udp", TrafficCounter())
        for name in ("a", "b", "c"):
            self.stats.proxy_closed(name)
        self.assertEqual(sorted(p.name for p in self.stats.proxies()), ["b", "c", "live"])

    def test_prune_offline(self) -> None:
        self.stats.proxy_opened("a", "tcp", TrafficCounter())
        self.stats.proxy_opened("b", "tcp", TrafficCounter())
        self.stats.proxy_closed("a")
        self.assertEqual(self.stats.prune_offline(), 1)
        self.assertEqual([p.name for p in self.stats.proxies()], ["b"])
        self.assertIsNone(self.stats.proxy("a"))

    def test_lifetime_totals_never_go_down(self) -> None:
        """A Prometheus counter must not decrease: the seven-day sum does, the lifetime total does not."""
        counter = TrafficCounter()
        self.stats.proxy_opened("web", "tcp", counter)
        counter.inbound, counter.outbound = 100, 1000
        web = self.stats.proxy("web")
        assert web is not None
        self.assertEqual((web.total_in, web.total_out), (100, 1000))
        self.stats.proxy_closed("web")
        again = TrafficCounter()  # a restarted proxy has a fresh live counter
        self.stats.proxy_opened("web", "tcp", again)
        again.inbound, again.outbound = 5, 7
        self.clock.now += (HISTORY_DAYS + 1) * DAY
        web = self.stats.proxy("web")
        assert web is not None
        self.assertEqual((web.traffic_in.total, web.traffic_out.total), (5, 7))  # the old days left the window
        self.assertEqual((web.total_in, web.total_out), (105, 1007))
