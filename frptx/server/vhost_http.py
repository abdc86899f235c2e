# -*- test-case-name: frptx.test.test_e2e_vhost_http,frptx.test.test_vhost_reuse -*-
"""frps's HTTP virtual hosts: one ``vhostHTTPPort`` shared by every ``http`` proxy.

``HttpVhost`` is the route table (frp's domain, wildcard, location and
routeByHTTPUser rules, :mod:`frptx.vhost.routing`) and the per-request
decision (basic auth, frp's 404 page, Go's request rewrite,
:mod:`frptx.vhost.rewrite`).  The byte work is the streaming forwarder
frpc's HTTP plugins use (:mod:`frptx.protocols.httpforward`): each browser
connection is one ``HTTPForwardProtocol``; every request is routed anew and
sent over a work connection of the proxy it is routed to, so a browser
keeping its connection alive may reach several proxies in turn.  A new work
connection (``WorkConnectionEndpoint``: a StartWorkConn with the browser's
addresses, then the proxy's encryption/compression) is tied by frpc to one
connection to the local service; so, as Go frps's ``http.Transport`` does,
one whose response ended cleanly is kept idle for the proxy's next request
(at most 5 per proxy, closed after 60 s idle, when the peer closes it, when
the proxy goes or frps stops).  Upgrades (101) become raw relays.  frpc does not parse HTTP: its ``http`` kind relays
the work connection to the local service as ``tcp`` does.

frp's error rules: no route -> 404 page (``custom404Page`` if set); wrong
basic auth -> 401; a backend that cannot be reached or answers garbage -> the
404 page; no response head within ``vhostHTTPTimeout`` -> 504.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol as TypingProtocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.error import CannotListenError, ConnectError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from frptx import logs
from frptx.config import ServerConfig
from frptx.protocols.httpforward import Forward, HTTPForwardProtocol, IdleBackends
from frptx.protocols.transforms import connect_through
from frptx.protocols.tuning import LISTEN_BACKLOG
from frptx.transport.address import bound_port
from frptx.vhost.http1 import RequestHead
from frptx.vhost.rewrite import (
    NOT_FOUND_PAGE,
    http_date,
    is_options_star,
    not_found_response,
    options_star_response,
    request_route_info,
    rewrite_request,
    route_http_request,
    unauthorized_response,
)
from frptx.vhost.routing import GroupedRoutes, proxy_domains, proxy_locations
from frptx.wire import NewProxy, StartWorkConn

log = logs.logger(__name__)


class VhostProxy(TypingProtocol):
    """What the vhost needs of an http proxy (``frptx.server.kinds.http.HttpProxy``)."""

    name: str
    msg: NewProxy
    control: Any
    counter: Any
    users: set[Any]

    @property
    def closed(self) -> bool: ...

    def work_codec(self) -> Any: ...


class _WorkSink:
    """What the work connection reads (raw mode) goes to the forwarder's backend protocol."""

    def __init__(self, target: Any, proxy: VhostProxy, backend: Protocol) -> None:
        self.target = target
        self.proxy = proxy
        self.backend = backend

    def data_received(self, data: bytes) -> None:
        self.proxy.counter.outbound += len(data)
        self.target.dataReceived(data)

    def read_connection_lost(self) -> None:
        half = getattr(self.target, "readConnectionLost", None)
        if half is not None:
            half()
        else:  # the backend protocol is not half-closeable: frpc is done, so is the exchange
            self.backend.transport.loseConnection()  # type: ignore[union-attr]

    def connection_lost(self, reason: Failure | None = None) -> None:
        self.proxy.users.discard(self.backend)
        self.target.connectionLost(reason)


@implementer(IStreamClientEndpoint)
class WorkConnectionEndpoint:
    """``connect`` = borrow a work connection of ``proxy`` and start it for one request.

    With ``idle`` (the proxy's kept connections, a ``ReusableEndpoint``), a
    request takes a kept one first and gives its own back when it ends cleanly.
    """

    def __init__(self, proxy: VhostProxy, user_transport: Any, idle: IdleBackends | None = None) -> None:
        self.proxy = proxy
        self.user_transport = user_transport
        self.idle = idle

    def take_idle(self) -> Protocol | None:
        if self.idle is None or self.proxy.closed:
            return None
        return self.idle.take()

    def keep_idle(self, backend: Protocol) -> bool:
        return self.idle is not None and not self.proxy.closed and self.idle.put(backend)

    def connect(self, factory: Any) -> Deferred[Any]:
        proxy = self.proxy
        control = proxy.control
        d: Deferred[Any] = control.get_work_connection()
        if not d.called:
            d.addTimeout(control.server.config.user_conn_timeout, control.server.reactor)

        def got(work: Any) -> Any:
            if proxy.closed:
                control.pool.give_back(work)
                raise ConnectError(string=f"proxy [{proxy.name}] closed")
            peer, host = self.user_transport.getPeer(), self.user_transport.getHost()
            work.start(StartWorkConn(
                proxy_name=proxy.name,
                src_addr=getattr(peer, "host", ""),
                src_port=getattr(peer, "port", 0),
                dst_addr=getattr(host, "host", ""),
                dst_port=getattr(host, "port", 0),
            ))
            wp = work.protocol
            backend = factory.buildProtocol(None)
            top = connect_through(proxy.work_codec(), backend, wp.transport)
            sink = _WorkSink(top, proxy, backend)
            wp.end = sink
            proxy.users.add(backend)
            early, eof = wp.take_early()
            wp.transport.resumeProducing()
            if early:
                sink.data_received(early)
            if eof:
                sink.read_connection_lost()
            return backend

        return d.addCallback(got)


