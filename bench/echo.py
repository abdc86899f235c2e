"""A tiny echo server on 127.0.0.1 for the ping-pong, connect/close and held-connection measurements.

Run as its own process (``python bench/echo.py PORT``) so its work never competes
with the measuring client for one GIL.  One thread, ``selectors`` (epoll), so it
holds thousands of idle connections without a thread each.  Stops on SIGTERM.
"""
from __future__ import annotations

import selectors
import signal
import socket
import sys


def serve(port: int) -> None:
    sel = selectors.DefaultSelector()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(4096)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is listener:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    continue
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(65536)
                if data:
                    sock.sendall(data)  # tiny payloads: never blocks in practice
                    continue
            except OSError:
                pass
            sel.unregister(sock)
            sock.close()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(int(sys.argv[1]))
