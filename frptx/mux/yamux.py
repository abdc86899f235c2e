# -*- test-case-name: frptx.test.test_yamux -*-
"""Sans-IO yamux: the frame codec and the session state machine that frp's tcpMux speaks.

frp (every version) multiplexes its control, work and visitor connections over one TCP/TLS
connection with hashicorp/yamux.  This module is the protocol only: bytes go in through
``YamuxSession.receive_data`` and come back as events; bytes to send pile up until
``YamuxSession.data_to_send`` takes them.  No sockets, no reactor, no clock -- timers
(keepalive, stream close timeout) and application objects live in the Twisted adapter
(``frptx.mux.transport``), so everything here is testable with plain byte strings.

Wire facts (frp-protocol.md section 1.4):

* 12-byte big-endian header ``version(u8)=0 type(u8) flags(u16) stream(u32) length(u32)``;
  only Data frames carry ``length`` bytes of body.
* Both sides start every stream with a 256 KiB window each way; the opener's
  WindowUpdate SYN and the accepter's WindowUpdate ACK announce ``max_window - 256 KiB``
  (0 for frp v0.31.2, 0x005C0000 for frp >= v0.50 with its 6 MiB window).
* The receiver grants more window once the application consumed enough that
  ``(max_window - buffered) - recv_window >= max_window / 2`` (Go's rule); a Data frame
  longer than the remaining receive window is a protocol error (GoAway(1), session dead).

Flow control is per stream only (yamux has no session window).  The send queue lives here
so the state machine itself guarantees that no Data frame ever exceeds the peer's window;
the receive buffer lives in the application, which reports what it has consumed with
``consume`` -- which is exactly what makes a paused reader stop its remote sender.
"""
from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from twisted.logger import Logger

from frptx import logs

__all__ = [
    "ACK",
    "DATA",
    "DEFAULT_MAX_STREAM_WINDOW",
    "FIN",
    "GOAWAY",
    "GO_AWAY_INTERNAL_ERROR",
    "GO_AWAY_NORMAL",
    "GO_AWAY_PROTOCOL_ERROR",
    "HEADER_SIZE",
    "INITIAL_STREAM_WINDOW",
    "MAX_DATA_FRAME",
    "PING",
    "RST",
    "SYN",
    "WINDOW_UPDATE",
    "DataReceived",
    "Event",
    "FrameHeader",
    "GoAwayReceived",
    "PingAcked",
    "SendWindowOpened",
    "SessionTerminated",
    "StreamAccepted",
    "StreamClosed",
    "StreamEnded",
    "StreamOpened",
    "StreamReset",
    "YamuxError",
    "YamuxProtocolError",
    "YamuxSession",
    "decode_header",
    "encode_header",
]

log = Logger(namespace=__name__, observer=logs.observer)

# -- codec ------------------------------------------------------------------------------

VERSION = 0
DATA, WINDOW_UPDATE, PING, GOAWAY = 0, 1, 2, 3
SYN, ACK, FIN, RST = 0x1, 0x2, 0x4, 0x8
GO_AWAY_NORMAL, GO_AWAY_PROTOCOL_ERROR, GO_AWAY_INTERNAL_ERROR = 0, 1, 2

HEADER_SIZE = 12
INITIAL_STREAM_WINDOW = 256 * 1024
DEFAULT_MAX_STREAM_WINDOW = 6 * 1024 * 1024
#: Largest Data frame body we emit.  Frames are otherwise as large as the peer's window
#: and the queued write allow; the cap only bounds how long one stream's frame can hold
#: the shared connection (and a Go peer's per-frame read) when the window is huge.
MAX_DATA_FRAME = 1024 * 1024
#: Live peer-opened streams per session beyond which new ones are reset (see YamuxSession).
DEFAULT_MAX_PEER_STREAMS = 16384
_U32 = 0xFFFFFFFF
#: Below this size a payload is copied behind its header into one bytes object: one
#: small allocation is cheaper than an extra transport buffer entry.
_JOIN_LIMIT = 4096

