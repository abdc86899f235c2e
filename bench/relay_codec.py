"""CPU of the in-process relay with and without encryption/compression (a before/after check).

    python bench/relay_codec.py [--mib 64] [--rounds 3]

One reactor, real sockets on 127.0.0.1: a sender pushes N MiB through two relays
back to back (sender -> relay 1 -> relay 2 -> sink), every socket tuned as frps/frpc
tune work connections.  With a codec, relay 1's far leg encodes and relay 2's near leg
decodes, so both directions of the transform are paid once per byte; without one, the
same relays run on the portable Python path (no splice, which would measure the
kernel) -- and once more with splice.  Prints process CPU seconds (user + system) per
run, and the median, per configuration.
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

from frptx.protocols.codec import apply_codec, stream_codec  # noqa: E402
from frptx.protocols.relay import Relay  # noqa: E402
from frptx.protocols.relayed import RelayedProtocol, start_relay  # noqa: E402
from frptx.protocols.tuning import tune  # noqa: E402

reactor: Any = _reactor
CHUNK = b"\x5a" * (1 << 16) + os.urandom(1 << 16)  # half compressible


class Sender(protocol.Protocol):
    def __init__(self, total: int) -> None:
        self.left = total

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, False)  # type: ignore[union-attr]

    def resumeProducing(self) -> None:
        if self.left <= 0:
            self.transport.unregisterProducer()  # type: ignore[union-attr]
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        self.left -= len(CHUNK)
        self.transport.write(CHUNK)  # type: ignore[union-attr]

    def stopProducing(self) -> None:
        pass


class Sink(protocol.Protocol):
    def __init__(self, done: defer.Deferred[int]) -> None:
        self.n = 0
        self.done = done

    def dataReceived(self, data: bytes) -> None:
        self.n += len(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.done.callback(self.n)


def accept_one() -> tuple[Any, defer.Deferred[RelayedProtocol]]:
    d: defer.Deferred[RelayedProtocol] = defer.Deferred()
    f = protocol.Factory()

    def build(addr: Any) -> RelayedProtocol:
        p = RelayedProtocol()
        reactor.callLater(0, d.callback, p)
        return p

    f.buildProtocol = build  # type: ignore[method-assign]
    return reactor.listenTCP(0, f, interface="127.0.0.1"), d


async def connect(port: Any, proto: protocol.Protocol) -> None:
    await protocol.ClientCreator(reactor, lambda: proto).connectTCP("127.0.0.1", port.getHost().port)


async def one(total: int, codec: bool, splice: bool) -> tuple[float, int]:
    done: defer.Deferred[int] = defer.Deferred()
    sink_f = protocol.Factory.forProtocol(lambda: Sink(done))
    sink_port = reactor.listenTCP(0, sink_f, interface="127.0.0.1")
    p1, d1 = accept_one()
    p2, d2 = accept_one()
    y1, y2 = RelayedProtocol(), RelayedProtocol()
    await connect(p2, y1)  # relay 1's far leg -> relay 2's near leg
    x2 = await d2
    await connect(sink_port, y2)
    sender = Sender(total)
    await connect(p1, sender)
    x1 = await d1
    for p in (x1, y1, x2, y2):
        tune(p.transport)  # as frps/frpc tune every work connection when it is made
    start = resource.getrusage(resource.RUSAGE_SELF)
    r1 = Relay(x1.transport, y1.transport)  # type: ignore[arg-type]  # connected
    r2 = Relay(x2.transport, y2.transport)  # type: ignore[arg-type]  # connected
    if codec:
        apply_codec(r1, "b", stream_codec("secret", True, True))
        apply_codec(r2, "a", stream_codec("secret", True, True))
    rx = reactor if splice else None
    start_relay(r2, x2, y2, b"", b"", reactor=rx)
    start_relay(r1, x1, y1, b"", b"", reactor=rx)
    got = await done
    end = resource.getrusage(resource.RUSAGE_SELF)
    for p in (sink_port, p1, p2):
        await p.stopListening()
    return (end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime), got


async def main(args: argparse.Namespace) -> None:
    total = args.mib << 20
    for name, codec, splice in (("plain (python relay)", False, False), ("plain (splice)", False, True),
                                ("encryption+compression", True, False)):
        runs = []
        for _ in range(args.rounds):
            cpu, got = await one(total, codec, splice)
            assert got >= total, (got, total)
            runs.append(cpu)
        print(f"{name:24s} {args.mib} MiB: CPU s median {statistics.median(runs):.3f}  runs "
              + " ".join(f"{r:.3f}" for r in runs), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()

    def run() -> None:
        d = defer.ensureDeferred(main(a))
        d.addErrback(lambda f: f.printTraceback())
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(run)
    reactor.run()
