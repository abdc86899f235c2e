# -*- test-case-name: frptx.test.test_plugin_socks5 -*-
"""``socks5``: a SOCKS5 server (RFC 1928) on each work connection.

frp uses armon/go-socks5; its observable rules are kept: only CONNECT is
served (BIND and UDP ASSOCIATE get "command not supported"); with
``username``/``password`` configured the only method offered is RFC 1929
username/password, else only "no authentication"; a client offering neither
gets ``05 FF`` and is closed; a failed dial is answered with "connection
refused" (5), "network unreachable" (3) or "host unreachable" (4) by the
error; an unknown address type gets 8.  The handshake is a small sans-IO
parser (:class:`Socks5Handshake`) so every malformed input is a unit test.
"""
from __future__ import annotations

import hmac
import ipaddress
import struct
from dataclasses import dataclass
from typing import Any, ClassVar

from twisted.internet import error
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IProtocolFactory
from twisted.python.failure import Failure

from frptx.client.plugins.base import ClientPlugin
from frptx.client.plugins.tunnel import TunnelFactory, TunnelProtocol
from frptx.protocols.relayed import RelayedProtocol

NO_AUTH = 0
USER_PASS = 2
NO_ACCEPTABLE = 0xFF

SUCCEEDED = 0
SERVER_FAILURE = 1
NETWORK_UNREACHABLE = 3
HOST_UNREACHABLE = 4
CONNECTION_REFUSED = 5
COMMAND_NOT_SUPPORTED = 7
ADDRESS_NOT_SUPPORTED = 8

ATYP_IPV4 = 1
ATYP_DOMAIN = 3
ATYP_IPV6 = 4


class Socks5Error(Exception):
    """The client broke the protocol; ``reply`` (if any) is sent before closing."""

    def __init__(self, message: str, reply: bytes = b"") -> None:
        super().__init__(message)
        self.reply = reply


def reply(code: int, host: str | None = None, port: int = 0) -> bytes:
    """A CONNECT reply (go-socks5 sends 0.0.0.0:0 when there is no bound address)."""
    if host is None:
        return bytes([5, code, 0, ATYP_IPV4, 0, 0, 0, 0, 0, 0])
    ip = ipaddress.ip_address(host)
    atyp = ATYP_IPV4 if ip.version == 4 else ATYP_IPV6
    return bytes([5, code, 0, atyp]) + ip.packed + struct.pack("!H", port)


@dataclass(frozen=True)
class ConnectRequest:
    host: str
    port: int
    leftover: bytes


