# -*- test-case-name: frptx.test.test_tlsrelay -*-
"""A relay between one plain TCP leg and one TLS-over-TCP leg, driven without Twisted.

Without tcpMux, a TLS tunnel's relay joins a plain socket (the public user on frps, the
local service on frpc) and a TLS work connection.  The TLS leg cannot be spliced, but
its bytes need nothing from Twisted either: like the splice relay
(``frptx.protocols.splice``), ``TLSRelay`` takes both sockets over (the same reactor
registration hand-over, the same ``Endpoint`` objects in the reactor) and drives the TLS
leg's existing OpenSSL connection with its memory BIOs itself
(``frptx.transport.internals.TakenOverTLS``), instead of each event going through the TCP
transport, the TLS protocol, the relay ends and the other transport:

* plain -> TLS: ``recv_into`` -> ``SSL_write`` -> BIO read -> ``send`` on the TLS socket;
* TLS -> plain: ``recv_into`` -> BIO write -> ``SSL_read`` loop -> ``send`` on the plain
  socket; whatever OpenSSL wrote meanwhile (TLS 1.3 session tickets, a KeyUpdate
  answer) is sent on the TLS socket after every read;
* nothing is lost or reordered at the take-over: ciphertext unsent by the TCP transport
  or still in the outgoing BIO goes first, then the bytes read before the relay existed,
  then what OpenSSL still holds;
* backpressure: a direction with bytes the destination did not take stops reading its
  source until the destination is writable (at most one read's worth is held);
* half-close as ``HalfCloseableTLSTransport`` does it on the wire: EOF from the plain
  side becomes our ``close_notify`` (the TCP connection stays open), the peer's
  ``close_notify`` (or its FIN) becomes ``shutdown(SHUT_WR)`` on the plain socket; both
  done closes both sockets (the TLS one after our ``close_notify``);
* errors (a bad record, a reset) close both sides at once.

Closing goes back through the Twisted transports, so protocols still get
``connectionLost`` and services still see their connections go away.  Only a relay
with no transforms, a completed handshake and nothing unusual pending is taken over
(``start_tls_relayed``); every other one keeps the portable path.
"""
from __future__ import annotations

import errno
import socket
from typing import Any

from OpenSSL import SSL
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from frptx import logs
from frptx.protocols.relay import unregister_producer
from frptx.protocols.splice import Endpoint, connected_plain_tcp
from frptx.transport.internals import buffer_pointer, take_tls_over, tls_takeover_ready
from frptx.transport.internals_tcp import (
    close_tcp_now,
    hand_over_read_registration,
    take_tcp_write_buffer,
)

log = logs.logger(__name__)

#: bytes per read on either socket (the portable relay's read size, ``tuning``)
READ_SIZE = 1 << 18
#: plaintext is read out of OpenSSL into this much room (a full read's records fit)
PLAIN_ROOM = 1 << 18
#: ciphertext out of the BIO per call: a full plaintext read and its records' overhead fit in one
CIPHER_ROOM = (1 << 18) + (1 << 13)
#: ciphertext waiting for the TLS socket beyond which the TLS socket is not read either
#: (the peer's post-handshake messages we answer must not pile up while it does not read)
MAX_TLS_BACKLOG = 1 << 20

# process-wide buffers: everything read is sent or copied out before the next event
_PLAIN_IN = bytearray(READ_SIZE)
_CIPHER_IN = bytearray(READ_SIZE)
_PLAIN_OUT = bytearray(PLAIN_ROOM)
_CIPHER_OUT = bytearray(CIPHER_ROOM)
_PLAIN_IN_VIEW, _CIPHER_IN_VIEW = memoryview(_PLAIN_IN), memoryview(_CIPHER_IN)
_PLAIN_OUT_VIEW, _CIPHER_OUT_VIEW = memoryview(_PLAIN_OUT), memoryview(_CIPHER_OUT)
_POINTERS: list[Any] = []


def _pointers() -> list[Any]:
    """cffi pointers to the four buffers, made once (only where the relay is used)."""
    if not _POINTERS:
        _POINTERS.extend(buffer_pointer(b) for b in (_PLAIN_IN, _CIPHER_IN, _PLAIN_OUT, _CIPHER_OUT))
    return _POINTERS


