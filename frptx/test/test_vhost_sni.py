"""SNI extraction from real ClientHellos (made by the stdlib's OpenSSL), split every way."""
from __future__ import annotations

import ssl
import struct

from hypothesis import given, settings, strategies as st
from twisted.trial import unittest

from frptx.vhost.sni import (
    MAX_HANDSHAKE,
    NEED_MORE,
    UNRECOGNIZED_NAME_ALERT,
    ClientHelloReader,
    SNIError,
    parse_client_hello,
)


def client_hello(server_name: str | None, *, alpn: list[str] | None = None,
                 maximum: ssl.TLSVersion | None = None) -> bytes:
    """The first flight of a real TLS client, captured from a memory BIO."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if maximum is not None:
        ctx.maximum_version = maximum
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def records(data: bytes) -> list[tuple[int, bytes]]:
    out, i = [], 0
    while i < len(data):
        n = struct.unpack("!H", data[i + 3:i + 5])[0]
        out.append((data[i], data[i + 5:i + 5 + n]))
        i += 5 + n
    return out


def handshake_payload(data: bytes) -> bytes:
    return b"".join(payload for _, payload in records(data))


def as_records(payload: bytes, sizes: list[int], version: bytes = b"\x03\x01") -> bytes:
    """Re-fragment a handshake payload into records of the given sizes (then the rest)."""
    out, i = [], 0
    for size in sizes:
        if i >= len(payload):
            break
        chunk = payload[i:i + size]
        out.append(b"\x16" + version + struct.pack("!H", len(chunk)) + chunk)
        i += size
    if i < len(payload):
        out.append(b"\x16" + version + struct.pack("!H", len(payload) - i) + payload[i:])
    return b"".join(out)


def split_extensions(payload: bytes) -> tuple[bytes, list[tuple[int, bytes]]]:
    """(ClientHello body up to the extensions block, [(type, data)])."""
    body = payload[4:]
    i = 2 + 32
    i += 1 + body[i]
    i += 2 + struct.unpack("!H", body[i:i + 2])[0]
    i += 1 + body[i]
    prefix = body[:i]
    ext_len = struct.unpack("!H", body[i:i + 2])[0]
    exts, j = [], i + 2
    while j < i + 2 + ext_len:
        t, n = struct.unpack("!HH", body[j:j + 4])
        exts.append((t, body[j + 4:j + 4 + n]))
        j += 4 + n
    return prefix, exts


def rebuild(prefix: bytes, exts: list[tuple[int, bytes]]) -> bytes:
    """A record-framed ClientHello from parts (for malformed variants of a real hello)."""
    block = b"".join(struct.pack("!HH", t, len(d)) + d for t, d in exts)
    body = prefix + struct.pack("!H", len(block)) + block
    payload = b"\x01" + len(body).to_bytes(3, "big") + body
    return as_records(payload, [len(payload)])


def wrap(body: bytes) -> bytes:
    """A ClientHello body in a handshake header and one record."""
    payload = b"\x01" + len(body).to_bytes(3, "big") + body
    return as_records(payload, [len(payload)])


def sni_ext(*entries: tuple[int, bytes]) -> bytes:
    names = b"".join(bytes([t]) + struct.pack("!H", len(n)) + n for t, n in entries)
    return struct.pack("!H", len(names)) + names


HELLO = client_hello("Example.COM")
HELLO_PREFIX, HELLO_EXTS = split_extensions(handshake_payload(HELLO))


class RealHelloTests(unittest.TestCase):
    def test_names(self) -> None:
        for name, want in [("example.com", "example.com"), ("WWW.Example.Com", "www.example.com"),
                           ("a" * 63 + "." + "b" * 63 + ".test", "a" * 63 + "." + "b" * 63 + ".test"),
                           ("xn--bcher-kva.example", "xn--bcher-kva.example"), ("localhost", "localhost")]:
            self.assertEqual(parse_client_hello(client_hello(name)), want, name)

    def test_no_sni(self) -> None:
        self.assertIsNone(parse_client_hello(client_hello(None)))

    def test_tls12_only_client(self) -> None:
        self.assertEqual(parse_client_hello(client_hello("old.test", maximum=ssl.TLSVersion.TLSv1_2)), "old.test")

    def test_trailing_dot_refused_like_go(self) -> None:
        """OpenSSL sends ``example.com.``; Go's parser rejects an SNI with a trailing dot."""
        data = client_hello("example.com.")
        self.assertIn(b"example.com.", data)
        self.assertRaises(SNIError, parse_client_hello, data)

    def test_hello_spanning_records(self) -> None:
        """A 24 KiB hello (many ALPN ids): OpenSSL itself splits it into two records."""
        data = client_hello("big.test", alpn=[f"p{i:03d}" + "x" * 200 for i in range(120)])
        self.assertGreater(len(records(data)), 1)
        self.assertEqual(parse_client_hello(data), "big.test")
        self.assertIs(parse_client_hello(data[:16384 + 5]), NEED_MORE)

    def test_every_prefix_needs_more(self) -> None:
        for i in range(len(HELLO)):
            self.assertIs(parse_client_hello(HELLO[:i]), NEED_MORE, i)
        self.assertEqual(parse_client_hello(HELLO), "example.com")

    def test_byte_at_a_time_and_replay(self) -> None:
        reader = ClientHelloReader()
        for i in range(len(HELLO) - 1):
            self.assertIs(reader.feed(HELLO[i:i + 1]), NEED_MORE)
        self.assertEqual(reader.feed(HELLO[-1:] + b"early data"), "example.com")
        self.assertEqual(reader.feed(b" more"), "example.com")
        self.assertEqual(reader.buffered, HELLO + b"early data more")

    def test_refragmented_into_tiny_records(self) -> None:
        payload = handshake_payload(HELLO)
        for sizes in ([1] * 40, [3, 1, 200], [4], [5, 5, 5, 5]):
            self.assertEqual(parse_client_hello(as_records(payload, sizes)), "example.com", sizes)

    def test_hello_without_extensions(self) -> None:
        self.assertIsNone(parse_client_hello(as_records(
            b"\x01" + len(HELLO_PREFIX).to_bytes(3, "big") + HELLO_PREFIX, [])))

    def test_other_name_types_skipped(self) -> None:
        exts = [(t, sni_ext((7, b"ignored"), (0, b"Real.Test")) if t == 0 else d) for t, d in HELLO_EXTS]
        self.assertEqual(parse_client_hello(rebuild(HELLO_PREFIX, exts)), "real.test")

    def test_rebuild_is_faithful(self) -> None:
        self.assertEqual(rebuild(HELLO_PREFIX, HELLO_EXTS)[5:], handshake_payload(HELLO))

    def test_alert_constant(self) -> None:
        """fatal(2) unrecognized_name(112) in a TLS 1.2-versioned alert record, as frps sent it."""
        self.assertEqual(UNRECOGNIZED_NAME_ALERT, bytes([21, 3, 3, 0, 2, 2, 112]))


