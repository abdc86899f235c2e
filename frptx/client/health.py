# -*- test-case-name: frptx.test.test_health -*-
"""frpc's proxy health checks (``proxies[].healthCheck``), with frp 0.65.0's semantics.

A proxy with a health check is not registered with frps until its local
service has passed a check, and is withdrawn (``CloseProxy``) when checks
fail.  :class:`HealthChecker` decides *when* to say so; the proxy code
decides what to do (``on_success`` registers, ``on_fail`` withdraws).  The
facts, read from frp's ``client/health/health.go`` and ``proxy_wrapper.go``:

* Defaults: ``intervalSeconds`` 10, ``timeoutSeconds`` 3, ``maxFailed`` 1;
  a value ``<= 0`` means the default.  frpc only monitors proxies with a
  ``localPort``; the target is ``localIP:localPort``.
* The state starts *failed* (so the proxy is not registered), and the first
  check runs immediately at start.
* After each check finishes (success, failure or timeout), the next one
  starts ``interval`` seconds later: the period is check time + interval.
* A passing check while failed switches to OK and calls ``on_success``
  (also for the very first pass).  A failing check adds one to the failure
  count; while OK, once the count reaches ``maxFailed`` it switches to failed
  and calls ``on_fail``.  Each callback fires once per change of state.
* **frp never resets the failure count.**  Failures before the first pass
  count too, and after the first withdrawal every later failure while OK
  withdraws the proxy at once.  frptx reproduces that by default; pass
  ``reset_failures_on_success=True`` for the "consecutive failures" reading
  of the documentation.
* ``tcp``: connect to the target and close; any connect error or the
  timeout fails.  ``http``: ``GET http://localIP:localPort/path`` (a ``/``
  is added before a path without one) with the configured headers, where a
  ``Host`` header sets the request's Host; redirects are followed (at most
  10, like Go's client); the check passes only for a final status 200-299.
  The timeout covers connecting and the response headers; a body still
  arriving at the deadline is cut off and the status decides (Go ignores the
  body's read error).

Nothing here touches the network itself: the checker takes a *probe* (a
function returning a Deferred that fires on success and fails otherwise) and
a clock, so tests drive it with ``task.Clock`` and fake probes; the probes
for real use (:func:`tcp_probe`, :func:`http_probe`, :func:`probe_for`) take an
endpoint factory or an ``IAgent``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, TimeoutError as DeferredTimeoutError
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from frptx import logs

if TYPE_CHECKING:  # twisted.web is imported by the http probe itself: most frpc have no http health check
    from twisted.web.iweb import IAgent, IResponse

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_TIMEOUT",
    "DEFAULT_MAX_FAILED",
    "HealthCheckFailed",
    "HealthChecker",
    "tcp_probe",
    "http_probe",
    "http_check_url",
    "probe_for",
]

DEFAULT_INTERVAL = 10.0
DEFAULT_TIMEOUT = 3.0
DEFAULT_MAX_FAILED = 1
#: Go's http.Client stops after 10 redirects.
MAX_REDIRECTS = 10

Probe = Callable[[], "Deferred[object]"]


class HealthCheckFailed(Exception):
    """A check did not pass; the message says why (logged, as frpc does)."""


class HealthChecker:
    """Runs one proxy's checks on schedule and reports changes of state.

    ``on_success()`` is called when a check passes while the state is failed
    (the initial state), ``on_fail()`` when the failure count reaches
    ``max_failed`` while the state is OK.  See the module docstring for frp's
    exact rules.
    """

    log = logs.logger(__name__)

    def __init__(
        self,
        probe: Probe,
        on_success: Callable[[], object],
        on_fail: Callable[[], object],
        *,
        clock: IReactorTime,
        interval: float = DEFAULT_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        max_failed: int = DEFAULT_MAX_FAILED,
        reset_failures_on_success: bool = False,
        name: str = "",
    ) -> None:
        self._probe = probe
        self._on_success = on_success
        self._on_fail = on_fail
        self._clock = clock
        # frp: a value <= 0 means the default
        self.interval = interval if interval > 0 else DEFAULT_INTERVAL
        self.timeout = timeout if timeout > 0 else DEFAULT_TIMEOUT
        self.max_failed = max_failed if max_failed > 0 else DEFAULT_MAX_FAILED
        self._reset_on_success = reset_failures_on_success
        self.name = name
        #: frp's ``statusOK``: starts False, so the proxy waits for a first pass.
        self.ok = False
        self.failed_times = 0
        self.checks = 0
        self._running = False
        self._pending: Deferred[object] | None = None
        self._next: IDelayedCall | None = None

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        """Start checking; the first check runs now."""
        if self._running:
            return
        self._running = True
        self._check()

    def stop(self) -> None:
        """Stop checking: cancel the check in flight and the next one. No callback fires afterwards."""
        self._running = False
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()

    def _check(self) -> None:
        self._next = None
        if not self._running:
            return
        self.checks += 1
        try:
            d: Deferred[object] = self._probe()
        except Exception as e:  # a probe that raises is a failed check, not a dead checker
            d = Deferred()
            d.errback(Failure(e))
        d.addTimeout(self.timeout, self._clock)
        self._pending = d
        d.addCallbacks(self._passed, self._failed)
        d.addErrback(lambda f: self.log.failure("health check callback of {name} failed", f, name=self.name))
        d.addBoth(self._schedule, d)

    def _schedule(self, _: object, d: Deferred[object]) -> None:
        if self._pending is d:
            self._pending = None
        if self._running:
            self._next = self._clock.callLater(self.interval, self._check)

    def _passed(self, _: object) -> None:
        if not self._running:
            return
        self.log.debug("health check of {name} passed", name=self.name)
        if self._reset_on_success:
            self.failed_times = 0
        if not self.ok:
            self.ok = True
            self.log.info("[{name}] health check status change to success", name=self.name)
            self._on_success()

    def _failed(self, failure: Failure) -> None:
        if not self._running:
            return  # cancelled by stop()
        reason = _describe(failure, self.timeout)
        self.log.warn("[{name}] do one health check failed: {reason}", name=self.name, reason=reason)
        self.failed_times += 1
        if self.ok and self.failed_times >= self.max_failed:
            self.ok = False
            self.log.warn("[{name}] health check status change to failed", name=self.name)
            self._on_fail()


def _describe(failure: Failure, timeout: float) -> str:
    if failure.check(DeferredTimeoutError):
        return f"no answer within {timeout:g}s"
    return str(failure.getErrorMessage())


# --------------------------------------------------------------------------
# Probes


class _Closer(Protocol):
    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.loseConnection()


def tcp_probe(endpoint_factory: Callable[[], IStreamClientEndpoint]) -> Probe:
    """Pass when a TCP connection to the target can be made; the connection is closed at once."""

    def probe() -> Deferred[object]:
        d: Deferred[Any] = endpoint_factory().connect(Factory.forProtocol(_Closer))
        return d.addCallback(lambda _: None)

    return probe


class _Discard(Protocol):
    """Reads a response body to its end and drops it."""

    def __init__(self, done: Deferred[None]) -> None:
        self.done = done

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.done.called:
            self.done.callback(None)


def _discard_body(response: IResponse) -> Deferred[None]:
    protocol: _Discard

    def cancel(d: Deferred[None]) -> None:
        # The deadline came while the body was still coming: like Go (which ignores the body's
        # read error), stop reading it and let the status decide.
        transport = protocol.transport
        if transport is not None:
            transport.stopProducing()  # type: ignore[attr-defined]
        d.callback(None)

    done: Deferred[None] = Deferred(cancel)
    protocol = _Discard(done)
    response.deliverBody(protocol)
    return done


def http_check_url(host: str, port: int, path: str) -> str:
    """frp's URL: ``http://`` + ``host:port`` + path (a ``/`` added if the path lacks one)."""
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"http://{hostport}{path if path.startswith('/') else '/' + path}"


