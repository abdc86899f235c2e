# -*- test-case-name: frptx.test.test_vhost_http1 -*-
"""A small sans-IO HTTP/1.1 parser and serialiser for frps's HTTP vhost.

frps's ``vhostHTTPPort`` is a reverse proxy: it must read each request head
(to route on Host and path, check basic auth, rewrite headers), then relay the
body to the proxy's work connection and the response back, without ever
holding a whole body in memory.  This module is that byte-level part, in the
style of h11 but only as much as a proxy needs: feed bytes, get events.

Events: :class:`RequestHead` / :class:`ResponseHead` (header names keep their
case and order), :class:`Data` (body bytes as they arrive, never
accumulated), :class:`EndOfMessage` (with chunked trailers), and
:class:`ProtocolSwitch` (after it, every byte is opaque tunnel data, given
back as :class:`Data`).

Framing follows RFC 9112 section 6 as Go's ``net/http`` applies it (frps is Go):

* ``Transfer-Encoding`` must be exactly ``chunked`` (else 501, Go's
  "unsupported transfer encoding"); it wins over ``Content-Length``, which is
  then removed from the emitted head (Go removes it before forwarding).  An
  HTTP/1.0 message's ``Transfer-Encoding`` is ignored and removed, as in Go.
* repeated ``Content-Length`` values must agree (then one is kept); the value
  is digits only, below 2**63.
* a request with neither has no body; a response with neither runs to EOF
  (call :meth:`feed_eof`), except after HEAD, for 1xx, 204 and 304.
* 1xx responses other than 101 are emitted and followed by the real one.
  ``101`` and a 2xx answer to ``CONNECT`` switch the response stream to a
  tunnel.  The request side cannot know whether an upgrade was accepted, so
  after each message the parser waits: call :meth:`RequestParser.start_next`
  to read the next request or :meth:`RequestParser.switch_protocols` once the
  backend said 101.

Lexical rules are Go's, checked against a real frps 0.65.0: bare LF line
ends are accepted; obs-fold continuation lines are joined with one space;
no blank line may precede a request line, except that up to four CR/LF bytes
after a POST are forgiven; a header name with a space is refused with Go's
"invalid header name"; ``HTTP/1.x`` for any single-digit x is HTTP/1.1, other
majors get 505.

Speed (frps parses every request and answer it relays): a head of CRLF lines
with valid fields is checked by one regular expression and split by another;
anything else takes the line-by-line parse, which decides (both give the same
events and errors: property-tested).  A read holding a whole head, or the
rest of a Content-Length body, is parsed from the read itself.  Heads repeat
(a client's requests, a backend's answers within the second of their Date):
the parser keeps, per head bytes, what it made of them and hands out the very
same immutable head object again, so that work derived from a head
(:mod:`frptx.vhost.rewrite`) can be kept with it.  Heads the parser made are
*checked* (valid in every part) and serialise without a second check.

Limits are strict and every malformed input raises :class:`BadRequest`
(requests) or :class:`BadResponse` (responses), both
:class:`HTTPProtocolError` carrying the status frps should answer with (400,
414, 431, 501, 505; 502 for a bad backend).  :meth:`HTTPProtocolError.response_bytes`
reproduces the reply Go's server writes for such errors.  No other exception
escapes :meth:`feed` (fuzzed).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

__all__ = [
    "CONTINUE_RESPONSE",
    "BadRequest",
    "BadResponse",
    "ChunkedWriter",
    "Data",
    "EndOfMessage",
    "Event",
    "HTTPProtocolError",
    "Headers",
    "Limits",
    "MAX_INTERIM_RESPONSES",
    "RESPONSE_LIMITS",
    "ProtocolSwitch",
    "RequestHead",
    "RequestParser",
    "ResponseHead",
    "ResponseParser",
    "expects_continue",
    "field_value",
    "field_values",
    "get_header",
    "has_token",
    "head_has_token",
    "header_values",
    "keep_alive",
    "remove_headers",
    "serialize_request_head",
    "serialize_response_head",
    "set_header",
    "checked",
    "is_checked",
    "safe_value",
    "with_lower_names",
]

Headers = tuple[tuple[str, str], ...]

#: The interim answer to ``Expect: 100-continue``.
CONTINUE_RESPONSE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"

_REASONS: Final = {
    400: "Bad Request",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    502: "Bad Gateway",
    505: "HTTP Version Not Supported",
}


class HTTPProtocolError(Exception):
    """Malformed or over-limit HTTP; ``status`` is the answer to give (if any)."""

    def __init__(self, message: str, status: int = 400, detail: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        #: Go's public text appended to the status line ("missing required Host header"), if any.
        self.detail = detail

    def response_bytes(self) -> bytes:
        """The reply Go's ``net/http`` server sends for this error, then closes."""
        reason = _REASONS.get(self.status, "Error")
        public = f"{self.status} {reason}"
        if self.detail:
            public += ": " + self.detail
        body = public
        if self.status == 501:
            body = "Unsupported transfer encoding"
        head = f"HTTP/1.1 {public}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
        return (head + body).encode("latin-1")


class BadRequest(HTTPProtocolError):
    """The client sent something frps must refuse (400, 414, 431, 501, 505)."""

    def __init__(self, message: str, status: int = 400, detail: str | None = None) -> None:
        super().__init__(message, status, detail)


class BadResponse(HTTPProtocolError):
    """The backend's response is unusable; the client gets a gateway error."""

    def __init__(self, message: str, status: int = 502, detail: str | None = None) -> None:
        super().__init__(message, 502)


@dataclass(frozen=True)
class Limits:
    """Parser bounds.

    ``max_head_bytes`` defaults to Go's ``DefaultMaxHeaderBytes`` plus the
    4096 bytes of slack its server allows, so whatever frps 0.65.0 accepts is
    accepted.  Go has no separate line limit, so ``max_line_bytes`` (start
    line: 414; field line: 431) defaults to the same size; set it lower to be
    stricter.  Go has no field-count limit either; 500 fields is ours (a head
    that needs more is almost certainly an attack).
    """

    max_head_bytes: int = (1 << 20) + 4096
    max_line_bytes: int = (1 << 20) + 4096
    max_headers: int = 500
    max_chunk_line_bytes: int = 4096


