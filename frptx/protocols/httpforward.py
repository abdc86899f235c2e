# -*- test-case-name: frptx.test.test_plugin_http,frptx.test.test_e2e_vhost_http,frptx.test.test_vhost_reuse -*-
"""A streaming HTTP/1.1 forwarder serving one work connection.

The ``http2http``, ``http2https``, ``https2http``, ``https2https`` plugins
(Go: ``httputil.ReverseProxy``) and the plain-request half of ``http_proxy``
(Go: ``http.DefaultTransport.RoundTrip``) all read requests from the work
connection, rewrite each, send it to a backend and stream the answer back.
They differ only in *where* a request goes and *how* it is rewritten, which a
:class:`Route` decides; the byte work is here, on the sans-IO parser of
:mod:`frptx.vhost.http1` and Go's response rules of :mod:`frptx.vhost.rewrite`.

Memory stays bounded: bodies are never collected.  While a request body flows,
the backend transport is the consumer of the work transport (a full backend
buffer pauses reading the client) and the work transport is the consumer of
the backend (a slow client pauses reading the backend).  Requests are served
one at a time: a pipelined request waits (the work connection paused) until
the previous answer is complete.  Each request gets a backend connection of
its own, closed after the answer -- unless the endpoint keeps idle ones
(:class:`ReusableEndpoint`, frps's vhost: Go's ``http.Transport`` idle pool),
then a connection whose answer ended cleanly goes back to the endpoint's
:class:`IdleBackends` and a later request takes it first.  Upgrades (101) and
tunnels become raw relays in both directions.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol as TypingProtocol

from twisted.internet.interfaces import IHalfCloseableProtocol, ISSLTransport, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from frptx import logs
from frptx.protocols.relay import unregister_producer
from frptx.transport.inline import write_now
from frptx.vhost.http1 import (
    BadResponse,
    ChunkedWriter,
    Data,
    EndOfMessage,
    Event,
    HTTPProtocolError,
    ProtocolSwitch,
    RequestHead,
    RequestParser,
    ResponseHead,
    ResponseParser,
    field_value,
    head_has_token,
    keep_alive,
    serialize_request_head,
    serialize_response_head,
)
from frptx.vhost.rewrite import client_response, gateway_timeout_response, go_reason, http_date, reply_connection

#: bytes of pipelined requests read ahead while an answer is pending, at most
_PIPELINE_LIMIT = 1 << 16

#: Go frps's vhost Transport: ``MaxIdleConnsPerHost`` (its host key is one route, i.e. one proxy)
MAX_IDLE_PER_DESTINATION = 5
#: ... and its ``IdleConnTimeout`` (seconds)
IDLE_TIMEOUT = 60.0
#: seconds a connection beyond MAX_IDLE_PER_DESTINATION stays idle before it is closed (see IdleBackends)
SURPLUS_GRACE = 1.0

_UNKNOWN = object()

#: methods Go's Transport replays on a fresh connection when a reused one fails before any answer
_REPLAYABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


_NO_FIELDS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, init=False)
class Forward:
    """Send ``head`` to ``endpoint``."""

    endpoint: IStreamClientEndpoint
    head: RequestHead
    #: fields set on the response (frp's ``responseHeaders.set``)
    response_headers: Mapping[str, str] = field(default_factory=lambda: _NO_FIELDS)

    def __init__(self, endpoint: IStreamClientEndpoint, head: RequestHead,
                 response_headers: Mapping[str, str] = _NO_FIELDS) -> None:
        # (one per request: filling the dict directly is twice as fast as the frozen __init__)
        d = self.__dict__
        d["endpoint"] = endpoint
        d["head"] = head
        d["response_headers"] = response_headers


class ReusableEndpoint(TypingProtocol):
    """An endpoint that keeps the backend connections of finished exchanges for later requests.

    ``take_idle`` gives a kept connection (its protocol, connected) or None;
    ``keep_idle`` takes one back and says whether it did (if not, the caller closes it).
    """

    def take_idle(self) -> Protocol | None: ...

    def keep_idle(self, backend: Protocol) -> bool: ...


class _Owner(TypingProtocol):
    """Where a backend connection's events go: the forwarder using it, or the idle pool keeping it."""

    def backend_data(self, backend: _Backend, data: bytes) -> None: ...

    def backend_lost(self, backend: _Backend, reason: Failure | None) -> None: ...


