"""Tests for frptx.client.health: frp's health-check schedule and state machine, and real probes."""
from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from frptx.client.health import HealthChecker, http_check_url, http_probe, probe_for, tcp_probe


class FakeProbe:
    """Each call returns a new Deferred the test fires; remembers cancellations."""

    def __init__(self) -> None:
        self.calls: list[Deferred[object]] = []
        self.cancelled = 0

    def __call__(self) -> Deferred[object]:
        def cancel(d: Deferred[object]) -> None:
            self.cancelled += 1

        d: Deferred[object] = Deferred(cancel)
        self.calls.append(d)
        return d

    def passes(self) -> None:
        self.calls[-1].callback(None)

    def fails(self) -> None:
        self.calls[-1].errback(ConnectionRefusedError("nobody home"))


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []

    def success(self) -> None:
        self.events.append("success")

    def fail(self) -> None:
        self.events.append("fail")


def make(clock: Clock, **kw: Any) -> tuple[HealthChecker, FakeProbe, Recorder]:
    probe, rec = FakeProbe(), Recorder()
    return HealthChecker(probe, rec.success, rec.fail, clock=clock, **kw), probe, rec


class ScheduleTests(SynchronousTestCase):
    def test_defaults_and_non_positive_values(self) -> None:
        checker, _, _ = make(Clock(), interval=0, timeout=-1, max_failed=0)
        self.assertEqual((checker.interval, checker.timeout, checker.max_failed), (10, 3, 1))

    def test_first_check_immediately_then_interval_after_completion(self) -> None:
        clock = Clock()
        checker, probe, rec = make(clock, interval=10, timeout=3)
        checker.start()
        self.assertEqual(len(probe.calls), 1)  # at start, no waiting
        clock.advance(2)
        probe.passes()  # the check took 2 s
        clock.advance(9.9)
        self.assertEqual(len(probe.calls), 1)
        clock.advance(0.1)  # 10 s after the check *finished*
        self.assertEqual(len(probe.calls), 2)
        self.assertEqual(rec.events, ["success"])

    def test_timeout_fails_the_check_and_cancels_the_probe(self) -> None:
        clock = Clock()
        checker, probe, rec = make(clock, interval=10, timeout=3)
        checker.start()
        probe.passes()
        clock.advance(10)
        clock.advance(2.9)
        self.assertEqual(checker.failed_times, 0)
        clock.advance(0.1)
        self.assertEqual((probe.cancelled, checker.failed_times, rec.events), (1, 1, ["success", "fail"]))
        clock.advance(10)  # next check 3 + 10 s after the previous one started
        self.assertEqual(len(probe.calls), 3)

    def test_stop_cancels_everything(self) -> None:
        clock = Clock()
        checker, probe, rec = make(clock)
        checker.start()
        checker.stop()
        self.assertEqual(probe.cancelled, 1)
        self.assertEqual(clock.getDelayedCalls(), [])
        checker.start()
        probe.passes()
        checker.stop()
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(rec.events, ["success"])

    def test_probe_that_raises_is_a_failure(self) -> None:
        clock = Clock()
        rec = Recorder()

        def boom() -> Deferred[object]:
            raise OSError("no")

        checker = HealthChecker(boom, rec.success, rec.fail, clock=clock, interval=1)
        checker.start()
        clock.advance(1)
        self.assertEqual((checker.checks, checker.failed_times), (2, 2))


class StateTests(SynchronousTestCase):
    def run_checks(self, results: str, **kw: Any) -> tuple[list[str], HealthChecker]:
        clock = Clock()
        checker, probe, rec = make(clock, interval=1, **kw)
        checker.start()
        for r in results:
            probe.passes() if r == "+" else probe.fails()
            clock.advance(1)
        checker.stop()
        return rec.events, checker

    def test_initially_failed_no_fail_callback_before_first_pass(self) -> None:
        events, checker = self.run_checks("---")
        self.assertEqual(events, [])
        self.assertFalse(checker.ok)

    def test_max_failed(self) -> None:
        self.assertEqual(self.run_checks("+--", max_failed=3)[0], ["success"])
        self.assertEqual(self.run_checks("+---", max_failed=3)[0], ["success", "fail"])
        # each change of state is reported once
        self.assertEqual(self.run_checks("+++-----++", max_failed=1)[0], ["success", "fail", "success"])

    def test_failures_are_never_reset_like_frp(self) -> None:
        # failures before the first pass count; after a withdrawal one failure withdraws again
        self.assertEqual(self.run_checks("--+-", max_failed=3)[0], ["success", "fail"])
        self.assertEqual(self.run_checks("+---+-", max_failed=3)[0], ["success", "fail", "success", "fail"])

    def test_consecutive_option(self) -> None:
        events, _ = self.run_checks("+---+-", max_failed=3, reset_failures_on_success=True)
        self.assertEqual(events, ["success", "fail", "success"])

    def test_callback_error_does_not_stop_checks(self) -> None:
        clock = Clock()
        probe = FakeProbe()
        calls: list[int] = []

        def bad() -> None:
            calls.append(1)
            raise RuntimeError("callback bug")

        checker = HealthChecker(probe, bad, bad, clock=clock, interval=1)
        checker.start()
        probe.passes()
        clock.advance(1)
        self.assertEqual(len(probe.calls), 2)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        checker.stop()


