"""tcpmux httpconnect: CONNECT parsing, credentials and frps 0.65.0's exact replies (captured)."""
from __future__ import annotations

import base64

from hypothesis import given, settings, strategies as st
from twisted.trial import unittest

from frptx.vhost.http1 import Limits
from frptx.vhost.httpconnect import (
    CONNECT_OK,
    NEED_MORE,
    NOT_CONNECT,
    PROXY_AUTH_REQUIRED,
    ConnectError,
    ConnectReader,
    ConnectRequest,
    check_auth,
    not_found_response,
)
from frptx.vhost.rewrite import NOT_FOUND_PAGE
from frptx.vhost.routing import RouteTable

# frps 0.65.0 on tcpmuxHTTPConnectPort, proxy "mux.test" with httpUser u / httpPassword p,
# client sending a CONNECT without credentials:
CAPTURED_NO_AUTH = (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                    b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"Restricted\"\r\n"
                    b"Content-Length: 0\r\n\r\n")
# ... and for a host no proxy serves:
CAPTURED_NOT_FOUND_HEAD = (b"HTTP/1.1 404 Not Found\r\nContent-Length: 489\r\nContent-Type: text/html\r\n"
                           b"Server: frp/0.65.0\r\n\r\n")


def proxy_auth(user: str, password: str) -> bytes:
    return b"Proxy-Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()) + b"\r\n"


def read(wire: bytes) -> ConnectRequest:
    result = ConnectReader().feed(wire)
    assert isinstance(result, ConnectRequest)
    return result


class ParseTests(unittest.TestCase):
    def test_table(self) -> None:
        cases = [
            (b"CONNECT Mux.Test:80 HTTP/1.1\r\nHost: mux.test:80\r\n\r\n", ("mux.test", "", "")),
            (b"CONNECT mux.test:80 HTTP/1.1\r\n" + proxy_auth("u", "p") + b"\r\n", ("mux.test", "u", "p")),
            (b"CONNECT mux.test:80 HTTP/1.1\r\n" + proxy_auth("u", "p:q") + b"\r\n", ("mux.test", "u", "p:q")),
            (b"CONNECT mux.test:80 HTTP/1.1\r\nProxy-Authorization: Bearer x\r\n\r\n", ("mux.test", "", "")),
            (b"CONNECT mux.test HTTP/1.1\r\n\r\n", ("mux.test", "", "")),
            (b"CONNECT [::1]:22 HTTP/1.0\r\n\r\n", ("::1", "", "")),
            (b"CONNECT mux.test.:443 HTTP/1.1\r\n\r\n", ("mux.test", "", "")),
            (b"CONNECT /path HTTP/1.1\r\nHost: Other.test:1\r\n\r\n", ("other.test", "", "")),
        ]
        for wire, want in cases:
            req = read(wire)
            self.assertEqual((req.host, req.user, req.password), want, wire)
            self.assertEqual(req.trailing, b"")

    def test_split_reads_and_trailing_bytes(self) -> None:
        reader = ConnectReader()
        wire = b"CONNECT a.test:22 HTTP/1.1\r\n" + proxy_auth("u", "p") + b"\r\nSSH-2.0-x\r\n"
        for i in range(len(wire) - len(b"SSH-2.0-x\r\n") - 1):
            self.assertIs(reader.feed(wire[i:i + 1]), NEED_MORE)
        result = reader.feed(wire[len(wire) - len(b"SSH-2.0-x\r\n") - 1:])
        assert isinstance(result, ConnectRequest)
        self.assertEqual(result.trailing, b"SSH-2.0-x\r\n")
        self.assertIs(reader.feed(b"later"), result)
        self.assertEqual(reader.buffered, wire + b"later")  # passthrough replays all of it

    def test_connect_with_a_body_length_is_still_a_tunnel(self) -> None:
        req = read(b"CONNECT a.test:1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcdef")
        self.assertEqual(req.trailing, b"abcdef")

    def test_refusals(self) -> None:
        cases = [
            (b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", NOT_CONNECT),
            (b"\x16\x03\x01\x00\x05hello\r\n\r\n", "bad CONNECT request"),
            (b"CONNECT a b HTTP/1.1\r\n\r\n", "bad CONNECT request"),
            (b"CONNECT a.test:1 HTTP/1.1\r\nBad Header\r\n\r\n", "bad CONNECT request"),
        ]
        for wire, text in cases:
            with self.assertRaises(ConnectError, msg=wire) as cm:
                ConnectReader().feed(wire)
            self.assertIn(text, str(cm.exception))
        self.assertEqual(NOT_CONNECT, "connections to tcp vhost must be of method CONNECT")
        # like Go's ReadRequest, bytes without a line end just wait (frps's vhost timeout ends it)
        self.assertIs(ConnectReader().feed(b"\x16\x03\x01\x00\x05hello"), NEED_MORE)

    def test_head_is_bounded(self) -> None:
        reader = ConnectReader(Limits(max_head_bytes=200, max_line_bytes=100))
        reader.feed(b"CONNECT a.test:1 HTTP/1.1\r\n")
        with self.assertRaises(ConnectError):
            for _ in range(100):
                reader.feed(b"X: yyyyyyyy\r\n")

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300), st.integers(1, 40))
    def test_fuzz_only_connect_error(self, data: bytes, step: int) -> None:
        reader = ConnectReader()
        try:
            for i in range(0, len(data), step):
                reader.feed(data[i:i + step])
        except ConnectError:
            pass


