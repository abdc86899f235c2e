# -*- test-case-name: frptx.test.test_transforms -*-
"""Byte-stream transforms (encryption, compression) as wrappers usable under any protocol.

frp transforms a tunnelled stream after StartWorkConn / NewVisitorConnResp:
application bytes go through the snappy framing encoder, then AES-128-CFB, and
back in reverse on the other side.  That is not a property of the relay: a
plugin (a SOCKS5 or static-file server inside frpc) must run over an encrypted
work connection just the same.  So the layer is split in two:

* ``StreamTransform``: one sans-IO transform, ``encode``/``decode`` plus what it
  owes at the end of the stream (``flush`` before our FIN, ``eof`` at the
  peer's).  ``SnappyTransform`` and ``CfbTransform`` wrap the codecs of
  ``frptx.wire``; ``TransformChain`` composes several (encode in order, decode in
  reverse) and is itself a ``StreamTransform``.
* ``TransformWrapper``: a protocol/transport pair in the style of
  ``twisted.protocols.policies.ProtocolWrapper``.  It is the *protocol* of the
  lower transport (it gets ``dataReceived``/``readConnectionLost``/
  ``connectionLost``, decodes) and the *transport* of the protocol above it
  (``write`` encodes; half-close, producers and consumers are the lower
  transport's), so the protocol on top sees plaintext and an ordinary TCP-like
  transport.

Cost: the wrapper adds one Python call per chunk each way and nothing per byte;
backpressure costs nothing extra because producers are registered straight on
the lower transport.  An empty chain means no wrapper at all, so the plain path,
and splice(2), stay as they are.

A bandwidth limiter fits as another wrapper layer over the same shape: it needs
to hold bytes and pause its source, so instead of forwarding producers it
registers *itself* as the lower transport's producer and as the upper protocol's
consumer, queues in ``write`` and pauses/resumes on a clock -- which is why the
wrapper is a full transport (ITransport, IConsumer, IPushProducer, half-close)
rather than a pair of functions.  Any wrapper makes a leg ineligible for splice.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol as TypingProtocol

from twisted.internet.interfaces import (
    IConsumer,
    IHalfCloseableProtocol,
    IProtocol,
    IPushProducer,
    ITransport,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from frptx import logs
from frptx.wire import CfbDecryptor, CfbEncryptor, ProtocolError, SnappyFrameDecoder, SnappyFrameEncoder


class StreamTransform(TypingProtocol):
    """One sans-IO transform of both directions of a byte stream (stateful, one per connection)."""

    def encode(self, data: bytes) -> bytes:
        """Wire bytes for application bytes ``data`` (may be ``b""`` while buffering)."""

    def decode(self, data: bytes) -> bytes:
        """Application bytes for wire bytes ``data``; raises ``ProtocolError`` on a corrupt stream."""

    def flush(self) -> bytes:
        """Wire bytes still owed before our end of the stream (our FIN)."""

    def eof(self) -> bytes:
        """Application bytes still held when the peer's stream ended."""


class SnappyTransform:
    """frp's ``useCompression``: golang/snappy's unbuffered framing format."""

    __slots__ = ("encode", "decode")

    def __init__(self) -> None:
        self.encode: Callable[[bytes], bytes] = SnappyFrameEncoder().encode
        self.decode: Callable[[bytes], bytes] = SnappyFrameDecoder().decode

    def flush(self) -> bytes:
        return b""  # every encode emits whole frames

    def eof(self) -> bytes:
        return b""  # a truncated last frame is dropped, as frp's reader does at EOF


class CfbTransform:
    """frp's ``useEncryption``: ``IV || AES-128-CFB(stream)`` each way, key from the secret."""

    __slots__ = ("encode", "decode")

    def __init__(self, key: bytes) -> None:
        self.encode: Callable[[bytes], bytes] = CfbEncryptor(key).encrypt
        self.decode: Callable[[bytes], bytes] = CfbDecryptor(key).decrypt

    def flush(self) -> bytes:
        return b""  # a stream cipher holds nothing back

    def eof(self) -> bytes:
        return b""


