"""Helpers for end-to-end tests: real frps/frpc services and sockets on 127.0.0.1.

Everything listens on port 0 and is stopped in the test's cleanup, so tests run
in parallel with anything else on the machine and leave nothing behind.
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from frptx.client.backoff import LOGIN_BACKOFF, BackoffPolicy
from frptx.client.service import FrpcService
from frptx.config import ClientConfig, ServerConfig, parse_client_config, parse_server_config
from frptx.factories.server import BindPortTimeouts
from frptx.protocols.tuning import LISTEN_BACKLOG
from frptx.server.kinds.udp import UdpTiming
from frptx.server.service import FrpsService

TOKEN = "test-token"

#: a re-login schedule for tests that restart frps: the same steps, in milliseconds
QUICK_BACKOFF = BackoffPolicy(initial=0.02, factor=2.0, maximum=0.5, jitter=0.1)

#: a udp proxy's work-connection timing for tests: frpc's own order needs no head start
QUICK_UDP_TIMING = UdpTiming(start_delay=0.01, retry_delays=(0.01, 0.02, 0.05))

#: the transport modes every end-to-end tunnel test runs in
MODES: dict[str, dict[str, bool]] = {
    "nomux": {"tcp_mux": False, "tls": False},
    "mux": {"tcp_mux": True, "tls": False},
    "nomux_tls": {"tcp_mux": False, "tls": True},
    "mux_tls": {"tcp_mux": True, "tls": True},
}


def deferLater(seconds: float) -> Deferred[None]:
    from twisted.internet.task import deferLater as _later

    return _later(reactor, seconds, lambda: None)


def server_config(tcp_mux: bool, **extra: Any) -> ServerConfig:
    doc: dict[str, Any] = {
        "bindAddr": "127.0.0.1",
        "bindPort": 7000,
        "proxyBindAddr": "127.0.0.1",
        "auth": {"token": TOKEN},
        "transport": {"tcpMux": tcp_mux},
    }
    for key, value in extra.items():
        doc[key] = value
    cfg = parse_server_config(doc)
    return dataclasses.replace(cfg, bind_port=0)


def client_config(server_port: int, tcp_mux: bool, tls: bool, proxies: list[dict[str, Any]],
                  **extra: Any) -> ClientConfig:
    transport = {"tcpMux": tcp_mux, "tls": {"enable": tls}, "poolCount": 1}
    transport.update(extra.pop("transport", {}))
    doc: dict[str, Any] = {
        "serverAddr": "127.0.0.1",
        "serverPort": server_port,
        "auth": {"token": extra.pop("token", TOKEN)},
        "transport": transport,
        "proxies": proxies,
    }
    doc.update(extra)
    return parse_client_config(doc)


def tcp_proxy(name: str, local_port: int, remote_port: int = 0, **extra: Any) -> dict[str, Any]:
    doc = {"name": name, "type": "tcp", "localIP": "127.0.0.1", "localPort": local_port,
           "remotePort": remote_port}
    doc.update(extra)
    return doc


# -- local services -----------------------------------------------------------------

@implementer(IHalfCloseableProtocol)
class Echo(Protocol):
    """Echoes everything; on the peer's FIN it finishes and closes its own side."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)

    def readConnectionLost(self) -> None:
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass


class EchoFactory(Factory):
    protocol = Echo

    def __init__(self) -> None:
        self.connections = 0

    def buildProtocol(self, addr: Any) -> Protocol:
        self.connections += 1
        return super().buildProtocol(addr)