class TLSRelay:
    """Both directions between a plain TCP transport and a TLS transport over TCP.

    ``up`` is plain -> TLS, ``down`` TLS -> plain.  ``out_tls`` is ciphertext the TLS
    socket did not take yet (records of plaintext, our ``close_notify``, OpenSSL's
    answers to the peer), ``out_plain`` plaintext the plain socket did not take yet.
    """

    def __init__(self, relay: Any, reactor: Any, tls_side: str) -> None:
        self.relay = relay
        self.reactor = reactor
        tls_end = relay.b if tls_side == "b" else relay.a
        plain_end = relay.a if tls_side == "b" else relay.b
        self.tls = tls_end.transport  # the TLS protocol (a HalfCloseableTLSTransport)
        self.ep = Endpoint(self, plain_end.transport)
        self.et = Endpoint(self, self.tls.transport)
        # TrafficCounter: inbound is a -> b
        self.up_attr, self.down_attr = ("inbound", "outbound") if tls_side == "b" else ("outbound", "inbound")
        self.calls: Any = None
        self.out_tls = b""
        self.out_plain = b""
        self.ssl_more = False  # OpenSSL may hold plaintext not read out yet
        self.up_eof = self.down_eof = False
        self.close_notify_sent = False
        self.up_done = self.down_done = False
        self.finished = False
        # what the reactor is asked for: read plain, read TLS, write plain, write TLS
        self._interest = (False, False, False, False)

    # -- set-up ------------------------------------------------------------------
    def start(self, plain_buffered: bytes = b"", tls_buffered: bytes = b"") -> None:
        """Take both sockets and the OpenSSL object over from Twisted.

        ``plain_buffered`` / ``tls_buffered``: plaintext read from either leg before the
        relay existed.  Bytes already handed to a transport but not yet sent (a
        StartWorkConn frame, a PROXY protocol header) are sent first.
        """
        unsent_plain = take_tcp_write_buffer(self.ep.transport)
        unregister_producer(self.tls)
        self.calls, unsent_tls = take_tls_over(self.tls, self)
        for end in (self.ep, self.et):
            t = end.transport
            unregister_producer(t)
            t.stopWriting()
            # a reading socket keeps its poller registration, now calling the endpoint
            if not hand_over_read_registration(self.reactor, t, end):
                t.stopReading()
            else:
                self._mark_reading(end)
        self.out_tls = unsent_tls
        self.out_plain = unsent_plain + tls_buffered
        counter = self.relay.counter
        if plain_buffered:
            view = memoryview(plain_buffered)
            try:
                for i in range(0, len(view), READ_SIZE):
                    self._encrypt_copy(view[i:i + READ_SIZE])
            except SSL.Error as e:
                self.fail(e)
                return
            if counter is not None:
                setattr(counter, self.up_attr, getattr(counter, self.up_attr) + len(plain_buffered))
        if tls_buffered and counter is not None:
            setattr(counter, self.down_attr, getattr(counter, self.down_attr) + len(tls_buffered))
        self.ssl_more = True  # plaintext OpenSSL decrypted but nobody read yet comes after tls_buffered
        # what is pending goes now; the sockets are read when the reactor says they are readable
        self._pump_down(read=False)
        if not self.finished:
            if self.out_tls:
                self._pump_up()
            else:
                self._update_interest()

    def _mark_reading(self, end: Endpoint) -> None:
        rp, rt, wp, wt = self._interest
        self._interest = (True, rt, wp, wt) if end is self.ep else (rp, True, wp, wt)

    def _encrypt_copy(self, data: memoryview) -> None:
        """Encrypt plaintext from a Python buffer (set-up only) onto ``out_tls``."""
        ptr = _pointers()[0]
        n = len(data)
        _PLAIN_IN_VIEW[:n] = data
        if self.calls.encrypt(ptr, n) != n:
            raise SSL.Error("TLS connection wants to read before it writes")
        self.out_tls += self.calls.take()

    # -- events ----------------------------------------------------------------
    def readable(self, end: Endpoint) -> None:
        if end is self.ep:
            self._pump_up()
        else:
            self._pump_down()

    def writable(self, end: Endpoint) -> None:
        if end is self.ep:
            self._pump_down()
        else:
            self._pump_up()

    def _pump_up(self) -> None:
        """plain -> TLS: flush what waits, then read, encrypt and send while the socket takes it."""
        if self.finished or self.up_done:
            return
        calls = self.calls
        try:
            while True:
                if self.out_tls:
                    n = self.et.sock.send(self.out_tls)
                    self.out_tls = self.out_tls[n:]
                    if self.out_tls:
                        break
                if self.up_eof:
                    if not self.close_notify_sent:
                        # as HalfCloseableTLSTransport.loseWriteConnection: close_notify, TCP stays open
                        self.close_notify_sent = True
                        calls.shutdown()
                        self.out_tls = calls.take()
                        continue
                    self._up_finished()
                    return
                n = self.ep.sock.recv_into(_PLAIN_IN)
                if n == 0:
                    self.up_eof = True
                    continue
                ptrs = _pointers()
                if calls.encrypt(ptrs[0], n) != n:  # OpenSSL must read first (renegotiation): not ours
                    raise SSL.Error("TLS connection wants to read before it writes")
                counter = self.relay.counter
                if counter is not None:
                    setattr(counter, self.up_attr, getattr(counter, self.up_attr) + n)
                m = calls.ciphertext(ptrs[3], CIPHER_ROOM)
                if m == CIPHER_ROOM:  # more than one piece (not for a read of READ_SIZE)
                    self.out_tls = bytes(_CIPHER_OUT_VIEW) + calls.take()
                    continue
                try:
                    sent = self.et.sock.send(_CIPHER_OUT_VIEW[:m])
                except BlockingIOError:
                    sent = 0
                if sent < m:
                    self.out_tls = bytes(_CIPHER_OUT_VIEW[sent:m])
                    break
                if n < READ_SIZE:
                    break  # a short read: the socket is drained
        except BlockingIOError:
            pass
        except (OSError, SSL.Error) as e:
            if not (isinstance(e, OSError) and e.errno in (errno.EAGAIN, errno.EWOULDBLOCK)):
                self.fail(e)
                return
        self._update_interest()

    def _pump_down(self, read: bool = True) -> None:
        """TLS -> plain: flush what waits, drain OpenSSL, then read and decrypt while the plain socket takes it."""
        if self.finished or self.down_done:
            return
        calls = self.calls
        try:
            drained = False
            while True:
                if self.out_plain:
                    n = self.ep.sock.send(self.out_plain)
                    self.out_plain = self.out_plain[n:]
                    if self.out_plain:
                        break
                if self.ssl_more:
                    ptrs = _pointers()
                    n, error, self.ssl_more = calls.decrypt(ptrs[2], PLAIN_ROOM)
                    self._send_tls_output()
                    if n:
                        counter = self.relay.counter
                        if counter is not None:
                            setattr(counter, self.down_attr, getattr(counter, self.down_attr) + n)
                        try:
                            sent = self.ep.sock.send(_PLAIN_OUT_VIEW[:n])
                        except BlockingIOError:
                            sent = 0
                        if sent < n:
                            self.out_plain = bytes(_PLAIN_OUT_VIEW[sent:n])
                    if error is not None:
                        if not isinstance(error, SSL.ZeroReturnError):
                            raise error
                        self.down_eof = True  # the peer's close_notify
                        self.ssl_more = False
                    if self.out_plain:
                        break
                    continue
                if self.down_eof:
                    self._down_finished()
                    return
                if drained or not read or len(self.out_tls) >= MAX_TLS_BACKLOG:
                    break
                n = self.et.sock.recv_into(_CIPHER_IN)
                if n == 0:
                    self.down_eof = True  # FIN without close_notify: the same for the plain side
                    continue
                calls.feed(_pointers()[1], n)
                self.ssl_more = True
                drained = n < READ_SIZE
        except BlockingIOError:
            pass
        except (OSError, SSL.Error) as e:
            if not (isinstance(e, OSError) and e.errno in (errno.EAGAIN, errno.EWOULDBLOCK)):
                self._send_alert()
                self.fail(e)
                return
        self._update_interest()

    def _send_tls_output(self) -> None:
        """What SSL_read made OpenSSL write (tickets, KeyUpdate answers) goes to the TLS socket."""
        data = self.calls.take()
        if not data:
            return
        if self.out_tls:
            self.out_tls += data
            return
        try:
            sent = self.et.sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            self.out_tls = data[sent:]

    def _send_alert(self) -> None:
        """Best effort: the alert OpenSSL made for a failure, before the reset."""
        try:
            data = self.out_tls + self.calls.take()
            if data:
                self.et.sock.send(data)
        except Exception:  # noqa: BLE001 - the connection is being aborted anyway
            pass

    def _update_interest(self) -> None:
        """Ask the reactor for what the state needs; call it only for what changed."""
        if self.finished:
            return
        want = (
            not self.up_eof and not self.out_tls and not self.up_done,
            not self.down_eof and not self.out_plain and not self.ssl_more and len(self.out_tls) < MAX_TLS_BACKLOG,
            bool(self.out_plain or self.ssl_more) and not self.down_done,
            bool(self.out_tls) and not self.up_done,
        )
        have = self._interest
        if want == have:
            return
        self._interest = want
        r = self.reactor
        if want[0] != have[0]:
            (r.addReader if want[0] else r.removeReader)(self.ep)
        if want[1] != have[1]:
            (r.addReader if want[1] else r.removeReader)(self.et)
        if want[2] != have[2]:
            (r.addWriter if want[2] else r.removeWriter)(self.ep)
        if want[3] != have[3]:
            (r.addWriter if want[3] else r.removeWriter)(self.et)

    def _up_finished(self) -> None:
        self.up_done = True
        if self.down_done:
            self.close()
        else:
            self._update_interest()

    def _down_finished(self) -> None:
        self.down_done = True
        if self.up_done:
            self.close()
            return
        try:
            self.ep.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.fail(e)
            return
        self._update_interest()

    # -- endings -----------------------------------------------------------------
    def fail(self, reason: Any) -> None:
        if not self.finished:
            log.debug("TLS relay ended: {reason}", reason=reason)
        self.close(abort=True)

    def close(self, abort: bool = False) -> None:
        """Close both sockets; their protocols see ``connectionLost`` as usual.

        A clean close after both directions finished has nothing left to send; one
        asked for from outside (a service stopping) sends our ``close_notify`` first if it
        can, as ``loseConnection`` on the TLS transport would.
        """
        if self.finished:
            return
        self.finished = True
        for end in (self.ep, self.et):
            self.reactor.removeReader(end)
            self.reactor.removeWriter(end)
        transports = [end.transport for end in (self.ep, self.et) if end.transport.connected]
        calls, self.calls = self.calls, None
        # Dropped here, not left to the cycle collector: this relay and the TLS protocol
        # refer to each other, and the OpenSSL object (some 35 KiB of native memory with its
        # buffers) would otherwise wait for a full collection.  Measured: without this, 1000
        # connect/close cycles grew frps and frpc by 12-19% (saturating near +10 MiB).
        if abort:
            for t in transports:
                t.abortConnection()
            return
        if not self.close_notify_sent and calls is not None:
            self.close_notify_sent = True
            try:
                calls.shutdown()
                data = self.out_tls + calls.take()
                if data:
                    self.et.sock.send(data)
            except (OSError, SSL.Error):
                pass
        close_tcp_now(transports, Failure(ConnectionDone()))


def _tls_side(relay: Any) -> str | None:
    """Which leg ("a" or "b") is the TLS one, if the other is plain TCP and both qualify."""
    a, b = relay.a.transport, relay.b.transport
    if connected_plain_tcp(a) and tls_takeover_ready(b):
        return "b"
    if connected_plain_tcp(b) and tls_takeover_ready(a):
        return "a"
    return None


def start_tls_relayed(relay: Any, reactor: Any, a_buffered: bytes = b"", b_buffered: bytes = b"") -> bool:
    """Run ``relay`` on a ``TLSRelay`` if one leg is plain TCP and the other TLS over TCP
    with no transforms and its handshake done; False (nothing done) otherwise."""
    if not relay.plain():
        return False
    side = _tls_side(relay)
    if side is None:
        return False
    relay.begin()
    relay.spliced = TLSRelay(relay, reactor, side)
    plain_buffered, tls_buffered = (a_buffered, b_buffered) if side == "b" else (b_buffered, a_buffered)
    relay.spliced.start(plain_buffered, tls_buffered)
    return True