#: Go's client limits for a backend's response head (``MaxResponseHeaderBytes``).
RESPONSE_LIMITS: Final = Limits(max_head_bytes=10 << 20, max_line_bytes=10 << 20)
_REQUEST_LIMITS: Final = Limits()

#: Go's transport gives up after this many 1xx responses to one request.
MAX_INTERIM_RESPONSES: Final = 5


class _LowerNames:
    """``head.lower_names``: the field names in lower case, in order, computed on first use
    and then kept in the instance (a non-data descriptor: no lock, unlike
    ``functools.cached_property`` on Python 3.11, which cost more than the lookups it saves).
    The parser, which lowers the names anyway, stores them at once.
    """

    def __get__(self, head: Any, owner: Any = None) -> tuple[str, ...]:
        names = tuple([k.lower() for k, _ in head.headers])
        head.__dict__["lower_names"] = names
        return names


# The heads and events below are frozen dataclasses made several times per
# request; their __init__ fills the instance dict directly (the generated one
# calls object.__setattr__ per field, twice as slow).  Equality, hashing, repr
# and immutability are the dataclass's.

@dataclass(frozen=True, init=False)
class RequestHead:
    method: str
    target: str
    version: str  # "HTTP/1.0" or "HTTP/1.1"
    headers: Headers = ()

    def __init__(self, method: str, target: str, version: str, headers: Headers = ()) -> None:
        d = self.__dict__
        d["method"] = method
        d["target"] = target
        d["version"] = version
        d["headers"] = headers

    #: the field names in lower case, in order (computed once per head: a name
    #: that is not there is ruled out without a pass over the fields; not a dataclass field)
    lower_names = _LowerNames()


@dataclass(frozen=True, init=False)
class ResponseHead:
    status: int
    reason: str
    version: str
    headers: Headers = ()

    def __init__(self, status: int, reason: str, version: str, headers: Headers = ()) -> None:
        d = self.__dict__
        d["status"] = status
        d["reason"] = reason
        d["version"] = version
        d["headers"] = headers

    #: the field names in lower case, in order (see :attr:`RequestHead.lower_names`)
    lower_names = _LowerNames()


@dataclass(frozen=True, init=False)
class Data:
    data: bytes

    def __init__(self, data: bytes) -> None:
        self.__dict__["data"] = data


@dataclass(frozen=True, init=False)
class EndOfMessage:
    trailers: Headers = ()

    def __init__(self, trailers: Headers = ()) -> None:
        self.__dict__["trailers"] = trailers


#: the end of a message without trailers (events are immutable: one will do)
_END: Final = EndOfMessage()


@dataclass(frozen=True)
class ProtocolSwitch:
    """From here on the stream is a tunnel; later bytes come as :class:`Data`."""


Event = RequestHead | ResponseHead | Data | EndOfMessage | ProtocolSwitch
_H = TypeVar("_H", RequestHead, ResponseHead)


# ---------------------------------------------------------------- checked heads

def checked(head: _H) -> _H:
    """Mark ``head`` as valid in every part, so serialising it needs no check.

    True of what the parsers emit (they refuse anything the serialisers would),
    and of heads made from such a head's fields with values known to be safe
    (constants, :func:`safe_value`).  Never for configured or decoded values
    not checked.
    """
    head.__dict__["_checked"] = True
    return head


def with_lower_names(head: _H, lower: Sequence[str]) -> _H:
    """Give ``head`` its :attr:`~RequestHead.lower_names`, known already (``lower``: its field names
    in lower case, in order) -- so a head built from another one's fields needs no pass of its own."""
    head.__dict__["lower_names"] = tuple(lower)
    return head


def is_checked(head: RequestHead | ResponseHead) -> bool:
    return head.__dict__.get("_checked", False)  # type: ignore[no-any-return]


_SAFE_VALUE_RE: Final = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")


def safe_value(value: str) -> bool:
    """Whether ``value`` may be a field value as it is (no CR, LF or other control)."""
    return _SAFE_VALUE_RE.fullmatch(value) is not None


# ---------------------------------------------------------------- headers

def header_values(headers: Iterable[tuple[str, str]], name: str) -> list[str]:
    """All values of ``name`` (case-insensitive), in order."""
    lname = name.lower()
    return [v for k, v in headers if k.lower() == lname]


def get_header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of ``name``, like Go's ``Header.Get`` (None if absent)."""
    lname = name.lower()
    for k, v in headers:
        if k.lower() == lname:
            return v
    return None


def has_token(headers: Iterable[tuple[str, str]], name: str, token: str) -> bool:
    """Whether a comma-separated header (e.g. Connection) lists ``token``, case-insensitively."""
    ltoken = token.lower()
    for value in header_values(headers, name):
        for part in value.split(","):
            if part.strip(" \t").lower() == ltoken:
                return True
    return False


def remove_headers(headers: Iterable[tuple[str, str]], names: Iterable[str]) -> Headers:
    """``headers`` without any field named in ``names`` (case-insensitive)."""
    drop = {n.lower() for n in names}
    return tuple((k, v) for k, v in headers if k.lower() not in drop)


def set_header(headers: Iterable[tuple[str, str]], name: str, value: str) -> Headers:
    """Go's ``Header.Set``: one field ``name: value``, where the first one was (else last)."""
    lname = name.lower()
    out: list[tuple[str, str]] = []
    placed = False
    for k, v in headers:
        if k.lower() == lname:
            if not placed:
                out.append((name, value))
                placed = True
        else:
            out.append((k, v))
    if not placed:
        out.append((name, value))
    return tuple(out)


def field_value(head: RequestHead | ResponseHead, lname: str) -> str | None:
    """:func:`get_header` on a head, for a lower-case name (a missing name costs one lookup in C)."""
    lower = head.lower_names
    if lname not in lower:
        return None
    return head.headers[lower.index(lname)][1]


def field_values(head: RequestHead | ResponseHead, lname: str) -> list[str]:
    """:func:`header_values` on a head, for a lower-case name."""
    lower = head.lower_names
    if lname not in lower:
        return []
    headers = head.headers
    return [headers[i][1] for i, name in enumerate(lower) if name == lname]


