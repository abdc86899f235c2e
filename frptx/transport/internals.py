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
* OpenSSL's text for an X509 verify error number, which pyOpenSSL does not expose;
* the TLS data path's OpenSSL calls made through pyOpenSSL's cffi binding (a connection's
  ``_ssl`` and memory BIOs, ``_raise_ssl_error``): pyOpenSSL's methods cost more than the
  calls (``CFFI_CALLS``, with ``API_CALLS`` as the fallback);
* importing the reactor without pyOpenSSL, which Twisted's TCP and POSIX reactor
  modules import at import time for ``startTLS``/``listenSSL`` (about 6 MiB of RSS
  a frps or frpc without TLS never uses).

They live in three modules, split by what each may import: this one (pyOpenSSL and
``twisted.protocols.tls``: the TLS data path), L{frptx.transport.internals_tcp}
(Twisted's TCP transport and the epoll reactor; the plain data path, which must not
load pyOpenSSL) and L{frptx.transport.internals_reactor} (nothing: it runs before the
reactor exists).

Nothing else in frptx may touch a private Twisted attribute: code elsewhere calls the
named functions of these modules, or subclasses L{TLSMemoryBIOHooks} and uses its
named accessors.  ``frptx.test.test_twisted_internals`` holds a canary test for every
assumption made here; when a Twisted release changes one, a canary fails with a
message naming the Twisted attribute.

Where Twisted has a public API it is used instead (and not here): the socket of a TCP
transport comes from ``ISystemHandle.getHandle()``; loggers are named explicitly
(``Logger(namespace=...)``); frpc's connections go through endpoints.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from OpenSSL import SSL
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure

from frptx.transport.internals_tcp import is_plain_tcp, take_tcp_write_buffer

__all__ = [
    "API_CALLS",
    "CFFI_CALLS",
    "TLSCalls",
    "TLSMemoryBIOHooks",
    "TakenOverTLS",
    "buffer_pointer",
    "take_tls_over",
    "tls_takeover_ready",
    "x509_error_string",
]

# -- TLS (twisted.protocols.tls.TLSMemoryBIOProtocol) -----------------------------------

# pyOpenSSL's Python wrapper around each OpenSSL call (argument checks, a fresh cffi buffer,
# SSL_get_error and a Python exception for "nothing more to read") costs more than the call:
# ``bench/tls_micro.py`` measured 26 CPU µs per 614-byte request and response and side
# through pyOpenSSL's methods against 14 µs with one cffi call per operation, on the same
# OpenSSL objects.  So once a connection exists, its data path calls OpenSSL through the cffi
# binding pyOpenSSL itself uses (``OpenSSL._util.lib``, the connection's ``_ssl`` and its
# memory BIOs ``_into_ssl``/``_from_ssl``), and hands every failure but "want read" back to
# pyOpenSSL (``Connection._raise_ssl_error``, ``_handle_bio_errors``), so errors are the
# exceptions pyOpenSSL raises, with the same reasons.  Without that binding (a pyOpenSSL that
# moved it) the same functions go through pyOpenSSL's public methods.

#: plaintext is read out of OpenSSL into this much room before it is copied to bytes
_RECV_ROOM = 1 << 18
#: ciphertext is read out of the memory BIO in pieces of this size (a 256 KiB relay read
#: and its 16 records' overhead fit in one)
_BIO_ROOM = (1 << 18) + (1 << 13)
#: less room than a full record (16 KiB of plaintext) left: copy out what was read
_RECORD = 1 << 14

try:
    from OpenSSL._util import ffi as _ffi, lib as _lib  # private, hence the guard and the canary

    _SSL_read = _lib.SSL_read
    _SSL_write = _lib.SSL_write
    _SSL_get_error = _lib.SSL_get_error
    _BIO_read = _lib.BIO_read
    _BIO_write = _lib.BIO_write
    _WANT_READ = _lib.SSL_ERROR_WANT_READ
    _from_buffer = _ffi.from_buffer
    _buffer = _ffi.buffer
    # process-wide buffers, reused (what is read is copied out before they are given back);
    # not zeroed, so pages a small read never touches stay out of the RSS
    _raw = _ffi.new_allocator(should_clear_after_alloc=False)
    _RECV_BUFS = [_raw("char[]", _RECV_ROOM)]
    _BIO_BUFS = [_raw("char[]", _BIO_ROOM)]
    # the connection's attributes are set in __init__: look for them there, not on an instance
    TLS_CFFI = (all(callable(getattr(SSL.Connection, name, None))
                    for name in ("_raise_ssl_error", "_handle_bio_errors"))
                and {"_ssl", "_into_ssl", "_from_ssl"} <= set(SSL.Connection.__init__.__code__.co_names))
