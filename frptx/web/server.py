# -*- test-case-name: frptx.test.test_web_server -*-
"""
The C{webServer} of frps (dashboard, REST API, Prometheus) and of frpc (admin
API and page), as C{twisted.web} sites.

Layout, as in frp: C{/healthz} open; everything else behind basic auth when
C{webServer.user}/C{password} are set; C{/} redirects to C{/static/}, where the
dashboard's files are served (gzip when the browser accepts it) from
C{webServer.assetsDir} if set, else from the pages shipped in
C{frptx/web/assets/}.

L{WebServerService} is the child service frps and frpc add when C{webServer.port}
is set; L{listen} alone returns the listening port.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.interfaces import IListeningPort, IReactorTime, IStreamServerEndpoint
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure
from twisted.web import resource, server, static
from twisted.web.util import Redirect

from frptx import logs
from frptx.transport.address import bound_port
from frptx.web._http import BasicAuthResource
from frptx.web.frpc_api import FrpcAPI
from frptx.web.frps_api import FrpsAPI
from frptx.web.state import FrpcState, FrpsState

ASSETS = Path(__file__).resolve().parent / "assets"
_log = logs.logger(__name__)


def default_assets_dir(kind: str) -> str:
    """The page shipped with frptx for C{kind} ("frps" or "frpc")."""
    return str(ASSETS / kind)


class _GzipFile(static.File):
    """
    Static files gzipped for browsers that accept it, like frp's C{MakeHTTPGzipHandler}.
    (C{EncodingResourceWrapper} alone covers only the resource it wraps, not the files
    under a directory, so every child is wrapped as it is looked up.)
    """

    def getChild(self, path: bytes, request: server.Request) -> resource.Resource:
        child = super().getChild(path, request)
        if isinstance(child, static.File):
            return resource.EncodingResourceWrapper(child, [server.GzipEncoderFactory()])
        return child  # type: ignore[no-any-return]


class _MovedPermanently(Redirect):
    """C{/} → C{/static/} with Go's 301 (twisted's Redirect answers 302)."""

    def render(self, request: server.Request) -> bytes:
        request.setResponseCode(301)
        request.setHeader(b"location", self.url)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return b'<a href="' + self.url + b'">Moved Permanently</a>.\n\n'


class _Root(resource.Resource):
    """Sends C{/static/...}, C{/metrics} and C{/} to their resources, everything else to the API router."""

    def __init__(self, api: resource.Resource, assets_dir: str,
                 metrics: resource.Resource | None = None) -> None:
        super().__init__()
        self._api = api
        self._static = resource.EncodingResourceWrapper(_GzipFile(assets_dir), [server.GzipEncoderFactory()])
        self._favicon = static.File(str(Path(assets_dir) / "favicon.ico"))
        self._metrics = metrics
        self._redirect = _MovedPermanently(b"/static/")

    def getChildWithDefault(self, path: bytes, request: server.Request) -> resource.Resource:
        last = not request.postpath
        if path == b"static":
            return self._static
        if path == b"" and last:
            return self._redirect
        if path == b"metrics" and last and self._metrics is not None:
            return self._metrics
        if path == b"favicon.ico" and last and Path(self._favicon.path).is_file():
            return self._favicon
        return self._api


def _guard(root: resource.Resource, user: str, password: str, clock: IReactorTime,
           auth_fail_delay: float) -> resource.Resource:
    # installed even without credentials, so that a reload (frps SIGHUP) can set them
    return BasicAuthResource(root, user, password, clock, auth_fail_delay)


def frps_site(state: FrpsState, *, user: str = "", password: str = "", assets_dir: str = "",
              enable_prometheus: bool = False, clock: IReactorTime | None = None,
              auth_fail_delay: float = 0.2, process_metrics: bool = True) -> server.Site:
    """
    frps' dashboard site over C{state}.  C{enable_prometheus} adds C{/metrics}
    (frp's C{enablePrometheus}); it imports C{prometheus_client} only then.
    """
    if clock is None:
        from twisted.internet import reactor as clock
    assert clock is not None
    metrics = None
    if enable_prometheus:
        from frptx.web.metrics import MetricsResource, make_registry

        metrics = MetricsResource(make_registry(state, process_metrics=process_metrics))
    root = _Root(FrpsAPI(state, clock.seconds).resource(), assets_dir or default_assets_dir("frps"), metrics)
    site = server.Site(_guard(root, user, password, clock, auth_fail_delay))
    site.displayTracebacks = False
    return site


def frpc_site(state: FrpcState, *, user: str = "", password: str = "", assets_dir: str = "",
              clock: IReactorTime | None = None, auth_fail_delay: float = 0.2) -> server.Site:
    """frpc's admin API site over C{state}."""
    if clock is None:
        from twisted.internet import reactor as clock
    assert clock is not None
    root = _Root(FrpcAPI(state, clock).resource(), assets_dir or default_assets_dir("frpc"))
    site = server.Site(_guard(root, user, password, clock, auth_fail_delay))
    site.displayTracebacks = False
    return site


def site_from_config(kind: str, state: Any, web: Any, *, enable_prometheus: bool = False,
                     clock: IReactorTime | None = None) -> server.Site:
    """
    The site for a C{WebServerConfig} (C{frptx.config.model}): C{user}, C{password},
    C{assets_dir}.  C{kind} is "frps" or "frpc".
    """
    if kind == "frps":
        return frps_site(state, user=web.user, password=web.password, assets_dir=web.assets_dir,
                         enable_prometheus=enable_prometheus, clock=clock)
    return frpc_site(state, user=web.user, password=web.password, assets_dir=web.assets_dir, clock=clock)


def listen(site: server.Site, reactor: Any, addr: str, port: int,
           cert_file: str = "", key_file: str = "") -> Deferred[IListeningPort]:
    """
    Listen on C{addr:port} (C{webServer.addr}/C{port}), over TLS when
    C{webServer.tls.certFile}/C{keyFile} are given, as frp does.
    """
    interface = addr.strip("[]") or "0.0.0.0"
    endpoint: IStreamServerEndpoint
    if ":" in interface:
        endpoint = TCP6ServerEndpoint(reactor, port, interface=interface)
    else:
        endpoint = TCP4ServerEndpoint(reactor, port, interface=interface)
    factory: Any = site
    if cert_file and key_file:
        # the same context frps' bind port uses: built (and checked) now, not on the first connection
        from twisted.protocols.tls import TLSMemoryBIOFactory

        from frptx.transport.tls_context import server_context_factory

        options = server_context_factory(cert_file=cert_file, key_file=key_file)
        # A Site offers ALPN (h2, http/1.1); Twisted before 24.x applies that to the shared
        # OpenSSL context on every connection, which pyOpenSSL >= 24 refuses once the context
        # is in use.  The dashboard speaks HTTP/1.1 only, so it offers no ALPN.  TLS is the
        # factory wrapped in TLSMemoryBIOFactory, which is all the reactor's listenSSL
        # (SSL4ServerEndpoint) does -- and a reactor from frptx.transport.internals_reactor
        # has no listenSSL.
        factory = TLSMemoryBIOFactory(options, False, WrappingFactory(site))
    listening: Deferred[IListeningPort] = endpoint.listen(factory)
    return listening


class WebServerService(Service):
    """The dashboard or admin API as a child service: listens on start, closes on stop.

    A port that cannot be opened is fatal, as for frps' bind port: ``on_fatal`` gets
    one line saying which port and why (or the error is raised without it).
    """

    def __init__(self, site: server.Site, reactor: Any, addr: str, port: int, cert_file: str = "",
                 key_file: str = "", what: str = "webServer", on_fatal: Callable[[str], None] | None = None) -> None:
        self.site = site
        self.reactor = reactor
        self.addr, self.port_number = addr, port
        self.cert_file, self.key_file = cert_file, key_file
        self.what = what
        self.on_fatal = on_fatal
        self.port: IListeningPort | None = None
        self.listening: Deferred[IListeningPort] | None = None

    def startService(self) -> None:
        super().startService()
        self.listening = listen(self.site, self.reactor, self.addr, self.port_number, self.cert_file,
                                self.key_file)
        self.listening.addCallbacks(self._listening, self._failed)

    def _listening(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        scheme = "https" if self.cert_file else "http"
        _log.info("{what} listening on {scheme}://{addr}:{port}", what=self.what, scheme=scheme,
                  addr=self.addr, port=bound_port(port))
        return port

    def _failed(self, failure: Failure) -> None:
        message = f"{self.what} cannot listen on {self.addr}:{self.port_number}: {failure.getErrorMessage()}"
        _log.critical("{message}", message=message)
        if self.on_fatal is None:
            failure.raiseException()
        self.on_fatal(message)

    def stopService(self) -> Deferred[Any] | None:
        super().stopService()
        port, self.port = self.port, None
        if port is None:
            return None
        return maybeDeferred(lambda: port.stopListening())
