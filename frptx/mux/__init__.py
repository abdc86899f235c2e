# -*- test-case-name: frptx.test.test_yamux -*-
"""frptx.mux: yamux stream multiplexing (frp's tcpMux).

``frptx.mux.yamux`` is the sans-IO protocol core; ``frptx.mux.transport`` adapts it to
Twisted so that every stream is an ordinary transport.
"""
from __future__ import annotations

from frptx.mux.transport import YamuxProtocol, YamuxStream
from frptx.mux.yamux import (
    DEFAULT_MAX_STREAM_WINDOW,
    INITIAL_STREAM_WINDOW,
    YamuxError,
    YamuxProtocolError,
    YamuxSession,
)

__all__ = [
    "DEFAULT_MAX_STREAM_WINDOW",
    "INITIAL_STREAM_WINDOW",
    "YamuxError",
    "YamuxProtocol",
    "YamuxProtocolError",
    "YamuxSession",
    "YamuxStream",
]
