"""The per-proxy stream codec: order of transforms, chunking, and live capture C."""
from __future__ import annotations

import os

from hypothesis import given, settings, strategies as st
from twisted.trial import unittest

from frptx.protocols.codec import StreamCodec, stream_codec
from frptx.test.support import captures_dir
from frptx.wire import CfbDecryptor, MessageReader, ProtocolError, SnappyFrameDecoder, StartWorkConn, derive_key


def capture(name: str) -> bytes:
    path = os.path.join(captures_dir(), name)
    with open(path) as f:
        return b"".join(bytes.fromhex(line.split()[1]) for line in f if line.strip() and not line.startswith("#"))


class CodecTests(unittest.TestCase):
    def test_plain_settings_mean_no_codec(self) -> None:
        self.assertIsNone(stream_codec("abc", False, False))

    def test_compression_inside_encryption(self) -> None:
        """frp's order: snappy framing first, then AES-CFB over it."""
        wire = StreamCodec("abc", True, True).encode(b"hello " * 100)
        plain_snappy = CfbDecryptor(derive_key("abc")).decrypt(wire)
        self.assertTrue(plain_snappy.startswith(bytes.fromhex("ff060000734e61507059")))
        self.assertEqual(SnappyFrameDecoder().decode(plain_snappy), b"hello " * 100)

    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.binary(max_size=3000), max_size=8), st.lists(st.integers(1, 500), min_size=1, max_size=20),
           st.booleans(), st.booleans())
    def test_roundtrip_under_any_chunking(self, writes: list[bytes], cuts: list[int], enc: bool, comp: bool) -> None:
        if not (enc or comp):
            return
        sender, receiver = StreamCodec("k", enc, comp), StreamCodec("k", enc, comp)
        wire = b"".join(sender.encode(w) for w in writes)
        out, i, k = [], 0, 0
        while i < len(wire):
            n = cuts[k % len(cuts)]
            out.append(receiver.decode(wire[i:i + n]))
            i, k = i + n, k + 1
        self.assertEqual(b"".join(out), b"".join(writes))

    def test_corrupt_stream_raises(self) -> None:
        with self.assertRaises(ProtocolError):
            StreamCodec("k", False, True).decode(b"not a snappy stream")

    def test_live_capture_c_work_connection(self) -> None:
        """frp 0.31.2 with use_encryption + use_compression, token "abc": both directions decode."""
        for name, starts in (("C-conn2-work.s2c.hex", b"GET /hello.txt HTTP/1.1"),
                             ("C-conn2-work.c2s.hex", b"HTTP/1.0 200 OK")):
            reader = MessageReader()
            reader.feed(capture(name))
            first = reader.next_message()
            if name.endswith("s2c.hex"):
                self.assertIsInstance(first, StartWorkConn)
            plain = StreamCodec("abc", True, True).decode(reader.take_buffer())
            self.assertTrue(plain.startswith(starts), plain[:40])