@implementer(IHalfCloseableProtocol)
class Collector(Protocol):
    """A client that sends ``payload``, optionally half-closes, and collects the answer."""

    def __init__(self, payload: bytes = b"", half_close: bool = False) -> None:
        self.payload = payload
        self.half_close = half_close
        self.received = bytearray()
        self.done: Deferred[bytes] = Deferred()
        self.made: Deferred[None] = Deferred()
        self._wanted: list[tuple[int, Deferred[bytes]]] = []

    def connectionMade(self) -> None:
        self.made.callback(None)
        if self.payload:
            self.transport.write(self.payload)
        if self.half_close:
            self.transport.loseWriteConnection()

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        ready = [w for w in self._wanted if len(self.received) >= w[0]]
        for w in ready:
            self._wanted.remove(w)
            w[1].callback(bytes(self.received))

    def received_at_least(self, count: int) -> Deferred[bytes]:
        """Fires with what arrived once ``count`` bytes did (fails if the connection ends first)."""
        if len(self.received) >= count:
            return defer.succeed(bytes(self.received))
        d: Deferred[bytes] = Deferred()
        self._wanted.append((count, d))
        return d

    def readConnectionLost(self) -> None:
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure | None = None) -> None:
        wanted, self._wanted = self._wanted, []
        for count, d in wanted:
            d.errback(AssertionError(f"connection closed after {len(self.received)} of {count} bytes"))
        if not self.done.called:
            self.done.callback(bytes(self.received))


def connect(port: int, protocol: Protocol) -> Deferred[Protocol]:
    return connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5), protocol)


async def roundtrip(port: int, payload: bytes, timeout: float = 10) -> bytes:
    """Send ``payload`` to ``port``, half-close, and return everything that came back."""
    c = Collector(payload, half_close=True)
    await connect(port, c)
    return await with_timeout(c.done, timeout)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Fatal(list):  # type: ignore[type-arg]
    """What frpc reported through ``on_fatal``; ``next()`` fires on the next report."""

    def __init__(self) -> None:
        super().__init__()
        self._waiters: list[Deferred[str]] = []

    def append(self, message: str) -> None:
        super().append(message)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(message)

    def first(self) -> Deferred[str]:
        """The first report (at once if there is one already)."""
        if self:
            return defer.succeed(self[0])
        d: Deferred[str] = Deferred()
        self._waiters.append(d)
        return d


class Tunnel:
    """An frps + frpc pair running in this process, torn down by the test's cleanup.

    The cleanup stops every service started through it and fails the test if
    stopping had to abort a connection: a clean stop closes everything gracefully.
    """

    def __init__(self, testcase: Any, mode: dict[str, bool]) -> None:
        self.testcase = testcase
        self.mode = mode
        self.frps: FrpsService | None = None
        self.frpc: FrpcService | None = None
        self.fatal: Fatal = Fatal()

    def start_server(self, timeouts: BindPortTimeouts | None = None, bind_port: int = 0,
                     udp_timing: UdpTiming | None = None, **extra: Any) -> FrpsService:
        """Start frps (on ``bind_port``, 0 for any); ``timeouts`` and ``udp_timing`` are frps's by default."""
        cfg = dataclasses.replace(server_config(self.mode["tcp_mux"], **extra), bind_port=bind_port)
        frps = FrpsService(cfg, reactor, timeouts=timeouts or BindPortTimeouts(), udp_timing=udp_timing)
        frps.startService()
        self.frps = frps
        self.testcase.addCleanup(self.stop_checked, frps, frps.server.connections)
        return frps

    def stop_checked(self, service: FrpsService | FrpcService, connections: Any) -> Deferred[None]:
        """Stop ``service`` (unless the test did) and fail if any of its connections was aborted."""
        d = service.stopService() if service.running else defer.succeed(None)

        def check(_: object) -> None:
            if connections.aborted:
                raise AssertionError(f"{service.name} had to abort {connections.aborted} connection(s) "
                                     "instead of closing them")

        return d.addCallback(check)

    def start_client(self, proxies: list[dict[str, Any]], config_path: str | None = None,
                     login_backoff: BackoffPolicy = LOGIN_BACKOFF, **extra: Any) -> FrpcService:
        assert self.frps is not None
        cfg = client_config(self.frps.bound_port, self.mode["tcp_mux"], self.mode["tls"], proxies, **extra)
        frpc = FrpcService(cfg, reactor, config_path=config_path, on_fatal=self.fatal.append,
                           login_backoff=login_backoff)
        frpc.startService()
        self.frpc = frpc
        self.testcase.addCleanup(self.stop_checked, frpc, frpc.client.connections)
        return frpc

    async def remote_port(self, name: str, frpc: FrpcService | None = None) -> int:
        frpc = frpc or self.frpc
        assert frpc is not None
        status = await frpc.proxy_manager.wait_settled(name)
        if status.phase != "running":
            raise AssertionError(f"proxy {name} not running: {status.error}")
        return int(status.remote_addr.rsplit(":", 1)[1])


