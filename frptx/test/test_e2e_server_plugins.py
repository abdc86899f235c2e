"""frps server plugins end to end: a real twisted.web plugin service on 127.0.0.1, our frps asking it,
our frpc (every check) and a stock Go frpc 0.65.0 (reading frp's reject text in its log).

The plugin rejects the Login of user ``mallory``, rewrites the remote port of
proxy ``rewritten``, rejects the users of proxy ``guarded`` and lets the rest
through unchanged (``unchange: true``).
"""
from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial import unittest
from twisted.web.server import Site

from frptx.server.plugins import CallablePlugin, PluginResponse
from frptx.test.gofrp import free_port
from frptx.test.support import (
    Collector,
    EchoFactory,
    Tunnel,
    connect,
    listen_local,
    mode_cases,
    roundtrip,
    tcp_proxy,
    with_timeout,
)
from frptx.test.test_e2e import async_test
from frptx.test.test_interop_go import GO_DEFAULT, InteropBase, echo
from frptx.test.test_server_plugins import PluginService

ALL_OPS = ["Login", "NewProxy", "CloseProxy", "Ping", "NewWorkConn", "NewUserConn"]


class Policy:
    """The plugin's decisions (frp's JSON in, frp's JSON out)."""

    def __init__(self) -> None:
        self.rewrite_port = free_port()

    def __call__(self, op: str, content: dict[str, Any]) -> dict[str, Any]:
        if op == "Login" and content.get("user") == "mallory":
            return {"reject": True, "reject_reason": "mallory is banned"}
        if op == "NewProxy" and content["proxy_name"].endswith("forbidden"):
            return {"reject": True, "reject_reason": "no proxy called forbidden"}
        if op == "NewProxy" and content["proxy_name"] == "rewritten":
            return {"unchange": False, "content": dict(content, remote_port=self.rewrite_port)}
        if op == "NewUserConn" and content["proxy_name"] == "guarded":
            return {"reject": True, "reject_reason": "no users for guarded"}
        return {"unchange": True}


def plugin_service(testcase: Any) -> tuple[PluginService, Policy, list[dict[str, Any]]]:
    """The plugin service (its cleanup waits for frps's requests to be closed) and frps's ``httpPlugins``."""
    policy = Policy()
    service = PluginService(policy)
    port = listen_local(testcase, Site(service))
    return service, policy, [{"name": "policy", "addr": f"127.0.0.1:{port}", "path": "/handler", "ops": ALL_OPS}]


def requests(service: PluginService, op: str) -> list[dict[str, Any]]:
    import json

    return [json.loads(r["body"])["content"] for r in service.requests if json.loads(r["body"])["op"] == op]