except Exception:  # pragma: no cover - a pyOpenSSL without the binding
    TLS_CFFI = False


def _cffi_send(connection: Any, data: bytes | memoryview) -> int:
    ssl = connection._ssl
    total = len(data)
    offset = 0
    with _from_buffer(data) as buf:
        while offset < total:
            # pyOpenSSL turns on partial writes: one record per call
            n = _SSL_write(ssl, buf + offset, min(total - offset, 1 << 30))
            if n <= 0:
                if _SSL_get_error(ssl, n) == _WANT_READ:
                    break
                connection._raise_ssl_error(ssl, n)
                break  # not reached: pyOpenSSL raised
            offset += n
    return offset


def _cffi_take(connection: Any) -> bytes:
    out = connection._from_ssl
    # a buffer of our own even if an OpenSSL callback re-entered us (nothing else runs meanwhile)
    buf = _BIO_BUFS.pop() if _BIO_BUFS else _raw("char[]", _BIO_ROOM)
    try:
        n = _BIO_read(out, buf, _BIO_ROOM)
        if n <= 0:
            return b""  # a memory BIO is empty ("retry"); it has no other failure
        data: bytes = _buffer(buf, n)[:]
        if n < _BIO_ROOM:
            return data
        pieces = [data]
        while n == _BIO_ROOM:
            n = _BIO_read(out, buf, _BIO_ROOM)
            if n <= 0:
                break
            pieces.append(_buffer(buf, n)[:])
        return b"".join(pieces)
    finally:
        _BIO_BUFS.append(buf)


def _cffi_feed(connection: Any, data: bytes) -> None:
    into = connection._into_ssl
    with _from_buffer(data) as buf:
        n = _BIO_write(into, buf, len(data))
    if n <= 0:
        connection._handle_bio_errors(into, n)


def _cffi_read(connection: Any) -> tuple[bytes, SSL.Error | None]:
    ssl = connection._ssl
    # SSL_read may run OpenSSL callbacks (a renegotiation's verify callback): a buffer of our own
    buf = _RECV_BUFS.pop() if _RECV_BUFS else _raw("char[]", _RECV_ROOM)
    offset = 0
    pieces: list[bytes] = []
    error: SSL.Error | None = None
    try:
        while True:
            n = _SSL_read(ssl, buf + offset, _RECV_ROOM - offset)
            if n > 0:
                offset += n
                if _RECV_ROOM - offset < _RECORD:
                    pieces.append(_buffer(buf, offset)[:])
                    offset = 0
                continue
            if _SSL_get_error(ssl, n) != _WANT_READ:
                try:
                    connection._raise_ssl_error(ssl, n)
                except SSL.Error as e:  # ZeroReturnError (close_notify) included
                    error = e
            break
        if offset:
            pieces.append(_buffer(buf, offset)[:])
    finally:
        _RECV_BUFS.append(buf)
    if not pieces:
        return b"", error
    return (pieces[0] if len(pieces) == 1 else b"".join(pieces)), error


def _api_send(connection: Any, data: bytes | memoryview) -> int:
    view = memoryview(data)
    offset = 0
    while offset < len(view):
        try:
            offset += connection.send(view[offset:])
        except SSL.WantReadError:
            break
    return offset


def _api_take(connection: Any) -> bytes:
    pieces = []
    while True:
        try:
            piece = connection.bio_read(_BIO_ROOM)
        except SSL.WantReadError:
            break
        pieces.append(piece)
        if len(piece) < _BIO_ROOM:
            break
    return b"".join(pieces)


def _api_feed(connection: Any, data: bytes) -> None:
    connection.bio_write(data)


def _api_read(connection: Any) -> tuple[bytes, SSL.Error | None]:
    pieces = []
    error: SSL.Error | None = None
    while True:
        try:
            pieces.append(connection.recv(_RECORD * 2))
        except SSL.WantReadError:
            break
        except SSL.Error as e:
            error = e
            break
    return b"".join(pieces), error


class TLSCalls(NamedTuple):
    """The four operations of a memory-BIO TLS connection's data path."""

    #: SSL_write as much of the plaintext as OpenSSL takes before it must read (all of it
    #: once the handshake is done); how much it took.  Raises other OpenSSL errors.
    send: Callable[[Any, bytes | memoryview], int]
    #: all the ciphertext waiting in the outgoing memory BIO (b"" if none)
    take: Callable[[Any], bytes]
    #: ciphertext from the peer into the incoming memory BIO
    feed: Callable[[Any, bytes], None]
    #: all the plaintext OpenSSL can make of what was fed, and the error that stopped it
    #: (C{ZeroReturnError} for the peer's C{close_notify}), or None for "needs more"
    read: Callable[[Any], tuple[bytes, SSL.Error | None]]


