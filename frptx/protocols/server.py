# -*- test-case-name: frptx.test.test_protocols_server -*-
"""The protocol of every connection (or yamux stream) accepted on frps's bind port.

It reads the first message within ``first_message_timeout`` (10 s) and hands the
connection to a handler by an explicit swap: Login -> the client's ``ServerControl``; NewWorkConn -> a
``ServerWorkConnection`` in that client's pool; NewVisitorConn -> checked and joined to
its stcp/sudp proxy.  Anything else closes this connection only.

This module knows nothing of frps's state: what to do with each first message is
asked of a ``ServerDispatcher`` (``frptx.server.registry.FrpServer`` implements it
and is injected), as Twisted's SMTP server asks an ``IMessageDelivery``.

A decision may take time (frps asks its server plugins about a Login or a
NewWorkConn): the dispatcher then returns a Deferred of the handler, and the
connection is held -- nothing more is parsed or read -- until it fires.  With no
plugin the answer is immediate and no Deferred is made.
"""
from __future__ import annotations

from typing import Protocol as TypingProtocol, Union

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from frptx.protocols.message import MessageProtocol
from frptx.wire import Login, Message, NewVisitorConn, NewWorkConn

FIRST_MESSAGE_TIMEOUT = 10.0


class ConnectionHandler(TypingProtocol):
    """What owns a connection after its first message (a client's control, a work connection)."""

    def message_received(self, msg: Message) -> None: ...
    def connection_lost(self, reason: Failure | None) -> None: ...


#: a dispatcher's decision: the handler now, None (refused: the dispatcher closed the connection), or later
Decision = Union[ConnectionHandler, None, "Deferred[ConnectionHandler | None]"]


class ServerDispatcher(TypingProtocol):
    """What a bind-port connection needs of frps: a clock and a decision per first message.

    Each method may answer and close ``protocol`` itself (a refusal); ``login`` and
    ``work_connection`` return the handler that owns the connection from then on,
    or a Deferred of it while they wait for something (server plugins).
    """

    @property
    def reactor(self) -> IReactorTime: ...

    def login(self, protocol: ServerConnectionProtocol, msg: Login) -> Decision: ...

    def work_connection(self, protocol: ServerConnectionProtocol, msg: NewWorkConn) -> Decision: ...

    def visitor_connection(self, protocol: ServerConnectionProtocol, msg: NewVisitorConn) -> None: ...


class ServerConnectionProtocol(MessageProtocol):
    """Bytes <-> messages for one accepted frp connection; the role lives in ``handler``."""

    def __init__(self, server: ServerDispatcher, first_message_timeout: float = FIRST_MESSAGE_TIMEOUT) -> None:
        super().__init__()
        self.server = server
        #: seconds a new connection may take to send its first message (tests shorten it)
        self.first_message_timeout = first_message_timeout
        self.handler: ConnectionHandler | None = None
        self._first_timer: IDelayedCall | None = None

    def connectionMade(self) -> None:
        self._first_timer = self.server.reactor.callLater(self.first_message_timeout, self._first_timeout)

    def _first_timeout(self) -> None:
        self._first_timer = None
        self.protocol_error(f"no first message within {self.first_message_timeout:g}s")

    def message_received(self, msg: Message) -> None:
        if self.handler is not None:
            self.handler.message_received(msg)
            return
        if self._first_timer is not None and self._first_timer.active():
            self._first_timer.cancel()
        self._first_timer = None
        if isinstance(msg, Login):
            self._adopt(self.server.login(self, msg))
        elif isinstance(msg, NewWorkConn):
            self._adopt(self.server.work_connection(self, msg))
        elif isinstance(msg, NewVisitorConn):
            self.server.visitor_connection(self, msg)
        else:
            self.protocol_error(f"unexpected first message {type(msg).__name__}")

    def _adopt(self, decision: Decision) -> None:
        if not isinstance(decision, Deferred):
            self.handler = decision
            return
        self.hold()
        decision.addCallbacks(self._decided, self._decision_failed)

    def _decided(self, handler: ConnectionHandler | None) -> None:
        if self.closed:
            # lost while the decision was pending: the dispatcher normally checks, but a
            # handler made anyway must still learn that its connection is gone
            if handler is not None:
                handler.connection_lost(None)
            return
        self.handler = handler
        if handler is not None:
            self.release()

    def _decision_failed(self, failure: Failure) -> None:
        self.log.failure("deciding about a connection failed", failure)
        self.close()

    def connectionLost(self, reason: Failure | None = None) -> None:
        super().connectionLost(reason)
        if self._first_timer is not None and self._first_timer.active():
            self._first_timer.cancel()
        if self.handler is not None:
            self.handler.connection_lost(reason)
