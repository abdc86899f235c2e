# -*- test-case-name: frptx.test.test_wire_frames -*-
"""frptx.wire: the sans-IO frp v1 wire layer.

Messages and their Go-compatible JSON, v1 framing, token auth keys, the
AES-CFB stream cipher and the snappy framing codec.  No sockets, reactors or
clocks: bytes in, messages/bytes out.
"""
from __future__ import annotations

from frptx.wire.auth import privilege_key, sign_key, verify_privilege_key
from frptx.wire.crypto import CfbDecryptor, CfbEncryptor, derive_key
from frptx.wire.errors import ProtocolError
from frptx.wire.frames import (
    MAX_MESSAGE_SIZE,
    MessageReader,
    MessageWriter,
    decode_body,
    encode_message,
)
from frptx.wire.messages import (
    MESSAGE_TYPES,
    CloseProxy,
    Login,
    LoginResp,
    Message,
    NatHoleClient,
    NatHoleClientDetectOK,
    NatHoleReport,
    NatHoleResp,
    NatHoleSid,
    NatHoleVisitor,
    NewProxy,
    NewProxyResp,
    NewVisitorConn,
    NewVisitorConnResp,
    NewWorkConn,
    Ping,
    Pong,
    ReqWorkConn,
    StartWorkConn,
    UDPPacket,
)
from frptx.wire.snappy import SnappyFrameDecoder, SnappyFrameEncoder

__all__ = [
    "ProtocolError",
    "Message",
    "MESSAGE_TYPES",
    "Login",
    "LoginResp",
    "NewProxy",
    "NewProxyResp",
    "CloseProxy",
    "NewWorkConn",
    "ReqWorkConn",
    "StartWorkConn",
    "NewVisitorConn",
    "NewVisitorConnResp",
    "Ping",
    "Pong",
    "UDPPacket",
    "NatHoleVisitor",
    "NatHoleClient",
    "NatHoleResp",
    "NatHoleSid",
    "NatHoleReport",
    "NatHoleClientDetectOK",
    "MAX_MESSAGE_SIZE",
    "encode_message",
    "decode_body",
    "MessageReader",
    "MessageWriter",
    "privilege_key",
    "verify_privilege_key",
    "sign_key",
    "derive_key",
    "CfbEncryptor",
    "CfbDecryptor",
    "SnappyFrameEncoder",
    "SnappyFrameDecoder",
]
