"""End to end: load-balancing groups (``loadBalancer.group``/``groupKey``) with several frpc.

Our frps and several of our frpc in this process, real sockets on 127.0.0.1, in
each transport mode.  Each frpc's local service first writes its own name, so a
user learns which member served it from the first byte it reads.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest

from frptx.test.support import (
    LogWatch,
    Tunnel,
    async_test,
    connect,
    listen_local,
    mode_cases,
    tcp_proxy,
    with_timeout,
)
from frptx.test.test_interop_go import EchoReader


class Named(Protocol):
    """Says its service's name, then echoes."""

    def connectionMade(self) -> None:
        self.transport.write(self.factory.name)

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class NamedFactory(Factory):
    protocol = Named

    def __init__(self, name: bytes) -> None:
        self.name = name


async def served_by(port: int) -> bytes:
    """The name of the member that served one user (EchoReader: Go frp passes no half-close on)."""
    user = EchoReader(b"?")
    await connect(port, user)
    reply = await with_timeout(user.done, 15)
    assert reply, "the user's connection ended with no reply"
    return reply[:1]


async def spread(port: int, count: int) -> Counter[bytes]:
    """Which members served ``count`` users connecting one after the other."""
    return Counter([await served_by(port) for _ in range(count)])


def group(name: str, local: int, remote: int = 0, key: str = "k", **extra: Any) -> dict[str, Any]:
    return tcp_proxy(name, local, remote, loadBalancer={"group": "web", "groupKey": key}, **extra)


class GroupMixin:
    mode: dict[str, bool]
    timeout = 60

    async def two_members(self) -> tuple[Tunnel, int, Any, Any]:
        """frps and two frpc, each with a tcp proxy in group "web" in front of its own service.

        Both ask ``remotePort: 0`` (frps: a later member asks what the first asked) and get one port.
        """
        a = listen_local(self, NamedFactory(b"A"))
        b = listen_local(self, NamedFactory(b"B"))
        t = Tunnel(self, self.mode)
        t.start_server()
        frpc_a = t.start_client([group("web-a", a)])
        port = await t.remote_port("web-a", frpc_a)
        frpc_b = t.start_client([group("web-b", b)])
        self.assertEqual(await t.remote_port("web-b", frpc_b), port)  # type: ignore[attr-defined]
        return t, port, frpc_a, frpc_b

    @async_test
    async def test_connections_reach_both_members(self) -> None:
        """Our frps takes the members in turn: 10 users one after the other are 5 and 5."""
        t, port, *_ = await self.two_members()
        self.assertEqual(await spread(port, 10), {b"A": 5, b"B": 5})  # type: ignore[attr-defined]
        assert t.frps is not None
        self.assertEqual(len(t.frps.server.ingresses["tcp"].ports.used), 1)  # type: ignore[attr-defined]

    @async_test
    async def test_member_leaving_the_other_serves_all(self) -> None:
        t, port, frpc_a, _ = await self.two_members()
        logs = LogWatch(self)
        gone = logs.next("proxy [web-a] closed")
        await frpc_a.stopService()
        await with_timeout(gone, 15)
        self.assertEqual(await spread(port, 6), {b"B": 6})  # type: ignore[attr-defined]

    @async_test
    async def test_wrong_key_refused(self) -> None:
        t, port, *_ = await self.two_members()
        c = listen_local(self, NamedFactory(b"C"))
        frpc_c = t.start_client([group("web-c", c, key="wrong")])
        status = await with_timeout(frpc_c.proxy_manager.wait_settled("web-c"), 15)
        self.assertEqual((status.phase, status.error), ("start error", "group auth failed"))  # type: ignore[attr-defined]
        self.assertEqual(set(await spread(port, 6)), {b"A", b"B"})  # type: ignore[attr-defined]

    @async_test
    async def test_last_member_leaving_frees_the_port(self) -> None:
        """Once both members left, a plain proxy of a third frpc gets the group's port."""
        t, port, frpc_a, frpc_b = await self.two_members()
        logs = LogWatch(self)
        gone = logs.next("proxy [web-b] closed")
        await frpc_a.stopService()
        await frpc_b.stopService()
        await with_timeout(gone, 15)
        c = listen_local(self, NamedFactory(b"C"))
        frpc_c = t.start_client([tcp_proxy("plain", c, port)])
        self.assertEqual(await t.remote_port("plain", frpc_c), port)  # type: ignore[attr-defined]
        self.assertEqual(await served_by(port), b"C")  # type: ignore[attr-defined]


mode_cases(GroupMixin, globals(), unittest.TestCase)
