"""http2http / http2https: the streaming reverse proxy, with curl and raw clients."""
from __future__ import annotations

import json
import os

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.trial.unittest import TestCase

from frptx.client.plugins import create_plugin
from frptx.test.plugin_support import (
    OneProtocol,
    Pusher,
    Recording,
    buffered,
    curl,
    echo_site,
    header,
    listen_http_backend,
    make_cert,
)
from frptx.test.support import Collector, connect, listen_local, roundtrip, until, with_timeout
from frptx.transport.certs import load_certificates, load_private_key


def listen_https_backend(testcase: TestCase) -> int:
    from OpenSSL.crypto import X509, PKey

    from frptx.test.support import _LocalService

    directory = testcase.mktemp()
    os.makedirs(directory)
    crt, key = make_cert(directory)
    options = CertificateOptions(privateKey=PKey.from_cryptography_key(load_private_key(key, "k")),
                                 certificate=X509.from_cryptography(load_certificates(crt, "c")[0]))
    service = _LocalService(echo_site())
    port = reactor.listenSSL(0, service, options, interface="127.0.0.1")

    async def stop() -> None:
        await port.stopListening()
        await with_timeout(service.all_closed(), 10)

    from twisted.internet.defer import Deferred

    testcase.addCleanup(lambda: Deferred.fromCoroutine(stop()))
    return int(port.getHost().port)


