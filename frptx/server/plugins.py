# -*- test-case-name: frptx.test.test_server_plugins -*-
"""frps server plugins (``httpPlugins[]``): ask external services to allow or rewrite operations.

Go frp 0.65.0 (``pkg/plugin/server``) calls each plugin registered for an
operation, in configuration order, before it acts on:

======================  =====================================  ==========================================
op                      content (JSON)                         when frps asks, and what a refusal does
======================  =====================================  ==========================================
``Login``               the Login message fields +             before registering a client; LoginResp
                        ``client_address`` ("ip:port")         error, connection closed
``NewProxy``            ``user`` + the NewProxy fields         before registering a proxy; NewProxyResp error
``CloseProxy``          ``user`` + ``proxy_name``              after a proxy closed (notification only)
``Ping``                ``user`` + the Ping fields             on each heartbeat; Pong error
``NewWorkConn``         ``user`` + the NewWorkConn fields      before accepting a work connection;
                                                               StartWorkConn error, connection closed
``NewUserConn``         ``user``, ``proxy_name``,              before serving a user connection of a tcp
                        ``proxy_type``, ``remote_addr``        proxy; the user connection is closed
======================  =====================================  ==========================================

``user`` is ``{"user": ..., "metas": {...} or null, "run_id": ...}`` from the
client's Login (every key always present).  The message fields follow Go's
``encoding/json`` of frp's structs (``omitempty``), via
:mod:`frptx.wire.messages`.

**HTTP plugins** (:class:`HTTPPlugin`): ``POST {addr}{path}?op=<op>&version=0.1.0``
(``http://`` is prepended unless ``addr`` has a scheme) with headers
``Content-Type: application/json`` and ``X-Frp-Reqid`` (16 random hex digits,
one id per operation, shared by all plugins asked), body
``{"version":"0.1.0","op":"<op>","content":{...}}``.  With ``https://``,
``tlsVerify: false`` (the default) skips certificate verification.  The
answer must be status 200 with a JSON body
``{"reject": bool, "reject_reason": str, "unchange": bool, "content": {...}}``
(keys matched case-insensitively, like Go).  Then, as in frp:

* ``reject: true`` stops the operation; the error is ``reject_reason``.
* Otherwise, unless ``unchange`` is true, the operation continues with the
  ``content`` of the answer, decoded onto an *empty* content (fields the
  answer leaves out become empty -- and an answer without ``unchange: true``
  and without ``content`` empties everything: frp's rule, so plugins must say
  ``"unchange": true``).  The next plugin sees the rewritten content.
* A plugin that cannot be asked (connection error, status other than 200,
  a body that is not such JSON) stops the operation with
  ``send <op> request to plugin error``; the detail is only logged.

frps words the error for the client with ``detailedErrorsToClient`` (default
true): the reason above, or else a summary -- :func:`client_error_text`.

**Timeout (beyond frp).**  Go frp sets no timeout: a plugin that never
answers blocks that client's login (or proxy, ping, ...) forever.  frptx
gives every plugin call ``timeout`` seconds (default
:data:`DEFAULT_TIMEOUT`), after which the request is aborted and the
operation refused as a plugin error.  Everything is asynchronous: a slow
plugin delays only the operation that waits for it.

**In-process plugins (beyond frp).**  :class:`CallablePlugin` registers a
plain Python callable for the same hooks::

    def only_alice(op: str, content: LoginContent) -> PluginResponse | None:
        if content.login.user != "alice":
            return PluginResponse.rejected("alice only")
        return None  # allow, unchanged

    manager.register(CallablePlugin("alice", ["Login"], only_alice))

The callable gets the typed content (:class:`LoginContent`,
:class:`NewProxyContent`, ...) and returns ``None`` (allow unchanged), a
:class:`PluginResponse`, or a Deferred of either (a coroutine can be wrapped
with ``Deferred.fromCoroutine``).  A rewrite is
``PluginResponse.rewrite(new_content)`` with a typed content (used as is) or a
JSON-like mapping (decoded with frp's rules, as an HTTP answer's content).
An exception, a failed Deferred or the timeout is a plugin error, as for HTTP.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import urlencode

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IConsumer, IOpenSSLClientConnectionCreator, IReactorTime
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IPolicyForHTTPS, IResponse
from zope.interface import implementer

from frptx import logs
from frptx.wire.errors import ProtocolError
from frptx.wire.messages import (
    CloseProxy,
    Login,
    Message,
    NewProxy,
    NewWorkConn,
    Ping,
    dumps_go,
    loads_object,
)

if TYPE_CHECKING:  # pyOpenSSL and twisted.web.client (the endpoints) only for a frps with httpPlugins
    from OpenSSL import SSL

__all__ = [
    "API_VERSION",
    "OPS",
    "DEFAULT_TIMEOUT",
    "UserInfo",
    "LoginContent",
    "NewProxyContent",
    "CloseProxyContent",
    "PingContent",
    "NewWorkConnContent",
    "NewUserConnContent",
    "PluginResponse",
    "PluginDenied",
    "ServerPlugin",
    "HTTPPlugin",
    "CallablePlugin",
    "PluginManager",
    "client_error_text",
    "new_reqid",
    "address_text",
]

API_VERSION = "0.1.0"
OP_LOGIN = "Login"
OP_NEW_PROXY = "NewProxy"
OP_CLOSE_PROXY = "CloseProxy"
OP_PING = "Ping"
OP_NEW_WORK_CONN = "NewWorkConn"
OP_NEW_USER_CONN = "NewUserConn"
OPS = (OP_LOGIN, OP_NEW_PROXY, OP_CLOSE_PROXY, OP_PING, OP_NEW_WORK_CONN, OP_NEW_USER_CONN)
#: Seconds a plugin has to answer (frp has no limit; see the module docstring).
DEFAULT_TIMEOUT = 10.0


def new_reqid() -> str:
    """frp's ``util.RandID()``: 16 random lowercase hex digits."""
    return os.urandom(8).hex()


