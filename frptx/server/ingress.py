# -*- test-case-name: frptx.test.test_ingress -*-
"""Ingresses: what users arrive on, apart from the proxies that serve them.

An ingress is a public TCP port (``TcpIngress``) or UDP port (``UdpIngress``);
later a virtual-host route or a load-balancing group's listener.  A proxy is a
client's side of the tunnel: its control, its work connections, its counters.
The ingress routes each arriving user (a TCP connection, a datagram) to one of the
proxies *attached* to it, chosen by a small injectable ``Policy``; today exactly
one proxy is attached to a port, a group will attach several.  When the last
proxy detaches, the ingress stops listening.

Port allocation is the ingress's concern: ``PortIngresses`` owns the
``PortManager`` of one ingress type (tcp and udp ports are counted apart, as frps
does), opens an ingress on the first usable candidate port, and gives the port
back once its socket is really closed.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol as TypingProtocol, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol, Factory

from frptx.config import ServerConfig
from frptx.protocols.relay import Relay
from frptx.protocols.relayed import RelayedProtocol
from frptx.protocols.tracking import ConnectionSet
from frptx.protocols.tuning import LISTEN_BACKLOG
from frptx.server.ports import PortError, PortManager
from frptx.transport.address import bound_port


class Routable(TypingProtocol):
    """What an ingress needs of a proxy to route users to it."""

    @property
    def closed(self) -> bool: ...


class TcpRoute(Routable, TypingProtocol):
    def user_connected(self, user: PublicConnectionProtocol) -> None: ...


class UdpRoute(Routable, TypingProtocol):
    def user_datagram(self, datagram: bytes, addr: Any) -> None: ...


R = TypeVar("R", bound=Routable)

#: picks the proxy for one arriving user among the open attached ones (in attach order), or None
Policy = Callable[[Sequence[R]], R | None]


def first_attached(proxies: Sequence[R]) -> R | None:
    """The default policy: one proxy per ingress, so the first (only) one."""
    return proxies[0] if proxies else None


class Ingress(TypingProtocol):
    """What a proxy kind and the registry see of any ingress."""

    @property
    def port(self) -> int:
        """The public port number (what NewProxyResp.remote_addr reports)."""
        ...

    def attach(self, proxy: Any) -> None: ...

    def detach(self, proxy: Any) -> Deferred[None] | None:
        """Route no more users to ``proxy``; fires when the ingress closed (last one gone)."""
        ...


class _Routes(Generic[R]):
    """The attached proxies of one ingress and the policy choosing among them."""

    def __init__(self, policy: Policy[R]) -> None:
        self.policy = policy
        self.attached: list[R] = []

    def route(self) -> R | None:
        attached = self.attached
        if len(attached) == 1 and self.policy is first_attached:  # the common case: nothing to build per user
            only = attached[0]
            return None if only.closed else only
        return self.policy([p for p in attached if not p.closed])


class PortIngress(Generic[R]):
    """What tcp and udp ingresses share: the listening port, attach/detach, closing once."""

    def __init__(self, policy: Policy[R] = first_attached,
                 on_closed: Callable[[int, Deferred[None] | None], None] | None = None) -> None:
        self.routes: _Routes[R] = _Routes(policy)
        self.listening: Any = None
        self.port = 0
        self.closed = False
        self._on_closed = on_closed

    @property
    def attached(self) -> list[R]:
        return self.routes.attached

    def listen(self, port: int, interface: str) -> None:
        """Open the public port (raises ``CannotListenError``, ``OverflowError``...)."""
        raise NotImplementedError

    def attach(self, proxy: R) -> None:
        assert not self.closed, "attach to a closed ingress"
        self.routes.attached.append(proxy)

    def detach(self, proxy: R) -> Deferred[None] | None:
        if proxy in self.routes.attached:
            self.routes.attached.remove(proxy)
        if self.routes.attached or self.closed:
            return None
        return self.close()

    def close(self) -> Deferred[None] | None:
        """Stop listening; fires when the socket is closed (the port can be reused then)."""
        if self.closed:
            return None
        self.closed = True
        closed: Deferred[None] | None = None
        if self.listening is not None:
            d = self.listening.stopListening()
            closed = d if isinstance(d, Deferred) else None
        if self._on_closed is not None and self.port:
            self._on_closed(self.port, closed)
        return closed


class PublicConnectionProtocol(RelayedProtocol):
    """A user's connection to a public TCP port, routed to one proxy."""

    def __init__(self, proxy: TcpRoute, tracker: ConnectionSet | None = None) -> None:
        super().__init__()
        self.proxy = proxy
        self.relay: Relay | None = None
        self.tracker = tracker

    def connectionMade(self) -> None:
        super().connectionMade()
        self.proxy.user_connected(self)


