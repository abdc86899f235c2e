# -*- test-case-name: frptx.test.test_e2e -*-
"""Server side of a TCP proxy: the public listener and its user connections.

A user connecting to ``remotePort`` is paused at once; the proxy borrows a work
connection from its client's pool (waiting at most ``userConnTimeout``), sends
StartWorkConn with the user's and the listener's addresses, and relays.  Closing
the proxy (CloseProxy, client gone, frps stopping) closes the listener and every
connection it carries.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from frptx import logs
from frptx.protocols.relay import Relay, TrafficCounter
from frptx.protocols.relayed import RelayedProtocol, start_relay
from frptx.server.pool import PoolClosed
from frptx.wire import StartWorkConn

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


class TcpProxy:
    """One registered ``tcp`` proxy on frps."""

    log = logs.logger()

    def __init__(self, control: ServerControl, name: str) -> None:
        self.control = control
        self.name = name
        self.port: IListeningPort | None = None
        self.remote_port = 0
        self.counter = TrafficCounter()
        self.users: set[PublicConnectionProtocol] = set()
        self.closed = False

    @property
    def remote_addr(self) -> str:
        return f":{self.remote_port}"

    def listening(self, port: IListeningPort) -> None:
        self.port = port
        self.remote_port = port.getHost().port

    # -- user connections ------------------------------------------------
    def user_connected(self, user: PublicConnectionProtocol) -> None:
        self.users.add(user)
        control = self.control
        d: Deferred[ServerWorkConnection] = control.get_work_connection()
        d.addTimeout(control.server.config.user_conn_timeout, control.server.reactor)
        user.on_lost = lambda reason: d.cancel()
        d.addCallbacks(lambda work: self._got_work(user, work), lambda f: self._no_work(user, f))

    def _got_work(self, user: PublicConnectionProtocol, work: ServerWorkConnection) -> None:
        user.on_lost = None
        if user.lost or self.closed:
            self.users.discard(user)
            self.control.pool.give_back(work)
            return
        peer, host = user.transport.getPeer(), user.transport.getHost()
        work.start(StartWorkConn(
            proxy_name=self.name,
            src_addr=getattr(peer, "host", ""),
            src_port=getattr(peer, "port", 0),
            dst_addr=getattr(host, "host", ""),
            dst_port=getattr(host, "port", 0),
        ))
        relay = Relay(user.transport, work.protocol.transport, counter=self.counter,
                      on_close=lambda r: self.users.discard(user))
        user.relay = relay
        user_early, user_eof = user.take_early()
        work_early, work_eof = work.protocol.take_early()
        start_relay(relay, user, work.protocol, user_early, work_early, user_eof, work_eof)

    def _no_work(self, user: PublicConnectionProtocol, failure: Failure) -> None:
        self.users.discard(user)
        if user.lost:
            return
        if failure.check(DeferredTimeout):
            why = f"no work connection from the client within {self.control.server.config.user_conn_timeout}s"
        elif failure.check(PoolClosed):
            why = "the client went offline"
        else:
            why = failure.getErrorMessage()
        self.log.warn("proxy [{name}]: closing user connection from {peer}: {why}",
                      name=self.name, peer=user.transport.getPeer(), why=why)
        user.transport.loseConnection()

    # -- lifecycle ---------------------------------------------------------
    def close(self) -> Deferred[None] | None:
        """Stop listening and drop every user connection; fires when the port is closed."""
        if self.closed:
            return None
        self.closed = True
        users, self.users = list(self.users), set()
        for user in users:
            if user.relay is not None:
                user.relay.close()
            else:
                user.transport.loseConnection()
        if self.port is None:
            return None
        d = self.port.stopListening()
        return d if isinstance(d, Deferred) else None