class _CountingForwarder(HTTPForwardProtocol):
    """Counts the browser's bytes on the proxy its current request was routed to."""

    proxy: VhostProxy | None = None
    live: set[Any] | None = None
    #: the endpoint of the last proxy a request of this connection went to (the next one likely goes there too)
    work_endpoint: WorkConnectionEndpoint | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        if self.live is not None:
            self.live.add(self)

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self.live is not None:
            self.live.discard(self)
        super().connectionLost(reason)

    def dataReceived(self, data: bytes) -> None:
        proxy = self.proxy
        if proxy is not None:
            proxy.counter.inbound += len(data)
        super().dataReceived(data)


class HttpVhost:
    """The routes of every http proxy and the decision for each request."""

    def __init__(self, config: ServerConfig, reactor: Any) -> None:
        self.config = config
        self.reactor = reactor
        #: frps's http group hands its first request to its second member (see ``RouteGroup.pick``)
        self.routes: GroupedRoutes[VhostProxy] = GroupedRoutes(offset=1)
        self.table = self.routes.table
        self.not_found_page = _read_page(config.custom_404_page)
        #: each proxy's idle work connections (keyed by the proxy object)
        self.idle: dict[Any, IdleBackends] = {}

    def idle_backends(self, proxy: VhostProxy) -> IdleBackends:
        """The pool of ``proxy``'s idle work connections (made on first use)."""
        pool = self.idle.get(proxy)
        if pool is None:
            pool = self.idle[proxy] = IdleBackends(self.reactor)
        return pool

    def close_idle(self) -> None:
        """Close every kept work connection (frps stops)."""
        pools, self.idle = list(self.idle.values()), {}
        for pool in pools:
            pool.close()

    # -- proxies ---------------------------------------------------------------
    def register(self, proxy: VhostProxy) -> list[str]:
        """Add every (domain, location, routeByHTTPUser) of ``proxy``; all or nothing.

        Raises ``DomainConfigError``, ``RouteConflict`` or ``RouteGroupRefused``
        with frp's texts.  Returns the domains (for NewProxyResp.remote_addr).
        """
        msg = proxy.msg
        domains = proxy_domains(msg.custom_domains, msg.subdomain, self.config.subdomain_host)
        try:
            for domain in domains:
                for location in proxy_locations(msg.locations):
                    self.routes.add(proxy, domain, location, msg.route_by_http_user, msg.group, msg.group_key)
        except Exception:
            self.routes.remove(proxy)
            raise
        return domains

    def unregister(self, proxy: VhostProxy) -> None:
        self.routes.remove(proxy)
        pool = self.idle.pop(proxy, None)
        if pool is not None:
            pool.close()

    # -- requests (``frptx.protocols.httpforward.Route``) ------------------------
    def route(self, head: RequestHead, conn: HTTPForwardProtocol) -> Forward | bytes:
        if is_options_star(head):
            return options_star_response(_date(self.reactor), head)
        info = request_route_info(head)
        decision = route_http_request(self.table, info, _credentials)
        if not decision.authorized:
            return unauthorized_response(_date(self.reactor), head)
        route = decision.route
        # the route's settings are its first member's; the request goes to the group's next member
        proxy = route.value.pick() if route is not None else None
        if route is None or proxy is None or proxy.closed:
            return not_found_response(_date(self.reactor), head, page=self.not_found_page)
        settings = route.value.founder.msg
        counting = conn if isinstance(conn, _CountingForwarder) else None
        if counting is not None:
            counting.proxy = proxy
        out = rewrite_request(head, client_ip=conn.client_ip(), host_rewrite=settings.host_header_rewrite,
                              set_headers=settings.headers or None, info=info)
        # the work connections kept idle are the picked member's (Go keys its pool by route and endpoint)
        idle = self.idle_backends(proxy)
        endpoint = counting.work_endpoint if counting is not None else None
        if endpoint is None or endpoint.proxy is not proxy or endpoint.idle is not idle:
            endpoint = WorkConnectionEndpoint(proxy, conn.transport, idle)
            if counting is not None:
                counting.work_endpoint = endpoint
        return Forward(endpoint, out, response_headers=settings.response_headers)

    def error_reply(self, head: RequestHead, reason: Failure, date: str) -> bytes:
        """No work connection (or the proxy closed): frp's 404 page."""
        return not_found_response(date, head, page=self.not_found_page)

    def broken_reply(self, head: RequestHead, date: str) -> bytes:
        """The backend closed or answered garbage before a response head: frp's 404 page."""
        return not_found_response(date, head, page=self.not_found_page)


