"""static_file: Go FileServer semantics over a work connection, with curl."""
from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from frptx.client.plugins import create_plugin
from frptx.test.plugin_support import Recording, buffered, curl
from frptx.test.support import Collector, connect, listen_local, roundtrip, until, with_timeout

LISTING = (b'<!doctype html>\n<meta name="viewport" content="width=device-width">\n<pre>\n'
           b'<a href="a&b%3Cc%3E.txt">a&amp;b&lt;c&gt;.txt</a>\n'
           b'<a href="big.bin">big.bin</a>\n'
           b'<a href="site/">site/</a>\n'
           b'<a href="sub%20dir/">sub dir/</a>\n'
           b'<a href="./x:y">x:y</a>\n'
           b'</pre>\n')


class StaticFileTests(TestCase):
    def setUp(self) -> None:
        self.root = self.mktemp()  # under _trial_temp, removed with it
        os.makedirs(self.root)
        os.mkdir(os.path.join(self.root, "sub dir"))
        os.mkdir(os.path.join(self.root, "site"))
        self.data = os.urandom(1000)
        self.write("sub dir/a.txt", b"hello\n")
        self.write("site/index.html", b"<b>index</b>")
        self.write("a&b<c>.txt", b"x")
        self.write("x:y", b"y")
        self.write("big.bin", self.data)

    def write(self, name: str, data: bytes) -> None:
        with open(os.path.join(self.root, name), "wb") as f:
            f.write(data)

    def plugin_port(self, **options: str) -> int:
        plugin = create_plugin({"type": "static_file", "localPath": self.root, **options})
        return listen_local(self, plugin.build(reactor))

    async def test_file_range_and_listing(self) -> None:
        port = self.plugin_port(stripPrefix="static")
        base = f"http://127.0.0.1:{port}/static"
        out, err, code = await curl(f"{base}/big.bin")
        self.assertEqual((code, out), (0, self.data))
        out, err, code = await curl("-r", "0-99", "-D", "-", f"{base}/big.bin")
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 206"), head)
        self.assertIn(b"bytes 0-99/1000", head)
        self.assertEqual(body, self.data[:100])
        out, err, code = await curl("-D", "-", f"{base}/")
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertIn(b"text/html; charset=utf-8", head.lower())
        self.assertIn(b"last-modified: ", head.lower())
        self.assertEqual(body, LISTING)
        out, err, code = await curl(f"{base}/sub%20dir/a.txt")
        self.assertEqual(out, b"hello\n")
        out, err, code = await curl(f"{base}/site/")
        self.assertEqual(out, b"<b>index</b>")

    async def test_redirects_and_errors(self) -> None:
        port = self.plugin_port(stripPrefix="static")
        base = f"http://127.0.0.1:{port}"

        async def status(*args: str) -> tuple[bytes, bytes]:
            out, err, code = await curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", *args)
            code_text, _, location = out.partition(b" ")
            return code_text, location

        self.assertEqual(await status(f"{base}/static/site"), (b"301", f"{base}/static/site/".encode()))
        self.assertEqual(await status(f"{base}/static/site/index.html"), (b"301", f"{base}/static/site/".encode()))
        self.assertEqual(await status(f"{base}/static/big.bin/"), (b"301", f"{base}/static/big.bin".encode()))
        self.assertEqual((await status(f"{base}/static/nope"))[0], b"404")
        self.assertEqual((await status(f"{base}/other/big.bin"))[0], b"404")
        self.assertEqual((await status("-X", "POST", f"{base}/static/big.bin"))[0], b"405")
        self.assertEqual((await status(f"{base}/static/../../../etc/passwd", "--path-as-is"))[0], b"404")
        out, err, code = await curl(f"{base}/static/nope")
        self.assertEqual(out, b"404 page not found\n")

    async def test_basic_auth(self) -> None:
        port = self.plugin_port(httpUser="u", httpPassword="p")
        url = f"http://127.0.0.1:{port}/big.bin"
        out, err, code = await curl("-D", "-", url)
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 401"), head)
        self.assertIn(b'WWW-Authenticate: Basic realm="Restricted"', head)
        self.assertEqual(body, b"Unauthorized\n")
        out, err, code = await curl("-u", "u:wrong", "-o", "/dev/null", "-w", "%{http_code}", url)
        self.assertEqual(out, b"401")
        out, err, code = await curl("-u", "u:p", url)
        self.assertEqual(out, self.data)

    async def test_garbage_costs_only_its_connection(self) -> None:
        port = self.plugin_port()
        answer = await roundtrip(port, b"\x00\x01\x02 nonsense\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 400"), answer)
        out, err, code = await curl(f"http://127.0.0.1:{port}/big.bin")
        self.assertEqual(out, self.data)

    async def test_slow_reader_does_not_load_the_file(self) -> None:
        """A large file goes out through a producer: a paused client holds the file reads."""
        size = 64 << 20
        with open(os.path.join(self.root, "huge.bin"), "wb") as f:
            f.truncate(size)
        plugin = create_plugin({"type": "static_file", "localPath": self.root})
        recording = Recording(plugin.build(reactor))
        port = listen_local(self, recording)
        client = Collector(b"GET /huge.bin HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        await connect(port, client)
        client.transport.pauseProducing()

        def transport() -> object:
            # Site's protocol wraps the HTTPChannel that owns the transport
            return getattr(recording.built[0], "_channel", None) and recording.built[0]._channel.transport

        await until(lambda: bool(recording.built) and transport() is not None
                    and transport().producerPaused, "the file producer paused")  # type: ignore[attr-defined]
        self.assertLess(buffered(transport()), 4 << 20)
        client.transport.resumeProducing()
        data = await with_timeout(client.done, 30)
        self.assertEqual(len(data.partition(b"\r\n\r\n")[2]), size)