def _compose_encode(funcs: Sequence[Callable[[bytes], bytes]]) -> Callable[[bytes], bytes]:
    if len(funcs) == 1:
        return funcs[0]
    if len(funcs) == 2:
        first, second = funcs

        def both(data: bytes) -> bytes:
            return second(first(data))

        return both

    def chain(data: bytes) -> bytes:
        for f in funcs:
            data = f(data)
        return data

    return chain


def _compose_decode(funcs: Sequence[Callable[[bytes], bytes]]) -> Callable[[bytes], bytes]:
    # decoding stops at the first empty result: an IV or a frame still being gathered
    if len(funcs) == 1:
        return funcs[0]
    if len(funcs) == 2:
        first, second = funcs

        def both(data: bytes) -> bytes:
            data = first(data)
            return second(data) if data else data

        return both

    def chain(data: bytes) -> bytes:
        for f in funcs:
            data = f(data)
            if not data:
                break
        return data

    return chain


class TransformChain:
    """Transforms applied in order when sending (``[snappy, cfb]``: compress, then encrypt).

    Receiving undoes them in reverse.  ``encode``/``decode`` are composed once, so a
    chunk costs one call per transform and no loop.  An empty chain is falsy: it
    means "send as is", and needs no wrapper.
    """

    __slots__ = ("transforms", "encode", "decode")

    def __init__(self, transforms: Iterable[StreamTransform] = ()) -> None:
        self.transforms: tuple[StreamTransform, ...] = tuple(transforms)
        if self.transforms:
            self.encode = _compose_encode([t.encode for t in self.transforms])
            self.decode = _compose_decode([t.decode for t in reversed(self.transforms)])
        else:
            self.encode = self.decode = bytes

    def __bool__(self) -> bool:
        return bool(self.transforms)

    def __len__(self) -> int:
        return len(self.transforms)

    def flush(self) -> bytes:
        """What every transform still owes, each passed through the ones after it."""
        out = b""
        for t in self.transforms:
            out = (t.encode(out) if out else b"") + t.flush()
        return out

    def eof(self) -> bytes:
        """What every transform still holds at the peer's EOF, decoded by the ones after it."""
        out = b""
        for t in reversed(self.transforms):
            out = (t.decode(out) if out else b"") + t.eof()
        return out


