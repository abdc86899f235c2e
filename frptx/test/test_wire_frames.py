"""Tests for frptx.wire.frames: v1 framing, the incremental reader and the writer."""
from __future__ import annotations

import struct

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from frptx.test.test_wire_messages import messages
from frptx.wire import (
    MAX_MESSAGE_SIZE,
    CfbDecryptor,
    CfbEncryptor,
    Login,
    LoginResp,
    Message,
    MessageReader,
    MessageWriter,
    NewProxy,
    NewProxyResp,
    NewWorkConn,
    Ping,
    Pong,
    ProtocolError,
    ReqWorkConn,
    StartWorkConn,
    decode_body,
    derive_key,
    encode_message,
    privilege_key,
)

KEY = derive_key("abc")
IV = bytes(range(16))

# frp-protocol.md §9.2
VECTORS: list[tuple[Message, str]] = [
    (Ping(), "6800000000000000027b7d"),
    (ReqWorkConn(), "7200000000000000027b7d"),
    (Pong(), "3400000000000000027b7d"),
    (
        Login(
            version="0.70.1",
            hostname="host",
            os="linux",
            arch="amd64",
            privilege_key=privilege_key("abc", 1700000000),
            timestamp=1700000000,
            pool_count=1,
        ),
        "6f00000000000000ac7b2276657273696f6e223a22302e37302e31222c22686f73746e616d65223a22686f7374222c226f7322"
        "3a226c696e7578222c2261726368223a22616d643634222c2270726976696c6567655f6b6579223a22323262643633333366"
        "3834306565656565303361643134663735666439366163222c2274696d657374616d70223a313730303030303030302c2263"
        "6c69656e745f73706563223a7b7d2c22706f6f6c5f636f756e74223a317d",
    ),
    (
        LoginResp(version="0.70.1", run_id="0123456789abcdef"),
        "3100000000000000307b2276657273696f6e223a22302e37302e31222c2272756e5f6964223a223031323334353637383961"
        "6263646566227d",
    ),
    (
        NewWorkConn(run_id="0123456789abcdef"),
        "77000000000000001d7b2272756e5f6964223a2230313233343536373839616263646566227d",
    ),
    (
        NewProxy(proxy_name="ssh", proxy_type="tcp", remote_port=6000),
        "70000000000000003a7b2270726f78795f6e616d65223a22737368222c2270726f78795f74797065223a22746370222c2272"
        "656d6f74655f706f7274223a363030307d",
    ),
    (
        NewProxyResp(proxy_name="ssh", remote_addr=":6000"),
        "32000000000000002a7b2270726f78795f6e616d65223a22737368222c2272656d6f74655f61646472223a223a3630303022"
        "7d",
    ),
    (
        StartWorkConn(proxy_name="ssh", src_addr="198.51.100.9", dst_addr="0.0.0.0", src_port=51000, dst_port=6000),
        "7300000000000000647b2270726f78795f6e616d65223a22737368222c227372635f61646472223a223139382e35312e3130"
        "302e39222c226473745f61646472223a22302e302e302e30222c227372635f706f7274223a35313030302c226473745f706f"
        "7274223a363030307d",
    ),
]

LEGACY_LOGIN = (
    "6f00000000000000b87b2276657273696f6e223a22302e33312e32222c22686f73746e616d65223a22222c226f73223a226c69"
    "6e7578222c2261726368223a22616d643634222c2275736572223a22222c2270726976696c6567655f6b6579223a2232326264"
    "36333333663834306565656565303361643134663735666439366163222c2274696d657374616d70223a313730303030303030"
    "302c2272756e5f6964223a22222c226d65746173223a7b7d2c22706f6f6c5f636f756e74223a317d"
)


def frame(type_byte: bytes, body: bytes, length: int | None = None) -> bytes:
    return type_byte + struct.pack(">q", len(body) if length is None else length) + body


def read_all(reader: MessageReader) -> list[Message]:
    out = []
    while (msg := reader.next_message()) is not None:
        out.append(msg)
    return out


class EncodeTests(SynchronousTestCase):
    def test_vectors(self) -> None:
        for msg, hexframe in VECTORS:
            self.assertEqual(encode_message(msg).hex(), hexframe)
            raw = bytes.fromhex(hexframe)
            self.assertEqual(decode_body(raw[:1], raw[9:]), msg)

    def test_legacy_login_vector(self) -> None:
        msg = Login(
            version="0.31.2",
            os="linux",
            arch="amd64",
            privilege_key=privilege_key("abc", 1700000000),
            timestamp=1700000000,
            pool_count=1,
        )
        self.assertEqual(encode_message(msg, legacy=True).hex(), LEGACY_LOGIN)
        self.assertEqual(MessageWriter(legacy=True).encode(msg).hex(), LEGACY_LOGIN)

    def test_header_layout(self) -> None:
        raw = encode_message(NewProxyResp(proxy_name="x" * 300))
        self.assertEqual(raw[:1], b"2")
        self.assertEqual(struct.unpack(">q", raw[1:9])[0], len(raw) - 9)


