# -*- test-case-name: frptx.test.test_e2e -*-
"""Server side of proxies: tcp (public port), stcp/sudp (visitors only).

A user connecting to ``remotePort`` is paused at once; the proxy borrows a work
connection from its client's pool (waiting at most ``userConnTimeout``), sends
StartWorkConn with the user's and the listener's addresses, and relays.  Closing
the proxy (CloseProxy, client gone, frps stopping) closes the listener and every
connection it carries.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from frptx import logs
from frptx.protocols.codec import StreamCodec, apply_codec, stream_codec
from frptx.protocols.relay import Relay, TrafficCounter
from frptx.protocols.relayed import RelayedProtocol, start_relay
from frptx.protocols.tuning import LISTEN_BACKLOG
from frptx.server.pool import PoolClosed
from frptx.transport.address import bound_port
from frptx.wire import NewProxy, StartWorkConn

if TYPE_CHECKING:
    from frptx.server.control import ServerControl, ServerWorkConnection


class PublicConnectionProtocol(RelayedProtocol):
    """A user's connection to a proxy's public port."""

    def __init__(self, proxy: TcpProxy) -> None:
        super().__init__()
        self.proxy = proxy
        self.relay: Relay | None = None
        self.tracker = proxy.control.server.connections

    def connectionMade(self) -> None:
        super().connectionMade()
        self.proxy.user_connected(self)


class PublicListenerFactory(Factory):
    """Builds ``PublicConnectionProtocol`` for one proxy's listening port."""

    noisy = False

    def __init__(self, proxy: TcpProxy) -> None:
        self.proxy = proxy

    def buildProtocol(self, addr: object) -> PublicConnectionProtocol | None:
        if self.proxy.closed:
            return None
        return PublicConnectionProtocol(self.proxy)


def join_to_work_connection(proxy: Any, user: Any, user_codec: StreamCodec | None = None) -> None:
    """Borrow a work connection from ``proxy``'s client and relay ``user`` through it.

    ``user`` is a paused connection whose bytes go to the proxied service: a public
    user (``PublicConnectionProtocol``) or a visitor connection (a message protocol
    in raw mode).  ``user_codec`` is the visitor's own encryption/compression.
    """
    control = proxy.control
    proxy.users.add(user)
    d: Deferred[ServerWorkConnection] = control.get_work_connection()
    if not d.called:  # a pooled connection is there at once: no timer to set and cancel
        d.addTimeout(control.server.config.user_conn_timeout, control.server.reactor)
    user.on_lost = lambda reason: d.cancel()

    def got_work(work: ServerWorkConnection) -> None:
        user.on_lost = None
        if _is_lost(user) or proxy.closed:
            proxy.users.discard(user)
            control.pool.give_back(work)
            return
        peer, host = user.transport.getPeer(), user.transport.getHost()
        work.start(StartWorkConn(
            proxy_name=proxy.name,
            src_addr=getattr(peer, "host", ""),
            src_port=getattr(peer, "port", 0),
            dst_addr=getattr(host, "host", ""),
            dst_port=getattr(host, "port", 0),
        ))
        assert user.transport is not None and work.protocol.transport is not None  # both connected
        relay = Relay(user.transport, work.protocol.transport, counter=proxy.counter,
                      on_close=lambda r: proxy.users.discard(user))
        apply_codec(relay, "a", user_codec)
        apply_codec(relay, "b", proxy.work_codec())
        user.relay = relay
        user_early, user_eof = user.take_early()
        work_early, work_eof = work.protocol.take_early()
        start_relay(relay, user, work.protocol, user_early, work_early, user_eof, work_eof,
                    reactor=control.server.reactor)

    def no_work(failure: Failure) -> None:
        proxy.users.discard(user)
        if _is_lost(user):
            return
        if failure.check(DeferredTimeout):
            why = f"no work connection from the client within {control.server.config.user_conn_timeout}s"
        elif failure.check(PoolClosed):
            why = "the client went offline"
        else:
            why = failure.getErrorMessage()
        proxy.log.warn("proxy [{name}]: closing user connection from {peer}: {why}",
                       name=proxy.name, peer=user.transport.getPeer(), why=why)
        user.transport.loseConnection()

    d.addCallbacks(got_work, no_work)


def _is_lost(user: Any) -> bool:
    return bool(getattr(user, "lost", False) or getattr(user, "closed", False))


def close_users(proxy: Any) -> None:
    """Drop every connection a proxy carries (it is closing)."""
    users, proxy.users = list(proxy.users), set()
    for user in users:
        relay = getattr(user, "relay", None)
        if relay is not None:
            relay.close()
        else:
            user.transport.loseConnection()


class ProxyBase:
    """What every server-side proxy shares: its client, name, settings and connections."""

    log = logs.logger()
    kind = ""

    def __init__(self, control: ServerControl, msg: NewProxy) -> None:
        self.control = control
        self.name = msg.proxy_name
        self.msg = msg
        self.remote_port = 0
        self.counter = TrafficCounter()
        self.users: set[Any] = set()
        self.closed = False

    @property
    def remote_addr(self) -> str:
        return f":{self.remote_port}" if self.remote_port else ""

    def work_codec(self) -> StreamCodec | None:
        """The work connection's transform, from the proxy's own NewProxy settings and the token."""
        return stream_codec(self.control.server.config.auth.token, self.msg.use_encryption,
                            self.msg.use_compression)

    def listen(self, port: int, interface: str) -> None:
        """Open the public port (raises ``CannotListenError``); proxies without one do nothing."""

    def start(self) -> None:
        """Called once the proxy is registered."""

    def close(self) -> Deferred[None] | None:
        """Stop serving; fires when the public port (if any) is closed."""
        if self.closed:
            return None
        self.closed = True
        close_users(self)
        return None


class TcpProxy(ProxyBase):
    """One registered ``tcp`` proxy on frps."""

    kind = "tcp"

    def __init__(self, control: ServerControl, msg: NewProxy) -> None:
        super().__init__(control, msg)
        self.port: IListeningPort | None = None

    def listen(self, port: int, interface: str) -> None:
        self.port = self.control.server.reactor.listenTCP(port, PublicListenerFactory(self), interface=interface,
                                                          backlog=LISTEN_BACKLOG)
        self.remote_port = bound_port(self.port)

    def user_connected(self, user: PublicConnectionProtocol) -> None:
        join_to_work_connection(self, user)

    def close(self) -> Deferred[None] | None:
        """Stop listening and drop every user connection; fires when the port is closed."""
        if self.closed:
            return None
        super().close()
        if self.port is None:
            return None
        d = self.port.stopListening()
        return d if isinstance(d, Deferred) else None


class SecretProxy(ProxyBase):
    """An ``stcp`` or ``sudp`` proxy: no public port, reached only through visitors.

    frps does not look inside: the visitor connection's bytes (a TCP stream for
    stcp, UDPPacket messages for sudp) are relayed to a work connection of the
    provider, each side with its own encryption/compression.
    """

    def __init__(self, control: ServerControl, msg: NewProxy) -> None:
        super().__init__(control, msg)
        self.kind = msg.proxy_type

    def allows(self, user: str) -> bool:
        """frp's rule: the provider's own user always; ``allowUsers`` adds others, ``*`` everyone."""
        allowed = self.msg.allow_users
        return user == self.control.login.user or "*" in allowed or user in allowed
