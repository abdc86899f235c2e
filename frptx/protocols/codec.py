# -*- test-case-name: frptx.test.test_codec -*-
"""Per-proxy ``useEncryption`` / ``useCompression`` on work and visitor connections.

frp transforms the tunnelled byte stream after StartWorkConn (or
NewVisitorConnResp): sending, application bytes go through the snappy framing
encoder, then AES-128-CFB; receiving, the reverse.  ``StreamCodec`` is that
chain (``frptx.protocols.transforms``); under a relay it becomes a
``TransformWrapper`` on one leg (``Relay(..., a_transforms=...)`` or
``Relay.wrap``), under any other protocol the wrapper is that protocol's
transport.  A corrupted stream raises ``ProtocolError``; the connection is
closed with the reason logged.
"""
from __future__ import annotations

from frptx.protocols.relay import Relay
from frptx.protocols.transforms import CfbTransform, SnappyTransform, StreamTransform, TransformChain
from frptx.wire import derive_key


class StreamCodec(TransformChain):
    """Both directions of one connection's snappy + CFB transform (a ``TransformChain``)."""

    __slots__ = ()

    def __init__(self, secret: str, use_encryption: bool, use_compression: bool) -> None:
        transforms: list[StreamTransform] = []
        if use_compression:
            transforms.append(SnappyTransform())
        if use_encryption:
            transforms.append(CfbTransform(derive_key(secret)))
        super().__init__(transforms)


def stream_codec(secret: str, use_encryption: bool, use_compression: bool) -> StreamCodec | None:
    """The codec for these settings, or None when the stream is sent as is."""
    if not (use_encryption or use_compression):
        return None
    return StreamCodec(secret, use_encryption, use_compression)


def apply_codec(relay: Relay, side: str, codec: TransformChain | None) -> None:
    """Make relay end ``side`` ("a" or "b") speak ``codec`` on the wire (before ``start``).

    Kept for existing callers; new code passes ``a_transforms``/``b_transforms`` to ``Relay``.
    """
    relay.wrap(side, codec)
