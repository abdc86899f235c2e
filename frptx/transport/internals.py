# -*- test-case-name: frptx.test.test_twisted_internals -*-
"""Every use of Twisted's (and pyOpenSSL's) private attributes, in one place.

frptx relies on a few things Twisted does not publish, each for a measured reason:

* writing to a plain TCP socket at once when the transport's write buffer is empty
  (``frptx.transport.inline``), and counting / taking over what that buffer holds
  (``frptx.protocols.splice``, backpressure gates): Twisted offers no public view of
  a transport's write buffer;
* closing a spliced connection without the ``shutdown(2)`` Twisted makes first, and a
  larger read size / write-buffer mark for relay sockets (``FileDescriptor.bufferSize``);
* a TLS transport (``frptx.transport.tls_transport``) with half-close and a batched
  data path, which has to subclass ``TLSMemoryBIOProtocol`` and override its private
  hooks: Twisted has no public extension point for either;
* OpenSSL's text for an X509 verify error number, which pyOpenSSL does not expose.

Nothing else in frptx may touch a private Twisted attribute: code elsewhere calls the
named functions here, or subclasses L{TLSMemoryBIOHooks} and uses its named accessors.
``frptx.test.test_twisted_internals`` holds a canary test for every assumption made
here; when a Twisted release changes one, a canary fails with a message naming the
Twisted attribute.

Where Twisted has a public API it is used instead (and not here): the socket of a TCP
transport comes from ``ISystemHandle.getHandle()``; loggers are named explicitly
(``Logger(namespace=...)``); frpc's connections go through endpoints.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from OpenSSL import SSL
from twisted.internet import tcp
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python import log as legacy_log
from twisted.python.failure import Failure

__all__ = [
    "TLSMemoryBIOHooks",
    "close_tcp_now",
    "hand_over_read_registration",
    "is_plain_tcp",
    "lean_epoll_dispatch",
    "restore_epoll_dispatch",
    "set_tcp_buffer_size",
    "take_tcp_write_buffer",
    "tcp_idle",
    "tcp_unsent_bytes",
    "tls_held_plaintext",
    "x509_error_string",
]

# -- plain TCP transports (twisted.internet.tcp.Connection) -----------------------------

_PLAIN = (tcp.Server, tcp.Client)


def is_plain_tcp(transport: Any) -> bool:
    """A Twisted TCP transport without the old ``startTLS`` layer (``tcp.Connection.TLS``)."""
    return isinstance(transport, tcp.Connection) and getattr(transport, "TLS", False) is False


def set_tcp_buffer_size(transport: Any, size: int) -> bool:
    """Make a Twisted TCP transport read up to C{size} bytes per C{doRead} and pause its
    streaming producer above C{size} buffered bytes (``FileDescriptor.bufferSize``, one
    figure for both); False, and nothing done, for any other transport."""
    if not isinstance(transport, tcp.Connection):
        return False
    transport.bufferSize = size
    return True


def hand_over_read_registration(reactor: Any, transport: Any, new: Any) -> bool:
    """Have the epoll reactor deliver ``transport``'s read events to ``new`` (same descriptor)
    without unregistering and registering the descriptor again; False, and nothing done,
    if that cannot be done that way (another reactor, the transport not reading or writing).

    The splice relay takes both sockets of a relay over; through the public API that is
    ``stopReading`` (an ``epoll_ctl`` DEL) and ``addReader`` (an ADD) per socket, twice per
    tunnelled connection in each process.  ``EPollReactor`` keeps a descriptor's interest
    in ``_reads``/``_writes`` and the object it calls in ``_selectables[fd]``: replacing
    that object is the whole hand-over.  ``transport`` must not be writing (its write buffer
    was taken over) and must not be told to stop reading afterwards (the splice relay
    removes ``new`` before it closes the transport).
    """
    selectables = getattr(reactor, "_selectables", None)
    reads = getattr(reactor, "_reads", None)
    writes = getattr(reactor, "_writes", None)
    if not (isinstance(selectables, dict) and isinstance(reads, set) and isinstance(writes, set)):
        return False
    fd = transport.fileno()
    if selectables.get(fd) is not transport or fd not in reads or fd in writes:
        return False
    selectables[fd] = new
    return True


def tcp_idle(transport: Any) -> bool:
    """A connected plain TCP transport whose write buffer is empty, so a write may go to the
    socket at once (``frptx.transport.inline``).

    Reads ``_writeDisconnected`` (set once ``loseWriteConnection`` took effect), ``TLS``,
    and the write buffer: ``dataBuffer`` from ``offset`` on, plus ``_tempDataLen`` bytes
    queued in ``_tempDataBuffer``.  Called on every write: keep it one expression.
    """
    return (type(transport) in _PLAIN and transport.connected and not transport.disconnecting
            and not transport._writeDisconnected and not transport.TLS
            and transport.offset == len(transport.dataBuffer) and not transport._tempDataLen)


def tcp_unsent_bytes(transport: Any) -> int | None:
    """Bytes in a Twisted TCP transport's write buffer, or None for any other transport."""
    buffer = getattr(transport, "dataBuffer", None)
    if isinstance(buffer, (bytes, bytearray, memoryview)):
        return len(buffer) - int(transport.offset) + int(transport._tempDataLen)
    return None