#: through pyOpenSSL's cffi binding
CFFI_CALLS = TLSCalls(_cffi_send, _cffi_take, _cffi_feed, _cffi_read) if TLS_CFFI else None
#: through pyOpenSSL's public methods
API_CALLS = TLSCalls(_api_send, _api_take, _api_feed, _api_read)


class TLSMemoryBIOHooks(TLSMemoryBIOProtocol):
    """``TLSMemoryBIOProtocol`` with frptx's data path and named hooks for half-close.

    Twisted reads the ciphertext out after every 16 KiB record and hands each piece to
    the TCP transport, which sends it on a later reactor turn.  Here the records of a
    write are made in a tight ``SSL_write`` loop (pyOpenSSL turns on partial writes: one
    record per call), read out of the BIO once, and sent at once when the socket's
    buffer is empty; the records that one TCP read brought reach the application as one
    piece.  That means overriding ``_write``, ``_flushSendBIO`` and ``_flushReceiveBIO`` (and
    ``dataReceived`` once the handshake is done, to feed the BIO with one C call); OpenSSL is
    called through L{tls_calls}.

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
    #: the relay that drives this connection's socket and OpenSSL object itself
    #: (L{take_tls_over}); closing the transport closes that relay
    taken_over_by: Any = None
    #: how OpenSSL is called (a class attribute, so a test can run a connection on either)
    tls_calls: TLSCalls = CFFI_CALLS or API_CALLS

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

    def loseConnection(self) -> None:
        owner = self.taken_over_by
        if owner is not None:  # the relay owns the socket and the OpenSSL object now
            owner.close()
            return
        super().loseConnection()

    def abortConnection(self) -> None:
        owner = self.taken_over_by
        if owner is not None:
            owner.close(abort=True)
            return
        super().abortConnection()

    # -- Twisted's private hooks ---------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """Twisted's C{dataReceived} once the handshake is done: feed, unbuffer, read."""
        if not self._handshakeDone or self._tlsConnection is None:
            super().dataReceived(data)
            return
        self.tls_calls.feed(self._tlsConnection, data)
        if self._appSendBuffer:
            self._unbufferPendingWrites()
        self._flushReceiveBIO()

    def _write(self, data: bytes) -> None:
        if self._lostTLSConnection:
            return
        connection = self._tlsConnection
        try:
            sent = self.tls_calls.send(connection, data)
        except SSL.Error:
            self._tlsShutdownFinished(Failure())
            return
        if sent < len(data):  # OpenSSL must read first (the handshake): hold the rest
            self._bufferedWrite(bytes(memoryview(data)[sent:]))
        self._flushSendBIO()

    def _flushSendBIO(self) -> None:
        connection = self._tlsConnection
        if connection is None:
            return
        data = self.tls_calls.take(connection)
        if data and self.transport is not None:
            self.send_ciphertext(self.transport, data)

    def _flushReceiveBIO(self) -> None:
        """
        L{TLSMemoryBIOProtocol._flushReceiveBIO}, except that the records of
        one read reach the application as one C{dataReceived}, that the
        peer's C{close_notify} goes to L{peer_close_notify} (a half-close,
        perhaps), and that nothing is delivered after C{loseConnection}.
        """
        if not self._lostTLSConnection and not self.close_notify_received:
            data, error = self.tls_calls.read(self._tlsConnection)
            if data:
                self._deliver([data])
            if error is not None:
                if isinstance(error, SSL.ZeroReturnError):
                    self.peer_close_notify()
                else:
                    self._tlsShutdownFinished(Failure(error))
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


# -- a TLS connection driven by a relay (frptx.protocols.tlsrelay) --------------------------------


def tls_takeover_ready(tls: Any) -> bool:
    """Whether a relay may drive ``tls``'s socket and OpenSSL object itself (L{take_tls_over}).

    Only one of frptx's TLS transports over a plain, connected TCP transport, with the
    cffi binding, its handshake done, and nothing Twisted's TLS layer would still have
    to act on: no writes held for the handshake, no producer, no shutdown begun by
    either side, no error recorded (``_reason``).
    """
    if not (TLS_CFFI and isinstance(tls, TLSMemoryBIOHooks)) or tls.taken_over_by is not None:
        return False
    connection = tls._tlsConnection
    lower: Any = tls.transport
    return bool(connection is not None and tls._handshakeDone and not tls._lostTLSConnection
                and not tls._aborted and tls.connected and not tls.disconnecting and tls._reason is None
                and not tls._appSendBuffer and tls._producer is None and not tls.close_notify_received
                and connection.get_shutdown() == 0
                and is_plain_tcp(lower) and lower.connected and not lower.disconnecting
                and not lower._writeDisconnected)


