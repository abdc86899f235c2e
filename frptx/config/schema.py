# -*- test-case-name: frptx.test.test_config -*-
"""
frp's configuration schema (v0.52+, camelCase keys), the structural checker
that enforces it, and the table of frp features frptx does not run yet.

The schema lists every key frp itself knows, so that a real user's frp file
never fails as "unknown key" while a typo always does.  Knowing a key is not
the same as implementing it: L{UNSUPPORTED_FEATURES} names the keys whose
non-default values frptx must refuse, because silently ignoring them would
change what the user asked for.  Enabling a feature later means deleting its
rows there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Scalar",
    "ListOf",
    "MapOf",
    "Struct",
    "Tagged",
    "SERVER_SCHEMA",
    "CLIENT_SCHEMA",
    "PROXY_TYPES",
    "VISITOR_TYPES",
    "Unsupported",
    "UNSUPPORTED_FEATURES",
    "check_structure",
    "check_unsupported",
]


# ---------------------------------------------------------------------------
# Schema vocabulary
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scalar:
    """A leaf: C{kind} is C{"string"}, C{"integer"}, C{"boolean"} or C{"any"}."""

    kind: str


@dataclass(frozen=True)
class ListOf:
    """A list whose items all follow C{item}."""

    item: Node


@dataclass(frozen=True)
class MapOf:
    """A mapping with free-form string keys (metadatas, featureGates, ...)."""

    value: Node


@dataclass(frozen=True)
class Struct:
    """A mapping with a fixed set of camelCase keys."""

    fields: Mapping[str, Node]
    _folded: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Go's encoding/json (used by frp up to v0.6x) matches keys
        # case-insensitively, so "localIp" works in frp; accept it too.
        object.__setattr__(self, "_folded", {k.lower(): k for k in self.fields})

    def canonical(self, key: str) -> str | None:
        """The schema's spelling of C{key}, or None if frp does not know it."""
        if key in self.fields:
            return key
        return self._folded.get(key.lower())


@dataclass(frozen=True)
class Tagged:
    """
    A mapping whose valid keys depend on its C{type} key (proxies, visitors,
    plugins).  C{what} names the tag in messages ("proxy type").  With
    C{optional}, an empty mapping means "none" (an absent plugin).
    """

    what: str
    variants: Mapping[str, Struct]
    optional: bool = False
    union: Struct = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        merged: dict[str, Node] = {}
        for variant in self.variants.values():
            merged.update(variant.fields)
        object.__setattr__(self, "union", Struct(merged))


Node = Scalar | ListOf | MapOf | Struct | Tagged

STR = Scalar("string")
INT = Scalar("integer")
BOOL = Scalar("boolean")
ANY = Scalar("any")
STRS = ListOf(STR)
STR_MAP = MapOf(STR)
BOOL_MAP = MapOf(BOOL)


def _variants(base: Mapping[str, Node], extra: Mapping[str, Mapping[str, Node]]) -> dict[str, Struct]:
    return {name: Struct({**base, **fields}) for name, fields in extra.items()}


# ---------------------------------------------------------------------------
# frp's keys (pkg/config/v1: common.go, server.go, client.go, proxy.go,
# visitor.go, proxy_plugin.go, visitor_plugin.go, value_source.go, ssh.go)
# ---------------------------------------------------------------------------

_TLS_FILES: dict[str, Node] = {
    "certFile": STR,
    "keyFile": STR,
    "trustedCaFile": STR,
    "serverName": STR,
}
_QUIC = Struct({"keepalivePeriod": INT, "maxIdleTimeout": INT, "maxIncomingStreams": INT})
_LOG = Struct({"to": STR, "level": STR, "maxDays": INT, "disablePrintColor": BOOL})
_WEB_SERVER = Struct(
    {
        "addr": STR,
        "port": INT,
        "user": STR,
        "password": STR,
        "assetsDir": STR,
        "pprofEnable": BOOL,
        "tls": Struct(_TLS_FILES),
    }
)
_VALUE_SOURCE = Struct({"type": STR, "file": Struct({"path": STR}), "exec": ANY})
_HEADER_OPS = Struct({"set": STR_MAP})
_HTTP_HEADER = Struct({"name": STR, "value": STR})
_NAT_TRAVERSAL = Struct({"disableAssistedAddrs": BOOL})