@implementer(IProtocol, IHalfCloseableProtocol, ITransport, IConsumer, IPushProducer)
class TransformWrapper:
    """The protocol of a lower transport and the transport of ``wrappedProtocol``, through a chain.

    Use it like Twisted's ``ProtocolWrapper``: ``TransformWrapper(chain, protocol)``
    then ``makeConnection(lower)`` (or give ``transport=`` when the lower connection
    is already up and its owner forwards its events here, as relays do).  Attributes
    the wrapper does not define (``getHandle``, ``connected``, TCP options...) are
    the lower transport's.

    A corrupt stream is logged and, by default, aborts the lower connection;
    ``on_error`` replaces that (a relay aborts both of its legs).
    """

    __slots__ = ("transport", "wrappedProtocol", "chain", "on_error", "_decode", "_encode", "half_closeable")

    log = logs.logger(__name__)

    def __init__(self, chain: TransformChain, wrappedProtocol: Any = None, transport: Any = None) -> None:
        self.chain = chain
        self.wrappedProtocol = wrappedProtocol
        self.on_error: Callable[[ProtocolError], None] | None = None
        self._decode = chain.decode
        self._encode = chain.encode
        self.transport: Any = None
        self.half_closeable = False
        if transport is not None:
            self._set_transport(transport)

    def _set_transport(self, transport: Any) -> None:
        self.transport = transport
        self.half_closeable = callable(getattr(transport, "loseWriteConnection", None))

    def __getattr__(self, name: str) -> Any:
        # only for names not defined here (slots and methods are found first)
        if name.startswith("__") or name in TransformWrapper.__slots__:
            raise AttributeError(name)
        return getattr(self.transport, name)

    def __repr__(self) -> str:
        return f"<TransformWrapper {len(self.chain)} over {self.transport!r}>"

    # -- IProtocol, towards the lower transport --------------------------------------------

    def makeConnection(self, transport: Any) -> None:
        self._set_transport(transport)
        self.wrappedProtocol.makeConnection(self)

    def connectionMade(self) -> None:
        pass  # makeConnection connects the wrapped protocol; nothing else to do

    def dataReceived(self, data: bytes) -> None:
        try:
            data = self._decode(data)
        except ProtocolError as e:
            self._corrupt(e)
            return
        if data:
            self.wrappedProtocol.dataReceived(data)

    def readConnectionLost(self) -> None:
        try:
            tail = self.chain.eof()
        except ProtocolError as e:
            self._corrupt(e)
            return
        if tail:
            self.wrappedProtocol.dataReceived(tail)
        if IHalfCloseableProtocol.providedBy(self.wrappedProtocol):
            self.wrappedProtocol.readConnectionLost()
        else:
            self.loseConnection()  # what a TCP transport does for a protocol without half-close

    def writeConnectionLost(self) -> None:
        if IHalfCloseableProtocol.providedBy(self.wrappedProtocol):
            self.wrappedProtocol.writeConnectionLost()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.wrappedProtocol.connectionLost(reason)

    # the relay-sink names, for owners that forward raw events to a relay end
    data_received = dataReceived
    read_connection_lost = readConnectionLost
    connection_lost = connectionLost

    def _corrupt(self, e: ProtocolError) -> None:
        self._decode = _drop  # whatever still arrives on a broken stream is ignored
        logs.throttle.warn(self.log, "corrupt tunnel stream",
                           "closing a tunnel: corrupt {what} stream from {peer}: {why}",
                           what="encrypted/compressed", peer=self.transport.getPeer(), why=str(e))
        if self.on_error is not None:
            self.on_error(e)
        else:
            self.abortConnection()

    # -- ITransport, for the wrapped protocol ------------------------------------------------

    def write(self, data: bytes) -> None:
        data = self._encode(data)
        if data:
            self.transport.write(data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))

    def _flush(self) -> None:
        tail = self.chain.flush()
        if tail:
            self.transport.write(tail)

    def loseConnection(self) -> None:
        self._flush()
        self.transport.loseConnection()

    def loseWriteConnection(self) -> None:
        """Our FIN after what the transforms still owe; ``half_closeable`` says if the lower can."""
        self._flush()
        self.transport.loseWriteConnection()

    def abortConnection(self) -> None:
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            self.transport.loseConnection()

    def getPeer(self) -> Any:
        return self.transport.getPeer()

    def getHost(self) -> Any:
        return self.transport.getHost()

    # -- IConsumer: the lower transport's buffer pauses the producer directly -----------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self.transport.unregisterProducer()

    # -- IPushProducer: reading the lower transport ---------------------------------------------

    def pauseProducing(self) -> None:
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        self.transport.stopProducing()


def _drop(data: bytes) -> bytes:
    return b""


def connect_through(chain: TransformChain | None, protocol: Any, transport: Any) -> Any:
    """Connect ``protocol`` to ``transport`` through ``chain``; return what ``transport``'s events go to.

    For a protocol that takes over an already-connected stream (a plugin on a work
    connection after StartWorkConn): the connection's owner forwards its raw
    ``dataReceived``/``readConnectionLost``/``connectionLost`` to the returned object --
    a ``TransformWrapper`` whose transport the protocol sees, or, with an empty chain,
    the protocol itself on the bare transport (no wrapper, no cost).
    """
    if not chain:
        protocol.makeConnection(transport)
        return protocol
    wrapper = TransformWrapper(chain, protocol)
    wrapper.makeConnection(transport)
    return wrapper
