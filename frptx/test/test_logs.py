"""Every frptx logger honours ``log.level``: none writes straight to twistd's log."""
from __future__ import annotations

import importlib
import pkgutil

from twisted.logger import Logger
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
        self.assertEqual(stray, [], "loggers that ignore log.level (use frptx.logs.logger())")

    def test_debug_dropped_below_level(self) -> None:
        events: list[dict[str, object]] = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.addCleanup(logs.set_level, "info")
        log = logs.logger()
        logs.set_level("warn")
        log.debug("hidden {x}", x=1)
        log.warn("shown {x}", x=2)
        self.assertEqual([e["x"] for e in events if e.get("log_namespace") == __name__], [2])
