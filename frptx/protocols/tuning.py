# -*- test-case-name: frptx.test.test_splice -*-
"""Socket settings for connections that carry tunnelled bytes.

Twisted reads at most ``bufferSize`` (64 KiB) per ``doRead`` and uses the same
figure as the write-buffer mark at which a streaming producer is paused, so a
bulk transfer pays a reactor round trip and a pause/resume per 64 KiB.  256 KiB
measured best across mux, TLS and mux+TLS (1 MiB helped plain mux but hurt
mux+TLS); buffers stay bounded by that figure per connection.  TCP_NODELAY
keeps small request/response exchanges from waiting on Nagle's algorithm.
``LISTEN_BACKLOG`` is the one listen backlog used everywhere.
"""
from __future__ import annotations

from typing import Any

from frptx.transport.internals_tcp import set_tcp_buffer_size

RELAY_BUFFER_SIZE = 256 * 1024

#: the accept queue of every TCP port frptx listens on (bind port, public proxy
#: ports, visitor ports).  Twisted's default of 50 turns a burst of users into
#: connection resets while the reactor is busy; Go frp listens with the kernel's
#: maximum (4096 on current Linux, which caps any larger value at somaxconn).
LISTEN_BACKLOG = 4096


def tune(transport: Any) -> None:
    """Apply the relay settings to the TCP socket under ``transport`` (through TLS wrappers)."""
    seen = 0
    while transport is not None and seen < 4:
        if set_tcp_buffer_size(transport, RELAY_BUFFER_SIZE):
            try:
                transport.setTcpNoDelay(True)
            except OSError:
                pass
            return
        transport = getattr(transport, "transport", None)
        seen += 1