_HEADER = struct.Struct(">BBHII")
_TYPE_NAMES = {DATA: "Data", WINDOW_UPDATE: "WindowUpdate", PING: "Ping", GOAWAY: "GoAway"}


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """One decoded yamux header (the body of a Data frame is not part of it)."""

    version: int
    type: int
    flags: int
    stream_id: int
    length: int

    def __str__(self) -> str:
        flags = "|".join(n for b, n in ((SYN, "SYN"), (ACK, "ACK"), (FIN, "FIN"), (RST, "RST")) if self.flags & b)
        return (
            f"{_TYPE_NAMES.get(self.type, self.type)} flags={flags or 0} "
            f"stream={self.stream_id} length={self.length}"
        )


def encode_header(frame_type: int, flags: int, stream_id: int, length: int) -> bytes:
    """The 12 header bytes of one frame (version 0)."""
    return _HEADER.pack(VERSION, frame_type, flags, stream_id, length)


def decode_header(data: bytes | bytearray | memoryview, offset: int = 0) -> FrameHeader:
    """Decode the 12 header bytes at ``offset``; no validation (see ``YamuxSession``)."""
    return FrameHeader(*_HEADER.unpack_from(data, offset))


# -- errors and events --------------------------------------------------------------------


class YamuxError(Exception):
    """A local misuse or a session state that forbids the operation (closed, go-away)."""


class YamuxProtocolError(YamuxError):
    """The peer broke the yamux protocol; the session answers with GoAway(1) and dies."""


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The peer opened ``stream_id`` (SYN): call ``accept_stream`` or ``reset_stream``."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamAccepted:
    """The peer acknowledged (ACK) a stream we opened."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class DataReceived:
    """Bytes for ``stream_id``; hand them on, then ``consume(stream_id, len(data))``."""

    stream_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """The peer half-closed (FIN) ``stream_id``; no more data will follow."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamClosed:
    """Both sides sent FIN: ``stream_id`` is forgotten."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The peer aborted (RST) ``stream_id``; it is forgotten."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class SendWindowOpened:
    """The peer granted window on a stream that had queued data; part or all of it went
    out.  ``send_queued`` says how much is still waiting."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class PingAcked:
    """The peer answered our Ping ``ping_id``."""

    ping_id: int


@dataclass(frozen=True, slots=True)
class GoAwayReceived:
    """The peer sent GoAway(0): no new streams; existing ones continue."""

    code: int


@dataclass(frozen=True, slots=True)
class SessionTerminated:
    """The session is dead: a protocol error (we queued GoAway(1)) or the peer's GoAway
    with a non-zero code.  Every stream is gone; close the connection."""

    code: int
    reason: str
    remote: bool


Event = (
    StreamOpened
    | StreamAccepted
    | DataReceived
    | StreamEnded
    | StreamClosed
    | StreamReset
    | SendWindowOpened
    | PingAcked
    | GoAwayReceived
    | SessionTerminated
)


# -- session ------------------------------------------------------------------------------


class _Stream:
    """Flow-control and close state of one live stream."""

    __slots__ = (
        "stream_id",
        "local",
        "accepted",
        "send_window",
        "recv_window",
        "recv_buffered",
        "recv_inflight",
        "queue",
        "queued",
        "fin_requested",
        "fin_sent",
        "remote_fin",
    )

    def __init__(self, stream_id: int, local: bool) -> None:
        self.stream_id = stream_id
        self.local = local
        #: Locally opened streams count as accepted; peer streams once we send the ACK.
        self.accepted = local
        self.send_window = INITIAL_STREAM_WINDOW
        self.recv_window = INITIAL_STREAM_WINDOW
        #: Delivered to the application, not yet consumed by it.
        self.recv_buffered = 0
        #: Announced by a Data header whose body has not fully arrived yet.
        self.recv_inflight = 0
        self.queue: deque[memoryview] = deque()
        self.queued = 0
        self.fin_requested = False
        self.fin_sent = False
        self.remote_fin = False


