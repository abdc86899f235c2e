# -*- test-case-name: frptx.test.test_e2e_vhost_https -*-
"""frps's HTTPS virtual hosts: one ``vhostHTTPSPort`` shared by every ``https`` proxy.

TLS is not terminated: each connection's ClientHello is read
(:class:`frptx.vhost.sni.ClientHelloReader`), its server name routed with the
same domain rules as http (exact, ``*.`` wildcards, ``*``; no locations, no
users), and the whole stream, hello included, relayed untouched over a work
connection of the proxy (``join_to_work_connection``, as a tcp user).  As
frps does: a hello naming no route (no SNI routes as the empty name, which only
``*`` takes) gets Go's ``unrecognized_name`` alert and is closed; a hello that
does not parse is just closed; so is a client that has not completed its hello
within ``HELLO_TIMEOUT``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from frptx import logs
from frptx.config import ServerConfig
from frptx.protocols.tracking import ConnectionSet
from frptx.server.ingress import PublicConnectionProtocol
from frptx.server.proxies import join_to_work_connection
from frptx.server.vhost_http import VhostPortService
from frptx.vhost.routing import GroupedRoutes, proxy_domains
from frptx.vhost.sni import UNRECOGNIZED_NAME_ALERT, ClientHelloReader, NeedMore, SNIError

log = logs.logger(__name__)

#: frps's vhost read timeout for the ClientHello (frp: 30 s)
HELLO_TIMEOUT = 30.0


class DomainVhost:
    """The routes of the proxies of one vhost port that routes whole connections by domain.

    Subclasses say how long a client has to name its domain (``hello_timeout``) and what
    else a route is keyed and grouped by (``route_key``).
    """

    hello_timeout: float

    def __init__(self, config: ServerConfig, reactor: Any) -> None:
        self.config = config
        self.reactor = reactor
        #: connections go to a group's members in turn, the first member first
        self.routes: GroupedRoutes[Any] = GroupedRoutes()
        self.table = self.routes.table

    def route_key(self, msg: Any) -> tuple[str, tuple[str, ...]]:
        """The route's http user and what group members must share besides the route."""
        return "", ()

    def register(self, proxy: Any) -> list[str]:
        """Add the proxy's domains, all or nothing (``DomainConfigError``/``RouteConflict``/``RouteGroupRefused``)."""
        msg = proxy.msg
        user, extra = self.route_key(msg)
        domains = proxy_domains(msg.custom_domains, msg.subdomain, self.config.subdomain_host)
        try:
            for domain in domains:
                self.routes.add(proxy, domain, "", user, msg.group, msg.group_key, extra=extra)
        except Exception:
            self.routes.remove(proxy)
            raise
        return domains

    def unregister(self, proxy: Any) -> None:
        self.routes.remove(proxy)

    def lookup(self, name: str | None, user: str = "") -> Any:
        """The proxy a connection naming ``name`` goes to (a group's next member), or None."""
        group = self.routes.lookup(name or "", "", user)
        proxy = group.pick() if group is not None else None
        if proxy is None or proxy.closed:
            return None
        return proxy


class HttpsVhost(DomainVhost):
    """The routes of every https proxy (domain only)."""

    hello_timeout = HELLO_TIMEOUT


class FirstBytesRouter(PublicConnectionProtocol):
    """A user routed by what it sends first (a ClientHello, a CONNECT), then relayed like a tcp user.

    Subclasses implement ``examine(data)``, which ends in ``hand_to(proxy, replay)``
    or ``refuse(reply)``; until then the connection is read (a tcp user is paused at
    once) and a client too slow to say enough is closed after ``vhost.hello_timeout``.
    """

    def __init__(self, vhost: Any, tracker: ConnectionSet | None = None) -> None:
        super().__init__(None, tracker)  # type: ignore[arg-type]  # the proxy is known after the first bytes
        self.vhost = vhost
        self.routed = False
        self._timer: IDelayedCall | None = None

    pause_until_joined = False  # it reads the first bytes to find its proxy

    def connectionMade(self) -> None:
        self._timer = self.vhost.reactor.callLater(self.vhost.hello_timeout, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        if not self.routed:
            self.transport.loseConnection()  # type: ignore[union-attr]

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def dataReceived(self, data: bytes) -> None:
        if self.routed:
            super().dataReceived(data)
        else:
            self.examine(data)

    def examine(self, data: bytes) -> None:
        raise NotImplementedError

    def hand_to(self, proxy: Any, replay: bytes) -> None:
        """Relay to ``proxy``'s work connection, ``replay`` (bytes read so far) first."""
        self._cancel_timer()
        self.routed = True
        self.proxy = proxy
        if replay:
            self._early.append(replay)
        self.transport.pauseProducing()  # type: ignore[union-attr]
        join_to_work_connection(proxy, self)

    def refuse(self, reply: bytes) -> None:
        """Send ``reply`` (maybe nothing) and close."""
        self._cancel_timer()
        self.routed = True  # nothing more is examined (nor relayed: no proxy)
        if reply:
            self.transport.write(reply)  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]

    def readConnectionLost(self) -> None:
        if self.proxy is None:
            self.transport.loseConnection()
            return
        super().readConnectionLost()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._cancel_timer()
        super().connectionLost(reason)