def http_probe(agent: IAgent, url: str, headers: Iterable[tuple[str, str]] = ()) -> Probe:
    """Pass on a final 2xx status of ``GET url``; ``agent`` should follow redirects.

    ``headers`` are set in order, a later one replacing an earlier one of the
    same name (Go's ``Header.Set``); a ``Host`` header becomes the Host.
    """
    from twisted.web.http_headers import Headers

    header_list = list(headers)
    url_bytes = url.encode("utf-8")

    def probe() -> Deferred[object]:
        h = Headers()
        for name, value in header_list:
            h.setRawHeaders(name.encode("utf-8"), [value.encode("utf-8")])
        d: Deferred[Any] = agent.request(b"GET", url_bytes, h)

        def got(response: IResponse) -> Deferred[object]:
            def judge(_: object) -> None:
                if response.code // 100 != 2:
                    raise HealthCheckFailed(
                        f"do http health check, StatusCode is [{response.code}] not 2xx")

            # the body is read and discarded (Go does), but its errors do not matter
            return _discard_body(response).addCallback(judge)

        return d.addCallback(got)

    return probe


def probe_for(
    check_type: str,
    host: str,
    port: int,
    *,
    reactor: Any,
    path: str = "",
    headers: Iterable[tuple[str, str]] = (),
) -> Probe:
    """The real probe for ``healthCheck.type`` against ``host:port`` (``localIP:localPort``)."""
    if check_type == "tcp":
        from twisted.internet.endpoints import HostnameEndpoint

        return tcp_probe(lambda: HostnameEndpoint(reactor, host, port))
    if check_type == "http":
        from twisted.web.client import Agent, RedirectAgent

        agent = RedirectAgent(Agent(reactor), redirectLimit=MAX_REDIRECTS)
        return http_probe(agent, http_check_url(host, port, path), headers)
    raise ValueError(f"error health check type {check_type!r}")