_AUTH_BASE: dict[str, Node] = {
    "method": STR,
    "additionalScopes": STRS,
    "token": STR,
    "tokenSource": _VALUE_SOURCE,
}
_SERVER_AUTH = Struct(
    {
        **_AUTH_BASE,
        "oidc": Struct(
            {"issuer": STR, "audience": STR, "skipExpiryCheck": BOOL, "skipIssuerCheck": BOOL}
        ),
    }
)
_CLIENT_AUTH = Struct(
    {
        **_AUTH_BASE,
        "oidc": Struct(
            {
                "clientID": STR,
                "clientSecret": STR,
                "audience": STR,
                "scope": STR,
                "tokenEndpointURL": STR,
                "additionalEndpointParams": STR_MAP,
                "trustedCaFile": STR,
                "insecureSkipVerify": BOOL,
                "proxyURL": STR,
                "tokenSource": _VALUE_SOURCE,
            }
        ),
    }
)

_HTTP_REWRITE_PLUGIN: dict[str, Node] = {
    "localAddr": STR,
    "hostHeaderRewrite": STR,
    "requestHeaders": _HEADER_OPS,
}
_TLS_TERMINATING_PLUGIN: dict[str, Node] = {
    **_HTTP_REWRITE_PLUGIN,
    "enableHTTP2": BOOL,
    "crtPath": STR,
    "keyPath": STR,
}
PROXY_PLUGIN_TYPES = (
    "http2https",
    "http_proxy",
    "https2http",
    "https2https",
    "http2http",
    "socks5",
    "static_file",
    "unix_domain_socket",
    "tls2raw",
    "virtual_net",
)
_PROXY_PLUGIN = Tagged(
    "plugin type",
    _variants(
        {"type": STR},
        {
            "http2https": _HTTP_REWRITE_PLUGIN,
            "http_proxy": {"httpUser": STR, "httpPassword": STR},
            "https2http": _TLS_TERMINATING_PLUGIN,
            "https2https": _TLS_TERMINATING_PLUGIN,
            "http2http": _HTTP_REWRITE_PLUGIN,
            "socks5": {"username": STR, "password": STR},
            "static_file": {
                "localPath": STR,
                "stripPrefix": STR,
                "httpUser": STR,
                "httpPassword": STR,
            },
            "unix_domain_socket": {"unixPath": STR},
            "tls2raw": {"localAddr": STR, "crtPath": STR, "keyPath": STR},
            "virtual_net": {},
        },
    ),
    optional=True,
)
_VISITOR_PLUGIN = Tagged(
    "plugin type",
    _variants({"type": STR}, {"virtual_net": {"destinationIP": STR}}),
    optional=True,
)

_PROXY_BASE: dict[str, Node] = {
    "name": STR,
    "type": STR,
    "enabled": BOOL,
    "annotations": STR_MAP,
    "metadatas": STR_MAP,
    "transport": Struct(
        {
            "useEncryption": BOOL,
            "useCompression": BOOL,
            "bandwidthLimit": STR,
            "bandwidthLimitMode": STR,
            "proxyProtocolVersion": STR,
        }
    ),
    "loadBalancer": Struct({"group": STR, "groupKey": STR}),
    "healthCheck": Struct(
        {
            "type": STR,
            "timeoutSeconds": INT,
            "maxFailed": INT,
            "intervalSeconds": INT,
            "path": STR,
            "httpHeaders": ListOf(_HTTP_HEADER),
        }
    ),
    "localIP": STR,
    "localPort": INT,
    "plugin": _PROXY_PLUGIN,
}
_DOMAINS: dict[str, Node] = {"customDomains": STRS, "subdomain": STR}
_SECRET: dict[str, Node] = {"secretKey": STR, "allowUsers": STRS}