def address_text(address: Any) -> str:
    """Go's ``net.Addr.String()`` of a TCP address: ``ip:port``, ``[ipv6]:port``."""
    host = getattr(address, "host", "")
    port = getattr(address, "port", 0)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --------------------------------------------------------------------------
# Contents (frp's pkg/plugin/server/types.go)


def _fold(key: str) -> str:
    return key.lower()


def _pairs(obj: Any, what: str) -> list[tuple[str, Any]]:
    """Key/value pairs of a decoded JSON object (``loads_object`` pairs or a mapping)."""
    if isinstance(obj, Mapping):
        return list(obj.items())
    if isinstance(obj, _JSON_OBJECT):
        return obj  # the key/value pairs loads_object makes of a JSON object
    raise ProtocolError(f"{what} must be a JSON object")


_JSON_OBJECT = type(loads_object(b"{}"))


def _string_field(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"{what} must be a JSON string")
    return value


@dataclasses.dataclass(frozen=True)
class UserInfo:
    """The client an operation belongs to: its Login's ``user``, ``metas`` and ``run_id``."""

    user: str = ""
    metas: Mapping[str, str] | None = None
    run_id: str = ""

    def to_json(self) -> dict[str, Any]:
        # no omitempty here; a client without metas has a nil map: null
        return {"user": self.user, "metas": dict(sorted(self.metas.items())) if self.metas else None,
                "run_id": self.run_id}

    @classmethod
    def of(cls, login: Login, run_id: str) -> UserInfo:
        """A logged-in client's identity (``run_id``: the one frps uses, maybe generated at login)."""
        return cls(login.user, dict(login.metas) if login.metas else None, run_id)

    @classmethod
    def from_json(cls, obj: Any) -> UserInfo:
        kwargs: dict[str, Any] = {}
        for key, value in _pairs(obj, "user"):
            k = _fold(key)
            if value is None:
                if k == "metas":
                    kwargs.pop("metas", None)
                continue
            if k in ("user", "run_id"):
                kwargs[k] = _string_field(value, f"user.{k}")
            elif k == "metas":
                metas: dict[str, str] = {}
                for mk, mv in _pairs(value, "user.metas"):
                    metas[mk] = "" if mv is None else _string_field(mv, f"user.metas.{mk}")
                kwargs["metas"] = metas
        return cls(**kwargs)


