# -*- test-case-name: frptx.test.test_vhost_rewrite -*-
"""What frps's HTTP vhost does to a request and its response, and its canned replies.

Go frp 0.65.0 serves ``vhostHTTPPort`` with Go's ``httputil.ReverseProxy``
(``pkg/util/vhost/http.go``); backends and users see the result of Go's
rules, so they are reproduced here on the heads of :mod:`frptx.vhost.http1`.
Each rule below was checked against a real frps 0.65.0 (the tests hold the
captured bytes):

Request (:func:`rewrite_request`), in Go's order:

1. the upgrade type is the ``Upgrade`` value if ``Connection`` lists
   ``upgrade``;
2. hop-by-hop fields go: every field named in ``Connection``, then
   Connection, Proxy-Connection, Keep-Alive, Proxy-Authenticate,
   Proxy-Authorization, Te, Trailer, Transfer-Encoding, Upgrade;
3. ``Te: trailers`` comes back if the client's TE listed ``trailers``;
   ``Connection: Upgrade`` and ``Upgrade`` come back for an upgrade;
4. client-sent Forwarded and X-Forwarded-{For,Host,Proto} are dropped, then
   ``X-Forwarded-For`` = the client's own X-Forwarded-For values + the client
   IP, joined with ", "; ``X-Forwarded-Host`` = the request's host as sent
   (port and case kept); ``X-Forwarded-Proto`` = ``http`` (``https`` over TLS);
5. ``hostHeaderRewrite`` replaces Host;
6. ``requestHeaders.set`` entries are set (Go's ``Header.Set``, so the name is
   canonicalised: ``x-from-frp`` is sent as ``X-From-Frp``), and may override
   the X-Forwarded fields; Host, Content-Length, Transfer-Encoding and Trailer
   cannot be set this way (Go writes those from the request itself).

frp sets no ``X-Real-IP``.  Go's transport also adds ``Accept-Encoding: gzip``
when the client sent none and then transparently gunzips the answer; that is
an artefact of Go's client, not a frp rule, and is not reproduced.

Response (:func:`rewrite_response`): hop-by-hop fields go (not for ``101``,
whose Connection/Upgrade must reach the client), then ``responseHeaders.set``
(except the framing fields, which frptx never lets configuration change).

Errors (frp's ``ErrorHandler``): a backend that cannot be reached or answers
garbage gets the client frp's 404 page (:func:`not_found_response`), not a
502; only a timeout (no response head within ``vhostHTTPTimeout``, 60 s by
default) gets ``504 Gateway Timeout`` with an empty body.  Failed basic auth
gets :func:`unauthorized_response`.

The framing fields (Content-Length, chunked Transfer-Encoding, Trailer) are
the relay's business, not the rewrite's: they are kept as the parser left them.
:func:`client_response` then says how Go's server re-frames the body for the
client (kept length, re-chunked, or until close for HTTP/1.0).

Other things frps (Go's server) does on that port that the listener must
reproduce: it answers ``OPTIONS *`` itself (:func:`options_star_response`);
it sends ``100 Continue`` itself as soon as it starts forwarding the body of
an ``Expect: 100-continue`` request (the Expect field still reaches the
backend); a ``CONNECT`` is routed on its authority, the CONNECT head is
forwarded to the backend and bytes are then relayed raw (no route: the raw
:func:`tcpmux_not_found_response`); the HTTP/2 prior-knowledge preface
(:data:`H2C_PREFACE`) is served as h2c.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from typing import Final, Generic, TypeVar

from frptx import FRP_PROTOCOL_VERSION
from frptx.vhost.http1 import (
    BadRequest,
    Headers,
    RequestHead,
    ResponseHead,
    checked,
    field_value,
    field_values,
    get_header,
    has_token,
    head_has_token,
    header_values,
    is_checked,
    keep_alive,
    remove_headers,
    safe_value,
    set_header,
    with_lower_names,
)
from frptx.vhost.routing import Route, RouteTable, canonical_host

T = TypeVar("T")

__all__ = [
    "BASIC_REALM",
    "NOT_FOUND_PAGE",
    "RESPONSE_HEADER_TIMEOUT",
    "RewriteError",
    "RouteInfo",
    "canonical_header_key",
    "check_auth",
    "ClientResponse",
    "client_response",
    "GO_STATUS_TEXT",
    "go_reason",
    "gateway_timeout_response",
    "H2C_PREFACE",
    "is_options_star",
    "options_star_response",
    "reply_connection",
    "http_date",
    "not_found_response",
    "parse_basic_auth",
    "remove_hop_by_hop",
    "request_route_info",
    "RouteDecision",
    "route_http_request",
    "rewrite_request",
    "rewrite_response",
    "sniff_content_type",
    "check_upgrade_response",
    "tcpmux_not_found_response",
    "unauthorized_response",
    "upgrade_type",
]

#: ``WWW-Authenticate``/``Proxy-Authenticate`` value frp sends.
BASIC_REALM: Final = 'Basic realm="Restricted"'

#: frps's default ``vhostHTTPTimeout``: seconds to wait for a response head.
RESPONSE_HEADER_TIMEOUT: Final = 60

#: frp's 404 page (``pkg/util/vhost/resource.go``), byte for byte.
NOT_FOUND_PAGE: Final = b"""<!DOCTYPE html>
<html>
<head>
<title>Not Found</title>
<style>
    body {
        width: 35em;
        margin: 0 auto;
        font-family: Tahoma, Verdana, Arial, sans-serif;
    }