class ReaderTests(SynchronousTestCase):
    def test_vectors_one_byte_at_a_time(self) -> None:
        stream = b"".join(bytes.fromhex(h) for _m, h in VECTORS)
        reader = MessageReader()
        got: list[Message] = []
        for i in range(len(stream)):
            reader.feed(stream[i : i + 1])
            got.extend(read_all(reader))
        self.assertEqual(got, [m for m, _h in VECTORS])
        self.assertEqual(reader.buffered, 0)

    def test_several_frames_in_one_feed(self) -> None:
        reader = MessageReader()
        reader.feed(b"".join(bytes.fromhex(h) for _m, h in VECTORS) + b"h\x00")
        self.assertEqual(read_all(reader), [m for m, _h in VECTORS])
        self.assertEqual(reader.buffered, 2)
        reader.feed(b"\x00" * 6 + b"\x02{}")
        self.assertEqual(read_all(reader), [Ping()])

    def test_incomplete(self) -> None:
        reader = MessageReader()
        self.assertIsNone(reader.next_message())
        reader.feed(b"h\x00\x00")
        self.assertIsNone(reader.next_message())
        reader.feed(b"\x00\x00\x00\x00\x00\x02{")
        self.assertIsNone(reader.next_message())
        reader.feed(b"}")
        self.assertEqual(reader.next_message(), Ping())
        self.assertIsNone(reader.next_message())

    def test_max_length_accepted(self) -> None:
        prefix = b'{"proxy_name":"'
        body = prefix + b"a" * (MAX_MESSAGE_SIZE - len(prefix) - 2) + b'"}'
        self.assertEqual(len(body), 10240)
        reader = MessageReader()
        reader.feed(frame(b"c", body))
        msg = reader.next_message()
        self.assertEqual(msg.proxy_name, "a" * (MAX_MESSAGE_SIZE - len(prefix) - 2))  # type: ignore[union-attr]

    def test_too_long_rejected_from_header(self) -> None:
        reader = MessageReader()
        reader.feed(frame(b"c", b"", length=10241))  # header only: no need to wait for the body
        e = self.assertRaises(ProtocolError, reader.next_message)
        self.assertIn("exceed", str(e))

    def test_negative_length_rejected(self) -> None:
        reader = MessageReader()
        reader.feed(frame(b"h", b"", length=-1))
        e = self.assertRaises(ProtocolError, reader.next_message)
        self.assertIn("length", str(e))

    def test_custom_max_size(self) -> None:
        reader = MessageReader(max_size=2)
        reader.feed(frame(b"h", b"{}") + frame(b"h", b"{ }"))
        self.assertEqual(reader.next_message(), Ping())
        self.assertRaises(ProtocolError, reader.next_message)

    def test_unknown_type_rejected_at_first_byte(self) -> None:
        reader = MessageReader()
        reader.feed(b"x")
        e = self.assertRaises(ProtocolError, reader.next_message)
        self.assertEqual(str(e), "unknown message type 0x78")

    def test_yamux_and_tls_bytes_rejected(self) -> None:
        for first in (b"\x00", b"\x16", b"\x17", b"G"):
            reader = MessageReader()
            reader.feed(first + b"\x00" * 20)
            self.assertRaises(ProtocolError, reader.next_message)

    def test_body_not_object(self) -> None:
        reader = MessageReader()
        reader.feed(frame(b"h", b"[]"))
        e = self.assertRaises(ProtocolError, reader.next_message)
        self.assertIn("not an object", str(e))

    def test_invalid_body(self) -> None:
        for body in (b"{", b'{"run_id":1}', b"\xff"):
            reader = MessageReader()
            reader.feed(frame(b"w", body))
            self.assertRaises(ProtocolError, reader.next_message)

    def test_error_is_sticky(self) -> None:
        reader = MessageReader()
        reader.feed(b"x")
        first = self.assertRaises(ProtocolError, reader.next_message)
        reader.feed(encode_message(Ping()))
        second = self.assertRaises(ProtocolError, reader.next_message)
        self.assertIs(first, second)

    def test_mixed_case_login(self) -> None:
        body = b'{"VERSION":"0.31.2","Privilege_Key":"k","TimeStamp":1700000000,"whatever":[]}'
        reader = MessageReader()
        reader.feed(frame(b"o", body))
        self.assertEqual(reader.next_message(), Login(version="0.31.2", privilege_key="k", timestamp=1700000000))

    def test_take_buffer(self) -> None:
        reader = MessageReader()
        reader.feed(encode_message(StartWorkConn(proxy_name="web")) + b"GET / HTTP/1.1\r\n")
        self.assertEqual(reader.next_message(), StartWorkConn(proxy_name="web"))
        self.assertEqual(reader.take_buffer(), b"GET / HTTP/1.1\r\n")
        self.assertEqual(reader.take_buffer(), b"")
        self.assertIsNone(reader.next_message())

    def test_take_buffer_before_consuming(self) -> None:
        reader = MessageReader()
        reader.feed(b"h\x00")
        self.assertEqual(reader.take_buffer(), b"h\x00")