PROXY_TYPES = ("tcp", "udp", "http", "https", "tcpmux", "stcp", "sudp", "xtcp")
_PROXY = Tagged(
    "proxy type",
    _variants(
        _PROXY_BASE,
        {
            "tcp": {"remotePort": INT},
            "udp": {"remotePort": INT},
            "http": {
                **_DOMAINS,
                "locations": STRS,
                "httpUser": STR,
                "httpPassword": STR,
                "hostHeaderRewrite": STR,
                "requestHeaders": _HEADER_OPS,
                "responseHeaders": _HEADER_OPS,
                "routeByHTTPUser": STR,
            },
            "https": _DOMAINS,
            "tcpmux": {
                **_DOMAINS,
                "httpUser": STR,
                "httpPassword": STR,
                "routeByHTTPUser": STR,
                "multiplexer": STR,
            },
            "stcp": _SECRET,
            "sudp": _SECRET,
            "xtcp": {**_SECRET, "natTraversal": _NAT_TRAVERSAL},
        },
    ),
)

_VISITOR_BASE: dict[str, Node] = {
    "name": STR,
    "type": STR,
    "enabled": BOOL,
    "transport": Struct({"useEncryption": BOOL, "useCompression": BOOL}),
    "secretKey": STR,
    "serverUser": STR,
    "serverName": STR,
    "bindAddr": STR,
    "bindPort": INT,
    "plugin": _VISITOR_PLUGIN,
}
VISITOR_TYPES = ("stcp", "sudp", "xtcp")
_VISITOR = Tagged(
    "visitor type",
    _variants(
        _VISITOR_BASE,
        {
            "stcp": {},
            "sudp": {},
            "xtcp": {
                "protocol": STR,
                "keepTunnelOpen": BOOL,
                "maxRetriesAnHour": INT,
                "minRetryInterval": INT,
                "fallbackTo": STR,
                "fallbackTimeoutMs": INT,
                "natTraversal": _NAT_TRAVERSAL,
            },
        },
    ),
)

SERVER_SCHEMA = Struct(
    {
        "version": STR,
        "auth": _SERVER_AUTH,
        "bindAddr": STR,
        "bindPort": INT,
        "kcpBindPort": INT,
        "quicBindPort": INT,
        "proxyBindAddr": STR,
        "vhostHTTPPort": INT,
        "vhostHTTPTimeout": INT,
        "vhostHTTPSPort": INT,
        "tcpmuxHTTPConnectPort": INT,
        "tcpmuxPassthrough": BOOL,
        "subDomainHost": STR,
        "custom404Page": STR,
        "sshTunnelGateway": Struct(
            {
                "bindPort": INT,
                "privateKeyFile": STR,
                "autoGenPrivateKeyPath": STR,
                "authorizedKeysFile": STR,
            }
        ),
        "webServer": _WEB_SERVER,
        "enablePrometheus": BOOL,
        "log": _LOG,
        "transport": Struct(
            {
                "tcpMux": BOOL,
                "tcpMuxKeepaliveInterval": INT,
                "tcpKeepalive": INT,
                "maxPoolCount": INT,
                "heartbeatTimeout": INT,
                "quic": _QUIC,
                "tls": Struct({"force": BOOL, **_TLS_FILES}),
            }
        ),
        "detailedErrorsToClient": BOOL,
        "maxPortsPerClient": INT,
        "userConnTimeout": INT,
        "udpPacketSize": INT,
        "natholeAnalysisDataReserveHours": INT,
        "allowPorts": ListOf(Struct({"start": INT, "end": INT, "single": INT})),
        "allowedClientIPs": STRS,
        "httpPlugins": ListOf(
            Struct({"name": STR, "addr": STR, "path": STR, "ops": STRS, "tlsVerify": BOOL})
        ),
    }
)

