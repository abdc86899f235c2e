# -*- test-case-name: frptx.test.test_plugin_http_proxy -*-
"""``http_proxy``: an HTTP forward proxy (CONNECT tunnels and absolute-URI requests).

Go frp peeks at the first 7 bytes of each work connection:

* ``CONNECT`` (any case): read one request head; if ``httpUser``/``httpPassword``
  are set and Proxy-Authorization does not match, answer
  :data:`CONNECT_AUTH_REQUIRED` and close; dial the target (failure:
  :data:`CONNECT_FAILED`), answer ``HTTP/1.1 200 OK`` with no fields, then
  relay raw bytes (anything the client sent after the head included);
* anything else goes to an HTTP server: bad credentials get
  ``407 Proxy Authentication Required`` with ``Proxy-Authenticate: Basic``
  and the connection stays open; otherwise the proxy headers go and the
  request is sent to the URL's host; a failed round trip is a ``500`` whose
  body is the error text.

Go sleeps 200 ms after a failed CONNECT password check; frptx does not hold a
connection open for that.
"""
from __future__ import annotations

import hmac
from typing import Any, ClassVar
from urllib.parse import urlsplit

from twisted.internet import error
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IProtocolFactory
from twisted.python.failure import Failure

from frptx.client.plugins.base import ClientPlugin
from frptx.client.plugins.tls import InsecureClientCreator
from frptx.client.plugins.tunnel import TunnelFactory, TunnelProtocol
from frptx.protocols.httpforward import Forward, HTTPForwardProtocol, go_reply, origin_form
from frptx.protocols.relayed import RelayedProtocol
from frptx.vhost.http1 import (
    Data,
    HTTPProtocolError,
    Limits,
    RequestHead,
    RequestParser,
    get_header,
    remove_headers,
)
from frptx.vhost.rewrite import http_date, parse_basic_auth

#: Go's ``getBadResponse()`` written by ``http.Response.Write`` (bytes captured from frpc 0.65.0).
CONNECT_AUTH_REQUIRED = (b"HTTP/1.1 407 Not authorized\r\nConnection: close\r\n"
                         b"Proxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n")
#: the bare 400 ``http.Response.Write`` makes when the CONNECT target cannot be dialled
CONNECT_FAILED = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
CONNECT_OK = b"HTTP/1.1 200 OK\r\n\r\n"

#: what ``removeProxyHeaders`` deletes (Transfer-Encoding only from the map: Go still
#: frames a chunked body as chunked, so it is kept here)
_PROXY_HEADERS = ("Proxy-Connection", "Connection", "Proxy-Authenticate", "Proxy-Authorization",
                  "TE", "Trailers", "Upgrade")


class Credentials:
    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password

    def check(self, headers: Any) -> bool:
        """frp's ``Auth``: no credentials configured, or Proxy-Authorization matches both."""
        if not self.user and not self.password:
            return True
        value = get_header(headers, "Proxy-Authorization")
        if value is None:
            return False
        scheme, _, payload = value.partition(" ")
        pair = parse_basic_auth("Basic " + payload) if _ else None
        if pair is None:
            return False
        ok_user = hmac.compare_digest(pair[0].encode("utf-8", "surrogateescape"), self.user.encode())
        ok_password = hmac.compare_digest(pair[1].encode("utf-8", "surrogateescape"), self.password.encode())
        return ok_user and ok_password


class ProxyRoute:
    """Plain proxy requests: to the absolute URL's host, proxy headers removed."""

    def __init__(self, reactor: Any, credentials: Credentials) -> None:
        self.reactor = reactor
        self.credentials = credentials

    def route(self, head: RequestHead, conn: HTTPForwardProtocol) -> Forward | bytes:
        date = http_date(self.reactor.seconds())
        if not self.credentials.check(head.headers):
            return go_reply(date, head, 407, [("Proxy-Authenticate", "Basic")])
        url = urlsplit(head.target)
        scheme = url.scheme.lower()
        if scheme not in ("http", "https") or not url.hostname:
            return self._error(date, head, f'unsupported protocol scheme "{url.scheme}"')
        try:
            port = url.port or (443 if scheme == "https" else 80)
        except ValueError:
            return self._error(date, head, f"invalid port in {url.netloc!r}")
        endpoint: Any = HostnameEndpoint(self.reactor, url.hostname, port, timeout=30)
        if scheme == "https":
            endpoint = wrapClientTLS(InsecureClientCreator(url.hostname), endpoint)
        headers = remove_headers(head.headers, _PROXY_HEADERS)
        if get_header(headers, "Host") is None:
            headers += (("Host", url.netloc),)
        return Forward(endpoint, RequestHead(head.method, origin_form(head.target), "HTTP/1.1", headers))

    @staticmethod
    def _error(date: str, head: RequestHead, text: str) -> bytes:
        return go_reply(date, head, 500, [("Content-Type", "text/plain; charset=utf-8"),
                                          ("X-Content-Type-Options", "nosniff")], (text + "\n").encode())

    def error_reply(self, head: RequestHead, reason: Failure, date: str) -> bytes:
        return self._error(date, head, go_dial_error(head.target, reason))


