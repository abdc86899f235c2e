# -*- test-case-name: frptx.test.test_protocols_server -*-
"""The base protocol of every frp connection: v1 messages, then maybe raw bytes.

Control connections exchange messages for their whole life (encrypted after
Login/LoginResp); work and visitor connections exchange one or two messages and
then turn into a raw byte pipe for the relay.  ``MessageProtocol`` covers both:
it decodes frames with the sans-IO ``MessageReader``, hands each message to
``message_received``, and after ``switch_to_raw`` forwards bytes to a relay end.
Protocol errors close only this connection, with the reason logged.

A peer that sends requests (frp Pings) and never reads the answers (Pongs) must not
make us buffer without bound: once more than ``MAX_UNREAD_REPLIES`` bytes wait in the
transport's write buffer, ``send`` stops reading the connection until it drained
(``_ReadGate``), as Go frps does by blocking on the write.

While an owner decides asynchronously what a message means (an frps server
plugin asked about a Login, a NewProxy, ...), ``hold`` stops parsing and reading
the connection, so later messages wait (in order, and still undecrypted until
the decision switches encryption on) instead of overtaking it; ``release`` reads on.
"""
from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from frptx import logs
from frptx.protocols.relay import RelaySink, unregister_producer
from frptx.protocols.tracking import TrackedConnection
from frptx.transport.inline import pending_write_bytes, write_now
from frptx.wire import (
    CfbDecryptor,
    CfbEncryptor,
    Message,
    MessageReader,
    MessageWriter,
    ProtocolError,
)

#: Bytes of messages waiting in the write buffer beyond which we stop reading the peer.
MAX_UNREAD_REPLIES = 1024 * 1024


@implementer(IPushProducer)
class _ReadGate:
    """Registered as the transport's streaming producer only while the write buffer is
    over ``MAX_UNREAD_REPLIES``: the transport pauses it (the buffer is full), which
    stops reading the peer, and resumes it once drained, which unregisters the gate
    and reads on.  Message connections have no producer otherwise, and the gate is
    gone before a relay registers its own (``switch_to_raw``) or the connection closes.
    """

    def __init__(self, protocol: MessageProtocol) -> None:
        self.protocol = protocol
        self.stopped_reading = False

    def pauseProducing(self) -> None:
        if not self.stopped_reading and not self.protocol.closed:
            self.stopped_reading = True
            self.protocol.transport.pauseProducing()  # type: ignore[union-attr]  # connected; an IPushProducer

    def resumeProducing(self) -> None:
        self.protocol._open_gate()

    def stopProducing(self) -> None:
        self.protocol._gate = None


@implementer(IHalfCloseableProtocol)
class MessageProtocol(TrackedConnection, Protocol):
    """Frames in, ``message_received`` out; ``send`` frames out."""

    log = logs.logger(__name__)

    def __init__(self) -> None:
        self.reader = MessageReader()
        self.writer = MessageWriter()
        self.end: RelaySink | None = None
        self._raw = False
        self._early: list[bytes] = []
        self._early_eof = False
        self.closed = False
        #: called at connectionLost while no relay end is attached (a raw connection still waiting)
        self.on_lost: Any = None
        self.relay: Any = None
        self._gate: _ReadGate | None = None
        self._held = False

    # -- incoming -------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        if self._raw:
            end = self.end
            if end is not None:
                end.data_received(data)
            else:
                self._early.append(data)
            return
        self.reader.feed(data)
        if not self._held:
            self._parse()

    def _parse(self) -> None:
        reader = self.reader
        try:
            while not self._raw and not self.closed and not self._held:
                msg = reader.next_message()
                if msg is None:
                    break
                self.message_received(msg)
        except ProtocolError as e:
            self.protocol_error(str(e))

    def message_received(self, msg: Message) -> None:
        raise NotImplementedError

    def hold(self) -> None:
        """Parse no further message (and stop reading the peer) until ``release``.

        Called from ``message_received``: the message being handled is the last
        one delivered; bytes already received stay in the reader, undecoded.
        """
        if self._held or self.closed:
            return
        self._held = True
        if self.transport is not None and not self._raw:
            self.transport.pauseProducing()  # type: ignore[attr-defined]  # an IPushProducer

    def release(self) -> None:
        """Deliver the messages that waited, then read the peer again (unless held anew,
        closed, or switched to raw -- then the relay owns reading)."""
        if not self._held:
            return
        self._held = False
        if self.closed or self._raw or self.transport is None:
            return
        self._parse()
        if not self._held and not self.closed and not self._raw and self.transport is not None \
                and not (self._gate is not None and self._gate.stopped_reading):
            self.transport.resumeProducing()  # type: ignore[attr-defined]  # an IPushProducer

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
        self._gate = None
        if self.tracker is not None:
            self.tracker.discard(self)
        if self.end is not None:
            self.end.connection_lost(reason)
        elif self.on_lost is not None:
            self.on_lost(reason)

    # -- outgoing -------------------------------------------------------
    def send(self, msg: Message) -> None:
        if self.transport is not None and not self.closed:
            data = self.writer.encode(msg)
            if self._gate is None and not self._raw and pending_write_bytes(self.transport) > MAX_UNREAD_REPLIES:
                # Registered before the write, so the write that finds the buffer full
                # pauses the gate (TCP and TLS pause a producer only in write).
                self._gate = _ReadGate(self)
                self.transport.registerProducer(self._gate, True)  # type: ignore[attr-defined]  # an IConsumer
            write_now(self.transport, data)

    def _open_gate(self) -> None:
        """The write buffer drained (or the connection changes hands): read on."""
        gate, self._gate = self._gate, None
        if gate is None or self.transport is None:
            return
        unregister_producer(self.transport)
        if gate.stopped_reading and not self.closed and not self._raw and not self._held:
            self.transport.resumeProducing()  # type: ignore[attr-defined]  # an IPushProducer

    def start_encryption(self, key: bytes) -> None:
        """Both directions continue as AES-128-CFB streams (control channel after login)."""
        self.writer.start_encryption(CfbEncryptor(key))
        self.reader.start_decryption(CfbDecryptor(key))

    def switch_to_raw(self, pause: bool = True) -> None:
        """Stop parsing: every later byte belongs to the tunnelled stream.

        Bytes that arrived after the last message are kept and handed to the relay.
        The transport is paused until ``end`` is attached, unless the caller attaches it
        before returning to the reactor (``pause=False``): a plain TCP socket that keeps
        reading can be handed to the splice relay without leaving the poller and coming back.
        """
        self._open_gate()
        self._raw = True
        self._held = False
        leftover = self.reader.take_buffer()
        if leftover:
            self._early.append(leftover)
        if pause:
            self.transport.pauseProducing()  # type: ignore[union-attr]  # connected; an IPushProducer

    def take_early(self) -> tuple[bytes, bool]:
        data = b"".join(self._early)
        self._early = []
        return data, self._early_eof

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self._open_gate()  # a TLS transport closes only once its producer is gone
            self.transport.loseConnection()
