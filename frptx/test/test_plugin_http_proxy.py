"""http_proxy: CONNECT tunnels and plain proxy requests, with curl as the client."""
from __future__ import annotations

import base64
import json

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from frptx.client.plugins import create_plugin
from frptx.client.plugins.http_proxy import CONNECT_AUTH_REQUIRED, CONNECT_FAILED
from frptx.test.plugin_support import curl, header, listen_http_backend
from frptx.test.support import Collector, EchoFactory, connect, listen_local, roundtrip, with_timeout


class HTTPProxyTests(TestCase):
    def plugin_port(self, **options: str) -> int:
        plugin = create_plugin({"type": "http_proxy", **options})
        return listen_local(self, plugin.build(reactor))

    async def test_plain_get(self) -> None:
        """An absolute-URI GET goes to the URL's host in origin form, proxy headers removed."""
        backend = listen_http_backend(self)
        port = self.plugin_port()
        out, err, code = await curl("-x", f"http://127.0.0.1:{port}", "-H", "Proxy-Connection: keep-alive",
                                    f"http://127.0.0.1:{backend}/path?q=1")
        self.assertEqual(code, 0, err)
        seen = json.loads(out)
        self.assertEqual(seen["uri"], "/path?q=1")
        self.assertEqual(header(seen, "Host"), [f"127.0.0.1:{backend}"])
        self.assertEqual(header(seen, "Proxy-Connection"), [])

    async def test_post_body_and_two_requests_on_one_connection(self) -> None:
        backend = listen_http_backend(self)
        port = self.plugin_port()
        url = f"http://127.0.0.1:{backend}/p"
        out, err, code = await curl("-x", f"http://127.0.0.1:{port}", "--data-binary", "x" * 100_000, url,
                                    "--next", "-x", f"http://127.0.0.1:{port}", url + "2")
        self.assertEqual(code, 0, err)
        first, _, second = out.partition(b"}{")
        self.assertEqual(len(json.loads(first + b"}")["body"]), 100_000)
        self.assertEqual(json.loads(b"{" + second)["uri"], "/p2")

    async def test_connect_tunnel(self) -> None:
        """``curl -p`` tunnels plain HTTP through CONNECT."""
        backend = listen_http_backend(self)
        port = self.plugin_port()
        out, err, code = await curl("-p", "-x", f"http://127.0.0.1:{port}", f"http://127.0.0.1:{backend}/t")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["uri"], "/t")

    async def test_auth(self) -> None:
        backend = listen_http_backend(self)
        port = self.plugin_port(httpUser="bob", httpPassword="pw")
        proxy = f"http://127.0.0.1:{port}"
        url = f"http://127.0.0.1:{backend}/"
        out, err, code = await curl("-x", proxy, "-U", "bob:pw", url)
        self.assertEqual((code, json.loads(out)["method"]), (0, "GET"))
        self.assertEqual(header(json.loads(out), "Proxy-Authorization"), [])
        out, err, code = await curl("-p", "-x", proxy, "-U", "bob:pw", url)
        self.assertEqual(code, 0, err)
        out, err, code = await curl("-x", proxy, "-U", "bob:no", "-o", "/dev/null", "-w", "%{http_code}", url)
        self.assertEqual(out, b"407")
        out, err, code = await curl("-x", proxy, "-o", "/dev/null", "-w", "%{http_code}", url)
        self.assertEqual(out, b"407")

    async def test_connect_auth_failure_bytes(self) -> None:
        """frp's exact 407 for a CONNECT with bad credentials, then close."""
        port = self.plugin_port(httpUser="bob", httpPassword="pw")
        bad = base64.b64encode(b"bob:nope").decode()
        answer = await roundtrip(port, f"CONNECT 127.0.0.1:1 HTTP/1.1\r\nProxy-Authorization: Basic {bad}\r\n\r\n"
                                 .encode())
        self.assertEqual(answer, CONNECT_AUTH_REQUIRED)
        answer = await roundtrip(port, b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n")
        self.assertEqual(answer, CONNECT_AUTH_REQUIRED)
        # captured from Go frpc 0.65.0
        self.assertEqual(CONNECT_AUTH_REQUIRED, b"HTTP/1.1 407 Not authorized\r\nConnection: close\r\n"
                                                b"Proxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n")

    async def test_plain_auth_failure_bytes(self) -> None:
        """A plain request with bad credentials: Go's server 407, and the connection stays usable."""
        port = self.plugin_port(httpUser="bob", httpPassword="pw")
        answer = await roundtrip(port, b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n"
                                       b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n")
        self.assertRegex(answer, rb"\AHTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n"
                                 rb"Date: [^\r]+ GMT\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(answer.count(b"407"), 2)

    async def test_connect_refused_and_early_data(self) -> None:
        port = self.plugin_port()
        self.assertEqual(await roundtrip(port, b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n"), CONNECT_FAILED)
        self.assertEqual(CONNECT_FAILED, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")  # Go's bytes
        echo = listen_local(self, EchoFactory())
        answer = await roundtrip(port, f"connect 127.0.0.1:{echo} HTTP/1.1\r\nHost: x\r\n\r\nearly".encode())
        self.assertEqual(answer, b"HTTP/1.1 200 OK\r\n\r\nearly")

    async def test_garbage_costs_only_its_connection(self) -> None:
        backend = listen_http_backend(self)
        port = self.plugin_port()
        self.assertEqual(await roundtrip(port, b"CONNECT \x00\x01\x02\r\n\r\n"), b"")
        answer = await roundtrip(port, b"\x16\x03\x01garbage\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 400 Bad Request"), answer)
        answer = await roundtrip(port, b"GET /relative HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 500 Internal Server Error"), answer)
        self.assertIn(b'unsupported protocol scheme ""', answer)
        out, err, code = await curl("-x", f"http://127.0.0.1:{port}", f"http://127.0.0.1:{backend}/ok")
        self.assertEqual(json.loads(out)["uri"], "/ok")

    async def test_unreachable_plain_target(self) -> None:
        port = self.plugin_port()
        client = Collector(b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\nConnection: close\r\n\r\n")
        await connect(port, client)
        answer = await with_timeout(client.done, 10)
        self.assertTrue(answer.startswith(b"HTTP/1.1 500 Internal Server Error\r\n"), answer)
        # Go's error text, as frpc 0.65.0 sends it
        self.assertTrue(answer.endswith(b"\r\n\r\ndial tcp 127.0.0.1:1: connect: connection refused\n"), answer)
