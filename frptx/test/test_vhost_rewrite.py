"""frp's HTTP vhost header rules and canned replies, against bytes captured from frps 0.65.0.

The captures were taken on 127.0.0.1 with the Go frps/frpc 0.65.0 binaries: an
http proxy (hostHeaderRewrite "inner.local", requestHeaders.set
x-from-frp=yes, responseHeaders.set x-resp=r1) in front of a raw socket that
recorded what reached it.
"""
from __future__ import annotations

import base64

from hypothesis import given, settings, strategies as st
from twisted.trial import unittest

from frptx.vhost.http1 import (
    BadRequest,
    RequestHead,
    RequestParser,
    ResponseHead,
    ResponseParser,
    get_header,
    header_values,
    serialize_request_head,
)
from frptx.vhost.rewrite import (
    BASIC_REALM,
    H2C_PREFACE,
    NOT_FOUND_PAGE,
    RewriteError,
    canonical_header_key,
    check_auth,
    check_upgrade_response,
    gateway_timeout_response,
    http_date,
    is_options_star,
    not_found_response,
    options_star_response,
    parse_basic_auth,
    remove_hop_by_hop,
    reply_connection,
    request_route_info,
    rewrite_request,
    rewrite_response,
    sniff_content_type,
    tcpmux_not_found_response,
    unauthorized_response,
    upgrade_type,
)

DATE = "Wed, 02 Dec 2026 07:00:25 GMT"

CAPTURED_404 = (
    b"HTTP/1.1 404 Not Found\r\nDate: Wed, 02 Dec 2026 07:00:25 GMT\r\nContent-Length: 489\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n\r\n<!DOCTYPE html>\n<html>\n<head>\n<title>Not Found</title>\n"
    b"<style>\n    body {\n        width: 35em;\n        margin: 0 auto;\n"
    b"        font-family: Tahoma, Verdana, Arial, sans-serif;\n    }\n</style>\n</head>\n<body>\n"
    b"<h1>The page you requested was not found.</h1>\n"
    b"<p>Sorry, the page you are looking for is currently unavailable.<br/>\nPlease try again later.</p>\n"
    b'<p>The server is powered by <a href="https://github.com/fatedier/frp">frp</a>.</p>\n'
    b"<p><em>Faithfully yours, frp.</em></p>\n</body>\n</html>\n")

CAPTURED_401 = (b'HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain; charset=utf-8\r\n'
                b'Www-Authenticate: Basic realm="Restricted"\r\nX-Content-Type-Options: nosniff\r\n'
                b'Date: Wed, 02 Dec 2026 07:00:39 GMT\r\nContent-Length: 13\r\n\r\nUnauthorized\n')

CAPTURED_TCPMUX_404_HEAD = (b"HTTP/1.1 404 Not Found\r\nContent-Length: 489\r\nContent-Type: text/html\r\n"
                            b"Server: frp/0.65.0\r\n\r\n")

# What the client sent, and what frps 0.65.0 delivered to the backend.
CLIENT_REQUEST = (b"GET /api/x?q=1 HTTP/1.1\r\nHost: ECHO.test:8080\r\nX-Forwarded-For: 1.2.3.4\r\n"
                  b"X-Forwarded-For: 5.6.7.8\r\nX-Forwarded-Host: evil\r\nForwarded: for=x\r\n"
                  b"Connection: keep-alive, X-Hop\r\nX-Hop: h\r\nKeep-Alive: 1\r\nTE: trailers, deflate\r\n"
                  b"Proxy-Connection: x\r\nX-From-Frp: no\r\nUser-Agent: ua\r\nConnection: close\r\n\r\n")
BACKEND_SAW = {
    "Host": "inner.local",
    "User-Agent": "ua",
    "Te": "trailers",
    "X-Forwarded-For": "1.2.3.4, 5.6.7.8, 127.0.0.1",
    "X-Forwarded-Host": "ECHO.test:8080",
    "X-Forwarded-Proto": "http",
    "X-From-Frp": "yes",
    # (plus Go transport's own "Accept-Encoding: gzip", deliberately not reproduced)
}
WS_REQUEST = b"GET /ws HTTP/1.1\r\nHost: echo.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
WS_BACKEND_SAW = {
    "Host": "inner.local",
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "X-Forwarded-For": "127.0.0.1",
    "X-Forwarded-Host": "echo.test",
    "X-Forwarded-Proto": "http",
    "X-From-Frp": "yes",
}
BACKEND_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\n"
                    b"Keep-Alive: timeout=5\r\nX-Keep: k\r\n\r\n")