class UrlTests(SynchronousTestCase):
    def test_url(self) -> None:
        self.assertEqual(http_check_url("127.0.0.1", 80, "/h"), "http://127.0.0.1:80/h")
        self.assertEqual(http_check_url("127.0.0.1", 80, "h?x=1"), "http://127.0.0.1:80/h?x=1")
        self.assertEqual(http_check_url("::1", 8080, "/"), "http://[::1]:8080/")

    def test_unknown_type(self) -> None:
        self.assertRaises(ValueError, probe_for, "udp", "127.0.0.1", 1, reactor=reactor)


class Status(Resource):
    """A health endpoint whose status the test sets; records request headers."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.code = 200
        self.seen: list[Any] = []
        self.hit: Deferred[None] | None = None

    def render_GET(self, request: Any) -> bytes:
        request.setResponseCode(self.code)
        self.seen.append((request.path, request.getHeader(b"host"), request.getHeader(b"x-check")))
        if self.code == 302:
            request.setHeader(b"location", b"/ok")
            self.code = 200
        return b"body"


class Hang(Resource):
    """Answers 200 with a body that never ends (or, with ``headers=False``, nothing at all)."""

    isLeaf = True

    def __init__(self, headers: bool) -> None:
        super().__init__()
        self.headers = headers
        self.closed: list[Deferred[None]] = []
        self.arrived: Deferred[None] = Deferred()

    def render_GET(self, request: Any) -> Any:
        self.arrived.callback(None)
        d = request.notifyFinish()
        self.closed.append(d.addErrback(lambda _: None))
        if self.headers:
            request.write(b"partial")
        return NOT_DONE_YET


class SpyAgent:
    """Fires ``got`` when the wrapped agent has a response (the headers arrived)."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.got: Deferred[None] = Deferred()

    def request(self, *args: Any) -> Deferred[Any]:
        def seen(response: Any) -> Any:
            if not self.got.called:
                self.got.callback(None)
            return response

        return self.agent.request(*args).addCallback(seen)


class RealSocketTests(TestCase):
    """Real probes against real local servers on 127.0.0.1, synchronised on the callbacks."""

    timeout = 20

    def watch(self) -> tuple[list[Deferred[None]], list[Deferred[None]], Any, Any]:
        ok: list[Deferred[None]] = [Deferred() for _ in range(3)]
        bad: list[Deferred[None]] = [Deferred() for _ in range(3)]

        def fire(ds: list[Deferred[None]]) -> None:
            for d in ds:
                if not d.called:
                    d.callback(None)
                    return

        return ok, bad, lambda: fire(ok), lambda: fire(bad)

    @defer.inlineCallbacks
    def test_tcp(self) -> Any:
        port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        number = port.getHost().port
        ok, bad, on_ok, on_bad = self.watch()
        checker = HealthChecker(
            tcp_probe(lambda: TCP4ClientEndpoint(reactor, "127.0.0.1", number)), on_ok, on_bad,
            clock=reactor, interval=0.01, timeout=5, name="tcp")
        self.addCleanup(checker.stop)
        checker.start()
        yield ok[0]
        yield port.stopListening()
        yield bad[0]  # connection refused now
        port = reactor.listenTCP(number, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        yield ok[1]
        self.assertFalse(bad[1].called)

    @defer.inlineCallbacks
    def test_http(self) -> Any:
        status = Status()
        port = reactor.listenTCP(0, Site(status), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        ok, bad, on_ok, on_bad = self.watch()
        probe = probe_for("http", "127.0.0.1", port.getHost().port, reactor=reactor, path="health",
                          headers=[("X-Check", "a"), ("x-check", "b"), ("Host", "svc.example")])
        checker = HealthChecker(probe, on_ok, on_bad, clock=reactor, interval=0.01, timeout=5, name="http")
        self.addCleanup(checker.stop)
        status.code = 302  # a redirect is followed to a 200
        checker.start()
        yield ok[0]
        self.assertEqual(status.seen[:2], [(b"/health", b"svc.example", b"b"), (b"/ok", b"svc.example", b"b")])
        status.code = 400
        yield bad[0]
        status.code = 204
        yield ok[1]
        status.code = 500
        yield bad[1]
        checker.stop()

    @defer.inlineCallbacks
    def test_http_timeout_closes_the_request(self) -> Any:
        for headers in (False, True):  # no answer at all / a body that never ends
            hang = Hang(headers)
            port = reactor.listenTCP(0, Site(hang), interface="127.0.0.1")
            self.addCleanup(port.stopListening)
            spy = SpyAgent(Agent(reactor))
            clock = Clock()
            rec = Recorder()
            probe = http_probe(spy, http_check_url("127.0.0.1", port.getHost().port, "/"))
            checker = HealthChecker(probe, rec.success, rec.fail, clock=clock, timeout=3)
            checker.start()
            yield spy.got if headers else hang.arrived
            # spy.got fires inside the probe's callback chain: let that chain finish first
            yield deferLater(reactor, 0, lambda: None)
            self.assertEqual((checker.failed_times, rec.events), (0, []))
            clock.advance(3)
            # no answer: a failure; a 200 whose body never ends: the status decides, as in Go
            self.assertEqual(rec.events, ["success"] if headers else [])
            self.assertEqual(checker.failed_times, 0 if headers else 1)
            self.assertEqual(checker.checks, 1)
            yield hang.closed[0]  # either way the checker closed the connection at the deadline
            checker.stop()