</style>
</head>
<body>
<h1>The page you requested was not found.</h1>
<p>Sorry, the page you are looking for is currently unavailable.<br/>
Please try again later.</p>
<p>The server is powered by <a href="https://github.com/fatedier/frp">frp</a>.</p>
<p><em>Faithfully yours, frp.</em></p>
</body>
</html>
"""

#: Go's hop-by-hop list in ``httputil.ReverseProxy`` (canonical names).
HOP_BY_HOP: Final = (
    "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
    "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
)

_FORWARDING: Final = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto")
_FRAMING: Final = ("content-length", "transfer-encoding", "trailer")
#: the fields a response loses whatever its Connection says (hop-by-hop, framing aside)
_HOP_DROP: Final = frozenset(n.lower() for n in HOP_BY_HOP) - frozenset(_FRAMING)
#: ... and a request (the client's forwarding fields too: frps writes its own)
_REQUEST_DROP: Final = _HOP_DROP | frozenset(n.lower() for n in _FORWARDING)
# Go writes these from the request, not from Header, so requestHeaders.set cannot change them.
_NOT_SETTABLE: Final = frozenset({"host", "content-length", "transfer-encoding", "trailer"})
_TOKEN_BYTES: Final = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_HEX: Final = "0123456789abcdefABCDEF"


class RewriteError(ValueError):
    """Go's proxy refuses the exchange; frp answers with its 404 page."""


