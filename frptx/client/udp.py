# -*- test-case-name: frptx.test.test_udp -*-
"""frpc's side of udp and sudp: the work-connection handler and the sudp visitor.

``attach_udp_work`` runs a udp (or sudp provider) work connection: each user
address seen in a UDPPacket gets its own local UDP socket connected to
``localIP:localPort`` (so replies can be told apart), and what the service
answers goes back as a UDPPacket for that same address.  A socket idle for
30 s is closed, at most ``MAX_PEERS`` exist at once (the least recently used
one makes room), and a Ping every 30 s keeps frps's 60 s read deadline away.
With ``transport.proxyProtocolVersion`` every datagram to the service starts
with a PROXY protocol header naming its user (``udp_datagram_header``).
A udp proxy has exactly one work connection: a new StartWorkConn replaces the
previous one, as in frp.  An sudp provider gets one work connection per visitor
connection; they run side by side (frp does the same).

``SudpVisitor`` listens on the visitor's ``bindAddr:bindPort`` and carries the
datagrams of every local application over ONE visitor connection, opened on
the first datagram and reopened (with a growing pause after failures) when lost.
"""
from __future__ import annotations

import collections
import ipaddress
import weakref
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from frptx import logs
from frptx.protocols.codec import StreamCodec
from frptx.protocols.packets import DROP_LOG_INTERVAL, PacketChannel
from frptx.wire import UDPPacket
from frptx.wire.proxy_protocol import udp_datagram_header

if TYPE_CHECKING:
    from frptx.client.context import ClientContext
    from frptx.client.visitors import VisitorConnectionProtocol
    from frptx.config import ProxyConfig, VisitorConfig

__all__ = [
    "MAX_PEERS",
    "PEER_IDLE_TIMEOUT",
    "PING_INTERVAL",
    "SudpVisitor",
    "UdpWorkHandler",
    "attach_udp_work",
    "handlers_of",
]

log = logs.logger(__name__)

#: a local socket with no datagram in either direction for this long is closed
PEER_IDLE_TIMEOUT = 30.0
#: Ping on UDP work and visitor connections (frps's read deadline is 60 s)
PING_INTERVAL = 30.0
#: local sockets per work connection; the least recently used is closed to make room
MAX_PEERS = 1024
#: datagrams waiting for the local address to resolve / the visitor connection to open
MAX_PENDING = 1024
#: sudp visitor: pauses after failed attempts to open the visitor connection
VISITOR_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 20.0)
LOGIN_WAIT = 10.0

Address = tuple[str, int]

# client -> {proxy name -> the handlers of its live work connections}
_handlers: weakref.WeakKeyDictionary[Any, dict[str, list[UdpWorkHandler]]] = weakref.WeakKeyDictionary()


def handlers_of(client: ClientContext, proxy_name: str) -> list[UdpWorkHandler]:
    """The live handlers of ``proxy_name`` on ``client`` (for tests and status)."""
    return list(_handlers.get(client, {}).get(proxy_name, []))


def attach_udp_work(client: ClientContext, proxy: ProxyConfig, work_protocol: Any, codec: StreamCodec | None,
                    exclusive: bool | None = None) -> None:
    """Run a udp/sudp work connection (already in raw mode) for ``proxy``.

    ``exclusive``: the new work connection replaces the proxy's previous ones (udp;
    by default when ``proxy.type`` is udp) instead of running beside them (sudp).
    """
    by_name = _handlers.setdefault(client, {})
    if exclusive if exclusive is not None else proxy.type == "udp":
        for old in list(by_name.get(proxy.name, [])):
            old.close("replaced by a new work connection")
    live = by_name.setdefault(proxy.name, [])
    handler = UdpWorkHandler(client, proxy, work_protocol, codec)

    def done(h: UdpWorkHandler) -> None:
        handlers = by_name.get(proxy.name)
        if handlers is not None and h in handlers:
            handlers.remove(h)
            if not handlers:
                del by_name[proxy.name]

    handler.on_done = done
    live.append(handler)
    handler.start()


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _family_interface(ip: str) -> str:
    """Where to bind a local socket that talks to ``ip``: loopback for loopback, else any."""
    try:
        v6 = ipaddress.ip_address(ip.split("%", 1)[0]).version == 6
    except ValueError:
        v6 = False
    if _is_loopback(ip):
        return "::1" if v6 else "127.0.0.1"
    return "::" if v6 else "0.0.0.0"


