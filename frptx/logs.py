# -*- test-case-name: frptx.test.test_process -*-
"""Logging for frptx: one filtered observer that every frptx ``Logger`` writes to.

twistd owns the global log observer and offers no hook to filter it by level, so
frptx's loggers publish through ``observer`` below, whose level follows the
``log.level`` config key (frp's levels: trace, debug, info, warn, error).
"""
from __future__ import annotations

from typing import IO

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


def logger() -> Logger:
    """A ``Logger`` for the calling module that honours ``log.level``."""
    return Logger(namespace=Logger._namespaceFromCallingContext(), observer=observer)