class ReplyTests(unittest.TestCase):
    def test_ok_and_407_are_frps_bytes(self) -> None:
        self.assertEqual(CONNECT_OK + PROXY_AUTH_REQUIRED, CAPTURED_NO_AUTH)

    def test_not_found_is_frps_bytes(self) -> None:
        self.assertEqual(not_found_response(server="frp/0.65.0"), CAPTURED_NOT_FOUND_HEAD + NOT_FOUND_PAGE)
        self.assertTrue(not_found_response().startswith(b"HTTP/1.1 404 Not Found\r\nContent-Length: 489\r\n"))

    def test_check_auth(self) -> None:
        cases = [
            (("", "", "", ""), True),
            (("", "secret", "", ""), True),   # tcpmux only checks when the proxy has an httpUser
            (("u", "p", "u", "p"), True),
            (("u", "p", "u", ""), False),
            (("u", "p", "", "p"), False),
            (("u", "", "u", ""), True),
            (("u", "", "u", "x"), False),
        ]
        for args, want in cases:
            self.assertEqual(check_auth(*args), want, args)


class SequenceTests(unittest.TestCase):
    """frps's order of operations, driven through the pure pieces."""

    def serve(self, table: RouteTable[tuple[str, str, bool]], wire: bytes) -> bytes:
        try:
            req = read(wire)
        except ConnectError:
            return b"<closed>"
        route = table.lookup(req.host, "", req.user)
        if route is None:
            return not_found_response(server="frp/0.65.0") + b"<closed>"
        user, password, passthrough = route.value
        out = b"" if passthrough else CONNECT_OK
        if not check_auth(user, password, req.user, req.password):
            return out + PROXY_AUTH_REQUIRED + b"<closed>"
        return out + b"<relay>"

    def test_sequence(self) -> None:
        table: RouteTable[tuple[str, str, bool]] = RouteTable()
        table.add("mux.test", "", "", ("u", "p", False))
        table.add("open.test", "", "", ("", "", False))
        table.add("pass.test", "", "", ("", "", True))
        table.add("mux.test", "", "bob", ("bob", "pw", False))   # routeByHTTPUser
        self.assertEqual(self.serve(table, b"CONNECT mux.test:80 HTTP/1.1\r\n\r\n"), CAPTURED_NO_AUTH + b"<closed>")
        self.assertEqual(self.serve(table, b"CONNECT mux.test:80 HTTP/1.1\r\n" + proxy_auth("u", "p") + b"\r\n"),
                         CONNECT_OK + b"<relay>")
        self.assertEqual(self.serve(table, b"CONNECT mux.test:80 HTTP/1.1\r\n" + proxy_auth("bob", "pw") + b"\r\n"),
                         CONNECT_OK + b"<relay>")
        self.assertEqual(self.serve(table, b"CONNECT open.test:80 HTTP/1.1\r\n\r\n"), CONNECT_OK + b"<relay>")
        self.assertEqual(self.serve(table, b"CONNECT pass.test:80 HTTP/1.1\r\n\r\n"), b"<relay>")
        self.assertEqual(self.serve(table, b"CONNECT nope.test:80 HTTP/1.1\r\n\r\n"),
                         CAPTURED_NOT_FOUND_HEAD + NOT_FOUND_PAGE + b"<closed>")
        self.assertEqual(self.serve(table, b"GET / HTTP/1.1\r\nHost: open.test\r\n\r\n"), b"<closed>")