class _Content:
    """Common shape: ``to_json()`` in Go's field order, ``from_json()`` onto an empty content."""

    OP: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_json(cls: type[_C], obj: Any) -> _C:
        raise NotImplementedError


_C = TypeVar("_C", bound=_Content)
_M = TypeVar("_M", bound=Message)


def _without(obj: Any, drop: str) -> Any:
    """``obj`` minus the keys folding to ``drop``, in a form ``Message.from_json`` takes."""
    if isinstance(obj, Mapping):
        return {k: v for k, v in obj.items() if _fold(k) != drop}
    out = loads_object(b"{}")  # the pair list type, so duplicate keys keep Go's last-wins rule
    out.extend((k, v) for k, v in _pairs(obj, "content") if _fold(k) != drop)
    return out


def _user_and_message(obj: Any, message_type: type[_M]) -> tuple[UserInfo, _M]:
    user = UserInfo()
    for key, value in _pairs(obj, "content"):
        if _fold(key) == "user" and value is not None:
            user = UserInfo.from_json(value)
    return user, message_type.from_json(_without(obj, "user"))


@dataclasses.dataclass(frozen=True)
class LoginContent(_Content):
    """``Login``: the client's Login message and its address ("ip:port")."""

    OP: ClassVar[str] = OP_LOGIN
    login: Login = dataclasses.field(default_factory=Login)
    client_address: str = ""

    def to_json(self) -> dict[str, Any]:
        out = self.login.to_json()
        if self.client_address:
            out["client_address"] = self.client_address
        return out

    @classmethod
    def from_json(cls, obj: Any) -> LoginContent:
        pairs = _pairs(obj, "content")
        address = ""
        for key, value in pairs:
            if _fold(key) == "client_address" and value is not None:
                address = _string_field(value, "client_address")
        return cls(Login.from_json(obj), address)


@dataclasses.dataclass(frozen=True)
class NewProxyContent(_Content):
    OP: ClassVar[str] = OP_NEW_PROXY
    user: UserInfo = dataclasses.field(default_factory=UserInfo)
    new_proxy: NewProxy = dataclasses.field(default_factory=NewProxy)

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user.to_json(), **self.new_proxy.to_json()}

    @classmethod
    def from_json(cls, obj: Any) -> NewProxyContent:
        return cls(*_user_and_message(obj, NewProxy))


@dataclasses.dataclass(frozen=True)
class CloseProxyContent(_Content):
    OP: ClassVar[str] = OP_CLOSE_PROXY
    user: UserInfo = dataclasses.field(default_factory=UserInfo)
    close_proxy: CloseProxy = dataclasses.field(default_factory=CloseProxy)

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user.to_json(), **self.close_proxy.to_json()}

    @classmethod
    def from_json(cls, obj: Any) -> CloseProxyContent:
        return cls(*_user_and_message(obj, CloseProxy))


@dataclasses.dataclass(frozen=True)
class PingContent(_Content):
    OP: ClassVar[str] = OP_PING
    user: UserInfo = dataclasses.field(default_factory=UserInfo)
    ping: Ping = dataclasses.field(default_factory=Ping)

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user.to_json(), **self.ping.to_json()}

    @classmethod
    def from_json(cls, obj: Any) -> PingContent:
        return cls(*_user_and_message(obj, Ping))


@dataclasses.dataclass(frozen=True)
class NewWorkConnContent(_Content):
    OP: ClassVar[str] = OP_NEW_WORK_CONN
    user: UserInfo = dataclasses.field(default_factory=UserInfo)
    new_work_conn: NewWorkConn = dataclasses.field(default_factory=NewWorkConn)

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user.to_json(), **self.new_work_conn.to_json()}

    @classmethod
    def from_json(cls, obj: Any) -> NewWorkConnContent:
        return cls(*_user_and_message(obj, NewWorkConn))