class MalformedTests(unittest.TestCase):
    def assertRefused(self, data: bytes, fragment: str = "") -> None:
        with self.assertRaises(SNIError) as cm:
            parse_client_hello(data)
        self.assertIn(fragment, str(cm.exception))

    def test_record_layer(self) -> None:
        payload = handshake_payload(HELLO)
        self.assertRefused(b"GET / HTTP/1.1\r\n\r\n", "does not look like a TLS handshake")
        self.assertRefused(b"\x17" + HELLO[1:], "does not look like a TLS handshake")
        self.assertRefused(b"\x16\x10\x00" + HELLO[3:], "does not look like a TLS handshake")
        self.assertRefused(b"\x16\x03\x01" + struct.pack("!H", 16384 + 2049), "oversized record")
        self.assertRefused(b"\x16\x03\x01\x00\x00" + HELLO, "empty handshake record")
        # a second record of another type before the hello is complete
        first = as_records(payload[:10], [10])
        self.assertRefused(first + b"\x15\x03\x01\x00\x02\x02\x28", "does not look like a TLS handshake")

    def test_handshake_layer(self) -> None:
        payload = handshake_payload(HELLO)
        self.assertRefused(as_records(b"\x02" + payload[1:], []), "want ClientHello")
        too_big = b"\x01" + (MAX_HANDSHAKE + 1).to_bytes(3, "big")
        self.assertRefused(as_records(too_big, []), "exceeds maximum")
        # a smaller configured bound
        with self.assertRaises(SNIError):
            ClientHelloReader(max_handshake=100).feed(HELLO)

    def test_hello_structure(self) -> None:
        prefix = HELLO_PREFIX
        cases = {
            "truncated": as_records(b"\x01\x00\x00\x03\x03\x03\x00", []),
            "odd suites": rebuild(prefix[:35 + prefix[34]] + b"\x00\x03\x13\x01\x00" + b"\x01\x00", HELLO_EXTS),
            "bytes after extensions": wrap(rebuild(prefix, HELLO_EXTS)[9:] + b"\x00"),
            "extensions length beyond message": wrap(prefix + b"\x00\x10"),
            "repeated extension": rebuild(prefix, HELLO_EXTS + [HELLO_EXTS[-1]]),
            "empty name list": rebuild(prefix, [(0, b"\x00\x00")]),
            "empty name": rebuild(prefix, [(0, sni_ext((0, b"")))]),
            "two host names": rebuild(prefix, [(0, sni_ext((0, b"a.test"), (0, b"b.test")))]),
            "trailing dot": rebuild(prefix, [(0, sni_ext((0, b"a.test.")))]),
            "junk after list": rebuild(prefix, [(0, sni_ext((0, b"a.test")) + b"\x00")]),
            "list longer than extension": rebuild(prefix, [(0, b"\x00\x09\x00\x00\x01a")]),
        }
        reasons = {
            "truncated": "random truncated",
            "odd suites": "odd cipher suites length",
            "bytes after extensions": "bytes after extensions",
            "extensions length beyond message": "extensions truncated",
            "repeated extension": "repeated",
            "empty name list": "empty server_name list",
            "empty name": "empty server_name",
            "two host names": "two host_name entries",
            "trailing dot": "trailing dot",
            "junk after list": "bytes after server_name list",
            "list longer than extension": "server_name list truncated",
        }
        self.assertEqual(set(reasons), set(cases))
        for name, data in cases.items():
            with self.assertRaises(SNIError, msg=name) as cm:
                parse_client_hello(data)
            self.assertIn(reasons[name], str(cm.exception), name)

    def test_error_is_sticky(self) -> None:
        reader = ClientHelloReader()
        self.assertRaises(SNIError, reader.feed, b"\x00" * 5)
        self.assertRaises(SNIError, reader.feed, HELLO)

    def test_raw_bytes_bounded(self) -> None:
        """A hello trickled in one-byte records cannot make frps buffer without bound."""
        reader = ClientHelloReader(max_handshake=1000)
        header = as_records(b"\x01\x00\x03\xe8", [1, 1, 1, 1])
        self.assertIs(reader.feed(header), NEED_MORE)
        with self.assertRaises(SNIError):
            for _ in range(2000):
                reader.feed(b"\x16\x03\x01\x00\x01\x00")
        self.assertLessEqual(len(reader.buffered), 2 * 1004 + 5 + 6)


