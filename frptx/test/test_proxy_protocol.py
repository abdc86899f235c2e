"""Tests for frptx.wire.proxy_protocol: golden bytes from haproxy's proxy-protocol.txt, frp's rules, round trips."""
from __future__ import annotations

import ipaddress

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from frptx.wire.proxy_protocol import (
    V2_SIGNATURE,
    ProxyHeader,
    ProxyProtocolError,
    build_header,
    encode_header,
    parse_header,
    udp_datagram_header,
    work_conn_header,
)

SIG = bytes.fromhex("0d0a0d0a000d0a515549540a")


class GoldenTests(SynchronousTestCase):
    """Byte-exact vectors from the PROXY protocol specification."""

    def test_signature(self) -> None:
        # spec 2.2: \x0D \x0A \x0D \x0A \x00 \x0D \x0A \x51 \x55 \x49 \x54 \x0A
        self.assertEqual(V2_SIGNATURE, SIG)

    def test_v1_tcp4_example(self) -> None:
        # spec 2.1 example: "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
        self.assertEqual(
            encode_header("v1", ("192.168.0.1", 56324), ("192.168.0.11", 443)),
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
        )

    def test_v1_worst_cases(self) -> None:
        # spec 2.1: the longest TCP4 and TCP6 lines (56 and 104 bytes)
        v4 = encode_header("v1", ("255.255.255.255", 65535), ("255.255.255.255", 65535))
        self.assertEqual(v4, b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n")
        self.assertEqual(len(v4), 56)
        f = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        v6 = encode_header("v1", (f, 65535), (f, 65535))
        self.assertEqual(v6, f"PROXY TCP6 {f} {f} 65535 65535\r\n".encode())
        self.assertEqual(len(v6), 104)

    def test_v1_unknown(self) -> None:
        # spec 2.1: "PROXY UNKNOWN\r\n" when the addresses are not known
        self.assertEqual(encode_header("v1", None, ("10.0.0.1", 80)), b"PROXY UNKNOWN\r\n")

    def test_v2_tcp4(self) -> None:
        # spec 2.2: \x21 = v2 PROXY, \x11 = TCP over IPv4, len 12, addresses, ports
        self.assertEqual(
            encode_header("v2", ("192.168.0.1", 56324), ("192.168.0.11", 443)),
            SIG + bytes.fromhex("2111000c" "c0a80001" "c0a8000b" "dc04" "01bb"),
        )

    def test_v2_udp6(self) -> None:
        # \x22 = UDP over IPv6, len 36 = 16 + 16 + 2 + 2
        self.assertEqual(
            encode_header("v2", ("2001:db8::1", 12345), ("::1", 3306), "udp"),
            SIG + bytes.fromhex("21220024" "20010db8000000000000000000000001" "00000000000000000000000000000001"
                                "3039" "0cea"),
        )

    def test_v2_local(self) -> None:
        # \x20 = v2 LOCAL, \x00 = UNSPEC, len 0
        self.assertEqual(encode_header("v2", None, None), SIG + bytes.fromhex("20000000"))

    def test_parse_golden(self) -> None:
        header, used = parse_header(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /")
        self.assertEqual(used, 47)
        self.assertEqual(header, ProxyHeader(1, "PROXY", "inet", "tcp", ("192.168.0.1", 56324), ("192.168.0.11", 443)))
        raw = SIG + bytes.fromhex("2112000c" "7f000001" "7f000002" "0050" "01bb") + b"data"
        header, used = parse_header(raw)
        self.assertEqual(used, len(raw) - 4)
        self.assertEqual(header, ProxyHeader(2, "PROXY", "inet", "udp", ("127.0.0.1", 80), ("127.0.0.2", 443)))

    def test_parse_tlvs_and_unix(self) -> None:
        tlv = bytes.fromhex("0400020102")  # PP2_TYPE_NOOP, length 2
        raw = SIG + bytes.fromhex("21110011" "7f000001" "7f000002" "0050" "01bb") + tlv
        header, _ = parse_header(raw)
        self.assertEqual(header.tlvs, tlv)
        self.assertEqual(header.encode(), raw)
        unix = SIG + bytes.fromhex("213100d8") + b"/a".ljust(108, b"\0") + b"/b".ljust(108, b"\0")
        header, used = parse_header(unix)
        self.assertEqual((header.family, header.transport, header.source, header.destination, used),
                         ("unix", "tcp", ("/a", 0), ("/b", 0), len(unix)))


class FrpRulesTests(SynchronousTestCase):
    """The cases frpc reaches, as Go frp 0.65.0 with go-proxyproto v0.7.0 writes them."""

    def test_work_conn_off_or_no_source(self) -> None:
        self.assertIsNone(work_conn_header("", "1.2.3.4", 5, "5.6.7.8", 80))
        self.assertIsNone(work_conn_header("v2", "", 5, "5.6.7.8", 80))
        self.assertIsNone(work_conn_header("v2", "1.2.3.4", 0, "5.6.7.8", 80))

    def test_work_conn_empty_destination_is_loopback(self) -> None:
        self.assertEqual(work_conn_header("v1", "1.2.3.4", 5, "", 0), b"PROXY TCP4 1.2.3.4 127.0.0.1 5 0\r\n")

    def test_any_other_version_is_v2(self) -> None:
        self.assertEqual(work_conn_header("v2", "1.2.3.4", 5, "5.6.7.8", 80),
                         work_conn_header("x", "1.2.3.4", 5, "5.6.7.8", 80))
        self.assertTrue(work_conn_header("v2", "1.2.3.4", 5, "5.6.7.8", 80).startswith(SIG))

    def test_family_follows_source(self) -> None:
        # an IPv4-mapped source is IPv4 (Go's To4); a v6 header maps an IPv4 destination
        self.assertEqual(work_conn_header("v1", "::ffff:1.2.3.4", 5, "5.6.7.8", 80),
                         b"PROXY TCP4 1.2.3.4 5.6.7.8 5 80\r\n")
        self.assertEqual(work_conn_header("v1", "2001:db8::1", 5, "5.6.7.8", 80),
                         b"PROXY TCP6 2001:db8::1 5.6.7.8 5 80\r\n")
        v2 = work_conn_header("v2", "2001:db8::1", 5, "5.6.7.8", 80)
        self.assertEqual(v2[16 + 16:16 + 32], ipaddress.IPv6Address("::ffff:5.6.7.8").packed)

    def test_v4_source_v6_destination_fails(self) -> None:
        # go-proxyproto: ErrInvalidAddress; frpc closes the work connection
        for version in ("v1", "v2"):
            self.assertRaises(ProxyProtocolError, work_conn_header, version, "1.2.3.4", 5, "2001:db8::1", 80)

    def test_unparseable_addresses_give_unknown(self) -> None:
        # Go frpc would crash on a nil address; frptx writes the address-less form
        self.assertEqual(work_conn_header("v1", "not-an-ip", 5, "5.6.7.8", 80), b"PROXY UNKNOWN\r\n")
        self.assertEqual(work_conn_header("v2", "1.2.3.4", 5, "bad", 80), SIG + bytes.fromhex("20000000"))

    def test_ipv6_zone_and_brackets(self) -> None:
        self.assertEqual(work_conn_header("v1", "[fe80::1%eth0]", 5, "fe80::2", 80),
                         b"PROXY TCP6 fe80::1 fe80::2 5 80\r\n")

    def test_go_ipv6_text(self) -> None:
        # RFC 5952 like Go: one zero group is not compressed, the first longest run is
        self.assertEqual(work_conn_header("v1", "1:0:1:1:1:1:1:1", 1, "1:0:0:1:0:0:1:1", 2),
                         b"PROXY TCP6 1:0:1:1:1:1:1:1 1::1:0:0:1:1 1 2\r\n")

    def test_udp(self) -> None:
        self.assertEqual(udp_datagram_header("v1", ("1.2.3.4", 5), ("127.0.0.1", 53)), b"PROXY UNKNOWN\r\n")
        self.assertEqual(udp_datagram_header("v2", ("1.2.3.4", 5), ("127.0.0.1", 53)),
                         SIG + bytes.fromhex("2112000c" "01020304" "7f000001" "0005" "0035"))
        self.assertIsNone(udp_datagram_header("", ("1.2.3.4", 5), ("127.0.0.1", 53)))
        self.assertIsNone(udp_datagram_header("v2", None, ("127.0.0.1", 53)))
        # Go ignores the error and sends the datagram bare
        self.assertIsNone(udp_datagram_header("v2", ("1.2.3.4", 5), ("::1", 53)))

    def test_bad_port(self) -> None:
        self.assertRaises(ProxyProtocolError, build_header, "v2", ("1.2.3.4", 65536), ("1.2.3.4", 1))


class ParserErrorTests(SynchronousTestCase):
    def test_incomplete_is_none(self) -> None:
        full = encode_header("v2", ("1.2.3.4", 5), ("5.6.7.8", 80))
        for i in range(len(full)):
            self.assertIsNone(parse_header(full[:i]), i)
        line = b"PROXY TCP4 1.2.3.4 5.6.7.8 5 80\r\n"
        for i in range(len(line)):
            self.assertIsNone(parse_header(line[:i]), i)

    def test_invalid(self) -> None:
        for bad in [
            b"GET / HTTP/1.1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 5 80\n",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 5 80\r\n",
            b"PROXY TCP4 ::1 5.6.7.8 5 80\r\n",
            b"PROXY TCP6 1.2.3.4 ::1 5 80\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 5 65536\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 5\r\n",
            b"PROXY " + b"x" * 120,
            SIG + bytes.fromhex("22110000"),  # version 2, command 2
            SIG + bytes.fromhex("21000000"),  # PROXY with UNSPEC
            SIG + bytes.fromhex("21110004"),  # too short for IPv4
            SIG + bytes.fromhex("21410000"),  # unknown family
        ]:
            self.assertRaises(ProxyProtocolError, parse_header, bad)


_ipv4 = st.ip_addresses(v=4).map(str)
_ipv6 = st.ip_addresses(v=6).filter(lambda a: a.ipv4_mapped is None).map(str)
_port = st.integers(0, 65535)


class RoundTripTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from(["v1", "v2"]), st.sampled_from(["tcp", "udp"]), st.booleans(),
           st.data(), _port, _port, st.binary(max_size=8))
    def test_round_trip(self, version: str, transport: str, v6: bool, data: st.DataObject,
                        sport: int, dport: int, trailing: bytes) -> None:
        addr = _ipv6 if v6 else _ipv4
        src, dst = data.draw(addr), data.draw(addr)
        header = build_header(version, (src, sport), (dst, dport), transport)  # type: ignore[arg-type]
        raw = header.encode()
        parsed, used = parse_header(raw + trailing)
        self.assertEqual(used, len(raw))
        if version == "v1" and transport == "udp":
            self.assertEqual(raw, b"PROXY UNKNOWN\r\n")
            self.assertEqual(parsed.command, "LOCAL")
            return
        self.assertEqual(parsed.command, "PROXY")
        self.assertEqual(parsed.transport, transport)
        self.assertEqual(parsed.family, "inet6" if v6 else "inet")
        self.assertEqual(parsed.source, (str(ipaddress.ip_address(src)), sport))
        self.assertEqual(parsed.destination, (str(ipaddress.ip_address(dst)), dport))
        self.assertEqual(parsed.encode(), raw)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=64))
    def test_parser_never_crashes(self, junk: bytes) -> None:
        for data in (junk, SIG + junk, b"PROXY " + junk):
            try:
                result = parse_header(data)
            except ProxyProtocolError:
                continue
            if result is not None:
                self.assertLessEqual(result[1], len(data))
