# -*- test-case-name: frptx.test.test_e2e -*-
"""What every server-side proxy shares; the kinds themselves live in ``frptx.server.kinds``.

A proxy is one client's side of a tunnel: its control (``ControlView``), the work
connections it borrows, the users it carries, its counters.  Users arrive on an
*ingress* (``frptx.server.ingress``: a public port) that routes them here, or, for
stcp/sudp, as visitor connections.  A paused user gets a work connection from its
client's pool (waiting at most ``userConnTimeout``), StartWorkConn with the user's
and the listener's addresses, and a relay.  Closing the proxy (CloseProxy, client
gone, frps stopping) detaches it from its ingress (which stops listening once no
proxy is left) and closes every connection it carries.

This module does not import the control: it depends on the ``ControlView``
interface, which ``frptx.server.control.ServerControl`` implements.
"""
from __future__ import annotations

from typing import Any, Protocol as TypingProtocol

from twisted.internet.defer import Deferred, TimeoutError as DeferredTimeout
from twisted.python.failure import Failure

from frptx import logs
from frptx.config import ServerConfig
from frptx.protocols.bandwidth import BandwidthLimiter
from frptx.protocols.codec import StreamCodec, apply_codec, stream_codec
from frptx.protocols.relay import Relay, TrafficCounter
from frptx.protocols.relayed import start_relay
from frptx.protocols.tracking import ConnectionSet
from frptx.server.ingress import Ingress
from frptx.server.plugins import OP_NEW_USER_CONN, NewUserConnContent, PluginDenied, UserInfo, address_text
from frptx.server.pool import PoolClosed
from frptx.wire import Login, NewProxy, StartWorkConn


class WorkConnection(TypingProtocol):
    """A client's work connection as a proxy uses it (``ServerWorkConnection``)."""

    protocol: Any

    def start(self, msg: StartWorkConn, relay_now: bool = False) -> None: ...


class WorkPool(TypingProtocol):
    def give_back(self, work: Any) -> None: ...


class ServerView(TypingProtocol):
    """What a proxy reads of frps: its settings, clock and connection set."""

    @property
    def config(self) -> ServerConfig: ...

    @property
    def reactor(self) -> Any: ...

    @property
    def connections(self) -> ConnectionSet | None: ...


class ControlView(TypingProtocol):
    """What a proxy needs of its client's control (``ServerControl``)."""

    @property
    def server(self) -> ServerView: ...

    @property
    def run_id(self) -> str: ...

    @property
    def login(self) -> Login: ...

    @property
    def token(self) -> str: ...

    @property
    def pool(self) -> WorkPool: ...

    def take_work_connection(self) -> Any | None:
        """An idle pooled work connection at once, or None (then ``get_work_connection``)."""
        ...

    def get_work_connection(self) -> Deferred[Any]: ...


def join_to_work_connection(proxy: Any, user: Any, user_codec: StreamCodec | None = None) -> None:
    """Borrow a work connection from ``proxy``'s client and relay ``user`` through it.

    ``user`` is a paused connection whose bytes go to the proxied service: a public
    user (``PublicConnectionProtocol``) or a visitor connection (a message protocol
    in raw mode).  ``user_codec`` is the visitor's own encryption/compression.

    With NewUserConn server plugins (frp asks them for tcp, stcp and sudp users)
    the user waits, paused, for their decision; a refusal closes it before any
    work connection is taken.
    """
    plugins = getattr(proxy.control.server, "plugins", None)
    if plugins is not None and plugins.wants(OP_NEW_USER_CONN):
        _ask_new_user_conn(plugins, proxy, user, user_codec)
        return
    _join(proxy, user, user_codec)


def _ask_new_user_conn(plugins: Any, proxy: Any, user: Any, user_codec: StreamCodec | None) -> None:
    control = proxy.control
    proxy.users.add(user)  # closing the proxy meanwhile closes the user too
    remote_addr = address_text(user.transport.getPeer())
    content = NewUserConnContent(UserInfo.of(control.login, control.run_id), proxy.name, proxy.msg.proxy_type,
                                 remote_addr)

    def allowed(_: object) -> None:
        proxy.users.discard(user)
        if not (_is_lost(user) or proxy.closed):
            _join(proxy, user, user_codec)

    def denied(failure: Failure) -> None:
        failure.trap(PluginDenied)
        proxy.users.discard(user)
        proxy.log.warn("proxy [{name}]: the user conn [{addr}] was rejected, err: {why}", name=proxy.name,
                       addr=remote_addr, why=failure.getErrorMessage())
        if not _is_lost(user):
            user.transport.loseConnection()

    plugins.new_user_conn(content).addCallbacks(allowed, denied).addErrback(
        lambda f: proxy.log.failure("proxy [{name}]: serving a user connection failed", f, name=proxy.name))