class ServerPluginsMixin:
    mode: dict[str, bool]
    timeout = 60

    def start(self: Any) -> tuple[Tunnel, PluginService, Policy]:
        service, policy, plugins = plugin_service(self)
        tunnel = Tunnel(self, self.mode)
        tunnel.start_server(httpPlugins=plugins)
        return tunnel, service, policy

    @async_test
    async def test_login_rejected_with_the_plugins_reason_others_served(self: Any) -> None:
        local = listen_local(self, EchoFactory())
        tunnel, service, _ = self.start()
        assert tunnel.frps is not None
        tunnel.start_client([tcp_proxy("m", local)], user="mallory")
        why = await with_timeout(tunnel.fatal.first(), 15)
        self.assertIn("mallory is banned", why)
        [login] = requests(service, "Login")
        self.assertEqual(login["user"], "mallory")
        self.assertRegex(login["client_address"], r"^127\.0\.0\.1:\d+$")
        # the plugin decided; frps still serves the next client
        tunnel.start_client([tcp_proxy("alice", local)], user="alice")
        port = await tunnel.remote_port("alice")
        self.assertEqual(await roundtrip(port, b"hello"), b"hello")
        self.assertEqual([c.login.user for c in tunnel.frps.server.controls.values()], ["alice"])

    @async_test
    async def test_new_proxy_rewrite_sets_the_remote_port(self: Any) -> None:
        local = listen_local(self, EchoFactory())
        tunnel, service, policy = self.start()
        tunnel.start_client([tcp_proxy("rewritten", local, remote_port=0)])
        port = await tunnel.remote_port("rewritten")
        self.assertEqual(port, policy.rewrite_port)
        self.assertEqual(await roundtrip(port, b"via the rewritten port"), b"via the rewritten port")
        [new_proxy] = requests(service, "NewProxy")
        self.assertEqual((new_proxy["proxy_name"], new_proxy["user"]["user"]), ("rewritten", ""))
        self.assertEqual(len(new_proxy["user"]["run_id"]), 16)

    @async_test
    async def test_new_user_conn_rejected_before_a_work_connection_is_taken(self: Any) -> None:
        echo = EchoFactory()
        local = listen_local(self, echo)
        tunnel, service, _ = self.start()
        tunnel.start_client([tcp_proxy("guarded", local), tcp_proxy("open", local)])
        guarded = await tunnel.remote_port("guarded")
        user = Collector(b"let me in")
        await connect(guarded, user)
        user_port = user.transport.getHost().port
        self.assertEqual(await with_timeout(user.done, 10), b"")
        [asked] = requests(service, "NewUserConn")
        self.assertEqual((asked["proxy_name"], asked["proxy_type"]), ("guarded", "tcp"))
        self.assertEqual(asked["remote_addr"], f"127.0.0.1:{user_port}")
        self.assertEqual(echo.connections, 0)  # frpc never dialled the local service for it
        open_port = await tunnel.remote_port("open")
        self.assertEqual(await roundtrip(open_port, b"welcome"), b"welcome")
        self.assertEqual(echo.connections, 1)
        self.assertEqual(len(requests(service, "NewUserConn")), 2)


    @async_test
    async def test_in_process_hooks_as_in_the_readme(self: Any) -> None:
        """``FrpsService(plugins=...)`` and ``add_hook``: typed contents, mapping rewrites, notifications."""
        local = listen_local(self, EchoFactory())
        rewrite_port = free_port()
        closed: Deferred[str] = Deferred()

        def policy(op: str, content: Any) -> PluginResponse | None:
            if op == "Login" and content.login.user != "alice":
                return PluginResponse.rejected("alice only")
            if op == "NewProxy" and content.new_proxy.remote_port == 0:
                return PluginResponse.rewrite({**content.to_json(), "remote_port": rewrite_port})
            return None

        tunnel = Tunnel(self, self.mode)
        frps = tunnel.start_server()
        frps.add_plugin(CallablePlugin("policy", ["Login", "NewProxy"], policy))
        frps.add_hook("audit", ["CloseProxy"], lambda op, content: closed.callback(content.close_proxy.proxy_name))
        tunnel.start_client([tcp_proxy("p", local)], user="bob")
        self.assertIn("alice only", await with_timeout(tunnel.fatal.first(), 15))
        frpc = tunnel.start_client([tcp_proxy("p", local)], user="alice")
        self.assertEqual(await tunnel.remote_port("p"), rewrite_port)
        self.assertEqual(await roundtrip(rewrite_port, b"hooked"), b"hooked")
        await frpc.stopService()
        self.assertEqual(await with_timeout(closed, 10), "alice.p")


mode_cases(ServerPluginsMixin, globals(), unittest.TestCase,
           lambda: {"mux": {"tcp_mux": True, "tls": False}, "nomux_tls": {"tcp_mux": False, "tls": True}})


class GoFrpcServerPlugins(InteropBase):
    """A stock Go frpc 0.65.0 against our frps and the plugin service."""

    @async_test
    async def test_go_frpc_logs_frps_reject_texts(self) -> None:
        local = listen_local(self, EchoFactory())
        service, policy, plugins = plugin_service(self)
        frps = self.our_frps(GO_DEFAULT["tcp_mux"], httpPlugins=plugins)
        banned = await self.go_frpc(frps.bound_port, GO_DEFAULT, [tcp_proxy("m", local)], user="mallory",
                                    wait=False)
        self.assertEqual(await banned.proc.when_ended(15), 1, banned.proc.output())
        await banned.proc.wait_for("mallory is banned")
        frpc = await self.go_frpc(frps.bound_port, GO_DEFAULT,
                                  [tcp_proxy("rewritten", local), tcp_proxy("forbidden", local)], wait=False)
        await frpc.proc.wait_for("no proxy called forbidden")
        await frpc.proc.wait_for("[rewritten] start proxy success")
        port = await frpc.remote_port("rewritten")
        self.assertEqual(port, policy.rewrite_port)
        # (Go frpc closes both sides at the user's FIN, so no half-closing roundtrip here)
        self.assertEqual(await echo(port, b"go"), b"go")
        self.assertNotIn("forbidden", frps.server.proxies)