class FuzzTests(unittest.TestCase):
    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=600))
    def test_arbitrary_bytes(self, data: bytes) -> None:
        try:
            parse_client_hello(data)
        except SNIError:
            pass

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=600))
    def test_arbitrary_bytes_after_a_record_header(self, data: bytes) -> None:
        try:
            parse_client_hello(b"\x16\x03\x01" + struct.pack("!H", len(data)) + data)
        except SNIError:
            pass

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, len(HELLO) - 1), st.integers(0, 255)), min_size=1, max_size=6))
    def test_mutated_real_hello(self, edits: list[tuple[int, int]]) -> None:
        data = bytearray(HELLO)
        for pos, value in edits:
            data[pos] = value
        try:
            result = parse_client_hello(bytes(data))
        except SNIError:
            return
        self.assertTrue(result is NEED_MORE or result is None or isinstance(result, str))

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.integers(1, 600), max_size=20))
    def test_any_split_gives_the_same_answer(self, cuts: list[int]) -> None:
        reader = ClientHelloReader()
        i = 0
        for cut in cuts:
            if i + cut >= len(HELLO):
                break
            self.assertIs(reader.feed(HELLO[i:i + cut]), NEED_MORE)
            i += cut
        result = reader.feed(HELLO[i:])
        self.assertEqual(result, "example.com")
        self.assertEqual(reader.buffered, HELLO)


