# -*- test-case-name: frptx.test.test_wire_messages -*-
"""frp v1 message values and their JSON form (frp-protocol.md §2).

Each message is a frozen dataclass whose ``TYPE`` is its one-byte v1 type.
The JSON mapping mirrors Go ``encoding/json`` on frp's structs, because the
peer is a Go program:

* Encoding, default: like current frp (every field ``omitempty``), fields in
  Go struct order, map keys sorted, ``"client_spec":{}`` always present in
  Login.  ``legacy=True``: the v0.31.2 field set and order with every field
  present (``""``/``0``/``false``, ``{}`` for ``metas``, ``null`` for absent
  lists and other maps), reproducing live v0.31.2 bytes exactly.
* Decoding: keys match case-insensitively, unknown keys are ignored, ``null``
  leaves a scalar at its zero value and empties a map/list, a duplicated key's
  last value wins; any value of the wrong JSON type, an integer out of range
  for its Go type, or a body that is not one UTF-8 JSON object raises
  :class:`ProtocolError`.

frptx does not implement xtcp; the NatHole* messages are recognised (so they
are not "unknown type") and carry their decoded JSON object unchanged.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

from frptx.wire.errors import ProtocolError

__all__ = [
    "FrozenMap",
    "Message",
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
    "MESSAGE_TYPES",
    "dumps_go",
    "loads_object",
]

_M = TypeVar("_M", bound="Message")
_O = TypeVar("_O", bound="_OpaqueMessage")

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


# --------------------------------------------------------------------------
# Immutable map value


class FrozenMap(Mapping[str, Any]):
    """A read-only, hashable mapping for message fields such as ``metas``.

    Compares equal to any mapping with the same items, so ``msg.metas ==
    {"k": "v"}`` works.
    """

    __slots__ = ("_d", "_hash")

    def __init__(self, items: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        self._d: dict[str, Any] = dict(items)
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._d == other._d
        if isinstance(other, Mapping):
            return self._d == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._d.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"FrozenMap({self._d!r})"


_EMPTY_MAP = FrozenMap()


def _freeze_map(value: Any) -> FrozenMap:
    if isinstance(value, FrozenMap):
        return value
    if value is None:
        return _EMPTY_MAP
    return FrozenMap(value)


def _freeze_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)):
        raise TypeError(f"expected a sequence of strings, not {type(value).__name__}")
    return tuple(value)


# --------------------------------------------------------------------------
# Go-compatible JSON text


class _JSONObject(list[Any]):
    """Key/value pairs of a decoded JSON object, in wire order (duplicates kept).

    A distinct type so that an empty object is not confused with an empty array.
    """


def _no_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


_decoder = json.JSONDecoder(object_pairs_hook=_JSONObject, parse_constant=_no_constant)


def loads_object(body: bytes) -> _JSONObject:
    """Parse a message body like Go: strict UTF-8, one JSON value, which must be an object."""
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProtocolError(f"message body is not valid UTF-8: {e}") from None
    try:
        value = _decoder.decode(text)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(f"message body is not valid JSON: {e}") from None
    if not isinstance(value, _JSONObject):
        raise ProtocolError(f"message body is a JSON {_json_type(value)}, not an object")
    return value


_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)
_NEEDS_GO_ESCAPE = re.compile("[<>&\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps_go(obj: Any) -> bytes:
    """Serialise like Go ``json.Marshal``: compact, HTML-safe escapes, raw UTF-8.

    Python's ``ensure_ascii=False`` output already matches Go for quotes,
    backslashes and control characters; Go additionally escapes ``< > &``
    and U+2028/U+2029, and replaces invalid UTF-8 (here: lone surrogates)
    with ``\\ufffd``.  Those characters can only occur inside strings, so a
    translation of the finished text is safe.
    """
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if _NEEDS_GO_ESCAPE.search(text):  # rare; translate() walks every character
        text = text.translate(_GO_ESCAPES)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\\\\ufffd", text).encode("utf-8")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, _JSONObject):
        return "object"
    return "array"


def _plain(value: Any) -> Any:
    """Turn decoded JSON (with :class:`_JSONObject`) into ordinary dicts and lists."""
    if isinstance(value, _JSONObject):
        return {k: _plain(v) for k, v in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# Go matches JSON keys to struct fields with Unicode simple case folding; for
# frp's ASCII field names that is ASCII case-insensitivity plus the two
# non-ASCII letters that fold to ASCII: KELVIN SIGN -> k, LONG S -> s.
_FOLD = str.maketrans(
    {**{chr(c): chr(c + 32) for c in range(ord("A"), ord("Z") + 1)}, "\u212a": "k", "\u017f": "s"}
)


def _fold(key: str) -> str:
    return key.lower() if key.isascii() else key.translate(_FOLD)


# --------------------------------------------------------------------------
# Field kinds: (decode from JSON, is-empty test for omitempty)

_STR = "string"
_INT = "int64"
_UINT16 = "uint16"
_BOOL = "bool"
_MAP = "map[string]string"
_LIST = "[]string"
_SPEC = "ClientSpec"


def _bad(cls_name: str, key: str, expected: str, value: Any) -> ProtocolError:
    return ProtocolError(
        f"{cls_name}: field {key!r} must be a JSON {expected}, got {_json_type(value)}"
    )


def _decode_int(cls_name: str, key: str, value: Any, lo: int, hi: int, go_type: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float):
            raise ProtocolError(f"{cls_name}: field {key!r} must be an integer ({go_type}), got {value!r}")
        raise _bad(cls_name, key, f"number ({go_type})", value)
    if not lo <= value <= hi:
        raise ProtocolError(f"{cls_name}: field {key!r} value {value} out of range for {go_type}")
    return value


def _decode_value(cls_name: str, key: str, kind: str, value: Any) -> Any:
    """Decode a non-null JSON value into the Python value of field ``kind``."""
    if kind == _STR:
        if not isinstance(value, str):
            raise _bad(cls_name, key, "string", value)
        return value
    if kind == _INT:
        return _decode_int(cls_name, key, value, _INT64_MIN, _INT64_MAX, "int64")
    if kind == _UINT16:
        return _decode_int(cls_name, key, value, 0, 0xFFFF, "uint16")
    if kind == _BOOL:
        if not isinstance(value, bool):
            raise _bad(cls_name, key, "bool", value)
        return value
    if kind == _MAP:
        if not isinstance(value, _JSONObject):
            raise _bad(cls_name, key, "object", value)
        out: dict[str, str] = {}
        for k, v in value:
            if v is None:
                v = ""  # Go: null into a string element leaves ""
            elif not isinstance(v, str):
                raise _bad(cls_name, f"{key}.{k}", "string", v)
            out[k] = v
        return FrozenMap(out)
    if kind == _LIST:
        if not isinstance(value, list) or isinstance(value, _JSONObject):
            raise _bad(cls_name, key, "array", value)
        items = []
        for v in value:
            if v is None:
                v = ""
            elif not isinstance(v, str):
                raise _bad(cls_name, f"{key}[]", "string", v)
            items.append(v)
        return tuple(items)
    if kind == _SPEC:
        # Login.client_spec {type: string, always_auth_pass: bool}: only
        # validated; frptx has no internal (ssh-gateway) clients.
        if not isinstance(value, _JSONObject):
            raise _bad(cls_name, key, "object", value)
        for k, v in value:
            fk = _fold(k)
            if v is None:
                continue
            if fk == "type" and not isinstance(v, str):
                raise _bad(cls_name, f"{key}.type", "string", v)
            if fk == "always_auth_pass" and not isinstance(v, bool):
                raise _bad(cls_name, f"{key}.always_auth_pass", "bool", v)
        return None
    raise AssertionError(kind)  # pragma: no cover


def _is_empty(value: Any) -> bool:
    # "", 0, False, empty map, empty list: exactly Go's omitempty for these kinds.
    return not value


# --------------------------------------------------------------------------
# Base class


class Message:
    """Base class of all frp v1 messages.

    Subclasses declare ``TYPE`` and, for the generic JSON mapping,
    ``_FIELDS`` (HEAD struct order: ``(attribute or None, json key, kind)``)
    and ``_LEGACY`` (v0.31.2 order: ``(json key, attribute or None)``; ``None``
    emits the zero value of a field frptx does not model, e.g.
    ``server_udp_port``).
    """

    TYPE: ClassVar[bytes]
    _FIELDS: ClassVar[tuple[tuple[str | None, str, str], ...]] = ()
    _LEGACY: ClassVar[tuple[tuple[str, str | None], ...]] = ()
    #: In v0.31.2 frpc fills ``metas`` with an empty map, so it is ``{}``, not ``null``.
    _LEGACY_EMPTY_OBJECT: ClassVar[frozenset[str]] = frozenset({"metas"})
    _KINDS: ClassVar[dict[str, str]]
    _BY_FOLDED_KEY: ClassVar[dict[str, tuple[str | None, str, str]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._KINDS = {key: kind for _attr, key, kind in cls._FIELDS}
        cls._BY_FOLDED_KEY = {_fold(key): (attr, key, kind) for attr, key, kind in cls._FIELDS}

    def __post_init__(self) -> None:
        for attr, _key, kind in self._FIELDS:
            if attr is None:
                continue
            if kind == _MAP:
                object.__setattr__(self, attr, _freeze_map(getattr(self, attr)))
            elif kind == _LIST:
                object.__setattr__(self, attr, _freeze_list(getattr(self, attr)))

    def to_json(self, legacy: bool = False) -> dict[str, Any]:
        """Return the JSON object (a plain ``dict`` in wire key order)."""
        out: dict[str, Any] = {}
        if legacy:
            for key, attr in self._LEGACY:
                if attr is None:
                    out[key] = 0
                    continue
                kind = self._KINDS[key]
                value = getattr(self, attr)
                if kind == _MAP:
                    if value or key in self._LEGACY_EMPTY_OBJECT:
                        out[key] = dict(sorted(value.items()))
                    else:
                        out[key] = None
                elif kind == _LIST:
                    out[key] = list(value) if value else None
                else:
                    out[key] = value
            return out
        for attr, key, kind in self._FIELDS:
            if kind == _SPEC:
                out[key] = {}  # a struct: never omitted by omitempty
                continue
            assert attr is not None
            value = getattr(self, attr)
            if _is_empty(value):
                continue
            if kind == _MAP:
                out[key] = dict(sorted(value.items()))
            elif kind == _LIST:
                out[key] = list(value)
            else:
                out[key] = value
        return out

    @classmethod
    def from_json(cls: type[_M], obj: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> _M:
        """Build the message from a decoded JSON object with Go's decoding rules.

        ``obj`` is a ``dict`` or the ordered key/value pairs of the object
        (as produced by :func:`loads_object`, which keeps duplicate keys).
        """
        pairs = _as_pairs(cls.__name__, obj)
        kwargs: dict[str, Any] = {}
        by_key = cls._BY_FOLDED_KEY
        name = cls.__name__
        for key, value in pairs:
            field = by_key.get(_fold(key))
            if field is None:
                continue  # unknown key: ignored, like Go
            attr, wire_key, kind = field
            if value is None:
                # Go: null is a no-op for scalars/structs and sets maps/slices to nil.
                if attr is not None and kind in (_MAP, _LIST):
                    kwargs.pop(attr, None)
                continue
            decoded = _decode_value(name, wire_key, kind, value)
            if attr is not None:
                kwargs[attr] = decoded
        return cls(**kwargs)

    def encode_json(self, legacy: bool = False) -> bytes:
        """The JSON body bytes exactly as Go would marshal :meth:`to_json`."""
        return dumps_go(self.to_json(legacy=legacy))


def _as_pairs(cls_name: str, obj: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(obj, _JSONObject):
        return obj
    if isinstance(obj, Mapping):
        return [(k, _to_internal(v)) for k, v in obj.items()]
    raise ProtocolError(f"{cls_name}: message body must be a JSON object, got {_json_type(obj)}")


def _to_internal(value: Any) -> Any:
    """Convert plain dicts (from callers of ``from_json``) to :class:`_JSONObject`."""
    if isinstance(value, _JSONObject):
        return value
    if isinstance(value, Mapping):
        return _JSONObject((k, _to_internal(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_to_internal(v) for v in value]
    return value


# --------------------------------------------------------------------------
# Messages


@dataclasses.dataclass(frozen=True)
class Login(Message):
    """``o``: first message of a control connection (frpc -> frps)."""

    TYPE: ClassVar[bytes] = b"o"
    version: str = ""
    hostname: str = ""
    os: str = ""
    arch: str = ""
    user: str = ""
    privilege_key: str = ""
    timestamp: int = 0
    run_id: str = ""
    client_id: str = ""
    metas: Mapping[str, str] = _EMPTY_MAP
    pool_count: int = 0

    _FIELDS = (
        ("version", "version", _STR),
        ("hostname", "hostname", _STR),
        ("os", "os", _STR),
        ("arch", "arch", _STR),
        ("user", "user", _STR),
        ("privilege_key", "privilege_key", _STR),
        ("timestamp", "timestamp", _INT),
        ("run_id", "run_id", _STR),
        ("client_id", "client_id", _STR),
        ("metas", "metas", _MAP),
        (None, "client_spec", _SPEC),
        ("pool_count", "pool_count", _INT),
    )
    _LEGACY = (
        ("version", "version"),
        ("hostname", "hostname"),
        ("os", "os"),
        ("arch", "arch"),
        ("user", "user"),
        ("privilege_key", "privilege_key"),
        ("timestamp", "timestamp"),
        ("run_id", "run_id"),
        ("metas", "metas"),
        ("pool_count", "pool_count"),
    )


@dataclasses.dataclass(frozen=True)
class LoginResp(Message):
    """``1``: answer to Login, sent in clear; non-empty ``error`` = refused."""

    TYPE: ClassVar[bytes] = b"1"
    version: str = ""
    run_id: str = ""
    error: str = ""

    _FIELDS = (
        ("version", "version", _STR),
        ("run_id", "run_id", _STR),
        ("error", "error", _STR),
    )
    _LEGACY = (
        ("version", "version"),
        ("run_id", "run_id"),
        ("server_udp_port", None),
        ("error", "error"),
    )


@dataclasses.dataclass(frozen=True)
class NewProxy(Message):
    """``p``: register a proxy on the control connection."""

    TYPE: ClassVar[bytes] = b"p"
    proxy_name: str = ""
    proxy_type: str = ""
    use_encryption: bool = False
    use_compression: bool = False
    bandwidth_limit: str = ""
    bandwidth_limit_mode: str = ""
    group: str = ""
    group_key: str = ""
    metas: Mapping[str, str] = _EMPTY_MAP
    annotations: Mapping[str, str] = _EMPTY_MAP
    remote_port: int = 0
    custom_domains: tuple[str, ...] = ()
    subdomain: str = ""
    locations: tuple[str, ...] = ()
    http_user: str = ""
    http_pwd: str = ""
    host_header_rewrite: str = ""
    headers: Mapping[str, str] = _EMPTY_MAP
    response_headers: Mapping[str, str] = _EMPTY_MAP
    route_by_http_user: str = ""
    sk: str = ""
    allow_users: tuple[str, ...] = ()
    multiplexer: str = ""

    _FIELDS = (
        ("proxy_name", "proxy_name", _STR),
        ("proxy_type", "proxy_type", _STR),
        ("use_encryption", "use_encryption", _BOOL),
        ("use_compression", "use_compression", _BOOL),
        ("bandwidth_limit", "bandwidth_limit", _STR),
        ("bandwidth_limit_mode", "bandwidth_limit_mode", _STR),
        ("group", "group", _STR),
        ("group_key", "group_key", _STR),
        ("metas", "metas", _MAP),
        ("annotations", "annotations", _MAP),
        ("remote_port", "remote_port", _INT),
        ("custom_domains", "custom_domains", _LIST),
        ("subdomain", "subdomain", _STR),
        ("locations", "locations", _LIST),
        ("http_user", "http_user", _STR),
        ("http_pwd", "http_pwd", _STR),
        ("host_header_rewrite", "host_header_rewrite", _STR),
        ("headers", "headers", _MAP),
        ("response_headers", "response_headers", _MAP),
        ("route_by_http_user", "route_by_http_user", _STR),
        ("sk", "sk", _STR),
        ("allow_users", "allow_users", _LIST),
        ("multiplexer", "multiplexer", _STR),
    )
    _LEGACY = (
        ("proxy_name", "proxy_name"),
        ("proxy_type", "proxy_type"),
        ("use_encryption", "use_encryption"),
        ("use_compression", "use_compression"),
        ("group", "group"),
        ("group_key", "group_key"),
        ("metas", "metas"),
        ("remote_port", "remote_port"),
        ("custom_domains", "custom_domains"),
        ("subdomain", "subdomain"),
        ("locations", "locations"),
        ("http_user", "http_user"),
        ("http_pwd", "http_pwd"),
        ("host_header_rewrite", "host_header_rewrite"),
        ("headers", "headers"),
        ("sk", "sk"),
    )


@dataclasses.dataclass(frozen=True)
class NewProxyResp(Message):
    """``2``: result of NewProxy (``remote_addr`` or ``error``)."""

    TYPE: ClassVar[bytes] = b"2"
    proxy_name: str = ""
    remote_addr: str = ""
    error: str = ""

    _FIELDS = (
        ("proxy_name", "proxy_name", _STR),
        ("remote_addr", "remote_addr", _STR),
        ("error", "error", _STR),
    )
    _LEGACY = (("proxy_name", "proxy_name"), ("remote_addr", "remote_addr"), ("error", "error"))


@dataclasses.dataclass(frozen=True)
class CloseProxy(Message):
    """``c``: unregister a proxy; no answer."""

    TYPE: ClassVar[bytes] = b"c"
    proxy_name: str = ""

    _FIELDS = (("proxy_name", "proxy_name", _STR),)
    _LEGACY = (("proxy_name", "proxy_name"),)


@dataclasses.dataclass(frozen=True)
class NewWorkConn(Message):
    """``w``: first message of a work connection (frpc -> frps)."""

    TYPE: ClassVar[bytes] = b"w"
    run_id: str = ""
    privilege_key: str = ""
    timestamp: int = 0

    _FIELDS = (
        ("run_id", "run_id", _STR),
        ("privilege_key", "privilege_key", _STR),
        ("timestamp", "timestamp", _INT),
    )
    _LEGACY = (("run_id", "run_id"),)


@dataclasses.dataclass(frozen=True)
class ReqWorkConn(Message):
    """``r``: frps asks for one more pooled work connection."""

    TYPE: ClassVar[bytes] = b"r"


@dataclasses.dataclass(frozen=True)
class StartWorkConn(Message):
    """``s``: frps hands a user connection to a work connection (then raw bytes)."""

    TYPE: ClassVar[bytes] = b"s"
    proxy_name: str = ""
    src_addr: str = ""
    dst_addr: str = ""
    src_port: int = 0
    dst_port: int = 0
    error: str = ""

    _FIELDS = (
        ("proxy_name", "proxy_name", _STR),
        ("src_addr", "src_addr", _STR),
        ("dst_addr", "dst_addr", _STR),
        ("src_port", "src_port", _UINT16),
        ("dst_port", "dst_port", _UINT16),
        ("error", "error", _STR),
    )
    _LEGACY = (
        ("proxy_name", "proxy_name"),
        ("src_addr", "src_addr"),
        ("dst_addr", "dst_addr"),
        ("src_port", "src_port"),
        ("dst_port", "dst_port"),
    )


@dataclasses.dataclass(frozen=True)
class NewVisitorConn(Message):
    """``v``: first message of a visitor (stcp/sudp) connection."""

    TYPE: ClassVar[bytes] = b"v"
    run_id: str = ""
    proxy_name: str = ""
    sign_key: str = ""
    timestamp: int = 0
    use_encryption: bool = False
    use_compression: bool = False

    _FIELDS = (
        ("run_id", "run_id", _STR),
        ("proxy_name", "proxy_name", _STR),
        ("sign_key", "sign_key", _STR),
        ("timestamp", "timestamp", _INT),
        ("use_encryption", "use_encryption", _BOOL),
        ("use_compression", "use_compression", _BOOL),
    )
    _LEGACY = (
        ("proxy_name", "proxy_name"),
        ("sign_key", "sign_key"),
        ("timestamp", "timestamp"),
        ("use_encryption", "use_encryption"),
        ("use_compression", "use_compression"),
    )


@dataclasses.dataclass(frozen=True)
class NewVisitorConnResp(Message):
    """``3``: answer to NewVisitorConn, in clear."""

    TYPE: ClassVar[bytes] = b"3"
    proxy_name: str = ""
    error: str = ""

    _FIELDS = (("proxy_name", "proxy_name", _STR), ("error", "error", _STR))
    _LEGACY = (("proxy_name", "proxy_name"), ("error", "error"))


@dataclasses.dataclass(frozen=True)
class Ping(Message):
    """``h``: application heartbeat (v0.31.2: always ``{}``)."""

    TYPE: ClassVar[bytes] = b"h"
    privilege_key: str = ""
    timestamp: int = 0

    _FIELDS = (("privilege_key", "privilege_key", _STR), ("timestamp", "timestamp", _INT))
    _LEGACY = ()


@dataclasses.dataclass(frozen=True)
class Pong(Message):
    """``4``: heartbeat answer (v0.31.2: always ``{}``)."""

    TYPE: ClassVar[bytes] = b"4"
    error: str = ""

    _FIELDS = (("error", "error", _STR),)
    _LEGACY = ()


# --------------------------------------------------------------------------
# UDPPacket

Address = tuple[str, int]


def _encode_udp_addr(addr: Address | None) -> dict[str, Any] | None:
    """Go ``*net.UDPAddr`` JSON: ``{"IP": "...", "Port": n, "Zone": ""}``."""
    if addr is None:
        return None
    host, port = addr
    zone = ""
    if "%" in host:
        host, zone = host.split("%", 1)
    if host:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"UDPPacket address {host!r} is not an IP address") from None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # Go prints IPv4-mapped addresses as dotted quads
        host = str(ip)
    return {"IP": host, "Port": int(port), "Zone": zone}


def _decode_udp_addr(key: str, value: Any) -> Address | None:
    if value is None:
        return None
    if not isinstance(value, _JSONObject):
        raise _bad("UDPPacket", key, "object", value)
    host = ""
    port = 0
    zone = ""
    for k, v in value:
        fk = _fold(k)
        if v is None:
            if fk == "ip":
                host = ""  # a nil net.IP
            continue
        if fk == "ip":
            if not isinstance(v, str):
                raise _bad("UDPPacket", f"{key}.IP", "string", v)
            if v == "":
                host = ""
                continue
            if "%" in v:
                raise ProtocolError(f"UDPPacket: invalid IP address {v!r} in {key!r}")
            try:
                ip = ipaddress.ip_address(v)
            except ValueError:
                raise ProtocolError(f"UDPPacket: invalid IP address {v!r} in {key!r}") from None
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            host = str(ip)
        elif fk == "port":
            port = _decode_int("UDPPacket", f"{key}.Port", v, _INT64_MIN, _INT64_MAX, "int")
        elif fk == "zone":
            if not isinstance(v, str):
                raise _bad("UDPPacket", f"{key}.Zone", "string", v)
            zone = v
    if zone:
        host = f"{host}%{zone}"
    return (host, port)


@dataclasses.dataclass(frozen=True)
class UDPPacket(Message):
    """``u``: one datagram on a UDP/SUDP work or visitor connection.

    ``c`` is standard base64 with padding; ``l``/``r`` are Go
    ``net.UDPAddr`` objects, here ``(ip, port)`` tuples (a zone, if any, is
    appended to the IP as ``"%zone"``).
    """

    TYPE: ClassVar[bytes] = b"u"
    content: bytes = b""
    local_addr: Address | None = None
    remote_addr: Address | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "content", bytes(self.content))
        for attr in ("local_addr", "remote_addr"):
            value = getattr(self, attr)
            if value is not None:
                object.__setattr__(self, attr, (str(value[0]), int(value[1])))

    def to_json(self, legacy: bool = False) -> dict[str, Any]:
        content = base64.b64encode(self.content).decode("ascii")
        local = _encode_udp_addr(self.local_addr)
        remote = _encode_udp_addr(self.remote_addr)
        if legacy:
            return {"c": content, "l": local, "r": remote}
        out: dict[str, Any] = {}
        if content:
            out["c"] = content
        if local is not None:
            out["l"] = local
        if remote is not None:
            out["r"] = remote
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> UDPPacket:
        content = b""
        local: Address | None = None
        remote: Address | None = None
        for key, value in _as_pairs(cls.__name__, obj):
            fk = _fold(key)
            if fk == "c":
                if value is None:
                    content = b""
                    continue
                if not isinstance(value, str):
                    raise _bad("UDPPacket", "c", "string (base64)", value)
                try:
                    # Go's []byte decoding ignores \r and \n, otherwise strict std base64.
                    content = base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
                except (binascii.Error, ValueError) as e:
                    raise ProtocolError(f"UDPPacket: field 'c' is not valid base64: {e}") from None
            elif fk == "l":
                local = _decode_udp_addr("l", value)
            elif fk == "r":
                remote = _decode_udp_addr("r", value)
        return cls(content=content, local_addr=local, remote_addr=remote)


# --------------------------------------------------------------------------
# xtcp messages: recognised, carried opaquely


@dataclasses.dataclass(frozen=True)
class _OpaqueMessage(Message):
    """A message frptx only recognises: ``fields`` is the decoded JSON object.

    It is encoded back exactly as stored (no omitempty or legacy rules).
    """

    fields: Mapping[str, Any] = _EMPTY_MAP

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", _freeze_map(self.fields))

    def to_json(self, legacy: bool = False) -> dict[str, Any]:
        return dict(self.fields)

    @classmethod
    def from_json(cls: type[_O], obj: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> _O:
        pairs = _as_pairs(cls.__name__, obj)
        return cls(fields=FrozenMap((k, _plain(v)) for k, v in pairs))


@dataclasses.dataclass(frozen=True)
class NatHoleVisitor(_OpaqueMessage):
    """``i``: xtcp visitor request (not implemented by frptx)."""

    TYPE: ClassVar[bytes] = b"i"


@dataclasses.dataclass(frozen=True)
class NatHoleClient(_OpaqueMessage):
    """``n``: xtcp client request (not implemented by frptx)."""

    TYPE: ClassVar[bytes] = b"n"


@dataclasses.dataclass(frozen=True)
class NatHoleResp(_OpaqueMessage):
    """``m``: xtcp server response (not implemented by frptx)."""

    TYPE: ClassVar[bytes] = b"m"


@dataclasses.dataclass(frozen=True)
class NatHoleSid(_OpaqueMessage):
    """``5``: xtcp session id on a work connection (not implemented by frptx)."""

    TYPE: ClassVar[bytes] = b"5"


@dataclasses.dataclass(frozen=True)
class NatHoleReport(_OpaqueMessage):
    """``6``: xtcp result report (HEAD only; not implemented by frptx)."""

    TYPE: ClassVar[bytes] = b"6"


@dataclasses.dataclass(frozen=True)
class NatHoleClientDetectOK(_OpaqueMessage):
    """``d``: v0.31.2-only xtcp message (not implemented by frptx)."""

    TYPE: ClassVar[bytes] = b"d"


MESSAGE_TYPES: Mapping[bytes, type[Message]] = MappingProxyType(
    {
        cls.TYPE: cls
        for cls in (
            Login,
            LoginResp,
            NewProxy,
            NewProxyResp,
            CloseProxy,
            NewWorkConn,
            ReqWorkConn,
            StartWorkConn,
            NewVisitorConn,
            NewVisitorConnResp,
            Ping,
            Pong,
            UDPPacket,
            NatHoleVisitor,
            NatHoleClient,
            NatHoleResp,
            NatHoleSid,
            NatHoleReport,
            NatHoleClientDetectOK,
        )
    }
)