def _join(proxy: Any, user: Any, user_codec: StreamCodec | None) -> None:
    control = proxy.control
    proxy.users.add(user)

    def got_work(work: WorkConnection) -> None:
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
        ), relay_now=True)
        assert user.transport is not None and work.protocol.transport is not None  # both connected
        relay = Relay(user.transport, work.protocol.transport, counter=proxy.counter,
                      on_close=lambda r: proxy.users.discard(user))
        apply_codec(relay, "a", user_codec)
        apply_codec(relay, "b", proxy.work_codec())
        # bandwidthLimitMode server: frps holds the proxy's plain stream to the limit, on the user leg
        relay.limit("a", getattr(proxy, "limiter", None))
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

    pooled = control.take_work_connection()
    if pooled is not None:  # the busy-tunnel case: no Deferred, no timer
        got_work(pooled)
        return
    d: Deferred[WorkConnection] = control.get_work_connection()
    if not d.called:
        d.addTimeout(control.server.config.user_conn_timeout, control.server.reactor)
    user.on_lost = lambda reason: d.cancel()
    d.addCallbacks(got_work, no_work)


def _server_limiter(msg: NewProxy, clock: Any) -> BandwidthLimiter | None:
    """frps limits a proxy whose NewProxy asks for a positive limit in mode "server" (frp ignores a bad value)."""
    try:
        return BandwidthLimiter.for_proxy(msg.bandwidth_limit or "", msg.bandwidth_limit_mode or "", "server", clock)
    except ValueError:
        return None


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
    """What every server-side proxy shares: its client, name, settings, counters and connections."""

    log = logs.logger(__name__)
    #: the kind's name (``ProxyKind.name``), set by each kind's class
    kind = ""
    #: whether NewVisitorConn may reach this proxy (stcp, sudp)
    accepts_visitors = False

    def __init__(self, control: ControlView, msg: NewProxy) -> None:
        self.control = control
        self.name = msg.proxy_name
        self.msg = msg
        #: where users arrive (None: only visitors reach this proxy)
        self.ingress: Ingress | None = None
        self.counter = TrafficCounter()
        self.users: set[Any] = set()
        self.closed = False
        #: one limiter for all the proxy's connections (server-mode ``bandwidthLimit`` in its NewProxy)
        self.limiter = _server_limiter(msg, control.server.reactor)

    @property
    def remote_port(self) -> int:
        return self.ingress.port if self.ingress is not None else 0

    @property
    def remote_addr(self) -> str:
        return f":{self.remote_port}" if self.remote_port else ""

    def work_codec(self) -> StreamCodec | None:
        """The work connection's transform, from the proxy's own NewProxy settings and the token."""
        return stream_codec(self.control.token, self.msg.use_encryption,
                            self.msg.use_compression)

    def attach(self, ingress: Ingress) -> None:
        """Have users of ``ingress`` routed to this proxy."""
        self.ingress = ingress
        ingress.attach(self)

    def allows(self, user: str) -> bool:
        """Whether a visitor of frp user ``user`` may connect (only kinds that accept visitors say yes)."""
        return False

    def visitor_connected(self, visitor: Any, codec: StreamCodec | None) -> None:
        """A checked visitor connection (raw mode, paused; only if ``accepts_visitors``): relay it
        to a work connection, ``codec`` being the visitor's own encryption/compression."""
        join_to_work_connection(self, visitor, codec)

    def start(self) -> None:
        """Called once frpc has been sent the NewProxyResp."""

    def close(self) -> Deferred[None] | None:
        """Stop serving; fires when the ingress (if this was its last proxy) is closed."""
        if self.closed:
            return None
        self.closed = True
        close_users(self)
        return self.ingress.detach(self) if self.ingress is not None else None