class TakenOverTLS:
    """The OpenSSL calls of a relay that drives a TLS connection itself.

    Like the transport's data path (``CFFI_CALLS``) but on cffi pointers into the
    caller's own buffers (L{buffer_pointer}), so a socket read goes into OpenSSL and
    OpenSSL's output goes to a socket without a Python ``bytes`` in between.  Failures
    are pyOpenSSL's exceptions, raised by pyOpenSSL's own error mapping.
    """

    __slots__ = ("connection", "_ssl", "_into", "_out")

    def __init__(self, connection: SSL.Connection) -> None:
        self.connection = connection
        self._ssl = connection._ssl
        self._into = connection._into_ssl
        self._out = connection._from_ssl

    def encrypt(self, ptr: Any, n: int) -> int:
        """SSL_write the C{n} bytes at C{ptr}; how many OpenSSL took (all of them, unless
        it must read first: a TLS 1.2 renegotiation)."""
        ssl = self._ssl
        offset = 0
        while offset < n:
            r = _SSL_write(ssl, ptr + offset, n - offset)  # partial writes: one record per call
            if r <= 0:
                if _SSL_get_error(ssl, r) == _WANT_READ:
                    break
                self.connection._raise_ssl_error(ssl, r)
                break  # not reached: pyOpenSSL raised
            offset += r
        return offset

    def ciphertext(self, ptr: Any, room: int) -> int:
        """Move up to C{room} bytes of ciphertext out of the outgoing BIO to C{ptr}; how many."""
        n: int = _BIO_read(self._out, ptr, room)
        return n if n > 0 else 0  # a memory BIO is empty ("retry"); it has no other failure

    def take(self) -> bytes:
        """All the ciphertext waiting in the outgoing BIO."""
        return _cffi_take(self.connection)

    def feed(self, ptr: Any, n: int) -> None:
        """Ciphertext from the peer (C{n} bytes at C{ptr}) into the incoming BIO."""
        r = _BIO_write(self._into, ptr, n)
        if r <= 0:
            self.connection._handle_bio_errors(self._into, r)

    def decrypt(self, ptr: Any, room: int) -> tuple[int, SSL.Error | None, bool]:
        """SSL_read into C{ptr} until OpenSSL needs more ciphertext, fails, or less than a
        record's room is left: (bytes read, the error that stopped it -- C{ZeroReturnError}
        for the peer's C{close_notify} -- and whether OpenSSL may hold more plaintext)."""
        ssl = self._ssl
        offset = 0
        while True:
            r = _SSL_read(ssl, ptr + offset, room - offset)
            if r > 0:
                offset += r
                if room - offset < _RECORD:
                    return offset, None, True
                continue
            if _SSL_get_error(ssl, r) != _WANT_READ:
                try:
                    self.connection._raise_ssl_error(ssl, r)
                except SSL.Error as e:
                    return offset, e, False
            return offset, None, False

    def shutdown(self) -> None:
        """Make our C{close_notify} (then L{take} it)."""
        self.connection.shutdown()


def buffer_pointer(buffer: bytearray) -> Any:
    """A cffi pointer to C{buffer}'s bytes for L{TakenOverTLS} (keep it as long as the buffer)."""
    return _from_buffer(buffer)


def take_tls_over(tls: Any, owner: Any) -> tuple[TakenOverTLS, bytes]:
    """Hand ``tls``'s OpenSSL object to ``owner`` (a relay that also took its TCP socket).

    Returns the calls on that object and the ciphertext made but not sent yet (the TCP
    transport's write buffer, then the outgoing BIO), which the owner must send first.
    Twisted's TLS layer is marked finished (``_lostTLSConnection``): it reads, writes and
    shuts down nothing more, and its ``connectionLost`` (the owner closes the TCP transport)
    goes straight to the application protocol.  ``loseConnection`` and ``abortConnection``
    on ``tls`` call ``owner.close``.  Check L{tls_takeover_ready} first.
    """
    calls = TakenOverTLS(tls._tlsConnection)
    unsent = take_tcp_write_buffer(tls.transport)
    tls._lostTLSConnection = True
    tls.taken_over_by = owner
    return calls, unsent + calls.take()


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
