# -*- test-case-name: frptx.test.test_wire_crypto -*-
"""frp's v1 stream encryption: AES-128-CFB with a clear IV prefix (frp-protocol.md §4).

The control channel (after Login/LoginResp) and, with ``use_encryption``,
work and visitor connections are wrapped in golib's crypto Writer/Reader: the
writer sends a random 16-byte IV in clear before its first ciphertext byte,
then one continuous AES-CFB keystream (full 128-bit feedback, *not* CFB8),
with no framing and no MAC.  Each direction has its own IV.  These classes
are plain byte transformers, so they compose with any transport.
"""
from __future__ import annotations

import functools
import hashlib
import os
import warnings

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext
from cryptography.hazmat.primitives.ciphers.algorithms import AES

try:  # cryptography >= 43 keeps the old modes here without a warning
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - depends on the installed cryptography
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from cryptography.hazmat.primitives.ciphers.modes import CFB

__all__ = ["IV_SIZE", "KEY_SALT", "derive_key", "CfbEncryptor", "CfbDecryptor"]

IV_SIZE = 16
#: golib's default salt is "crypto", but frpc and frps both set it to "frp".
KEY_SALT = b"frp"


@functools.lru_cache(maxsize=64)
def derive_key(secret: str) -> bytes:
    """Return PBKDF2-HMAC-SHA1(secret, salt=b"frp", 64 iterations, 16 bytes).

    ``secret`` is the server token (control and proxy work connections) or a
    proxy's ``sk`` (visitor connections).  Cached because it is needed for
    every encrypted work connection and the secrets rarely change.
    """
    return hashlib.pbkdf2_hmac("sha1", secret.encode("utf-8"), KEY_SALT, 64, 16)


def _cfb(key: bytes, iv: bytes) -> Cipher[CFB]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Cipher(AES(key), CFB(iv))


class CfbEncryptor:
    """The sending half: ``IV || AES-CFB(stream)``.

    The IV goes out with the first :meth:`encrypt` call, as golib's Writer
    does on its first ``Write``; every later call continues the same
    keystream.
    """

    def __init__(self, key: bytes, iv: bytes | None = None) -> None:
        if iv is None:
            iv = os.urandom(IV_SIZE)
        if len(iv) != IV_SIZE:
            raise ValueError(f"IV must be {IV_SIZE} bytes, got {len(iv)}")
        self.iv = bytes(iv)
        self._ctx: CipherContext = _cfb(key, self.iv).encryptor()
        self._iv_sent = False

    def encrypt(self, data: bytes) -> bytes:
        """Encrypt ``data``; the first call's result is prefixed with the IV."""
        out = self._ctx.update(data)
        if not self._iv_sent:
            self._iv_sent = True
            return self.iv + out
        return out


class CfbDecryptor:
    """The receiving half: strips the 16-byte IV, then decrypts the stream.

    The IV may arrive split over several :meth:`decrypt` calls (TCP chunking
    or one yamux Data frame per golib ``Write``); until it is complete and
    ciphertext follows, :meth:`decrypt` returns ``b""``.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._iv = b""
        self._ctx: CipherContext | None = None

    @property
    def iv(self) -> bytes | None:
        """The peer's IV once all 16 bytes arrived, else ``None``."""
        return self._iv if self._ctx is not None else None

    def decrypt(self, data: bytes) -> bytes:
        """Return the plaintext for ``data`` (possibly ``b""``)."""
        ctx = self._ctx
        if ctx is None:
            need = IV_SIZE - len(self._iv)
            self._iv += bytes(data[:need])
            if len(self._iv) < IV_SIZE:
                return b""
            ctx = self._ctx = _cfb(self._key, self._iv).decryptor()
            data = data[need:]
            if not data:
                return b""
        return ctx.update(data)
