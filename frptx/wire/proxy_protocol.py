# -*- test-case-name: frptx.test.test_proxy_protocol -*-
"""PROXY protocol v1/v2 headers, as frpc writes them to a local service (sans-IO).

With ``transport.proxyProtocolVersion`` set, frpc tells the local service who
the real user is by writing a PROXY protocol header (haproxy's
``proxy-protocol.txt``) before any tunnelled byte.  Go frp 0.65.0 builds the
header with ``pires/go-proxyproto`` v0.7.0; this module reproduces the bytes
that library writes in the cases frp reaches, so a service behind frptx sees
exactly what it would see behind Go frpc:

* **TCP** (every stream proxy: tcp, http, https, stcp, tcpmux, ...): the
  header is built from the ``StartWorkConn`` message -- source = the user
  (``src_addr``/``src_port``), destination = the address the user connected to
  on frps (``dst_addr``/``dst_port``; an empty ``dst_addr`` becomes
  ``127.0.0.1``).  No header is written unless ``src_addr`` is non-empty and
  ``src_port`` is non-zero (:func:`work_conn_header`).
* **UDP** (udp, sudp): every datagram to the local service is prefixed with a
  header whose source is the user's address (``UDPPacket.remote_addr``) and
  whose destination is the *local service's* address (frp passes its own
  dial target, not frps' address).  v2 says ``DGRAM``; v1 has no UDP form, so
  go-proxyproto writes ``PROXY UNKNOWN\\r\\n`` (:func:`udp_datagram_header`).
* The address family follows the *source* address only: an IPv4 (or
  IPv4-mapped IPv6) source gives ``TCP4``/``\\x11``, anything else IPv6.  A v4
  header whose destination is a real IPv6 address cannot be written;
  go-proxyproto fails with "invalid address" and frpc then closes the work
  connection (TCP) or sends the datagram without a header (UDP) -- here
  :class:`ProxyProtocolError` is raised and the caller does the same.  A v6
  header carries an IPv4 destination IPv4-mapped (v2 bytes ``::ffff:a.b.c.d``;
  v1 text dotted, because Go prints mapped addresses that way).
* Any ``proxyProtocolVersion`` other than ``"v1"`` means v2 (frp's rule);
  ``""`` means no header at all.

Where Go frp would crash (a ``src_addr`` or ``dst_addr`` that is not an IP
literal makes frpc dereference a nil address), frptx instead sends the
"no address" form: ``PROXY UNKNOWN\\r\\n`` (v1) or a v2 ``LOCAL`` header with
family ``UNSPEC``, which go-proxyproto itself uses when addresses are missing.
frptx never resolves host names here: the module does no I/O.

:func:`parse_header` reads either version back (with TLVs kept raw); the
tests and test services use it to check what a local service receives.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import struct
from typing import Literal

__all__ = [
    "V1_SIGNATURE",
    "V2_SIGNATURE",
    "ProxyProtocolError",
    "ProxyHeader",
    "build_header",
    "encode_header",
    "work_conn_header",
    "udp_datagram_header",
    "parse_header",
]

V1_SIGNATURE = b"PROXY "
#: The 12-byte v2 signature ``\r\n\r\n\0\r\nQUIT\n``.
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: "PROXY UNKNOWN ffff:...:ffff ffff:...:ffff 65535 65535\r\n": the spec's longest v1 line.
V1_MAX_LENGTH = 107

Transport = Literal["tcp", "udp"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# v2 byte 14 (family << 4 | protocol) and the address block length per family.
_FAMILY_INET, _FAMILY_INET6, _FAMILY_UNIX = 0x10, 0x20, 0x30
_PROTO_STREAM, _PROTO_DGRAM = 0x01, 0x02
_CMD_LOCAL, _CMD_PROXY = 0x20, 0x21
_V2_ADDRESS_LENGTH = {_FAMILY_INET: 12, _FAMILY_INET6: 36, _FAMILY_UNIX: 216}


class ProxyProtocolError(ValueError):
    """A header cannot be written for these addresses, or bytes are not a valid header."""


@dataclasses.dataclass(frozen=True)
class ProxyHeader:
    """One PROXY protocol header.

    ``command`` is ``"PROXY"`` (addresses present) or ``"LOCAL"`` (v2: no
    addresses; in v1 this is ``PROXY UNKNOWN``).  ``family`` is ``"inet"``,
    ``"inet6"``, ``"unix"`` or ``"unspec"``; ``transport`` is ``"tcp"``,
    ``"udp"`` or ``"unspec"``.  Addresses are ``(ip text, port)``; a UNIX
    address (parse only) is ``(path, 0)``.  ``tlvs`` are the raw v2 TLV bytes.
    """

    version: int
    command: str = "LOCAL"
    family: str = "unspec"
    transport: str = "unspec"
    source: tuple[str, int] | None = None
    destination: tuple[str, int] | None = None
    tlvs: bytes = b""

    def encode(self) -> bytes:
        """The header bytes, exactly as go-proxyproto formats this header."""
        if self.version == 1:
            return _encode_v1(self)
        if self.version == 2:
            return _encode_v2(self)
        raise ProxyProtocolError(f"unknown PROXY protocol version {self.version}")


def _version_number(version: str | int) -> int:
    # frp: "v1" is 1, everything else 2 (validation only lets "", "v1", "v2" through).
    return 1 if version in ("v1", 1) else 2


def _ip(text: str) -> IPAddress | None:
    """An IP literal (an IPv6 zone is dropped, as the header has no room for it), else None."""
    if not isinstance(text, str) or not text:
        return None
    host = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    host = host.split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _as_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """Go's ``IP.To4``: an IPv4 address, or the IPv4 inside an IPv4-mapped IPv6 address."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ip
    return ip.ipv4_mapped


