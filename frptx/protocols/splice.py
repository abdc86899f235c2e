# -*- test-case-name: frptx.test.test_splice -*-
"""Zero-copy relaying with splice(2) when both legs are plain TCP sockets.

When a relay joins two plain TCP connections (no TLS, no yamux stream, no
encryption or compression) the bytes need no processing, so frptx takes both
sockets over from Twisted (``start_spliced``) and moves the bytes itself:

* small reads (a request, a reply) are copied through one process-wide 16 KiB
  buffer: one ``recv_into`` and one ``send``, the cheapest path for short messages;
* a read that fills that buffer marks a bulk flow, which then goes socket -> pipe
  -> socket inside the kernel with ``os.splice`` (Linux), without copying through
  Python; the pipe is made only then, so short connections never pay for one;
* bytes the Twisted transports had buffered but not yet sent (a StartWorkConn
  frame) and bytes read before the relay existed are sent first, so nothing is
  reordered or lost;
* backpressure: a direction with bytes waiting (in its pipe or unsent from the copy)
  stops reading its source until the destination socket is writable again;
* half-close: EOF from one side becomes ``shutdown(SHUT_WR)`` on the other once
  that direction's pipe has drained; both directions done closes both;
* errors (RST) close both sides, like the portable relay.

Closing goes back through the Twisted transports, so protocols still get
``connectionLost`` and services still see their connections go away.
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
from typing import Any, Protocol as TypingProtocol

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IReadWriteDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from frptx import logs
from frptx.protocols.relay import unregister_producer
from frptx.transport.internals_tcp import (
    close_tcp_now,
    hand_over_read_registration,
    is_plain_tcp,
    take_tcp_write_buffer,
)

log = logs.logger(__name__)

#: bytes per splice call and pipe capacity (the kernel's default pipe is 64 KiB)
CHUNK = 1 << 20
PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)

SPLICE_AVAILABLE = hasattr(os, "splice")
_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)

#: small reads are copied through one process-wide buffer (see ``SpliceRelay._pump``)
COPY_SIZE = 1 << 14
_COPY = bytearray(COPY_SIZE)
_COPY_VIEW = memoryview(_COPY)


def connected_plain_tcp(transport: Any) -> bool:
    """A plain, connected Twisted TCP transport (not TLS, not a yamux stream, not wrapped): a leg
    a take-over relay (this one, ``tlsrelay``) can drive itself."""
    return is_plain_tcp(transport) and bool(transport.connected) and not transport.disconnecting


def eligible(transport: Any) -> bool:
    """A leg splice(2) can move: connected plain TCP, on a system that has splice."""
    return SPLICE_AVAILABLE and connected_plain_tcp(transport)


class _Direction:
    """One way of the splice: ``src`` socket -> pipe -> ``dst`` socket."""

    def __init__(self, src: Any, dst: Any) -> None:
        self.src, self.dst = src, dst
        self.rfd = self.wfd = -1  # the pipe is made when a bulk flow first needs it
        self.in_pipe = 0
        self.pending = b""  # copied bytes the destination did not take yet
        self.bulk = False  # splice straight away (the last read filled the copy buffer)
        self.no_pipe = False  # pipe2 failed once: copy only
        self.eof = False
        self.done = False
        #: bytes wait for the destination: the source is not read, the destination is polled for writing
        self.waiting = False
        self.moved = 0

    def open_pipe(self) -> bool:
        """Most tunnelled connections are short and never fill the copy buffer; they need no pipe.

        Without a pipe (out of file descriptors) the direction keeps copying, and does
        not ask again.
        """
        if self.no_pipe:
            return False
        try:
            self.rfd, self.wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            self.no_pipe = True
            log.warn("no pipe for splice ({error}); this connection copies instead", error=e)
            return False
        try:
            fcntl.fcntl(self.wfd, F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # e.g. over the unprivileged pipe-size budget: the default 64 KiB pipe works too
        return True

    def close_pipe(self) -> None:
        for fd in (self.rfd, self.wfd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.rfd = self.wfd = -1


class EndpointOwner(TypingProtocol):
    """A relay that moves the bytes of its sockets itself (``SpliceRelay``, ``TLSRelay``)."""

    def readable(self, end: Endpoint) -> None: ...

    def writable(self, end: Endpoint) -> None: ...

    def fail(self, reason: Any) -> None: ...


@implementer(IReadWriteDescriptor)
class Endpoint:
    """Reactor registration for one socket a relay took over from its Twisted transport.

    It stands where the transport stood in the reactor (``hand_over_read_registration``)
    and hands every event to its owner.
    """

    def __init__(self, owner: EndpointOwner, transport: Any) -> None:
        self.owner = owner
        self.transport = transport  # the Twisted TCP transport whose socket this is
        self.fd: int = transport.fileno()
        self.sock = transport.getHandle()  # ISystemHandle: the socket

    def fileno(self) -> int:
        return self.fd

    def doRead(self) -> None:
        self.owner.readable(self)

    def doWrite(self) -> None:
        self.owner.writable(self)

    def connectionLost(self, reason: Any) -> None:
        self.owner.fail(reason)

    def logPrefix(self) -> str:
        return type(self.owner).__name__


class SpliceRelay:
    """Both directions between two TCP transports, moved by the kernel."""

    def __init__(self, relay: Any, reactor: Any) -> None:
        self.relay = relay
        self.reactor = reactor
        a, b = relay.a.transport, relay.b.transport
        self.ends = {id(a): Endpoint(self, a), id(b): Endpoint(self, b)}
        self.ea, self.eb = self.ends[id(a)], self.ends[id(b)]
        self.ab = _Direction(self.ea, self.eb)  # a -> b (inbound to the service side)
        self.ba = _Direction(self.eb, self.ea)
        self.finished = False

    # -- set-up ------------------------------------------------------------------
    def start(self, a_buffered: bytes = b"", b_buffered: bytes = b"") -> None:
        """Take both sockets over from Twisted; ``*_buffered`` were read before the relay existed.

        Bytes already handed to a transport but not yet sent (a StartWorkConn frame, say)
        are taken out of its write buffer and sent first, so nothing is reordered.
        """
        ta, tb = self.ea.transport, self.eb.transport
        unsent_a, unsent_b = take_tcp_write_buffer(ta), take_tcp_write_buffer(tb)
        for end in (self.ea, self.eb):
            t = end.transport
            unregister_producer(t)
            t.stopWriting()
            # a reading socket keeps its poller registration, now calling the endpoint
            if not hand_over_read_registration(self.reactor, t, end):
                t.stopReading()
        self.ab.pending = unsent_b + a_buffered
        self.ba.pending = unsent_a + b_buffered
        self.ab.moved, self.ba.moved = -len(unsent_b), -len(unsent_a)  # frames are not traffic
        for d in (self.ab, self.ba):
            self.reactor.addReader(d.src)  # a no-op for a socket handed over above
        for d in (self.ab, self.ba):
            if d.pending:
                self._pump(d)

    # -- events ----------------------------------------------------------------
    def readable(self, end: Endpoint) -> None:
        d = self.ab if end is self.ea else self.ba
        self._pump(d)

    def writable(self, end: Endpoint) -> None:
        d = self.ba if end is self.ea else self.ab  # the direction that writes into ``end``
        self._pump(d)

    def _pump(self, d: _Direction) -> None:
        if self.finished or d.done:
            return
        try:
            while True:
                if d.pending:
                    n = d.dst.sock.send(d.pending)
                    d.moved += n
                    d.pending = d.pending[n:]
                    if d.pending:
                        break
                if d.in_pipe:
                    n = os.splice(d.rfd, d.dst.fd, d.in_pipe, flags=_FLAGS)
                    d.in_pipe -= n
                    d.moved += n
                    if d.in_pipe:
                        continue
                if d.eof:
                    self._direction_done(d)
                    return
                if not d.bulk:
                    # Most events carry little (a request, a reply): one recv and one send cost
                    # less than two splices, and a short read means the socket is drained, so
                    # the level-triggered poll needs no extra EAGAIN probe.
                    n = d.src.sock.recv_into(_COPY)
                    if n == 0:
                        d.eof = True
                        continue
                    try:
                        sent = d.dst.sock.send(_COPY_VIEW[:n])
                    except BlockingIOError:
                        sent = 0
                    d.moved += sent
                    if sent < n:
                        d.pending = bytes(_COPY_VIEW[sent:n])
                        break
                    if n < COPY_SIZE or (d.wfd < 0 and not d.open_pipe()):
                        break
                    d.bulk = True  # a full buffer: a bulk flow, which the kernel moves from now on
                n = os.splice(d.src.fd, d.wfd, CHUNK, flags=_FLAGS)
                if n == 0:
                    d.eof = True
                    continue
                d.in_pipe += n
                if n < COPY_SIZE:
                    d.bulk = False  # the flow slowed down: copy again
        except BlockingIOError:
            pass
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                pass
            else:
                self.fail(e)
                return
        self._interest(d)

    def _interest(self, d: _Direction) -> None:
        """Read the source only while nothing waits to be written; else wait for writable.

        Each endpoint is the source of exactly one direction and the destination of the
        other, so a direction's state alone says what its two registrations should be;
        the reactor is called only when that state changes (most events change nothing).
        """
        waiting = bool(d.in_pipe or d.pending)
        if waiting is d.waiting:
            return
        d.waiting = waiting
        if waiting:
            self.reactor.removeReader(d.src)
            self.reactor.addWriter(d.dst)
        else:
            if not d.eof:
                self.reactor.addReader(d.src)
            self.reactor.removeWriter(d.dst)

    def _direction_done(self, d: _Direction) -> None:
        d.done = True
        self.reactor.removeReader(d.src)
        self.reactor.removeWriter(d.dst)
        self._count()
        other = self.ba if d is self.ab else self.ab
        if other.done:
            self.close()
            return
        try:
            d.dst.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()

    def _count(self) -> None:
        counter = self.relay.counter
        if counter is not None:
            counter.inbound += self.ab.moved
            counter.outbound += self.ba.moved
            self.ab.moved = self.ba.moved = 0

    # -- endings -----------------------------------------------------------------
    def fail(self, reason: Any) -> None:
        if not self.finished:
            log.debug("spliced relay ended: {reason}", reason=reason)
        self.close(abort=True)

    def close(self, abort: bool = False) -> None:
        """Close both sockets; their protocols see ``connectionLost`` as usual.

        A clean close has nothing left to flush (the pipes are drained, Twisted's write
        buffers are empty), so both transports are closed at once, as the reactor would
        after its final write, without a round through the poller.
        """
        if self.finished:
            return
        self.finished = True
        self._count()
        for end in (self.ea, self.eb):
            self.reactor.removeReader(end)
            self.reactor.removeWriter(end)
        for d in (self.ab, self.ba):
            d.close_pipe()
        transports = [end.transport for end in (self.ea, self.eb) if end.transport.connected]
        if abort:
            for t in transports:
                t.abortConnection()
            return
        # Both FINs have crossed (or the peer is gone): close(2) alone ends the
        # connection, the shutdown(2) Twisted makes first would be one more syscall.
        close_tcp_now(transports, Failure(ConnectionDone()))


def start_spliced(relay: Any, reactor: Any, a_buffered: bytes = b"", b_buffered: bytes = b"") -> bool:
    """Run ``relay`` on splice from the start if both legs are plain TCP; False otherwise.

    Eligibility follows from the legs' transform chains: any transform means the bytes
    need Python, so only an untransformed relay between two bare TCP sockets qualifies.
    """
    if not (relay.plain() and eligible(relay.a.transport) and eligible(relay.b.transport)):
        return False
    relay.begin()
    relay.spliced = SpliceRelay(relay, reactor)
    relay.spliced.start(a_buffered, b_buffered)
    return True