class _TcpIngressFactory(Factory):
    noisy = False

    def __init__(self, ingress: TcpIngress) -> None:
        self.ingress = ingress

    def buildProtocol(self, addr: object) -> PublicConnectionProtocol | None:
        proxy = self.ingress.routes.route()
        if proxy is None:
            return None
        return PublicConnectionProtocol(proxy, self.ingress.connections)


class TcpIngress(PortIngress[TcpRoute]):
    """A public TCP port; each accepted connection goes to the proxy the policy picks."""

    def __init__(self, reactor: Any, connections: ConnectionSet | None = None,
                 policy: Policy[TcpRoute] = first_attached,
                 on_closed: Callable[[int, Deferred[None] | None], None] | None = None) -> None:
        super().__init__(policy, on_closed)
        self.reactor = reactor
        self.connections = connections

    def listen(self, port: int, interface: str) -> None:
        self.listening = self.reactor.listenTCP(port, _TcpIngressFactory(self), interface=interface,
                                                backlog=LISTEN_BACKLOG)
        self.port = bound_port(self.listening)


class _IngressDatagrams(DatagramProtocol):
    noisy = False

    def __init__(self, ingress: UdpIngress) -> None:
        self.ingress = ingress

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        proxy = self.ingress.routes.route()
        if proxy is not None:
            proxy.user_datagram(datagram, addr)


class UdpIngress(PortIngress[UdpRoute]):
    """A public UDP port: datagrams in go to the picked proxy, its replies go out through ``write``."""

    def __init__(self, reactor: Any, max_packet_size: int = 1500,
                 policy: Policy[UdpRoute] = first_attached,
                 on_closed: Callable[[int, Deferred[None] | None], None] | None = None) -> None:
        super().__init__(policy, on_closed)
        self.reactor = reactor
        self.max_packet_size = max_packet_size

    def listen(self, port: int, interface: str) -> None:
        self.listening = self.reactor.listenUDP(port, _IngressDatagrams(self), interface=interface,
                                                maxPacketSize=self.max_packet_size)
        self.port = self.listening.getHost().port

    def write(self, datagram: bytes, addr: Any) -> None:
        """Send a reply to a user (raises what the socket raises: the caller counts a drop)."""
        self.listening.write(datagram, addr)


class IngressEnv(TypingProtocol):
    """What opening a port ingress needs of frps."""

    @property
    def config(self) -> ServerConfig: ...

    @property
    def reactor(self) -> Any: ...

    @property
    def connections(self) -> ConnectionSet: ...


class PortIngressType(TypingProtocol):
    """A kind of public port (a proxy kind names the one it needs)."""

    #: ports are allocated per type: a tcp and a udp proxy may both use port 6000
    name: str

    def create(self, env: IngressEnv, on_closed: Callable[[int, Deferred[None] | None], None]) -> PortIngress[Any]:
        """A new, not yet listening ingress."""
        ...


class _TcpPorts:
    name = "tcp"

    def create(self, env: IngressEnv, on_closed: Callable[[int, Deferred[None] | None], None]) -> TcpIngress:
        return TcpIngress(env.reactor, env.connections, on_closed=on_closed)


class _UdpPorts:
    name = "udp"

    def create(self, env: IngressEnv, on_closed: Callable[[int, Deferred[None] | None], None]) -> UdpIngress:
        return UdpIngress(env.reactor, env.config.udp_packet_size or 1500, on_closed=on_closed)


TCP_PORT: PortIngressType = _TcpPorts()
UDP_PORT: PortIngressType = _UdpPorts()

#: errors of one listen attempt: the candidate port is skipped
_LISTEN_ERRORS = (CannotListenError, OverflowError, ValueError, OSError)


class PortIngresses:
    """The public ports of one ingress type: which are allowed and used, and opening them."""

    def __init__(self, kind: PortIngressType, env: IngressEnv) -> None:
        self.kind = kind
        self.env = env
        self.ports = PortManager(env.config.allow_ports, env.config.max_ports_per_client)

    def candidates(self, name: str, requested: int, run_id: str) -> list[int]:
        """Ports to try, in order; raises ``PortError`` with frp's text."""
        return self.ports.candidates(name, requested, run_id)

    def wait_released(self, candidates: list[int]) -> Deferred[None]:
        """Fires once none of ``candidates`` is still being closed."""
        return self.ports.wait_released(candidates)

    def open(self, candidates: list[int], requested: int, name: str, run_id: str) -> PortIngress[Any]:
        """Listen on the first usable candidate; raises ``PortError`` with frp's text."""
        error = "port unavailable"
        for port in candidates:
            if port and port in self.ports.used:
                error = "port already used"
                continue
            ingress = self.kind.create(self.env, self.ports.release)
            try:
                ingress.listen(port, self.env.config.proxy_bind_addr)
            except _LISTEN_ERRORS:
                continue
            self.ports.acquire(ingress.port, name, run_id)
            return ingress
        raise PortError(error if requested else "no available port")