class FrpsObservationTests(unittest.TestCase):
    """25 first flights sent to a real frps 0.65.0 ``vhostHTTPSPort`` and what it did.

    frps had two https proxies, ``example.com`` and ``*.wild.test``, whose
    backends greeted with EXAMPLE / WILD.  "alert" is frps's unrecognized_name
    alert (no route for the name, or no name), "closed" a silent close (Go's
    TLS stack refused the hello).  Replayed through the reader and the route
    table, every outcome must be the same.
    """

    OBSERVED = {
        "plain": "EXAMPLE", "upper": "EXAMPLE", "wild": "WILD", "nosni": "alert", "other": "alert",
        "tls12": "EXAMPLE", "trailingdot": "closed", "big-2-records": "WILD", "tiny-records": "EXAMPLE",
        "rec-vers-0300": "EXAMPLE", "rec-vers-0fff": "EXAMPLE", "rec-vers-1000": "closed", "zero-record": "closed",
        "dup-ext": "closed", "two-hostnames": "closed", "othertype-then-name": "EXAMPLE", "empty-name": "closed",
        "junk-after-list": "closed", "no-extensions": "alert", "odd-suites": "closed", "bytes-after-ext": "closed",
        "sni-only": "EXAMPLE", "handshake-type-2": "closed", "http": "closed", "trailing-hs-bytes": "EXAMPLE",
    }

    def cases(self) -> dict[str, bytes]:
        hello = client_hello("Example.COM")
        payload = handshake_payload(hello)
        prefix, exts = split_extensions(payload)
        return {
            "plain": hello, "upper": client_hello("EXAMPLE.com"), "wild": client_hello("x.y.wild.test"),
            "nosni": client_hello(None), "other": client_hello("nope.test"),
            "tls12": client_hello("example.com", maximum=ssl.TLSVersion.TLSv1_2),
            "trailingdot": client_hello("example.com."),
            "big-2-records": client_hello("a.wild.test", alpn=[f"p{i:03d}" + "x" * 200 for i in range(120)]),
            "tiny-records": as_records(payload, [1] * 60),
            "rec-vers-0300": as_records(payload, [len(payload)], b"\x03\x00"),
            "rec-vers-0fff": as_records(payload, [len(payload)], b"\x0f\xff"),
            "rec-vers-1000": as_records(payload, [len(payload)], b"\x10\x00"),
            "zero-record": b"\x16\x03\x01\x00\x00" + hello,
            "dup-ext": rebuild(prefix, exts + [exts[-1]]),
            "two-hostnames": rebuild(prefix, [(0, sni_ext((0, b"example.com"), (0, b"b.test")))]),
            "othertype-then-name": rebuild(prefix, [(t, sni_ext((7, b"x"), (0, b"example.com")) if t == 0 else d)
                                                    for t, d in exts]),
            "empty-name": rebuild(prefix, [(0, sni_ext((0, b"")))]),
            "junk-after-list": rebuild(prefix, [(0, sni_ext((0, b"example.com")) + b"\x00")]),
            "no-extensions": wrap(prefix),
            "odd-suites": rebuild(prefix[:35 + prefix[34]] + b"\x00\x03\x13\x01\x00" + b"\x01\x00", exts),
            "bytes-after-ext": wrap(rebuild(prefix, exts)[9:] + b"\x00"),
            "sni-only": rebuild(prefix, [(0, sni_ext((0, b"example.com")))]),
            "handshake-type-2": as_records(b"\x02" + payload[1:], []),
            "http": b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
            "trailing-hs-bytes": as_records(payload + b"\x14\x00\x00\x00", [len(payload) + 4]),
        }

    def test_same_outcome_as_frps(self) -> None:
        from frptx.vhost.routing import RouteTable

        table: RouteTable[str] = RouteTable()
        table.add("example.com", "", "", "EXAMPLE")
        table.add("*.wild.test", "", "", "WILD")
        cases = self.cases()
        self.assertEqual(set(cases), set(self.OBSERVED))
        for name, data in cases.items():
            try:
                sni = parse_client_hello(data)
            except SNIError:
                got = "closed"
            else:
                self.assertIsNot(sni, NEED_MORE, name)
                route = table.lookup(sni or "") if isinstance(sni, str) or sni is None else None
                got = route.value if route else "alert"
            self.assertEqual(got, self.OBSERVED[name], name)