def parse_request(wire: bytes) -> RequestHead:
    head = RequestParser().feed(wire)[0]
    assert isinstance(head, RequestHead)
    return head


def parse_response(wire: bytes, method: str = "GET") -> ResponseHead:
    head = ResponseParser(method).feed(wire)[0]
    assert isinstance(head, ResponseHead)
    return head


class RequestRewriteTests(unittest.TestCase):
    def rewrite(self, wire: bytes) -> RequestHead:
        return rewrite_request(parse_request(wire), client_ip="127.0.0.1", host_rewrite="inner.local",
                               set_headers={"x-from-frp": "yes"})

    def test_matches_what_frps_delivered(self) -> None:
        out = self.rewrite(CLIENT_REQUEST)
        self.assertEqual(dict(out.headers), BACKEND_SAW)
        self.assertEqual(len(out.headers), len(BACKEND_SAW))  # nothing else, nothing twice
        self.assertEqual((out.method, out.target, out.version), ("GET", "/api/x?q=1", "HTTP/1.1"))

    def test_websocket_upgrade_matches_frps(self) -> None:
        out = self.rewrite(WS_REQUEST)
        self.assertEqual(dict(out.headers), WS_BACKEND_SAW)
        self.assertEqual(len(out.headers), len(WS_BACKEND_SAW))

    def test_no_client_ip_means_no_forwarded_for(self) -> None:
        out = rewrite_request(parse_request(b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 9.9.9.9\r\n\r\n"),
                              client_ip=None)
        self.assertEqual(header_values(out.headers, "X-Forwarded-For"), [])
        self.assertEqual(get_header(out.headers, "X-Forwarded-Host"), "h")

    def test_ipv6_client_and_tls(self) -> None:
        out = rewrite_request(parse_request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), client_ip="::1", tls=True)
        self.assertEqual(get_header(out.headers, "X-Forwarded-For"), "::1")
        self.assertEqual(get_header(out.headers, "X-Forwarded-Proto"), "https")

    def test_request_headers_set_can_override_forwarding_but_not_framing(self) -> None:
        wire = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n"
        out = rewrite_request(parse_request(wire), client_ip="10.0.0.1",
                              set_headers={"x-forwarded-for": "hidden", "Host": "nope", "content-length": "99",
                                           "Transfer-Encoding": "gzip", "x-a-b": "c"})
        self.assertEqual(get_header(out.headers, "X-Forwarded-For"), "hidden")
        self.assertEqual(get_header(out.headers, "Host"), "h")
        self.assertEqual(header_values(out.headers, "Content-Length"), ["2"])
        self.assertIsNone(get_header(out.headers, "Transfer-Encoding"))
        self.assertIn(("X-A-B", "c"), out.headers)

    def test_chunked_framing_survives_hop_by_hop_removal(self) -> None:
        wire = (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n"
                b"Connection: Content-Length, X-Private\r\nX-Private: 1\r\n\r\n")
        out = rewrite_request(parse_request(wire), client_ip="1.1.1.1")
        self.assertEqual(get_header(out.headers, "Transfer-Encoding"), "chunked")
        self.assertEqual(get_header(out.headers, "Trailer"), "X-Sum")
        self.assertIsNone(get_header(out.headers, "X-Private"))
        self.assertIsNone(get_header(out.headers, "Connection"))

    def test_http10_goes_out_as_http11(self) -> None:
        out = rewrite_request(parse_request(b"GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"),
                              client_ip="1.1.1.1")
        self.assertEqual(out.version, "HTTP/1.1")
        self.assertIsNone(get_header(out.headers, "Connection"))

    def test_te_without_trailers_is_dropped(self) -> None:
        out = rewrite_request(parse_request(b"GET / HTTP/1.1\r\nHost: h\r\nTE: deflate\r\n\r\n"), client_ip="1.1.1.1")
        self.assertIsNone(get_header(out.headers, "Te"))

    def test_invalid_upgrade_protocol(self) -> None:
        head = parse_request(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: \xe9\r\n\r\n")
        self.assertRaises(RewriteError, rewrite_request, head, client_ip="1.1.1.1")

    def test_serializes(self) -> None:
        wire = serialize_request_head(self.rewrite(CLIENT_REQUEST))
        self.assertTrue(wire.startswith(b"GET /api/x?q=1 HTTP/1.1\r\nHost: inner.local\r\n"))


class ResponseRewriteTests(unittest.TestCase):
    def test_matches_what_frps_returned(self) -> None:
        """frps returned Content-Length, X-Keep, X-Resp (plus Go server's Date and sniffed type)."""
        out = rewrite_response(parse_response(BACKEND_RESPONSE), set_headers={"x-resp": "r1"})
        self.assertEqual(out.headers, (("Content-Length", "2"), ("X-Keep", "k"), ("X-Resp", "r1")))
        self.assertEqual((out.status, out.reason), (200, "OK"))

    def test_101_keeps_connection_and_upgrade(self) -> None:
        head = parse_response(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                              b"Sec-WebSocket-Accept: x\r\n\r\n")
        out = rewrite_response(head, set_headers={"x-resp": "r1"})
        self.assertEqual(get_header(out.headers, "Upgrade"), "websocket")
        self.assertEqual(get_header(out.headers, "Connection"), "Upgrade")
        self.assertEqual(get_header(out.headers, "X-Resp"), "r1")
        check_upgrade_response("WebSocket", head)
        self.assertRaises(RewriteError, check_upgrade_response, "h2c", head)
        check_upgrade_response("", parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))

    def test_chunked_response_keeps_framing(self) -> None:
        out = rewrite_response(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: T\r\n\r\n"))
        self.assertEqual(out.headers, (("Transfer-Encoding", "chunked"), ("Trailer", "T")))


class HelperTests(unittest.TestCase):
    def test_canonical_header_key(self) -> None:
        cases = [("x-from-frp", "X-From-Frp"), ("CONTENT-TYPE", "Content-Type"), ("te", "Te"),
                 ("www-authenticate", "Www-Authenticate"), ("x--y", "X--Y"), ("-a", "-A"),
                 ("bad key", "bad key"), ("", "")]
        for raw, want in cases:
            self.assertEqual(canonical_header_key(raw), want, raw)

    def test_hop_by_hop(self) -> None:
        headers = (("Connection", "X-A, , x-b"), ("X-A", "1"), ("X-B", "2"), ("X-C", "3"), ("Keep-Alive", "1"),
                   ("Proxy-Authorization", "Basic x"), ("Upgrade", "ws"), ("Proxy-Connection", "x"))
        self.assertEqual(remove_hop_by_hop(headers), (("X-C", "3"),))
        self.assertEqual(upgrade_type((("Connection", "keep-alive, Upgrade"), ("Upgrade", "websocket"))), "websocket")
        self.assertEqual(upgrade_type((("Upgrade", "websocket"),)), "")

    def test_parse_basic_auth(self) -> None:
        def enc(s: bytes) -> str:
            return base64.b64encode(s).decode()
        cases = [
            ("Basic " + enc(b"u:p"), ("u", "p")),
            ("basic " + enc(b"u:p:q"), ("u", "p:q")),
            ("BASIC " + enc(b":"), ("", "")),
            ("Basic " + enc(b"\xc3\xa9:x"), ("\u00e9", "x")),
            ("Basic " + enc(b"nocolon"), None),
            ("Basic !!!", None),
            ("Basic dTpw\r\n", ("u", "p")),     # Go's decoder skips CR/LF
            ("Basic dTp", None),                # bad padding
            ("Bearer " + enc(b"u:p"), None),
            ("Basic", None),
            (None, None),
        ]
        for raw, want in cases:
            self.assertEqual(parse_basic_auth(raw), want, raw)

    def test_check_auth(self) -> None:
        cases = [
            (("", "", "", ""), True),
            (("", "", "any", "thing"), True),
            (("u", "p", "u", "p"), True),
            (("u", "p", "u", "x"), False),
            (("u", "p", "x", "p"), False),
            (("", "p", "", "p"), True),
            (("", "p", "", ""), False),     # a password alone protects the route
            (("u", "", "u", ""), True),
        ]
        for args, want in cases:
            self.assertEqual(check_auth(*args), want, args)

    def test_route_info(self) -> None:
        auth = "Basic " + base64.b64encode(b"alice:pw").decode()
        proxy_auth = "Basic " + base64.b64encode(b"bob:pw2").decode()
        cases = [
            (b"GET /a%2Fb?x=%zz HTTP/1.1\r\nHost: Web.Example.com:8080\r\n\r\n",
             ("web.example.com", "Web.Example.com:8080", "/a/b", "", "", "")),
            (b"GET /p HTTP/1.1\r\nHost: h\r\nAuthorization: " + auth.encode() + b"\r\n\r\n",
             ("h", "h", "/p", "", "alice", "alice")),
            (b"GET http://Proxy.test:81/q/r HTTP/1.1\r\nHost: ignored\r\nAuthorization: " + auth.encode()
             + b"\r\nProxy-Authorization: " + proxy_auth.encode() + b"\r\n\r\n",
             ("proxy.test", "Proxy.test:81", "/q/r", "Proxy.test:81", "alice", "bob")),
            (b"GET http://x.test HTTP/1.1\r\nHost: x.test\r\n\r\n", ("x.test", "x.test", "", "x.test", "", "")),
            (b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", ("h", "h", "*", "", "", "")),
            (b"CONNECT c.test:443 HTTP/1.1\r\n\r\n", ("c.test", "c.test:443", "", "c.test:443", "", "")),
            (b"GET //double HTTP/1.1\r\nHost: h\r\n\r\n", ("h", "h", "//double", "", "", "")),
            (b"GET mailto:x HTTP/1.1\r\nHost: h\r\n\r\n", ("h", "h", "", "", "", "")),   # opaque: Go accepts
            (b"GET http:/p%41th HTTP/1.1\r\nHost: h\r\n\r\n", ("h", "h", "/pAth", "", "", "")),
        ]
        for wire, want in cases:
            info = request_route_info(parse_request(wire))
            self.assertEqual((info.host, info.raw_host, info.path, info.url_host, info.auth_user, info.route_user),
                             want, wire)
        for bad in (b"GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n", b"GET /%4 HTTP/1.1\r\nHost: h\r\n\r\n",
                    b"GET relative HTTP/1.1\r\nHost: h\r\n\r\n"):
            self.assertRaises(BadRequest, request_route_info, parse_request(bad))

    @settings(max_examples=200, deadline=None)
    @given(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40))
    def test_route_info_only_raises_bad_request(self, target: str) -> None:
        for t in (target, "/" + target):
            try:
                head = parse_request(b"GET " + t.encode() + b" HTTP/1.1\r\nHost: h\r\n\r\n")
                request_route_info(head)
            except BadRequest:
                pass


class CannedReplyTests(unittest.TestCase):
    def test_404_is_frps_byte_for_byte(self) -> None:
        self.assertEqual(not_found_response(DATE), CAPTURED_404)
        self.assertEqual(len(NOT_FOUND_PAGE), 489)

    def test_404_connection_and_version_follow_the_request(self) -> None:
        """Captured from frps: Connection: close echoed; HTTP/1.0 answered in HTTP/1.0."""
        close = parse_request(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        self.assertIn(b"Content-Type: text/html; charset=utf-8\r\nConnection: close\r\n\r\n<!DOCTYPE",
                      not_found_response(DATE, close))
        http10 = parse_request(b"GET / HTTP/1.0\r\n\r\n")
        self.assertEqual(not_found_response(DATE, http10), b"HTTP/1.0" + CAPTURED_404[len(b"HTTP/1.1"):])
        http10_keep = parse_request(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        self.assertEqual(not_found_response(DATE, http10_keep).split(b"\r\n\r\n")[0],
                         b"HTTP/1.0 404 Not Found\r\nDate: " + DATE.encode() + b"\r\nContent-Length: 489\r\n"
                         b"Content-Type: text/html; charset=utf-8\r\nConnection: keep-alive")
        self.assertIsNone(reply_connection(parse_request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")))

    def test_options_star(self) -> None:
        """Go's server answers OPTIONS * itself (captured bytes, HTTP/1.1 and 1.0)."""
        head = parse_request(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertTrue(is_options_star(head))
        self.assertEqual(options_star_response("Wed, 02 Dec 2026 07:15:38 GMT", head),
                         b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nDate: Wed, 02 Dec 2026 07:15:38 GMT\r\n\r\n")
        self.assertEqual(options_star_response("Wed, 02 Dec 2026 07:15:39 GMT", parse_request(b"OPTIONS * HTTP/1.0\r\n\r\n")),
                         b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nDate: Wed, 02 Dec 2026 07:15:39 GMT\r\n\r\n")
        self.assertFalse(is_options_star(parse_request(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n")))
        self.assertEqual(H2C_PREFACE, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

    def test_custom_404_page_type(self) -> None:
        self.assertIn(b"Content-Type: text/plain; charset=utf-8\r\n", not_found_response(DATE, page=b"gone"))
        cases = [(b"<html><body>x", "text/html; charset=utf-8"), (b"  <P>x", "text/html; charset=utf-8"),
                 (b"<pre>x", "text/plain; charset=utf-8"), (b"<?xml version", "text/xml; charset=utf-8"),
                 (b"\x00\x01", "application/octet-stream"), (b"", "text/plain; charset=utf-8")]
        for page, want in cases:
            self.assertEqual(sniff_content_type(page), want, page)

    def test_401_is_frps_byte_for_byte(self) -> None:
        self.assertEqual(unauthorized_response("Wed, 02 Dec 2026 07:00:39 GMT"), CAPTURED_401)
        self.assertEqual(BASIC_REALM, 'Basic realm="Restricted"')

    def test_504(self) -> None:
        self.assertEqual(gateway_timeout_response(DATE),
                         b"HTTP/1.1 504 Gateway Timeout\r\nDate: " + DATE.encode() + b"\r\nContent-Length: 0\r\n\r\n")

    def test_tcpmux_404_is_frps_byte_for_byte(self) -> None:
        self.assertEqual(tcpmux_not_found_response(server="frp/0.65.0"), CAPTURED_TCPMUX_404_HEAD + NOT_FOUND_PAGE)

    def test_http_date(self) -> None:
        self.assertEqual(http_date(1796194825), "Wed, 02 Dec 2026 07:00:25 GMT")


class ResponseSetFramingTests(unittest.TestCase):
    def test_response_headers_set_cannot_change_framing(self) -> None:
        out = rewrite_response(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"),
                               set_headers={"content-length": "99", "transfer-encoding": "chunked", "x-a": "1"})
        self.assertEqual(out.headers, (("Content-Length", "2"), ("X-A", "1")))


D = "Wed, 02 Dec 2026 07:18:21 GMT"


def relay(backend: bytes, request_wire: bytes, set_headers: dict[str, str] | None = None) -> tuple[bytes, bool]:
    """Drive parser + client_response + ChunkedWriter as a relay would: (bytes to the client, close after)."""
    from frptx.vhost.http1 import ChunkedWriter, Data, EndOfMessage, ProtocolSwitch, serialize_response_head
    from frptx.vhost.rewrite import client_response

    request = parse_request(request_wire)
    parser = ResponseParser(request.method)
    events = parser.feed(backend)
    if parser.body_framing == "eof":
        events += parser.feed_eof()
    out = b""
    framing = ""
    close = False
    writer = ChunkedWriter()
    for event in events:
        if isinstance(event, ResponseHead):
            reply = client_response(event, request, parser.body_framing, date=D, set_headers=set_headers)
            out += serialize_response_head(reply.head)
            framing, close = reply.framing, reply.close_after
        elif isinstance(event, Data):
            out += writer.data(event.data) if framing == "chunked" else event.data
        elif isinstance(event, EndOfMessage) and framing == "chunked":
            out += writer.end(event.trailers)
        elif isinstance(event, ProtocolSwitch):
            pass
    return out, close


def normalized(wire: bytes) -> tuple[bytes, frozenset[tuple[str, str]], bytes]:
    """(status line, fields with lower-cased names, body): Go sorts and canonicalises names, we keep them."""
    head, _, body = wire.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    fields = frozenset((k.strip().lower(), v.strip()) for k, _, v in (ln.decode().partition(":") for ln in lines[1:]))
    return lines[0], fields, body


class ClientResponseTests(unittest.TestCase):
    """Backend responses through frps 0.65.0 (captured: what the backend sent, what the client got)."""

    GET = b"GET / HTTP/1.1\r\nHost: r.test\r\n\r\n"
    GET_CLOSE = b"GET / HTTP/1.1\r\nHost: r.test\r\nConnection: close\r\n\r\n"
    GET10 = b"GET / HTTP/1.0\r\nHost: r.test\r\n\r\n"
    CL = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
    CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\nTrailer: X-T\r\n\r\n"
               b"5\r\nhello\r\n0\r\nX-T: t\r\n\r\n")
    EOF11 = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil-eof"
    EOF10 = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil-eof"
    d = D.encode()

    CASES: list[tuple[str, bytes, bytes, bytes, bool]] = [
        ("cl", CL, GET, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nDate: " + d
         + b"\r\n\r\nhello", False),
        ("cl close", CL, GET_CLOSE, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nDate: " + d
         + b"\r\nConnection: close\r\n\r\nhello", True),
        ("chunked", CHUNKED, GET, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: X-T\r\nDate: " + d
         + b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: t\r\n\r\n", False),
        ("eof rechunked", EOF11, GET, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: " + d
         + b"\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nuntil-eof\r\n0\r\n\r\n", False),
        ("eof 1.0 backend rechunked", EOF10, GET_CLOSE, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: " + d
         + b"\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nuntil-eof\r\n0\r\n\r\n", True),
        ("204", b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n", GET,
         b"HTTP/1.1 204 No Content\r\nX-A: 1\r\nDate: " + d + b"\r\n\r\n", False),
        ("304", b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n", GET,
         b"HTTP/1.1 304 Not Modified\r\nEtag: x\r\nDate: " + d + b"\r\n\r\n", False),
        ("reason is Go's", b"HTTP/1.1 200 Fine Thanks\r\nContent-Length: 0\r\n\r\n", GET,
         b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nDate: " + d + b"\r\n\r\n", False),
        ("unknown status", b"HTTP/1.1 299 Odd\r\nContent-Length: 0\r\n\r\n", GET,
         b"HTTP/1.1 299 status code 299\r\nContent-Length: 0\r\nDate: " + d + b"\r\n\r\n", False),
        ("repeated fields", b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 0\r\n"
         b"x-lower: v\r\n\r\n", GET, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
         b"X-Lower: v\r\nDate: " + d + b"\r\n\r\n", False),
        ("head keeps length", CL[:-5], b"HEAD / HTTP/1.1\r\nHost: r.test\r\nConnection: close\r\n\r\n",
         b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nDate: " + d
         + b"\r\nConnection: close\r\n\r\n", True),
        ("1.0 client, body to close", EOF11, GET10,
         b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nDate: " + d + b"\r\n\r\nuntil-eof", True),
        ("1.0 client, chunks decoded", CHUNKED, GET10,
         b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nTrailer: X-T\r\nDate: " + d + b"\r\n\r\nhello", True),
        ("interim then final", b"HTTP/1.1 103 Early Hints\r\nLink: </s>\r\nConnection: x-h\r\nX-H: 1\r\n\r\n"
         b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok", GET,
         b"HTTP/1.1 103 Early Hints\r\nConnection: x-h\r\nLink: </s>\r\nX-H: 1\r\n\r\n"
         b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\nDate: " + d + b"\r\n\r\nok", False),
    ]

    def test_captured_responses(self) -> None:
        for name, backend, request, frps_sent, close in self.CASES:
            ours, our_close = relay(backend, request)
            if name == "interim then final":
                split_ours, split_frps = ours.split(b"\r\n\r\n", 1), frps_sent.split(b"\r\n\r\n", 1)
                self.assertEqual(normalized(split_ours[0] + b"\r\n\r\n"), normalized(split_frps[0] + b"\r\n\r\n"))
                ours, frps_sent = split_ours[1], split_frps[1]
            self.assertEqual(normalized(ours), normalized(frps_sent), name)
            self.assertEqual(our_close, close, name)

    def test_switching_protocols_passes_fields_untouched(self) -> None:
        backend = (b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                   b"X-Extra: e\r\n\r\nRAWDATA")
        ours, close = relay(backend, b"GET /101 HTTP/1.1\r\nHost: r.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        self.assertEqual(ours, backend)   # byte for byte what frps sent, no Date
        self.assertFalse(close)

    def test_http10_keep_alive(self) -> None:
        ours, close = relay(self.CL, b"GET / HTTP/1.0\r\nHost: r.test\r\nConnection: keep-alive\r\n\r\n")
        self.assertIn(b"\r\nConnection: keep-alive\r\n", ours)
        self.assertFalse(close)
        ours, close = relay(self.EOF11, b"GET / HTTP/1.0\r\nHost: r.test\r\nConnection: keep-alive\r\n\r\n")
        self.assertNotIn(b"Connection", ours)   # a body sent until close cannot keep the connection
        self.assertTrue(close)

    def test_response_headers_set(self) -> None:
        ours, _ = relay(self.CL, self.GET, {"x-resp": "r1"})
        self.assertIn(b"\r\nX-Resp: r1\r\n", ours)

    def test_status_text_table(self) -> None:
        from frptx.vhost.rewrite import GO_STATUS_TEXT, go_reason

        self.assertEqual(len(GO_STATUS_TEXT), 62)
        self.assertEqual(go_reason(413), "Request Entity Too Large")
        self.assertEqual(go_reason(418), "I'm a teapot")
        self.assertEqual(go_reason(599), "status code 599")


class RewritePropertyTests(unittest.TestCase):
    request_line = st.tuples(
        st.sampled_from([b"GET", b"POST", b"OPTIONS", b"CONNECT", b"PUT"]),
        st.sampled_from([b"/", b"/a%20b?q=1", b"http://h.test/x", b"*", b"h.test:443", b"/\xff"]),
        st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]),
    ).map(lambda t: b" ".join(t) + b"\r\n")
    field = st.sampled_from([
        b"Host: h.test", b"Connection: keep-alive, X-A, Upgrade", b"Upgrade: websocket", b"X-A: 1",
        b"X-Forwarded-For: 1.1.1.1", b"Te: trailers", b"Transfer-Encoding: chunked", b"Content-Length: 0",
        b"Proxy-Authorization: Basic dTpw", b"Authorization: Basic dTpw", b"x-caf: \xe9", b"Trailer: X",
        b"Forwarded: for=x", b"X-From-Frp: no", b"Keep-Alive: 5",
    ])
    pieces = st.tuples(request_line, st.lists(field, max_size=10)).map(
        lambda t: t[0] + b"".join(f + b"\r\n" for f in t[1]))

    @settings(max_examples=300, deadline=None)
    @given(pieces)
    def test_any_accepted_request_rewrites_and_serializes(self, wire: bytes) -> None:
        """Whatever the parser accepts, the rewrite keeps serialisable and re-parses to the same head."""
        from frptx.vhost.http1 import HTTPProtocolError

        try:
            events = RequestParser().feed(wire + b"\r\n")
        except HTTPProtocolError:
            return
        if not events:
            return
        head = events[0]
        assert isinstance(head, RequestHead)
        try:
            request_route_info(head)
            out = rewrite_request(head, client_ip="10.0.0.1", host_rewrite="inner.local",
                                  set_headers={"x-from-frp": "yes"})
        except (BadRequest, RewriteError):
            return
        wire_out = serialize_request_head(out)
        again = RequestParser().feed(wire_out)[0]
        self.assertEqual(again, out)
        self.assertEqual(get_header(out.headers, "X-From-Frp"), "yes")
        self.assertIsNone(get_header(out.headers, "Proxy-Authorization"))