class LogWatch:
    """frptx's log lines while a test runs; ``next(text)`` fires on the next line containing ``text``."""

    def __init__(self, testcase: Any) -> None:
        from twisted.logger import globalLogPublisher

        self.lines: list[str] = []
        self._waiters: list[tuple[str, Deferred[str]]] = []
        globalLogPublisher.addObserver(self)
        testcase.addCleanup(globalLogPublisher.removeObserver, self)

    def __call__(self, event: dict[str, Any]) -> None:
        from twisted.logger import formatEvent

        line = formatEvent(event) or ""
        self.lines.append(line)
        for waiter in [w for w in self._waiters if w[0] in line]:
            self._waiters.remove(waiter)
            waiter[1].callback(line)

    def matching(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]

    def next(self, text: str) -> Deferred[str]:
        """Fires with the next line (logged from now on) that contains ``text``."""
        d: Deferred[str] = Deferred()
        self._waiters.append((text, d))
        return d


async def until(predicate: Callable[[], bool], what: str, seconds: float = 20, interval: float = 0.01) -> None:
    """Wait until ``predicate()`` holds, checking every ``interval``; fail after ``seconds``.

    Only for states that announce themselves with no event.  The interval only
    sets how soon the test notices; ``seconds`` is a generous bound for a hung
    test, never what decides the result.
    """
    from twisted.internet.task import deferLater as _later

    for _ in range(int(seconds / interval) + 1):
        if predicate():
            return
        await _later(reactor, interval, lambda: None)
    if not predicate():
        raise AssertionError(f"not {what} within {seconds}s")


class _LocalService(Factory):
    """Builds the test's protocols and knows which of their connections are still open."""

    noisy = False

    def __init__(self, factory: Factory) -> None:
        self.factory = factory
        self.live: set[Any] = set()
        self._idle: list[Deferred[None]] = []

    def buildProtocol(self, addr: Any) -> Protocol | None:
        protocol = self.factory.buildProtocol(addr)
        if protocol is None:
            return None
        self.live.add(protocol)
        lost = protocol.connectionLost

        def connection_lost(reason: Failure | None = None) -> None:
            try:
                lost(reason)  # type: ignore[arg-type]
            finally:
                self.live.discard(protocol)
                if not self.live:
                    idle, self._idle = self._idle, []
                    for d in idle:
                        d.callback(None)

        protocol.connectionLost = connection_lost  # type: ignore[method-assign]
        return protocol

    def all_closed(self) -> Deferred[None]:
        if not self.live:
            return defer.succeed(None)
        d: Deferred[None] = Deferred()
        self._idle.append(d)
        return d


def listen_local(testcase: Any, factory: Factory) -> int:
    """A local service on 127.0.0.1; the cleanup waits until its connections are closed.

    (Registered before the tunnel, it runs after frpc stopped: every connection frpc
    made to the service ends with frpc's close, as an event, not at some later turn.)
    """
    service = _LocalService(factory)
    # a real service's accept queue, not Twisted's 50: frpc dials it once per user, and a
    # burst beyond the queue waits out a 1 s SYN retransmit
    port = reactor.listenTCP(0, service, interface="127.0.0.1", backlog=LISTEN_BACKLOG)

    async def stop() -> None:
        await port.stopListening()
        try:
            await with_timeout(service.all_closed(), 10)
        except defer.TimeoutError:
            for protocol in list(service.live):
                protocol.transport.abortConnection()
            raise AssertionError(f"{len(service.live)} connection(s) to the local service still open") from None

    testcase.addCleanup(lambda: Deferred.fromCoroutine(stop()))
    return int(port.getHost().port)


def with_timeout(d: Deferred[Any], seconds: float) -> Deferred[Any]:
    return d.addTimeout(seconds, reactor)


