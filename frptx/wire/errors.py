# -*- test-case-name: frptx.test.test_wire_frames -*-
"""The single exception type of the sans-IO wire layer.

Every malformed input (bad frame header, undecodable JSON, corrupt snappy
chunk, ...) is reported as :class:`ProtocolError`, so the network glue needs
exactly one ``except`` clause to decide "log the reason, drop the connection",
which is what Go frp does with any read error.
"""
from __future__ import annotations

__all__ = ["ProtocolError"]


class ProtocolError(Exception):
    """A peer sent bytes that violate the frp wire protocol; the connection must be closed."""
