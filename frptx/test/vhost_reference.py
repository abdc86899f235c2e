"""The HTTP vhost's header rules as first written: one plain pass per rule over the fields.

The modules in use (:mod:`frptx.vhost.http1`, :mod:`frptx.vhost.rewrite`) look
fields up by their lower-case names, drop all the hop-by-hop and forwarding
fields in one pass, and check a serialised head with one regular expression;
these are the straightforward versions they replaced (checked against Go frps
0.65.0 by the capture tests), kept as the oracle the property tests compare
them with.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from frptx.vhost.http1 import (
    _BAD_TARGET_RE,
    _TOKEN_RE,
    RequestHead,
    ResponseHead,
    _check_field,
    get_header,
    has_token,
    header_values,
    remove_headers,
    set_header,
)
from frptx.vhost.rewrite import (
    _FORWARDING,
    _FRAMING,
    _NOT_SETTABLE,
    HOP_BY_HOP,
    ClientResponse,
    RewriteError,
    RouteInfo,
    _apply_set,
    _split_target,
    go_reason,
    parse_basic_auth,
)
from frptx.vhost.routing import canonical_host


def fields(headers: Iterable[tuple[str, str]]) -> str:
    out = []
    for name, value in headers:
        _check_field(name, value)
        out.append(f"{name}: {value}\r\n")
    return "".join(out)


def serialize_request_head(head: RequestHead) -> bytes:
    if not _TOKEN_RE.match(head.method.encode("latin-1", "replace")) or \
            _BAD_TARGET_RE.search(head.target.encode("latin-1", "replace")) or not head.target:
        raise ValueError(f"invalid request line {head.method!r} {head.target!r}")
    return f"{head.method} {head.target} {head.version}\r\n{fields(head.headers)}\r\n".encode("latin-1")


def serialize_response_head(head: ResponseHead) -> bytes:
    return f"{head.version} {head.status} {head.reason}\r\n{fields(head.headers)}\r\n".encode("latin-1")


def keep_alive(head: RequestHead | ResponseHead) -> bool:
    if has_token(head.headers, "Connection", "close"):
        return False
    if head.version == "HTTP/1.0":
        return has_token(head.headers, "Connection", "keep-alive")
    return True


def upgrade_type(headers: tuple[tuple[str, str], ...]) -> str:
    if not has_token(headers, "Connection", "upgrade"):
        return ""
    return get_header(headers, "Upgrade") or ""


def remove_hop_by_hop(headers: tuple[tuple[str, str], ...], keep: Iterable[str] = ()) -> tuple[tuple[str, str], ...]:
    named = []
    for value in header_values(headers, "Connection"):
        for part in value.split(","):
            part = part.strip(" \t")
            if part:
                named.append(part)
    kept = frozenset(keep)
    drop = [n for n in named + list(HOP_BY_HOP) if n.lower() not in kept]
    return remove_headers(headers, drop)


def rewrite_request(head: RequestHead, *, client_ip: str | None, tls: bool = False, host_rewrite: str = "",
                    set_headers: Mapping[str, str] | None = None) -> RequestHead:
    original = head.headers
    up = upgrade_type(original)
    if up and not all(0x20 <= ord(c) < 0x7F for c in up):
        raise RewriteError(f"client tried to switch to invalid protocol {up!r}")
    headers = remove_hop_by_hop(original, _FRAMING)
    if has_token(original, "Te", "trailers"):
        headers = set_header(headers, "Te", "trailers")
    if up:
        headers = set_header(headers, "Connection", "Upgrade")
        headers = set_header(headers, "Upgrade", up)
    prior = header_values(original, "X-Forwarded-For")
    headers = remove_headers(headers, _FORWARDING)
    if client_ip is not None:
        headers += (("X-Forwarded-For", ", ".join(prior + [client_ip])),)
    url_host, _ = _split_target(head.method, head.target)
    raw_host = url_host or (get_header(original, "Host") or "")
    headers += (("X-Forwarded-Host", raw_host), ("X-Forwarded-Proto", "https" if tls else "http"))
    if host_rewrite:
        headers = set_header(headers, "Host", host_rewrite)
    headers = _apply_set(headers, set_headers or {}, _NOT_SETTABLE)
    return RequestHead(head.method, head.target, "HTTP/1.1", headers)


def rewrite_response(head: ResponseHead, *, set_headers: Mapping[str, str] | None = None) -> ResponseHead:
    headers = head.headers
    if head.status != 101:
        headers = remove_hop_by_hop(headers, _FRAMING)
    headers = _apply_set(headers, set_headers or {}, _NOT_SETTABLE)
    return ResponseHead(head.status, head.reason, head.version, headers)


def reply_connection(request: RequestHead | None) -> str | None:
    if request is None:
        return None
    if request.version == "HTTP/1.0":
        return "keep-alive" if has_token(request.headers, "Connection", "keep-alive") else None
    return "close" if has_token(request.headers, "Connection", "close") else None


def client_response(head: ResponseHead, request: RequestHead, backend_framing: str, *, date: str,
                    set_headers: Mapping[str, str] | None = None) -> ClientResponse:
    version = "HTTP/1.0" if request.version == "HTTP/1.0" else "HTTP/1.1"
    if head.status < 200 and head.status != 101:
        return ClientResponse(ResponseHead(head.status, go_reason(head.status), version, head.headers), "none", False)
    if head.status == 101:
        out = rewrite_response(head, set_headers=set_headers)
        return ClientResponse(ResponseHead(101, go_reason(101), version, out.headers), "tunnel", False)
    out = rewrite_response(head, set_headers=set_headers)
    headers = out.headers
    if get_header(headers, "Date") is None:
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
    return ClientResponse(ResponseHead(head.status, go_reason(head.status), version, headers), framing, close_after)


def request_route_info(head: RequestHead) -> RouteInfo:
    url_host, path = _split_target(head.method, head.target)
    raw_host = url_host or (get_header(head.headers, "Host") or "")
    auth = parse_basic_auth(get_header(head.headers, "Authorization"))
    auth_user, auth_password = auth if auth else ("", "")
    route_user = ""
    if url_host:
        proxy_auth = parse_basic_auth(get_header(head.headers, "Proxy-Authorization"))
        if proxy_auth:
            route_user = proxy_auth[0]
    if route_user == "":
        route_user = auth_user
    return RouteInfo(canonical_host(raw_host), raw_host, path, url_host, auth_user, auth_password, route_user)
