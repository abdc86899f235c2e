# -*- test-case-name: frptx.test.test_web_frps_api -*-
"""
The HTTP plumbing frps' dashboard and frpc's admin API share: a small router
with frp's status codes and bodies, HTTP basic auth, Go-compatible JSON.

frp answers with Go's C{net/http} defaults (C{text/plain} bodies, "404 page not
found", an empty 405), and tools written against it may look at those; we
reproduce them rather than Twisted's HTML error pages.
"""
from __future__ import annotations

import binascii
import hmac
import json
import re
from base64 import b64decode
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.web import resource, server

from frptx.logs import logger

log = logger(__name__)

TEXT = b"text/plain; charset=utf-8"
JSON = b"application/json"

#: a route's method that matches every method (frp's C{/healthz} is registered without one)
ANY = b"*"


def go_json(value: Any) -> bytes:
    """
    Encode like Go's C{json.Marshal}: compact, UTF-8, and HTML-safe (C{<}, C{>}, C{&}
    and the JavaScript line separators escaped), so that bodies match frp's byte for byte.
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text.encode("utf-8")


def text(status: int, body: str) -> tuple[int, bytes, bytes | None]:
    """A plain-text answer the way Go's handlers write one (no Content-Type when empty)."""
    return status, body.encode("utf-8"), (TEXT if body else None)


def json_text(value: Any) -> tuple[int, bytes, bytes | None]:
    """
    A 200 JSON answer as frp 0.65's handlers write it: marshalled then written without a
    Content-Type, so Go sniffs it as text/plain.
    """
    return 200, go_json(value), TEXT


def json_api(value: Any, status: int = 200) -> tuple[int, bytes, bytes | None]:
    """A JSON answer as newer frp's C{MakeHTTPHandlerFunc} writes one: application/json, newline-terminated."""
    return status, go_json(value) + b"\n", JSON


def json_error(status: int, msg: str) -> tuple[int, bytes, bytes | None]:
    """Newer frp's error body: C{{"Code": status, "Msg": msg}}."""
    return json_api({"Code": status, "Msg": msg}, status)


@dataclass(frozen=True)
class Route:
    """
    C{method} (or L{ANY}) and a path pattern whose C{{name}} parts match one decoded
    path segment.  The handler returns (status, body, content type or None for none,
    as Go sends an empty body) or C{NOT_DONE_YET} when it finishes the request itself.
    """

    method: bytes
    pattern: str
    handler: Callable[..., Any]

    def match(self, segments: Sequence[str]) -> dict[str, str] | None:
        parts = self.pattern.strip("/").split("/")
        if len(parts) != len(segments):
            return None
        params: dict[str, str] = {}
        for part, seg in zip(parts, segments, strict=True):
            m = re.fullmatch(r"\{(\w+)\}", part)
            if m:
                if not seg:
                    return None
                params[m.group(1)] = seg
            elif part != seg:
                return None
        return params


def path_segments(request: server.Request) -> list[str]:
    """The request's path split on "/", each segment percent-decoded (gorilla/mux matches decoded paths)."""
    raw = request.path.decode("latin-1")
    return [unquote(s, encoding="utf-8", errors="replace") for s in raw.strip("/").split("/")] if raw.strip("/") else []


def write(request: server.Request, answer: tuple[int, bytes, bytes | None]) -> bytes:
    """Set status and headers of C{answer} on C{request} and return the body for C{render}."""
    status, body, ctype = answer
    request.setResponseCode(status)
    if ctype is None:
        request.defaultContentType = None
    else:
        request.setHeader(b"content-type", ctype)
    return body


