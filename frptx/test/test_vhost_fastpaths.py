"""The vhost's per-request fast paths give exactly what the plain rules give.

:mod:`frptx.test.vhost_reference` holds the header rules as first written (one
pass over the fields per rule, one check per field); the modules in use look
names up once per head, drop fields in one pass and check a serialised head in
one regular expression.  Here both run on generated heads -- rich in the fields
the rules care about (Connection and the names it lists, hop-by-hop, forwarding,
framing, Date, Host, in any case) -- and must agree on every result and every
error.
"""
from __future__ import annotations

from typing import Any

from hypothesis import given, settings, strategies as st
from twisted.trial import unittest

from frptx.test import vhost_reference as ref
from frptx.test.test_vhost_http1 import _heads
from frptx.vhost.http1 import (
    HTTPProtocolError,
    RequestHead,
    RequestParser,
    ResponseHead,
    ResponseParser,
    checked,
    is_checked,
    keep_alive,
    serialize_request_head,
    serialize_response_head,
)
from frptx.vhost.rewrite import client_response, reply_connection, request_route_info, rewrite_request, rewrite_response
from frptx.wire.messages import FrozenMap

_NAMES = ["Host", "host", "Connection", "connection", "CONNECTION", "Te", "TE", "Upgrade", "upgrade", "Keep-Alive",
          "Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate", "Trailer", "Transfer-Encoding",
          "Content-Length", "content-length", "Forwarded", "X-Forwarded-For", "x-forwarded-for", "X-Forwarded-Host",
          "X-Forwarded-Proto", "X-Hop", "x-hop", "Date", "date", "Authorization", "Close", "User-Agent", "X-A"]
_VALUES = ["", "a", "keep-alive", "close", "Keep-Alive, X-Hop", "upgrade", "Upgrade", " upgrade , close ",
           "websocket", "h2c\x01", "trailers", "trailers, deflate", "x-hop", "content-length", "te", ",,", "1.2.3.4",
           "5", "chunked", "Basic dTpw", "Basic dTpwOg==", "Wed, 02 Dec 2026 07:00:25 GMT", "h:8080", "\xe9"]
_fields = st.lists(st.tuples(st.sampled_from(_NAMES), st.sampled_from(_VALUES)), max_size=8).map(tuple)
_targets = st.sampled_from(["/", "/a?b=%41", "/a%zz", "http://Up.Example:81/x", "http://u:p@h/", "*", "h:443",
                            "mailto:x", "/p%2Fq"])
_request_heads = st.builds(RequestHead, st.sampled_from(["GET", "POST", "CONNECT", "OPTIONS"]), _targets,
                           st.sampled_from(["HTTP/1.1", "HTTP/1.0"]), _fields)
_response_heads = st.builds(ResponseHead, st.sampled_from([100, 101, 103, 200, 204, 304, 404]),
                            st.sampled_from(["OK", "x"]), st.sampled_from(["HTTP/1.1", "HTTP/1.0"]), _fields)
_set_headers = st.dictionaries(st.sampled_from(["x-from-frp", "Host", "content-length", "X-Forwarded-For", "te",
                                                "Date", "x-resp"]),
                               st.sampled_from(["yes", "", "r1"]), max_size=3)