def _as_v6(ip: IPAddress) -> ipaddress.IPv6Address:
    """Go's ``IP.To16``: IPv4 becomes IPv4-mapped."""
    if isinstance(ip, ipaddress.IPv6Address):
        return ip
    return ipaddress.IPv6Address(b"\x00" * 10 + b"\xff\xff" + ip.packed)


def _go_ip_text(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """Go's ``net.IP.String``: dotted for IPv4 and IPv4-mapped, RFC 5952 otherwise."""
    v4 = _as_v4(ip)
    if v4 is not None:
        return str(v4)
    return ip.compressed


def _port(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 0xFFFF:
        raise ProxyProtocolError(f"invalid port number {port!r}")
    return port


def build_header(
    version: str | int,
    source: tuple[str, int] | None,
    destination: tuple[str, int] | None,
    transport: Transport = "tcp",
) -> ProxyHeader:
    """The header go-proxyproto's ``HeaderProxyFromAddrs`` builds for these addresses.

    The family comes from the source address; a missing or non-IP address on
    either side gives the address-less ``LOCAL``/``UNSPEC`` header.
    """
    number = _version_number(version)
    if transport not in ("tcp", "udp"):
        raise ProxyProtocolError(f"unknown transport {transport!r}")
    if source is None or destination is None:
        return ProxyHeader(number)
    src_ip, dst_ip = _ip(source[0]), _ip(destination[0])
    if src_ip is None or dst_ip is None:
        return ProxyHeader(number)
    family = "inet" if _as_v4(src_ip) is not None else "inet6"
    return ProxyHeader(
        number,
        command="PROXY",
        family=family,
        transport=transport,
        source=(str(src_ip), _port(source[1])),
        destination=(str(dst_ip), _port(destination[1])),
    )


def encode_header(
    version: str | int,
    source: tuple[str, int] | None,
    destination: tuple[str, int] | None,
    transport: Transport = "tcp",
) -> bytes:
    """``build_header(...).encode()``; raises :class:`ProxyProtocolError` like go-proxyproto."""
    return build_header(version, source, destination, transport).encode()


def work_conn_header(
    version: str, src_addr: str, src_port: int, dst_addr: str, dst_port: int
) -> bytes | None:
    """The header frpc writes to the local service for one TCP work connection.

    Arguments are ``transport.proxyProtocolVersion`` and the ``StartWorkConn``
    fields.  ``None`` means "write nothing" (feature off, or frps sent no
    source).  :class:`ProxyProtocolError` means frpc must close the work
    connection, as Go frpc does when the header cannot be written.
    """
    if not version or not src_addr or not src_port:
        return None
    return encode_header(version, (src_addr, src_port), (dst_addr or "127.0.0.1", dst_port), "tcp")


def udp_datagram_header(
    version: str, remote: tuple[str, int] | None, local: tuple[str, int]
) -> bytes | None:
    """The header frpc prefixes to a datagram for the local UDP service.

    ``remote`` is the user's address from ``UDPPacket.remote_addr``, ``local``
    the local service's address.  ``None`` means "send the datagram as is":
    the feature is off, there is no user address, or (as in Go frp, which
    ignores the error) the header cannot be written.
    """
    if not version or remote is None:
        return None
    try:
        return encode_header(version, remote, local, "udp")
    except ProxyProtocolError:
        return None


# --------------------------------------------------------------------------
# Encoding


def _addresses(header: ProxyHeader) -> tuple[IPAddress, IPAddress, int, int]:
    if header.source is None or header.destination is None:
        raise ProxyProtocolError("invalid address: a PROXY header needs both addresses")
    src, dst = _ip(header.source[0]), _ip(header.destination[0])
    if src is None or dst is None:
        raise ProxyProtocolError("invalid address")
    return src, dst, _port(header.source[1]), _port(header.destination[1])


def _encode_v1(header: ProxyHeader) -> bytes:
    if header.command != "PROXY" or header.transport != "tcp" or header.family not in ("inet", "inet6"):
        return b"PROXY UNKNOWN\r\n"  # v1 knows only TCP4/TCP6
    src, dst, sport, dport = _addresses(header)
    if header.family == "inet":
        s4, d4 = _as_v4(src), _as_v4(dst)
        if s4 is None or d4 is None:
            raise ProxyProtocolError("invalid address: an IPv6 address in a TCP4 header")
        proto, texts = "TCP4", (str(s4), str(d4))
    else:
        proto, texts = "TCP6", (_go_ip_text(_as_v6(src)), _go_ip_text(_as_v6(dst)))
    return f"PROXY {proto} {texts[0]} {texts[1]} {sport} {dport}\r\n".encode("ascii")


def _encode_v2(header: ProxyHeader) -> bytes:
    command = _CMD_PROXY if header.command == "PROXY" else _CMD_LOCAL
    if header.command not in ("PROXY", "LOCAL"):
        raise ProxyProtocolError(f"unknown command {header.command!r}")
    tlvs = bytes(header.tlvs)
    if header.family == "unspec" or header.transport == "unspec":
        return _v2_prefix(command, 0x00, len(tlvs)) + tlvs
    proto = {"tcp": _PROTO_STREAM, "udp": _PROTO_DGRAM}.get(header.transport)
    if proto is None:
        raise ProxyProtocolError(f"unknown transport {header.transport!r}")
    src, dst, sport, dport = _addresses(header)
    if header.family == "inet":
        s4, d4 = _as_v4(src), _as_v4(dst)
        if s4 is None or d4 is None:
            raise ProxyProtocolError("invalid address: an IPv6 address in an IPv4 header")
        body = s4.packed + d4.packed
        fam = _FAMILY_INET
    elif header.family == "inet6":
        body = _as_v6(src).packed + _as_v6(dst).packed
        fam = _FAMILY_INET6
    else:
        raise ProxyProtocolError(f"cannot encode family {header.family!r}")
    body += struct.pack("!HH", sport, dport) + tlvs
    return _v2_prefix(command, fam | proto, len(body)) + body


def _v2_prefix(command: int, family_proto: int, length: int) -> bytes:
    if length > 0xFFFF:
        raise ProxyProtocolError("header too long (uint16 overflow)")
    return V2_SIGNATURE + struct.pack("!BBH", command, family_proto, length)


# --------------------------------------------------------------------------
# Parsing


def parse_header(data: bytes) -> tuple[ProxyHeader, int] | None:
    """Read one header from the start of ``data``.

    Returns ``(header, bytes consumed)``, or ``None`` if ``data`` is a valid
    prefix of a header that needs more bytes.  Raises
    :class:`ProxyProtocolError` for anything else (no signature, bad syntax,
    a v1 line longer than 107 bytes), so a receiver can drop the connection.
    """
    data = bytes(data)
    n = min(len(data), len(V2_SIGNATURE))
    if data[:n] == V2_SIGNATURE[:n]:
        return None if n < len(V2_SIGNATURE) else _parse_v2(data)
    n = min(len(data), len(V1_SIGNATURE))
    if data[:n] == V1_SIGNATURE[:n]:
        return None if n < len(V1_SIGNATURE) else _parse_v1(data)
    raise ProxyProtocolError("no PROXY protocol signature")


def _parse_v1(data: bytes) -> tuple[ProxyHeader, int] | None:
    end = data.find(b"\n", 0, V1_MAX_LENGTH)
    if end < 0:
        if len(data) >= V1_MAX_LENGTH:
            raise ProxyProtocolError("version 1 header must be 107 bytes or less")
        return None
    if end == 0 or data[end - 1:end] != b"\r":
        raise ProxyProtocolError("version 1 header must end with \\r\\n")
    try:
        line = data[:end - 1].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyProtocolError("version 1 header is not ASCII") from None
    tokens = line.split(" ")
    consumed = end + 1
    if len(tokens) >= 2 and tokens[1] == "UNKNOWN":
        return ProxyHeader(1), consumed
    if len(tokens) != 6 or tokens[1] not in ("TCP4", "TCP6"):
        raise ProxyProtocolError(f"invalid version 1 header {line!r}")
    family = "inet" if tokens[1] == "TCP4" else "inet6"
    want: type[IPAddress] = ipaddress.IPv4Address if family == "inet" else ipaddress.IPv6Address
    addrs: list[str] = []
    for text in tokens[2:4]:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            raise ProxyProtocolError(f"invalid address {text!r}") from None
        if not isinstance(ip, want):
            raise ProxyProtocolError(f"address {text!r} does not match {tokens[1]}")
        addrs.append(str(ip))
    ports: list[int] = []
    for text in tokens[4:6]:
        if not text.isdigit() or (len(text) > 1 and text[0] == "0") or int(text) > 0xFFFF:
            raise ProxyProtocolError(f"invalid port number {text!r}")
        ports.append(int(text))
    return ProxyHeader(1, "PROXY", family, "tcp", (addrs[0], ports[0]), (addrs[1], ports[1])), consumed


def _parse_v2(data: bytes) -> tuple[ProxyHeader, int] | None:
    if len(data) < 16:
        return None
    command, family_proto, length = struct.unpack_from("!BBH", data, 12)
    if command not in (_CMD_LOCAL, _CMD_PROXY):
        raise ProxyProtocolError(f"unsupported version/command byte 0x{command:02x}")
    fam, proto = family_proto & 0xF0, family_proto & 0x0F
    unspec = fam == 0 or proto == 0
    if unspec and command == _CMD_PROXY:
        raise ProxyProtocolError("PROXY command with UNSPEC family")
    if not unspec and (fam not in _V2_ADDRESS_LENGTH or proto not in (_PROTO_STREAM, _PROTO_DGRAM)):
        raise ProxyProtocolError(f"unsupported address family/protocol 0x{family_proto:02x}")
    need = 0 if unspec else _V2_ADDRESS_LENGTH[fam]
    if length < need:
        raise ProxyProtocolError(f"invalid length {length} for family/protocol 0x{family_proto:02x}")
    if len(data) < 16 + length:
        return None
    body = data[16:16 + length]
    consumed = 16 + length
    cmd_text = "PROXY" if command == _CMD_PROXY else "LOCAL"
    if unspec:
        return ProxyHeader(2, cmd_text, tlvs=body), consumed
    transport = "tcp" if proto == _PROTO_STREAM else "udp"
    if fam == _FAMILY_UNIX:
        src_path = body[:108].split(b"\x00", 1)[0].decode("utf-8", "replace")
        dst_path = body[108:216].split(b"\x00", 1)[0].decode("utf-8", "replace")
        return ProxyHeader(2, cmd_text, "unix", transport, (src_path, 0), (dst_path, 0), body[216:]), consumed
    size = 4 if fam == _FAMILY_INET else 16
    make = ipaddress.IPv4Address if fam == _FAMILY_INET else ipaddress.IPv6Address
    src, dst = make(body[:size]), make(body[size:2 * size])
    sport, dport = struct.unpack_from("!HH", body, 2 * size)
    family = "inet" if fam == _FAMILY_INET else "inet6"
    return (
        ProxyHeader(2, cmd_text, family, transport, (str(src), sport), (str(dst), dport), body[need:]),
        consumed,
    )