class YamuxSession:
    """One yamux session, either end, without I/O.

    ``is_client`` picks the stream id parity (client odd 1, 3, 5...; server even) and the
    side the peer must open from.  ``max_stream_window`` is frp's MaxStreamWindowSize
    (at least 256 KiB).  ``accept_backlog`` bounds the peer streams that the application
    was told about (``StreamOpened`` returned by an earlier ``receive_data``) but neither
    accepted nor reset yet; beyond it new peer streams are reset at once, as Go does when
    its accept channel is full.  Streams opened by the bytes of the current call do not
    count: the application has not seen them yet (Go's accept loop drains its channel
    while the frames are read), so a burst of SYNs in one read is never refused for
    being a burst -- only an application that stops accepting fills the backlog.

    ``max_peer_streams`` (extra, Go has no such limit) bounds the live streams the peer
    opened; beyond it new ones are reset.  Each costs about 1 KiB here, and since the
    backlog above no longer refuses bursts, a peer flooding SYNs without reading would
    otherwise open hundreds of thousands of them before its unread ACKs fill the socket.

    Unknown streams: Data on a stream id that was never opened is a protocol error; Data
    on a stream that existed but is forgotten (we reset it, or both FINs were exchanged)
    is discarded silently, because the peer may have had it in flight when we reset --
    Go yamux discards in the same situation.
    """

    def __init__(
        self,
        *,
        is_client: bool,
        max_stream_window: int = DEFAULT_MAX_STREAM_WINDOW,
        accept_backlog: int = 256,
        max_peer_streams: int = DEFAULT_MAX_PEER_STREAMS,
    ) -> None:
        if not INITIAL_STREAM_WINDOW <= max_stream_window <= _U32:
            raise ValueError(f"max_stream_window must be in [{INITIAL_STREAM_WINDOW}, 2**32-1]")
        self.is_client = is_client
        self.max_stream_window = max_stream_window
        self.accept_backlog = accept_backlog
        self.max_peer_streams = max_peer_streams
        #: live streams the peer opened
        self._peer_streams = 0
        self._streams: dict[int, _Stream] = {}
        self._next_id = 1 if is_client else 2
        #: Highest stream id the peer has opened (for "ever existed" checks).
        self._max_remote_id = 0
        self._pending_accept = 0
        #: Peer streams opened by the current ``receive_data`` call (not yet announced).
        self._opened_now = 0
        self._max_announced_id = 0
        self._next_ping = 0
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self._partial = bytearray()
        #: Body bytes of the current Data frame still to come, and where they go.
        self._body_left = 0
        self._body_stream: _Stream | None = None
        self._body_fin = False
        self._open = True
        self.local_go_away = False
        self.remote_go_away = False
        #: Bytes of frames queued only because the peer asked for them (Ping ACKs, the ACK
        #: or RST of each stream it opens): what a peer that never reads piles up.
        self.reply_bytes = 0

    # -- queries ------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    def stream_ids(self) -> list[int]:
        return list(self._streams)

    def has_stream(self, stream_id: int) -> bool:
        return stream_id in self._streams

    def send_queued(self, stream_id: int) -> int:
        """Bytes written to ``stream_id`` that wait for the peer's window."""
        st = self._streams.get(stream_id)
        return st.queued if st is not None else 0

    def send_window(self, stream_id: int) -> int:
        st = self._streams.get(stream_id)
        return st.send_window if st is not None else 0

    def recv_window(self, stream_id: int) -> int:
        st = self._streams.get(stream_id)
        return st.recv_window if st is not None else 0

    def fin_sent(self, stream_id: int) -> bool:
        """True once our FIN for ``stream_id`` went out (or the stream is gone)."""
        st = self._streams.get(stream_id)
        return st is None or st.fin_sent

    def data_to_send(self) -> list[bytes]:
        """Take the bytes queued for the connection, in order (header and body chunks)."""
        out, self._out = self._out, []
        return out

    # -- local operations -----------------------------------------------------------------

    def open_stream(self) -> int:
        """Open a stream: queue WindowUpdate SYN (delta = max window - 256 KiB)."""
        if not self._open:
            raise YamuxError("yamux session is closed")
        if self.remote_go_away:
            raise YamuxError("yamux peer sent GoAway: no new streams")
        stream_id = self._next_id
        if stream_id > _U32 - 2:
            raise YamuxError("yamux stream ids exhausted")
        self._next_id += 2
        st = _Stream(stream_id, local=True)
        self._streams[stream_id] = st
        self._grant(st, SYN)
        return stream_id

    def accept_stream(self, stream_id: int) -> None:
        """Accept a peer stream announced by ``StreamOpened``: queue WindowUpdate ACK."""
        st = self._streams.get(stream_id)
        if st is None or st.accepted or not self._open:
            return
        st.accepted = True
        self._pending_accept -= 1
        self.reply_bytes += HEADER_SIZE
        self._grant(st, ACK)

    def reset_stream(self, stream_id: int) -> None:
        """Abort ``stream_id`` (WindowUpdate RST) and forget it; queued data is dropped."""
        st = self._streams.get(stream_id)
        if st is None or not self._open:
            return
        self._out.append(encode_header(WINDOW_UPDATE, RST, stream_id, 0))
        self._forget(st)

    def send(self, stream_id: int, data: bytes | bytearray | memoryview) -> int:
        """Queue ``data`` on ``stream_id`` and emit as much as the send window allows.

        Returns the bytes still queued for the stream.  ``data`` is not copied when it is
        ``bytes`` and fits the window (the common case); otherwise each byte is copied at
        most once, when its frame is cut (Twisted's TCP transport only accepts bytes).
        """
        st = self._streams.get(stream_id)
        if st is None or not self._open:
            raise YamuxError(f"yamux stream {stream_id} is closed")
        if st.fin_requested:
            raise YamuxError(f"yamux stream {stream_id} is closed for writing")
        if not data:
            return st.queued
        if not isinstance(data, bytes):
            data = bytes(data)
        queue = st.queue
        if queue and len(data) < _JOIN_LIMIT and len(queue[-1]) < _JOIN_LIMIT:
            # Small writes behind a closed window (a Pong per Ping from a peer that does
            # not read) share one entry: ~200 bytes of Python objects each otherwise.
            queue[-1] = memoryview(bytes(queue[-1]) + data)
        else:
            queue.append(memoryview(data))
        st.queued += len(data)
        self._flush_stream(st)
        return st.queued

    def close_stream(self, stream_id: int) -> None:
        """Half-close: FIN (as WindowUpdate FIN, like Go) once the queued data is out.

        If the peer already sent its FIN the stream is then forgotten (``has_stream``
        turns false).
        """
        st = self._streams.get(stream_id)
        if st is None or st.fin_requested or not self._open:
            return
        st.fin_requested = True
        if not st.queued:
            self._send_fin(st)

    def consume(self, stream_id: int, count: int) -> None:
        """The application used ``count`` bytes of ``stream_id``; maybe grant window."""
        st = self._streams.get(stream_id)
        if st is None or not self._open:
            return
        st.recv_buffered -= count
        if st.recv_buffered < 0:
            raise YamuxError(f"consumed more than was received on stream {stream_id}")
        self._maybe_grant(st)

    def ping(self) -> int:
        """Queue a Ping SYN; returns its id (ids count from 0 per session, like Go)."""
        if not self._open:
            raise YamuxError("yamux session is closed")
        ping_id = self._next_ping
        self._next_ping = (ping_id + 1) & _U32
        self._out.append(encode_header(PING, SYN, 0, ping_id))
        return ping_id

    def go_away(self, code: int = GO_AWAY_NORMAL) -> None:
        """Queue GoAway(code); with 0 the session refuses (RST) new peer streams."""
        if not self._open:
            return
        self._out.append(encode_header(GOAWAY, 0, 0, code))
        if code == GO_AWAY_NORMAL:
            self.local_go_away = True

    def close(self) -> None:
        """Mark the session dead without a GoAway (Go's ``Session.Close`` sends none)."""
        self._open = False
        self._streams.clear()
        self._pending_accept = 0
        self._peer_streams = 0

    # -- input ----------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Feed bytes from the connection; returns the events they caused, in order.

        Data bodies are passed on as they arrive (a frame's body is not reassembled), so
        the only bytes kept between calls are up to 11 bytes of a split header.
        """
        if not self._open:
            return []
        events: list[Event] = []
        self._events = events
        self._opened_now = 0
        self._max_announced_id = self._max_remote_id
        view = memoryview(data)
        end = len(view)
        pos = 0
        try:
            if self._partial and end:
                need = HEADER_SIZE - len(self._partial)
                self._partial += view[:need]
                pos = min(need, end)
                if len(self._partial) < HEADER_SIZE:
                    return events
                header = bytes(self._partial)
                self._partial.clear()
                self._on_header(*_HEADER.unpack_from(header))
            while pos < end and self._open:
                if self._body_left:
                    n = min(self._body_left, end - pos)
                    self._on_body(view[pos : pos + n])
                    pos += n
                    continue
                if end - pos < HEADER_SIZE:
                    self._partial += view[pos:]
                    break
                fields = _HEADER.unpack_from(view, pos)
                pos += HEADER_SIZE
                self._on_header(*fields)
        except YamuxProtocolError as e:
            self._fail(str(e))
        return events

    # -- internals ------------------------------------------------------------------------

    def _emit(self, frame_type: int, flags: int, stream_id: int, payload: bytes) -> None:
        header = encode_header(frame_type, flags, stream_id, len(payload))
        if len(payload) <= _JOIN_LIMIT:
            self._out.append(header + payload)
        else:
            self._out.append(header)
            self._out.append(payload)

    def _grant(self, st: _Stream, flags: int) -> None:
        """Send a WindowUpdate that tops the receive window up to max (Go's rule)."""
        delta = (self.max_stream_window - st.recv_buffered - st.recv_inflight) - st.recv_window
        if delta < 0:
            delta = 0
        if flags == 0 and delta < self.max_stream_window // 2:
            return
        st.recv_window += delta
        self._out.append(encode_header(WINDOW_UPDATE, flags, st.stream_id, delta))

    def _maybe_grant(self, st: _Stream) -> None:
        if not st.remote_fin and st.accepted:
            self._grant(st, 0)

    def _flush_stream(self, st: _Stream) -> None:
        queue = st.queue
        while queue and st.send_window > 0:
            head = queue[0]
            n = min(len(head), st.send_window, MAX_DATA_FRAME)
            if n == len(head):
                queue.popleft()
                obj = head.obj  # the bytes object queued by send()
                chunk = obj if isinstance(obj, bytes) and n == len(obj) else bytes(head)
            else:
                chunk = bytes(head[:n])
                queue[0] = head[n:]
            st.send_window -= n
            st.queued -= n
            self._emit(DATA, 0, st.stream_id, chunk)
        if not st.queued and st.fin_requested and not st.fin_sent:
            self._send_fin(st)

    def _send_fin(self, st: _Stream) -> None:
        st.fin_sent = True
        self._out.append(encode_header(WINDOW_UPDATE, FIN, st.stream_id, 0))
        if st.remote_fin:
            self._forget(st)

    def _forget(self, st: _Stream) -> None:
        if self._streams.pop(st.stream_id, None) is not None:
            if not st.local:
                self._peer_streams -= 1
            if not st.accepted:
                self._pending_accept -= 1
                if st.stream_id > self._max_announced_id:  # opened and gone within this call
                    self._opened_now -= 1
        if self._body_stream is st:
            self._body_stream = None

    def _ever_opened(self, stream_id: int) -> bool:
        if (stream_id & 1) == (self._next_id & 1):
            return 0 < stream_id < self._next_id
        return 0 < stream_id <= self._max_remote_id

    def _fail(self, reason: str) -> None:
        logs.throttle.warn(log, "yamux protocol error", "yamux protocol error: {reason}; sending GoAway(1)",
                           reason=reason)
        self._out.append(encode_header(GOAWAY, 0, 0, GO_AWAY_PROTOCOL_ERROR))
        self.close()
        self._events.append(SessionTerminated(GO_AWAY_PROTOCOL_ERROR, reason, remote=False))

    def _on_header(self, version: int, frame_type: int, flags: int, stream_id: int, length: int) -> None:
        if version != VERSION:
            raise YamuxProtocolError(f"invalid protocol version {version}")
        if frame_type == DATA or frame_type == WINDOW_UPDATE:
            self._on_stream_frame(frame_type, flags, stream_id, length)
        elif frame_type == PING:
            if flags & SYN:
                self._out.append(encode_header(PING, ACK, 0, length))
                self.reply_bytes += HEADER_SIZE
            elif flags & ACK:
                self._events.append(PingAcked(length))
        elif frame_type == GOAWAY:
            if length == GO_AWAY_NORMAL:
                self.remote_go_away = True
                self._events.append(GoAwayReceived(length))
            else:
                what = {GO_AWAY_PROTOCOL_ERROR: "protocol error", GO_AWAY_INTERNAL_ERROR: "internal error"}
                reason = f"peer sent GoAway({length}: {what.get(length, 'unknown')})"
                logs.throttle.warn(log, "yamux peer go-away", "yamux session ended: {reason}", reason=reason)
                self.close()
                self._events.append(SessionTerminated(length, reason, remote=True))
        else:
            raise YamuxProtocolError(f"invalid message type {frame_type}")

    def _on_stream_frame(self, frame_type: int, flags: int, stream_id: int, length: int) -> None:
        body = length if frame_type == DATA else 0
        st = self._streams.get(stream_id)
        if flags & SYN:
            if st is not None:
                raise YamuxProtocolError(f"duplicate stream {stream_id} declared")
            if stream_id == 0 or (stream_id & 1) == (self._next_id & 1):
                raise YamuxProtocolError(f"peer opened stream {stream_id} with our id parity")
            self._max_remote_id = max(self._max_remote_id, stream_id)
            if (
                self.local_go_away
                or self._pending_accept - self._opened_now >= self.accept_backlog
                or self._peer_streams >= self.max_peer_streams
            ):
                if self.local_go_away:
                    why = "go-away sent"
                elif self._peer_streams >= self.max_peer_streams:
                    why = f"{self._peer_streams} streams open"
                else:
                    why = "accept backlog full"
                logs.throttle.warn(log, "yamux refusing stream", "yamux: refusing stream {stream_id}: {why}",
                                   stream_id=stream_id, why=why)
                self._out.append(encode_header(WINDOW_UPDATE, RST, stream_id, 0))
                self.reply_bytes += HEADER_SIZE
                self._discard_body(body)
                return
            st = _Stream(stream_id, local=False)
            self._streams[stream_id] = st
            self._pending_accept += 1
            self._opened_now += 1
            self._peer_streams += 1
            self._events.append(StreamOpened(stream_id))
        elif st is None:
            if body and not self._ever_opened(stream_id):
                raise YamuxProtocolError(f"data for unknown stream {stream_id}")
            self._discard_body(body)
            return
        if flags & ACK and st.local:
            self._events.append(StreamAccepted(stream_id))
        if flags & RST:
            self._forget(st)
            self._events.append(StreamReset(stream_id))
            self._discard_body(body)
            return
        if frame_type == WINDOW_UPDATE:
            st.send_window += length
            if st.queued:
                self._flush_stream(st)
                self._events.append(SendWindowOpened(stream_id))
                if stream_id not in self._streams:  # the flush sent our FIN after theirs
                    self._events.append(StreamClosed(stream_id))
                    return
        elif body:
            if body > st.recv_window:
                raise YamuxProtocolError(
                    f"stream {stream_id}: {body} bytes exceed the receive window {st.recv_window}"
                )
            if st.remote_fin:
                self._discard_body(body)
                return
            st.recv_window -= body
            st.recv_inflight += body
            self._body_left = body
            self._body_stream = st
            self._body_fin = bool(flags & FIN)
            return
        if flags & FIN:
            self._remote_fin(st)

    def _discard_body(self, body: int) -> None:
        self._body_left = body
        self._body_stream = None
        self._body_fin = False

    def _on_body(self, chunk: memoryview) -> None:
        n = len(chunk)
        self._body_left -= n
        st = self._body_stream
        if st is not None:
            st.recv_inflight -= n
            st.recv_buffered += n
            self._events.append(DataReceived(st.stream_id, bytes(chunk)))
            if not self._body_left:
                self._body_stream = None
                if self._body_fin:
                    self._body_fin = False
                    self._remote_fin(st)

    def _remote_fin(self, st: _Stream) -> None:
        if st.remote_fin:
            return
        st.remote_fin = True
        self._events.append(StreamEnded(st.stream_id))
        if st.fin_sent:
            self._forget(st)
            self._events.append(StreamClosed(st.stream_id))