def go_dial_error(target: str, reason: Failure) -> str:
    """The text of Go's dial error for the common cases (frpc sends it as the 500's body)."""
    url = urlsplit(target)
    try:
        port = url.port or (443 if url.scheme.lower() == "https" else 80)
    except ValueError:
        port = 0
    where = f"{url.hostname}:{port}" if url.hostname and ":" not in url.hostname else f"[{url.hostname}]:{port}"
    if reason.check(error.ConnectionRefusedError):
        return f"dial tcp {where}: connect: connection refused"
    if reason.check(error.DNSLookupError):
        return f"dial tcp: lookup {url.hostname}: no such host"
    return f"dial tcp {where}: {reason.getErrorMessage()}"


class HTTPProxyProtocol(TunnelProtocol):
    """Decide CONNECT vs plain from the first bytes, then tunnel or forward."""

    def __init__(self, reactor: Any, credentials: Credentials, route: ProxyRoute, address: Any) -> None:
        super().__init__(reactor)
        self.credentials = credentials
        self.route = route
        self.address = address
        self._first = b""
        self._connect: RequestParser | None = None
        self.delegate: HTTPForwardProtocol | None = None

    def dataReceived(self, data: bytes) -> None:
        if self.delegate is not None:
            self.delegate.dataReceived(data)
        else:
            super().dataReceived(data)

    def readConnectionLost(self) -> None:
        if self.delegate is not None:
            self.delegate.readConnectionLost()
        else:
            super().readConnectionLost()

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self.delegate is not None:
            self.delegate.connectionLost(reason)
        super().connectionLost(reason)

    def handshake_received(self, data: bytes) -> None:
        if self._connect is None:
            self._first += data
            if len(self._first) < 7:
                return
            data, self._first = self._first, b""
            if data[:7].upper() != b"CONNECT":
                delegate = HTTPForwardProtocol(self.reactor, self.route, self.address)
                self.delegate = delegate
                delegate.makeConnection(self.transport)
                delegate.dataReceived(data)
                return
            # Go's http.ReadRequest: 1 MiB of head at most
            self._connect = RequestParser(Limits(max_head_bytes=1 << 20, max_line_bytes=1 << 20))
        try:
            events = self._connect.feed(data)
        except HTTPProtocolError as e:
            self.log.info("http_proxy: bad CONNECT: {error}", error=str(e))
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        heads = [e for e in events if isinstance(e, RequestHead)]
        if not heads:
            return
        head = heads[0]
        if head.method.upper() != "CONNECT" or self.lost:
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        if not self.credentials.check(head.headers):
            self.transport.write(CONNECT_AUTH_REQUIRED)  # type: ignore[union-attr]
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        host, sep, port = head.target.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            self.transport.write(CONNECT_FAILED)  # type: ignore[union-attr]
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        try:
            leftover = b"".join(e.data for e in self._connect.switch_protocols() if isinstance(e, Data))
        except HTTPProtocolError:
            leftover = b""
        self.dial(HostnameEndpoint(self.reactor, host or "127.0.0.1", int(port), timeout=30), leftover)

    def tunnel_ready(self, local: RelayedProtocol) -> bytes:
        return CONNECT_OK

    def dial_failed(self, reason: Failure) -> None:
        self.log.info("http_proxy: CONNECT failed: {error}", error=reason.getErrorMessage())
        self.transport.write(CONNECT_FAILED)  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]

    def handshake_eof(self) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]


class _HTTPProxyFactory(TunnelFactory):
    def __init__(self, reactor: Any, credentials: Credentials) -> None:
        self.reactor = reactor
        self.credentials = credentials
        self.route = ProxyRoute(reactor, credentials)

    def buildProtocol(self, addr: Any) -> HTTPProxyProtocol:
        protocol = HTTPProxyProtocol(self.reactor, self.credentials, self.route, addr)
        protocol.factory = self
        return protocol


class HTTPProxyPlugin(ClientPlugin):
    name: ClassVar[str] = "http_proxy"
    option_names: ClassVar[tuple[str, ...]] = ("httpUser", "httpPassword")

    def __init__(self, options: Any, prefix: str = "plugin") -> None:
        super().__init__(options, prefix)
        self.credentials = Credentials(self.option_str("httpUser"), self.option_str("httpPassword"))

    def build(self, reactor: Any) -> IProtocolFactory:
        return _HTTPProxyFactory(reactor, self.credentials)
