"""unix_domain_socket: a work connection relayed to a Unix socket, over real sockets."""
from __future__ import annotations

import os
import tempfile

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from frptx.client.plugins import create_plugin
from frptx.test.plugin_support import OneProtocol, Pusher, Recording, buffered
from frptx.test.support import Collector, EchoFactory, connect, listen_local, roundtrip, until, with_timeout


class UnixDomainSocketTests(TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="frptx-uds-")
        self.path = os.path.join(self.dir, "s.sock")
        self.addCleanup(lambda: os.rmdir(self.dir))

    def listen_unix(self, factory: object) -> None:
        port = reactor.listenUNIX(self.path, factory)
        self.addCleanup(port.stopListening)

    def plugin_port(self) -> int:
        plugin = create_plugin({"type": "unix_domain_socket", "unixPath": self.path})
        self.factory = plugin.build(reactor)
        return listen_local(self, self.factory)

    async def test_echo_with_half_close(self) -> None:
        """Bytes go through both ways and the client's FIN reaches the socket (echo then closes)."""
        self.listen_unix(EchoFactory())
        port = self.plugin_port()
        payload = os.urandom(300_000)
        self.assertEqual(await roundtrip(port, payload), payload)

    async def test_missing_socket_closes_only_that_connection(self) -> None:
        port = self.plugin_port()
        self.assertEqual(await roundtrip(port, b"hello"), b"")
        self.listen_unix(EchoFactory())
        self.assertEqual(await roundtrip(port, b"again"), b"again")

    async def test_slow_reader_pauses_the_socket(self) -> None:
        """A client that stops reading stops the Unix side: memory stays bounded."""
        total = 64 << 20
        pusher = Pusher(total)
        self.listen_unix(OneProtocol(pusher))
        plugin = create_plugin({"type": "unix_domain_socket", "unixPath": self.path})
        recording = Recording(plugin.build(reactor))
        port = listen_local(self, recording)
        client = Collector()
        await connect(port, client)
        client.transport.pauseProducing()
        (served,) = recording.built
        # the work connection's buffer filled and paused its producer, the other leg:
        # without that the plugin would read the whole transfer into memory
        await until(lambda: served.transport.producerPaused and pusher.is_paused, "backpressure", 10)
        self.assertLess(pusher.sent, total)
        # the work connection holds at most its buffer and a read or two, not the transfer
        self.assertLess(buffered(served.transport), 4 << 20)
        client.transport.resumeProducing()
        data = await with_timeout(client.done, 30)
        self.assertEqual(len(data), total)
        await with_timeout(pusher.lost, 10)
