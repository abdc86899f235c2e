# -*- test-case-name: frptx.test.test_e2e_visitors -*-
"""frpc's visitors: local listeners that reach another client's stcp/sudp proxy.

``open_visitor_connection`` dials frps (a new connection, or a stream on the yamux
session), sends NewVisitorConn signed with the shared secret, and waits up to
10 s for NewVisitorConnResp.  Refusals ("auth failed", "user not allowed",
"doesn't exist") fail the Deferred with ``VisitorRefused`` carrying frps's text.
``StcpVisitor`` relays each accepted local TCP connection through its own
visitor connection; the sudp visitor (``frptx.client.udp``) carries datagrams.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, TimeoutError as DeferredTimeoutError
from twisted.internet.interfaces import IDelayedCall, IListeningPort
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from frptx import logs
from frptx.config import VisitorConfig
from frptx.protocols.codec import StreamCodec, apply_codec, stream_codec
from frptx.protocols.message import MessageProtocol
from frptx.protocols.relay import Relay
from frptx.protocols.relayed import RelayedProtocol, start_relay
from frptx.protocols.tuning import LISTEN_BACKLOG
from frptx.transport.address import bound_port
from frptx.wire import Message, NewVisitorConn, NewVisitorConnResp, sign_key

if TYPE_CHECKING:
    from frptx.client.context import ClientContext

VISITOR_RESPONSE_TIMEOUT = 10.0
#: how long a local connection may wait for frpc to be logged in (again) before it is closed
LOGIN_WAIT = 10.0


class VisitorRefused(Exception):
    """frps refused the visitor connection; ``str()`` is its reason."""


def target_name(client: ClientContext, visitor: VisitorConfig) -> str:
    """The wire name of the proxy a visitor reaches: ``user.serverName`` when a user applies."""
    user = visitor.server_user or client.config.user
    return f"{user}.{visitor.server_name}" if user else visitor.server_name


class VisitorConnectionProtocol(MessageProtocol):
    """NewVisitorConn out, NewVisitorConnResp in, then raw (encoded) bytes."""

    def __init__(self, client: ClientContext, visitor: VisitorConfig) -> None:
        super().__init__()
        self.client = client
        self.visitor = visitor
        self.tracker = client.connections
        self.ready: Deferred[VisitorConnectionProtocol] = Deferred()
        self.codec: StreamCodec | None = stream_codec(visitor.secret_key, visitor.transport.use_encryption,
                                                      visitor.transport.use_compression)
        self._timer: IDelayedCall | None = None

    def connectionMade(self) -> None:
        v = self.visitor
        timestamp = int(self.client.reactor.seconds())
        self.send(NewVisitorConn(run_id=self.client.run_id, proxy_name=target_name(self.client, v),
                                 sign_key=sign_key(v.secret_key, timestamp), timestamp=timestamp,
                                 use_encryption=v.transport.use_encryption,
                                 use_compression=v.transport.use_compression))
        self._timer = self.client.reactor.callLater(VISITOR_RESPONSE_TIMEOUT, self._timeout)

    def _timeout(self) -> None:
        self._fail(f"no answer from frps within {VISITOR_RESPONSE_TIMEOUT:g}s")

    def _fail(self, why: str) -> None:
        if not self.ready.called:
            self.ready.errback(VisitorRefused(why))
        self.close()

    def message_received(self, msg: Message) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if not isinstance(msg, NewVisitorConnResp):
            self.protocol_error(f"expected NewVisitorConnResp, got {type(msg).__name__}")
            return
        if msg.error:
            self._fail(msg.error)
            return
        self.switch_to_raw()
        self.ready.callback(self)

    def connectionLost(self, reason: Failure | None = None) -> None:
        super().connectionLost(reason)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if not self.ready.called:
            self.ready.errback(VisitorRefused("the connection to frps closed before its answer"))


def open_visitor_connection(client: ClientContext, visitor: VisitorConfig) -> Deferred[VisitorConnectionProtocol]:
    """A visitor connection to ``visitor``'s target, ready for raw bytes (paused)."""
    protocol = VisitorConnectionProtocol(client, visitor)
    dialed = client.dialer.dial(protocol)
    dialed.addErrback(lambda f: protocol.ready.errback(f) if not protocol.ready.called else None)
    return protocol.ready


