"""Tests for frptx.wire.crypto and frptx.wire.auth (frp-protocol.md §3, §4, §9.1, §9.3)."""
from __future__ import annotations

import warnings

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from frptx.wire import (
    CfbDecryptor,
    CfbEncryptor,
    derive_key,
    privilege_key,
    sign_key,
    verify_privilege_key,
)

KEY = bytes.fromhex("62e5ed67fdd04e5f1f71d779ceb9667f")
IV = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
PING = bytes.fromhex("6800000000000000027b7d")


def chunked(data: bytes, sizes: list[int]) -> list[bytes]:
    out = []
    pos = 0
    i = 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        i += 1
        out.append(data[pos : pos + size])
        pos += size
    return out


class KeyTests(SynchronousTestCase):
    def test_derive_key(self) -> None:
        self.assertEqual(derive_key("abc").hex(), "62e5ed67fdd04e5f1f71d779ceb9667f")
        self.assertEqual(derive_key("").hex(), "cdc9dc4c472c37331281df4c232a8407")
        # the golib default salt "crypto" would give 874b50f3f2c17f09b0381aac50ce7d50
        self.assertNotEqual(derive_key("abc").hex(), "874b50f3f2c17f09b0381aac50ce7d50")

    def test_derive_key_cached(self) -> None:
        self.assertIs(derive_key("cache-me"), derive_key("cache-me"))

    def test_privilege_key(self) -> None:
        self.assertEqual(privilege_key("abc", 1700000000), "22bd6333f840eeeee03ad14f75fd96ac")
        self.assertEqual(privilege_key("", 1700000000), "24920decf83f6960b80f737a28eeafc1")

    def test_verify(self) -> None:
        self.assertTrue(verify_privilege_key("abc", 1700000000, "22bd6333f840eeeee03ad14f75fd96ac"))
        self.assertFalse(verify_privilege_key("abc", 1700000001, "22bd6333f840eeeee03ad14f75fd96ac"))
        self.assertFalse(verify_privilege_key("abd", 1700000000, "22bd6333f840eeeee03ad14f75fd96ac"))
        self.assertFalse(verify_privilege_key("abc", 1700000000, ""))
        self.assertFalse(verify_privilege_key("abc", 1700000000, "\u00e9" * 32))

    def test_sign_key_same_formula(self) -> None:
        self.assertEqual(sign_key("abc", 1700000000), "22bd6333f840eeeee03ad14f75fd96ac")


class CfbVectorTests(SynchronousTestCase):
    """§9.3: AES-128-CFB with full 128-bit feedback."""

    def test_encrypt(self) -> None:
        enc = CfbEncryptor(KEY, IV)
        self.assertEqual(enc.encrypt(PING).hex(), "000102030405060708090a0b0c0d0e0f" "c6740161fd1427c7cbb905")
        self.assertEqual(enc.encrypt(PING).hex(), "ea97902f91a4383ad8d082")

    def test_decrypt(self) -> None:
        dec = CfbDecryptor(KEY)
        self.assertEqual(dec.decrypt(bytes.fromhex("000102030405060708090a0b0c0d0e0fc6740161fd1427c7cbb905")), PING)
        self.assertEqual(dec.iv, IV)
        self.assertEqual(dec.decrypt(bytes.fromhex("ea97902f91a4383ad8d082")), PING)

    def test_not_cfb8(self) -> None:
        from cryptography.hazmat.primitives.ciphers import Cipher
        from cryptography.hazmat.primitives.ciphers.algorithms import AES

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                from cryptography.hazmat.decrepit.ciphers.modes import CFB8
            except ImportError:  # pragma: no cover
                from cryptography.hazmat.primitives.ciphers.modes import CFB8
            cfb8 = Cipher(AES(KEY), CFB8(IV)).encryptor().update(PING)
        self.assertEqual(cfb8.hex(), "c62d3dc5c90a1bf0b56a77")
        self.assertNotEqual(CfbEncryptor(KEY, IV).encrypt(PING)[16:], cfb8)

    def test_iv_split_across_calls(self) -> None:
        wire = CfbEncryptor(KEY, IV).encrypt(PING)
        dec = CfbDecryptor(KEY)
        self.assertEqual(dec.decrypt(wire[:5]), b"")
        self.assertIsNone(dec.iv)
        self.assertEqual(dec.decrypt(wire[5:16]), b"")
        self.assertEqual(dec.iv, IV)
        self.assertEqual(dec.decrypt(wire[16:20]), PING[:4])
        self.assertEqual(dec.decrypt(b""), b"")
        self.assertEqual(dec.decrypt(wire[20:]), PING[4:])

    def test_random_iv(self) -> None:
        a = CfbEncryptor(KEY)
        b = CfbEncryptor(KEY)
        self.assertNotEqual(a.iv, b.iv)
        self.assertEqual(a.encrypt(b"x")[:16], a.iv)

    def test_bad_iv_length(self) -> None:
        self.assertRaises(ValueError, CfbEncryptor, KEY, b"short")

    def test_no_deprecation_warning(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            CfbEncryptor(KEY).encrypt(b"x")
            CfbDecryptor(KEY).decrypt(IV + b"x")


class CfbPropertyTests(SynchronousTestCase):
    @settings(max_examples=200)
    @given(
        st.lists(st.binary(max_size=100), max_size=10),
        st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=20),
    )
    def test_roundtrip_random_chunking(self, writes: list[bytes], sizes: list[int]) -> None:
        enc = CfbEncryptor(KEY)
        wire = b"".join(enc.encrypt(w) for w in writes)
        dec = CfbDecryptor(KEY)
        plain = b"".join(dec.decrypt(c) for c in chunked(wire, sizes))
        self.assertEqual(plain, b"".join(writes))
