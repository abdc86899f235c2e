"""Tests for frptx.wire.snappy: golang/snappy framing (frp-protocol.md §4.5, §9.4)."""
from __future__ import annotations

import os
import struct

import cramjam
from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from frptx.wire import ProtocolError, SnappyFrameDecoder, SnappyFrameEncoder
from frptx.wire.snappy import STREAM_IDENTIFIER, crc32c, masked_crc32c

SID = bytes.fromhex("ff060000734e61507059")


def chunk(chunk_type: int, payload: bytes) -> bytes:
    return bytes([chunk_type]) + len(payload).to_bytes(3, "little") + payload


def data_chunk(data: bytes, crc: int | None = None) -> bytes:
    return chunk(0x01, struct.pack("<I", masked_crc32c(data) if crc is None else crc) + data)


def decode_all(stream: bytes, step: int | None = None) -> bytes:
    dec = SnappyFrameDecoder()
    if step is None:
        return dec.decode(stream)
    return b"".join(dec.decode(stream[i : i + step]) for i in range(0, len(stream), step))


class CrcTests(SynchronousTestCase):
    def test_known_values(self) -> None:
        self.assertEqual(crc32c(b"123456789"), 0xE3069283)
        self.assertEqual(crc32c(b""), 0)
        self.assertEqual(masked_crc32c(b"hello"), 0x191C1FBB)
        self.assertEqual(masked_crc32c(b"a" * 100), 0xFDB5A81F)

    def test_matches_native(self) -> None:
        data = os.urandom(3000)
        framed = bytes(cramjam.snappy.compress(data))
        self.assertEqual(struct.unpack("<I", framed[14:18])[0], masked_crc32c(data))


class EncoderVectorTests(SynchronousTestCase):
    """§9.4: exact golang/snappy NewWriter output."""

    def test_hello(self) -> None:
        self.assertEqual(
            SnappyFrameEncoder().encode(b"hello").hex(), "ff060000734e61507059" "01" "090000" "bb1f1c19" "68656c6c6f"
        )

    def test_hi_hi(self) -> None:
        enc = SnappyFrameEncoder()
        wire = enc.encode(b"hi") + enc.encode(b"hi")
        self.assertEqual(wire.hex(), "ff060000734e61507059" "0106000013d608566869" "0106000013d608566869")

    def test_a100_compressed(self) -> None:
        wire = SnappyFrameEncoder().encode(b"a" * 100)
        self.assertEqual(wire[:18].hex(), "ff060000734e61507059" "00" "0d0000" "1fa8b5fd")
        self.assertEqual(decode_all(wire), b"a" * 100)
        # cramjam's raw block happens to equal Go's here: assert the exact bytes too.
        self.assertEqual(wire.hex(), "ff060000734e61507059" "000d00001fa8b5fd" "640061fe01008a0100")

    def test_empty_write(self) -> None:
        enc = SnappyFrameEncoder()
        self.assertEqual(enc.encode(b""), b"")
        self.assertEqual(enc.encode(b"hi")[:10], SID)

    def test_large_write_split_into_64k_chunks(self) -> None:
        data = os.urandom(150000)
        wire = SnappyFrameEncoder().encode(data)
        pos = len(SID)
        sizes = []
        while pos < len(wire):
            self.assertEqual(wire[pos], 0x01)  # random data: uncompressed
            length = int.from_bytes(wire[pos + 1 : pos + 4], "little")
            sizes.append(length - 4)
            payload = wire[pos + 8 : pos + 4 + length]
            self.assertEqual(struct.unpack("<I", wire[pos + 4 : pos + 8])[0], masked_crc32c(payload))
            pos += 4 + length
        self.assertEqual(sizes, [65536, 65536, 150000 - 131072])
        self.assertEqual(decode_all(wire, step=7777), data)

    def test_compression_threshold(self) -> None:
        # Compressed only when it saves at least 12.5 % (Go: len(c) < n - n/8).
        wire = SnappyFrameEncoder().encode(b"hello hello hello hello hello hello")
        self.assertEqual(wire[10], 0x00)


