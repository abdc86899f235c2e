# -*- test-case-name: frptx.test.test_process -*-
"""Logging for frptx: one filtered observer that every frptx ``Logger`` writes to.

twistd owns the global log observer and offers no hook to filter it by level, so
frptx's loggers publish through ``observer`` below, whose level follows the
``log.level`` config key (frp's levels: trace, debug, info, warn, error).
"""
from __future__ import annotations

import time
from collections.abc import Hashable
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
    textFileLogObserver,
)

_FRP_LEVELS = {
    "trace": LogLevel.debug,
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
}

_predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)

#: The observer every frptx logger publishes to; it forwards to Twisted's global
#: publisher the events at or above the configured level.
observer: ILogObserver = FilteringLogObserver(globalLogPublisher, [_predicate])

_file_observers: list[ILogObserver] = []


def set_level(level: str) -> None:
    """Apply frp's ``log.level`` to all frptx loggers."""
    _predicate.defaultLogLevel = _FRP_LEVELS.get(level, LogLevel.info)
    _predicate.clearLogLevels()  # the predicate caches its default per namespace


def log_to(destination: str) -> None:
    """Honour frp's ``log.to``: ``console`` leaves twistd's own output alone, any
    other value is a file that frptx's events are appended to as well."""
    if destination in ("", "console"):
        return
    stream: IO[str] = open(destination, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    file_observer = textFileLogObserver(stream)
    _file_observers.append(file_observer)
    globalLogPublisher.addObserver(file_observer)


def logger(namespace: str) -> Logger:
    """A ``Logger`` that honours ``log.level``; pass the module's ``__name__``.

    The namespace is explicit: Twisted's own default comes from inspecting the
    caller's frame, which is private to it.
    """
    return Logger(namespace=namespace, observer=observer)


class _MonotonicClock:
    """``IReactorTime.seconds`` from the monotonic clock: a log throttle needs no reactor."""

    def seconds(self) -> float:
        return time.monotonic()


class LogThrottle:
    """At most one log line per key per ``interval`` seconds; the rest are counted.

    Whatever a remote peer can trigger -- a refused yamux stream, a protocol error, a
    bad login -- it can trigger a million times: one line each filled the disk with
    27 MB in 10 s under a SYN flood.  Through a throttle, the first event of a key is
    logged at once; later ones within ``interval`` are only counted, and the next line
    logged for the key says how many were suppressed since the previous one::

        yamux: refusing stream 9: accept backlog full (41210 similar messages suppressed)

    There is no timer: a count still pending when the flood stops is reported with
    the next event of that key, or by ``flush`` (service stop).  So nothing is ever
    scheduled on a reactor, and the clock is only read (``clock.seconds()``): tests
    inject a ``task.Clock``.  Keys should name the kind of event (not the peer), so
    that the table stays small; expired keys are dropped as the table grows.
    """

    #: drop expired keys once the table holds this many
    _PRUNE_AT = 256

    def __init__(self, interval: float = 10.0, clock: Any = None) -> None:
        self.interval = interval
        self.clock = clock if clock is not None else _MonotonicClock()
        #: key -> [window start, suppressed count, logger, level, format, last kwargs]
        self._keys: dict[Hashable, list[Any]] = {}

    def emit(self, log: Logger, key: Hashable, format: str, level: LogLevel = LogLevel.warn,
             **kwargs: Any) -> bool:
        """Log ``format`` (twisted.logger style) unless ``key`` was logged within the
        interval; returns whether a line was written."""
        now = self.clock.seconds()
        entry = self._keys.get(key)
        if entry is not None and now - entry[0] < self.interval:
            entry[1] += 1
            entry[2:] = [log, level, format, kwargs]
            return False
        suppressed = entry[1] if entry is not None else 0
        if len(self._keys) >= self._PRUNE_AT:
            self._prune(now)
        self._keys[key] = [now, 0, log, level, format, kwargs]
        if suppressed:
            log.emit(level, format + " ({throttled_count} similar messages suppressed)",
                     throttled_count=suppressed, **kwargs)
        else:
            log.emit(level, format, **kwargs)
        return True

    def warn(self, log: Logger, key: Hashable, format: str, **kwargs: Any) -> bool:
        return self.emit(log, key, format, LogLevel.warn, **kwargs)

    def info(self, log: Logger, key: Hashable, format: str, **kwargs: Any) -> bool:
        return self.emit(log, key, format, LogLevel.info, **kwargs)

    def flush(self) -> None:
        """Log the counts still pending (the last event of each such key, with its count)."""
        entries, self._keys = self._keys, {}
        for _start, suppressed, log, level, format, kwargs in entries.values():
            if suppressed:
                log.emit(level, format + " ({throttled_count} similar messages suppressed)",
                         throttled_count=suppressed, **kwargs)

    def _prune(self, now: float) -> None:
        for key, entry in list(self._keys.items()):
            if now - entry[0] >= self.interval:
                del self._keys[key]
                _start, suppressed, log, level, format, kwargs = entry
                if suppressed:
                    log.emit(level, format + " ({throttled_count} similar messages suppressed)",
                             throttled_count=suppressed, **kwargs)


#: The throttle for every line a remote peer can trigger (per kind of event, 10 s).
throttle = LogThrottle()
