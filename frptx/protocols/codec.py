# -*- test-case-name: frptx.test.test_codec -*-
"""Per-proxy ``useEncryption`` / ``useCompression`` on work and visitor connections.

frp transforms the tunnelled byte stream after StartWorkConn (or
NewVisitorConnResp): sending, application bytes go through the snappy framing
encoder, then AES-128-CFB; receiving, the reverse.  ``StreamCodec`` is that pair
(sans-IO), ``CodecTransport`` applies the sending half as a transport wrapper,
and ``CodecRelayEnd`` the receiving half as a relay end, so every proxy type
gets both without a branch in its protocol.  A corrupted stream raises
``ProtocolError``; the relay closes that connection with the reason logged.
"""
from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import ITransport

from frptx import logs
from frptx.protocols.relay import Relay, RelayEnd
from frptx.wire import CfbDecryptor, CfbEncryptor, ProtocolError, SnappyFrameDecoder, SnappyFrameEncoder, derive_key


class StreamCodec:
    """Both directions of one connection's snappy + CFB transform."""

    def __init__(self, secret: str, use_encryption: bool, use_compression: bool) -> None:
        key = derive_key(secret) if use_encryption else b""
        self._encryptor = CfbEncryptor(key) if use_encryption else None
        self._decryptor = CfbDecryptor(key) if use_encryption else None
        self._compressor = SnappyFrameEncoder() if use_compression else None
        self._decompressor = SnappyFrameDecoder() if use_compression else None

    def encode(self, data: bytes) -> bytes:
        if self._compressor is not None:
            data = self._compressor.encode(data)
        if self._encryptor is not None:
            data = self._encryptor.encrypt(data)
        return data

    def decode(self, data: bytes) -> bytes:
        """Plain bytes from wire bytes; raises ``ProtocolError`` on a corrupt stream."""
        if self._decryptor is not None:
            data = self._decryptor.decrypt(data)
        if self._decompressor is not None and data:
            data = self._decompressor.decode(data)
        return data


def stream_codec(secret: str, use_encryption: bool, use_compression: bool) -> StreamCodec | None:
    """The codec for these settings, or None when the stream is sent as is."""
    if not (use_encryption or use_compression):
        return None
    return StreamCodec(secret, use_encryption, use_compression)


class CodecTransport:
    """A transport whose ``write`` encodes first; everything else is the wrapped transport's."""

    def __init__(self, transport: ITransport, codec: StreamCodec) -> None:
        self._transport = transport
        self._codec = codec

    def write(self, data: bytes) -> None:
        encoded = self._codec.encode(data)
        if encoded:
            self._transport.write(encoded)

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CodecRelayEnd(RelayEnd):
    """A relay end that decodes what its transport reads before passing it on."""

    __slots__ = ("codec",)
    log = logs.logger()

    def __init__(self, relay: Relay, transport: ITransport, count_attr: str, codec: StreamCodec) -> None:
        super().__init__(relay, transport, count_attr)
        self.codec = codec

    def data_received(self, data: bytes) -> None:
        try:
            plain = self.codec.decode(data)
        except ProtocolError as e:
            logs.throttle.warn(self.log, "corrupt tunnel stream",
                               "closing a tunnel: corrupt {what} stream from {peer}: {why}",
                               what="encrypted/compressed", peer=self.transport.getPeer(), why=str(e))
            self.relay.abort()
            return
        if plain:
            super().data_received(plain)


def apply_codec(relay: Relay, side: str, codec: StreamCodec | None) -> None:
    """Make relay end ``side`` ("a" or "b") speak ``codec`` on the wire (before ``start``)."""
    if codec is None:
        return
    old: RelayEnd = getattr(relay, side)
    # CodecTransport is the wrapped ITransport for everything but write (it forwards by __getattr__).
    end = CodecRelayEnd(relay, CodecTransport(old.transport, codec), old.count_attr, codec)  # type: ignore[arg-type]
    end.peer = old.peer
    old.peer.peer = end
    setattr(relay, side, end)
