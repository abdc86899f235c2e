"""CPU of frptx's TLS transport in one process (a before/after check of the TLS data path).

    python bench/tls_transport.py [--exchanges 20000] [--mib 256] [--rounds 5] [--api]

One reactor, a real TCP connection on 127.0.0.1 between frpc's TLS client layer
(``wrap_client_factory``, with the 0x17 byte) and frps's bind-port factory
(``TLSSniffingFactory``, self-signed ECDSA certificate), as frps and frpc use them:

* request/response: the client writes 614 bytes, the server answers 614 bytes when
  the request is complete, N times; CPU µs per exchange for both ends (each end does
  one TLS write and one TLS read per exchange, as frps and frpc each do per tunnelled
  request on a nomux+TLS work connection);
* bulk: the client pushes N MiB in 256 KiB writes (a streaming producer, as the relay
  does), the server reads it; CPU µs per MiB for both ends.

Prints the minimum and the median of the rounds (the minimum is the steadier figure on
a shared machine).  ``--api`` drives OpenSSL through pyOpenSSL's public methods instead
of its cffi binding (``frptx.transport.internals.API_CALLS``), for the comparison;
``--plain`` runs the same over plain TCP (through the same first-byte dispatcher), the
floor the TLS layer adds to.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, protocol, reactor as _reactor  # noqa: E402
from twisted.internet.task import deferLater  # noqa: E402

from frptx.transport.tls_client import wrap_client_factory  # noqa: E402
from frptx.transport.tls_context import client_connection_creator, server_context_factory  # noqa: E402
from frptx.transport.tls_server import TLSSniffingFactory  # noqa: E402

reactor: Any = _reactor
REQUEST = b"q" * 614
RESPONSE = b"r" * 614
CHUNK = b"b" * (1 << 18)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Server(protocol.Protocol):
    def __init__(self) -> None:
        self.got = 0
        self.bulk = False

    def dataReceived(self, data: bytes) -> None:
        if data[:1] == b"b" or self.bulk:
            self.bulk = True
            self.got += len(data)
            if self.got >= self.factory.bulk_total:
                self.transport.write(b"done")  # type: ignore[union-attr]
            return
        self.got += len(data)
        while self.got >= len(REQUEST):
            self.got -= len(REQUEST)
            self.transport.write(RESPONSE)  # type: ignore[union-attr]


class Client(protocol.Protocol):
    def __init__(self) -> None:
        self.ready: defer.Deferred[None] = defer.Deferred()
        self.finished: defer.Deferred[None] | None = None
        self.left = 0
        self.got = 0
        self.chunks_left = 0

    def connectionMade(self) -> None:
        self.ready.callback(None)

    def exchange(self, count: int) -> defer.Deferred[None]:
        self.left = count
        self.got = 0
        self.finished = defer.Deferred()
        self.transport.write(REQUEST)  # type: ignore[union-attr]
        return self.finished

    def push(self, chunks: int) -> defer.Deferred[None]:
        self.chunks_left = chunks
        self.got = 0
        self.finished = defer.Deferred()
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        self.resumeProducing()
        return self.finished

    paused = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        while self.chunks_left and not self.paused:
            self.chunks_left -= 1
            self.transport.write(CHUNK)  # type: ignore[union-attr]
        if not self.chunks_left:
            self.transport.unregisterProducer()  # type: ignore[union-attr]

    def stopProducing(self) -> None:
        self.chunks_left = 0

    def dataReceived(self, data: bytes) -> None:
        if self.chunks_left or data == b"done":
            if data.endswith(b"done"):
                d, self.finished = self.finished, None
                assert d is not None
                d.callback(None)
            return
        self.got += len(data)
        while self.got >= len(RESPONSE):
            self.got -= len(RESPONSE)
            self.left -= 1
            if self.left:
                self.transport.write(REQUEST)  # type: ignore[union-attr]
            else:
                d, self.finished = self.finished, None
                assert d is not None
                d.callback(None)


@defer.inlineCallbacks
def run(args: argparse.Namespace) -> Any:
    if args.api:
        from frptx.transport import internals

        internals.TLSMemoryBIOHooks.tls_calls = internals.API_CALLS
    server_factory = protocol.Factory.forProtocol(Server)
    server_factory.bulk_total = args.mib << 20  # type: ignore[attr-defined]
    client = Client()
    client_factory = protocol.ClientFactory.forProtocol(lambda: client)
    if args.plain:
        listening: Any = TLSSniffingFactory(server_factory, server_context_factory(), force=False, reactor=reactor)
        connecting: Any = client_factory
    else:
        listening = TLSSniffingFactory(server_factory, server_context_factory(), force=True, reactor=reactor)
        creator = client_connection_creator(server_addr="127.0.0.1")
        connecting = wrap_client_factory(client_factory, creator, custom_first_byte=True)
    port = reactor.listenTCP(0, listening, interface="127.0.0.1")
    reactor.connectTCP("127.0.0.1", port.getHost().port, connecting)
    yield client.ready
    yield client.exchange(200)
    exchanges, bulk = [], []
    for _ in range(args.rounds):
        t0 = cpu()
        yield client.exchange(args.exchanges)
        exchanges.append((cpu() - t0) / args.exchanges * 1e6)
        server = next(iter(port.factory.protocols))._delegate
        server = getattr(server, "wrappedProtocol", server)
        server.got, server.bulk = 0, False
        t0 = cpu()
        yield client.push(args.mib * 4)
        bulk.append((cpu() - t0) / args.mib * 1e6)
        server.got, server.bulk = 0, False
        yield deferLater(reactor, 0.05, lambda: None)
    mode = "plain TCP" if args.plain else "pyOpenSSL methods" if args.api else "cffi binding"
    print(f"{mode}: request/response CPU µs per exchange (both ends): min {min(exchanges):.1f} "
          f"median {statistics.median(exchanges):.1f}")
    print(f"{mode}: bulk CPU µs per MiB (both ends): min {min(bulk):.0f} median {statistics.median(bulk):.0f}")
    client.transport.loseConnection()  # type: ignore[union-attr]
    yield port.stopListening()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exchanges", type=int, default=20000)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--api", action="store_true", help="pyOpenSSL's public methods (the old data path)")
    parser.add_argument("--plain", action="store_true", help="no TLS: the same exchanges over plain TCP")
    args = parser.parse_args()

    def go() -> None:
        d = run(args)
        d.addErrback(lambda f: print(f.getTraceback()))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(go)
    reactor.run()


if __name__ == "__main__":
    main()