class StcpVisitor(Service):
    """Listens on ``bindAddr:bindPort``; each local connection is relayed to the stcp proxy.

    A child service of ``FrpcService`` (added after the first login);
    ``startService`` raises ``CannotListenError`` when the port is taken.
    """

    log = logs.logger(__name__)

    def __init__(self, client: ClientContext, visitor: VisitorConfig) -> None:
        self.client = client
        self.visitor = visitor
        self.port: IListeningPort | None = None
        #: frps's last refusal, as shown in the log
        self.last_error = ""

    def startService(self) -> None:
        self.start()
        super().startService()

    def stopService(self) -> Any:
        super().stopService()
        return self.stop()

    def start(self) -> None:
        v = self.visitor
        self.port = self.client.reactor.listenTCP(v.bind_port, _LocalFactory(self), interface=v.bind_addr,
                                                  backlog=LISTEN_BACKLOG)
        self.log.info("visitor [{name}] listening on {addr}:{port} for [{target}]", name=v.name, addr=v.bind_addr,
                      port=bound_port(self.port), target=target_name(self.client, v))

    def stop(self) -> Any:
        return self.port.stopListening() if self.port is not None else None

    def local_connected(self, local: RelayedProtocol) -> None:
        client = self.client
        control = client.control
        if control is not None and control.logged_in:
            d: Deferred[Any] = open_visitor_connection(client, self.visitor)
        else:
            # between two logins: no run id frps knows (nor, with tcpMux, a session) yet;
            # hold the local connection (paused) until frpc is logged in again, bounded
            waiting = client.when_logged_in()
            local.on_lost = lambda reason: waiting.cancel()  # gone meanwhile: nothing to open
            d = waiting.addTimeout(LOGIN_WAIT, client.reactor)
            d.addErrback(_not_logged_in)
            d.addCallback(lambda _: open_visitor_connection(client, self.visitor))

        def ready(conn: VisitorConnectionProtocol) -> None:
            local.on_lost = None
            if local.lost:
                conn.close()
                return
            assert local.transport is not None and conn.transport is not None  # both connected
            relay = Relay(local.transport, conn.transport)
            apply_codec(relay, "b", conn.codec)
            local_early, local_eof = local.take_early()
            conn_early, conn_eof = conn.take_early()
            start_relay(relay, local, conn, local_early, conn_early, local_eof, conn_eof)

        def refused(failure: Failure) -> None:
            local.on_lost = None
            if local.lost and failure.check(CancelledError):
                return
            self.last_error = failure.getErrorMessage()
            self.log.warn("visitor [{name}]: {why}", name=self.visitor.name, why=failure.getErrorMessage())
            assert local.transport is not None  # connected
            local.transport.loseConnection()

        d.addCallbacks(ready, refused)


def _not_logged_in(failure: Failure) -> Failure:
    if failure.check(DeferredTimeoutError):
        return Failure(VisitorRefused(f"not logged in to frps within {LOGIN_WAIT:g}s"))
    return failure


class _LocalFactory(Factory):
    noisy = False

    def __init__(self, visitor: StcpVisitor) -> None:
        self.visitor = visitor

    def buildProtocol(self, addr: object) -> RelayedProtocol:
        visitor = self.visitor
        local = _LocalConnection(visitor)
        local.tracker = visitor.client.connections
        return local


class _LocalConnection(RelayedProtocol):
    def __init__(self, visitor: StcpVisitor) -> None:
        super().__init__()
        self.visitor = visitor

    def connectionMade(self) -> None:
        super().connectionMade()
        self.visitor.local_connected(self)
