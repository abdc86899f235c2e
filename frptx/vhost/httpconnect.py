# -*- test-case-name: frptx.test.test_vhost_httpconnect -*-
"""tcpmux ``httpconnect``: route a raw TCP stream by an HTTP CONNECT head.

A client of frps's ``tcpmuxHTTPConnectPort`` opens with
``CONNECT host:port HTTP/1.1`` (optionally with ``Proxy-Authorization``);
frps routes on the host and then relays raw bytes.  Go frp 0.65.0's sequence
(``pkg/util/tcpmux/httpconnect.go`` with the muxer in
``pkg/util/vhost/vhost.go``), which the integration must follow in this
order, all verified against a real frps 0.65.0:

1. read the request head; anything but a CONNECT, or unparsable bytes: close
   without a word;
2. route on (canonical host, location "", Proxy-Authorization user) with the
   routing table's fallbacks; no route: :func:`not_found_response` then close;
3. unless the proxy has ``tcpmuxPassthrough``, send :data:`CONNECT_OK`
   (``200 OK`` with ``Content-Length: 0``) - *before* checking credentials;
4. if the proxy has an ``httpUser``, the request's user and password must
   equal the proxy's (:func:`check_auth`); else send
   :data:`PROXY_AUTH_REQUIRED` and close (so a refused client sees the 200
   and then the 407: that is what frp does);
5. relay.  With passthrough, the backend receives every byte, the CONNECT head
   included (:attr:`ConnectReader.buffered`); without, only what follows the
   head (:attr:`ConnectRequest.trailing`; frp drops such early bytes, frptx
   keeps them).
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Final

from frptx.vhost.http1 import Data, HTTPProtocolError, Limits, RequestHead, RequestParser, get_header
from frptx.vhost.rewrite import NOT_FOUND_PAGE, parse_basic_auth, tcpmux_not_found_response
from frptx.vhost.routing import canonical_host
from frptx.vhost.sni import NEED_MORE, NeedMore

__all__ = [
    "CONNECT_OK",
    "NEED_MORE",
    "PROXY_AUTH_REQUIRED",
    "ConnectError",
    "ConnectReader",
    "ConnectRequest",
    "NeedMore",
    "check_auth",
    "not_found_response",
]

#: What frps sends once a CONNECT is routed (Go's ``Response.Write`` of frp's ``OkResponse``).
CONNECT_OK: Final = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

#: What frps sends when the CONNECT's credentials do not match the proxy's.
PROXY_AUTH_REQUIRED: Final = (b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                              b'Proxy-Authenticate: Basic realm="Restricted"\r\n'
                              b"Content-Length: 0\r\n\r\n")

#: frp's error text for a non-CONNECT request (logged; the client gets nothing).
NOT_CONNECT: Final = "connections to tcp vhost must be of method CONNECT"

#: A CONNECT head is small; this bounds what a silent client can make frps hold.
DEFAULT_LIMITS: Final = Limits(max_head_bytes=64 * 1024, max_line_bytes=16 * 1024, max_headers=100)


class ConnectError(Exception):
    """Not an HTTP CONNECT frps would route; close the connection silently."""


@dataclass(frozen=True)
class ConnectRequest:
    """A parsed CONNECT: the canonical host to route on and the proxy credentials."""

    host: str
    user: str
    password: str
    head: RequestHead
    #: bytes the client sent after the CONNECT head
    trailing: bytes


def not_found_response(page: bytes = NOT_FOUND_PAGE, server: str | None = None) -> bytes:
    """frps's answer when no tcpmux proxy serves the host (then it closes)."""
    if server is None:
        return tcpmux_not_found_response(page)
    return tcpmux_not_found_response(page, server)


def check_auth(route_user: str, route_password: str, user: str, password: str) -> bool:
    """frp's tcpmux rule: only a proxy with an httpUser checks; then both must match.

    Unlike the HTTP vhost, a proxy with only an httpPassword accepts anyone.
    """
    if route_user == "":
        return True
    user_ok = hmac.compare_digest(route_user.encode("utf-8", "surrogateescape"),
                                  user.encode("utf-8", "surrogateescape"))
    pw_ok = hmac.compare_digest(route_password.encode("utf-8", "surrogateescape"),
                                password.encode("utf-8", "surrogateescape"))
    return user_ok and pw_ok


class ConnectReader:
    """Feed the first bytes of a tcpmux connection until its CONNECT head is in."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._parser = RequestParser(limits)
        self._raw = bytearray()
        self._result: ConnectRequest | None = None

    @property
    def buffered(self) -> bytes:
        """Every byte fed so far (what passthrough replays to the backend)."""
        return bytes(self._raw)

    def feed(self, data: bytes) -> ConnectRequest | NeedMore:
        """The parsed CONNECT once its head is complete; raises :class:`ConnectError`."""
        self._raw += data
        if self._result is not None:
            return self._result
        try:
            events = self._parser.feed(data)
        except HTTPProtocolError as e:
            raise ConnectError(f"bad CONNECT request: {e}") from None
        if not events:
            return NEED_MORE
        head = events[0]
        assert isinstance(head, RequestHead)
        if head.method != "CONNECT":
            raise ConnectError(NOT_CONNECT)
        if head.target.startswith("/"):
            raw_host = get_header(head.headers, "Host") or ""
        else:
            raw_host = head.target
        creds = parse_basic_auth(get_header(head.headers, "Proxy-Authorization"))
        user, password = creds if creds else ("", "")
        # Whatever followed the head is tunnel data (Go reads no CONNECT body):
        # body-framed bytes the parser already consumed, then what it holds.
        consumed = b"".join(e.data for e in events if isinstance(e, Data))
        trailing = consumed + bytes(self._raw[len(self._raw) - self._parser.buffered:])
        self._result = ConnectRequest(canonical_host(raw_host), user, password, head, trailing)
        return self._result