@dataclasses.dataclass(frozen=True)
class NewUserConnContent(_Content):
    """``NewUserConn``: ``remote_addr`` is the user's "ip:port"; no field is omitted."""

    OP: ClassVar[str] = OP_NEW_USER_CONN
    user: UserInfo = dataclasses.field(default_factory=UserInfo)
    proxy_name: str = ""
    proxy_type: str = ""
    remote_addr: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user.to_json(), "proxy_name": self.proxy_name, "proxy_type": self.proxy_type,
                "remote_addr": self.remote_addr}

    @classmethod
    def from_json(cls, obj: Any) -> NewUserConnContent:
        kwargs: dict[str, Any] = {}
        for key, value in _pairs(obj, "content"):
            k = _fold(key)
            if value is None:
                continue
            if k == "user":
                kwargs["user"] = UserInfo.from_json(value)
            elif k in ("proxy_name", "proxy_type", "remote_addr"):
                kwargs[k] = _string_field(value, k)
        return cls(**kwargs)


_CONTENT_TYPES: dict[str, type[_Content]] = {
    c.OP: c for c in (LoginContent, NewProxyContent, CloseProxyContent, PingContent, NewWorkConnContent,
                      NewUserConnContent)
}

# --------------------------------------------------------------------------
# Responses and errors

_MISSING: Any = object()


@dataclasses.dataclass(frozen=True)
class PluginResponse:
    """A plugin's answer (frp's ``Response``).

    ``content`` is a typed content, a JSON object (mapping or decoded pairs),
    ``None`` for JSON ``null``, or absent (the default) when the answer had no
    ``content`` key.  Note the zero value of ``unchange`` is False, as in Go.
    """

    reject: bool = False
    reject_reason: str = ""
    unchange: bool = False
    content: Any = _MISSING

    @classmethod
    def allow(cls) -> PluginResponse:
        return cls(unchange=True)

    @classmethod
    def rejected(cls, reason: str) -> PluginResponse:
        return cls(reject=True, reject_reason=reason)

    @classmethod
    def rewrite(cls, content: Any) -> PluginResponse:
        return cls(unchange=False, content=content)

    @classmethod
    def from_json(cls, body: bytes) -> PluginResponse:
        """Decode an HTTP plugin's body with Go's rules; :class:`ProtocolError` if it is not one."""
        kwargs: dict[str, Any] = {}
        for key, value in loads_object(body):
            k = _fold(key)
            if k in ("reject", "unchange"):
                if value is None:
                    continue
                if not isinstance(value, bool):
                    raise ProtocolError(f"plugin response field {k!r} must be a JSON bool")
                kwargs[k] = value
            elif k == "reject_reason":
                if value is not None:
                    kwargs[k] = _string_field(value, "reject_reason")
            elif k == "content":
                kwargs[k] = value
        return cls(**kwargs)


class PluginDenied(Exception):
    """An operation refused by a plugin (``rejected``) or because a plugin failed.

    ``str(e)`` is frp's error text: the plugin's ``reject_reason``, or
    ``send <op> request to plugin error``.  ``detail`` says what went wrong
    with a failed plugin (logged, never sent to the client, as in frp).
    """

    def __init__(self, op: str, plugin: str, text: str, rejected: bool, detail: str = "") -> None:
        super().__init__(text)
        self.op = op
        self.plugin = plugin
        self.text = text
        self.rejected = rejected
        self.detail = detail


def client_error_text(op: str, error: PluginDenied | str, detailed: bool, proxy_name: str = "") -> str:
    """The text frps puts in the reply to the client (frp's ``GenerateResponseErrorString``).

    ``detailed`` is ``detailedErrorsToClient``; the summaries are frps' own:
    LoginResp "register control error", NewProxyResp "new proxy [name] error",
    Pong "invalid ping", StartWorkConn "invalid NewWorkConn".  CloseProxy and
    NewUserConn send nothing to the client ("" here).
    """
    summaries = {
        OP_LOGIN: "register control error",
        OP_NEW_PROXY: f"new proxy [{proxy_name}] error",
        OP_PING: "invalid ping",
        OP_NEW_WORK_CONN: "invalid NewWorkConn",
    }
    if op not in summaries:
        return ""
    return str(error) if detailed else summaries[op]


# --------------------------------------------------------------------------
# Plugins


