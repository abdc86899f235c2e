"""Golden tests against live frp 0.31.2 captures (frptx/test/data/captures, token "abc").

Every control connection of scenarios A and C is decoded with the wire layer
(Login/LoginResp in clear, then AES-CFB), each message is checked against the
transcript in ``captures/README.md``, and re-encoded with ``legacy=True`` it
must give back the exact plaintext bytes that frpc/frps sent.  The work
connections check the switch to raw bytes (A) and CFB + snappy (C).
Scenario B (yamux) belongs to the mux tests.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from frptx.test.support import captures_dir
from frptx.wire import (
    CfbDecryptor,
    Login,
    LoginResp,
    Message,
    MessageReader,
    NewProxy,
    NewProxyResp,
    NewWorkConn,
    Ping,
    Pong,
    ReqWorkConn,
    SnappyFrameDecoder,
    StartWorkConn,
    derive_key,
    encode_message,
    verify_privilege_key,
)

TOKEN = "abc"
CAPTURES = Path(captures_dir())


def load_chunks(name: str) -> list[bytes]:
    """The ``read()`` chunks of one capture file (``# comments``, else ``<seconds> <hex>``)."""
    path = CAPTURES / name
    chunks = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        _seconds, hexdata = line.split()
        chunks.append(bytes.fromhex(hexdata))
    return chunks


def byte_at_a_time(chunks: list[bytes]) -> list[bytes]:
    data = b"".join(chunks)
    return [data[i : i + 1] for i in range(len(data))]


def read_control(chunks: list[bytes], first: type[Message]) -> tuple[list[Message], bytes]:
    """Decode a control-connection direction; return messages and the plaintext stream.

    The first message (Login or LoginResp) is clear; from then on the reader
    decrypts, including bytes that arrived in the same chunk.
    """
    reader = MessageReader()
    decryptor = CfbDecryptor(derive_key(TOKEN))
    msgs: list[Message] = []
    for chunk in chunks:
        reader.feed(chunk)
        while (msg := reader.next_message()) is not None:
            msgs.append(msg)
            if len(msgs) == 1:
                assert isinstance(msg, first), msg
                reader.start_decryption(decryptor)
    assert reader.buffered == 0
    # Reconstruct the plaintext: clear first frame, then an independent decryption.
    data = b"".join(chunks)
    first_len = 9 + int.from_bytes(data[1:9], "big")
    plaintext = data[:first_len] + CfbDecryptor(derive_key(TOKEN)).decrypt(data[first_len:])
    assert decryptor.iv == data[first_len : first_len + 16]
    return msgs, plaintext


def legacy_stream(msgs: list[Message]) -> bytes:
    return b"".join(encode_message(m, legacy=True) for m in msgs)


CONTROL = {
    # scenario: (remote_port, use_encryption/compression, timestamp, run_id, c2s IV, s2c IV)
    "A": (33353, False, 1795571174, "c4c48ddff8597fbd", "0dd83fce1720a611547c5deca10ac5dc", "b3afbc8d9a3c855f7a786b11760f6cf7"),
    "C": (57639, True, 1795571220, "847bb71f7fd18825", "e4308b17acfb49e0630ae8f19b3e3892", "62ca9a4a47146a13836ab669099f507f"),
}


class ControlCaptureTests(SynchronousTestCase):
    def check_c2s(self, scenario: str, split: Callable[[list[bytes]], list[bytes]]) -> None:
        remote_port, flag, timestamp, _run_id, iv, _siv = CONTROL[scenario]
        chunks = load_chunks(f"{scenario}-conn1-control.c2s.hex")
        msgs, plaintext = read_control(split(chunks), Login)
        login = msgs[0]
        assert isinstance(login, Login)
        self.assertEqual(
            login,
            Login(
                version="0.31.2",
                os="linux",
                arch="amd64",
                privilege_key=login.privilege_key,
                timestamp=timestamp,
                pool_count=1,
            ),
        )
        self.assertTrue(verify_privilege_key(TOKEN, login.timestamp, login.privilege_key))
        self.assertFalse(verify_privilege_key("abd", login.timestamp, login.privilege_key))
        self.assertEqual(
            msgs[1:],
            [
                NewProxy(
                    proxy_name="web",
                    proxy_type="tcp",
                    use_encryption=flag,
                    use_compression=flag,
                    remote_port=remote_port,
                ),
                *[Ping()] * 5,
            ],
        )
        self.assertEqual(b"".join(chunks)[len(encode_message(login, legacy=True)) :][:16].hex(), iv)
        self.assertEqual(legacy_stream(msgs), plaintext)

    def check_s2c(self, scenario: str, split: Callable[[list[bytes]], list[bytes]]) -> None:
        remote_port, _flag, _ts, run_id, _iv, iv = CONTROL[scenario]
        chunks = load_chunks(f"{scenario}-conn1-control.s2c.hex")
        msgs, plaintext = read_control(split(chunks), LoginResp)
        self.assertEqual(
            msgs,
            [
                LoginResp(version="0.31.2", run_id=run_id),
                ReqWorkConn(),
                NewProxyResp(proxy_name="web", remote_addr=f":{remote_port}"),
                Pong(),
                ReqWorkConn(),
                *[Pong()] * 4,
            ],
        )
        login_resp_len = len(encode_message(msgs[0], legacy=True))
        self.assertEqual(b"".join(chunks)[login_resp_len:][:16].hex(), iv)
        self.assertEqual(legacy_stream(msgs), plaintext)

    def test_A_c2s_chunks(self) -> None:
        self.check_c2s("A", list)

    def test_A_c2s_bytewise(self) -> None:
        self.check_c2s("A", byte_at_a_time)

    def test_A_s2c_chunks(self) -> None:
        self.check_s2c("A", list)

    def test_A_s2c_bytewise(self) -> None:
        self.check_s2c("A", byte_at_a_time)

    def test_C_c2s_chunks(self) -> None:
        self.check_c2s("C", list)

    def test_C_c2s_bytewise(self) -> None:
        self.check_c2s("C", byte_at_a_time)

    def test_C_s2c_chunks(self) -> None:
        self.check_s2c("C", list)

    def test_C_s2c_bytewise(self) -> None:
        self.check_s2c("C", byte_at_a_time)

    def test_iv_and_first_ciphertext_in_one_chunk(self) -> None:
        """A s2c: LoginResp alone, then IV || ReqWorkConn merged by TCP in one read."""
        chunks = load_chunks("A-conn1-control.s2c.hex")
        self.assertEqual(len(chunks[0]), len(encode_message(LoginResp(version="0.31.2", run_id="c4c48ddff8597fbd"), legacy=True)))
        self.assertEqual(len(chunks[1]), 16 + 11)

    def test_whole_stream_in_one_feed(self) -> None:
        """LoginResp and the ciphertext behind it delivered in a single read."""
        msgs, _ = read_control([b"".join(load_chunks("A-conn1-control.s2c.hex"))], LoginResp)
        self.assertEqual(len(msgs), 9)


def split_work(chunks: list[bytes]) -> tuple[list[Message], bytes]:
    """Read the clear messages of a work connection, then take the raw rest."""
    reader = MessageReader()
    msgs: list[Message] = []
    rest = []
    switched = False
    for chunk in chunks:
        if switched:
            rest.append(chunk)
            continue
        reader.feed(chunk)
        while (msg := reader.next_message()) is not None:
            msgs.append(msg)
            if isinstance(msg, (StartWorkConn, NewWorkConn)):
                switched = True
                rest.append(reader.take_buffer())
                break
    return msgs, b"".join(rest)


class WorkCaptureTests(SynchronousTestCase):
    def check_plain_work(self, split: Callable[[list[bytes]], list[bytes]]) -> None:
        msgs, request = split_work(split(load_chunks("A-conn2-work.s2c.hex")))
        self.assertEqual(
            msgs,
            [StartWorkConn(proxy_name="web", src_addr="127.0.0.1", dst_addr="127.0.0.1", src_port=53468, dst_port=33353)],
        )
        self.assertEqual(len(request), 128)
        self.assertTrue(request.startswith(b"GET /hello.txt HTTP/1.1\r\n"))

        msgs, response = split_work(split(load_chunks("A-conn2-work.c2s.hex")))
        self.assertEqual(msgs, [NewWorkConn(run_id="c4c48ddff8597fbd")])
        self.assertEqual(len(response), 1188)
        self.assertTrue(response.startswith(b"HTTP/1.0 200 OK\r\n"))
        self.assertTrue(response.endswith(b"hello through frp 0.31.2\n" * 40))

    def test_A_work_chunks(self) -> None:
        self.check_plain_work(list)

    def test_A_work_bytewise(self) -> None:
        self.check_plain_work(byte_at_a_time)

    def test_A_replacement_work_conn(self) -> None:
        chunks = load_chunks("A-conn3-work.c2s.hex")
        msgs, rest = split_work(chunks)
        self.assertEqual(msgs, [NewWorkConn(run_id="c4c48ddff8597fbd")])
        self.assertEqual(rest, b"")
        self.assertEqual(encode_message(msgs[0], legacy=True), b"".join(chunks))

    def test_C_replacement_work_conn(self) -> None:
        chunks = load_chunks("C-conn3-work.c2s.hex")
        self.assertEqual(split_work(chunks)[0], [NewWorkConn(run_id="847bb71f7fd18825")])
        self.assertEqual(encode_message(NewWorkConn(run_id="847bb71f7fd18825"), legacy=True), b"".join(chunks))

    def decode_transformed(self, raw_chunks: list[bytes]) -> bytes:
        decryptor = CfbDecryptor(derive_key(TOKEN))
        decompressor = SnappyFrameDecoder()
        return b"".join(decompressor.decode(decryptor.decrypt(c)) for c in raw_chunks)

    def check_transformed_work(self, split: Callable[[list[bytes]], list[bytes]]) -> None:
        s2c = split(load_chunks("C-conn2-work.s2c.hex"))
        msgs, rest = split_work(s2c)
        start = StartWorkConn(proxy_name="web", src_addr="127.0.0.1", dst_addr="127.0.0.1", src_port=58500, dst_port=57639)
        self.assertEqual(msgs, [start])
        data = b"".join(s2c)
        self.assertEqual(data[: len(data) - len(rest)], encode_message(start, legacy=True))
        self.assertEqual(rest[:16].hex(), "918e552b023bf3f41eadcc46a93eca9e")
        request = self.decode_transformed(split([rest]))
        self.assertEqual(len(request), 128)
        self.assertTrue(request.startswith(b"GET /hello.txt HTTP/1.1\r\n"))

        c2s = split(load_chunks("C-conn2-work.c2s.hex"))
        msgs, rest = split_work(c2s)
        self.assertEqual(msgs, [NewWorkConn(run_id="847bb71f7fd18825")])
        self.assertEqual(rest[:16].hex(), "2841eec02d59d19a9c93541d58509dca")
        response = self.decode_transformed(split([rest]))
        self.assertEqual(len(response), 1188)
        self.assertTrue(response.startswith(b"HTTP/1.0 200 OK\r\n"))
        self.assertIn(b"hello through frp 0.31.2", response)
        self.assertTrue(response.endswith(b"hello through frp 0.31.2\n" * 40))

    def test_C_work_chunks(self) -> None:
        self.check_transformed_work(list)

    def test_C_work_bytewise(self) -> None:
        self.check_transformed_work(byte_at_a_time)

    def test_C_work_chunk_types(self) -> None:
        """The request went out as one 0x01 chunk, the response as one 0x00 chunk."""
        for name, chunk_type, length in (("C-conn2-work.s2c.hex", 0x01, 0x84), ("C-conn2-work.c2s.hex", 0x00, 0xEF)):
            _msgs, rest = split_work(load_chunks(name))
            plain = CfbDecryptor(derive_key(TOKEN)).decrypt(rest)
            self.assertEqual(plain[:10].hex(), "ff060000734e61507059")
            self.assertEqual(plain[10], chunk_type)
            self.assertEqual(int.from_bytes(plain[11:14], "little"), length)
            self.assertEqual(len(plain), 10 + 4 + length)
