"""https2http, https2https, tls2raw: TLS terminated on the work connection."""
from __future__ import annotations

import json
import os

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from frptx.client.plugins import create_plugin
from frptx.client.plugins.tls import InsecureClientCreator
from frptx.test.plugin_support import curl, header, listen_http_backend, make_cert
from frptx.test.support import EchoFactory, listen_local, roundtrip, with_timeout
from frptx.test.test_plugin_http import listen_https_backend


class TLSPluginTests(TestCase):
    def plugin_port(self, kind: str, **options: object) -> int:
        plugin = create_plugin({"type": kind, **options})
        return listen_local(self, plugin.build(reactor))

    async def test_https2http_self_signed(self) -> None:
        """No crtPath/keyPath: a self-signed certificate (curl -k), HTTP/1.1 even if h2 is asked for."""
        backend = listen_http_backend(self)
        port = self.plugin_port("https2http", localAddr=f"127.0.0.1:{backend}",
                                requestHeaders={"set": {"X-Real": "1"}})
        out, err, code = await curl("-k", "--http2", "-H", "X-Forwarded-For: 9.9.9.9", f"https://127.0.0.1:{port}/x")
        self.assertEqual(code, 0, err)
        seen = json.loads(out)
        self.assertFalse(seen["secure"])
        self.assertEqual(seen["uri"], "/x")
        self.assertEqual(header(seen, "X-Forwarded-For"), ["9.9.9.9, 127.0.0.1"])
        self.assertEqual(header(seen, "X-Forwarded-Proto"), ["https"])
        self.assertEqual(header(seen, "X-Forwarded-Host"), [f"127.0.0.1:{port}"])
        self.assertEqual(header(seen, "X-Real"), ["1"])
        _, err, code = await curl(f"https://127.0.0.1:{port}/x")
        self.assertNotEqual(code, 0)  # a self-signed certificate is not trusted without -k

    async def test_https2http_given_certificate_verified(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        crt, key = make_cert(directory)
        backend = listen_http_backend(self)
        port = self.plugin_port("https2http", localAddr=f"127.0.0.1:{backend}", crtPath=crt, keyPath=key,
                                enableHTTP2=False)
        out, err, code = await curl("--cacert", crt, "-w", "\n%{http_version}", f"https://localhost:{port}/v")
        self.assertEqual(code, 0, err)
        body, _, version = out.rpartition(b"\n")
        self.assertEqual((json.loads(body)["uri"], version), ("/v", b"1.1"))

    async def test_misdirected_request(self) -> None:
        """frp answers 421 when the TLS server name is not the Host."""
        backend = listen_http_backend(self)
        port = self.plugin_port("https2http", localAddr=f"127.0.0.1:{backend}")
        out, err, code = await curl("-k", "-o", "/dev/null", "-w", "%{http_code}", "--resolve",
                                    f"localhost:{port}:127.0.0.1", "-H", "Host: other.test",
                                    f"https://localhost:{port}/")
        self.assertEqual(out, b"421")

    async def test_https2https(self) -> None:
        backend = listen_https_backend(self)
        port = self.plugin_port("https2https", localAddr=f"127.0.0.1:{backend}", hostHeaderRewrite="in.test")
        out, err, code = await curl("-k", f"https://127.0.0.1:{port}/y")
        self.assertEqual(code, 0, err)
        seen = json.loads(out)
        self.assertTrue(seen["secure"])
        self.assertEqual(header(seen, "Host"), ["in.test"])

    async def test_tls2raw(self) -> None:
        backend = listen_http_backend(self)
        port = self.plugin_port("tls2raw", localAddr=f"127.0.0.1:{backend}")
        out, err, code = await curl("-k", f"https://127.0.0.1:{port}/raw")
        self.assertEqual(code, 0, err)
        seen = json.loads(out)
        self.assertEqual(seen["uri"], "/raw")
        self.assertEqual(header(seen, "X-Forwarded-For"), [])  # raw: nothing rewritten

    async def test_plaintext_garbage_costs_only_its_connection(self) -> None:
        backend = listen_http_backend(self)
        echo = listen_local(self, EchoFactory())
        for kind, target in (("https2http", backend), ("tls2raw", echo)):
            port = self.plugin_port(kind, localAddr=f"127.0.0.1:{target}")
            self.assertEqual(await roundtrip(port, b"GET / HTTP/1.1\r\n\r\n"), b"", kind)
        # the plugin still serves TLS (the echo server then echoes curl's request back)
        out, err, code = await curl("-v", "-k", f"https://127.0.0.1:{port}/")
        self.assertIn(b"SSL connection using", err)


class _Bye(Protocol):
    """A local service that answers "bye" and closes as soon as it is connected."""

    def connectionMade(self) -> None:
        self.transport.write(b"bye")  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


class _TLSClient(Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.reason: Failure | None = None
        self.done: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.reason = reason
        self.done.callback(None)


class TLS2RawCloseTests(TestCase):
    async def test_local_close_ends_tls_cleanly(self) -> None:
        """The local side's close reaches the client as a TLS close_notify, not a bare TCP FIN
        under the TLS stream (which a TLS client reports as a truncation)."""
        local = listen_local(self, Factory.forProtocol(_Bye))
        plugin = create_plugin({"type": "tls2raw", "localAddr": f"127.0.0.1:{local}"})
        port = listen_local(self, plugin.build(reactor))
        client = _TLSClient()
        endpoint = wrapClientTLS(InsecureClientCreator("localhost"), TCP4ClientEndpoint(reactor, "127.0.0.1", port))
        await connectProtocol(endpoint, client)
        client.transport.write(b"hi")  # type: ignore[union-attr]
        await with_timeout(client.done, 10)
        self.assertEqual(client.received, b"bye")
        assert client.reason is not None
        self.assertTrue(client.reason.check(ConnectionDone), client.reason)

    async def test_client_half_close_through_tls(self) -> None:
        """The client's close_notify reaches the local service as a FIN; its answer still comes back."""
        import os

        from frptx.test.support import Collector
        from frptx.transport.tls_client import wrap_client_factory

        local = listen_local(self, EchoFactory())
        plugin = create_plugin({"type": "tls2raw", "localAddr": f"127.0.0.1:{local}"})
        port = listen_local(self, plugin.build(reactor))
        payload = os.urandom(1 << 20)
        client = Collector(payload, half_close=True)
        factory = wrap_client_factory(Factory.forProtocol(lambda: client), InsecureClientCreator("localhost"),
                                      custom_first_byte=False)
        await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(factory)
        answer = await with_timeout(client.done, 10)
        self.assertEqual(answer, payload)