class ServerPlugin:
    """What the manager needs from a plugin: a name, its ops, and ``handle``.

    ``handle(op, content, reqid)`` gets the typed content and returns a
    Deferred firing with a :class:`PluginResponse`; any failure is a plugin
    error.  Subclass it, or use :class:`HTTPPlugin` / :class:`CallablePlugin`.
    """

    def __init__(self, name: str, ops: Iterable[str]) -> None:
        self.name = name
        self.ops = tuple(ops)

    def supports(self, op: str) -> bool:
        return op in self.ops

    def handle(self, op: str, content: _Content, reqid: str) -> Deferred[PluginResponse]:
        raise NotImplementedError


@implementer(IOpenSSLClientConnectionCreator)
class _NoVerifyCreator:
    """TLS without certificate checks (``tlsVerify: false``, Go's InsecureSkipVerify), still with SNI."""

    def __init__(self, hostname: bytes, context: SSL.Context) -> None:
        self._hostname = hostname
        self._context = context

    def clientConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        from OpenSSL import SSL

        conn = SSL.Connection(self._context, None)
        try:
            host = self._hostname.decode("ascii")
            if not host.replace(".", "").isdigit() and ":" not in host:
                conn.set_tlsext_host_name(self._hostname)
        except UnicodeDecodeError:
            pass
        conn.set_app_data(tlsProtocol)
        conn.set_connect_state()
        return conn


@implementer(IPolicyForHTTPS)
class NoVerifyPolicy:
    """An HTTPS policy that does not verify the server (frp's ``tlsVerify: false``)."""

    def __init__(self) -> None:
        from twisted.internet.ssl import CertificateOptions

        self._context = CertificateOptions(verify=False).getContext()

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        return _NoVerifyCreator(hostname, self._context)


class HTTPPlugin(ServerPlugin):
    """One ``httpPlugins[]`` entry, asked over HTTP(S) with ``twisted.web.client.Agent``."""

    log = logs.logger(__name__)

    def __init__(
        self,
        name: str,
        addr: str,
        path: str,
        ops: Iterable[str],
        *,
        reactor: Any,
        tls_verify: bool = False,
        agent: IAgent | None = None,
        tls_policy: IPolicyForHTTPS | None = None,
    ) -> None:
        super().__init__(name, ops)
        url = f"{addr}{path}"
        if not url.startswith(("https://", "http://")):
            url = "http://" + url
        self.url = url
        self.tls_verify = tls_verify
        if agent is None:
            from twisted.web.client import Agent, BrowserLikePolicyForHTTPS

            if tls_policy is None:
                tls_policy = BrowserLikePolicyForHTTPS() if tls_verify else NoVerifyPolicy()
            agent = Agent(reactor, contextFactory=tls_policy)
        self._agent = agent

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, reactor: Any, **kw: Any) -> HTTPPlugin:
        """One ``httpPlugins[]`` entry as written in frps' config (``name``, ``addr``, ``path``, ``ops``,
        ``tlsVerify``)."""
        return cls(str(options.get("name") or ""), str(options.get("addr") or ""), str(options.get("path") or ""),
                   [op for op in options.get("ops") or () if op], reactor=reactor,
                   tls_verify=bool(options.get("tlsVerify", False)), **kw)

    def request_url(self, op: str) -> str:
        return f"{self.url}?{urlencode([('op', op), ('version', API_VERSION)])}"

    def handle(self, op: str, content: _Content, reqid: str) -> Deferred[PluginResponse]:
        body = dumps_go({"version": API_VERSION, "op": op, "content": content.to_json()})
        headers = Headers({b"X-Frp-Reqid": [reqid.encode("ascii")], b"Content-Type": [b"application/json"]})
        d: Deferred[Any] = self._agent.request(b"POST", self.request_url(op).encode("utf-8"), headers,
                                               _BytesProducer(body))

        def got(response: IResponse) -> Deferred[PluginResponse]:
            if response.code != 200:
                # Go returns without reading the body; drop the connection rather than drain it
                response.deliverBody(_Discard())
                raise _PluginFailed(f"do http request error code: {response.code}")
            from twisted.web.client import readBody

            return readBody(response).addCallback(PluginResponse.from_json)

        return d.addCallback(got)


