# -*- test-case-name: frptx.test.test_web_frps_api -*-
"""
Helpers for the web layer's tests: serve a site on 127.0.0.1:0, make raw HTTP
requests to it, compare JSON shapes with the golden captures of real frp.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web import server

CAPTURES = Path(__file__).resolve().parent / "data" / "captures"


def golden(kind: str) -> dict[str, Any]:
    """The captured exchanges of real Go frp 0.65.0 (C{kind}: "frps" or "frpc")."""
    path = CAPTURES / f"web-{kind}-0.65.0.json"
    if not path.is_file():
        raise FileNotFoundError(f"golden web captures not found at {path} (package data missing?)")
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def shape(value: Any) -> Any:
    """
    The structure of a JSON value with the leaves replaced by their type:
    what must match frp's (values like ports and times differ by nature).
    Lists become the set of shapes of their items.
    """
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            s = shape(item)
            if s not in out:
                out.append(s)
        return out
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    return type(value).__name__


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Raw(Protocol):
    def __init__(self, request: bytes) -> None:
        self.request = request
        self.data = b""
        self.done: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.done.callback(self.data)


@dataclass
class Served:
    """A site listening on 127.0.0.1; cleanup waits for every server-side connection to close."""

    port: int
    lost: list[Deferred[None]] = field(default_factory=list)
    #: speak TLS to it (certificate not checked: the tests' certificates are self-signed)
    tls: bool = False

    async def request(self, path: str, method: str = "GET", auth: tuple[str, str] | None = None,
                      body: bytes | None = None, headers: dict[str, str] | None = None) -> Response:
        lines = [f"{method} {path} HTTP/1.0", "Host: 127.0.0.1"]
        if auth:
            lines.append("Authorization: Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
        proto = _Raw(raw)
        if self.tls:
            from twisted.internet.endpoints import SSL4ClientEndpoint
            from twisted.internet.ssl import CertificateOptions

            endpoint: Any = SSL4ClientEndpoint(reactor, "127.0.0.1", self.port, CertificateOptions(), timeout=5)
        else:
            endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port, timeout=5)
        await connectProtocol(endpoint, proto)
        data = await proto.done.addTimeout(10, reactor)
        head, _, payload = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        hdrs: dict[str, str] = {}
        for line in header_lines:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        return Response(int(status_line.split()[1]), hdrs, payload)


def serve(testcase: Any, site: server.Site) -> Served:
    """Listen on 127.0.0.1:0; the test's cleanup stops listening and waits for open connections."""
    served = Served(0)
    build = site.buildProtocol

    def tracking_build(addr: Any) -> Any:
        proto = build(addr)
        lost: Deferred[None] = Deferred()
        served.lost.append(lost)
        orig = proto.connectionLost

        def connection_lost(reason: Failure) -> None:
            orig(reason)
            lost.callback(None)

        proto.connectionLost = connection_lost
        return proto

    site.buildProtocol = tracking_build  # type: ignore[method-assign]
    port = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[arg-type]
    served.port = port.getHost().port  # type: ignore[attr-defined]

    async def stop() -> None:
        await defer.maybeDeferred(port.stopListening)
        await defer.gatherResults([d.addTimeout(10, reactor) for d in served.lost if not d.called])

    testcase.addCleanup(lambda: Deferred.fromCoroutine(stop()))
    return served