CLIENT_SCHEMA = Struct(
    {
        "version": STR,
        "auth": _CLIENT_AUTH,
        "user": STR,
        "clientID": STR,
        "serverAddr": STR,
        "serverPort": INT,
        "natHoleStunServer": STR,
        "dnsServer": STR,
        "loginFailExit": BOOL,
        "start": STRS,
        "log": _LOG,
        "webServer": _WEB_SERVER,
        "transport": Struct(
            {
                "protocol": STR,
                "wireProtocol": STR,
                "dialServerTimeout": INT,
                "dialServerKeepalive": INT,
                "connectServerLocalIP": STR,
                "proxyURL": STR,
                "poolCount": INT,
                "tcpMux": BOOL,
                "tcpMuxKeepaliveInterval": INT,
                "quic": _QUIC,
                "heartbeatInterval": INT,
                "heartbeatTimeout": INT,
                "tls": Struct({"enable": BOOL, "disableCustomTLSFirstByte": BOOL, **_TLS_FILES}),
                "auto": Struct(
                    {
                        "enabled": BOOL,
                        "candidates": STRS,
                        "allowUDP": BOOL,
                        "strategy": STR,
                        "probeTimeoutMs": INT,
                        "probeCount": INT,
                        "stickyDurationSec": INT,
                        "cooldownSec": INT,
                        "failureThreshold": INT,
                        "degradeThreshold": INT,
                        "recheckIntervalSec": INT,
                        "persistLastGood": BOOL,
                        "bootstrapProtocol": STR,
                        "bootstrapPort": INT,
                    }
                ),
            }
        ),
        "virtualNet": Struct({"address": STR}),
        "featureGates": BOOL_MAP,
        "udpPacketSize": INT,
        "metadatas": STR_MAP,
        "includes": STRS,
        "store": Struct({"path": STR}),
        "proxies": ListOf(_PROXY),
        "visitors": ListOf(_VISITOR),
    }
)


# ---------------------------------------------------------------------------
# Structural checking: keys and types
# ---------------------------------------------------------------------------

#: Marks a value that failed its check (already reported); never stored.
_INVALID = object()

_KIND_TEXT = {"string": "a string", "integer": "an integer", "boolean": "a boolean (true/false)"}


def join(path: str, key: str) -> str:
    """C{path} extended by a mapping key: C{"transport" + "tls" -> "transport.tls"}."""
    return f"{path}.{key}" if path else key


def index(path: str, i: int) -> str:
    """C{path} extended by a list index: C{"proxies[1]"}."""
    return f"{path}[{i}]"