class _Discard:
    def makeConnection(self, transport: Any) -> None:
        transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        pass


@implementer(IBodyProducer)
class _BytesProducer:
    """A request body that is one small buffer, written at once (with a Content-Length)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self.body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class _PluginFailed(Exception):
    pass


PluginCallable = Callable[[str, Any], "PluginResponse | None | Deferred[PluginResponse | None]"]


class CallablePlugin(ServerPlugin):
    """An in-process plugin: ``fn(op, content)`` -> ``None`` | :class:`PluginResponse` (or a Deferred)."""

    def __init__(self, name: str, ops: Iterable[str], fn: PluginCallable) -> None:
        super().__init__(name, ops)
        self._fn = fn

    def handle(self, op: str, content: _Content, reqid: str) -> Deferred[PluginResponse]:
        d: Deferred[Any] = maybeDeferred(self._fn, op, content)

        def check(result: Any) -> PluginResponse:
            if result is None:
                return PluginResponse.allow()
            if not isinstance(result, PluginResponse):
                raise _PluginFailed(f"plugin returned {type(result).__name__}, not PluginResponse or None")
            return result

        return d.addCallback(check)


# --------------------------------------------------------------------------
# The manager

class PluginManager:
    """Asks the registered plugins about each operation, in order (frp's ``Manager``).

    Each operation method returns a Deferred that fires with the content to
    continue with (the input, or a plugin's rewrite), or fails with
    :class:`PluginDenied`.  :meth:`close_proxy` is a notification: it fires
    with ``None`` or with frp's combined error text, never fails.
    """

    log = logs.logger(__name__)

    def __init__(self, plugins: Sequence[ServerPlugin] = (), *, clock: IReactorTime,
                 timeout: float = DEFAULT_TIMEOUT, reqid: Callable[[], str] = new_reqid) -> None:
        self._plugins: list[ServerPlugin] = []
        #: the ops at least one plugin handles: ``wants`` is one set lookup on every connection
        self._ops: frozenset[str] = frozenset()
        self._clock = clock
        self.timeout = timeout
        #: plugin calls under way (``stop`` cancels them)
        self._asking: set[Deferred[Any]] = set()
        self._stopped = False
        self._reqid = reqid
        for p in plugins:
            self.register(p)

    def register(self, plugin: ServerPlugin) -> None:
        unknown = [op for op in plugin.ops if op not in OPS]
        if unknown:
            raise ValueError(f"plugin {plugin.name!r}: unknown op(s) {', '.join(unknown)}")
        self._plugins.append(plugin)
        self._ops = self._ops | frozenset(plugin.ops)

    def stop(self) -> None:
        """frps is stopping: cancel the plugin calls under way and ask no plugin from now on
        (every operation still waiting is refused as a plugin error)."""
        self._stopped = True
        for d in list(self._asking):
            d.cancel()

    def wants(self, op: str) -> bool:
        """Whether any plugin handles ``op`` (frps skips the whole step, and its Deferred, when none does)."""
        return op in self._ops

    def plugins_for(self, op: str) -> list[ServerPlugin]:
        return [p for p in self._plugins if p.supports(op)]

    def login(self, content: LoginContent) -> Deferred[LoginContent]:
        return self._run(OP_LOGIN, content)

    def new_proxy(self, content: NewProxyContent) -> Deferred[NewProxyContent]:
        return self._run(OP_NEW_PROXY, content)

    def ping(self, content: PingContent) -> Deferred[PingContent]:
        return self._run(OP_PING, content)

    def new_work_conn(self, content: NewWorkConnContent) -> Deferred[NewWorkConnContent]:
        return self._run(OP_NEW_WORK_CONN, content)

    def new_user_conn(self, content: NewUserConnContent) -> Deferred[NewUserConnContent]:
        return self._run(OP_NEW_USER_CONN, content)

    def close_proxy(self, content: CloseProxyContent) -> Deferred[str | None]:
        """Tell every CloseProxy plugin; answers are ignored, errors collected (frp's text)."""
        plugins = self.plugins_for(OP_CLOSE_PROXY)
        if not plugins or self._stopped:  # nobody to tell, or frps is stopping: no noise for each proxy
            return succeed(None)
        reqid = self._reqid()
        errors: list[str] = []

        async def run() -> str | None:
            for plugin in plugins:
                try:
                    await self._ask(plugin, OP_CLOSE_PROXY, content, reqid)
                except _AskError as e:
                    self.log.warn("reqid: {reqid} send CloseProxy request to plugin [{plugin}] error: {err}",
                                  reqid=reqid, plugin=plugin.name, err=e.detail)
                    errors.append(f"[{plugin.name}]: {e.detail}")
            if errors:
                return "send CloseProxy request to plugin errors: " + "; ".join(errors)
            return None

        return Deferred.fromCoroutine(run())

    def _run(self, op: str, content: Any) -> Deferred[Any]:
        plugins = self.plugins_for(op)
        if not plugins:
            return succeed(content)
        reqid = self._reqid()

        async def run() -> Any:
            current = content
            for plugin in plugins:
                try:
                    response, rewritten = await self._ask(plugin, op, current, reqid)
                except _AskError as e:
                    # frp logs NewUserConn failures at info, the others as warnings
                    level = self.log.info if op == OP_NEW_USER_CONN else self.log.warn
                    level("reqid: {reqid} send {op} request to plugin [{plugin}] error: {err}",
                          reqid=reqid, op=op, plugin=plugin.name, err=e.detail)
                    raise PluginDenied(op, plugin.name, f"send {op} request to plugin error", rejected=False,
                                       detail=e.detail) from None
                if response.reject:
                    raise PluginDenied(op, plugin.name, response.reject_reason, rejected=True)
                if rewritten is not None:
                    current = rewritten
            return current

        return Deferred.fromCoroutine(run())

    async def _ask(self, plugin: ServerPlugin, op: str, content: Any, reqid: str) -> tuple[PluginResponse, Any]:
        """One plugin's answer and, if it rewrites, the new content; :class:`_AskError` if it failed."""
        if self._stopped:
            raise _AskError("frps is stopping")
        d = maybeDeferred(plugin.handle, op, content, reqid)
        # Not Deferred.addTimeout: Agent reports a cancelled request as ResponseNeverReceived, not
        # CancelledError, so whether the clock ran out is remembered here.
        expired: list[bool] = []

        def expire() -> None:
            expired.append(True)
            d.cancel()

        timer = self._clock.callLater(self.timeout, expire)
        self._asking.add(d)
        try:
            response = await d
        except Exception as e:
            if expired:
                raise _AskError(f"no answer within {self.timeout:g}s") from None
            if self._stopped:
                raise _AskError("frps is stopping") from None
            raise _AskError(_error_text(e)) from None
        finally:
            self._asking.discard(d)
            if timer.active():
                timer.cancel()
        if not isinstance(response, PluginResponse):
            raise _AskError(f"plugin answered {type(response).__name__}, not PluginResponse")
        content_type = _CONTENT_TYPES[op]
        try:
            # Go decodes the answer's content even when it is not used: a bad one fails the call
            decoded = _decode_content(content_type, response.content)
        except (ProtocolError, ValueError) as e:
            raise _AskError(f"invalid content in plugin answer: {e}") from None
        if response.reject or response.unchange:
            return response, None
        if decoded is None:
            raise _AskError("plugin answered unchange=false with content null")
        return response, decoded


class _AskError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _error_text(e: BaseException) -> str:
    text = str(e)
    if not text and hasattr(e, "reasons"):  # twisted.web's ResponseNeverReceived & co
        text = "; ".join(str(getattr(r, "value", r)) for r in e.reasons)
    return text or type(e).__name__


def _decode_content(content_type: type[_Content], content: Any) -> Any:
    """What a rewrite continues with: a typed content as is, JSON decoded onto an empty content.

    An absent ``content`` is the empty content (Go decodes into a zero struct);
    ``null`` gives ``None`` (in Go a nil content that frps would crash on).
    """
    if isinstance(content, content_type):
        return content
    if isinstance(content, _Content):
        raise ProtocolError(f"a {type(content).__name__} where a {content_type.__name__} belongs")
    if content is _MISSING:
        return content_type()
    if content is None:
        return None
    return content_type.from_json(content)
