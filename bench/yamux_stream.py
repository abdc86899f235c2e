"""CPU per request/response on yamux streams, in process (a before/after check of the stream layer).

    python bench/yamux_stream.py [--requests 100000] [--streams 10] [--rounds 5]

Two ``YamuxProtocol``s joined by hand over ``StringTransport``s (no sockets, no
reactor): on each of ``--streams`` streams the client writes a 100-byte request, the
server echoes it, the client reads it -- the keep-alive HTTP pattern of
``bench/run.py``'s wrk runs, without the kernel.  Prints process CPU µs per request
(user + system) per round, and the median.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet.protocol import Factory, Protocol  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402

from frptx.mux import YamuxProtocol  # noqa: E402

REQUEST = b"G" * 100


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[union-attr]


class Counter(Protocol):
    n = 0

    def dataReceived(self, data: bytes) -> None:
        Counter.n += len(data)


def run(requests: int, streams: int) -> float:
    clock = Clock()
    client = YamuxProtocol(is_client=True, reactor=clock, keepalive_interval=0)
    server = YamuxProtocol(is_client=False, reactor=clock, keepalive_interval=0,
                           stream_factory=Factory.forProtocol(Echo))
    ct, st = StringTransport(), StringTransport()
    client.makeConnection(ct)
    server.makeConnection(st)
    opened: list[Any] = [client.open_stream(Counter()) for _ in range(streams)]

    def pump() -> None:
        while ct.value() or st.value():
            data = ct.value()
            ct.clear()
            if data:
                server.dataReceived(data)
            data = st.value()
            st.clear()
            if data:
                client.dataReceived(data)

    pump()
    Counter.n = 0
    start = time.process_time()
    for _ in range(requests // streams):
        for s in opened:
            s.write(REQUEST)
        pump()
    cpu = time.process_time() - start
    assert Counter.n == (requests // streams) * streams * len(REQUEST), Counter.n
    return cpu / ((requests // streams) * streams) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--streams", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    runs = [run(a.requests, a.streams) for _ in range(a.rounds)]
    print(f"yamux stream echo: CPU µs/request median {statistics.median(runs):.2f}  runs "
          + " ".join(f"{r:.2f}" for r in runs), flush=True)


if __name__ == "__main__":
    main()
