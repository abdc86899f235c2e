"""Every frptx logger honours ``log.level``: none writes straight to twistd's log."""
from __future__ import annotations

import importlib
import pkgutil

from twisted.logger import Logger, LogLevel
from twisted.trial.unittest import SynchronousTestCase

import frptx
from frptx import logs


class LoggerLevelTests(SynchronousTestCase):
    def test_every_logger_goes_through_the_filter(self) -> None:
        seen, stray = 0, []
        for info in pkgutil.walk_packages(frptx.__path__, "frptx."):
            if ".test" in info.name:
                continue
            module = importlib.import_module(info.name)
            holders = [module] + [v for v in vars(module).values() if isinstance(v, type)
                                  and v.__module__ == module.__name__]
            for holder in holders:
                for name, value in vars(holder).items():
                    if isinstance(value, Logger):
                        seen += 1
                        if value.observer is not logs.observer:
                            stray.append(f"{info.name}.{getattr(holder, '__name__', '')}.{name}")
        self.assertGreater(seen, 5)
        self.assertEqual(stray, [], "loggers that ignore log.level (use frptx.logs.logger(__name__))")

    def test_debug_dropped_below_level(self) -> None:
        events: list[dict[str, object]] = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.addCleanup(logs.set_level, "info")
        log = logs.logger(__name__)
        logs.set_level("warn")
        log.debug("hidden {x}", x=1)
        log.warn("shown {x}", x=2)
        self.assertEqual([e["x"] for e in events if e.get("log_namespace") == __name__], [2])


class LogThrottleTests(SynchronousTestCase):
    """``logs.LogThrottle``: one line per key per interval, the rest counted (issue 10 item 6)."""

    def setUp(self) -> None:
        from twisted.internet.task import Clock
        from twisted.logger import formatEvent

        self.clock = Clock()
        self.events: list[dict] = []
        self.log = Logger(namespace="test", observer=self.events.append)
        self.throttle = logs.LogThrottle(interval=10.0, clock=self.clock)
        self.lines = lambda: [formatEvent(e) for e in self.events]

    def test_flood_becomes_one_line_per_interval(self) -> None:
        for i in range(1000):
            self.throttle.warn(self.log, "refuse", "refusing stream {n}", n=i)
            self.clock.advance(0.001)  # 1000 events in 1 s
        self.assertEqual(self.lines(), ["refusing stream 0"])
        self.clock.advance(8.9)  # 9.9 s after the first
        self.assertFalse(self.throttle.warn(self.log, "refuse", "refusing stream {n}", n=1000))
        self.clock.advance(0.1)
        self.assertTrue(self.throttle.warn(self.log, "refuse", "refusing stream {n}", n=1001))
        self.assertEqual(self.lines(), ["refusing stream 0",
                                        "refusing stream 1001 (1000 similar messages suppressed)"])
        self.assertEqual(self.events[-1]["log_level"], LogLevel.warn)

    def test_keys_are_independent(self) -> None:
        self.throttle.warn(self.log, "a", "a {x}", x=1)
        self.throttle.info(self.log, "b", "b {x}", x=1)
        self.throttle.warn(self.log, "a", "a {x}", x=2)
        self.assertEqual(self.lines(), ["a 1", "b 1"])
        self.assertEqual(self.events[1]["log_level"], LogLevel.info)

    def test_quiet_key_logs_every_event(self) -> None:
        for i in range(3):
            self.throttle.warn(self.log, "k", "event {i}", i=i)
            self.clock.advance(10)
        self.assertEqual(self.lines(), ["event 0", "event 1", "event 2"])

    def test_flush_reports_pending_counts(self) -> None:
        for i in range(5):
            self.throttle.warn(self.log, "k", "event {i}", i=i)
        self.throttle.warn(self.log, "quiet", "once")
        self.throttle.flush()
        self.assertEqual(self.lines(), ["event 0", "once", "event 4 (4 similar messages suppressed)"])
        self.throttle.flush()
        self.assertEqual(len(self.events), 3)

    def test_table_stays_small(self) -> None:
        for i in range(1000):
            self.throttle.warn(self.log, ("peer", i), "peer {i}", i=i)
            self.clock.advance(0.1)
        self.assertLessEqual(len(self.throttle._keys), logs.LogThrottle._PRUNE_AT)
        self.assertEqual(len(self.events), 1000)

    def test_default_clock_is_monotonic(self) -> None:
        throttle = logs.LogThrottle()
        self.assertTrue(throttle.warn(self.log, "k", "x"))
        self.assertFalse(throttle.warn(self.log, "k", "x"))