def mode_cases(mixin: type, namespace: dict[str, Any], base: type,
               modes: Callable[[], dict[str, dict[str, bool]]] = lambda: MODES) -> None:
    """Create one TestCase per transport mode from ``mixin`` (parametrised, not copied)."""
    for mode_name, mode in modes().items():
        name = f"{mixin.__name__.replace('Mixin', '')}_{mode_name}"
        namespace[name] = type(name, (mixin, base), {"mode": mode, "__module__": namespace["__name__"]})


def captures_dir() -> str:
    """The live frp 0.31.2 captures, shipped with the tests in ``frptx/test/data/captures``.

    They are package data, so the suite passes from a plain clone and from the
    installed package alike; a missing directory is an error, not a skip.
    """
    from pathlib import Path

    path = Path(__file__).resolve().parent / "data" / "captures"
    if not path.is_dir():
        raise FileNotFoundError(f"frp captures not found at {path} (package data missing from the install?)")
    return str(path)


def examples_dir() -> str:
    """The shipped example configs (``examples/`` of the checkout).

    Tests that check them run from the checkout, or, against an installed package, with
    ``FRPTX_EXAMPLES_DIR`` pointing at the checkout's ``examples`` (``.ci/run`` sets it).
    Missing examples are an error, not a skip.
    """
    import os
    from pathlib import Path

    path = Path(os.environ.get("FRPTX_EXAMPLES_DIR") or Path(__file__).resolve().parents[2] / "examples")
    if not (path / "frps.toml").is_file():
        raise FileNotFoundError(f"example configs not found at {path}; set FRPTX_EXAMPLES_DIR to the "
                                "checkout's examples/ directory")
    return str(path)


def child_env() -> dict[str, str]:
    """The environment for a child Python (twistd, the console scripts) that must run this frptx.

    The directory holding this ``frptx`` package comes first: the checkout for a source or
    editable run (it also holds ``twisted/plugins``, which an editable install's import hook
    does not expose to twistd's plugin scan), site-packages for an installed one.
    """
    import os
    import sys
    from pathlib import Path

    import frptx

    home = str(Path(frptx.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([home, *(p for p in sys.path if p and p != home)])
    return env


def async_test(f: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Deferred[Any]]:
    """An ``async def`` test method as trial runs it: a Deferred from the coroutine."""
    import functools

    @functools.wraps(f)
    def run(self: Any) -> Deferred[Any]:
        return Deferred.fromCoroutine(f(self))

    return run


#: ports for ``free_port``: below the kernel's ephemeral range (``ip_local_port_range``, 32768
#: and up here), so no outgoing connection or port-0 listener can take one between the moment a
#: test picks it and the moment the process it configures binds it
_FIXED_PORTS = range(20000, 32768)


def free_port(kind: int = 1) -> int:
    """A loopback port free right now, for a config that cannot say "port 0" and report back.

    Picked at random outside the ephemeral range (see ``_FIXED_PORTS``): other tests' outgoing
    connections (a burst test makes a thousand) never land there, and two parallel trial
    workers picking the same one in the same instant is a one-in-millions event.
    ``kind`` is ``socket.SOCK_STREAM`` (1) or ``socket.SOCK_DGRAM``.
    """
    import random
    import socket

    for _ in range(100):
        port = random.choice(_FIXED_PORTS)
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found below the ephemeral range")


def start_vhost_frps(testcase: Any, tunnel: Tunnel, port_key: str, service: str, **extra: Any) -> FrpsService:
    """Our frps with the vhost port ``port_key`` (e.g. ``vhostHTTPPort``) on a kernel-chosen port.

    ``service`` names the FrpsService attribute of that port's listener (``vhost_http``...); it
    is told to listen on 0 before frps starts.
    """
    cfg = dataclasses.replace(server_config(tunnel.mode["tcp_mux"], **{port_key: 1}, **extra), bind_port=0)
    frps = FrpsService(cfg, reactor, timeouts=BindPortTimeouts())
    listener = getattr(frps, service)
    assert listener is not None
    listener.listen_port = 0
    frps.startService()
    tunnel.frps = frps
    testcase.addCleanup(tunnel.stop_checked, frps, frps.server.connections)
    return frps
