# -*- test-case-name: frptx.test.test_inline -*-
"""Writes that leave at once instead of on the next reactor turn.

A Twisted TCP transport never sends from ``write``: it queues the bytes, asks the
poller for writability (an ``epoll_ctl``), sends on the next turn of the loop, and
then drops the interest again (another ``epoll_ctl``).  For a tunnel, which writes
small frames and request/response payloads far more often than it fills a socket
buffer, that is two system calls and a loop turn of latency per write.

``write_now`` sends straight away when the transport is a plain TCP connection with
nothing queued; whatever the socket does not take (or any error) goes through the
transport's own ``write``, so Twisted's buffering, producer pausing and error
handling still apply.  Other transports (TLS, yamux streams) use ``write`` as is.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet import tcp

_PLAIN = (tcp.Server, tcp.Client)


def _idle_tcp(transport: Any) -> bool:
    """A connected plain TCP transport whose write buffer is empty."""
    return (type(transport) in _PLAIN and transport.connected and not transport.disconnecting
            and not transport._writeDisconnected and not transport.TLS
            and transport.offset == len(transport.dataBuffer) and not transport._tempDataLen)


def write_now(transport: Any, data: bytes) -> None:
    """``transport.write(data)``, sending at once what the socket takes."""
    if data and _idle_tcp(transport):
        try:
            sent = transport.socket.send(data)
        except OSError:
            sent = 0  # EAGAIN, or an error the transport's own write path will meet and report
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


def write_sequence_now(transport: Any, chunks: Sequence[bytes]) -> None:
    """``transport.writeSequence(chunks)``, sending at once (scatter/gather) what the socket takes."""
    if _idle_tcp(transport):
        try:
            sent = transport.socket.sendmsg(chunks)
        except OSError:
            sent = 0
        if sent:
            rest = []
            for chunk in chunks:
                if sent >= len(chunk):
                    sent -= len(chunk)
                    continue
                rest.append(chunk[sent:] if sent else chunk)
                sent = 0
            chunks = rest
        if not chunks:
            return
    transport.writeSequence(chunks)


def pending_write_bytes(transport: Any) -> int:
    """Bytes written to ``transport`` that have not reached the kernel yet.

    Follows the layers: a yamux stream (its queue waiting for the peer's window), a TLS
    transport (plaintext held during the handshake, then the TCP transport under it), a
    Twisted TCP transport (its user-space write buffer).  Unknown transports count 0.
    """
    total = 0
    for _ in range(4):  # stream / TLS / sniffer layers over one TCP transport
        if transport is None:
            break
        queued = getattr(transport, "pending_write_bytes", None)
        if queued is not None:
            return total + int(queued())
        buffer = getattr(transport, "dataBuffer", None)
        if isinstance(buffer, (bytes, bytearray, memoryview)):
            return total + len(buffer) - int(transport.offset) + int(transport._tempDataLen)
        held = getattr(transport, "_appSendBuffer", None)
        if held:
            total += sum(map(len, held))
        transport = getattr(transport, "transport", None)
    return total