class _PeerSocket(DatagramProtocol):
    """One user's local UDP socket, connected to the proxied service."""

    noisy = False

    def __init__(self, handler: UdpWorkHandler, user: Address) -> None:
        self.handler = handler
        self.user = user
        self.last_active = handler.clock.seconds()
        self.timer: IDelayedCall | None = None
        self.stopped = False
        self.connect_error = ""
        #: the client's ConnectionSet, so stopping frpc closes (and awaits) this socket too
        self.tracker = handler.client.connections
        self.tracked = _TrackedSocket(self)

    def startProtocol(self) -> None:
        self.tracker.add(self.tracked)
        assert self.handler.local_addr is not None
        assert self.transport is not None  # startProtocol runs once the socket is bound
        try:
            self.transport.connect(*self.handler.local_addr)
        except Exception as e:  # e.g. an address family the socket cannot reach
            self.connect_error = str(e)
            self.close()

    def stopProtocol(self) -> None:
        self.stopped = True
        self.tracker.discard(self.tracked)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.last_active = self.handler.clock.seconds()
        self.handler.from_service(self, datagram)

    def connectionRefused(self) -> None:
        pass  # the service is not listening (yet): like Go, keep the socket, lose the datagram

    def send(self, datagram: bytes) -> bool:
        self.last_active = self.handler.clock.seconds()
        transport = self.transport
        if transport is None:  # stopped: the socket is closed
            return False
        try:
            transport.write(datagram, None)  # connected: no address
        except Exception as e:  # ECONNREFUSED is swallowed by Twisted; EMSGSIZE and the like land here
            log.debug("cannot send a datagram to the local service: {why}", why=e)
            return False
        return True

    def close(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        if self.transport is not None and not self.stopped:
            self.stopped = True
            self.transport.stopListening()


class _TrackedSocket:
    """What a ``ConnectionSet`` sees of a peer socket: ``transport.loseConnection()`` stops it.

    (A UDP port's own ``loseConnection`` is deprecated and would close it twice.)
    """

    def __init__(self, peer: _PeerSocket) -> None:
        self.transport = self
        self._peer = peer

    def loseConnection(self) -> None:
        self._peer.close()


class UdpWorkHandler:
    """One udp/sudp work connection on frpc and the local sockets of its users."""

    def __init__(self, client: ClientContext, proxy: ProxyConfig, work_protocol: Any,
                 codec: StreamCodec | None) -> None:
        self.client = client
        self.proxy = proxy
        self.clock = client.reactor
        self.name = proxy.name
        self.counter = client.proxy_manager.counter(proxy.name)
        self.channel = PacketChannel(work_protocol, codec, self.from_frps, self.clock, on_lost=self._lost,
                                     description=f"{proxy.type} proxy [{proxy.name}] work connection",
                                     limiter=client.proxy_manager.limiter(proxy))
        self.peers: collections.OrderedDict[Address, _PeerSocket] = collections.OrderedDict()
        self.local_addr: Address | None = None
        self.pending: list[UDPPacket] = []
        self.closed = False
        #: datagrams dropped here (no local socket, address unresolved...); the channel counts its own
        self.dropped = 0
        self.evicted = 0
        self.on_done: Any = None
        self._pinger: LoopingCall | None = None
        self._last_drop_log = float("-inf")

    def start(self) -> None:
        log.info("{kind} proxy [{name}]: work connection ready, forwarding to {ip}:{port}", kind=self.proxy.type,
                 name=self.name, ip=self.proxy.local_ip, port=self.proxy.local_port)
        self._resolve()
        self.channel.start()
        if self.closed:
            return
        self._pinger = LoopingCall(self.channel.send_ping)
        self._pinger.clock = self.clock
        self._pinger.start(PING_INTERVAL, now=False)

    def _resolve(self) -> None:
        ip, port = self.proxy.local_ip, self.proxy.local_port
        try:
            ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            pass
        else:
            self.local_addr = (ip, port)
            return

        def resolved(address: str) -> None:
            if self.closed:
                return
            self.local_addr = (address, port)
            pending, self.pending = self.pending, []
            for packet in pending:
                self.from_frps(packet)

        def failed(failure: Failure) -> None:
            if self.closed:
                return
            log.warn("{kind} proxy [{name}]: cannot resolve localIP {ip}: {why}", kind=self.proxy.type,
                     name=self.name, ip=ip, why=failure.getErrorMessage())
            self.close()

        self.clock.resolve(ip).addCallbacks(resolved, failed)

    # -- datagrams ---------------------------------------------------------------------
    def from_frps(self, packet: UDPPacket) -> None:
        """A user's datagram: send it to the service from that user's local socket."""
        if self.closed:
            return
        user = packet.remote_addr
        if user is None:
            self._drop("a datagram without a user address")
            return
        if self.local_addr is None:
            if len(self.pending) < MAX_PENDING:
                self.pending.append(packet)
            else:
                self._drop("the local address is not resolved yet")
            return
        self.counter.inbound += len(packet.content)
        peer = self.peers.get(user)
        if peer is None or peer.stopped:
            peer = self._open_peer(user)
            if peer is None:
                return
        else:
            self.peers.move_to_end(user)
        content = packet.content
        version = self.proxy.transport.proxy_protocol_version
        if version:
            # proxyProtocolVersion: each datagram names its user (frp: the destination is the service itself)
            header = udp_datagram_header(version, user, self.local_addr)
            if header:
                content = header + content
        if not peer.send(content):
            self._drop("the local socket refused it")

    def _open_peer(self, user: Address) -> _PeerSocket | None:
        while len(self.peers) >= MAX_PEERS:
            _, oldest = self.peers.popitem(last=False)
            oldest.close()
            self.evicted += 1
        assert self.local_addr is not None
        peer = _PeerSocket(self, user)
        try:
            self.clock.listenUDP(0, peer, interface=_family_interface(self.local_addr[0]),
                                 maxPacketSize=self.client.config.udp_packet_size or 1500)
        except Exception as e:
            self._drop(f"cannot open a local UDP socket: {e}")
            return None
        if peer.connect_error:
            self._drop(f"cannot connect a local UDP socket to {self.local_addr[0]}:{self.local_addr[1]}: "
                       f"{peer.connect_error}")
            return None
        self.peers[user] = peer
        self._arm_expiry(peer, PEER_IDLE_TIMEOUT)
        return peer

    def from_service(self, peer: _PeerSocket, datagram: bytes) -> None:
        """The service answered on a user's socket: tunnel it back to that user."""
        if self.closed or self.peers.get(peer.user) is not peer:
            return
        self.peers.move_to_end(peer.user)
        if self.channel.send(UDPPacket(content=datagram, remote_addr=peer.user)):
            self.counter.outbound += len(datagram)

    # -- idle sockets -------------------------------------------------------------------
    def _arm_expiry(self, peer: _PeerSocket, delay: float) -> None:
        peer.timer = self.clock.callLater(delay, self._check_idle, peer)

    def _check_idle(self, peer: _PeerSocket) -> None:
        peer.timer = None
        idle = self.clock.seconds() - peer.last_active
        if idle < PEER_IDLE_TIMEOUT:
            self._arm_expiry(peer, PEER_IDLE_TIMEOUT - idle)
            return
        if self.peers.get(peer.user) is peer:
            del self.peers[peer.user]
        log.debug("{kind} proxy [{name}]: local socket for {user} idle, closed", kind=self.proxy.type,
                  name=self.name, user=peer.user)
        peer.close()

    # -- end -------------------------------------------------------------------------------
    def close(self, reason: str | None = None) -> None:
        """Close the work connection and every local socket."""
        self.channel.close(reason)
        self._cleanup()

    def _lost(self, channel: PacketChannel) -> None:
        log.info("{kind} proxy [{name}]: work connection closed (in {n_in} / out {n_out} datagrams)",
                 kind=self.proxy.type, name=self.name, n_in=channel.packets_in, n_out=channel.packets_out)
        self._cleanup()

    def _cleanup(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._pinger is not None and self._pinger.running:
            self._pinger.stop()
        self.pending = []
        peers, self.peers = list(self.peers.values()), collections.OrderedDict()
        for peer in peers:
            peer.close()
        on_done, self.on_done = self.on_done, None
        if on_done is not None:
            on_done(self)

    def _drop(self, why: str) -> None:
        self.dropped += 1
        now = self.clock.seconds()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL:
            self._last_drop_log = now
            log.warn("{kind} proxy [{name}]: dropped a datagram ({why}); {n} dropped so far", kind=self.proxy.type,
                     name=self.name, why=why, n=self.dropped)


# ------------------------------------------------------------------------------------------
# sudp visitor


class _VisitorDatagrams(DatagramProtocol):
    noisy = False

    def __init__(self, visitor: SudpVisitor) -> None:
        self.visitor = visitor

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.visitor.local_datagram(datagram, addr)


class SudpVisitor(Service):
    """Listens on ``bindAddr:bindPort`` (UDP) and reaches an sudp proxy through frps.

    A child service of ``FrpcService`` (added after the first login);
    ``startService`` raises ``CannotListenError`` when the port is taken.
    """

    log = logs.logger(__name__)

    def __init__(self, client: ClientContext, visitor: VisitorConfig) -> None:
        self.client = client
        self.visitor = visitor
        self.clock = client.reactor
        self.port: Any = None
        self.channel: PacketChannel | None = None
        self.pending: collections.deque[UDPPacket] = collections.deque()
        self.stopped = False
        #: datagrams dropped here (no visitor connection, queue full); channels count their own
        self.dropped = 0
        self.connections_opened = 0
        self._opening: Deferred[Any] | None = None
        self._failures = 0
        self._retry_at = float("-inf")
        self._pinger: LoopingCall | None = None
        self._last_drop_log = float("-inf")

    def startService(self) -> None:
        self.start()
        super().startService()

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        return self.stop()

    def start(self) -> None:
        """Listen (raises ``CannotListenError``); the visitor connection opens on the first datagram."""
        v = self.visitor
        self.stopped = False
        self.port = self.clock.listenUDP(v.bind_port, _VisitorDatagrams(self), interface=v.bind_addr,
                                         maxPacketSize=self.client.config.udp_packet_size or 1500)
        from frptx.client.visitors import target_name

        self.log.info("sudp visitor [{name}] listening on {addr}:{port} for [{target}]", name=v.name,
                      addr=v.bind_addr, port=self.port.getHost().port, target=target_name(self.client, v))

    def stop(self) -> Deferred[None] | None:
        """Close the visitor connection and the local port; fires when the port is closed."""
        self.stopped = True
        opening, self._opening = self._opening, None
        if opening is not None:
            opening.cancel()
        self._stop_pinger()
        channel, self.channel = self.channel, None
        if channel is not None:
            channel.close()
        self.pending.clear()
        port, self.port = self.port, None
        if port is None:
            return None
        d = port.stopListening()
        return d if isinstance(d, Deferred) else None

    # -- datagrams ---------------------------------------------------------------------------
    def local_datagram(self, datagram: bytes, addr: Any) -> None:
        """A local application sent a datagram: tunnel it, opening the connection if needed."""
        if self.stopped:
            return
        packet = UDPPacket(content=datagram, remote_addr=(addr[0], addr[1]))
        if self.channel is not None:
            self.channel.send(packet)
            return
        if self._opening is None and self.clock.seconds() < self._retry_at:
            self._drop("the visitor connection is down (waiting before the next attempt)")
            return
        if len(self.pending) >= MAX_PENDING:
            self._drop("the visitor connection is not open yet and the queue is full")
            return
        self.pending.append(packet)
        if self._opening is None:
            self._open()

    def _from_provider(self, packet: UDPPacket) -> None:
        addr = packet.remote_addr
        if addr is None or self.port is None:
            self._drop("a reply without an address")
            return
        try:
            self.port.write(packet.content, addr)
        except Exception as e:
            self._drop(f"cannot send to {addr[0]}:{addr[1]}: {e}")

    # -- the visitor connection ---------------------------------------------------------------
    def _open(self) -> None:
        from frptx.client.visitors import open_visitor_connection

        client = self.client
        control = client.control
        if control is not None and control.logged_in:
            d: Deferred[Any] = open_visitor_connection(client, self.visitor)
        else:
            # no session (tcpMux) or run id before the login: wait for it, bounded
            d = client.when_logged_in()
            d.addTimeout(LOGIN_WAIT, self.clock)
            d.addCallback(lambda _: open_visitor_connection(client, self.visitor))
        self._opening = d
        d.addCallbacks(self._opened, self._failed)
        d.addErrback(lambda f: self.log.failure("sudp visitor [{name}]: setup failed", f, name=self.visitor.name))

    def _opened(self, conn: VisitorConnectionProtocol) -> None:
        self._opening = None
        if self.stopped:
            conn.close()
            return
        self._failures = 0
        self.connections_opened += 1
        channel = PacketChannel(conn, conn.codec, self._from_provider, self.clock, on_lost=self._lost,
                                description=f"sudp visitor [{self.visitor.name}] connection")
        self.channel = channel
        channel.start()
        if self.channel is not channel:
            return
        self.log.info("sudp visitor [{name}]: connected to its proxy", name=self.visitor.name)
        self._pinger = LoopingCall(channel.send_ping)
        self._pinger.clock = self.clock
        self._pinger.start(PING_INTERVAL, now=False)
        pending, self.pending = self.pending, collections.deque()
        for packet in pending:
            channel.send(packet)

    def _failed(self, failure: Failure) -> None:
        self._opening = None
        if self.stopped:
            return
        delay = VISITOR_RETRY_DELAYS[min(self._failures, len(VISITOR_RETRY_DELAYS) - 1)]
        self._failures += 1
        self._retry_at = self.clock.seconds() + delay
        n = len(self.pending)
        self.pending.clear()
        self.dropped += n
        self.log.warn("sudp visitor [{name}]: cannot open the visitor connection: {why} "
                      "({n} datagrams dropped; next attempt in {delay:g}s at the earliest)",
                      name=self.visitor.name, why=_describe(failure), n=n, delay=delay)

    def _lost(self, channel: PacketChannel) -> None:
        if self.channel is not channel:
            return
        self.channel = None
        self._stop_pinger()
        self.dropped += channel.dropped
        if not self.stopped:
            self.log.info("sudp visitor [{name}]: visitor connection closed; reopening on the next datagram",
                          name=self.visitor.name)

    def _stop_pinger(self) -> None:
        pinger, self._pinger = self._pinger, None
        if pinger is not None and pinger.running:
            pinger.stop()

    def _drop(self, why: str) -> None:
        self.dropped += 1
        now = self.clock.seconds()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL:
            self._last_drop_log = now
            self.log.warn("sudp visitor [{name}]: dropped a datagram ({why}); {n} dropped so far",
                          name=self.visitor.name, why=why, n=self.dropped)


def _describe(failure: Failure) -> str:
    from twisted.internet.defer import TimeoutError as DeferredTimeout

    if failure.check(DeferredTimeout):
        return f"not logged in to frps within {LOGIN_WAIT:g}s"
    from frptx.client.failures import describe_failure

    return describe_failure(failure)