def head_has_token(head: RequestHead | ResponseHead, lname: str, token: str) -> bool:
    """:func:`has_token` on a head, for a lower-case name."""
    if lname not in head.lower_names:
        return False
    ltoken = token.lower()
    for value in field_values(head, lname):
        for part in value.split(","):
            if part.strip(" \t").lower() == ltoken:
                return True
    return False


def keep_alive(head: RequestHead | ResponseHead) -> bool:
    """Whether the connection may carry another message after this one (by its head)."""
    if "connection" not in head.lower_names:
        return head.version != "HTTP/1.0"
    if head_has_token(head, "connection", "close"):
        return False
    if head.version == "HTTP/1.0":
        return head_has_token(head, "connection", "keep-alive")
    return True


def expects_continue(head: RequestHead) -> bool:
    """An HTTP/1.1 request waiting for ``100 Continue`` before sending its body."""
    value = field_value(head, "expect")
    return head.version != "HTTP/1.0" and value is not None and value.strip(" \t").lower() == "100-continue"


# ---------------------------------------------------------------- lexical rules

_TOKEN_RE: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE_RE: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_BAD_TARGET_RE: Final = re.compile(rb"[\x00-\x20\x7f]")
_VERSION_RE: Final = re.compile(rb"HTTP/([0-9])\.([0-9])\Z")
_END_OF_HEAD_RE: Final = re.compile(rb"\n\r?\n")
_HOST_RE: Final = re.compile(rb"[0-9A-Za-z!$%&()*+,\-.:;=\[\]_~']*\Z")
_DIGITS_RE: Final = re.compile(rb"[0-9]+\Z")
_HEX_RE: Final = re.compile(rb"[0-9A-Fa-f]{1,16}\Z")
_MAX_CONTENT_LENGTH: Final = (1 << 63) - 1
#: the parse cache (see ``_Parser._match_head``): heads kept, and the largest head kept
_HEAD_CACHE_ENTRIES: Final = 256
_HEAD_CACHE_BYTES: Final = 4096

# The fast path for heads (see ``_Parser._fast_heads``): a head that is all CRLF
# lines, with no obs-fold, no bare CR and only valid fields, is checked by one
# regular expression over its latin-1 text and its fields taken by a second.
# What these accept, the line-by-line parser accepts with the very same result
# (tested by comparing both on generated heads); anything else goes to it.
_TOKEN_S: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_VALUE_CHAR_S: Final = r"[^\x00-\x08\x0a-\x1f\x7f]"
# (possessive: nothing in them ever needs to backtrack, and sre is faster told so)
_FIELDS_S: Final = rf"((?:{_TOKEN_S}+:{_VALUE_CHAR_S}*+\r\n)*+)\r\n"
_FAST_REQUEST_RE: Final = re.compile(rf"({_TOKEN_S}) ([^\x00-\x20\x7f]++) HTTP/1\.([0-9])\r\n{_FIELDS_S}")
_FAST_RESPONSE_RE: Final = re.compile(rf"HTTP/1\.([0-9]) ([1-9][0-9][0-9])(?: ({_VALUE_CHAR_S}*+))?\r\n{_FIELDS_S}")
#: the fields of a block the patterns above matched (so each line is a token, ":", a value, CRLF);
#: a value's trailing blanks are kept (rare: ``_split_fields`` strips them)
_FAST_FIELD_RE: Final = re.compile(r"([^:]+):[ \t]*([^\r]*)\r\n")


def _split_fields(block: str) -> list[tuple[str, str]]:
    """The (name, value) pairs of a fields block matched by the fast patterns."""
    fields = _FAST_FIELD_RE.findall(block)
    if " \r" in block or "\t\r" in block:
        return [(name, value.rstrip(" \t")) for name, value in fields]
    return fields


def _split_lines(head: bytes, err: type[HTTPProtocolError]) -> list[bytes]:
    lines = head.split(b"\n")
    out = []
    for line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]
        if b"\r" in line:
            raise err("bare CR in message head")
        out.append(line)
    return out


def _parse_fields(lines: Sequence[bytes], limits: Limits, err: type[HTTPProtocolError], big: int) -> Headers:
    if len(lines) > limits.max_headers:
        raise err(f"more than {limits.max_headers} header fields", big)
    fields: list[tuple[str, str]] = []
    for line in lines:
        if len(line) > limits.max_line_bytes:
            raise err("header line too long", big)
        if line[:1] in (b" ", b"\t"):
            # obs-fold: Go's textproto joins it to the previous field with one space
            if not fields:
                raise err("malformed MIME header initial line")
            more = line.strip(b" \t")
            if _BAD_VALUE_RE.search(more):
                raise err("invalid character in folded header")
            name_s, value_s = fields[-1]
            fields[-1] = (name_s, value_s + " " + more.decode("latin-1") if more else value_s)
            continue
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN_RE.match(name):
            if sep and name.strip(b" ") and _TOKEN_RE.match(name.replace(b" ", b"")):
                # Go lets a space into the key, then refuses it with this text
                raise err(f"invalid header name {name[:64]!r}", 400, "invalid header name")
            raise err(f"malformed header line {line[:64]!r}")
        value = value.strip(b" \t")
        if _BAD_VALUE_RE.search(value):
            raise err(f"invalid character in header {name[:64]!r}")
        fields.append((name.decode("ascii"), value.decode("latin-1")))
    return tuple(fields)


def _parse_version(raw: bytes, err: type[HTTPProtocolError]) -> str:
    m = _VERSION_RE.match(raw)
    if not m:
        raise err(f"malformed HTTP version {raw[:32]!r}")
    if m.group(1) != b"1":
        raise err(f"unsupported HTTP version {raw!r}", 505, "unsupported protocol version")
    return "HTTP/1.0" if m.group(2) == b"0" else "HTTP/1.1"


# ---------------------------------------------------------------- framing

_HEAD = "head"
_LENGTH = "length"
_CHUNK_SIZE = "chunk-size"
_CHUNK_DATA = "chunk-data"
_CHUNK_END = "chunk-end"
_TRAILERS = "trailers"
_UNTIL_EOF = "until-eof"
_DONE = "done"
_TUNNEL = "tunnel"
_CLOSED = "closed"


