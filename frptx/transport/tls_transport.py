# -*- test-case-name: frptx.test.test_tls_halfclose -*-
"""
A TLS transport with half-close, for frp's relays.

Both of frptx's TLS transports (frpc's in L{frptx.transport.tls_client}, frps's
in L{frptx.transport.tls_server}) are a L{HalfCloseableTLSTransport}:
C{loseWriteConnection} sends TLS C{close_notify} without touching the TCP
connection, so the relay can pass an EOF through TLS as it does over TCP.
The batched data path and every touch of Twisted's private TLS state live in
L{frptx.transport.internals.TLSMemoryBIOHooks}.
"""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.python.failure import Failure

from frptx import logs
from frptx.transport.inline import write_now
from frptx.transport.internals import TLSMemoryBIOHooks

__all__ = ["HalfCloseableTLSTransport"]

_log = logs.logger(__name__)


def _dropped_write(data: bytes) -> None:
    """A TLS transport's ``write`` once its write side is shut down: like TCP after
    ``shutdown(SHUT_WR)``, later writes go nowhere."""


class HalfCloseableTLSTransport(TLSMemoryBIOHooks):
    """
    L{TLSMemoryBIOProtocol} with half-close in both directions, so frp's
    relay can pass an EOF through a TLS connection the way it does over TCP,
    and with a faster data path (L{TLSMemoryBIOHooks}).  It is not Twisted's
    default L{BufferingTLSTransport}: that one holds small writes until the
    next reactor turn (a C{callLater(0)} and a loop turn of latency per
    write), and frptx's writers (the relay, a yamux session, the message
    framing) already write whole reads, frame batches and messages.

     - L{loseWriteConnection} sends TLS C{close_notify} (after everything
       written before it, and after the handshake) but leaves the TCP
       connection open: application data from the peer keeps arriving.
     - The peer's C{close_notify} becomes C{readConnectionLost} for an
       L{IHalfCloseableProtocol}, which may keep writing.  Other protocols
       keep Twisted's behaviour: we answer with our C{close_notify} and close.
     - Once both C{close_notify}s have crossed, the TCP connection is closed
       and the protocol gets C{connectionLost(ConnectionDone)}.

    OpenSSL (checked with 3.0, TLS 1.2 and 1.3) sends after receiving the
    peer's C{close_notify} and receives after sending ours, so this works for
    both versions.  (RFC 5246 asks a TLS 1.2 peer to answer C{close_notify}
    at once; nothing enforces it, and a peer of ours only answers when its
    application is done -- the same as a TCP FIN.)  Go's C{crypto/tls}
    returns C{io.EOF} from C{Read} after a C{close_notify}, still allows
    C{Write}, and sends its own C{close_notify} on C{Close}, so to Go frp
    (which never half-closes) our half-close looks like an ordinary close.

    @ivar _writeShutdownRequested: L{loseWriteConnection} was called.
    @ivar _closeNotifySent: our C{close_notify} went out because of
        L{loseWriteConnection} (not C{loseConnection}).
    """

    _writeShutdownRequested = False
    _closeNotifySent = False

    # ciphertext goes to the socket at once when its buffer is empty
    send_ciphertext = staticmethod(write_now)

    # -- sending side -----------------------------------------------------------

    def loseWriteConnection(self) -> None:
        """
        Shut down the sending direction: send C{close_notify} once all data
        written so far has gone through TLS; later writes are dropped.
        Reading goes on until the peer's C{close_notify}, or L{loseConnection}.
        """
        if self._writeShutdownRequested or self.disconnecting or not self.connected:
            _log.debug("TLS half-close: loseWriteConnection ignored (requested={r}, disconnecting={d}, "
                       "connected={c})", r=self._writeShutdownRequested, d=self.disconnecting, c=self.connected)
            return
        if self.tls_lost:
            return
        self._writeShutdownRequested = True
        # Everything written so far is in TLS already (or held while the
        # handshake is in progress); anything written later is dropped.
        self.write = _dropped_write  # type: ignore[method-assign]
        self._maybeSendCloseNotify()

    def _maybeSendCloseNotify(self) -> None:
        """
        Send the C{close_notify} L{loseWriteConnection} asked for, if the
        handshake is done and no application data waits for it.
        """
        connection = self.tls_connection
        if (
            not self._writeShutdownRequested
            or self._closeNotifySent
            or not self.handshake_done
            or self.held_writes
            or self.tls_lost
            or self.disconnecting  # loseConnection took over the shutdown
            or connection is None
        ):
            if self._writeShutdownRequested and not self._closeNotifySent:
                _log.debug("TLS half-close: close_notify waits (handshake={h}, pending={p}, lost={l}, "
                           "disconnecting={d})", h=self.handshake_done, p=self.held_writes,
                           l=self.tls_lost, d=self.disconnecting)
            return
        _log.debug("TLS half-close: sending close_notify")
        self._closeNotifySent = True
        try:
            connection.shutdown()
        except SSL.Error:
            self.finish_tls(Failure())
            return
        self.send_tls_records()
        if IHalfCloseableProtocol.providedBy(self.wrappedProtocol):
            try:
                self.wrappedProtocol.writeConnectionLost()
            except BaseException:
                _log.failure("writeConnectionLost of {protocol} failed", protocol=self.wrappedProtocol)
                self.abortConnection()
                return
        if self.close_notify_received and not self.tls_lost:
            # The peer had already half-closed: both directions are done.
            self.finish_tls(None)

    def handshake_checked(self) -> None:
        # Data buffered during the handshake is sent by pending_writes_flushed
        # (called right after this by dataReceived), which then sends the
        # close_notify; without such data it can go now.
        if self.handshake_done and not self.held_writes:
            self._maybeSendCloseNotify()

    def pending_writes_flushed(self) -> None:
        self._maybeSendCloseNotify()

    def loseConnection(self) -> None:
        if self._closeNotifySent and not self.disconnecting and self.connected:
            # Our close_notify is out and there is nothing left to send: stop
            # reading and close the TCP connection, like loseConnection after
            # a TCP shutdown(SHUT_WR).  Waiting for the peer's close_notify
            # could take as long as the peer likes.
            self.disconnecting = True
            self.mark_tls_lost()
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        super().loseConnection()

    # -- receiving side ---------------------------------------------------------

    def peer_close_notify(self) -> None:
        """The peer sent C{close_notify}: it will send no more data."""
        _log.debug("TLS half-close: close_notify received")
        connection: Any = self.tls_connection
        sent = bool(connection.get_shutdown() & SSL.SENT_SHUTDOWN)
        half_closeable = IHalfCloseableProtocol.providedBy(self.wrappedProtocol)
        if half_closeable and self._closeNotifySent and not self.disconnecting:
            # We had half-closed: tell the protocol the peer is done too (as
            # TCP would), then close since both directions are finished.
            self.close_notify_received = True
            self.wrappedProtocol.readConnectionLost()  # type: ignore[attr-defined]
            if self.tls_lost:  # it called loseConnection
                return
        if sent or not half_closeable or (self.disconnecting and not self.has_producer):
            # Twisted's behaviour: answer (unless we already did) and close.
            # Passing None means connectionLost gets the TCP transport's reason.
            self.shutdown_tls()
            self.finish_tls(None)
            return
        self.close_notify_received = True
        if self.disconnecting:
            # loseConnection is waiting for its producer to finish; the
            # shutdown at unregisterProducer now completes both directions.
            return
        self.wrappedProtocol.readConnectionLost()  # type: ignore[attr-defined]
