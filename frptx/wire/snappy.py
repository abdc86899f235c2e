# -*- test-case-name: frptx.test.test_wire_snappy -*-
"""The snappy *framing* format as frp uses it for ``use_compression`` (frp-protocol.md §4.5).

frp wraps compressed work/visitor connections in golang/snappy's unbuffered
``Writer``/``Reader``: a stream identifier chunk ``ff 06 00 00 "sNaPpY"``,
then per application write one or more chunks of at most 65536 uncompressed
bytes, each ``type(1) || len(3, LE) || masked CRC-32C(4, LE) || data``.
The Go writer uses a compressed chunk (0x00) only when that saves at least
12.5 %, else an uncompressed one (0x01); the Go reader checks every CRC.

The heavy lifting (block compression *and* CRC-32C) happens in ``cramjam``'s
native code: ``cramjam.snappy.compress`` emits exactly the chunk layout and
the 12.5 % rule of golang/snappy (checked against the §9.4 vectors), and
``cramjam.snappy.decompress`` verifies the checksums.  This module adds what
is frp-specific: one stream identifier per stream (not per write),
incremental decoding of a byte stream that arrives in arbitrary pieces, and
Go's reader rules (identifier first, size limits, which chunk types are
skipped or fatal), all reported as :class:`ProtocolError`.

:func:`crc32c` / :func:`masked_crc32c` are a pure-Python reference used by
the tests as an independent check of the CRCs; they are not on the hot path.
"""
from __future__ import annotations

from typing import Any

from frptx.wire.errors import ProtocolError

__all__ = [
    "STREAM_IDENTIFIER",
    "MAX_BLOCK_SIZE",
    "SnappyFrameEncoder",
    "SnappyFrameDecoder",
    "crc32c",
    "masked_crc32c",
]

