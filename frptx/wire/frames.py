# -*- test-case-name: frptx.test.test_wire_frames -*-
"""v1 message framing: ``u8 type || i64 BE signed length || JSON`` (frp-protocol.md §2).

Sans-IO: :class:`MessageReader` is fed bytes and yields messages,
:class:`MessageWriter` turns messages into bytes.  Both own the optional
AES-CFB stage of the control channel, because the switch to encryption
happens *inside* the byte stream: whatever follows LoginResp in the same read
is already ciphertext, and whatever follows StartWorkConn is relay payload.
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from frptx.wire.errors import ProtocolError
from frptx.wire.messages import MESSAGE_TYPES, Message, loads_object

if TYPE_CHECKING:
    from frptx.wire.crypto import CfbDecryptor, CfbEncryptor

__all__ = ["MAX_MESSAGE_SIZE", "HEADER_SIZE", "encode_message", "decode_body", "MessageReader", "MessageWriter"]

#: golib's reader limit on the JSON body; Go frp never changes it.
MAX_MESSAGE_SIZE = 10240
HEADER_SIZE = 9
_LENGTH = struct.Struct(">q")


def encode_message(msg: Message, legacy: bool = False) -> bytes:
    """Return the complete v1 frame for ``msg``.

    ``legacy=True`` uses the v0.31.2 JSON field set (see :mod:`.messages`).
    Like Go's writer this does not enforce :data:`MAX_MESSAGE_SIZE`; callers
    that can produce large bodies (UDP payloads) must keep them small.
    """
    body = msg.encode_json(legacy=legacy)
    return msg.TYPE + _LENGTH.pack(len(body)) + body


def decode_body(type_byte: bytes, body: bytes) -> Message:
    """Decode one frame body of the given type; raise :class:`ProtocolError` if invalid."""
    cls = MESSAGE_TYPES.get(bytes(type_byte))
    if cls is None:
        raise ProtocolError(f"unknown message type 0x{bytes(type_byte).hex()}")
    return cls.from_json(loads_object(body))


class MessageReader:
    """Incremental v1 frame decoder over a byte stream, with an optional decryption stage.

    Unknown type byte -> ``ProtocolError("unknown message type 0x..")`` (checked
    as soon as the byte arrives, as Go does); length > ``max_size`` or < 0 ->
    :class:`ProtocolError`; body not a JSON object -> :class:`ProtocolError`.
    After an error the reader keeps raising it.

    The buffer is a ``bytearray`` consumed from the front with an offset, so
    a message costs a copy of its own body only.
    """

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        self._pos = 0
        self._decryptor: CfbDecryptor | None = None
        self._error: ProtocolError | None = None

    def feed(self, data: bytes) -> None:
        """Append received bytes (ciphertext once decryption has started)."""
        if self._decryptor is not None:
            data = self._decryptor.decrypt(data)
            if not data:
                return
        if self._pos:
            # Deleting from the front of a bytearray is cheap in CPython.
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_message(self) -> Message | None:
        """Return the next complete message, or ``None`` if more bytes are needed."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if avail < 1:
            return None
        type_byte = bytes(buf[pos : pos + 1])
        try:
            if type_byte not in MESSAGE_TYPES:
                raise ProtocolError(f"unknown message type 0x{type_byte.hex()}")
            if avail < HEADER_SIZE:
                return None
            (length,) = _LENGTH.unpack_from(buf, pos + 1)
            if length < 0:
                raise ProtocolError(f"message length error: {length} is negative")
            if length > self.max_size:
                raise ProtocolError(f"message length exceed the limit: {length} > {self.max_size}")
            end = pos + HEADER_SIZE + length
            if len(buf) < end:
                return None
            body = bytes(buf[pos + HEADER_SIZE : end])
            self._pos = end
            if end == len(buf):
                buf.clear()
                self._pos = 0
            return decode_body(type_byte, body)
        except ProtocolError as e:
            self._error = e
            raise

    def start_decryption(self, decryptor: CfbDecryptor) -> None:
        """Decrypt everything not yet returned as a message, and all later input.

        Call it right after reading LoginResp (client) or after sending it
        (server, on the Login's reader): bytes that came in the same read
        as LoginResp are already part of the encrypted stream.
        """
        if self._decryptor is not None:
            raise RuntimeError("decryption already started")
        self._decryptor = decryptor
        rest = bytes(self._buf[self._pos :])
        self._buf = bytearray()
        self._pos = 0
        if rest:
            self._buf += decryptor.decrypt(rest)

    def take_buffer(self) -> bytes:
        """Return and clear the bytes not consumed as messages (already decrypted).

        Used when a work or visitor connection turns into a raw relay after
        StartWorkConn/NewVisitorConnResp: these bytes are the first payload.
        """
        rest = bytes(self._buf[self._pos :])
        self._buf = bytearray()
        self._pos = 0
        return rest

    @property
    def buffered(self) -> int:
        """Number of (decrypted) bytes waiting to be consumed."""
        return len(self._buf) - self._pos


class MessageWriter:
    """Encodes messages to frames, through the CFB encryptor once it is started."""

    def __init__(self, legacy: bool = False) -> None:
        self.legacy = legacy
        self._encryptor: CfbEncryptor | None = None

    def encode(self, msg: Message) -> bytes:
        """Return the bytes to send for ``msg`` (IV included with the first encrypted one)."""
        frame = encode_message(msg, legacy=self.legacy)
        if self._encryptor is not None:
            return self._encryptor.encrypt(frame)
        return frame

    def start_encryption(self, encryptor: CfbEncryptor) -> None:
        """Encrypt every later frame (after LoginResp was sent or received)."""
        if self._encryptor is not None:
            raise RuntimeError("encryption already started")
        self._encryptor = encryptor
