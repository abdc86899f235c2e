# -*- test-case-name: frptx.test.test_twisted_internals -*-
"""Twisted's private TCP transport attributes frptx relies on (no pyOpenSSL here).

The catalogue of every private Twisted detail frptx uses, and why, is the docstring
of L{frptx.transport.internals}; this module holds the part the plain data path
needs -- writing to a TCP socket at once, taking over or counting a transport's
write buffer, closing without ``shutdown(2)``, the read size, handing a socket's
epoll registration over, the epoll reactor's dispatch without a log context --
plus the held plaintext of a TLS transport, which is a plain attribute read.  It imports neither
pyOpenSSL nor C{twisted.protocols.tls}, so a frps or frpc without TLS never loads
them (see L{frptx.transport.internals_reactor}).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.internet import tcp
from twisted.python import log as legacy_log
from twisted.python.failure import Failure

__all__ = [
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


# -- TLS (twisted.protocols.tls.TLSMemoryBIOProtocol), without importing it --------------


def tls_held_plaintext(transport: Any) -> int:
    """Plaintext a TLS transport holds until its handshake is done (``_appSendBuffer``)."""
    held = getattr(transport, "_appSendBuffer", None)
    return sum(map(len, held)) if held else 0