#: The complete stream identifier chunk that starts every framed stream.
STREAM_IDENTIFIER = b"\xff\x06\x00\x00sNaPpY"
_MAGIC_BODY = b"sNaPpY"
#: Largest amount of uncompressed data one chunk may carry.
MAX_BLOCK_SIZE = 65536
_CHECKSUM_SIZE = 4
#: golang/snappy's read buffer: MaxEncodedLen(65536) + checksum; longer
#: chunks are refused ("unsupported") even if skippable.
_MAX_CHUNK_LEN = (32 + MAX_BLOCK_SIZE + MAX_BLOCK_SIZE // 6) + _CHECKSUM_SIZE

_CHUNK_COMPRESSED = 0x00
_CHUNK_UNCOMPRESSED = 0x01
_CHUNK_STREAM_IDENTIFIER = 0xFF


def _snappy() -> Any:
    """cramjam's snappy, imported on first use: most tunnels never compress, and its
    native library costs 1.4 MiB of resident memory per process."""
    import cramjam

    return cramjam.snappy


class SnappyFrameEncoder:
    """Encode one direction of a compressed connection, write by write.

    Every :meth:`encode` call corresponds to one ``Write`` on Go's
    ``snappy.Writer``: its output is complete chunks, so it can be sent (or
    encrypted) immediately.  Empty input produces no bytes, as in Go.
    """

    def __init__(self) -> None:
        self._header_sent = False

    def encode(self, data: bytes) -> bytes:
        """Return the chunks for ``data``; the first non-empty call starts with the stream identifier."""
        if not data:
            return b""
        framed = bytes(_snappy().compress(bytes(data)))
        if not framed.startswith(STREAM_IDENTIFIER):  # pragma: no cover - cramjam contract
            raise RuntimeError("cramjam did not emit a snappy framing stream")
        if self._header_sent:
            return framed[len(STREAM_IDENTIFIER) :]
        self._header_sent = True
        return framed


class SnappyFrameDecoder:
    """Decode one direction of a compressed connection, fed in arbitrary pieces.

    Rules follow golang/snappy's ``Reader``: the first chunk must be the
    stream identifier (later repeats are allowed); 0x00/0x01 chunks carry
    data whose CRC must match; 0xfe padding and 0x80-0xfd chunks are skipped;
    0x02-0x7f are fatal; chunks larger than Go's buffers are refused.  After
    a :class:`ProtocolError` the decoder stays failed.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._seen_identifier = False
        self._error: ProtocolError | None = None

    def decode(self, data: bytes) -> bytes:
        """Feed ``data``; return the application bytes of every chunk now complete."""
        if self._error is not None:
            raise self._error
        try:
            return self._decode(data)
        except ProtocolError as e:
            self._error = e
            raise

    def _decode(self, data: bytes) -> bytes:
        buf = self._buf
        buf += data
        end = len(buf)
        pos = 0
        chunks: list[bytes] = []
        while end - pos >= 4:
            chunk_type = buf[pos]
            if not self._seen_identifier and chunk_type != _CHUNK_STREAM_IDENTIFIER:
                raise ProtocolError(
                    f"snappy: stream does not start with the stream identifier (chunk type 0x{chunk_type:02x})"
                )
            length = buf[pos + 1] | (buf[pos + 2] << 8) | (buf[pos + 3] << 16)
            if length > _MAX_CHUNK_LEN:
                raise ProtocolError(f"snappy: chunk length {length} exceeds the limit {_MAX_CHUNK_LEN}")
            if chunk_type in (_CHUNK_COMPRESSED, _CHUNK_UNCOMPRESSED):
                if length < _CHECKSUM_SIZE:
                    raise ProtocolError(f"snappy: data chunk of {length} bytes has no room for its checksum")
                if chunk_type == _CHUNK_UNCOMPRESSED and length - _CHECKSUM_SIZE > MAX_BLOCK_SIZE:
                    raise ProtocolError(f"snappy: uncompressed chunk of {length - _CHECKSUM_SIZE} bytes exceeds 65536")
            elif chunk_type == _CHUNK_STREAM_IDENTIFIER:
                if length != len(_MAGIC_BODY):
                    raise ProtocolError(f"snappy: stream identifier chunk has length {length}, expected 6")
            elif chunk_type <= 0x7F:
                raise ProtocolError(f"snappy: reserved unskippable chunk type 0x{chunk_type:02x}")
            stop = pos + 4 + length
            if stop > end:
                break
            if chunk_type == _CHUNK_STREAM_IDENTIFIER:
                if buf[pos + 4 : stop] != _MAGIC_BODY:
                    raise ProtocolError("snappy: bad stream identifier")
                self._seen_identifier = True
            elif chunk_type == _CHUNK_COMPRESSED:
                # The decoded length is the block's leading varint (at most 5 bytes).
                varint = bytes(buf[pos + 8 : min(stop, pos + 13)])
                try:
                    decoded_len = _snappy().decompress_raw_len(varint) if varint else -1
                except Exception as e:
                    raise ProtocolError(f"snappy: corrupt compressed chunk: {e}") from None
                if decoded_len < 0:
                    raise ProtocolError("snappy: corrupt compressed chunk: empty block")
                if decoded_len > MAX_BLOCK_SIZE:
                    raise ProtocolError(f"snappy: compressed chunk decodes to {decoded_len} bytes, more than 65536")
                chunks.append(bytes(buf[pos:stop]))
            elif chunk_type == _CHUNK_UNCOMPRESSED:
                chunks.append(bytes(buf[pos:stop]))
            # else: padding (0xfe) or reserved skippable (0x80-0xfd): ignore.
            pos = stop
        if pos:
            del buf[:pos]
        if not chunks:
            return b""
        # One native call for every complete data chunk: decompress + CRC check.
        try:
            return bytes(_snappy().decompress(STREAM_IDENTIFIER + b"".join(chunks)))
        except Exception as e:
            raise ProtocolError(f"{e}") from None


def _make_crc32c_table() -> tuple[int, ...]:
    poly = 0x82F63B78  # Castagnoli, reflected
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC32C_TABLE = _make_crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``; pure Python reference.

    A per-byte table loop costs roughly 100 ns per byte (about 10 MB/s), far
    too slow for relaying, which is why the codec relies on cramjam's native
    checksum instead; this function exists to cross-check it in tests.
    """
    table = _CRC32C_TABLE
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The checksum a snappy chunk carries: ``rotr15(crc32c) + 0xa282ead8``."""
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF
