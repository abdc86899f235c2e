"""A burst of users: every TCP port frptx listens on has a deep accept queue.

With Twisted's default backlog of 50, users arriving together while the
reactor is busy overflow the public port's accept queue: Linux drops their
SYNs (or the final ACK) and some end up reset.  The burst test opens its
connections while the reactor cannot run (synchronously, in the test body), so
the accept queue is the only place they can wait; with a backlog of 50 only
about 51 handshakes complete, whatever the timing.
"""
from __future__ import annotations

import resource
import select
import socket
import time
from typing import Any

from twisted.application.service import IService
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial import unittest

from frptx.protocols.tuning import LISTEN_BACKLOG
from frptx.server.service import FrpsService
from frptx.test.support import MODES, EchoFactory, Tunnel, server_config, tcp_proxy
from frptx.test.test_e2e import async_test


def _somaxconn() -> int:
    """Linux caps every listen backlog at net.core.somaxconn (4096 since Linux 5.4, 128 before)."""
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 4096


#: users connecting at once (each costs ~6 descriptors in this process: user, public, work x2, local x2);
#: never more than the kernel lets any accept queue hold
BURST = min(300, _somaxconn())
#: bound on waiting for the kernel to complete the burst's handshakes (loopback: milliseconds)
HANDSHAKE_BOUND = 5.0


class BacklogTests(unittest.TestCase):
    def test_backlog_is_deep(self) -> None:
        """Go frp listens with 4096; Linux caps a backlog at net.core.somaxconn."""
        self.assertGreaterEqual(LISTEN_BACKLOG, 4096)

    def test_bind_port_listens_with_the_backlog(self) -> None:
        clock = MemoryReactorClock()
        service = FrpsService(server_config(False), clock)
        IService(service).startService()
        [(_, _, backlog, _)] = clock.tcpServers
        self.assertEqual(backlog, LISTEN_BACKLOG)

    def test_public_port_listens_with_the_backlog(self) -> None:
        from frptx.server.registry import FrpServer
        from frptx.test.test_protocols_server import FakeClient, login
        from frptx.wire import NewProxy

        clock = MemoryReactorClock()
        client = FakeClient(FrpServer(server_config(False), clock))
        client.send(login())
        client.replies()
        client.send(NewProxy(proxy_name="web", proxy_type="tcp", remote_port=6000))
        [(port, _, backlog, _)] = clock.tcpServers
        self.assertEqual((port, backlog), (6000, LISTEN_BACKLOG))

    def test_visitor_port_listens_with_the_backlog(self) -> None:
        from types import SimpleNamespace

        from frptx.client.visitors import StcpVisitor
        from frptx.config import VisitorConfig

        clock = MemoryReactorClock()
        client = SimpleNamespace(reactor=clock, config=SimpleNamespace(user=""))
        StcpVisitor(client, VisitorConfig(name="v", type="stcp", server_name="s", bind_port=9000)).start()  # type: ignore[arg-type]
        [(port, _, backlog, _)] = clock.tcpServers
        self.assertEqual((port, backlog), (9000, LISTEN_BACKLOG))


class _User(Protocol):
    """One user of the burst: sends its number, waits for it to come back, closes."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.received = b""
        self.done: Deferred[bool] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.payload)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= len(self.payload):
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self.done.called:
            self.done.callback(self.received == self.payload)


class _Adopt(Factory):
    def __init__(self, user: _User) -> None:
        self.user = user

    def buildProtocol(self, addr: Any) -> Protocol:
        return self.user


def _raise_nofile(testcase: unittest.TestCase, wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target < wanted:
        raise unittest.SkipTest(f"the burst needs {wanted} file descriptors; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    testcase.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))


def open_burst(port: int, count: int) -> tuple[list[socket.socket], int]:
    """``count`` non-blocking connects to ``port`` while the reactor cannot accept.

    Returns the sockets and how many handshakes the kernel completed within
    ``HANDSHAKE_BOUND`` seconds.  Nothing here waits for the reactor: the
    connections can only queue in the listening socket's accept queue.
    """
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            socks.append(s)
            s.connect_ex(("127.0.0.1", port))
    except BaseException:
        for s in socks:
            s.close()
        raise
    poller = select.poll()
    by_fd = {s.fileno(): s for s in socks}
    for fd in by_fd:
        poller.register(fd, select.POLLOUT)
    connected: set[int] = set()
    deadline = time.monotonic() + HANDSHAKE_BOUND
    while len(connected) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for fd, _ in poller.poll(left * 1000):
            poller.unregister(fd)
            if by_fd[fd].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                connected.add(fd)
    return socks, len(connected)


class BurstTests(unittest.TestCase):
    timeout = 90

    @async_test
    async def test_burst_of_users_all_served(self) -> None:
        if BURST <= 100:
            raise unittest.SkipTest(f"net.core.somaxconn is {BURST}: too small to tell a deep backlog from 50")
        _raise_nofile(self, BURST * 8 + 512)
        echo = EchoFactory()
        local = reactor.listenTCP(0, echo, interface="127.0.0.1", backlog=LISTEN_BACKLOG)
        self.addCleanup(local.stopListening)
        t = Tunnel(self, MODES["nomux"])
        t.start_server()
        t.start_client([tcp_proxy("burst", local.getHost().port)])
        port = await t.remote_port("burst")

        socks, handshakes = open_burst(port, BURST)
        users: list[_User] = []
        try:
            self.assertEqual(handshakes, BURST, "handshakes completed while the reactor was busy")
            for i, s in enumerate(socks):
                user = _User(b"%d\n" % i)
                users.append(user)
                reactor.adoptStreamConnection(s.fileno(), socket.AF_INET, _Adopt(user))
        finally:
            for s in socks:
                s.close()  # adopted connections hold their own duplicate
        served = await gatherResults([u.done for u in users]).addTimeout(60, reactor)
        self.assertEqual(sum(served), BURST)
        self.assertEqual(echo.connections, BURST)