def _describe(value: Any) -> str:
    """Render a wrong value for a message the way the user wrote it."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


class _Checker:
    """
    Walks a decoded document against a schema node, collecting errors and
    returning a cleaned copy: canonical key spellings, only values whose type
    checked out, C{None} treated as absent (as Go treats JSON null).
    """

    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []

    def fail(self, path: str, reason: str) -> object:
        self.errors.append((path, reason))
        return _INVALID

    def check(self, node: Node, value: Any, path: str) -> Any:
        if isinstance(node, Scalar):
            return self._scalar(node, value, path)
        if isinstance(node, ListOf):
            if not isinstance(value, list):
                return self.fail(path, f"expected a list, got {_describe(value)}")
            out: list[Any] = []
            for i, item in enumerate(value):
                if item is None:
                    out.append(None)
                    continue
                checked = self.check(node.item, item, index(path, i))
                out.append(None if checked is _INVALID else checked)
            return out
        if isinstance(node, MapOf):
            if not isinstance(value, dict):
                return self.fail(path, f"expected a mapping, got {_describe(value)}")
            result: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    self.fail(join(path, str(key)), "keys must be strings")
                    continue
                if item is None:
                    continue
                checked = self.check(node.value, item, join(path, key))
                if checked is not _INVALID:
                    result[key] = checked
            return result
        if isinstance(node, Struct):
            return self._struct(node, value, path)
        return self._tagged(node, value, path)

    def _scalar(self, node: Scalar, value: Any, path: str) -> Any:
        kind = node.kind
        if kind == "any":
            return value
        if kind == "string":
            ok = isinstance(value, str)
        elif kind == "integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, bool)
        if ok:
            return value
        hint = ""
        if kind == "string" and isinstance(value, (int, float, bool)):
            hint = " (quote it to make it a string)"
        return self.fail(path, f"expected {_KIND_TEXT[kind]}, got {_describe(value)}{hint}")

    def _struct(
        self, node: Struct, value: Any, path: str, context: str = "", outer: Struct | None = None
    ) -> Any:
        """
        Check a fixed-key mapping.  C{outer} is a wider struct (all variants
        of a tagged union) used to tell "valid for another type" apart from
        "unknown".
        """
        if not isinstance(value, dict):
            return self.fail(path, f"expected a mapping, got {_describe(value)}")
        result: dict[str, Any] = {}
        seen: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                self.fail(join(path, str(key)), "keys must be strings")
                continue
            here = join(path, key)
            canonical = node.canonical(key)
            if canonical is None:
                if outer is not None and outer.canonical(key) is not None:
                    self.fail(here, f"not valid for {context}")
                else:
                    self.fail(here, "unknown key" + _suggest(key, (outer or node).fields))
                continue
            if canonical in seen:
                self.fail(here, f"duplicate of key {seen[canonical]!r}")
                continue
            seen[canonical] = key
            if item is None:
                continue
            checked = self.check(node.fields[canonical], item, here)
            if checked is not _INVALID:
                result[canonical] = checked
        return result

    def _tagged(self, node: Tagged, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            return self.fail(path, f"expected a mapping, got {_describe(value)}")
        if node.optional and not value:
            return {}
        tag_key = next((k for k in value if isinstance(k, str) and k.lower() == "type"), None)
        tag = value.get(tag_key) if tag_key is not None else None
        type_path = join(path, tag_key or "type")
        if tag is None or tag == "":
            self.fail(type_path, "required")
        elif not isinstance(tag, str):
            self.fail(type_path, f"expected a string, got {_describe(tag)}")
        elif tag not in node.variants:
            self.fail(
                type_path,
                f"unknown {node.what} {tag!r} (expected one of: {', '.join(node.variants)})",
            )
        else:
            return self._struct(
                node.variants[tag], value, path, f"{node.what} {tag!r}", outer=node.union
            )
        # Without a usable type, still report typos against every known key.
        checked = self._struct(node.union, value, path)
        if isinstance(checked, dict):
            checked.pop("type", None)
        return checked


def _suggest(key: str, known: Mapping[str, Any]) -> str:
    import difflib  # only for a config with an unknown key (not kept in every process)

    matches = difflib.get_close_matches(key, list(known), n=1, cutoff=0.7)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def check_structure(
    schema: Struct, document: Any, root: str = "<config>"
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """
    Check C{document} (already decoded) against C{schema}.

    @return: the cleaned document and the list of C{(path, reason)} errors.
    """
    checker = _Checker()
    if not isinstance(document, dict):
        checker.fail(root, f"expected a mapping at the top level, got {_describe(document)}")
        return {}, checker.errors
    cleaned = checker.check(schema, document, "")
    return (cleaned if isinstance(cleaned, dict) else {}), checker.errors


# ---------------------------------------------------------------------------
# Recognised but not yet implemented
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Unsupported:
    """
    One frp feature frptx does not run yet.

    @ivar side: C{"server"} or C{"client"}.
    @ivar pattern: key path; C{[*]} matches every list item
        (C{"proxies[*].transport.useEncryption"}).
    @ivar active: given the (type-checked) value, does it ask for the feature?
        Values equal to frp's default must return False, so that files that
        spell out defaults still load.
    @ivar hint: a few words for the user.
    """

    side: str
    pattern: str
    active: Callable[[Any], bool]
    hint: str


def _is(expected: Any) -> Callable[[Any], bool]:
    return lambda value: value == expected


def _is_not(default: Any) -> Callable[[Any], bool]:
    return lambda value: value != default


def _set(value: Any) -> bool:
    """Non-default for values whose default is empty/zero/false."""
    return bool(value)


def _any_true(value: Any) -> bool:
    return any(value.values()) if isinstance(value, dict) else bool(value)


# Delete a row to enable its feature.  The first block is next on the plan.
UNSUPPORTED_FEATURES: tuple[Unsupported, ...] = (
    # --- later: proxy types and proxy features -----------------------------
    Unsupported("client", "proxies[*].type", _is("xtcp"),
                "xtcp (P2P) proxies; tcp, udp, stcp, sudp, http, https and tcpmux proxies run today"),
    Unsupported("client", "visitors[*].type", _is("xtcp"), "xtcp (P2P) visitors"),
    Unsupported("client", "visitors[*].plugin", _set, "visitor plugins"),
    # --- later: client-wide ------------------------------------------------
    Unsupported("client", "transport.protocol", _is_not("tcp"),
                "transports other than tcp (kcp/quic/websocket/wss/auto)"),
    Unsupported("client", "transport.wireProtocol", _is_not("v1"), "wire protocol v2; use v1"),
    Unsupported("client", "transport.proxyURL", _set, "dialing frps through a proxy"),
    Unsupported("client", "transport.auto.enabled", _set, "automatic transport selection"),
    Unsupported("client", "auth.method", _is("oidc"), "OIDC authentication; use token"),
    Unsupported("client", "auth.tokenSource", _set, "auth.tokenSource; put the token in auth.token"),
    Unsupported("client", "includes", _set, "included proxy files"),
    Unsupported("client", "store.path", _set, "the proxy store"),
    Unsupported("client", "virtualNet.address", _set, "virtual networking"),
    Unsupported("client", "featureGates", _any_true, "feature gates"),
    Unsupported("client", "dnsServer", _set, "a custom DNS server"),
    # --- later: frps --------------------------------------------------------
    Unsupported("server", "kcpBindPort", _set, "the KCP listener; set it to 0"),
    Unsupported("server", "quicBindPort", _set, "the QUIC listener; set it to 0"),
    Unsupported("server", "sshTunnelGateway.bindPort", _set, "the SSH tunnel gateway"),
    Unsupported("server", "allowedClientIPs", _set, "client IP allow-lists"),
    Unsupported("server", "auth.method", _is("oidc"), "OIDC authentication; use token"),
    Unsupported("server", "auth.tokenSource", _set, "auth.tokenSource; put the token in auth.token"),
)


def _resolve(tree: Any, parts: list[str], path: str) -> list[tuple[str, Any]]:
    """All C{(concrete path, value)} pairs C{parts} reaches in C{tree}."""
    if not parts:
        return [(path, tree)]
    head, rest = parts[0], parts[1:]
    star = head.endswith("[*]")
    key = head[:-3] if star else head
    if not isinstance(tree, dict) or key not in tree:
        return []
    value = tree[key]
    here = join(path, key)
    if not star:
        return _resolve(value, rest, here)
    found: list[tuple[str, Any]] = []
    if isinstance(value, list):
        for i, item in enumerate(value):
            if item is not None:
                found.extend(_resolve(item, rest, index(here, i)))
    return found


def check_unsupported(side: str, cleaned: Mapping[str, Any]) -> list[tuple[str, str]]:
    """
    Errors for every recognised-but-unimplemented feature that C{cleaned}
    (the output of L{check_structure}) switches on.
    """
    errors: list[tuple[str, str]] = []
    for row in UNSUPPORTED_FEATURES:
        if row.side != side:
            continue
        for path, value in _resolve(dict(cleaned), row.pattern.split("."), ""):
            if row.active(value):
                errors.append((path, f"not supported by frptx yet ({row.hint})"))
    return errors