class DecoderTests(SynchronousTestCase):
    def test_vectors(self) -> None:
        self.assertEqual(decode_all(bytes.fromhex("ff060000734e6150705901090000bb1f1c1968656c6c6f")), b"hello")
        hihi = bytes.fromhex("ff060000734e615070590106000013d6085668690106000013d608566869")
        self.assertEqual(decode_all(hihi), b"hihi")
        self.assertEqual(decode_all(hihi, step=1), b"hihi")
        a100 = bytes.fromhex("ff060000734e61507059000d00001fa8b5fd640061fe01008a0100")
        self.assertEqual(decode_all(a100, step=1), b"a" * 100)

    def test_incremental_output(self) -> None:
        dec = SnappyFrameDecoder()
        self.assertEqual(dec.decode(SID[:3]), b"")
        self.assertEqual(dec.decode(SID[3:] + data_chunk(b"one")[:5]), b"")
        self.assertEqual(dec.decode(data_chunk(b"one")[5:] + data_chunk(b"two")), b"onetwo")

    def test_empty_stream(self) -> None:
        self.assertEqual(decode_all(b""), b"")
        self.assertEqual(decode_all(SID), b"")

    def test_padding_skippable_and_repeated_identifier(self) -> None:
        stream = SID + chunk(0xFE, b"\x00" * 10) + data_chunk(b"a") + chunk(0x80, b"xyz") + SID + chunk(0xFD, b"") + data_chunk(b"b")
        self.assertEqual(decode_all(stream), b"ab")
        self.assertEqual(decode_all(stream, step=1), b"ab")

    def test_empty_data_chunk(self) -> None:
        self.assertEqual(decode_all(SID + data_chunk(b"")), b"")

    def assertCorrupt(self, stream: bytes, fragment: str = "") -> None:
        for step in (None, 1):
            e = self.assertRaises(ProtocolError, decode_all, stream, step)
            self.assertIn(fragment, str(e))

    def test_bad_crc(self) -> None:
        self.assertCorrupt(SID + data_chunk(b"hello", crc=masked_crc32c(b"hello") ^ 1), "checksum")
        wire = bytearray(SnappyFrameEncoder().encode(b"a" * 100))
        wire[14] ^= 0xFF
        self.assertCorrupt(bytes(wire), "checksum")

    def test_corrupted_payload(self) -> None:
        wire = bytearray(SnappyFrameEncoder().encode(b"hello"))
        wire[-1] ^= 0x20
        self.assertCorrupt(bytes(wire))

    def test_missing_stream_identifier(self) -> None:
        self.assertCorrupt(data_chunk(b"hello"), "stream identifier")
        self.assertCorrupt(chunk(0xFE, b""), "stream identifier")

    def test_bad_stream_identifier(self) -> None:
        self.assertCorrupt(b"\xff\x06\x00\x00sNaPpX", "stream identifier")
        self.assertCorrupt(b"\xff\x07\x00\x00sNaPpYY", "stream identifier")
        self.assertCorrupt(SID + b"\xff\x06\x00\x00SNAPPY", "stream identifier")

    def test_reserved_unskippable(self) -> None:
        for t in (0x02, 0x10, 0x7F):
            self.assertCorrupt(SID + chunk(t, b""), "unskippable")

    def test_short_data_chunk(self) -> None:
        self.assertCorrupt(SID + chunk(0x01, b"abc"), "checksum")
        self.assertCorrupt(SID + chunk(0x00, b""), "checksum")

    def test_oversized_chunks(self) -> None:
        self.assertCorrupt(SID + b"\x80" + (76495).to_bytes(3, "little"), "limit")
        big = b"x" * 65537
        self.assertCorrupt(SID + data_chunk(big), "65536")
        block = bytes(cramjam.snappy.compress_raw(b"a" * 65537))
        self.assertCorrupt(SID + chunk(0x00, struct.pack("<I", masked_crc32c(b"a" * 65537)) + block), "65536")

    def test_max_uncompressed_chunk_ok(self) -> None:
        data = os.urandom(65536)
        self.assertEqual(decode_all(SID + data_chunk(data)), data)

    def test_garbage_compressed_block(self) -> None:
        self.assertCorrupt(SID + chunk(0x00, b"\x00\x00\x00\x00" + b"\xff\xff\xff\xff\xff\xff"))
        self.assertCorrupt(SID + chunk(0x00, b"\x00\x00\x00\x00"), "empty block")
        self.assertCorrupt(SID + chunk(0x00, b"\x00\x00\x00\x00\x05\x00"))

    def test_error_is_sticky(self) -> None:
        dec = SnappyFrameDecoder()
        self.assertRaises(ProtocolError, dec.decode, b"\x01\x00\x00\x00")
        self.assertRaises(ProtocolError, dec.decode, SID)

    def test_stream_identifier_constant(self) -> None:
        self.assertEqual(STREAM_IDENTIFIER, SID)


class SnappyPropertyTests(SynchronousTestCase):
    @settings(max_examples=200)
    @given(
        st.lists(st.binary(max_size=300) | st.sampled_from([b"a" * 500, b"abc" * 200]), max_size=8),
        st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=20),
    )
    def test_roundtrip_random_chunking(self, writes: list[bytes], sizes: list[int]) -> None:
        enc = SnappyFrameEncoder()
        wire = b"".join(enc.encode(w) for w in writes)
        dec = SnappyFrameDecoder()
        out = []
        pos = 0
        i = 0
        while pos < len(wire):
            size = sizes[i % len(sizes)]
            i += 1
            out.append(dec.decode(wire[pos : pos + size]))
            pos += size
        self.assertEqual(b"".join(out), b"".join(writes))


class LazyImportTests(SynchronousTestCase):
    def test_services_start_without_cramjam(self) -> None:
        """cramjam's native library is loaded only when something compresses."""
        import subprocess
        import sys

        code = ("import sys, frptx.wire, frptx.protocols.codec, frptx.server.service, frptx.client.service; "
                "print('cramjam' in sys.modules)")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        elsewhere = self.mktemp()  # not the checkout, whose twisted/plugins would shadow Twisted
        os.makedirs(elsewhere)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                             cwd=elsewhere, env=dict(os.environ, PYTHONPATH=root))
        self.assertEqual(out.stdout.strip(), "False", out.stderr)
        self.assertEqual(SnappyFrameDecoder().decode(SnappyFrameEncoder().encode(b"x" * 100)), b"x" * 100)