class _Matched:
    """What the fast path found in a head: its start line's three parts and its fields, and
    (filled in on first use, kept with the head in the parse cache) what the parser made of it."""

    __slots__ = ("start", "fields", "outcome")

    def __init__(self, start: tuple[str, str, str], fields: Headers) -> None:
        self.start = start
        self.fields = fields
        self.outcome: Any = None


class _Parser:
    """The shared state machine: head, then one body framing, then done."""

    _err: type[HTTPProtocolError] = HTTPProtocolError
    _big_status = 431
    #: try the one-regex parse of a head before the line-by-line one (tests turn it off to compare)
    _fast_heads = True

    # The state starts as these class attributes (a parser is made per
    # connection and per forwarded request: only what differs is set).
    _pos = 0
    _scan = 0  # where to resume looking for the end of the head
    _nl_scan = 0  # bytes before this (from _pos) hold no line end
    _skip_crlf = 0  # leading CR/LF bytes still to forgive
    _method = ""
    _state = _HEAD
    _left = 0
    _error: HTTPProtocolError | None = None
    _eof = False

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or _REQUEST_LIMITS
        self._buf = bytearray()

    # -- public

    @property
    def finished(self) -> bool:
        """The current message is complete (waiting for start_next or a switch)."""
        return self._state == _DONE

    @property
    def tunnelling(self) -> bool:
        return self._state == _TUNNEL

    @property
    def buffered(self) -> int:
        """Bytes received but not yet turned into events (for pausing the peer)."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> list[Event]:
        """Take bytes from the peer; return the events they complete."""
        if self._error is not None:
            raise self._error
        if self._eof:
            raise self._err("data after end of stream")
        state = self._state
        if state == _TUNNEL:
            return [Data(bytes(data))] if data else []
        if self._fast_heads and data and self._pos == len(self._buf):
            # Nothing buffered: a head or a body that this read holds whole is taken
            # from ``data`` itself (no copy through the buffer, no state-machine turn).
            try:
                if state == _HEAD:
                    events = self._feed_head(data)
                    if events is not None:
                        return events
                elif state == _LENGTH:
                    return self._feed_length(data)
            except HTTPProtocolError as e:
                self._error = e
                raise
        self._buf += data
        return self._run()

    def _feed_head(self, data: bytes) -> list[Event] | None:
        """A read that starts with a whole head the fast path takes: its events; else None.

        ``\r\n\r\n`` ends a head of CRLF lines, as the search for ``\n\r?\n``
        would (such a head has no other empty line and no bare LF).
        """
        if self._skip_crlf:
            if data[:1] in (b"\r", b"\n"):
                return None
            self._skip_crlf = 0
        end = data.find(b"\r\n\r\n") + 4
        limits = self.limits
        if end < 4 or end > limits.max_head_bytes or end > limits.max_line_bytes:
            return None
        matched = self._match_head(data if end == len(data) else data[:end])
        if matched is None or len(matched.fields) > limits.max_headers:
            return None
        rest = data[end:]
        buf = self._buf
        if buf:
            buf.clear()
        self._pos = self._scan = self._nl_scan = 0
        if rest:
            buf += rest  # (where a tunnel, a chunked body or the next message finds it)
        events: list[Event] = []
        self._fast_head_events(events, matched)
        if rest and self._state == _LENGTH and not self._pos:
            take = min(len(rest), self._left)
            events.append(Data(rest if take == len(rest) else rest[:take]))
            self._pos = take
            self._left -= take
            if not self._left:
                self._end_message(events)
        if self._pos < len(buf):
            events += self._run()
        elif buf:
            buf.clear()
            self._pos = 0
        return events

    def _feed_length(self, data: bytes) -> list[Event]:
        """Body bytes of a Content-Length body, nothing buffered."""
        take = min(len(data), self._left)
        events: list[Event] = [Data(data if take == len(data) else data[:take])]
        self._left -= take
        if not self._left:
            self._end_message(events)
            if take < len(data):
                if self._buf:
                    self._buf.clear()
                self._pos = self._scan = self._nl_scan = 0
                self._buf += data[take:]
                events += self._run()
        return events

    # what _feed_head matches and what it does with a match (per parser)
    _fast_pattern: re.Pattern[str]
    #: head bytes -> what the fast pattern found in them (per parser class)
    _head_cache: dict[bytes, _Matched]

    def _match_head(self, raw: bytes) -> _Matched | None:
        """The start line's parts and the fields of a head the fast path takes, else None.

        The same heads come again and again (a client's requests on one
        connection, a backend's answers, within the second of their Date): the
        outcome is kept by the head's bytes, for up to ``_HEAD_CACHE_ENTRIES``
        heads of at most ``_HEAD_CACHE_BYTES`` (then the cache starts afresh),
        so a repeated head costs a dict lookup instead of two regex passes.
        """
        cache = self._head_cache
        hit = cache.get(raw)
        if hit is not None:
            return hit
        m = self._fast_pattern.fullmatch(raw.decode("latin-1"))
        if m is None:
            return None
        found = _Matched((m.group(1), m.group(2), m.group(3) or ""), tuple(_split_fields(m.group(4))))
        if len(raw) <= _HEAD_CACHE_BYTES:
            if len(cache) >= _HEAD_CACHE_ENTRIES:
                cache.clear()
            cache[raw] = found
        return found

    def _fast_head_events(self, events: list[Event], matched: _Matched) -> bool:
        """The events of a matched head; False once the stream has become a tunnel."""
        raise NotImplementedError

    def feed_eof(self) -> list[Event]:
        """The peer closed its sending side; return the last events or raise if cut short."""
        if self._error is not None:
            raise self._error
        self._eof = True
        if self._state == _UNTIL_EOF:
            self._state = _CLOSED
            return [_END]
        if self._state in (_TUNNEL, _DONE, _CLOSED):
            return []
        if self._state == _HEAD and self.buffered == 0 or self._only_blank_lines():
            self._state = _CLOSED
            return []
        self._fail(self._err(f"connection closed in the middle of a message ({self._state})"))
        raise AssertionError("unreachable")

    # -- internals

    def _only_blank_lines(self) -> bool:
        return self._state == _HEAD and not bytes(self._buf[self._pos:]).strip(b"\r\n")

    def _fail(self, error: HTTPProtocolError) -> None:
        self._error = error
        raise error

    def _compact(self) -> None:
        if self._pos > 65536 or self._pos == len(self._buf):
            del self._buf[:self._pos]
            self._scan = max(0, self._scan - self._pos)
            self._nl_scan = max(0, self._nl_scan - self._pos)
            self._pos = 0

    def _run(self) -> list[Event]:
        events: list[Event] = []
        try:
            while self._step(events):
                pass
        except HTTPProtocolError as e:
            self._error = e
            raise
        finally:
            self._compact()
        return events

    def _step(self, events: list[Event]) -> bool:
        state = self._state
        if state == _HEAD:
            return self._step_head(events)
        if state == _LENGTH:
            return self._step_length(events)
        if state == _CHUNK_SIZE:
            return self._step_chunk_size(events)
        if state == _CHUNK_DATA:
            return self._step_chunk_data(events)
        if state == _CHUNK_END:
            return self._step_chunk_end()
        if state == _TRAILERS:
            return self._step_trailers(events)
        if state == _UNTIL_EOF:
            if self.buffered:
                events.append(Data(bytes(self._buf[self._pos:])))
                self._pos = len(self._buf)
            return False
        if state == _TUNNEL:
            if self.buffered:
                events.append(Data(bytes(self._buf[self._pos:])))
                self._pos = len(self._buf)
            return False
        return False  # _DONE / _CLOSED: keep bytes for start_next

    def _find_head_end(self, start_line: bool = True) -> int | None:
        """The end offset (exclusive) of a complete head in the buffer, or None."""
        buf = self._buf
        while self._skip_crlf and self._pos < len(buf) and buf[self._pos] in (10, 13):
            self._pos += 1
            self._skip_crlf -= 1
        if self._skip_crlf and self._pos == len(buf):
            return None
        self._skip_crlf = 0
        self._scan = max(self._scan, self._pos)
        start = max(self._pos, self._scan - 2)
        m = _END_OF_HEAD_RE.search(buf, start)
        if m is None:
            self._scan = len(buf)
            pending = len(buf) - self._pos
            # Is the first line still open?  Only look at bytes not looked at
            # before, so a head trickled in byte by byte costs linear time.
            nl_from = max(self._pos, self._nl_scan)
            if buf.find(b"\n", nl_from) < 0:
                self._nl_scan = len(buf)
                if pending > self.limits.max_line_bytes + 1:
                    raise self._start_line_too_long() if start_line else self._err(
                        "header line too long", self._big_status)
            if pending > self.limits.max_head_bytes:
                raise self._err("message head too large", self._big_status)
            return None
        end = m.end()
        if end - self._pos > self.limits.max_head_bytes:
            raise self._err("message head too large", self._big_status)
        return end

    def _start_line_too_long(self) -> HTTPProtocolError:
        return self._err("start line too long", self._big_status)

    def _fast_head(self, end: int) -> _Matched | None:
        """The buffered head up to ``end``, if the fast path takes it (see ``_match_head``)."""
        if end - self._pos > self.limits.max_line_bytes:
            return None  # (then a line may be too long: the line-by-line parse says which)
        matched = self._match_head(bytes(self._buf[self._pos:end]))
        if matched is None or len(matched.fields) > self.limits.max_headers:
            return None
        self._pos = self._scan = end
        return matched

    def _take_head(self, end: int) -> list[bytes]:
        head = bytes(self._buf[self._pos:end])
        self._pos = end
        self._scan = end
        lines = _split_lines(head, self._err)
        # the head ends with an empty line (and the split leaves one more)
        while lines and lines[-1] == b"":
            lines.pop()
        if not lines:
            raise self._err("empty message head")
        if len(lines[0]) > self.limits.max_line_bytes:
            raise self._start_line_too_long()
        return lines

    def _framing(self, headers: Headers, version: str, is_request: bool,
                 no_body: bool, lower: Sequence[str]) -> tuple[Headers, str, int]:
        """Go's transfer rules: the head to emit, the body state, and a length.

        ``lower`` is the names of ``headers`` in lower case.
        """
        if "transfer-encoding" not in lower and lower.count("content-length") == 1:
            # the usual case: one Content-Length of plain digits (below 10**18)
            value = headers[lower.index("content-length")][1]
            if value.isascii() and value.isdigit() and len(value) < 19:
                if no_body:
                    return headers, _DONE, 0
                length = int(value)
                return headers, (_LENGTH if length else _DONE), length
        te = [headers[i][1] for i, name in enumerate(lower) if name == "transfer-encoding"]
        chunked = False
        if te:
            if version == "HTTP/1.0":
                headers = remove_headers(headers, ["Transfer-Encoding"])
                lower = [k.lower() for k, _ in headers]
            elif len(te) != 1 or te[0].strip(" \t").lower() != "chunked":
                if is_request:
                    raise BadRequest(f"unsupported transfer encoding {te!r}", 501)
                raise self._err(f"unsupported transfer encoding {te!r}")
            else:
                chunked = True
        lengths = [headers[i][1] for i, name in enumerate(lower) if name == "content-length"]
        length = -1
        if lengths:
            first = lengths[0].strip(" \t")
            if any(v.strip(" \t") != first for v in lengths[1:]):
                raise self._err("message cannot contain multiple Content-Length headers")
            if len(lengths) > 1:
                headers = self._dedupe_content_length(headers, first)
            raw = first.encode("latin-1")
            if not _DIGITS_RE.match(raw) or int(raw) > _MAX_CONTENT_LENGTH:
                raise self._err(f"bad Content-Length {first[:32]!r}")
            length = int(raw)
        if no_body:
            return headers, _DONE, 0
        if chunked:
            if lengths:
                headers = remove_headers(headers, ["Content-Length"])
            return headers, _CHUNK_SIZE, 0
        if length >= 0:
            return headers, (_LENGTH if length else _DONE), length
        if is_request:
            return headers, _DONE, 0
        return headers, _UNTIL_EOF, 0

    @staticmethod
    def _dedupe_content_length(headers: Headers, value: str) -> Headers:
        out = []
        seen = False
        for k, v in headers:
            if k.lower() == "content-length":
                if seen:
                    continue
                seen = True
                v = value
            out.append((k, v))
        return tuple(out)

    def _step_length(self, events: list[Event]) -> bool:
        avail = len(self._buf) - self._pos
        if avail == 0:
            return False
        take = min(avail, self._left)
        events.append(Data(bytes(self._buf[self._pos:self._pos + take])))
        self._pos += take
        self._left -= take
        if self._left == 0:
            self._end_message(events)
        return True

    def _end_message(self, events: list[Event], trailers: Headers = ()) -> None:
        events.append(EndOfMessage(trailers) if trailers else _END)
        self._state = _DONE

    def _read_line(self, limit: int, what: str) -> bytes | None:
        nl = self._buf.find(b"\n", self._pos, self._pos + limit + 2)
        if nl < 0:
            if len(self._buf) - self._pos > limit + 1:
                raise self._err(f"{what} too long")
            return None
        line = bytes(self._buf[self._pos:nl])
        self._pos = nl + 1
        if line.endswith(b"\r"):
            line = line[:-1]
        if b"\r" in line:
            raise self._err(f"bare CR in {what}")
        return line

    def _step_chunk_size(self, events: list[Event]) -> bool:
        line = self._read_line(self.limits.max_chunk_line_bytes, "chunk size line")
        if line is None:
            return False
        size_raw = line.split(b";", 1)[0].strip(b" \t")
        if not _HEX_RE.match(size_raw):
            raise self._err(f"invalid chunk size {line[:32]!r}")
        size = int(size_raw, 16)
        if size > _MAX_CONTENT_LENGTH:
            raise self._err("chunk too large")
        if size == 0:
            self._state = _TRAILERS
            self._scan = self._pos
        else:
            self._state = _CHUNK_DATA
            self._left = size
        return True

    def _step_chunk_data(self, events: list[Event]) -> bool:
        avail = len(self._buf) - self._pos
        if avail == 0:
            return False
        take = min(avail, self._left)
        events.append(Data(bytes(self._buf[self._pos:self._pos + take])))
        self._pos += take
        self._left -= take
        if self._left == 0:
            self._state = _CHUNK_END
        return True

    def _step_chunk_end(self) -> bool:
        buf = self._buf
        if len(buf) - self._pos < 1:
            return False
        if buf[self._pos] == 10:
            self._pos += 1
        elif buf[self._pos] == 13:
            if len(buf) - self._pos < 2:
                return False
            if buf[self._pos + 1] != 10:
                raise self._err("chunk data not followed by CRLF")
            self._pos += 2
        else:
            raise self._err("chunk data not followed by CRLF")
        self._state = _CHUNK_SIZE
        return True

    def _step_trailers(self, events: list[Event]) -> bool:
        buf = self._buf
        # An empty trailer section is just the final CRLF.
        if buf[self._pos:self._pos + 1] == b"\n":
            self._pos += 1
            self._end_message(events)
            return True
        if buf[self._pos:self._pos + 2] == b"\r\n":
            self._pos += 2
            self._end_message(events)
            return True
        if len(buf) - self._pos < 2 and bytes(buf[self._pos:self._pos + 1]) in (b"", b"\r"):
            return False
        end = self._find_head_end(start_line=False)
        if end is None:
            return False
        block = bytes(buf[self._pos:end])
        self._pos = end
        lines = [ln for ln in _split_lines(block, self._err) if ln != b""]
        trailers = _parse_fields(lines, self.limits, self._err, self._big_status)
        self._end_message(events, trailers)
        return True

    def _start_tunnel(self, events: list[Event]) -> None:
        self._state = _TUNNEL
        events.append(ProtocolSwitch())
        if self.buffered:
            events.append(Data(bytes(self._buf[self._pos:])))
            self._pos = len(self._buf)

    def _step_head(self, events: list[Event]) -> bool:
        raise NotImplementedError


class RequestParser(_Parser):
    """Parse requests from a client, one message at a time.

    After :class:`EndOfMessage` the parser holds any further (pipelined)
    bytes until :meth:`start_next` (answer sent, read the next request) or
    :meth:`switch_protocols` (the backend accepted an Upgrade or CONNECT).
    """

    _err = BadRequest

    def _start_line_too_long(self) -> HTTPProtocolError:
        return BadRequest("request line too long", 414)

    def start_next(self) -> list[Event]:
        """Begin the next request; returns events for bytes already buffered."""
        if self._error is not None:
            raise self._error
        if self._state != _DONE:
            raise BadRequest(f"start_next() while the message is in state {self._state}")
        self._state = _HEAD
        self._scan = self._pos
        if self._method == "POST":
            # Go's server forgives up to four CR/LF bytes after a POST (old
            # clients sent an extra CRLF after the body), and only then.
            self._skip_crlf = 4
        if self._eof:
            return self._events_then_eof()
        if self._pos == len(self._buf):
            return []
        return self._run()

    def switch_protocols(self) -> list[Event]:
        """The backend switched protocols: the rest of the stream is a tunnel."""
        if self._error is not None:
            raise self._error
        if self._state != _DONE:
            raise BadRequest(f"switch_protocols() while the message is in state {self._state}")
        events: list[Event] = []
        self._start_tunnel(events)
        return events

    def _events_then_eof(self) -> list[Event]:
        self._eof = False
        events = self._run()
        events += self.feed_eof()
        return events

    def _step_head(self, events: list[Event]) -> bool:
        end = self._find_head_end()
        if end is None:
            return False
        fast = self._fast_head(end) if self._fast_heads else None
        if fast is not None:
            self._fast_head_events(events, fast)
            return True
        lines = self._take_head(end)
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not all(parts):
            raise BadRequest(f"malformed HTTP request {lines[0][:64]!r}")
        method, target, version_raw = parts
        if not _TOKEN_RE.match(method):
            raise BadRequest(f"invalid method {method[:32]!r}")
        if _BAD_TARGET_RE.search(target):
            raise BadRequest("invalid character in request target")
        version = _parse_version(version_raw, BadRequest)
        headers = _parse_fields(lines[1:], self.limits, BadRequest, 431)
        self._request_head(events, method.decode("ascii"), target.decode("latin-1"), version, headers)
        return True

    _fast_pattern = _FAST_REQUEST_RE
    _head_cache = {}

    def _fast_head_events(self, events: list[Event], matched: _Matched) -> bool:
        outcome = matched.outcome
        if outcome is None:
            method, target, minor = matched.start
            # (a head Go refuses raises here, every time: only an accepted one is kept)
            outcome = matched.outcome = self._request_outcome(
                method, target, "HTTP/1.0" if minor == "0" else "HTTP/1.1", matched.fields)
        self._request_events(events, *outcome)
        return True

    def _request_head(self, events: list[Event], smethod: str, target: str, version: str,
                      headers: Headers) -> None:
        self._request_events(events, *self._request_outcome(smethod, target, version, headers))

    def _request_events(self, events: list[Event], head: RequestHead, state: str, length: int) -> None:
        self._method = head.method
        events.append(head)
        self._state = state
        self._left = length
        if state == _DONE:
            self._end_message(events)

    def _request_outcome(self, smethod: str, target: str, version: str,
                         headers: Headers) -> tuple[RequestHead, str, int]:
        """Go's checks on a parsed request head; the head to emit, its body state and length.

        A function of the head alone: a head seen again reuses it (and the
        same immutable RequestHead).
        """
        lower = [k.lower() for k, _ in headers]
        hosts = [headers[i][1] for i, name in enumerate(lower) if name == "host"] if "host" in lower else []
        if len(hosts) > 1:
            raise BadRequest("too many Host headers")
        if hosts and not _HOST_RE.match(hosts[0].encode("latin-1")):
            raise BadRequest("malformed Host header", detail="malformed Host header")
        if version == "HTTP/1.1" and not hosts and smethod != "CONNECT":
            raise BadRequest("missing required Host header", detail="missing required Host header")
        if "transfer-encoding" in lower or "content-length" in lower:
            framed, state, length = self._framing(headers, version, True, False, lower)
        else:
            framed, state, length = headers, _DONE, 0
        head = RequestHead(smethod, target, version, framed)
        head.__dict__["_checked"] = True  # (see checked())
        if framed is headers:
            head.__dict__["lower_names"] = tuple(lower)  # (the cached_property, known already)
        return head, state, length


class ResponseParser(_Parser):
    """Parse a backend's responses; it must be told each request's method.

    ``request_method`` decides framing (HEAD has no body; a 2xx answer to
    CONNECT starts a tunnel).  Interim 1xx responses are emitted as heads and
    parsing continues with the final response; like Go's transport, more than
    :data:`MAX_INTERIM_RESPONSES` of them is an error.  :attr:`reusable` says
    whether the connection can carry another request after
    :class:`EndOfMessage`.  The default limits are Go's client's
    (``MaxResponseHeaderBytes``, 10 MiB), wider than for requests.
    """

    _err = BadResponse
    _big_status = 502

    _close_after = False
    _interim = 0
    #: How the current final response's body is delimited: "length",
    #: "chunked", "eof" (until the backend closes), "none" (HEAD, 204,
    #: 304) or "tunnel" (101, CONNECT); "" before its head.
    body_framing = ""

    def __init__(self, request_method: str = "GET", limits: Limits | None = None) -> None:
        self.limits = limits or RESPONSE_LIMITS
        self._buf = bytearray()
        self._method = request_method

    @property
    def reusable(self) -> bool:
        return self._state == _DONE and not self._close_after

    def start_next(self, request_method: str) -> list[Event]:
        """Expect the response to the next request (sent with ``request_method``)."""
        if self._error is not None:
            raise self._error
        if self._state != _DONE:
            raise BadResponse(f"start_next() while the message is in state {self._state}")
        self._method = request_method
        self._state = _HEAD
        self._scan = self._pos
        self._close_after = False
        self._interim = 0
        self.body_framing = ""
        events = self._run() if self._pos < len(self._buf) else []
        if self._eof:
            self._eof = False
            events += self.feed_eof()
        return events

    def _step_head(self, events: list[Event]) -> bool:
        end = self._find_head_end()
        if end is None:
            return False
        fast = self._fast_head(end) if self._fast_heads else None
        if fast is not None:
            return self._fast_head_events(events, fast)
        lines = self._take_head(end)
        version_raw, sp, rest = lines[0].partition(b" ")
        if not sp:
            raise BadResponse(f"malformed status line {lines[0][:64]!r}")
        version = _parse_version(version_raw, BadResponse)
        code, _, reason = rest.partition(b" ")
        if len(code) != 3 or not code.isdigit() or code[:1] == b"0":
            raise BadResponse(f"malformed status code {code[:16]!r}")
        if _BAD_VALUE_RE.search(reason):
            raise BadResponse("invalid character in reason phrase")
        headers = _parse_fields(lines[1:], self.limits, BadResponse, 502)
        return self._response_head(events, version, int(code), reason.decode("latin-1"), headers)

    _fast_pattern = _FAST_RESPONSE_RE
    _head_cache = {}

    @staticmethod
    def _fast_status(start: tuple[str, str, str]) -> tuple[str, int, str]:
        minor, status, reason = start
        return "HTTP/1.0" if minor == "0" else "HTTP/1.1", int(status), reason or ""

    def _fast_head_events(self, events: list[Event], matched: _Matched) -> bool:
        method = self._method
        status = matched.start[1]
        if status[0] in "2345" and (status[0] != "2" or method != "CONNECT"):
            # a final answer that is no tunnel: its outcome depends on the head and on
            # whether the request was a HEAD, and is kept on the match for the next time
            outcomes = matched.outcome
            if outcomes is None:
                outcomes = matched.outcome = {}
            key = method == "HEAD"
            outcome = outcomes.get(key)
            if outcome is None:
                outcome = outcomes[key] = self._response_outcome(*self._fast_status(matched.start), matched.fields)
            return self._response_events(events, *outcome)
        return self._response_head(events, *self._fast_status(matched.start), matched.fields)

    def _response_head(self, events: list[Event], version: str, status: int, reason: str,
                       headers: Headers) -> bool:
        """A parsed response head: its framing (given the request's method) and its events."""
        method = self._method
        if status == 101 or (method == "CONNECT" and 200 <= status < 300):
            events.append(checked(ResponseHead(status, reason, version, headers)))
            self.body_framing = "tunnel"
            self._start_tunnel(events)
            return False
        return self._response_events(events, *self._response_outcome(version, status, reason, headers))

    def _response_outcome(self, version: str, status: int, reason: str,
                          headers: Headers) -> tuple[ResponseHead, str, int, bool, str]:
        """The head to emit, its body state and length, whether the connection closes after it,
        and its body framing: a function of the head and of whether the request was a HEAD
        (not for 101 or a CONNECT's 2xx)."""
        no_body = self._method == "HEAD" or status < 200 or status in (204, 304)
        lower = [k.lower() for k, _ in headers]
        if "transfer-encoding" in lower or "content-length" in lower:
            framed, state, length = self._framing(headers, version, False, no_body, lower)
        else:
            framed, state, length = headers, (_DONE if no_body else _UNTIL_EOF), 0
        head = ResponseHead(status, reason, version, framed)
        head.__dict__["_checked"] = True  # (see checked())
        if framed is headers:
            head.__dict__["lower_names"] = tuple(lower)  # (the cached_property, known already)
        close_after = state == _UNTIL_EOF or (
            version == "HTTP/1.0" if "connection" not in lower else not keep_alive(head))
        if no_body:
            framing = "none"
        elif state == _CHUNK_SIZE:
            framing = "chunked"
        elif state == _UNTIL_EOF:
            framing = "eof"
        else:
            framing = "length"
        return head, state, length, close_after, framing

    def _response_events(self, events: list[Event], head: ResponseHead, state: str, length: int,
                         close_after: bool, framing: str) -> bool:
        events.append(head)
        if head.status < 200:
            self._interim += 1
            if self._interim > MAX_INTERIM_RESPONSES:
                raise BadResponse("too many 1xx informational responses")
            return True  # interim: the final response follows
        self._close_after = close_after
        self.body_framing = framing
        self._state = state
        self._left = length
        if state == _DONE:
            self._end_message(events)
        return True


# ---------------------------------------------------------------- serialising

def _check_field(name: str, value: str) -> None:
    if not _TOKEN_RE.match(name.encode("latin-1", "replace")):
        raise ValueError(f"invalid header name {name!r}")
    if _BAD_VALUE_RE.search(value.encode("latin-1", "replace")):
        raise ValueError(f"invalid character in value of header {name!r}")


#: what ``_fields`` may emit: lines of a token, ": ", and a value free of CR, LF and
#: other controls (with the names known to be tokens and one line per field, no
#: field can end early or add another)
_FIELD_LINES_RE: Final = re.compile(rf"(?:{_TOKEN_S}: {_VALUE_CHAR_S}*\r\n)*")
_NAME_RE: Final = re.compile(_TOKEN_S)
#: field names already found to be tokens (the same few dozen names come again and again)
_token_names: set[str] = set()
_MAX_TOKEN_NAMES: Final = 4096


def _names_are_tokens(headers: Sequence[tuple[str, str]]) -> bool:
    known = _token_names
    for name, _ in headers:
        if name not in known:
            if _NAME_RE.fullmatch(name) is None:
                return False
            if len(known) < _MAX_TOKEN_NAMES:
                known.add(name)
    return True


def _fields(headers: Iterable[tuple[str, str]]) -> str:
    """The field lines; ValueError for a name or value that could inject (checked in one pass)."""
    fields = headers if isinstance(headers, (tuple, list)) else tuple(headers)
    block = "".join([f"{name}: {value}\r\n" for name, value in fields])
    if (block.count("\n") != len(fields) or _FIELD_LINES_RE.fullmatch(block) is None
            or not _names_are_tokens(fields)):
        for name, value in fields:
            _check_field(name, value)  # says which field is wrong
        raise ValueError("invalid header field")
    return block


def serialize_request_head(head: RequestHead) -> bytes:
    """The head as bytes; raises ValueError rather than emit an injectable field."""
    d = head.__dict__
    if d.get("_checked"):
        wire = d.get("_wire")
        if wire is None:  # (kept with the head: the same head object comes again, see rewrite._remember)
            fields = "".join([f"{name}: {value}\r\n" for name, value in head.headers])
            wire = d["_wire"] = f"{head.method} {head.target} {head.version}\r\n{fields}\r\n".encode("latin-1")
        return wire
    if not _TOKEN_RE.match(head.method.encode("latin-1", "replace")) or \
            _BAD_TARGET_RE.search(head.target.encode("latin-1", "replace")) or not head.target:
        raise ValueError(f"invalid request line {head.method!r} {head.target!r}")
    return f"{head.method} {head.target} {head.version}\r\n{_fields(head.headers)}\r\n".encode("latin-1")


def serialize_response_head(head: ResponseHead) -> bytes:
    """The status line and fields as bytes; raises ValueError for unsafe values."""
    d = head.__dict__
    if d.get("_checked"):
        wire = d.get("_wire")
        if wire is None:
            fields = "".join([f"{name}: {value}\r\n" for name, value in head.headers])
            wire = d["_wire"] = f"{head.version} {head.status} {head.reason}\r\n{fields}\r\n".encode("latin-1")
        return wire
    if not 100 <= head.status <= 999 or _BAD_VALUE_RE.search(head.reason.encode("latin-1", "replace")):
        raise ValueError(f"invalid status line {head.status!r} {head.reason!r}")
    return f"{head.version} {head.status} {head.reason}\r\n{_fields(head.headers)}\r\n".encode("latin-1")


@dataclass
class ChunkedWriter:
    """Re-encode a body as chunks (for a body whose length is unknown up front)."""

    finished: bool = field(default=False)

    def data(self, data: bytes) -> bytes:
        if self.finished:
            raise ValueError("chunked body already ended")
        if not data:
            return b""  # an empty chunk would end the body
        return b"%x\r\n%s\r\n" % (len(data), data)

    def end(self, trailers: Iterable[tuple[str, str]] = ()) -> bytes:
        if self.finished:
            raise ValueError("chunked body already ended")
        self.finished = True
        return b"0\r\n" + _fields(trailers).encode("latin-1") + b"\r\n"
