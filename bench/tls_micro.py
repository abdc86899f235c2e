"""CPU cost of the TLS data path and handshake, library against library, in one process.

    python bench/tls_micro.py [--n 20000] [--bulk 2000] [--handshakes 300]

What frptx pays per tunnelled request and per TLS work connection depends on how
OpenSSL is driven from Python.  This measures, for the same ECDSA P-256 certificate
and TLS 1.3 with AES-128-GCM, each way of driving it over a real loopback TCP
connection (both ends in this process, so a figure is the cost of one side = total / 2):

* ``pyopenssl-bio``: pyOpenSSL with memory BIOs through its methods, as frptx's transport
  did before (SSL_write + BIO read to send; BIO write + SSL_read until WantReadError +
  an empty BIO read to receive): ``frptx.transport.internals.API_CALLS``;
* ``cffi-bio``: the same OpenSSL objects and memory BIOs, one call of pyOpenSSL's cffi
  binding per operation, no Python exception for "nothing more" (frptx's data path now:
  ``internals.CFFI_CALLS``);
* ``ssl-bio``: the standard library's ``ssl.SSLObject`` with ``ssl.MemoryBIO`` (C
  implemented, system OpenSSL);
* ``ssl-socket``: a non-blocking ``ssl.SSLSocket`` (SSL_read/SSL_write on the fd);
* ``plain``: the socket calls alone (what any TLS variant pays on top of).

Rows: a 614-byte request and a 614-byte response (CPU µs per exchange and side), a
256 KiB bulk transfer (µs per 256 KiB and side), and handshakes (µs per handshake,
client + server, in memory): full and resumed, with each library's default key
exchange groups (pyOpenSSL's bundled OpenSSL offers X25519MLKEM768 first; the system
OpenSSL 3.0 has no ML-KEM) and with X25519 alone.
"""
from __future__ import annotations

import argparse
import functools
import socket
import ssl
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from OpenSSL import SSL
from OpenSSL._util import lib  # the cffi binding pyOpenSSL itself uses

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from frptx.transport import internals  # noqa: E402
from frptx.transport.certs import generate_self_signed  # noqa: E402

REQUEST = b"q" * 614
RESPONSE = b"r" * 614
BULK = b"b" * (256 * 1024)
CIPHERS13 = b"TLS_AES_128_GCM_SHA256"


def pair() -> tuple[socket.socket, socket.socket]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    c = socket.create_connection(listener.getsockname())
    s, _ = listener.accept()
    listener.close()
    for sock in (c, s):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
    return c, s


