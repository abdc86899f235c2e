"""End to end: per-proxy encryption/compression and STCP visitors, in every transport mode."""
from __future__ import annotations

import os
from typing import Any

from twisted.trial import unittest

from frptx.test.support import (
    Collector,
    EchoFactory,
    Tunnel,
    connect,
    digest,
    listen_local,
    mode_cases,
    roundtrip,
    tcp_proxy,
    with_timeout,
)
from frptx.test.test_e2e import async_test, free_port


def stcp_proxy(name: str, local_port: int, secret: str, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": name, "type": "stcp", "localIP": "127.0.0.1", "localPort": local_port,
                           "secretKey": secret}
    doc.update(extra)
    return doc


def stcp_visitor(name: str, server_name: str, secret: str, bind_port: int, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": name, "type": "stcp", "serverName": server_name, "secretKey": secret,
                           "bindAddr": "127.0.0.1", "bindPort": bind_port}
    doc.update(extra)
    return doc


class SecureTunnelMixin:
    mode: dict[str, bool]
    timeout = 60

    @async_test
    async def test_encrypted_compressed_8mib_byte_identical(self) -> None:
        local = listen_local(self, EchoFactory())
        t = Tunnel(self, self.mode)
        t.start_server()
        t.start_client([tcp_proxy("secure", local, transport={"useEncryption": True, "useCompression": True})])
        port = await t.remote_port("secure")
        # half compressible, half random: both snappy chunk kinds go over the wire
        payload = (b"frptx " * 700_000)[: 4 * 1024 * 1024] + os.urandom(4 * 1024 * 1024)
        c = Collector(payload, half_close=True)
        await connect(port, c)
        received = await with_timeout(c.done, 40)
        self.assertEqual(digest(received), digest(payload))
        proxy = t.frps.server.proxies["secure"]
        self.assertEqual((proxy.counter.inbound, proxy.counter.outbound), (len(payload), len(payload)))

    @async_test
    async def test_stcp_through_visitor_and_wrong_secret(self) -> None:
        local = listen_local(self, EchoFactory())
        t = Tunnel(self, self.mode)
        t.start_server()
        good, bad = free_port(), free_port()
        frpc = t.start_client(
            [stcp_proxy("secret-echo", local, "s3cret", transport={"useEncryption": True})],
            visitors=[stcp_visitor("v-good", "secret-echo", "s3cret", good,
                                   transport={"useEncryption": True, "useCompression": True}),
                      stcp_visitor("v-bad", "secret-echo", "wrong", bad)])
        status = await frpc.proxy_manager.wait_settled("secret-echo")
        self.assertEqual((status.phase, status.remote_addr), ("running", ""))
        self.assertEqual(await roundtrip(good, b"through the visitor" * 1000),
                         b"through the visitor" * 1000)
        self.assertEqual(await roundtrip(bad, b"nope"), b"")
        self.assertEqual(frpc.visitors["v-bad"].last_error, "visitor connection of [secret-echo] auth failed")

    @async_test
    async def test_allow_users(self) -> None:
        local = listen_local(self, EchoFactory())
        t = Tunnel(self, self.mode)
        t.start_server()
        t.start_client([stcp_proxy("only-bob", local, "k", allowUsers=["bob"]), stcp_proxy("mine", local, "k")],
                       user="alice")
        await t.frpc.proxy_manager.wait_settled("only-bob")
        await t.frpc.proxy_manager.wait_settled("mine")
        ports = {name: free_port() for name in ("bob", "carol", "carol-mine")}
        bob = t.start_client([], user="bob", visitors=[
            stcp_visitor("v", "only-bob", "k", ports["bob"], serverUser="alice")])
        carol = t.start_client([], user="carol", visitors=[
            stcp_visitor("v", "only-bob", "k", ports["carol"], serverUser="alice"),
            stcp_visitor("v2", "mine", "k", ports["carol-mine"], serverUser="alice")])
        await with_timeout(bob.client.when_logged_in(), 10)
        await with_timeout(carol.client.when_logged_in(), 10)
        self.assertEqual(await roundtrip(ports["bob"], b"bob is allowed"), b"bob is allowed")
        self.assertEqual(await roundtrip(ports["carol"], b"carol is not"), b"")
        self.assertEqual(carol.visitors["v"].last_error,
                         "visitor connection of [alice.only-bob] user [carol] not allowed")
        # without allowUsers only the provider's own user may visit
        self.assertEqual(await roundtrip(ports["carol-mine"], b"x"), b"")
        self.assertIn("not allowed", carol.visitors["v2"].last_error)

    @async_test
    async def test_corrupt_encrypted_stream_closes_only_that_connection(self) -> None:
        """Garbage where ciphertext+snappy is expected: that tunnel closes, others go on."""
        local = listen_local(self, EchoFactory())
        t = Tunnel(self, self.mode)
        t.start_server()
        t.start_client([tcp_proxy("z", local, transport={"useCompression": True})])
        port = await t.remote_port("z")
        held = Collector(b"")
        await connect(port, held)
        held.transport.write(b"ok ")
        await with_timeout(held.received_at_least(3), 10)  # echoed: the relay is up
        # inject bytes that are not a snappy stream into the frps side of one work connection
        user = next(iter(t.frps.server.proxies["z"].users))
        user.relay.b.transport.transport.write(b"not snappy at all")  # under the TransformWrapper
        self.assertEqual(await with_timeout(held.done, 10), b"ok ")
        self.assertEqual(await roundtrip(port, b"others fine"), b"others fine")


mode_cases(SecureTunnelMixin, globals(), unittest.TestCase)