def _credentials(group: Any) -> tuple[str, str]:
    """A route's httpUser/httpPassword (its first member's)."""
    msg = group.founder.msg
    return msg.http_user, msg.http_pwd


def _date(reactor: Any) -> str:
    return http_date(reactor.seconds())


def _read_page(path: str) -> bytes:
    """frps's ``custom404Page`` (read once; an unreadable file falls back to frp's page, as frp does)."""
    if not path:
        return NOT_FOUND_PAGE
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        log.warn("cannot read custom404Page {path}: {error}; using the default page", path=path, error=e)
        return NOT_FOUND_PAGE


class _VhostFactory(Factory):
    noisy = False

    def __init__(self, vhost: HttpVhost) -> None:
        self.vhost = vhost
        #: the open browser connections (closed when frps stops)
        self.live: set[Any] = set()

    def buildProtocol(self, addr: Any) -> Protocol:
        timeout = self.vhost.config.vhost_http_timeout or None
        protocol = _CountingForwarder(self.vhost.reactor, self.vhost, addr, response_timeout=timeout)
        protocol.factory = self
        protocol.live = self.live
        return protocol


class VhostPortService(Service):
    """A vhost port of frps (on ``proxyBindAddr``), a child of ``FrpsService``."""

    what = "vhost port"

    def __init__(self, config: ServerConfig, reactor: Any, port: int,
                 on_fatal: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.reactor = reactor
        #: the port to listen on (tests set 0 before starting)
        self.listen_port = port
        self.port: Any = None
        self.factory: Any = None
        self._on_fatal = on_fatal
        #: the port is frps' bind port: the bind port hands this vhost its connections
        self.shares_bind_port = port == config.bind_port

    def shared_factory(self) -> Factory:
        """The factory the bind port hands this vhost's connections to (made once)."""
        if self.factory is None:
            self.factory = self.make_factory()
        return self.factory  # type: ignore[no-any-return]  # make_factory's result

    @property
    def bound_port(self) -> int:
        assert self.port is not None
        return bound_port(self.port)

    def make_factory(self) -> Factory:
        raise NotImplementedError

    def startService(self) -> None:
        super().startService()
        cfg = self.config
        if self.shares_bind_port:
            self.shared_factory()
            log.info("{what} shares the bind port {port}", what=self.what, port=cfg.bind_port)
            return
        self.factory = self.make_factory()
        try:
            self.port = self.reactor.listenTCP(self.listen_port, self.factory,
                                               interface=cfg.proxy_bind_addr, backlog=LISTEN_BACKLOG)
        except CannotListenError as e:
            message = f"frps cannot listen on {cfg.proxy_bind_addr}:{self.listen_port} ({self.what}): {e.socketError}"
            log.critical("{message}", message=message)
            if self._on_fatal is None:
                raise
            self._on_fatal(message)
            return
        log.info("{what} listening on {addr}:{port}", what=self.what, addr=cfg.proxy_bind_addr,
                 port=self.bound_port)

    def stopService(self) -> Deferred[Any] | None:
        """Stop listening and close the open user connections; fires when the port is closed."""
        super().stopService()
        live = getattr(self.factory, "live", ())
        for conn in list(live):
            conn.transport.loseConnection()
        port, self.port = self.port, None
        if port is None:
            return None
        return maybeDeferred(port.stopListening)


class HttpVhostService(VhostPortService):
    """frps's ``vhostHTTPPort`` listener."""

    name = "vhost-http"
    what = "vhostHTTPPort"

    def __init__(self, vhost: HttpVhost, reactor: Any, on_fatal: Callable[[str], None] | None = None) -> None:
        super().__init__(vhost.config, reactor, vhost.config.vhost_http_port, on_fatal)
        self.vhost = vhost

    def make_factory(self) -> Factory:
        return _VhostFactory(self.vhost)

    def stopService(self) -> Deferred[Any] | None:
        self.vhost.close_idle()
        return super().stopService()


#: request lines a shared bind port hands to the HTTP vhost (frp's own traffic starts otherwise:
#: a lowercase message type, yamux's version 0, or TLS)
HTTP_METHODS = tuple(m + b" " for m in (b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH",
                                         b"CONNECT", b"TRACE"))


def starts_with_http_method(data: bytes) -> bool | None:
    """A ``Rule.match`` for the bind port: an HTTP request line (None: too few bytes to tell)."""
    undecided = False
    for method in HTTP_METHODS:
        if data.startswith(method):
            return True
        if method.startswith(data):
            undecided = True
    return None if undecided else False