class SniProtocol(FirstBytesRouter):
    """A user of vhostHTTPSPort: read the ClientHello, route it on its server name."""

    vhost: HttpsVhost

    def __init__(self, vhost: HttpsVhost, tracker: ConnectionSet | None = None) -> None:
        super().__init__(vhost, tracker)
        self.reader = ClientHelloReader()

    def examine(self, data: bytes) -> None:
        try:
            name = self.reader.feed(data)
        except SNIError as e:
            # frps closes a connection whose hello does not parse, without a word
            log.debug("https vhost: closing {peer}: {error}", peer=self.transport.getPeer(),  # type: ignore[union-attr]
                      error=str(e))
            self.refuse(b"")
            return
        if isinstance(name, NeedMore):
            return
        proxy = self.vhost.lookup(name)
        if proxy is None:
            log.debug("https vhost: no route for server name {name!r}", name=name)
            self.refuse(UNRECOGNIZED_NAME_ALERT)
            return
        self.hand_to(proxy, self.reader.buffered)


class RouterFactory(Factory):
    """One first-bytes router (``router(vhost, connections)``) per connection of a vhost port."""

    noisy = False

    def __init__(self, router: Callable[[Any, ConnectionSet | None], FirstBytesRouter], vhost: Any,
                 connections: ConnectionSet | None) -> None:
        self.router = router
        self.vhost = vhost
        self.connections = connections

    def buildProtocol(self, addr: Any) -> FirstBytesRouter:
        return self.router(self.vhost, self.connections)


class RouterVhostService(VhostPortService):
    """A vhost port whose connections are routed by their first bytes (``router``), a child of ``FrpsService``."""

    router: Callable[[Any, ConnectionSet | None], FirstBytesRouter]

    def __init__(self, vhost: Any, reactor: Any, port: int, connections: ConnectionSet | None = None,
                 on_fatal: Any = None) -> None:
        super().__init__(vhost.config, reactor, port, on_fatal)
        self.vhost = vhost
        self.connections = connections

    def make_factory(self) -> Factory:
        return RouterFactory(type(self).router, self.vhost, self.connections)


class HttpsVhostService(RouterVhostService):
    """frps's ``vhostHTTPSPort`` listener (on ``proxyBindAddr``): routed by the ClientHello's SNI."""

    name = "vhost-https"
    what = "vhostHTTPSPort"
    router = SniProtocol

    def __init__(self, vhost: HttpsVhost, reactor: Any, connections: ConnectionSet | None = None,
                 on_fatal: Any = None) -> None:
        super().__init__(vhost, reactor, vhost.config.vhost_https_port, connections, on_fatal)


def names_an_https_route(vhost: HttpsVhost) -> Callable[[bytes], bool | None]:
    """A ``Rule.match`` for a bind port shared with the HTTPS vhost.

    A ClientHello whose server name is one of the vhost's domains goes to the vhost; any other
    TLS (frpc's own, raw ``0x16`` without frp's ``0x17`` marker) stays frps' (None while the
    ClientHello is incomplete).
    """
    def match(data: bytes) -> bool | None:
        if data[:1] != b"\x16":
            return False
        try:
            name = ClientHelloReader().feed(data)
        except SNIError:
            return False
        if isinstance(name, NeedMore):
            return None
        return name is not None and vhost.routes.lookup(name) is not None

    return match
