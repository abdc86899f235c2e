"""Tests for frptx.server.plugins against a real twisted.web plugin service on 127.0.0.1 and in-process callables."""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from OpenSSL import crypto
from twisted.internet import defer, reactor, ssl
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from frptx.server.plugins import (
    CallablePlugin,
    CloseProxyContent,
    HTTPPlugin,
    LoginContent,
    NewProxyContent,
    NewUserConnContent,
    NewWorkConnContent,
    PingContent,
    PluginDenied,
    PluginManager,
    PluginResponse,
    UserInfo,
    client_error_text,
)
from frptx.transport.certs import generate_self_signed
from frptx.wire.messages import CloseProxy, Login, NewProxy, NewWorkConn, Ping

ALICE = UserInfo("alice", {"team": "a"}, "run1")
LOGIN = LoginContent(Login(version="0.65.0", user="alice", privilege_key="k", timestamp=7, run_id="run1",
                           metas={"team": "a"}, pool_count=1), "1.2.3.4:5678")
NEW_PROXY = NewProxyContent(UserInfo("bob", None, "run2"), NewProxy(proxy_name="web", proxy_type="tcp",
                                                                    remote_port=6000))


class PluginService(Resource):
    """A plugin endpoint: records each request and answers with ``answer(op, content)``.

    ``answer`` returns a JSON-able dict, ``(status, bytes)``, or None to hang
    (the request then stays open until the client gives up).
    """

    isLeaf = True

    def __init__(self, answer: Callable[[str, dict[str, Any]], Any]) -> None:
        super().__init__()
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.arrived: list[Deferred[None]] = []
        self.hung_closed: list[Deferred[None]] = []

    def wait_request(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.arrived.append(d)
        return d

    def render_POST(self, request: Any) -> Any:
        body = request.content.read()
        self.requests.append({
            "uri": request.uri, "body": body,
            "reqid": request.getHeader(b"x-frp-reqid"), "ctype": request.getHeader(b"content-type"),
        })
        parsed = json.loads(body)
        result = self.answer(parsed["op"], parsed["content"])
        arrived, self.arrived = self.arrived, []
        for d in arrived:
            d.callback(None)
        if result is None:
            closed = request.notifyFinish()
            closed.addErrback(lambda _: None)
            self.hung_closed.append(closed)
            return NOT_DONE_YET
        if isinstance(result, tuple):
            request.setResponseCode(result[0])
            return result[1]
        return json.dumps(result).encode()


class NoALPN(Factory):
    """The Site without its ALPN offer: Twisted 23.10 (our floor) cannot set ALPN with current pyOpenSSL."""

    def __init__(self, site: Site) -> None:
        self.site = site

    def buildProtocol(self, addr: Any) -> Any:
        return self.site.buildProtocol(addr)


class ServiceTestCase(TestCase):
    timeout = 20

    def serve(self, answer: Callable[[str, dict[str, Any]], Any], tls: bool = False,
              pem: tuple[bytes, bytes] | None = None) -> tuple[PluginService, str]:
        service = PluginService(answer)
        site = Site(service)
        if tls:
            cert_pem, key_pem = pem or generate_self_signed("localhost")
            options = ssl.CertificateOptions(
                privateKey=crypto.load_privatekey(crypto.FILETYPE_PEM, key_pem),
                certificate=crypto.load_certificate(crypto.FILETYPE_PEM, cert_pem))
            port = reactor.listenSSL(0, NoALPN(site), options, interface="127.0.0.1")
        else:
            port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return service, f"{'https://' if tls else ''}127.0.0.1:{port.getHost().port}"

    def plugin(self, name: str, addr: str, ops: list[str], **kw: Any) -> HTTPPlugin:
        return HTTPPlugin(name, addr, "/handler", ops, reactor=reactor, **kw)


class HTTPPluginTests(ServiceTestCase):
    @defer.inlineCallbacks
    def test_request_shape(self) -> Any:
        service, addr = self.serve(lambda op, c: {"reject": False, "unchange": True})
        manager = PluginManager([self.plugin("p", addr, ["Login", "NewProxy", "NewUserConn"])], clock=reactor)
        result = yield manager.login(LOGIN)
        self.assertIs(result, LOGIN)
        yield manager.new_proxy(NEW_PROXY)
        yield manager.new_user_conn(NewUserConnContent(ALICE, "web", "tcp", "9.9.9.9:1"))
        login, new_proxy, user_conn = service.requests
        self.assertEqual(login["uri"], b"/handler?op=Login&version=0.1.0")
        self.assertEqual(login["ctype"], b"application/json")
        self.assertRegex(login["reqid"].decode(), re.compile(r"^[0-9a-f]{16}$"))
        self.assertEqual(
            login["body"],
            b'{"version":"0.1.0","op":"Login","content":{"version":"0.65.0","user":"alice","privilege_key":"k",'
            b'"timestamp":7,"run_id":"run1","metas":{"team":"a"},"client_spec":{},"pool_count":1,'
            b'"client_address":"1.2.3.4:5678"}}')
        self.assertEqual(
            new_proxy["body"],
            b'{"version":"0.1.0","op":"NewProxy","content":{"user":{"user":"bob","metas":null,"run_id":"run2"},'
            b'"proxy_name":"web","proxy_type":"tcp","remote_port":6000}}')
        self.assertEqual(
            json.loads(user_conn["body"])["content"],
            {"user": {"user": "alice", "metas": {"team": "a"}, "run_id": "run1"}, "proxy_name": "web",
             "proxy_type": "tcp", "remote_addr": "9.9.9.9:1"})
        self.assertNotEqual(login["reqid"], new_proxy["reqid"])

    @defer.inlineCallbacks
    def test_ops_filter_and_no_plugins(self) -> Any:
        service, addr = self.serve(lambda op, c: {"reject": True, "reject_reason": "no"})
        manager = PluginManager([self.plugin("p", addr, ["NewProxy"])], clock=reactor)
        result = yield manager.login(LOGIN)
        self.assertIs(result, LOGIN)
        self.assertEqual(service.requests, [])

    @defer.inlineCallbacks
    def test_reject(self) -> Any:
        _, addr = self.serve(lambda op, c: {"reject": True, "reject_reason": f"user {c['user']} banned"})
        manager = PluginManager([self.plugin("p", addr, ["Login", "NewProxy"])], clock=reactor)
        e = yield self.assertFailure(manager.login(LOGIN), PluginDenied)
        self.assertEqual((str(e), e.rejected, e.plugin, e.op), ("user alice banned", True, "p", "Login"))
        self.assertEqual(client_error_text("Login", e, detailed=True), "user alice banned")
        self.assertEqual(client_error_text("Login", e, detailed=False), "register control error")
        e = yield self.assertFailure(manager.new_proxy(NEW_PROXY), PluginDenied)
        self.assertEqual(client_error_text("NewProxy", e, False, "web"), "new proxy [web] error")

    @defer.inlineCallbacks
    def test_rewrite_chain(self) -> Any:
        first, addr1 = self.serve(lambda op, c: {
            "reject": False, "unchange": False,
            "content": {**c, "remote_port": 7000, "metas": {"by": "first"}, "USER": {"user": "carol"}}})
        second, addr2 = self.serve(lambda op, c: {"reject": False, "unchange": True,
                                                  "content": {"remote_port": 1}})
        manager = PluginManager([self.plugin("one", addr1, ["NewProxy"]), self.plugin("two", addr2, ["NewProxy"])],
                                clock=reactor)
        result = yield manager.new_proxy(NEW_PROXY)
        self.assertEqual(result.new_proxy, NewProxy(proxy_name="web", proxy_type="tcp", remote_port=7000,
                                                    metas={"by": "first"}))
        self.assertEqual(result.user, UserInfo("carol"))
        # the second plugin saw the first one's content
        seen = json.loads(second.requests[0]["body"])["content"]
        self.assertEqual((seen["remote_port"], seen["metas"], seen["user"]["user"]), (7000, {"by": "first"}, "carol"))

    @defer.inlineCallbacks
    def test_without_unchange_the_content_is_emptied_like_frp(self) -> Any:
        _, addr = self.serve(lambda op, c: {"reject": False})
        manager = PluginManager([self.plugin("p", addr, ["Login"])], clock=reactor)
        result = yield manager.login(LOGIN)
        self.assertEqual(result, LoginContent())

    @defer.inlineCallbacks
    def test_failures_are_plugin_errors(self) -> Any:
        answers: list[Any] = [(500, b"oops"), (200, b"not json"), (200, b"[]"),
                              (200, b'{"reject": "yes"}'), (200, b'{"unchange": true, "content": {"pool_count": "1"}}'),
                              (200, b'{"unchange": false, "content": null}')]
        _, addr = self.serve(lambda op, c: answers.pop(0))
        manager = PluginManager([self.plugin("p", addr, ["Login"])], clock=reactor)
        details = []
        while answers:
            e = yield self.assertFailure(manager.login(LOGIN), PluginDenied)
            self.assertEqual((str(e), e.rejected), ("send Login request to plugin error", False))
            details.append(e.detail)
        self.assertEqual(details[0], "do http request error code: 500")
        self.assertIn("not valid JSON", details[1])
        self.assertIn("pool_count", details[4])
        self.assertIn("null", details[5])
        self.flushLoggedErrors()

    @defer.inlineCallbacks
    def test_plugin_down(self) -> Any:
        port = reactor.listenTCP(0, Site(Resource()), interface="127.0.0.1")
        number = port.getHost().port
        yield port.stopListening()
        manager = PluginManager([self.plugin("down", f"http://127.0.0.1:{number}", ["Ping"])], clock=reactor)
        e = yield self.assertFailure(manager.ping(PingContent(ALICE, Ping())), PluginDenied)
        self.assertEqual(str(e), "send Ping request to plugin error")
        self.assertIn("refused", e.detail.lower())
        self.assertEqual(client_error_text("Ping", e, True), "send Ping request to plugin error")
        self.assertEqual(client_error_text("Ping", e, False), "invalid ping")

    @defer.inlineCallbacks
    def test_hanging_plugin_times_out_and_blocks_nobody_else(self) -> Any:
        service, addr = self.serve(lambda op, c: None if c["user"] == "slow" else {"unchange": True})
        clock = Clock()
        manager = PluginManager([self.plugin("slow", addr, ["Login"])], clock=clock, timeout=5)
        arrived = service.wait_request()
        slow = manager.login(LoginContent(Login(user="slow")))
        yield arrived
        # another client's login goes through while the first one waits
        fast = yield manager.login(LoginContent(Login(user="fast")))
        self.assertEqual(fast.login.user, "fast")
        self.assertFalse(slow.called)
        clock.advance(4.9)
        self.assertFalse(slow.called)
        clock.advance(0.1)
        e = yield self.assertFailure(slow, PluginDenied)
        self.assertEqual((str(e), e.detail), ("send Login request to plugin error", "no answer within 5s"))
        yield service.hung_closed[0]  # the request was aborted, not left open

    @defer.inlineCallbacks
    def test_https_tls_verify(self) -> Any:
        service, addr = self.serve(lambda op, c: {"unchange": True}, tls=True)
        insecure = PluginManager([HTTPPlugin("p", addr, "/handler", ["Login"], reactor=reactor, tls_verify=False)],
                                 clock=reactor)
        result = yield insecure.login(LOGIN)
        self.assertIs(result, LOGIN)
        self.assertEqual(len(service.requests), 1)
        strict = PluginManager([HTTPPlugin("p", addr, "/handler", ["Login"], reactor=reactor, tls_verify=True)],
                               clock=reactor)
        e = yield self.assertFailure(strict.login(LOGIN), PluginDenied)
        self.assertEqual(str(e), "send Login request to plugin error")
        self.assertEqual(len(service.requests), 1)  # a self-signed certificate is refused
        self.flushLoggedErrors()  # Twisted logs the failed certificate check

    @defer.inlineCallbacks
    def test_https_tls_verify_with_trusted_certificate(self) -> Any:
        cert_pem, key_pem = ip_certificate("127.0.0.1")
        service, addr = self.serve(lambda op, c: {"unchange": True}, tls=True, pem=(cert_pem, key_pem))
        policy = BrowserLikePolicyForHTTPS(trustRoot=ssl.Certificate.loadPEM(cert_pem))
        manager = PluginManager([HTTPPlugin("p", addr, "/handler", ["Login"], reactor=reactor, tls_verify=True,
                                            tls_policy=policy)], clock=reactor)
        result = yield manager.login(LOGIN)
        self.assertIs(result, LOGIN)
        self.assertEqual(len(service.requests), 1)

    @defer.inlineCallbacks
    def test_close_proxy_collects_errors(self) -> Any:
        _, good = self.serve(lambda op, c: {"reject": True, "reject_reason": "ignored"})
        _, bad = self.serve(lambda op, c: (404, b""))
        manager = PluginManager([self.plugin("a", good, ["CloseProxy"]), self.plugin("b", bad, ["CloseProxy"]),
                                 self.plugin("c", bad, ["CloseProxy"])], clock=reactor)
        text = yield manager.close_proxy(CloseProxyContent(ALICE, CloseProxy(proxy_name="web")))
        self.assertEqual(text, "send CloseProxy request to plugin errors: [b]: do http request error code: 404; "
                               "[c]: do http request error code: 404")


def ip_certificate(ip: str) -> tuple[bytes, bytes]:
    """A self-signed CA certificate valid for ``ip`` (a subjectAltName), to be trusted explicitly."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plugin test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


class URLTests(SynchronousTestCase):
    def test_url(self) -> None:
        self.assertEqual(HTTPPlugin("p", "127.0.0.1:9000", "/h", [], reactor=reactor).request_url("Ping"),
                         "http://127.0.0.1:9000/h?op=Ping&version=0.1.0")
        self.assertEqual(HTTPPlugin("p", "https://x:1", "/h", [], reactor=reactor).url, "https://x:1/h")

    def test_from_options(self) -> None:
        p = HTTPPlugin.from_options({"name": "m", "addr": "https://h:1", "path": "/x", "ops": ["Login", "Ping"],
                                     "tlsVerify": True}, reactor=reactor)
        self.assertEqual((p.name, p.url, p.ops, p.tls_verify), ("m", "https://h:1/x", ("Login", "Ping"), True))
        self.assertTrue(p.supports("Ping"))
        self.assertFalse(p.supports("NewProxy"))

    def test_unknown_op(self) -> None:
        manager = PluginManager(clock=Clock())
        self.assertRaises(ValueError, manager.register, CallablePlugin("p", ["Logout"], lambda op, c: None))


class CallablePluginTests(SynchronousTestCase):
    def result(self, d: Deferred[Any]) -> Any:
        return self.successResultOf(d)

    def test_sync_allow_reject_rewrite(self) -> None:
        calls: list[tuple[str, Any]] = []

        def gate(op: str, content: Any) -> PluginResponse | None:
            calls.append((op, content))
            if content.login.user == "eve":
                return PluginResponse.rejected("eve is not welcome")
            if content.login.user == "mallory":
                return PluginResponse.rewrite({"user": "mallory", "pool_count": 9})
            return None

        manager = PluginManager([CallablePlugin("gate", ["Login"], gate)], clock=Clock())
        self.assertIs(self.result(manager.login(LOGIN)), LOGIN)
        f = self.failureResultOf(manager.login(LoginContent(Login(user="eve"))), PluginDenied)
        self.assertEqual(str(f.value), "eve is not welcome")
        rewritten = self.result(manager.login(LoginContent(Login(user="mallory", run_id="x"))))
        self.assertEqual(rewritten, LoginContent(Login(user="mallory", pool_count=9)))
        self.assertEqual(calls[0], ("Login", LOGIN))

    def test_deferred_and_typed_rewrite_chain_with_order(self) -> None:
        pending: list[Deferred[Any]] = []
        seen: list[Any] = []

        def later(op: str, content: NewWorkConnContent) -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            pending.append(d)
            return d.addCallback(lambda _: PluginResponse.rewrite(
                NewWorkConnContent(content.user, NewWorkConn(run_id="rewritten"))))

        manager = PluginManager([CallablePlugin("later", ["NewWorkConn"], later),
                                 CallablePlugin("look", ["NewWorkConn"], lambda op, c: seen.append(c))],
                                clock=Clock())
        d = manager.new_work_conn(NewWorkConnContent(ALICE, NewWorkConn(run_id="run1")))
        self.assertNoResult(d)
        pending[0].callback(None)
        self.assertEqual(self.result(d).new_work_conn.run_id, "rewritten")
        self.assertEqual(seen[0].new_work_conn.run_id, "rewritten")

    def test_exceptions_and_timeout(self) -> None:
        clock = Clock()

        def boom(op: str, content: Any) -> None:
            raise RuntimeError("bug in plugin")

        manager = PluginManager([CallablePlugin("boom", ["Ping"], boom)], clock=clock)
        f = self.failureResultOf(manager.ping(PingContent(ALICE, Ping())), PluginDenied)
        self.assertEqual((str(f.value), f.value.detail), ("send Ping request to plugin error", "bug in plugin"))
        cancelled: list[bool] = []
        never: Deferred[Any] = Deferred(lambda d: cancelled.append(True))
        manager = PluginManager([CallablePlugin("never", ["Ping"], lambda op, c: never)], clock=clock, timeout=2)
        d = manager.ping(PingContent(ALICE, Ping()))
        clock.advance(2)
        f = self.failureResultOf(d, PluginDenied)
        self.assertEqual(f.value.detail, "no answer within 2s")
        self.assertEqual(cancelled, [True])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_wrong_return_type(self) -> None:
        manager = PluginManager([CallablePlugin("bad", ["Ping"], lambda op, c: "yes")], clock=Clock())
        self.failureResultOf(manager.ping(PingContent(ALICE, Ping())), PluginDenied)
        manager = PluginManager([CallablePlugin("bad", ["Ping"], lambda op, c: PluginResponse.rewrite(LOGIN))],
                                clock=Clock())
        self.failureResultOf(manager.ping(PingContent(ALICE, Ping())), PluginDenied)


class ContentTests(SynchronousTestCase):
    def test_round_trip_and_go_decoding(self) -> None:
        for content in (LOGIN, NEW_PROXY, CloseProxyContent(ALICE, CloseProxy("p")), PingContent(ALICE, Ping("k", 3)),
                        NewWorkConnContent(ALICE, NewWorkConn("r", "k", 4)),
                        NewUserConnContent(ALICE, "p", "tcp", "1.2.3.4:5")):
            self.assertEqual(type(content).from_json(json.loads(json.dumps(content.to_json()))), content)
        # keys match case-insensitively, unknown keys are ignored, null leaves the zero value
        c = NewUserConnContent.from_json({"Proxy_Name": "p", "extra": 1, "remote_addr": None,
                                          "user": {"RUN_ID": "r", "metas": None}})
        self.assertEqual(c, NewUserConnContent(UserInfo(run_id="r"), proxy_name="p"))

    def test_an_array_is_not_an_object(self) -> None:
        from frptx.wire.errors import ProtocolError
        from frptx.wire.messages import loads_object

        self.assertRaises(ProtocolError, NewUserConnContent.from_json, [])
        self.assertRaises(ProtocolError, NewUserConnContent.from_json, [("proxy_name", "p")])
        self.assertEqual(NewUserConnContent.from_json(loads_object(b'{"proxy_name":"a","proxy_name":"b"}')).proxy_name,
                         "b")  # a duplicated key: the last one wins, as in Go

    def test_response_decoding(self) -> None:
        r = PluginResponse.from_json(b'{"REJECT": true, "Reject_Reason": "x", "unchange": null}')
        self.assertEqual((r.reject, r.reject_reason, r.unchange), (True, "x", False))
        self.assertEqual(client_error_text("NewWorkConn", "x", False), "invalid NewWorkConn")
        self.assertEqual(client_error_text("NewUserConn", "x", True), "")
