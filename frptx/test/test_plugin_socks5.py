"""socks5: RFC 1928/1929 on a work connection, with curl as the client."""
from __future__ import annotations

import json
import struct

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from frptx.client.plugins import create_plugin
from frptx.client.plugins.socks5 import Socks5Error, Socks5Handshake
from frptx.test.plugin_support import curl, listen_http_backend
from frptx.test.support import Collector, EchoFactory, connect, listen_local, roundtrip, with_timeout


class HandshakeTests(TestCase):
    """The sans-IO handshake, byte by byte."""

    def test_no_auth_connect_ipv4(self) -> None:
        h = Socks5Handshake("", "")
        self.assertEqual(h.feed(b"\x05\x01\x00"), (b"\x05\x00", None))
        out, request = h.feed(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + struct.pack("!H", 8080) + b"early")
        assert request is not None
        self.assertEqual((out, request.host, request.port, request.leftover), (b"", "127.0.0.1", 8080, b"early"))

    def test_split_across_reads_ipv6_and_domain(self) -> None:
        h = Socks5Handshake("", "")
        message = b"\x05\x01\x00" + b"\x05\x01\x00\x04" + bytes(15) + b"\x01" + b"\x00\x50"
        request = None
        for i in range(len(message)):
            _, request = h.feed(message[i:i + 1])
        assert request is not None
        self.assertEqual((request.host, request.port), ("::1", 80))
        h = Socks5Handshake("", "")
        _, request = h.feed(b"\x05\x01\x00\x05\x01\x00\x03\x09localhost\x00\x16")
        assert request is not None
        self.assertEqual((request.host, request.port), ("localhost", 22))

    def test_user_pass(self) -> None:
        h = Socks5Handshake("u", "secret")
        self.assertEqual(h.feed(b"\x05\x02\x00\x02"), (b"\x05\x02", None))
        self.assertEqual(h.feed(b"\x01\x01u\x06secret"), (b"\x01\x00", None))

    def test_bad_inputs(self) -> None:
        cases = [
            (Socks5Handshake("", ""), b"\x04\x01\x00", b""),  # SOCKS4: just close
            (Socks5Handshake("u", "p"), b"\x05\x01\x00", b"\x05\xff"),  # no user/pass offered
            (Socks5Handshake("", ""), b"\x05\x01\x02", b"\x05\xff"),  # no "no auth" offered
            (Socks5Handshake("u", "p"), b"\x05\x01\x02\x01\x01u\x01x", b"\x01\x01"),  # wrong password
            (Socks5Handshake("", ""), b"\x05\x01\x00\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x50",
             b"\x05\x07\x00\x01" + bytes(6)),  # BIND
            (Socks5Handshake("", ""), b"\x05\x01\x00\x05\x01\x00\x09", b"\x05\x08\x00\x01" + bytes(6)),  # bad atyp
            (Socks5Handshake("", ""), b"\x05\x01\x00" + bytes(2000), b""),  # garbage
        ]
        for h, data, reply in cases:
            with self.assertRaises(Socks5Error) as e:
                h.feed(data)
            self.assertEqual(e.exception.reply, reply, data)


class Socks5CurlTests(TestCase):
    def plugin_port(self, **options: str) -> int:
        plugin = create_plugin({"type": "socks5", **options})
        return listen_local(self, plugin.build(reactor))

    async def get(self, *args: str) -> tuple[dict, int]:
        out, err, code = await curl(*args)
        return (json.loads(out) if code == 0 else {}), code

    async def test_no_auth_ip_and_hostname(self) -> None:
        backend = listen_http_backend(self)
        port = self.plugin_port()
        seen, code = await self.get("--socks5", f"127.0.0.1:{port}", f"http://127.0.0.1:{backend}/a?b=1")
        self.assertEqual((code, seen["uri"]), (0, "/a?b=1"))
        seen, code = await self.get("--socks5-hostname", f"127.0.0.1:{port}", f"http://localhost:{backend}/h")
        self.assertEqual((code, seen["uri"]), (0, "/h"))

    async def test_username_password(self) -> None:
        backend = listen_http_backend(self)
        port = self.plugin_port(username="alice", password="s3cret")
        seen, code = await self.get("-x", f"socks5h://alice:s3cret@127.0.0.1:{port}", f"http://localhost:{backend}/")
        self.assertEqual((code, seen["method"]), (0, "GET"))
        _, code = await self.get("-x", f"socks5h://alice:wrong@127.0.0.1:{port}", f"http://localhost:{backend}/")
        self.assertNotEqual(code, 0)
        _, code = await self.get("--socks5", f"127.0.0.1:{port}", f"http://127.0.0.1:{backend}/")
        self.assertNotEqual(code, 0)

    async def test_refused_target_gets_reply_5(self) -> None:
        port = self.plugin_port()
        # port 1 (tcpmux) is never open on a test machine
        answer = await roundtrip(port, b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x01")
        self.assertEqual(answer, b"\x05\x00" + b"\x05\x05\x00\x01" + bytes(6))

    async def test_raw_tunnel_and_garbage(self) -> None:
        echo = listen_local(self, EchoFactory())
        port = self.plugin_port()
        self.assertEqual(await roundtrip(port, b"GET / HTTP/1.1\r\n\r\n"), b"")
        client = Collector(b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01" + struct.pack("!H", echo) + b"ping",
                           half_close=True)
        await connect(port, client)
        answer = await with_timeout(client.done, 10)
        self.assertEqual(answer[:4], b"\x05\x00\x05\x00")
        self.assertEqual(answer[-4:], b"ping")
