"""The plugin registry and option checking."""
from __future__ import annotations

from twisted.trial.unittest import TestCase

from frptx.client.plugins import PLUGINS, PluginConfigError, create_plugin


class RegistryTests(TestCase):
    def test_frp_plugin_names(self) -> None:
        """Every frp 0.65.0 plugin type except virtual_net is registered under its frp name."""
        self.assertEqual(sorted(PLUGINS), sorted([
            "unix_domain_socket", "http_proxy", "socks5", "static_file", "http2http", "http2https",
            "https2http", "https2https", "tls2raw"]))
        self.assertEqual(PLUGINS["static_file"].option_names,
                         ("localPath", "stripPrefix", "httpUser", "httpPassword"))
        self.assertIn("enableHTTP2", PLUGINS["https2http"].option_names)
        self.assertNotIn("enableHTTP2", PLUGINS["http2http"].option_names)

    def test_each_type_names_its_class(self) -> None:
        """The registry imports a plugin's module on first look-up; each class is under its own name."""
        for kind in PLUGINS:
            self.assertEqual(PLUGINS[kind].name, kind)
        self.assertIsNone(PLUGINS.get("virtual_net"))

    def test_unknown_type(self) -> None:
        with self.assertRaises(PluginConfigError) as e:
            create_plugin({"type": "nope"}, "proxies[0].plugin")
        self.assertEqual(e.exception.path, "proxies[0].plugin.type")

    def test_unknown_key_has_its_path(self) -> None:
        with self.assertRaises(PluginConfigError) as e:
            create_plugin({"type": "socks5", "user": "x"}, "proxies[2].plugin")
        self.assertEqual(e.exception.path, "proxies[2].plugin.user")

    def test_required_key(self) -> None:
        with self.assertRaises(PluginConfigError) as e:
            create_plugin({"type": "unix_domain_socket"})
        self.assertEqual(e.exception.path, "plugin.unixPath")

    def test_bad_local_addr(self) -> None:
        with self.assertRaises(PluginConfigError) as e:
            create_plugin({"type": "http2http", "localAddr": "nohost"})
        self.assertEqual(e.exception.path, "plugin.localAddr")

    def test_bad_request_headers(self) -> None:
        with self.assertRaises(PluginConfigError) as e:
            create_plugin({"type": "http2http", "localAddr": "127.0.0.1:80", "requestHeaders": {"set": {"a": 1}}})
        self.assertEqual(e.exception.path, "plugin.requestHeaders.set")

    def test_missing_certificate_file(self) -> None:
        with self.assertRaises(PluginConfigError) as e:
            create_plugin({"type": "tls2raw", "localAddr": "127.0.0.1:80", "crtPath": "/nonexistent.crt",
                           "keyPath": "/nonexistent.key"})
        self.assertIn("/nonexistent.crt", str(e.exception))

    def test_options_kept(self) -> None:
        plugin = create_plugin({"type": "socks5", "username": "u", "password": "p"})
        self.assertEqual(plugin.options, {"username": "u", "password": "p"})


class HandOffTests(TestCase):
    """The way frpc will drive a plugin: a started transport and replayed early bytes."""

    async def test_socks5_with_replayed_bytes(self) -> None:
        from twisted.internet import reactor

        from frptx.test.plugin_support import HandOffFactory
        from frptx.test.support import EchoFactory, listen_local, roundtrip

        echo = listen_local(self, EchoFactory())
        factory = create_plugin({"type": "socks5"}).build(reactor)
        port = listen_local(self, HandOffFactory(factory, b"WORK"))
        request = b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01" + echo.to_bytes(2, "big")
        answer = await roundtrip(port, b"WORK" + request + b"tail")
        self.assertEqual(answer[:4], b"\x05\x00\x05\x00")
        self.assertEqual(answer[-4:], b"tail")

    async def test_https2http_with_replayed_client_hello(self) -> None:
        import json

        from twisted.internet import reactor

        from frptx.test.plugin_support import HandOffFactory, curl, listen_http_backend
        from frptx.test.support import listen_local

        backend = listen_http_backend(self)
        factory = create_plugin({"type": "https2http", "localAddr": f"127.0.0.1:{backend}"}).build(reactor)
        # an empty preamble: the TLS ClientHello is read first, then replayed into the plugin
        port = listen_local(self, HandOffFactory(factory, b""))
        out, err, code = await curl("-k", f"https://127.0.0.1:{port}/h")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["uri"], "/h")


class TransformedWorkConnectionTests(TestCase):
    """A plugin served through frp's encryption + compression, as frpc will with useEncryption."""

    def chain(self) -> object:
        from frptx.protocols.transforms import CfbTransform, SnappyTransform, TransformChain

        return TransformChain([SnappyTransform(), CfbTransform(b"0123456789abcdef")])

    async def connect_encrypted(self, port: int, payload: bytes) -> tuple[object, object]:
        from twisted.internet import reactor
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        from frptx.protocols.transforms import TransformWrapper
        from frptx.test.support import Collector

        client = Collector(payload)
        wrapper = TransformWrapper(self.chain(), client)  # type: ignore[arg-type]
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), wrapper)  # type: ignore[arg-type]
        return client, wrapper

    async def test_socks5_and_static_file_through_transforms(self) -> None:
        import os

        from twisted.internet import reactor

        from frptx.test.plugin_support import HandOffFactory
        from frptx.test.support import EchoFactory, listen_local, with_timeout

        echo = listen_local(self, EchoFactory())
        socks = listen_local(self, HandOffFactory(create_plugin({"type": "socks5"}).build(reactor), b"", self.chain))
        request = b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01" + echo.to_bytes(2, "big") + b"secret"
        client, _ = await self.connect_encrypted(socks, request)
        # method reply (2 bytes), CONNECT reply (10: IPv4 bound address), then the echo
        data = await with_timeout(client.received_at_least(2 + 10 + 6), 10)  # type: ignore[attr-defined]
        self.assertEqual(data[:6], b"\x05\x00\x05\x00\x00\x01")
        self.assertEqual(data[12:], b"secret")
        client.transport.loseConnection()  # type: ignore[attr-defined]
        await with_timeout(client.done, 10)  # type: ignore[attr-defined]

        root = self.mktemp()
        os.makedirs(root)
        body = os.urandom(1 << 20)
        with open(os.path.join(root, "f.bin"), "wb") as f:
            f.write(body)
        files = listen_local(self, HandOffFactory(
            create_plugin({"type": "static_file", "localPath": root}).build(reactor), b"", self.chain))
        client, _ = await self.connect_encrypted(files, b"GET /f.bin HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        answer = await with_timeout(client.done, 10)  # type: ignore[attr-defined]
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK"), answer[:100])
        self.assertEqual(answer.partition(b"\r\n\r\n")[2], body)