class Socks5Handshake:
    """Sans-IO: feed client bytes; returns bytes to send and, at the end, the request.

    ``feed`` returns ``(to_send, request_or_None)`` and raises
    :class:`Socks5Error` on bad input (its ``reply`` goes out before closing).
    """

    def __init__(self, username: str, password: str) -> None:
        self._auth = bool(username or password)
        self._user = username.encode()
        self._password = password.encode()
        self._buf = b""
        self._state = "greeting"

    def feed(self, data: bytes) -> tuple[bytes, ConnectRequest | None]:
        self._buf += data
        if len(self._buf) > 1024:  # no valid handshake message is this long
            raise Socks5Error("handshake too long")
        out = b""
        while True:
            step = getattr(self, f"_{self._state}")()
            if step is None:
                return out, None
            sent, done = step
            out += sent
            if isinstance(done, ConnectRequest):
                return out, done

    def _take(self, n: int) -> bytes | None:
        if len(self._buf) < n:
            return None
        head, self._buf = self._buf[:n], self._buf[n:]
        return head

    def _greeting(self) -> tuple[bytes, None] | None:
        if len(self._buf) < 2:
            return None
        if self._buf[0] != 5:
            raise Socks5Error(f"unsupported SOCKS version {self._buf[0]}")
        n = self._buf[1]
        if len(self._buf) < 2 + n:
            return None
        methods = self._take(2 + n)[2:]  # type: ignore[index]
        wanted = USER_PASS if self._auth else NO_AUTH
        if wanted not in methods:
            raise Socks5Error("no supported authentication method", bytes([5, NO_ACCEPTABLE]))
        self._state = "userpass" if self._auth else "request"
        return bytes([5, wanted]), None

    def _userpass(self) -> tuple[bytes, None] | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        if buf[0] != 1:
            raise Socks5Error(f"unsupported auth version {buf[0]}")
        ulen = buf[1]
        if len(buf) < 3 + ulen:
            return None
        plen = buf[2 + ulen]
        if len(buf) < 3 + ulen + plen:
            return None
        user = buf[2:2 + ulen]
        password = buf[3 + ulen:3 + ulen + plen]
        self._take(3 + ulen + plen)
        ok_user = hmac.compare_digest(user, self._user)
        ok_password = hmac.compare_digest(password, self._password)
        if not (ok_user and ok_password):
            raise Socks5Error("authentication failed", bytes([1, 1]))
        self._state = "request"
        return bytes([1, 0]), None

    def _request(self) -> tuple[bytes, ConnectRequest] | None:
        buf = self._buf
        if len(buf) < 4:
            return None
        if buf[0] != 5:
            raise Socks5Error(f"unsupported SOCKS version {buf[0]} in request")
        atyp = buf[3]
        if atyp == ATYP_IPV4:
            size = 4 + 4 + 2
        elif atyp == ATYP_IPV6:
            size = 4 + 16 + 2
        elif atyp == ATYP_DOMAIN:
            if len(buf) < 5:
                return None
            size = 5 + buf[4] + 2
        else:
            raise Socks5Error(f"unknown address type {atyp}", reply(ADDRESS_NOT_SUPPORTED))
        if len(buf) < size:
            return None
        message = self._take(size)
        assert message is not None
        if atyp == ATYP_DOMAIN:
            host = message[5:-2].decode("utf-8", "replace")
        else:
            host = str(ipaddress.ip_address(message[4:-2]))
        port = struct.unpack("!H", message[-2:])[0]
        if buf[1] != 1:
            raise Socks5Error(f"unsupported command {buf[1]}", reply(COMMAND_NOT_SUPPORTED))
        self._state = "done"
        return b"", ConnectRequest(host, port, self._buf)

    def _done(self) -> None:
        return None


def failure_code(reason: Failure) -> int:
    """go-socks5's choice of reply for a failed dial (by the error's kind)."""
    if reason.check(error.ConnectionRefusedError):
        return CONNECTION_REFUSED
    text = reason.getErrorMessage().lower()
    if "refused" in text:
        return CONNECTION_REFUSED
    if "network is unreachable" in text:
        return NETWORK_UNREACHABLE
    return HOST_UNREACHABLE


class Socks5Protocol(TunnelProtocol):
    def __init__(self, reactor: Any, username: str, password: str) -> None:
        super().__init__(reactor)
        self.handshake = Socks5Handshake(username, password)

    def handshake_received(self, data: bytes) -> None:
        try:
            out, request = self.handshake.feed(data)
        except Socks5Error as e:
            self.log.info("socks5: {error}", error=str(e))
            if e.reply:
                self.transport.write(e.reply)  # type: ignore[union-attr]
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        if out:
            self.transport.write(out)  # type: ignore[union-attr]
        if request is not None:
            endpoint = HostnameEndpoint(self.reactor, request.host, request.port, timeout=30)
            self.dial(endpoint, request.leftover)

    def tunnel_ready(self, local: RelayedProtocol) -> bytes:
        address = local.transport.getHost()  # type: ignore[union-attr]
        host = getattr(address, "host", None)
        try:
            return reply(SUCCEEDED, host, getattr(address, "port", 0))
        except ValueError:
            return reply(SUCCEEDED)

    def dial_failed(self, reason: Failure) -> None:
        self.log.info("socks5: connect failed: {error}", error=reason.getErrorMessage())
        self.transport.write(reply(failure_code(reason)))  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


class Socks5Plugin(ClientPlugin):
    name: ClassVar[str] = "socks5"
    option_names: ClassVar[tuple[str, ...]] = ("username", "password")

    def __init__(self, options: Any, prefix: str = "plugin") -> None:
        super().__init__(options, prefix)
        self.username = self.option_str("username")
        self.password = self.option_str("password")

    def build(self, reactor: Any) -> IProtocolFactory:
        return TunnelFactory(lambda: Socks5Protocol(reactor, self.username, self.password))


__all__ = ["Socks5Plugin", "Socks5Handshake", "Socks5Error", "reply"]