def take_tcp_write_buffer(transport: Any) -> bytes:
    """Empty a Twisted TCP transport's write buffer, returning what it held.

    A relay that takes the socket over (splice) sends these bytes itself, first.
    """
    data = b""
    if transport.offset < len(transport.dataBuffer):
        data = bytes(transport.dataBuffer[transport.offset:])
    if transport._tempDataBuffer:
        data += b"".join(transport._tempDataBuffer)
    transport.dataBuffer = b""
    transport.offset = 0
    transport._tempDataBuffer = []
    transport._tempDataLen = 0
    return data


def close_tcp_now(transports: Iterable[Any], reason: Failure) -> None:
    """Close TCP transports whose write buffers are empty at once, without ``shutdown(2)``.

    For a spliced relay whose both FINs have crossed: ``close(2)`` alone ends the
    connection, and waiting for the reactor's next write turn (which ``loseConnection``
    does) costs a round through the poller.  All are marked disconnecting first, so a
    protocol that calls ``loseConnection`` on the other one from ``connectionLost`` is a
    no-op.  Their protocols see ``connectionLost(reason)`` as usual.
    """
    transports = list(transports)
    for t in transports:
        t.disconnecting = True
        t._shouldShutdown = False  # tcp.Connection.connectionLost would shutdown(2) first
    for t in transports:
        if t.connected:
            t.connectionLost(reason)


# -- the epoll reactor's event dispatch (twisted.internet.epollreactor) ----------------

def _lean_call_with_logger(logger: Any, func: Any, *args: Any, **kw: Any) -> Any:
    """``twisted.python.log.callWithLogger`` without the per-call legacy log context."""
    try:
        return func(*args, **kw)
    except KeyboardInterrupt:
        raise
    except BaseException:
        try:
            prefix = logger.logPrefix()
        except BaseException:  # noqa: BLE001 - as Twisted does: a broken logPrefix still logs the error
            prefix = "(buggy logPrefix method)"
        legacy_log.err(system=prefix)


