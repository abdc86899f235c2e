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

from frptx.transport.internals_tcp import tcp_idle, tcp_unsent_bytes, tls_held_plaintext


def write_now(transport: Any, data: bytes) -> None:
    """``transport.write(data)``, sending at once what the socket takes."""
    if data and tcp_idle(transport):
        try:
            sent = transport.getHandle().send(data)  # ISystemHandle: the socket
        except OSError:
            sent = 0  # EAGAIN, or an error the transport's own write path will meet and report
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


def write_sequence_now(transport: Any, chunks: Sequence[bytes]) -> None:
    """``transport.writeSequence(chunks)``, sending at once (scatter/gather) what the socket takes."""
    if tcp_idle(transport):
        try:
            sent = transport.getHandle().sendmsg(chunks)  # ISystemHandle: the socket
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
        unsent = tcp_unsent_bytes(transport)
        if unsent is not None:
            return total + unsent
        total += tls_held_plaintext(transport)
        transport = getattr(transport, "transport", None)
    return total
