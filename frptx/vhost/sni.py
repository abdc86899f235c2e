# -*- test-case-name: frptx.test.test_vhost_sni -*-
"""The server name (SNI) of a TLS connection, read from its first bytes.

frps's ``vhostHTTPSPort`` does not terminate TLS: it reads the client's
ClientHello, routes on its server_name, then replays every byte it read to
the chosen proxy.  Go frp does this by running ``crypto/tls``'s server
handshake over a read-only connection just far enough to see the hello, so
what it accepts is what Go's TLS stack accepts.  This parser follows the same
rules (Go 1.2x ``conn.go``/``handshake_messages.go``) for everything up to and
including the server_name extension:

* every record before the hello is complete must be a handshake record (type
  22) with a version below 0x1000 ("first record does not look like a TLS
  handshake"), be non-empty, and be at most 16384 + 2048 bytes;
* the hello may be split across any number of records and reads;
* the handshake message must be a ClientHello of at most 65536 bytes (Go's
  ``maxHandshake``), and structurally sound: session id, even-length cipher
  suites, compression methods, extensions exactly filling the message, no
  extension twice;
* server_name: a non-empty list of non-empty names, one host_name at most, no
  trailing dot.  Other name types are skipped.

Other extensions' contents are not checked (Go would, and would then fail the
handshake with the backend instead; the route is the same).  The name is
returned lower-cased (frp's muxer lower-cases it before routing); ``None``
means the client sent no SNI, which frp routes as the empty host (so only a
``*`` route can take it).

:class:`ClientHelloReader` is incremental: each byte is examined once however
the stream is split, and it keeps everything fed so the caller can replay it.
"""
from __future__ import annotations

from typing import Final

__all__ = [
    "MAX_HANDSHAKE",
    "MAX_RECORD",
    "NEED_MORE",
    "UNRECOGNIZED_NAME_ALERT",
    "ClientHelloReader",
    "NeedMore",
    "SNIError",
    "parse_client_hello",
]

#: Go's ``maxHandshake``: the largest ClientHello body accepted.
MAX_HANDSHAKE: Final = 65536
#: Go's ``maxCiphertext``: the largest record payload accepted.
MAX_RECORD: Final = 16384 + 2048

#: What frps answers a hello whose name has no route: Go's ``tls.Server``
#: without certificates sends a fatal ``unrecognized_name`` alert (captured
#: from frps 0.65.0), then frps closes the connection.
UNRECOGNIZED_NAME_ALERT: Final = bytes.fromhex("15030300020270")

_RECORD_HANDSHAKE = 22
_HANDSHAKE_CLIENT_HELLO = 1
_EXT_SERVER_NAME = 0


class SNIError(Exception):
    """The bytes are not a TLS ClientHello frps would accept; close the connection."""


class NeedMore:
    """Marker: the ClientHello is not complete yet; feed more bytes."""

    _instance: NeedMore | None = None

    def __new__(cls) -> NeedMore:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_MORE"


NEED_MORE: Final = NeedMore()