class _LeanDispatchLog:
    """What ``twisted.internet.epollreactor`` sees as ``twisted.python.log`` after
    ``lean_epoll_dispatch``: the real module except for ``callWithLogger``."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.callWithLogger = _lean_call_with_logger

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def lean_epoll_dispatch() -> bool:
    """Make the epoll reactor call each ready descriptor without building a log context.

    ``EPollReactor.doPoll`` hands every event to ``log.callWithLogger``, which asks the
    descriptor for its ``logPrefix`` and runs the handler inside a new legacy log context
    (a dict copied and pushed on a thread-local stack): measured at 3.6 of the 9.5 µs of
    CPU an event costs on this machine, more than the ``recv`` and ``send`` a relayed
    event makes.  frptx logs through ``twisted.logger``, which does not read that
    context; only Twisted's legacy ``log.msg`` lines made inside a handler lose their
    ``[prefix]`` (they show ``[-]``).  Exceptions are still caught and logged, as before.

    Process-wide: frps and frpc turn it on at start-up (``frptx.tap``), not in tests.
    Returns False, doing nothing, if the module does not look as expected.
    """
    try:
        from twisted.internet import epollreactor
    except ImportError:  # not Linux
        return False
    current = getattr(epollreactor, "log", None)
    if isinstance(current, _LeanDispatchLog):
        return True
    if current is not legacy_log:
        return False
    epollreactor.log = _LeanDispatchLog(current)  # type: ignore[assignment]
    return True


def restore_epoll_dispatch() -> None:
    """Undo ``lean_epoll_dispatch`` (for tests)."""
    from twisted.internet import epollreactor

    current = getattr(epollreactor, "log", None)
    if isinstance(current, _LeanDispatchLog):
        epollreactor.log = current.real


# -- TLS (twisted.protocols.tls.TLSMemoryBIOProtocol) -----------------------------------

#: ciphertext is read out of OpenSSL's memory BIO in pieces of this size
_BIO_READ = 1 << 16
#: plaintext is read out of OpenSSL in pieces of this size (a record holds 16 KiB)
_TLS_RECV = 1 << 15


def tls_held_plaintext(transport: Any) -> int:
    """Plaintext a TLS transport holds until its handshake is done (``_appSendBuffer``)."""
    held = getattr(transport, "_appSendBuffer", None)
    return sum(map(len, held)) if held else 0


class TLSMemoryBIOHooks(TLSMemoryBIOProtocol):
    """``TLSMemoryBIOProtocol`` with frptx's data path and named hooks for half-close.

    Twisted reads the ciphertext out after every 16 KiB record and hands each piece to
    the TCP transport, which sends it on a later reactor turn.  Here the records of a
    write are made in a tight ``SSL_write`` loop (pyOpenSSL turns on partial writes: one
    record per call), read out of the BIO once, and sent at once when the socket's
    buffer is empty; the records that one TCP read brought reach the application as one
    piece.  That means overriding ``_write``, ``_flushSendBIO`` and ``_flushReceiveBIO``.

    Half-close (``frptx.transport.tls_transport``) needs to know when the handshake
    progressed, when buffered writes went out, and when the peer's ``close_notify``
    arrived: Twisted's private ``_checkHandshakeStatus``, ``_unbufferPendingWrites`` and
    the C{ZeroReturnError} in ``_flushReceiveBIO``, forwarded here to L{handshake_checked},
    L{pending_writes_flushed} and L{peer_close_notify}.  Subclasses read Twisted's
    private state only through the accessors below.

    @ivar close_notify_received: the peer's C{close_notify} arrived and the subclass
        took it as a half-close: nothing more is read from the TLS connection.
    """

    close_notify_received = False

    @staticmethod
    def send_ciphertext(transport: Any, data: bytes) -> None:
        """Hand records to the TCP transport; a subclass may send them at once
        (``frptx.transport.inline.write_now``), which this module cannot import."""
        transport.write(data)

    # -- hooks for subclasses ------------------------------------------------------------

    def handshake_checked(self) -> None:
        """Twisted advanced the handshake (it may be done now: L{handshake_done})."""

    def pending_writes_flushed(self) -> None:
        """Writes held during the handshake went through TLS."""

    def peer_close_notify(self) -> None:
        """The peer sent C{close_notify}.  Default: Twisted's behaviour (answer, close)."""
        self._shutdownTLS()
        self._tlsShutdownFinished(None)

    # -- accessors for Twisted's private state ---------------------------------------------

    @property
    def tls_connection(self) -> SSL.Connection | None:
        """The OpenSSL connection (None once lost); ``getHandle()`` says it may change."""
        return self._tlsConnection

    @property
    def tls_lost(self) -> bool:
        """The TLS connection is finished: nothing more is read or written through it."""
        return bool(self._lostTLSConnection)

    def mark_tls_lost(self) -> None:
        """Stop reading and writing through TLS (we close the TCP connection ourselves)."""
        self._lostTLSConnection = True

    @property
    def handshake_done(self) -> bool:
        return bool(self._handshakeDone)

    @property
    def held_writes(self) -> int:
        """How many writes wait for the handshake."""
        return len(self._appSendBuffer)

    @property
    def aborted(self) -> bool:
        return bool(self._aborted)

    @property
    def has_producer(self) -> bool:
        return self._producer is not None

    def finish_tls(self, reason: Failure | None) -> None:
        """The TLS connection ended (C{reason}, or None for the TCP transport's reason)."""
        self._tlsShutdownFinished(reason)

    def send_tls_records(self) -> None:
        """Send what OpenSSL has produced (alerts, handshake, records)."""
        self._flushSendBIO()

    def shutdown_tls(self) -> None:
        """Send (or answer) C{close_notify}, Twisted's way."""
        self._shutdownTLS()

    # -- Twisted's private hooks ---------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._lostTLSConnection:
            return
        view = memoryview(data)
        offset = 0
        while offset < len(data):
            try:
                offset += self._tlsConnection.send(view[offset:])
            except SSL.WantReadError:
                self._bufferedWrite(bytes(view[offset:]))
                break
            except SSL.Error:
                self._tlsShutdownFinished(Failure())
                return
        # room for all the records at once: one read out of the BIO, no join
        self._flushSendBIO(len(data) + (len(data) >> 9) + 256)

    def _flushSendBIO(self, size: int = _BIO_READ) -> None:
        connection = self._tlsConnection
        if connection is None:
            return
        size = max(size, _BIO_READ)
        pieces = []
        while True:
            try:
                piece = connection.bio_read(size)
            except SSL.WantReadError:
                break
            pieces.append(piece)
            if len(piece) < size:
                break  # a short read emptied the BIO: no need to provoke WantReadError
        if pieces and self.transport is not None:
            self.send_ciphertext(self.transport, pieces[0] if len(pieces) == 1 else b"".join(pieces))

    def _flushReceiveBIO(self) -> None:
        """
        L{TLSMemoryBIOProtocol._flushReceiveBIO}, except that the records of
        one read reach the application as one C{dataReceived}, that the
        peer's C{close_notify} goes to L{peer_close_notify} (a half-close,
        perhaps), and that nothing is delivered after C{loseConnection}.
        """
        pieces: list[bytes] = []
        while not self._lostTLSConnection and not self.close_notify_received:
            try:
                pieces.append(self._tlsConnection.recv(_TLS_RECV))
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self._deliver(pieces)  # what came before close_notify goes first
                self.peer_close_notify()
            except SSL.Error:
                self._deliver(pieces)
                self._tlsShutdownFinished(Failure())
        self._deliver(pieces)
        self._flushSendBIO()

    def _deliver(self, pieces: list[bytes]) -> None:
        # Like TCP, which stops reading at loseConnection: a peer that took our
        # close_notify as a half-close may still be sending.
        if pieces:
            data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            pieces.clear()
            if not self._aborted and not self.disconnecting:
                self.wrappedProtocol.dataReceived(data)

    def _checkHandshakeStatus(self) -> None:
        super()._checkHandshakeStatus()
        self.handshake_checked()

    def _unbufferPendingWrites(self) -> None:
        super()._unbufferPendingWrites()
        self.pending_writes_flushed()

    def _shutdownTLS(self) -> None:
        """
        Send our C{close_notify} and, once it was asked for by L{loseConnection},
        close the TCP connection after it -- without waiting for the peer's.

        Twisted keeps reading until the peer answers with its own
        C{close_notify}; a connection that is paused (a work connection whose
        local dial failed before the relay started) never reads it, and a peer
        that does not answer (an attacker after a yamux protocol error) keeps
        it open until some grace timer aborts it.  Go's C{tls.Conn.Close} sends
        C{close_notify} and closes the socket, so frptx closes like Go: at once,
        after the alert and everything before it have been handed to TCP.
        """
        super()._shutdownTLS()
        if (
            self.disconnecting
            and not self._aborted
            and not self._lostTLSConnection
            and self._tlsConnection is not None
            and self._tlsConnection.get_shutdown() & SSL.SENT_SHUTDOWN
        ):
            # connectionLost then reports the TCP reason (ConnectionDone), as a
            # local close over plain TCP does.
            self._lostTLSConnection = True
            self.transport.loseConnection()  # type: ignore[union-attr]


# -- pyOpenSSL ------------------------------------------------------------------------------


def x509_error_string(code: int) -> str | None:
    """OpenSSL's own text for an X509 verify error number, or None if unavailable.

    pyOpenSSL exposes no public call for this; its private cffi binding does.
    """
    try:
        from OpenSSL._util import ffi, lib  # private, hence the guard

        return str(ffi.string(lib.X509_verify_cert_error_string(code)).decode("ascii", "replace"))
    except Exception:
        return None