class EncryptionTests(SynchronousTestCase):
    def test_writer_matches_vector(self) -> None:
        # §9.3: the Ping frame twice through CFB with a fixed IV.
        writer = MessageWriter()
        self.assertEqual(writer.encode(Ping()).hex(), "6800000000000000027b7d")
        writer.start_encryption(CfbEncryptor(KEY, IV))
        self.assertEqual(writer.encode(Ping()).hex(), "000102030405060708090a0b0c0d0e0fc6740161fd1427c7cbb905")
        self.assertEqual(writer.encode(Ping()).hex(), "ea97902f91a4383ad8d082")

    def test_start_twice(self) -> None:
        writer = MessageWriter()
        writer.start_encryption(CfbEncryptor(KEY))
        self.assertRaises(RuntimeError, writer.start_encryption, CfbEncryptor(KEY))
        reader = MessageReader()
        reader.start_decryption(CfbDecryptor(KEY))
        self.assertRaises(RuntimeError, reader.start_decryption, CfbDecryptor(KEY))

    def test_ciphertext_in_same_read_as_login_resp(self) -> None:
        """Bytes that follow LoginResp in the same read belong to the encrypted stream."""
        server = MessageWriter()
        wire = server.encode(LoginResp(version="0.31.2", run_id="r"))
        server.start_encryption(CfbEncryptor(KEY))
        wire += server.encode(ReqWorkConn()) + server.encode(NewProxyResp(proxy_name="web", remote_addr=":1"))
        reader = MessageReader()
        reader.feed(wire)
        self.assertEqual(reader.next_message(), LoginResp(version="0.31.2", run_id="r"))
        reader.start_decryption(CfbDecryptor(KEY))
        self.assertEqual(read_all(reader), [ReqWorkConn(), NewProxyResp(proxy_name="web", remote_addr=":1")])

    def test_partial_iv_buffered_before_start(self) -> None:
        reader = MessageReader()
        encryptor = CfbEncryptor(KEY)
        cipher = encryptor.encrypt(encode_message(Ping()))
        reader.feed(encode_message(LoginResp()) + cipher[:7])
        self.assertEqual(reader.next_message(), LoginResp())
        reader.start_decryption(CfbDecryptor(KEY))
        self.assertIsNone(reader.next_message())
        reader.feed(cipher[7:])
        self.assertEqual(reader.next_message(), Ping())

    def test_take_buffer_returns_plaintext(self) -> None:
        encryptor = CfbEncryptor(KEY)
        reader = MessageReader()
        reader.start_decryption(CfbDecryptor(KEY))
        reader.feed(encryptor.encrypt(encode_message(Pong()) + b"raw payload"))
        self.assertEqual(reader.next_message(), Pong())
        self.assertEqual(reader.take_buffer(), b"raw payload")

    @settings(max_examples=100)
    @given(
        st.lists(messages, min_size=1, max_size=8),
        st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=50),
        st.booleans(),
    )
    def test_stream_roundtrip_random_chunking(self, msgs: list[Message], sizes: list[int], encrypt: bool) -> None:
        writer = MessageWriter()
        wire = writer.encode(Login(version="0.31.2"))
        if encrypt:
            writer.start_encryption(CfbEncryptor(KEY))
        wire += b"".join(writer.encode(m) for m in msgs)
        reader = MessageReader()
        got: list[Message] = []
        pos = 0
        i = 0
        while pos < len(wire):
            size = sizes[i % len(sizes)]
            i += 1
            reader.feed(wire[pos : pos + size])
            pos += size
            while (msg := reader.next_message()) is not None:
                got.append(msg)
                if len(got) == 1 and encrypt:
                    reader.start_decryption(CfbDecryptor(KEY))
        self.assertEqual(got, [Login(version="0.31.2"), *msgs])
        self.assertEqual(reader.buffered, 0)