def _result(f: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return ("ok", f(*args, **kwargs))
    except (ValueError, HTTPProtocolError) as e:
        return ("error", type(e), str(e))


class RewriteAsReference(unittest.TestCase):
    @settings(max_examples=1000, deadline=None)
    @given(_request_heads, st.sampled_from([None, "127.0.0.1"]), st.booleans(), st.sampled_from(["", "inner"]),
           _set_headers)
    def test_rewrite_request(self, head: RequestHead, client_ip: str | None, tls: bool, host_rewrite: str,
                             set_headers: dict[str, str]) -> None:
        args = dict(client_ip=client_ip, tls=tls, host_rewrite=host_rewrite, set_headers=set_headers)
        got = _result(rewrite_request, head, **args)
        self.assertEqual(got, _result(ref.rewrite_request, head, **args))
        info = _result(request_route_info, head)
        if info[0] == "ok":
            self.assertEqual(_result(rewrite_request, head, info=info[1], **args), got)
        if got[0] == "ok":
            out = got[1]
            self.assertEqual(out.lower_names, tuple(k.lower() for k, _ in out.headers))
            self.assertEqual(_result(serialize_request_head, out), _result(ref.serialize_request_head, out))

    @settings(max_examples=1000, deadline=None)
    @given(_response_heads, _request_heads, st.sampled_from(["length", "chunked", "eof", "none", "tunnel"]),
           _set_headers)
    def test_client_response(self, head: ResponseHead, request: RequestHead, framing: str,
                             set_headers: dict[str, str]) -> None:
        date = "Wed, 02 Dec 2026 07:00:25 GMT"
        want = ref.client_response(head, request, framing, date=date, set_headers=set_headers)
        got = client_response(head, request, framing, date=date, set_headers=set_headers)
        self.assertEqual(got, want)
        if _result(ref.serialize_response_head, head)[0] == "ok":
            # as a parsed head would be (the one-pass path takes checked heads only)
            valid = checked(ResponseHead(head.status, head.reason, head.version, head.headers))
            got = client_response(valid, request, framing, date=date, set_headers=set_headers)
            self.assertEqual(got, want)
            self.assertEqual(serialize_response_head(got.head), ref.serialize_response_head(want.head))
        self.assertEqual(rewrite_response(head, set_headers=set_headers),
                         ref.rewrite_response(head, set_headers=set_headers))
        self.assertEqual(_result(serialize_response_head, got.head), _result(ref.serialize_response_head, got.head))

    @settings(max_examples=500, deadline=None)
    @given(_request_heads)
    def test_request_rules(self, head: RequestHead) -> None:
        self.assertEqual(keep_alive(head), ref.keep_alive(head))
        self.assertEqual(reply_connection(head), ref.reply_connection(head))
        self.assertEqual(_result(request_route_info, head), _result(ref.request_route_info, head))

    @settings(max_examples=300, deadline=None)
    @given(_request_heads, _response_heads)
    def test_parsed_heads_as_built_ones(self, request: RequestHead, response: ResponseHead) -> None:
        """A parsed head (its lower-case names known from the parse) behaves as one built by hand."""
        try:
            wire = ref.serialize_request_head(request)
        except ValueError:
            return
        try:
            parsed = RequestParser().feed(wire)[0]
        except HTTPProtocolError:
            return
        assert isinstance(parsed, RequestHead)
        self.assertEqual(parsed.lower_names, tuple(k.lower() for k, _ in parsed.headers))
        self.assertEqual(_result(rewrite_request, parsed, client_ip="1.1.1.1"),
                         _result(ref.rewrite_request, parsed, client_ip="1.1.1.1"))
        try:
            rparsed = ResponseParser().feed(ref.serialize_response_head(response) + b"ok")[0]
        except (ValueError, HTTPProtocolError):
            return
        assert isinstance(rparsed, ResponseHead)
        self.assertEqual(rparsed.lower_names, tuple(k.lower() for k, _ in rparsed.headers))
        self.assertEqual(client_response(rparsed, parsed, "length", date="d"),
                         ref.client_response(rparsed, parsed, "length", date="d"))


_nasty = st.lists(st.sampled_from(["a", "Z", " ", "\t", ":", "\r", "\n", "\r\n", "\x00", "\x7f", "\x80", "\xff",
                                   "\u0100", "-", "é", "(", "X: y"]), max_size=8).map("".join)


class SerializeAsReference(unittest.TestCase):
    @settings(max_examples=1500, deadline=None)
    @given(st.lists(st.tuples(_nasty, _nasty), max_size=5), st.sampled_from(["/", "/ x", "", "/\x7f"]))
    def test_fields_checked_as_one_by_one(self, fields: list[tuple[str, str]], target: str) -> None:
        head = RequestHead("GET", target, "HTTP/1.1", tuple(fields))
        got = _result(serialize_request_head, head)
        want = _result(ref.serialize_request_head, head)
        # (the messages may name another field when several are wrong; the verdict may not differ)
        self.assertEqual(got[0], want[0], (got, want))
        if got[0] == "ok":
            self.assertEqual(got, want)
        else:
            self.assertEqual(got[1], want[1])

    def test_a_value_with_a_line_end_is_no_new_field(self) -> None:
        for fields in [(("X", "a\r\nInjected: 1"),), (("A: b", "c"),), (("A", "b\nC: d"),), (("A\r\nB", "c"),)]:
            self.assertRaises(ValueError, serialize_request_head, RequestHead("GET", "/", "HTTP/1.1", fields))


class CheckedHeads(unittest.TestCase):
    """Heads marked checked are serialised without checks: every such head must pass them."""

    @settings(max_examples=600, deadline=None)
    @given(st.data(), st.booleans(), st.sampled_from([None, "127.0.0.1", "::1", "a\r\nb"]),
           st.sampled_from(["", "inner", "in\r\nner"]), st.sampled_from(["GET", "HEAD", "CONNECT"]))
    def test_parsed_and_rewritten_heads_are_valid(self, data: st.DataObject, valid: bool, client_ip: str | None,
                                                  host_rewrite: str, method: str) -> None:
        request_wire = data.draw(_heads(False, valid))
        response_wire = data.draw(_heads(True, valid))
        try:
            requests = [e for e in RequestParser().feed(request_wire) if isinstance(e, RequestHead)]
        except HTTPProtocolError:
            requests = []
        try:
            responses = [e for e in ResponseParser(method).feed(response_wire) if isinstance(e, ResponseHead)]
        except HTTPProtocolError:
            responses = []
        for request in requests:
            self.assertTrue(is_checked(request))
            self.assertEqual(serialize_request_head(request), ref.serialize_request_head(request))
            got = _result(rewrite_request, request, client_ip=client_ip, host_rewrite=host_rewrite)
            if got[0] == "ok":
                self.assertEqual(_result(serialize_request_head, got[1]), _result(ref.serialize_request_head, got[1]))
            for response in responses:
                self.assertTrue(is_checked(response))
                self.assertEqual(serialize_response_head(response), ref.serialize_response_head(response))
                for framing in ("length", "chunked", "none"):
                    answer = client_response(response, request, framing, date="Wed, 02 Dec 2026 07:00:25 GMT")
                    self.assertEqual(serialize_response_head(answer.head), ref.serialize_response_head(answer.head))

    def test_decoded_url_host_is_checked(self) -> None:
        [head, _] = RequestParser().feed(b"GET http://a%0d%0aX-Injected:%201/ HTTP/1.1\r\nHost: h\r\n\r\n")
        assert isinstance(head, RequestHead)
        out = rewrite_request(head, client_ip="127.0.0.1")
        self.assertFalse(is_checked(out))
        self.assertRaises(ValueError, serialize_request_head, out)

    def test_configured_values_are_checked(self) -> None:
        [head, _] = RequestParser().feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert isinstance(head, RequestHead)
        self.assertTrue(is_checked(rewrite_request(head, client_ip="127.0.0.1", host_rewrite="inner")))
        self.assertFalse(is_checked(rewrite_request(head, client_ip="127.0.0.1", host_rewrite="a\r\nb: c")))
        self.assertFalse(is_checked(rewrite_request(head, client_ip="127.0.0.1", set_headers={"x": "y"})))
        self.assertRaises(ValueError, serialize_request_head,
                          rewrite_request(head, client_ip="127.0.0.1", host_rewrite="a\r\nb: c"))
        [response, _, _] = ResponseParser().feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
        assert isinstance(response, ResponseHead)
        self.assertFalse(is_checked(client_response(response, head, "length", date="x",
                                                    set_headers={"x-a": "b"}).head))
        self.assertFalse(is_checked(client_response(response, head, "length", date="d\r\nX: y").head))
        self.assertRaises(ValueError, serialize_response_head,
                          client_response(response, head, "length", date="d\r\nX: y").head)
        self.assertFalse(is_checked(ResponseHead(200, "OK", "HTTP/1.1", (("A", "b\r\nC: d"),))))


class RememberedResults(unittest.TestCase):
    """What is kept with a head (rewrites, answers, route facts, bytes) is what a fresh head gives,
    whatever the order of the calls with other inputs in between."""

    @settings(max_examples=300, deadline=None)
    @given(_request_heads, st.lists(st.tuples(st.sampled_from([None, "127.0.0.1", "10.0.0.2"]), st.booleans(),
                                              st.sampled_from(["", "inner"]),
                                              st.sampled_from([None, FrozenMap({}), FrozenMap({"x-a": "1"}),
                                                               FrozenMap({"X-A": "1"}), {"x-a": "2"}])),
                                    min_size=1, max_size=12))
    def test_rewrites(self, head: RequestHead, calls: list[tuple[Any, ...]]) -> None:
        for client_ip, tls, host_rewrite, set_headers in calls:
            args = dict(client_ip=client_ip, tls=tls, host_rewrite=host_rewrite, set_headers=set_headers)
            got = _result(rewrite_request, head, **args)
            fresh = RequestHead(head.method, head.target, head.version, head.headers)
            self.assertEqual(got, _result(ref.rewrite_request, fresh, **args))
            if got[0] == "ok":
                self.assertEqual(_result(serialize_request_head, got[1]),
                                 _result(ref.serialize_request_head, got[1]))
            self.assertEqual(_result(request_route_info, head), _result(ref.request_route_info, fresh))

    @settings(max_examples=300, deadline=None)
    @given(_response_heads, st.lists(st.tuples(_request_heads, st.sampled_from(["length", "chunked", "none", "eof"]),
                                               st.sampled_from(["d1", "d2"]),
                                               st.sampled_from([None, FrozenMap({"x-resp": "r"}), {"x-resp": "s"}])),
                                     min_size=1, max_size=12))
    def test_answers(self, head: ResponseHead, calls: list[tuple[Any, ...]]) -> None:
        heads = [head]
        if _result(ref.serialize_response_head, head)[0] == "ok":
            heads.append(checked(ResponseHead(head.status, head.reason, head.version, head.headers)))
        for one in heads:
            for request, framing, date, set_headers in calls:
                got = client_response(one, request, framing, date=date, set_headers=set_headers)
                self.assertEqual(got, ref.client_response(head, request, framing, date=date,
                                                          set_headers=set_headers))
                self.assertEqual(_result(serialize_response_head, got.head),
                                 _result(ref.serialize_response_head, got.head))
