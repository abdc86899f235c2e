# -*- test-case-name: frptx.test.test_protocols_server -*-
"""The base protocol of every frp connection: v1 messages, then maybe raw bytes.

Control connections exchange messages for their whole life (encrypted after
Login/LoginResp); work and visitor connections exchange one or two messages and
then turn into a raw byte pipe for the relay.  ``MessageProtocol`` covers both:
it decodes frames with the sans-IO ``MessageReader``, hands each message to
``message_received``, and after ``switch_to_raw`` forwards bytes to a relay end.
Protocol errors close only this connection, with the reason logged.
"""
from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from frptx import logs
from frptx.protocols.relay import RelayEnd
from frptx.transport.inline import write_now
from frptx.wire import (
    CfbDecryptor,
    CfbEncryptor,
    Message,
    MessageReader,
    MessageWriter,
    ProtocolError,
)


@implementer(IHalfCloseableProtocol)
class MessageProtocol(Protocol):
    """Frames in, ``message_received`` out; ``send`` frames out."""

    log = logs.logger()

    def __init__(self) -> None:
        self.reader = MessageReader()
        self.writer = MessageWriter()
        self.end: RelayEnd | None = None
        self._raw = False
        self._early: list[bytes] = []
        self._early_eof = False
        self.closed = False
        #: called at connectionLost while no relay end is attached (a raw connection still waiting)
        self.on_lost: Any = None
        self.relay: Any = None

    #: the owner's ConnectionSet, so stopping a service can close and await this connection
    tracker: Any = None

    def makeConnection(self, transport: Any) -> None:
        if self.tracker is not None:
            self.tracker.add(self)
        super().makeConnection(transport)

    # -- incoming -------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        if self._raw:
            end = self.end
            if end is not None:
                end.data_received(data)
            else:
                self._early.append(data)
            return
        reader = self.reader
        reader.feed(data)
        try:
            while not self._raw and not self.closed:
                msg = reader.next_message()
                if msg is None:
                    break
                self.message_received(msg)
        except ProtocolError as e:
            self.protocol_error(str(e))

    def message_received(self, msg: Message) -> None:
        raise NotImplementedError

    def protocol_error(self, reason: str) -> None:
        """The peer broke the protocol: log why and drop this connection only."""
        peer = self.transport.getPeer() if self.transport is not None else None
        logs.throttle.warn(self.log, "message protocol error", "closing connection from {peer}: {reason}",
                           peer=peer, reason=reason)
        self.close()

    def readConnectionLost(self) -> None:
        self.log.debug("peer finished sending (raw={raw}, relayed={relayed})", raw=self._raw,
                       relayed=self.end is not None)
        if self._raw:
            if self.end is not None:
                self.end.read_connection_lost()
            else:
                self._early_eof = True
        else:
            # the peer will send no more messages: nothing left to do on this connection
            self.close()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closed = True
        if self.tracker is not None:
            self.tracker.discard(self)
        if self.end is not None:
            self.end.connection_lost(reason)
        elif self.on_lost is not None:
            self.on_lost(reason)

    # -- outgoing -------------------------------------------------------
    def send(self, msg: Message) -> None:
        if self.transport is not None and not self.closed:
            write_now(self.transport, self.writer.encode(msg))

    def start_encryption(self, key: bytes) -> None:
        """Both directions continue as AES-128-CFB streams (control channel after login)."""
        self.writer.start_encryption(CfbEncryptor(key))
        self.reader.start_decryption(CfbDecryptor(key))

    def switch_to_raw(self) -> None:
        """Stop parsing: every later byte belongs to the tunnelled stream.

        Bytes that arrived after the last message are kept and handed to the relay.
        The transport is paused until ``end`` is attached.
        """
        self._raw = True
        leftover = self.reader.take_buffer()
        if leftover:
            self._early.append(leftover)
        self.transport.pauseProducing()  # type: ignore[union-attr]  # connected; an IPushProducer

    def take_early(self) -> tuple[bytes, bool]:
        data = b"".join(self._early)
        self._early = []
        return data, self._early_eof

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.loseConnection()