class Route(TypingProtocol):
    """Where a request goes (a :class:`Forward`) or the reply to give instead (bytes)."""

    def route(self, head: RequestHead, conn: HTTPForwardProtocol) -> Forward | bytes: ...

    def error_reply(self, head: RequestHead, reason: Failure, date: str) -> bytes: ...


def go_reply(date: str, request: RequestHead | None, status: int, fields: Iterable[tuple[str, str]] = (),
             body: bytes = b"", content_type: str | None = None) -> bytes:
    """A reply laid out as Go's ``net/http`` server writes a handler's answer."""
    version = "HTTP/1.0" if request is not None and request.version == "HTTP/1.0" else "HTTP/1.1"
    lines = [f"{version} {status} {go_reason(status)}"] + [f"{k}: {v}" for k, v in fields]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Date: {date}")
    lines.append(f"Content-Length: {len(body)}")
    connection = reply_connection(request)
    if connection:
        lines.append(f"Connection: {connection}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def origin_form(target: str) -> str:
    """``http://host/p?q`` -> ``/p?q`` (what Go sends upstream: the URL's RequestURI)."""
    lower = target[:8].lower()
    if lower.startswith("http://") or lower.startswith("https://"):
        rest = target.split("://", 1)[1]
        slash = [i for i in (rest.find("/"), rest.find("?")) if i >= 0]
        if not slash:
            return "/"
        path = rest[min(slash):]
        return path if path.startswith("/") else "/" + path
    return target


class _Backend(Protocol):
    """A connection to the backend; events go to its current owner (a forwarder or an idle pool)."""

    def __init__(self, owner: _Owner) -> None:
        self.owner = owner
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.owner.backend_data(self, data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost = True
        self.owner.backend_lost(self, reason)


class _BackendFactory(Factory):
    def __init__(self, backend: _Backend) -> None:
        self.backend = backend

    def buildProtocol(self, addr: Any) -> Protocol:
        return self.backend


class IdleBackends:
    """The idle backend connections of one destination (Go's ``http.Transport`` idle pool for one host).

    ``max_idle`` are kept for up to ``timeout`` seconds idle (on ``reactor``'s
    clock).  A connection coming back while ``max_idle`` are already kept is
    *surplus*: Go's ``tryPutIdleConn`` closes it at once, which, on a
    single-threaded reactor, makes a burst of answers finished in one turn
    close connections that the same clients' next requests (a moment later)
    must then open again -- a new work connection, and for frpc a new
    connection to the local service, per request (a third of the requests of
    ``wrk -c10``).  So surplus connections are kept ``grace`` seconds more:
    the oldest beyond ``max_idle`` is closed once it has been idle that long.
    Within a second of a burst the pool is back to ``max_idle``.

    While idle, the pool owns the connection's events: the peer closing it
    removes it, and bytes it sends unasked (nothing may come between
    responses) close it.  The most recently kept connection is handed out
    first, so the older ones age out.  One timer serves the whole pool: it is
    set for the earliest deadline and, when it fires, closes what is due and
    sets itself for the next one, so keeping and taking a connection costs no
    timer work.
    """

    log = logs.logger(__name__)

    def __init__(self, reactor: Any, max_idle: int = MAX_IDLE_PER_DESTINATION,
                 timeout: float = IDLE_TIMEOUT, grace: float = SURPLUS_GRACE) -> None:
        self.reactor = reactor
        self.max_idle = max_idle
        self.timeout = timeout
        self.grace = grace
        self.closed = False
        #: (connection, when it was kept), oldest first
        self._idle: deque[tuple[_Backend, float]] = deque()
        self._timer: Any = None

    def __len__(self) -> int:
        return len(self._idle)

    def put(self, backend: Protocol) -> bool:
        """Keep ``backend`` (a connected, quiet connection) for a later request."""
        if self.closed or not isinstance(backend, _Backend) or backend.lost:
            return False
        backend.owner = self
        idle = self._idle
        idle.append((backend, self.reactor.seconds()))
        if self._timer is None or len(idle) > self.max_idle:
            self._schedule()
        return True

    def take(self) -> _Backend | None:
        """The most recently kept connection (its events still come here until the taker owns it)."""
        idle = self._idle
        while idle:
            backend, _ = idle.pop()
            if not backend.lost:
                return backend
        return None

    def close(self) -> None:
        """Close every idle connection and keep no more (the destination is gone)."""
        self.closed = True
        self._cancel_timer()
        idle, self._idle = self._idle, deque()
        for backend, _ in idle:
            if not backend.lost:
                backend.transport.loseConnection()  # type: ignore[union-attr]

    def _next_deadline(self) -> float | None:
        idle = self._idle
        if not idle:
            return None
        return idle[0][1] + (self.grace if len(idle) > self.max_idle else self.timeout)

    def _schedule(self) -> None:
        """Have the timer fire at the earliest deadline (set once; moved only to an earlier time)."""
        deadline = self._next_deadline()
        if deadline is None:
            return
        timer = self._timer
        if timer is None:
            self._timer = self.reactor.callLater(max(0.0, deadline - self.reactor.seconds()), self._sweep)
        elif deadline < timer.getTime():
            timer.reset(max(0.0, deadline - self.reactor.seconds()))

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _sweep(self) -> None:
        """Close what has been idle ``timeout`` seconds, and the surplus idle ``grace`` seconds."""
        self._timer = None
        now = self.reactor.seconds()
        idle = self._idle
        while idle:
            backend, kept = idle[0]
            if kept + self.timeout > now and (len(idle) <= self.max_idle or kept + self.grace > now):
                break
            idle.popleft()
            if not backend.lost:
                backend.transport.loseConnection()  # type: ignore[union-attr]
        self._schedule()

    def _remove(self, backend: _Backend) -> bool:
        for i, (kept, _) in enumerate(self._idle):
            if kept is backend:
                del self._idle[i]
                if not self._idle:
                    self._cancel_timer()
                return True
        return False

    # events of an idle connection (its owner is this pool)
    def backend_data(self, backend: _Backend, data: bytes) -> None:
        if data and self._remove(backend):
            self.log.info("http: backend sent {n} bytes on an idle connection; closing it", n=len(data))
            backend.transport.loseConnection()  # type: ignore[union-attr]

    def backend_lost(self, backend: _Backend, reason: Failure | None) -> None:
        self._remove(backend)


@implementer(IHalfCloseableProtocol)
class HTTPForwardProtocol(Protocol):
    """Serve HTTP requests arriving on one work connection through a :class:`Route`."""

    log = logs.logger(__name__)

    # The per-connection state starts as these class attributes (one forwarder
    # per user connection: __init__ sets only what each one needs of its own).
    #: when the current request's wait for a response head ends (None: not waiting)
    _response_deadline: float | None = None
    #: one timer per connection, reused by its requests (see _arm_response_timer)
    _response_timer: Any = None
    _client_ip: object = _UNKNOWN
    lost = False
    _request: RequestHead | None = None
    _request_done = False
    _backend: _Backend | None = None
    _dialing: Any = None
    _chunker: ChunkedWriter | None = None
    _response: ResponseParser | None = None
    _response_framing = ""
    _response_chunker: ChunkedWriter | None = None
    _close_after = False
    _response_done = False
    _tunnel = False
    _paused_for_response = False
    #: the client's transport is the backend's producer (while a request body may still come)
    _client_pulls = False
    _response_headers: Mapping[str, str] = _NO_FIELDS
    _endpoint: IStreamClientEndpoint | None = None
    #: the request head as sent (replayed on a fresh connection if a reused one fails first)
    _head_bytes = b""
    #: the backend connection came from an idle pool (a stale one may have been closed meanwhile)
    _reused = False
    #: the backend has sent something of its answer
    _response_started = False
    #: the backend may keep the connection after this exchange (no close, upgrade or CONNECT asked)
    _reuse_ok = False
    #: the request can be sent again if a reused connection fails before any answer (Go's isReplayable)
    _replayable = False

    def __init__(self, reactor: Any, route: Route, client_address: Any = None,
                 response_timeout: float | None = None) -> None:
        self.reactor = reactor
        self.route = route
        #: seconds the backend has to send its response head once the request is on its way
        #: (frps's ``vhostHTTPTimeout``: then 504); None waits for ever (the frpc plugins)
        self.response_timeout = response_timeout
        #: the user's address (``buildProtocol``'s argument) for X-Forwarded-For
        self.client_address = client_address
        self.parser = RequestParser()
        self._held: list[bytes] = []  # request body bytes while dialing (one read at most)

    # ------------------------------------------------------------- client side

    def client_ip(self) -> str | None:
        ip = self._client_ip
        if ip is _UNKNOWN:
            address = self.client_address
            if getattr(address, "host", None) is None and self.transport is not None:
                address = self.transport.getPeer()
            host = getattr(address, "host", None)
            ip = self._client_ip = host if isinstance(host, str) else None
        return ip  # type: ignore[return-value]

    def dataReceived(self, data: bytes) -> None:
        if self.lost:
            return
        try:
            events = self.parser.feed(data)
        except HTTPProtocolError as e:
            self._bad_request(e)
            return
        self._request_events(events)
        self._limit_pipelined()

    def readConnectionLost(self) -> None:
        if self._tunnel and self._backend is not None and not self._backend.lost:
            bt = self._backend.transport
            # (not through TLS: Twisted's TLS layer would hand out the TCP half-close; asked by
            # interface, as importing twisted.protocols.tls would load pyOpenSSL for plain frps)
            if callable(getattr(bt, "loseWriteConnection", None)) and not ISSLTransport.providedBy(bt):
                unregister_producer(bt)  # type: ignore[arg-type]
                bt.loseWriteConnection()  # type: ignore[union-attr]
            else:
                bt.loseConnection()  # type: ignore[union-attr]
            return
        if self._awaiting_response() or self._dialing is not None:
            # the client left before its answer: drop the backend request (Go cancels it)
            self._drop_backend()
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        try:
            events = self.parser.feed_eof()
        except HTTPProtocolError as e:
            self._bad_request(e)
            return
        self._request_events(events)
        if self._request is None or (self._request_done and self._backend is None and self._dialing is None):
            self.transport.loseConnection()  # type: ignore[union-attr]

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost = True
        self._response_deadline = None
        timer, self._response_timer = self._response_timer, None
        if timer is not None and timer.active():
            timer.cancel()
        if self._dialing is not None:
            dialing, self._dialing = self._dialing, None
            dialing.cancel()
        if self._backend is not None and not self._backend.lost:
            self._backend.transport.loseConnection()  # type: ignore[union-attr]

    def _bad_request(self, error: HTTPProtocolError) -> None:
        self.log.info("http: bad request: {error}", error=str(error))
        if self._request is None:
            self.transport.write(error.response_bytes())  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]
        self._drop_backend()

    def _request_events(self, events: list[Event]) -> None:
        for event in events:
            if self.lost:
                return
            if isinstance(event, RequestHead):
                self._start_request(event)
            elif isinstance(event, Data):
                self._request_body(event.data)
            elif isinstance(event, EndOfMessage):
                self._request_done = True
                if self._chunker is not None:
                    self._request_body_end(event.trailers)
                if not self._tunnel:
                    self._hold_client()
            elif isinstance(event, ProtocolSwitch):
                pass

    def _start_request(self, head: RequestHead) -> None:
        self._request = head
        self._request_done = False
        self._response_done = False
        try:
            decision = self.route.route(head, self)
        except Exception as e:  # a route refuses what it cannot rewrite
            date = http_date(self.reactor.seconds())
            decision = go_reply(date, head, 400, body=f"{e}\n".encode(), content_type="text/plain; charset=utf-8")
        if isinstance(decision, bytes):
            # Canned reply: the body (if any) is read and dropped, then the next request.
            self._close_after = (field_value(head, "content-length") not in (None, "0")
                                 or field_value(head, "transfer-encoding") is not None
                                 or b"Connection: close" in decision[:decision.find(b"\r\n\r\n")])
            write_now(self.transport, decision)
            self._response_done = True
            if self._close_after:
                self.transport.loseConnection()  # type: ignore[union-attr]
                self.lost = True
            return
        out = decision.head
        lower = out.lower_names
        chunked = "transfer-encoding" in lower
        self._chunker = ChunkedWriter() if chunked else None
        self._head_bytes = serialize_request_head(out)
        self._held = [self._head_bytes]
        self._response = ResponseParser(head.method)
        self._response_headers = decision.response_headers
        self._endpoint = decision.endpoint
        self._response_started = False
        method = out.method
        self._reuse_ok = (method != "CONNECT" and "upgrade" not in lower
                          and ("connection" not in lower or not head_has_token(out, "connection", "close")))
        self._replayable = (method in _REPLAYABLE_METHODS and not chunked
                            and ("content-length" not in lower or field_value(out, "content-length") == "0"))
        if not self._take_idle():
            # (an idle connection is taken at once: no need to stop reading the client meanwhile)
            self._pause_reading()
            self._connect()

    def _dial(self) -> None:
        """Take an idle backend connection of the endpoint if it keeps any, else connect a new one."""
        if not self._take_idle():
            self._connect()

    def _take_idle(self) -> bool:
        """Send the request over an idle connection of the endpoint, if it keeps one."""
        take_idle = getattr(self._endpoint, "take_idle", None)
        idle = take_idle() if take_idle is not None else None
        if not isinstance(idle, _Backend):
            return False
        idle.owner = self
        self._reused = True
        self._backend_connected(idle)
        return True

    def _connect(self) -> None:
        endpoint = self._endpoint
        assert endpoint is not None
        self._reused = False
        backend = _Backend(self)
        self._dialing = endpoint.connect(_BackendFactory(backend))
        self._dialing.addCallbacks(self._backend_connected, self._backend_failed)

    def _request_body(self, data: bytes) -> None:
        if self._request is None or self._response_done:
            return  # body of a request answered by a canned reply
        if self._chunker is not None and not self._tunnel:
            data = self._chunker.data(data)
        self._to_backend(data)

    def _request_body_end(self, trailers: Any) -> None:
        if self._response_done or self._chunker is None:
            return
        self._to_backend(self._chunker.end(trailers))

    def _to_backend(self, data: bytes) -> None:
        if not data:
            return
        if self._backend is not None:
            if not self._backend.lost:
                write_now(self._backend.transport, data)
        else:
            self._held.append(data)

    def _hold_client(self) -> None:
        """The request is complete: read nothing more until it is answered."""
        if self._response_done:
            self._next_request()
            return
        backend = self._backend
        if backend is not None and not backend.lost:
            self._arm_response_timer()
            if self._client_pulls:
                self._client_pulls = False
                unregister_producer(backend.transport)  # type: ignore[arg-type]
                if not self._paused_for_response:
                    # a backend whose buffer was full may have paused us; it no longer may
                    self.transport.resumeProducing()  # type: ignore[union-attr]
        # Keep reading (bytes of a pipelined request wait in the parser, up to
        # _PIPELINE_LIMIT) so that a client that goes away is noticed, as Go's
        # server notices it with its background read and cancels the request.
        self._limit_pipelined()

    def _pause_reading(self) -> None:
        if not self._paused_for_response:
            self._paused_for_response = True
            self.transport.pauseProducing()  # type: ignore[union-attr]

    def _resume_reading(self) -> None:
        if self._paused_for_response:
            self._paused_for_response = False
            self.transport.resumeProducing()  # type: ignore[union-attr]

    def _awaiting_response(self) -> bool:
        return self._request is not None and self._request_done and not self._response_done and not self._tunnel

    def _limit_pipelined(self) -> None:
        if self._awaiting_response() and self.parser.buffered > _PIPELINE_LIMIT:
            self._pause_reading()

    # ------------------------------------------------------------- backend side

    def _backend_connected(self, backend: _Backend) -> None:
        self._dialing = None
        if self.lost:
            backend.transport.loseConnection()  # type: ignore[union-attr]
            return
        self._backend = backend
        held, self._held = self._held, []
        write_now(backend.transport, held[0] if len(held) == 1 else b"".join(held))
        # the client's browser-side buffer pulls on the backend and vice versa
        unregister_producer(self.transport)  # type: ignore[arg-type]
        self.transport.registerProducer(backend.transport, True)  # type: ignore[union-attr]
        if self._request_done:
            self._arm_response_timer()
        elif not self.parser.finished:
            # body bytes are still to come: a full backend buffer pauses reading them
            # (once the parser has the whole request, nothing more is read for it)
            self._client_pulls = True
            backend.transport.registerProducer(self.transport, True)  # type: ignore[union-attr]
        self._resume_reading()

    def _arm_response_timer(self) -> None:
        """Once the whole request is on its way (as Go's ResponseHeaderTimeout: a slow upload is no timeout).

        The connection keeps one timer for all its requests: arming sets the
        deadline (and starts the timer if none runs), answering clears it;
        the timer, when it fires, acts only on a deadline that has passed and
        otherwise waits for the current one -- no callLater/cancel per request.
        """
        if self.response_timeout is None or self._response_deadline is not None or self._response_framing:
            return
        self._response_deadline = self.reactor.seconds() + self.response_timeout
        if self._response_timer is None:
            self._response_timer = self.reactor.callLater(self.response_timeout, self._response_timer_fired)

    def _cancel_response_timer(self) -> None:
        self._response_deadline = None

    def _response_timer_fired(self) -> None:
        self._response_timer = None
        deadline = self._response_deadline
        if deadline is None or self.lost:
            return
        now = self.reactor.seconds()
        if now < deadline:
            self._response_timer = self.reactor.callLater(deadline - now, self._response_timer_fired)
            return
        self._response_deadline = None
        self._response_timed_out()

    def _response_timed_out(self) -> None:
        """No response head within ``response_timeout``: 504, as Go's ResponseHeaderTimeout gives frps."""
        if self.lost or self._request is None or self._response_framing or self._response_done:
            return
        self.log.warn("http: no response from the backend within {secs}s", secs=self.response_timeout)
        date = http_date(self.reactor.seconds())
        self.transport.write(gateway_timeout_response(date, self._request))  # type: ignore[union-attr]
        self._response_done = True
        self._close_after = not keep_alive(self._request)
        self._finish_exchange()

    def _backend_failed(self, reason: Failure) -> None:
        self._dialing = None
        if self.lost or self._request is None:
            return
        self.log.warn("http: backend unreachable: {error}", error=reason.getErrorMessage())
        date = http_date(self.reactor.seconds())
        self.transport.write(self.route.error_reply(self._request, reason, date))  # type: ignore[union-attr]
        self._response_done = True
        if not self._request_done:
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        self._close_after = not keep_alive(self._request)
        self._finish_exchange()

    def backend_data(self, backend: _Backend, data: bytes) -> None:
        if backend is not self._backend or self.lost:
            return
        if data:
            self._response_started = True
        if self._tunnel:
            write_now(self.transport, data)
            return
        assert self._response is not None
        try:
            events = self._response.feed(data)
        except HTTPProtocolError as e:
            self._backend_broke(e)
            return
        self._response_events(events)

    def _backend_broke(self, error: Exception) -> None:
        self.log.warn("http: bad backend response: {error}", error=str(error))
        if self._response_framing == "" and self._request is not None:
            date = http_date(self.reactor.seconds())
            broken = getattr(self.route, "broken_reply", None)  # frps answers its 404 page, Go's proxy 502
            reply = broken(self._request, date) if broken is not None else go_reply(date, self._request, 502)
            self.transport.write(reply)  # type: ignore[union-attr]
        self._drop_backend()
        self.transport.loseConnection()  # type: ignore[union-attr]

    def _response_events(self, events: list[Event]) -> None:
        """Write what the events give the client: in one write per batch (one ``send`` for a
        response head and body read together), flushed before the exchange ends or tunnels."""
        assert self._request is not None
        out: list[bytes] = []
        for event in events:
            if isinstance(event, ResponseHead):
                self._cancel_response_timer()
                date = http_date(self.reactor.seconds())
                assert self._response is not None
                answer = client_response(event, self._request, self._response.body_framing, date=date,
                                         set_headers=self._response_headers)
                if event.status < 200 and event.status != 101:
                    out.append(serialize_response_head(answer.head))
                    continue
                self._response_framing = answer.framing
                self._close_after = answer.close_after
                self._response_chunker = ChunkedWriter() if answer.framing == "chunked" else None
                out.append(serialize_response_head(answer.head))
            elif isinstance(event, Data):
                if self._response_chunker is not None and not self._tunnel:
                    out.append(self._response_chunker.data(event.data))
                else:
                    out.append(event.data)
            elif isinstance(event, ProtocolSwitch):
                self._write_all(out)
                out = []
                self._start_tunnel()
            elif isinstance(event, EndOfMessage):
                if self._response_chunker is not None:
                    out.append(self._response_chunker.end(event.trailers))
                self._write_all(out)
                self._response_done = True
                self._finish_exchange()
                return
        self._write_all(out)

    def _write_all(self, chunks: list[bytes]) -> None:
        if chunks:
            write_now(self.transport, chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _start_tunnel(self) -> None:
        """101 or a CONNECT answer: raw bytes both ways from now on."""
        self._tunnel = True
        backend = self._backend
        assert backend is not None
        try:
            events = self.parser.switch_protocols()
        except HTTPProtocolError:
            events = []
        unregister_producer(backend.transport)  # type: ignore[arg-type]
        backend.transport.registerProducer(self.transport, True)  # type: ignore[union-attr]
        self._client_pulls = True
        for event in events:
            if isinstance(event, Data):
                backend.transport.write(event.data)  # type: ignore[union-attr]
        self._resume_reading()

    def backend_lost(self, backend: _Backend, reason: Failure | None) -> None:
        if backend is not self._backend:
            return
        if self.lost:
            return
        if self._tunnel:
            unregister_producer(self.transport)  # type: ignore[arg-type]
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        if self._response_done:
            return
        if self._reused and not self._response_started and self._replayable and self._request_done:
            # A kept connection the backend closed as the request went out (its
            # idle timeout): the request is sent again on a fresh one, as Go's
            # Transport does for a replayable request.
            self.log.info("http: reused backend connection closed before answering; retrying the request")
            self._cancel_response_timer()
            self._backend = None
            unregister_producer(self.transport)  # type: ignore[arg-type]
            self._held = [self._head_bytes]
            self._dial()
            return
        assert self._response is not None
        try:
            events = self._response.feed_eof()
        except HTTPProtocolError as e:
            self._backend_broke(e)
            return
        self._response_events(events)
        if not self._response_done:
            self._backend_broke(BadResponse("backend closed mid-response"))

    def _drop_backend(self) -> None:
        self._cancel_response_timer()
        backend, self._backend = self._backend, None
        self._client_pulls = False
        if backend is not None:
            unregister_producer(self.transport)  # type: ignore[arg-type]
            if not backend.lost:
                unregister_producer(backend.transport)  # type: ignore[arg-type]
                backend.transport.loseConnection()  # type: ignore[union-attr]

    def _backend_reusable(self) -> bool:
        """Whether the backend connection can carry another request (Go's Transport rules).

        The answer ended by its own framing (not by the backend closing), the
        backend did not ask to close, nothing follows it, the request was all
        sent and neither asked to close nor to switch protocols.
        """
        backend, response = self._backend, self._response
        return (backend is not None and not backend.lost and response is not None and self._reuse_ok
                and self._request_done and not self._tunnel and response.reusable and response.buffered == 0)

    def _release_backend(self) -> None:
        """Give the backend connection back to the endpoint's idle pool (closed if it is full)."""
        self._cancel_response_timer()
        backend, self._backend = self._backend, None
        assert backend is not None
        unregister_producer(self.transport)  # type: ignore[arg-type]
        if self._client_pulls:
            self._client_pulls = False
            unregister_producer(backend.transport)  # type: ignore[arg-type]
        # a slow client may have paused it; idle, it must read (to notice a close)
        backend.transport.resumeProducing()  # type: ignore[union-attr]
        keep_idle = getattr(self._endpoint, "keep_idle", None)
        if keep_idle is None or not keep_idle(backend):
            backend.transport.loseConnection()  # type: ignore[union-attr]

    def _finish_exchange(self) -> None:
        """The answer is out: keep or close the backend, then read the next request or close."""
        if not self._request_done:
            # The backend answered before the body was read (e.g. an early error):
            # like Go's server, finish by closing rather than read an unknown body.
            self._close_after = True
        if self._backend_reusable():
            self._release_backend()
        else:
            self._drop_backend()
        if self._close_after:
            self.transport.loseConnection()  # type: ignore[union-attr]
            self.lost = True
            return
        self._next_request()

    def _next_request(self) -> None:
        self._request = None
        self._response = None
        self._response_framing = ""
        self._chunker = None
        self._resume_reading()
        try:
            events = self.parser.start_next()
        except HTTPProtocolError as e:
            self._bad_request(e)
            return
        self._request_events(events)


class HTTPForwardFactory(Factory):
    """``buildProtocol(user_address)``: the address feeds X-Forwarded-For."""

    def __init__(self, reactor: Any, route: Route) -> None:
        self.reactor = reactor
        self.route = route

    def buildProtocol(self, addr: Any) -> Protocol:
        protocol = HTTPForwardProtocol(self.reactor, self.route, addr)
        protocol.factory = self
        return protocol