class _Cursor:
    """Bounds-checked reads over one handshake message (cryptobyte-style)."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes | memoryview, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def empty(self) -> bool:
        return self.pos >= self.end

    def _take(self, n: int, what: str) -> int:
        start = self.pos
        if self.end - start < n:
            raise SNIError(f"tls: malformed ClientHello ({what} truncated)")
        self.pos = start + n
        return start

    def u8(self, what: str) -> int:
        return self.data[self._take(1, what)]

    def u16(self, what: str) -> int:
        start = self._take(2, what)
        return (self.data[start] << 8) | self.data[start + 1]

    def skip(self, n: int, what: str) -> None:
        self._take(n, what)

    def sub8(self, what: str) -> _Cursor:
        n = self.u8(what)
        start = self._take(n, what)
        return _Cursor(self.data, start, start + n)

    def sub16(self, what: str) -> _Cursor:
        n = self.u16(what)
        start = self._take(n, what)
        return _Cursor(self.data, start, start + n)

    def rest(self) -> bytes:
        return bytes(self.data[self.pos:self.end])


def _parse_server_name(ext: _Cursor) -> str | None:
    names = ext.sub16("server_name list")
    if names.empty():
        raise SNIError("tls: malformed ClientHello (empty server_name list)")
    found: str | None = None
    while not names.empty():
        name_type = names.u8("server_name type")
        name = names.sub16("server_name")
        if name.empty():
            raise SNIError("tls: malformed ClientHello (empty server_name)")
        if name_type != 0:
            continue
        if found is not None:
            raise SNIError("tls: malformed ClientHello (two host_name entries)")
        raw = name.rest()
        if raw.endswith(b"."):
            raise SNIError("tls: malformed ClientHello (server_name with a trailing dot)")
        found = raw.lower().decode("utf-8", "surrogateescape")
    if not ext.empty():
        raise SNIError("tls: malformed ClientHello (bytes after server_name list)")
    return found


def _parse_hello_body(body: bytes) -> str | None:
    """The server name in a ClientHello body (after the 4-byte handshake header)."""
    c = _Cursor(body)
    c.u16("version")
    c.skip(32, "random")
    c.sub8("session id")
    suites = c.sub16("cipher suites")
    if (suites.end - suites.pos) % 2:
        raise SNIError("tls: malformed ClientHello (odd cipher suites length)")
    c.sub8("compression methods")
    if c.empty():
        return None
    extensions = c.sub16("extensions")
    if not c.empty():
        raise SNIError("tls: malformed ClientHello (bytes after extensions)")
    seen: set[int] = set()
    server_name: str | None = None
    while not extensions.empty():
        ext_type = extensions.u16("extension type")
        ext = extensions.sub16("extension data")
        if ext_type in seen:
            raise SNIError(f"tls: malformed ClientHello (extension {ext_type} repeated)")
        seen.add(ext_type)
        if ext_type == _EXT_SERVER_NAME:
            server_name = _parse_server_name(ext)
    return server_name


class ClientHelloReader:
    """Feed the first bytes of a connection; learn its SNI once the hello is in.

    :meth:`feed` returns :data:`NEED_MORE` until the ClientHello is complete,
    then the lower-cased server name, or ``None`` without SNI; it raises
    :class:`SNIError` for anything frps would drop.  :attr:`buffered` holds
    every byte fed, for replay to the backend.  Memory is bounded: once more
    than about twice ``max_handshake`` bytes are buffered without a complete
    hello, the connection is refused (Go has no such cap, but only a hello cut
    into records of a byte or two could need it).
    """

    def __init__(self, max_handshake: int = MAX_HANDSHAKE) -> None:
        self._max_handshake = max_handshake
        self._raw = bytearray()
        self._pos = 0  # next unread record header in _raw
        self._record_left = 0  # payload bytes of the current record still to copy
        self._hs = bytearray()  # handshake payload gathered so far
        self._hello_len: int | None = None
        self._result: str | None | NeedMore = NEED_MORE
        self._error: SNIError | None = None
        # Raw bytes can exceed the hello by one 5-byte header per record;
        # records are non-empty, so cap the count of tiny records too.
        self._max_raw = 2 * (max_handshake + 4) + 5

    @property
    def buffered(self) -> bytes:
        """Everything fed so far (the bytes to replay to the backend)."""
        return bytes(self._raw)

    def feed(self, data: bytes) -> str | None | NeedMore:
        if self._error is not None:
            raise self._error
        if not isinstance(self._result, NeedMore):
            self._raw += data
            return self._result
        try:
            return self._feed(data)
        except SNIError as e:
            self._error = e
            raise

    def _feed(self, data: bytes) -> str | None | NeedMore:
        self._raw += data
        raw = self._raw
        while True:
            if self._record_left:
                take = min(self._record_left, len(raw) - self._pos)
                if take <= 0:
                    break
                self._hs += raw[self._pos:self._pos + take]
                self._pos += take
                self._record_left -= take
            if self._hello_len is None and len(self._hs) >= 4:
                if self._hs[0] != _HANDSHAKE_CLIENT_HELLO:
                    raise SNIError(f"tls: unexpected handshake message type {self._hs[0]} (want ClientHello)")
                n = (self._hs[1] << 16) | (self._hs[2] << 8) | self._hs[3]
                if n > self._max_handshake:
                    raise SNIError(
                        f"tls: handshake message of length {n} bytes exceeds maximum of {self._max_handshake} bytes")
                self._hello_len = n
            if self._hello_len is not None and len(self._hs) >= 4 + self._hello_len:
                body = bytes(self._hs[4:4 + self._hello_len])
                self._result = _parse_hello_body(body)
                return self._result
            if self._record_left:
                break
            if len(raw) - self._pos < 5:
                break
            typ = raw[self._pos]
            vers = (raw[self._pos + 1] << 8) | raw[self._pos + 2]
            n = (raw[self._pos + 3] << 8) | raw[self._pos + 4]
            if typ != _RECORD_HANDSHAKE or vers >= 0x1000:
                raise SNIError("tls: first record does not look like a TLS handshake")
            if n > MAX_RECORD:
                raise SNIError(f"tls: oversized record received with length {n}")
            if n == 0:
                raise SNIError("tls: empty handshake record")
            self._pos += 5
            self._record_left = n
        if len(raw) > self._max_raw:
            raise SNIError("tls: ClientHello too large")
        return NEED_MORE


def parse_client_hello(data: bytes, max_handshake: int = MAX_HANDSHAKE) -> str | None | NeedMore:
    """One-shot form of :class:`ClientHelloReader`: the SNI in ``data``, None, or NEED_MORE."""
    return ClientHelloReader(max_handshake).feed(data)