def recv_all(sock: socket.socket, size: int) -> bytes:
    """What loopback delivered (a send on loopback queues it at the receiver before returning)."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(1 << 18)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        if len(chunk) < (1 << 18):
            break
    return b"".join(chunks)


# -- pyOpenSSL ---------------------------------------------------------------------------------

def pyopenssl_contexts(cert: Path, key: Path, tickets: bool = True) -> tuple[SSL.Context, SSL.Context]:
    server = SSL.Context(SSL.TLS_METHOD)
    server.use_certificate_file(str(cert))
    server.use_privatekey_file(str(key))
    client = SSL.Context(SSL.TLS_METHOD)
    for ctx in (server, client):
        ctx.set_tls13_ciphersuites(CIPHERS13)
        ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
    if not tickets:
        server.set_options(SSL.OP_NO_TICKET)
    return server, client


def pyopenssl_handshake(server_ctx: SSL.Context, client_ctx: SSL.Context,
                        session: Any = None) -> tuple[SSL.Connection, SSL.Connection]:
    s = SSL.Connection(server_ctx, None)
    s.set_accept_state()
    c = SSL.Connection(client_ctx, None)
    c.set_connect_state()
    if session is not None:
        c.set_session(session)
    done = [False, False]
    for _ in range(20):
        for i, (me, peer) in enumerate(((c, s), (s, c))):
            try:
                me.do_handshake()
                done[i] = True
            except SSL.WantReadError:
                pass
            try:
                peer.bio_write(me.bio_read(1 << 16))
            except SSL.WantReadError:
                pass
        if all(done):
            break
    return c, s


class PyOpenSSLBio:
    """frptx's memory-BIO data path (``frptx.transport.internals``) through pyOpenSSL's methods."""

    name = "pyopenssl-bio"
    calls = internals.API_CALLS

    def __init__(self, conn: SSL.Connection, sock: socket.socket) -> None:
        self.conn, self.sock = conn, sock

    def send(self, data: bytes) -> None:
        assert self.calls.send(self.conn, data) == len(data)
        self.sock.send(self.calls.take(self.conn))

    def receive(self) -> bytes:
        self.calls.feed(self.conn, recv_all(self.sock, 0))
        data, error = self.calls.read(self.conn)
        assert error is None
        assert not self.calls.take(self.conn)  # frptx looks for output after every read
        return data


class CffiBio(PyOpenSSLBio):
    """The same, one cffi call per OpenSSL operation (what frptx does now)."""

    name = "cffi-bio"
    calls = internals.CFFI_CALLS or internals.API_CALLS


# -- stdlib ssl -------------------------------------------------------------------------------

def stdlib_contexts(cert: Path, key: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(str(cert), str(key))
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    for ctx in (server, client):
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    # Python 3.11 cannot set the TLS 1.3 suites: the system OpenSSL's default order
    # (AES-256-GCM first) applies
    return server, client


class StdBio:
    name = "ssl-bio"

    def __init__(self, obj: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
                 sock: socket.socket) -> None:
        self.obj, self.incoming, self.outgoing, self.sock = obj, incoming, outgoing, sock

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        offset = 0
        while offset < len(data):
            offset += self.obj.write(view[offset:])
        self.sock.send(self.outgoing.read())

    def receive(self) -> bytes:
        self.incoming.write(recv_all(self.sock, 0))
        pieces = []
        while True:
            try:
                pieces.append(self.obj.read(1 << 15))
            except ssl.SSLWantReadError:
                break
        if self.outgoing.pending:
            self.sock.send(self.outgoing.read())
        return b"".join(pieces)


def stdlib_bio_handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext,
                         session: Any = None) -> tuple[Any, Any]:
    sides = []
    for ctx, server in ((client_ctx, False), (server_ctx, True)):
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_side=server, session=None if server else session)
        sides.append((obj, inc, out))
    done = [False, False]
    for _ in range(20):
        for i in (0, 1):
            obj, inc, out = sides[i]
            try:
                obj.do_handshake()
                done[i] = True
            except ssl.SSLWantReadError:
                pass
            data = out.read()
            if data:
                sides[1 - i][1].write(data)
        if all(done):
            break
    return sides[0], sides[1]


class StdSocket:
    name = "ssl-socket"

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock

    def send(self, data: bytes) -> None:
        self.sock.send(data)  # all of it on loopback (the socket buffer takes 256 KiB)

    def receive(self) -> bytes:
        pieces = []
        while True:
            try:
                piece = self.sock.recv(1 << 15)
            except ssl.SSLWantReadError:
                break
            if not piece:
                break
            pieces.append(piece)
        return b"".join(pieces)


def stdlib_socket_pair(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> tuple[StdSocket, StdSocket]:
    c, s = pair()
    cs = client_ctx.wrap_socket(c, do_handshake_on_connect=False)
    ss = server_ctx.wrap_socket(s, server_side=True, do_handshake_on_connect=False)
    done = [False, False]
    for _ in range(100):
        for i, sock in enumerate((cs, ss)):
            if done[i]:
                continue
            try:
                sock.do_handshake()
                done[i] = True
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
        if all(done):
            break
    assert all(done)
    return StdSocket(cs), StdSocket(ss)


class Plain:
    name = "plain"

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, data: bytes) -> None:
        self.sock.send(data)

    def receive(self) -> bytes:
        return recv_all(self.sock, 0)


# -- measuring ---------------------------------------------------------------------------------

def cpu(fn: Callable[[], object], n: int) -> float:
    """CPU µs per call of fn (best of 3)."""
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t0) / n * 1e6)
    return best


def exchange_cost(client: Any, server: Any, n: int) -> float:
    def once() -> None:
        client.send(REQUEST)
        got = server.receive()
        server.send(RESPONSE)
        got2 = client.receive()
        if len(got) != len(REQUEST) or len(got2) != len(RESPONSE):
            raise RuntimeError(f"{client.name}: {len(got)} {len(got2)}")
    once()
    return cpu(once, n) / 2


def bulk_cost(client: Any, server: Any, n: int) -> float:
    def once() -> None:
        client.send(BULK)
        got = 0
        while got < len(BULK):
            got += len(server.receive())
    once()
    return cpu(once, n) / 2


def variants(cert: Path, key: Path) -> list[tuple[Any, Any]]:
    out: list[tuple[Any, Any]] = []
    c, s = pair()
    out.append((Plain(c), Plain(s)))
    sctx, cctx = pyopenssl_contexts(cert, key)
    for cls in (PyOpenSSLBio, CffiBio):
        c, s = pair()
        cc, sc = pyopenssl_handshake(sctx, cctx)
        assert cc.get_cipher_name() == "TLS_AES_128_GCM_SHA256", cc.get_cipher_name()
        out.append((cls(cc, c), cls(sc, s)))
    std_s, std_c = stdlib_contexts(cert, key)
    c, s = pair()
    (cobj, cin, cout), (sobj, sin, sout) = stdlib_bio_handshake(std_s, std_c)
    out.append((StdBio(cobj, cin, cout, c), StdBio(sobj, sin, sout, s)))
    out.append(stdlib_socket_pair(std_s, std_c))
    return out


def handshake_rows(cert: Path, key: Path, n: int) -> list[tuple[str, float]]:
    rows = []
    # pyOpenSSL's binding cannot restrict the groups: its OpenSSL's default (hybrid ML-KEM) only
    for label in ("default groups",):
        sctx, cctx = pyopenssl_contexts(cert, key)
        c, s = pyopenssl_handshake(sctx, cctx)
        group = c.get_group_name()
        rows.append((f"pyOpenSSL {SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()} full, {label} ({group})",
                     cpu(functools.partial(pyopenssl_handshake, sctx, cctx), n)))
        try:
            c.recv(1)  # take the NewSessionTicket
        except SSL.WantReadError:
            pass
        session = c.get_session()
        c2, _ = pyopenssl_handshake(sctx, cctx, session)
        assert lib.SSL_session_reused(c2._ssl)  # noqa: SLF001
        rows.append((f"pyOpenSSL resumed, {label}", cpu(functools.partial(pyopenssl_handshake, sctx, cctx, session),
                                                        n)))
    std_s, std_c = stdlib_contexts(cert, key)
    (cobj, _, _), _ = stdlib_bio_handshake(std_s, std_c)
    rows.append((f"ssl {ssl.OPENSSL_VERSION} full (X25519)", cpu(lambda: stdlib_bio_handshake(std_s, std_c), n)))
    try:
        cobj.read(1)
    except ssl.SSLWantReadError:
        pass
    session = cobj.session
    (c2, _, _), _ = stdlib_bio_handshake(std_s, std_c, session)
    assert c2.session_reused
    rows.append(("ssl resumed", cpu(lambda: stdlib_bio_handshake(std_s, std_c, session), n)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000, help="request/response exchanges")
    parser.add_argument("--bulk", type=int, default=1000, help="256 KiB transfers")
    parser.add_argument("--handshakes", type=int, default=300)
    args = parser.parse_args()
    cert_pem, key_pem = generate_self_signed()
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert.write_bytes(cert_pem)
        key.write_bytes(key_pem)
        print(f"Python {sys.version.split()[0]}; pyOpenSSL -> {SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()}; "
              f"ssl -> {ssl.OPENSSL_VERSION}")
        print(f"{'variant':<16} {'614 B req+resp, µs/side':>24} {'256 KiB, µs/side':>18}")
        for client, server in variants(cert, key):
            print(f"{client.name:<16} {exchange_cost(client, server, args.n):>24.2f} "
                  f"{bulk_cost(client, server, args.bulk):>18.1f}")
        print("handshake, client + server CPU µs:")
        for label, value in handshake_rows(cert, key, args.handshakes):
            print(f"  {label:<60} {value:8.0f}")


if __name__ == "__main__":
    main()