def canonical_header_key(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: ``x-from-frp`` -> ``X-From-Frp``.

    Names with a byte that is not a token character are returned unchanged,
    as Go does.
    """
    raw = name.encode("latin-1", "replace")
    if any(c not in _TOKEN_BYTES for c in raw):
        return name
    out = []
    upper = True
    for ch in name:
        out.append(ch.upper() if upper else ch.lower())
        upper = ch == "-"
    return "".join(out)


_last_date: tuple[int, str] = (-1, "")


def http_date(timestamp: float) -> str:
    """An HTTP ``Date`` value (Go's ``http.TimeFormat``) for a POSIX time.

    Made once per second (every answer frps relays may need one).
    """
    global _last_date
    second = int(timestamp)
    if second == _last_date[0] and timestamp >= 0:
        return _last_date[1]
    value = formatdate(timestamp, usegmt=True)
    if timestamp >= 0:
        _last_date = (second, value)
    return value


# ---------------------------------------------------------------- auth

def parse_basic_auth(value: str | None) -> tuple[str, str] | None:
    """Go's ``parseBasicAuth``: (user, password) from ``Basic <base64>``, or None.

    The scheme is case-insensitive; Go's decoder skips CR and LF; the first
    colon splits user from password.
    """
    if value is None or len(value) < 6 or value[:6].lower() != "basic ":
        return None
    payload = value[6:].replace("\r", "").replace("\n", "")
    try:
        decoded = base64.b64decode(payload.encode("latin-1"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    text = decoded.decode("utf-8", "surrogateescape")
    user, sep, password = text.partition(":")
    if not sep:
        return None
    return user, password


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))


def check_auth(route_user: str, route_password: str, user: str, password: str) -> bool:
    """frp's HTTP ``CheckAuth``: pass unless the route has a user or password and they differ.

    Both fields are always compared (constant time), so timing does not tell
    which one was wrong.
    """
    if route_user == "" and route_password == "":
        return True
    user_ok = _same(route_user, user)
    password_ok = _same(route_password, password)
    return user_ok and password_ok


# ---------------------------------------------------------------- routing input

@dataclass(frozen=True, init=False)
class RouteInfo:
    """What frps routes an HTTP request on, derived as Go's server does.

    ``host`` is canonical (for the route table); ``raw_host`` is the request's
    host as sent (for X-Forwarded-Host); ``path`` is the percent-decoded URL
    path matched against locations; ``url_host`` is set for absolute-form
    (proxy-style) targets; ``auth_user``/``auth_password`` come from
    ``Authorization`` (frp checks httpUser/httpPassword against them), and
    ``route_user`` is the user routeByHTTPUser matches: from
    ``Proxy-Authorization`` for absolute-form requests, else ``auth_user``.
    """

    host: str
    raw_host: str
    path: str
    url_host: str
    auth_user: str
    auth_password: str
    route_user: str

    def __init__(self, host: str, raw_host: str, path: str, url_host: str, auth_user: str, auth_password: str,
                 route_user: str) -> None:
        # (one per request: filling the dict directly is twice as fast as the frozen __init__)
        self.__dict__.update(host=host, raw_host=raw_host, path=path, url_host=url_host, auth_user=auth_user,
                             auth_password=auth_password, route_user=route_user)


def _unescape_path(raw: str) -> str:
    """Go's ``url.PathUnescape`` with its error on a bad ``%`` escape."""
    if "%" not in raw:
        return raw
    out = bytearray()
    data = raw.encode("utf-8", "surrogateescape")
    i = 0
    while i < len(data):
        c = data[i]
        if c == 0x25:
            esc = data[i + 1:i + 3]
            if len(esc) < 2 or chr(esc[0]) not in _HEX or chr(esc[1]) not in _HEX:
                raise BadRequest(f"invalid URL escape {data[i:i + 3]!r}")
            out.append(int(esc, 16))
            i += 3
        else:
            out.append(c)
            i += 1
    return out.decode("utf-8", "surrogateescape")


def _split_target(method: str, target: str) -> tuple[str, str]:
    """(URL host, URL path) of a request target, per Go's ``readRequest``."""
    if method == "CONNECT" and not target.startswith("/"):
        return target, ""
    if target == "*":
        return "", "*"
    if target.startswith("/"):
        return "", _unescape_path(target.split("?", 1)[0])
    m = _SCHEME_RE.match(target)
    if m is None:
        raise BadRequest("invalid URI for request")
    rest = target[m.end():].split("?", 1)[0]
    if not rest.startswith("/"):
        return "", ""  # opaque (``mailto:x``): no host, no path, as Go parses it
    if not rest.startswith("//"):
        return "", _unescape_path(rest)
    rest = rest[2:]
    slash = rest.find("/")
    authority, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    authority = authority.rpartition("@")[2]
    return _unescape_path(authority), _unescape_path(path)


#: results kept per head (see _remember), at most
_MEMO_ENTRIES: Final = 4


def _remember(head: RequestHead | ResponseHead, slot: str, key: Hashable, value: T) -> T:
    """Keep ``value`` with ``head`` under ``key``.

    Heads are immutable, and the parser hands out the very same head object
    for a head it has seen before (its parse cache): what is worked out from
    a head and a few other inputs is kept with the head, keyed by those
    inputs, at most ``_MEMO_ENTRIES`` per kind.
    """
    memo = head.__dict__.get(slot)
    if memo is None:
        memo = head.__dict__[slot] = {}
    elif len(memo) >= _MEMO_ENTRIES:
        memo.clear()
    memo[key] = value
    return value


def request_route_info(head: RequestHead) -> RouteInfo:
    """The routing facts of a parsed request; BadRequest for a target Go rejects."""
    info = head.__dict__.get("_route_info")
    if info is None:
        info = head.__dict__["_route_info"] = _request_route_info(head)
    return info


def _request_route_info(head: RequestHead) -> RouteInfo:
    url_host, path = _split_target(head.method, head.target)
    raw_host = url_host or (field_value(head, "host") or "")
    auth = parse_basic_auth(field_value(head, "authorization"))
    auth_user, auth_password = auth if auth else ("", "")
    route_user = ""
    if url_host:
        proxy_auth = parse_basic_auth(field_value(head, "proxy-authorization"))
        if proxy_auth:
            route_user = proxy_auth[0]
    if route_user == "":
        route_user = auth_user
    return RouteInfo(canonical_host(raw_host), raw_host, path, url_host, auth_user, auth_password, route_user)


@dataclass(frozen=True, init=False)
class RouteDecision(Generic[T]):
    """Where an HTTP request goes: ``authorized`` False means answer 401;
    ``route`` None means answer frp's 404 page."""

    authorized: bool
    route: Route[T] | None

    def __init__(self, authorized: bool, route: Route[T] | None) -> None:
        d = self.__dict__
        d["authorized"] = authorized
        d["route"] = route


def route_http_request(table: RouteTable[T], info: RouteInfo,
                       credentials: Callable[[T], tuple[str, str]]) -> RouteDecision[T]:
    """frps's ``ServeHTTP`` decision, in its order.

    First the basic-auth check, on the route found with the
    ``Authorization`` user (``credentials(value)`` gives that route's
    httpUser/httpPassword); then the route the request is proxied to, found
    with :attr:`RouteInfo.route_user` (which differs only for absolute-form
    requests carrying ``Proxy-Authorization``).
    """
    checked = table.lookup(info.host, info.path, info.auth_user)
    if checked is not None:
        user, password = credentials(checked.value)
        if not check_auth(user, password, info.auth_user, info.auth_password):
            return RouteDecision(False, None)
    if info.route_user == info.auth_user:
        return RouteDecision(True, checked)  # (the same lookup)
    return RouteDecision(True, table.lookup(info.host, info.path, info.route_user))


# ---------------------------------------------------------------- rewriting

def upgrade_type(headers: Headers) -> str:
    """The protocol a request asks to switch to ("" if none), as Go reads it."""
    if not has_token(headers, "Connection", "upgrade"):
        return ""
    return get_header(headers, "Upgrade") or ""


def remove_hop_by_hop(headers: Headers, keep: Iterable[str] = ()) -> Headers:
    """Go's ``removeHopByHopHeaders``: fields named in Connection, then the fixed list.

    Names in ``keep`` (lower-case) survive: the rewrite keeps the framing
    fields, which Go holds outside the header map and always re-emits.
    """
    named = []
    for value in header_values(headers, "Connection"):
        for part in value.split(","):
            part = part.strip(" \t")
            if part:
                named.append(part)
    kept = frozenset(keep)
    drop = [n for n in named + list(HOP_BY_HOP) if n.lower() not in kept]
    return remove_headers(headers, drop)


def _apply_set(headers: Headers, values: Mapping[str, str], skip: frozenset[str] = frozenset()) -> Headers:
    for name, value in values.items():
        if name.lower() in skip:
            continue
        headers = set_header(headers, canonical_header_key(name), value)
    return headers


def _connection_tokens(head: RequestHead | ResponseHead) -> set[str]:
    """The lower-case names a head's Connection fields list (none without one)."""
    tokens = set()
    for value in field_values(head, "connection"):
        for part in value.split(","):
            part = part.strip(" \t")
            if part:
                tokens.add(part.lower())
    return tokens


def _without(head: RequestHead | ResponseHead,
             drop: frozenset[str] | set[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """The head's fields but those whose lower-case name is in ``drop``, and their lower-case
    names (one pass, none if none match)."""
    lower = head.lower_names
    if drop.isdisjoint(lower):
        return list(head.headers), list(lower)
    keep = [i for i, name in enumerate(lower) if name not in drop]
    headers = head.headers
    return [headers[i] for i in keep], [lower[i] for i in keep]


def rewrite_request(
    head: RequestHead,
    *,
    client_ip: str | None,
    tls: bool = False,
    host_rewrite: str = "",
    set_headers: Mapping[str, str] | None = None,
    info: RouteInfo | None = None,
) -> RequestHead:
    """The request frps sends to the proxy's backend (see the module docstring).

    ``client_ip`` is the peer's address without port (None if unknown: no
    X-Forwarded-For at all, as Go does when it cannot parse the peer).  The
    head goes out as HTTP/1.1, as Go's transport always sends.  Raises
    :class:`RewriteError` for an upgrade to a non-printable protocol name.
    ``info``, the request's :func:`request_route_info` if the caller has it,
    saves working out its host again.
    """
    key = (client_ip, tls, host_rewrite, set_headers or None)
    memo = head.__dict__.get("_rewrites")
    if memo is not None:
        try:
            hit = memo.get(key)
        except TypeError:  # (set_headers not hashable: nothing was kept for it either)
            hit = None
        if hit is not None:
            return hit  # type: ignore[no-any-return]
    result = _rewrite_request(head, client_ip=client_ip, tls=tls, host_rewrite=host_rewrite,
                              set_headers=set_headers, info=info)
    try:
        _remember(head, "_rewrites", key, result)
    except TypeError:
        pass
    return result


def _rewrite_request(
    head: RequestHead,
    *,
    client_ip: str | None,
    tls: bool,
    host_rewrite: str,
    set_headers: Mapping[str, str] | None,
    info: RouteInfo | None,
) -> RequestHead:
    drop = _REQUEST_DROP
    up = ""
    lower = head.lower_names
    if "connection" in lower:
        # Go's order, in one pass: the fields named in Connection go with the fixed
        # hop-by-hop list (framing fields stay), and the client's forwarding fields
        named = _connection_tokens(head)
        drop = drop | (named - frozenset(_FRAMING))
        if "upgrade" in named:
            up = field_value(head, "upgrade") or ""
    if up and not all(0x20 <= ord(c) < 0x7F for c in up):
        raise RewriteError(f"client tried to switch to invalid protocol {up!r}")
    out, names = _without(head, drop)
    if "te" in lower and head_has_token(head, "te", "trailers"):
        out.append(("Te", "trailers"))
        names.append("te")
    if up:
        out += [("Connection", "Upgrade"), ("Upgrade", up)]
        names += ["connection", "upgrade"]
    if client_ip is not None:
        out.append(("X-Forwarded-For", ", ".join(field_values(head, "x-forwarded-for") + [client_ip])))
        names.append("x-forwarded-for")
    if info is not None:
        url_host, raw_host = info.url_host, info.raw_host
    else:
        url_host, _ = _split_target(head.method, head.target)
        raw_host = url_host or (field_value(head, "host") or "")
    out += [("X-Forwarded-Host", raw_host), ("X-Forwarded-Proto", "https" if tls else "http")]
    names += ["x-forwarded-host", "x-forwarded-proto"]
    headers = tuple(out)
    # (the result is as valid as the request if all that was added is: a decoded
    # URL host, the peer's address and a configured Host value are checked here)
    valid = (is_checked(head) and (not url_host or safe_value(url_host))
             and (client_ip is None or safe_value(client_ip)))
    if host_rewrite:
        headers = set_header(headers, "Host", host_rewrite)
        valid = valid and safe_value(host_rewrite)
    if set_headers:
        headers = _apply_set(headers, set_headers, _NOT_SETTABLE)
        valid = False
    result = RequestHead(head.method, head.target, "HTTP/1.1", headers)
    if not host_rewrite and not set_headers:
        with_lower_names(result, names)
    return checked(result) if valid else result


def check_upgrade_response(request_upgrade: str, response: ResponseHead) -> None:
    """Go refuses a 101 that switches to something other than what was asked."""
    if response.status != 101:
        return
    got = upgrade_type(response.headers)
    if got.lower() != request_upgrade.lower():
        raise RewriteError(f"backend tried to switch protocol {got!r} when {request_upgrade!r} was requested")


def rewrite_response(head: ResponseHead, *, set_headers: Mapping[str, str] | None = None) -> ResponseHead:
    """The backend's response as frps passes it to the client."""
    headers = head.headers
    names: list[str] | None = None
    if head.status != 101:
        drop = _HOP_DROP
        if "connection" in head.lower_names:
            drop = drop | (_connection_tokens(head) - frozenset(_FRAMING))
        if not drop.isdisjoint(head.lower_names):
            kept, names = _without(head, drop)
            headers = tuple(kept)
    # Framing fields stay the backend's: a configured Content-Length could
    # desynchronise the client connection.
    if set_headers:
        headers = _apply_set(headers, set_headers, _NOT_SETTABLE)
    if headers is head.headers:
        return head
    result = ResponseHead(head.status, head.reason, head.version, headers)
    if set_headers:
        return result
    # (fields dropped from a checked head leave a checked head)
    if names is not None:
        with_lower_names(result, names)
    return checked(result) if is_checked(head) else result


# ---------------------------------------------------------------- the response frps writes

#: Go's ``http.StatusText`` (checked code by code against frps 0.65.0, which
#: writes its own reason phrase whatever the backend said; other codes get
#: "status code N").
GO_STATUS_TEXT: Final[dict[int, str]] = {
    100: 'Continue', 101: 'Switching Protocols', 102: 'Processing', 103: 'Early Hints', 200: 'OK',
    201: 'Created', 202: 'Accepted', 203: 'Non-Authoritative Information', 204: 'No Content',
    205: 'Reset Content', 206: 'Partial Content', 207: 'Multi-Status', 208: 'Already Reported', 226: 'IM Used',
    300: 'Multiple Choices', 301: 'Moved Permanently', 302: 'Found', 303: 'See Other', 304: 'Not Modified',
    305: 'Use Proxy', 307: 'Temporary Redirect', 308: 'Permanent Redirect', 400: 'Bad Request',
    401: 'Unauthorized', 402: 'Payment Required', 403: 'Forbidden', 404: 'Not Found',
    405: 'Method Not Allowed', 406: 'Not Acceptable', 407: 'Proxy Authentication Required',
    408: 'Request Timeout', 409: 'Conflict', 410: 'Gone', 411: 'Length Required', 412: 'Precondition Failed',
    413: 'Request Entity Too Large', 414: 'Request URI Too Long', 415: 'Unsupported Media Type',
    416: 'Requested Range Not Satisfiable', 417: 'Expectation Failed', 418: "I'm a teapot",
    421: 'Misdirected Request', 422: 'Unprocessable Entity', 423: 'Locked', 424: 'Failed Dependency',
    425: 'Too Early', 426: 'Upgrade Required', 428: 'Precondition Required', 429: 'Too Many Requests',
    431: 'Request Header Fields Too Large', 451: 'Unavailable For Legal Reasons', 500: 'Internal Server Error',
    501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
    505: 'HTTP Version Not Supported', 506: 'Variant Also Negotiates', 507: 'Insufficient Storage',
    508: 'Loop Detected', 510: 'Not Extended', 511: 'Network Authentication Required',
}


def go_reason(status: int) -> str:
    return GO_STATUS_TEXT.get(status, f"status code {status}")


@dataclass(frozen=True, init=False)
class ClientResponse:
    """What frps writes back for a backend response, and how it frames the body.

    ``framing``: "length" (copy Content-Length bytes), "chunked" (re-encode
    the backend's body, whatever its framing, with
    :class:`frptx.vhost.http1.ChunkedWriter`, forwarding trailers), "close"
    (raw bytes, then close), "none" (no body) or "tunnel" (101: raw both
    ways).  ``close_after``: close the client connection once it is sent.
    """

    head: ResponseHead
    framing: str
    close_after: bool

    def __init__(self, head: ResponseHead, framing: str, close_after: bool) -> None:
        d = self.__dict__
        d["head"] = head
        d["framing"] = framing
        d["close_after"] = close_after


def client_response(head: ResponseHead, request: RequestHead, backend_framing: str, *, date: str,
                    set_headers: Mapping[str, str] | None = None) -> ClientResponse:
    """The response frps sends the client for ``head`` (from :class:`ResponseParser`).

    ``backend_framing`` is :attr:`frptx.vhost.http1.ResponseParser.body_framing`.
    Go's server rules, as observed on frps 0.65.0: the status line has the
    client's version and Go's reason phrase; a 1xx goes out untouched; a 101
    keeps all its fields and gets only ``responseHeaders.set``; otherwise
    hop-by-hop fields go, a Date is added if missing, a body of known length
    keeps it, any other body is chunked for an HTTP/1.1 client and sent
    until close to an HTTP/1.0 one; ``Connection: close`` is echoed to a
    client that asked to close, ``Connection: keep-alive`` to an HTTP/1.0
    client that asked to keep a connection frps can keep.
    """
    # what of the request matters: its version and what it says of its connection
    asks = (keep_alive(request), reply_connection(request)) if "connection" in request.lower_names else None
    key = (request.version == "HTTP/1.0", asks, backend_framing, date, set_headers or None)
    memo = head.__dict__.get("_answers")
    if memo is not None:
        try:
            hit = memo.get(key)
        except TypeError:  # (set_headers not hashable)
            hit = None
        if hit is not None:
            return hit  # type: ignore[no-any-return]
    answer = _client_response(head, request, backend_framing, date=date, set_headers=set_headers)
    try:
        _remember(head, "_answers", key, answer)
    except TypeError:
        pass
    return answer


def _client_response(head: ResponseHead, request: RequestHead, backend_framing: str, *, date: str,
                     set_headers: Mapping[str, str] | None) -> ClientResponse:
    version = "HTTP/1.0" if request.version == "HTTP/1.0" else "HTTP/1.1"
    if not set_headers and backend_framing in ("length", "none") and head.status >= 200 and is_checked(head):
        # The usual answer, in one pass: a checked head, nothing configured, a body
        # of known length.
        lower = head.lower_names
        drop = _HOP_DROP
        if "connection" in lower:
            drop = drop | (_connection_tokens(head) - frozenset(_FRAMING))
        if drop.isdisjoint(lower):
            headers = head.headers
            has_date = "date" in lower
        else:
            kept, names = _without(head, drop)
            headers = tuple(kept)
            has_date = "date" in names
        if not has_date:
            headers += (("Date", date),)
        if "connection" in request.lower_names:
            close_after = not keep_alive(request)
            connection = reply_connection(request)
            if connection == "keep-alive" and close_after:
                connection = None
            if connection:
                headers += (("Connection", connection),)
        else:
            # (an HTTP/1.1 client keeps the connection, an HTTP/1.0 one does not)
            close_after = version == "HTTP/1.0"
        final = ResponseHead(head.status, go_reason(head.status), version, headers)
        if has_date or safe_value(date):
            checked(final)
        return ClientResponse(final, "none" if backend_framing == "none" else "length", close_after)
    if head.status < 200 and head.status != 101:
        interim = ResponseHead(head.status, go_reason(head.status), version, head.headers)
        return ClientResponse(checked(interim) if is_checked(head) else interim, "none", False)
    if head.status == 101:
        out = rewrite_response(head, set_headers=set_headers)
        switch = ResponseHead(101, go_reason(101), version, out.headers)
        return ClientResponse(checked(switch) if is_checked(out) else switch, "tunnel", False)
    out = rewrite_response(head, set_headers=set_headers)
    headers = out.headers
    if "date" not in out.lower_names:
        headers += (("Date", date),)
    if backend_framing in ("none", "tunnel"):
        framing = "none"
    elif backend_framing == "length":
        framing = "length"
    elif version == "HTTP/1.1":
        framing = "chunked"
        headers = set_header(remove_headers(headers, ["Content-Length"]), "Transfer-Encoding", "chunked")
    else:
        framing = "close"
        headers = remove_headers(headers, ["Content-Length", "Transfer-Encoding"])
    close_after = not keep_alive(request) or framing == "close"
    connection = reply_connection(request)
    if connection == "keep-alive" and close_after:
        connection = None
    if connection:
        headers += (("Connection", connection),)
    final = ResponseHead(head.status, go_reason(head.status), version, headers)
    # (what was added to a checked head: constants and the Date, checked here)
    if is_checked(out) and safe_value(date):
        checked(final)
    return ClientResponse(final, framing, close_after)


# ---------------------------------------------------------------- canned replies

def reply_connection(request: RequestHead | None) -> str | None:
    """The Connection field Go's server puts on its reply to ``request``.

    ``close`` when an HTTP/1.1 client asked to close, ``keep-alive`` when an
    HTTP/1.0 client asked to keep the connection, else none.  Whether frps
    then closes is :func:`frptx.vhost.http1.keep_alive` of the request.
    """
    if request is None or "connection" not in request.lower_names:
        return None
    if request.version == "HTTP/1.0":
        return "keep-alive" if head_has_token(request, "connection", "keep-alive") else None
    return "close" if head_has_token(request, "connection", "close") else None


def _go_reply(date: str, request: RequestHead | None, status: str, handler_fields: Iterable[tuple[str, str]],
              body: bytes, *, sniffed_type: str | None = None, length: bool = True) -> bytes:
    """A reply laid out as Go's server writes it.

    The status line carries the request's version (HTTP/1.0 gets HTTP/1.0);
    then the handler's fields (sorted, as Go writes its header map), then the
    fields Go adds itself: Date, Content-Length, a sniffed Content-Type, and
    Connection.
    """
    version = "HTTP/1.0" if request is not None and request.version == "HTTP/1.0" else "HTTP/1.1"
    lines = [f"{version} {status}"] + [f"{k}: {v}" for k, v in handler_fields]
    lines.append(f"Date: {date}")
    if length:
        lines.append(f"Content-Length: {len(body)}")
    if sniffed_type:
        lines.append(f"Content-Type: {sniffed_type}")
    connection = reply_connection(request)
    if connection:
        lines.append(f"Connection: {connection}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def not_found_response(date: str, request: RequestHead | None = None, *, page: bytes = NOT_FOUND_PAGE) -> bytes:
    """frps's HTTP-vhost 404 (no route, or backend unreachable or broken).

    ``page`` is frps's ``custom404Page`` contents if configured; Go sniffs its
    Content-Type.  ``request`` (if parsed) sets the version and Connection.
    """
    return _go_reply(date, request, "404 Not Found", (), page, sniffed_type=sniff_content_type(page))


def unauthorized_response(date: str, request: RequestHead | None = None) -> bytes:
    """frps's answer when httpUser/httpPassword do not match (Go's ``http.Error``)."""
    fields = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Www-Authenticate", BASIC_REALM),
        ("X-Content-Type-Options", "nosniff"),
    ]
    return _go_reply(date, request, "401 Unauthorized", fields, b"Unauthorized\n")


def gateway_timeout_response(date: str, request: RequestHead | None = None) -> bytes:
    """frps's answer when the backend's response head does not come in time."""
    return _go_reply(date, request, "504 Gateway Timeout", (), b"")


def options_star_response(date: str, request: RequestHead | None = None) -> bytes:
    """Go's server answers ``OPTIONS *`` itself (frps never routes it): 200, empty."""
    return (_go_reply(date, request, "200 OK", [("Content-Length", "0")], b"", length=False))


#: The HTTP/2 prior-knowledge preface.  frps's vhost (Go's h2c handler)
#: answers it with HTTP/2; :mod:`frptx.vhost.http1` refuses it with 505, so
#: the listener must check for it first if h2c is to be served.
H2C_PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def is_options_star(head: RequestHead) -> bool:
    return head.method == "OPTIONS" and head.target == "*"


_HTML_SIGS: Final = tuple(s.encode() for s in (
    "<!doctype html", "<html", "<head", "<script", "<iframe", "<h1", "<div", "<font", "<table",
    "<a", "<style", "<title", "<b", "<body", "<br", "<p", "<!--"))
_BINARY: Final = frozenset(list(range(0x00, 0x09)) + [0x0B] + list(range(0x0E, 0x1B)) + list(range(0x1C, 0x20)))


def sniff_content_type(page: bytes) -> str:
    """Go's ``DetectContentType`` for the pages frps may serve (HTML, XML, text, else binary).

    Only the signatures a 404 page can plausibly start with are checked; other
    formats (images, PDF...) fall back to ``application/octet-stream``.
    """
    data = page[:512]
    lead = data.lstrip(b"\t\n\x0c\r ")
    low = lead.lower()
    for sig in _HTML_SIGS:
        if low.startswith(sig) and low[len(sig):len(sig) + 1] in (b" ", b">"):
            return "text/html; charset=utf-8"
    if lead.startswith(b"<?xml"):
        return "text/xml; charset=utf-8"
    if data.startswith((b"\xfe\xff", b"\xff\xfe", b"\xef\xbb\xbf")):
        return "text/plain; charset=utf-16be" if data.startswith(b"\xfe\xff") else (
            "text/plain; charset=utf-16le" if data.startswith(b"\xff\xfe") else "text/plain; charset=utf-8")
    if any(c in _BINARY for c in data):
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


def tcpmux_not_found_response(page: bytes = NOT_FOUND_PAGE,
                              server: str = "frp/" + FRP_PROTOCOL_VERSION) -> bytes:
    """frp's ``NotFoundResponse`` written raw (tcpmux with no route; an HTTP CONNECT with no route).

    Go frps 0.65.0 sends ``Server: frp/0.65.0``; ``server`` lets the caller
    choose what frptx announces.
    """
    head = (f"HTTP/1.1 404 Not Found\r\nContent-Length: {len(page)}\r\n"
            f"Content-Type: text/html\r\nServer: {server}\r\n\r\n")
    return head.encode("latin-1") + page