class RouterResource(resource.Resource):
    """
    A leaf that dispatches on method and path like frp's gorilla/mux router:
    404 "404 page not found" for an unknown path, an empty 405 for a known path
    with another method.  Handlers get the request and the path parameters.
    """

    isLeaf = True

    def __init__(self, routes: Sequence[Route]) -> None:
        super().__init__()
        self._routes = list(routes)

    def render(self, request: server.Request) -> Any:
        segments = path_segments(request)
        path_known = False
        for route in self._routes:
            params = route.match(segments)
            if params is None:
                continue
            path_known = True
            if route.method not in (ANY, request.method) and not (route.method == b"GET"
                                                                  and request.method == b"HEAD"):
                continue
            try:
                answer = route.handler(request, **params)
            except Exception:
                log.failure("web API handler for {path} failed", path=request.path)
                return write(request, text(500, "internal error"))
            if answer is server.NOT_DONE_YET:
                return answer
            return write(request, answer)
        if path_known:
            return write(request, (405, b"", None))
        return write(request, text(404, "404 page not found\n"))


class BasicAuthResource(resource.Resource):
    """
    Wraps the whole site but C{/healthz} in frp's HTTP basic auth.

    Both user and password are compared in constant time (no early exit on the
    user), and a failure is answered after C{fail_delay} seconds, as frp does, to
    slow down password guessing without holding the reactor.
    """

    def __init__(self, wrapped: resource.Resource, user: str, password: str,
                 clock: IReactorTime, fail_delay: float = 0.2,
                 open_paths: Sequence[bytes] = (b"healthz",)) -> None:
        super().__init__()
        self._wrapped = wrapped
        self._user = user.encode("utf-8")
        self._password = password.encode("utf-8")
        self._clock = clock
        self._fail_delay = fail_delay
        self._open = set(open_paths)

    def enabled(self) -> bool:
        return bool(self._user or self._password)

    def set_credentials(self, user: str, password: str) -> None:
        """New credentials from now on (a reloaded config); empty ones switch auth off."""
        self._user = user.encode("utf-8")
        self._password = password.encode("utf-8")

    def authorized(self, request: server.Request) -> bool:
        if not self.enabled():
            return True
        header = request.getHeader(b"authorization") or b""
        scheme, _, encoded = header.strip().partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            user, sep, password = b64decode(encoded.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        if not sep:
            return False
        ok_user = hmac.compare_digest(user, self._user)
        ok_password = hmac.compare_digest(password, self._password)
        return ok_user and ok_password

    def getChildWithDefault(self, path: bytes, request: server.Request) -> resource.Resource:
        if path in self._open and not request.postpath or self.authorized(request):
            assert request.postpath is not None and request.prepath is not None
            request.postpath.insert(0, request.prepath.pop())
            return self._wrapped
        return _Unauthorized(self._clock, self._fail_delay)

    def render(self, request: server.Request) -> Any:
        # only reached for an empty path ("" child is handled above); keep it explicit
        return resource.getChildForRequest(self._wrapped, request).render(request)


class _Unauthorized(resource.Resource):
    """frp's 401: C{WWW-Authenticate: Basic realm="Restricted"}, body "Unauthorized", after a delay."""

    isLeaf = True

    def __init__(self, clock: IReactorTime, delay: float) -> None:
        super().__init__()
        self._clock = clock
        self._delay = delay

    def render(self, request: server.Request) -> Any:
        request.setResponseCode(401)
        request.setHeader(b"www-authenticate", b'Basic realm="Restricted"')
        request.setHeader(b"content-type", TEXT)
        request.setHeader(b"x-content-type-options", b"nosniff")
        if self._delay <= 0:
            return b"Unauthorized\n"
        call: IDelayedCall = self._clock.callLater(self._delay, self._finish, request)
        request.notifyFinish().addErrback(self._gone, call)
        return server.NOT_DONE_YET

    @staticmethod
    def _gone(_: object, call: IDelayedCall) -> None:
        """The client went away before its 401: nothing left to answer."""
        if call.active():
            call.cancel()

    @staticmethod
    def _finish(request: server.Request) -> None:
        request.write(b"Unauthorized\n")
        request.finish()


def parse_go_bool(value: str) -> bool | None:
    """Go's C{strconv.ParseBool}: the accepted spellings, None for anything else."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def query_arg(request: server.Request, name: str) -> str:
    """The first value of query parameter C{name}, "" when absent (Go's C{URL.Query().Get})."""
    args: dict[bytes, list[bytes]] = request.args or {}
    values = args.get(name.encode(), [])
    return values[0].decode("utf-8", "replace") if values else ""