class ReverseProxyTests(TestCase):
    def plugin_port(self, kind: str, **options: object) -> int:
        plugin = create_plugin({"type": kind, **options})
        self.recording = Recording(plugin.build(reactor))
        return listen_local(self, self.recording)

    async def test_http2http_rewrites(self) -> None:
        backend = listen_http_backend(self)
        port = self.plugin_port("http2http", localAddr=f"127.0.0.1:{backend}", hostHeaderRewrite="inner.test",
                                requestHeaders={"set": {"x-from-frp": "yes"}})
        out, err, code = await curl("-H", "X-Forwarded-For: 1.2.3.4", "-H", "Connection: keep-alive, X-Drop",
                                    "-H", "X-Drop: 1", f"http://127.0.0.1:{port}/a/b?c=d")
        self.assertEqual(code, 0, err)
        seen = json.loads(out)
        self.assertEqual(seen["uri"], "/a/b?c=d")
        self.assertEqual(header(seen, "Host"), ["inner.test"])
        self.assertEqual(header(seen, "X-From-Frp"), ["yes"])
        self.assertEqual(header(seen, "X-Forwarded-For"), [])  # http2http drops them
        self.assertEqual(header(seen, "X-Drop"), [])

    async def test_http2https_passes_forwarded(self) -> None:
        backend = listen_https_backend(self)
        port = self.plugin_port("http2https", localAddr=f"127.0.0.1:{backend}")
        out, err, code = await curl("-H", "X-Forwarded-For: 1.2.3.4", f"http://127.0.0.1:{port}/s")
        self.assertEqual(code, 0, err)
        seen = json.loads(out)
        self.assertTrue(seen["secure"])
        self.assertEqual(header(seen, "X-Forwarded-For"), ["1.2.3.4"])
        self.assertEqual(header(seen, "X-Forwarded-Proto"), [])

    async def test_keep_alive_chunked_upload_and_pipelining(self) -> None:
        backend = listen_http_backend(self)
        port = self.plugin_port("http2http", localAddr=f"127.0.0.1:{backend}")
        requests = (b"POST /one HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                    b"GET /two HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        client = Collector(requests)  # no half-close: like Go, a client EOF cancels a pending request
        await connect(port, client)
        answer = await with_timeout(client.done, 10)
        self.assertEqual(answer.count(b"HTTP/1.1 200 OK"), 2, answer)
        self.assertIn(b'"body": "hello world"', answer)
        self.assertIn(b'"uri": "/two"', answer)

    async def test_unreachable_backend_is_502(self) -> None:
        port = self.plugin_port("http2http", localAddr="127.0.0.1:1")
        out, err, code = await curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/")
        self.assertEqual(out, b"502")

    async def test_garbage_costs_only_its_connection(self) -> None:
        backend = listen_http_backend(self)
        port = self.plugin_port("http2http", localAddr=f"127.0.0.1:{backend}")
        answer = await roundtrip(port, b"\x00\xff garbage \r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 400 Bad Request"), answer)
        answer = await roundtrip(port, b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n")
        self.assertEqual(answer[:12], b"HTTP/1.1 400")
        out, err, code = await curl(f"http://127.0.0.1:{port}/ok")
        self.assertEqual(json.loads(out)["uri"], "/ok")

    async def test_slow_reader_pauses_the_backend(self) -> None:
        """A large response to a client that stops reading stops the backend, not memory."""
        total = 64 << 20
        pusher = Pusher(total, prefix=b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total, autostart=False)
        pusher.dataReceived = lambda data: (None if pusher.sent or pusher.is_paused else pusher.start())  # type: ignore[method-assign]
        backend = listen_local(self, OneProtocol(pusher))
        port = self.plugin_port("http2http", localAddr=f"127.0.0.1:{backend}")
        client = Collector(b"GET /big HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        await connect(port, client)
        client.transport.pauseProducing()
        (served,) = self.recording.built
        # the work connection's buffer filled and paused its producer, the other leg:
        # without that the plugin would read the whole transfer into memory
        await until(lambda: served.transport.producerPaused and pusher.is_paused, "backpressure", 10)
        self.assertLess(pusher.sent, total)
        self.assertLess(buffered(served.transport), 4 << 20)
        client.transport.resumeProducing()
        data = await with_timeout(client.done, 30)
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertIn(b"Content-Length: %d" % total, head)
        self.assertEqual(len(body), total)


class _Truncating(Protocol):
    """Promises 100 bytes, sends 10, and closes."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


class _Upgrading(Protocol):
    """Accepts an upgrade, then echoes."""

    upgraded = False

    def dataReceived(self, data: bytes) -> None:
        if self.upgraded:
            self.transport.write(data)  # type: ignore[union-attr]
        elif b"\r\n\r\n" in data:
            self.upgraded = True
            self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\n"  # type: ignore[union-attr]
                                 b"Connection: Upgrade\r\nUpgrade: echo\r\n\r\n")


class _Silent(Protocol):
    """Reads the request and never answers."""


class ForwarderEdgeTests(TestCase):
    def plugin_port(self, backend: int) -> int:
        plugin = create_plugin({"type": "http2http", "localAddr": f"127.0.0.1:{backend}"})
        return listen_local(self, plugin.build(reactor))

    async def test_truncated_response_closes_the_client(self) -> None:
        port = self.plugin_port(listen_local(self, Factory.forProtocol(_Truncating)))
        client = Collector(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        await connect(port, client)
        answer = await with_timeout(client.done, 10)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer)
        self.assertTrue(answer.endswith(b"\r\n\r\n0123456789"), answer)

    async def test_upgrade_becomes_a_tunnel(self) -> None:
        port = self.plugin_port(listen_local(self, Factory.forProtocol(_Upgrading)))
        client = Collector(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        await connect(port, client)
        head = await with_timeout(client.received_at_least(len(b"HTTP/1.1 101")), 10)
        self.assertTrue(head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), head)
        await with_timeout(client.received_at_least(head.find(b"\r\n\r\n") + 4 if b"\r\n\r\n" in head else 0), 10)
        end = (await with_timeout(client.received_at_least(1), 10)).find(b"\r\n\r\n") + 4
        client.transport.write(b"ping")  # type: ignore[union-attr]
        data = await with_timeout(client.received_at_least(end + 4), 10)
        self.assertEqual(data[end:], b"ping")
        client.transport.loseConnection()  # type: ignore[union-attr]
        await with_timeout(client.done, 10)

    async def test_client_gone_while_waiting_closes_the_backend(self) -> None:
        """The local-service cleanup fails if the backend connection were left open."""
        port = self.plugin_port(listen_local(self, Factory.forProtocol(_Silent)))
        client = Collector(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        await connect(port, client)
        client.transport.loseConnection()  # type: ignore[union-attr]
        await with_timeout(client.done, 10)


class _SlowSink(Protocol):
    """Reads nothing until ``go()``, then counts the body and answers."""

    def __init__(self, body: int) -> None:
        self.body = body
        self.seen = b""
        self.count = 0

    def connectionMade(self) -> None:
        self.transport.pauseProducing()  # type: ignore[union-attr]

    def go(self) -> None:
        self.transport.resumeProducing()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if self.count == 0 and b"\r\n\r\n" not in self.seen:
            self.seen += data
            if b"\r\n\r\n" not in self.seen:
                return
            data = self.seen.split(b"\r\n\r\n", 1)[1]
        self.count += len(data)
        if self.count >= self.body:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # type: ignore[union-attr]


class UploadBackpressureTests(TestCase):
    async def test_slow_backend_pauses_the_upload(self) -> None:
        total = 64 << 20
        sink = _SlowSink(total)
        backend = listen_local(self, OneProtocol(sink))
        plugin = create_plugin({"type": "http2http", "localAddr": f"127.0.0.1:{backend}"})
        recording = Recording(plugin.build(reactor))
        port = listen_local(self, recording)
        uploader = Pusher(total, prefix=b"POST /up HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
                                        b"Content-Length: %d\r\n\r\n" % total, close_when_done=False)
        received: list[bytes] = []
        uploader.dataReceived = received.append  # type: ignore[method-assign]
        await connect(port, uploader)

        def backend_leg() -> object:
            protocol = recording.built[0] if recording.built else None
            backend_protocol = getattr(protocol, "_backend", None)
            return getattr(backend_protocol, "transport", None)

        # the plugin's connection to the backend is full and has paused reading the client
        await until(lambda: backend_leg() is not None and backend_leg().producerPaused  # type: ignore[attr-defined]
                    and uploader.is_paused, "upload backpressure", 10)
        self.assertLess(uploader.sent, total)
        self.assertLess(buffered(backend_leg()), 4 << 20)
        sink.go()
        await with_timeout(uploader.lost, 30)  # the plugin closes after the answer (Connection: close)
        self.assertEqual(sink.count, total)
        self.assertTrue(b"".join(received).startswith(b"HTTP/1.1 200 OK"))
