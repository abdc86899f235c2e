# -*- test-case-name: frptx.test.test_protocols_client -*-
"""frpc's protocols: the control connection and the work connections.

Both are thin: they turn bytes into messages and hand them to small interfaces
that frpc implements and injects (as Twisted's SMTP server hands mail to an
``IMessageDelivery``), so this layer knows nothing of frpc itself.

``ClientControlProtocol`` asks its ``ControlHandler`` for a ``ControlSession``
(frpc's per-login session: Login, LoginResp, heartbeat, proxy answers) and feeds
it every message.  ``ClientWorkProtocol`` announces itself with the handler's
NewWorkConn, waits (without a time limit: pooled connections idle) for
StartWorkConn and gives the started connection to its ``WorkDispatcher``, which
picks the proxy kind's handler.  Both run unchanged over TCP, TLS or a yamux stream.
"""
from __future__ import annotations

from typing import Protocol

from twisted.python.failure import Failure

from frptx.protocols.message import MessageProtocol
from frptx.protocols.relayed import RelayedProtocol
from frptx.protocols.tracking import ConnectionSet
from frptx.protocols.tuning import tune
from frptx.wire import Message, NewWorkConn, StartWorkConn


class ControlSession(Protocol):
    """One login session driven by a control connection (frpc: ``frptx.client.session.LoginSession``)."""

    def connection_made(self) -> None:
        """The connection to frps is up: log in."""

    def message_received(self, msg: Message) -> None:
        """A message from frps on the control connection."""

    def connection_lost(self, reason: Failure | None) -> None:
        """The control connection is gone."""


class ControlHandler(Protocol):
    """Gives each control connection its session."""

    @property
    def connections(self) -> ConnectionSet:
        """Where the connection registers itself, so stopping frpc closes it."""

    def open_session(self, control: ClientControlProtocol) -> ControlSession:
        """The session ``control`` serves (it sends and closes through ``control``)."""


class WorkDispatcher(Protocol):
    """What a work connection reports to: frpc decides what a started work connection carries."""

    @property
    def connections(self) -> ConnectionSet:
        """Where the connection registers itself, so stopping frpc closes it."""

    def new_work_conn(self) -> NewWorkConn:
        """The NewWorkConn announcing a new work connection (run id, maybe signed)."""

    def work_started(self, work: ClientWorkProtocol, msg: StartWorkConn) -> None:
        """frps started ``work`` for ``msg.proxy_name`` (no error); the dispatcher owns it now."""


class ClientControlProtocol(MessageProtocol):
    """One login session's control connection, from Login to close."""

    def __init__(self, handler: ControlHandler) -> None:
        super().__init__()
        self.tracker = handler.connections
        self.session = handler.open_session(self)

    def connectionMade(self) -> None:
        self.session.connection_made()

    def message_received(self, msg: Message) -> None:
        self.session.message_received(msg)

    def connectionLost(self, reason: Failure | None = None) -> None:
        super().connectionLost(reason)
        self.session.connection_lost(reason)


class LocalServiceProtocol(RelayedProtocol):
    """frpc's connection to the proxied local service."""


class ClientWorkProtocol(MessageProtocol):
    """A work connection: NewWorkConn, then StartWorkConn, then whatever the proxy kind runs."""

    def __init__(self, dispatcher: WorkDispatcher) -> None:
        super().__init__()
        self.dispatcher = dispatcher
        self.tracker = dispatcher.connections
        #: the StartWorkConn that started this connection (the user's and frps' addresses)
        self.start_message: StartWorkConn | None = None

    def connectionMade(self) -> None:
        tune(self.transport)
        self.send(self.dispatcher.new_work_conn())

    def message_received(self, msg: Message) -> None:
        if not isinstance(msg, StartWorkConn):
            self.protocol_error(f"expected StartWorkConn, got {type(msg).__name__}")
            return
        if msg.error:
            self.log.warn("frps refused a work connection: {error}", error=msg.error)
            self.close()
            return
        self.start_message = msg
        self.dispatcher.work_started(self, msg)
