# -*- test-case-name: frptx.test.test_transport_connect -*-
"""Outgoing TCP connections for frpc's per-connection path, with less machinery than ``connectTCP``.

Without tcpMux, frpc opens two TCP connections for every user: a work connection to
frps and one to the local service.  ``reactor.connectTCP`` builds a ``Connector`` and a
``tcp.Client``, resolves the address on the next reactor turn (``callLater(0)``) even
when it is already an IP literal, calls ``connect(2)`` twice and registers the socket
with the poller four or five times.  Measured in one process, a local connect and
close costs about 130–200 µs of CPU that way and about 100 µs here.

``connect`` does the non-blocking ``connect(2)`` itself; a loopback connection is up at
once (a second ``connect(2)`` says so), any other waits for writability with one poller
registration and a check of ``SO_ERROR``; the connected socket goes to Twisted
with ``IReactorSocket.adoptStreamConnection``, a public API: the protocol then runs on
an ordinary Twisted TCP transport, with producers, half-close and ``abortConnection``
as before.  Hosts that are not IP literals (``localhost``) and reactors without
``adoptStreamConnection`` go through ``connectTCP``.
"""
from __future__ import annotations

import errno
import os
import socket
from typing import Any

from twisted.internet import error
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.interfaces import IProtocolFactory, IReactorSocket, IWriteDescriptor
from twisted.internet.posixbase import PosixReactorBase
from twisted.python.failure import Failure
from zope.interface import implementer

_CONNECTING = (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN)


def can_connect_fast(reactor: Any, host: str) -> bool:
    """Whether ``connect`` does the work itself: an IP literal, and a real poll-based reactor
    that adopts sockets (test reactors such as ``MemoryReactor`` record ``connectTCP`` calls
    instead, and keep doing so)."""
    return (isinstance(reactor, PosixReactorBase) and IReactorSocket.providedBy(reactor)
            and (isIPAddress(host) or isIPv6Address(host)))


def connect(reactor: Any, host: str, port: int, factory: IProtocolFactory, timeout: float,
            on_failed: Any, bind_address: tuple[str, int] | None = None) -> None:
    """Connect to ``host:port`` (an IP literal) and run ``factory``'s protocol on the connection.

    ``on_failed(Failure)`` is called, once, if the connection cannot be made (refused,
    unreachable, ``timeout`` seconds passed, the reactor stopped first); the factory
    is not told, as nothing was built.  Success is the protocol's ``connectionMade``.
    """
    family = socket.AF_INET6 if isIPv6Address(host) else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    except OSError as e:
        on_failed(Failure(error.ConnectBindError(e.errno, e.strerror)))
        return
    try:
        if bind_address is not None:
            sock.bind(bind_address)
        err = sock.connect_ex((host, port))
    except OSError as e:
        sock.close()
        on_failed(Failure(error.ConnectBindError(e.errno, e.strerror)))
        return
    if err in _CONNECTING:
        # Loopback completes the handshake inside the first connect(2), which still says
        # EINPROGRESS: asking once more tells at once (0 or EISCONN: connected; a refusal
        # shows too), without a poller registration and a reactor turn.
        err = sock.connect_ex((host, port))
        if err == errno.EISCONN:
            err = 0
    if err == 0:
        try:
            reactor.adoptStreamConnection(sock.fileno(), family, factory)
        finally:
            sock.close()  # the reactor has its own descriptor (a dup)
        return
    if err not in _CONNECTING and err != errno.EALREADY:
        sock.close()
        on_failed(Failure(error.getConnectError((err, os.strerror(err)))))
        return
    _Connecting(reactor, sock, family, factory, timeout, on_failed)


@implementer(IWriteDescriptor)
class _Connecting:
    """A socket whose ``connect(2)`` is in progress: writable means done, ``SO_ERROR`` says how."""

    def __init__(self, reactor: Any, sock: socket.socket, family: int, factory: IProtocolFactory,
                 timeout: float, on_failed: Any) -> None:
        self.reactor = reactor
        self.sock = sock
        self.fd = sock.fileno()
        self.family = family
        self.factory = factory
        self.on_failed = on_failed
        self.timer = reactor.callLater(timeout, self._timed_out)
        reactor.addWriter(self)

    def fileno(self) -> int:
        return self.fd

    def doWrite(self) -> None:
        self._finish()
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._fail(error.getConnectError((err, os.strerror(err))))
            return
        try:
            # the reactor takes its own descriptor (a dup) and our socket object closes ours
            self.reactor.adoptStreamConnection(self.fd, self.family, self.factory)
        finally:
            self.sock.close()

    def connectionLost(self, reason: Failure) -> None:
        """The poller reported an error (a refused connect shows as EPOLLERR) or the reactor stopped."""
        if self.timer is None:
            return  # already finished
        self._finish()
        try:
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError:
            err = 0
        if err:
            self._fail(error.getConnectError((err, os.strerror(err))))
        else:
            self._fail(error.ConnectError(string=f"connection attempt stopped: {reason.getErrorMessage()}"))

    def logPrefix(self) -> str:
        return "connecting"

    def _timed_out(self) -> None:
        self.timer = None
        self.reactor.removeWriter(self)
        self._fail(error.TimeoutError())

    def _finish(self) -> None:
        if self.timer is not None:
            if self.timer.active():
                self.timer.cancel()
            self.timer = None
        self.reactor.removeWriter(self)

    def _fail(self, exc: Exception) -> None:
        self.sock.close()
        on_failed, self.on_failed = self.on_failed, None
        if on_failed is not None:
            on_failed(Failure(exc))
