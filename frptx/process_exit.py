"""Exit the twistd process with a chosen status.

twistd always exits 0 once its reactor stops; frp users (and scripts around them)
expect ``loginFailExit`` and fatal start-up errors to exit non-zero.  ``fail``
records the status, stops the reactor so services shut down cleanly (pid file
removed, ports closed), and an ``atexit`` hook applies the status last.
"""
from __future__ import annotations

import atexit
import os
import sys
from typing import Any

_status: list[int] = []


def _apply_status() -> None:
    if _status:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_status[0])


def fail(reactor: Any, status: int = 1) -> None:
    """Stop ``reactor`` and make the process exit with ``status``."""
    if not _status:
        _status.append(status)
        atexit.register(_apply_status)
    if reactor.running:
        reactor.callLater(0, reactor.stop)


def requested_status() -> int | None:
    """The status ``fail`` asked for, if any (for tests)."""
    return _status[0] if _status else None
