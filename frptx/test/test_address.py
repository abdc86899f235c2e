"""bound_port: the port number of a TCP/UDP listening port, and a clear error otherwise."""
from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.address import UNIXAddress
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.internet.testing import MemoryReactor
from twisted.trial import unittest

from frptx.transport.address import bound_port


class BoundPortTests(unittest.TestCase):
    def test_tcp_port_zero(self) -> None:
        """A TCP port asked for port 0 reports the port the kernel chose."""
        port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.assertEqual(bound_port(port), port.getHost().port)
        self.assertNotEqual(bound_port(port), 0)

    def test_udp_ipv6(self) -> None:
        """A UDP port on ::1 has an IPv6 address with the chosen port."""
        try:
            port = reactor.listenUDP(0, DatagramProtocol(), interface="::1")
        except Exception as e:  # no IPv6 on this host
            raise unittest.SkipTest(f"no IPv6 loopback: {e}") from None
        self.addCleanup(port.stopListening)
        self.assertEqual(bound_port(port), port.getHost().port)
        self.assertNotEqual(bound_port(port), 0)

    def test_memory_reactor_port(self) -> None:
        """The in-memory reactor's fake ports (used by unit tests) work too."""
        port = MemoryReactor().listenTCP(8080, Factory.forProtocol(Protocol))
        self.assertEqual(bound_port(port), 8080)

    def test_not_an_ip_address(self) -> None:
        """A port bound to something else (a UNIX socket) is a TypeError naming the address."""

        class UnixPort:
            def getHost(self) -> UNIXAddress:
                return UNIXAddress(b"/tmp/sock")

        with self.assertRaises(TypeError) as cm:
            bound_port(UnixPort())  # type: ignore[arg-type]
        self.assertIn("/tmp/sock", str(cm.exception))
