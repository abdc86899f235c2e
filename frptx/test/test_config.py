# -*- test-case-name: frptx.test.test_config -*-
"""
Tests for L{frptx.config}: file formats, templating, defaults, strict key
checking, value rules, and the refusal of frp features frptx lacks.
"""

from __future__ import annotations

import dataclasses
import json
import operator
import os
from collections.abc import Callable
from typing import Any

from twisted.trial import unittest

from frptx.config import (
    UNSUPPORTED_FEATURES,
    AuthConfig,
    ClientConfig,
    ClientTLSConfig,
    ClientTransportConfig,
    ConfigError,
    HTTPPluginConfig,
    LogConfig,
    PortRange,
    ProxyConfig,
    ProxyTransportConfig,
    ServerConfig,
    ServerTLSConfig,
    ServerTransportConfig,
    VisitorConfig,
    load_client_config,
    load_server_config,
    parse_client_config,
    parse_server_config,
    render_template,
    schema,
)
from frptx.test.support import examples_dir


def tcp(name: str = "ssh", **extra: Any) -> dict[str, Any]:
    """A minimal valid tcp proxy entry."""
    return {"name": name, "type": "tcp", "localPort": 22, **extra}


class ConfigTestCase(unittest.TestCase):
    """Helpers shared by the config tests."""

    def write(self, name: str, text: str) -> str:
        """Write C{text} to a fresh directory under the test's temp dir."""
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def fails(self, call: Callable[[], object], *expected: str) -> ConfigError:
        """
        C{call} raises ConfigError whose message lists every C{expected}
        fragment (each must appear in some line).
        """
        error = self.assertRaises(ConfigError, call)
        lines = str(error).splitlines()
        for fragment in expected:
            self.assertTrue(
                any(fragment in line for line in lines),
                f"{fragment!r} not found in:\n{error}",
            )
        return error

    def client_fails(self, data: dict[str, Any], *expected: str) -> ConfigError:
        return self.fails(lambda: parse_client_config(data), *expected)

    def server_fails(self, data: dict[str, Any], *expected: str) -> ConfigError:
        return self.fails(lambda: parse_server_config(data), *expected)


class DefaultsTests(ConfigTestCase):
    """An empty file means frp's defaults (with frptx's heartbeat choice)."""

    def test_serverDefaults(self) -> None:
        config = parse_server_config({})
        self.assertEqual(config, ServerConfig(proxy_bind_addr="0.0.0.0"))
        self.assertEqual(config.bind_addr, "0.0.0.0")
        self.assertEqual(config.bind_port, 7000)
        self.assertEqual(config.auth, AuthConfig())
        self.assertEqual(
            config.transport,
            ServerTransportConfig(
                tcp_mux=True,
                tcp_mux_keepalive_interval=30,
                tcp_keepalive=7200,
                max_pool_count=5,
                heartbeat_timeout=90,
                tls=ServerTLSConfig(),
            ),
        )
        self.assertEqual(config.allow_ports, ())
        self.assertEqual(config.max_ports_per_client, 0)
        self.assertEqual(config.user_conn_timeout, 10)
        self.assertEqual(config.udp_packet_size, 1500)
        self.assertTrue(config.detailed_errors_to_client)
        self.assertEqual(config.log, LogConfig(to="console", level="info", max_days=3))

    def test_proxyBindAddrFollowsBindAddr(self) -> None:
        """An empty proxyBindAddr means bindAddr, as in frp."""
        self.assertEqual(parse_server_config({"bindAddr": "10.0.0.1"}).proxy_bind_addr, "10.0.0.1")
        config = parse_server_config({"bindAddr": "10.0.0.1", "proxyBindAddr": "0.0.0.0"})
        self.assertEqual(config.proxy_bind_addr, "0.0.0.0")

    def test_clientDefaults(self) -> None:
        config = parse_client_config({})
        self.assertEqual(config.server_addr, "0.0.0.0")
        self.assertEqual(config.server_port, 7000)
        self.assertEqual(config.user, "")
        self.assertTrue(config.login_fail_exit)
        self.assertEqual(config.transport, ClientTransportConfig())
        self.assertEqual(config.transport.tls, ClientTLSConfig(enable=True, disable_custom_tls_first_byte=True))
        self.assertEqual(config.transport.heartbeat_interval, 30)
        self.assertEqual(config.transport.heartbeat_timeout, 90)
        self.assertEqual(config.transport.pool_count, 1)
        self.assertEqual((config.proxies, config.visitors, config.start), ((), (), ()))
        self.assertEqual(dict(config.metadatas), {})
        self.assertEqual(config.udp_packet_size, 1500)

    def test_proxyDefaults(self) -> None:
        proxy = parse_client_config({"proxies": [tcp()]}).proxies[0]
        self.assertEqual(proxy, ProxyConfig(name="ssh", type="tcp", local_port=22))
        self.assertEqual(proxy.local_ip, "127.0.0.1")
        self.assertEqual(proxy.remote_port, 0)
        self.assertTrue(proxy.enabled)
        self.assertEqual(proxy.transport, ProxyTransportConfig())

    def test_zeroMeansDefault(self) -> None:
        """frp's EmptyOr: an explicit 0 for a timeout or count means the default."""
        config = parse_client_config({"transport": {"heartbeatInterval": 0, "poolCount": 0}})
        self.assertEqual(config.transport.heartbeat_interval, 30)
        self.assertEqual(config.transport.pool_count, 1)
        self.assertEqual(parse_server_config({"userConnTimeout": 0}).user_conn_timeout, 10)

    def test_trustedCaForcesTLS(self) -> None:
        """frps requires TLS when it is told to verify client certificates."""
        config = parse_server_config({"transport": {"tls": {"trustedCaFile": "/ca.pem"}}})
        self.assertTrue(config.transport.tls.force)

    def test_supportedValuesAreKept(self) -> None:
        config = parse_client_config(
            {
                "serverAddr": "frps.example.com",
                "serverPort": 7001,
                "user": "alice",
                "clientID": "c1",
                "loginFailExit": False,
                "metadatas": {"team": "ops"},
                "auth": {"token": "t", "additionalScopes": ["HeartBeats", "NewWorkConns"]},
                "transport": {
                    "tcpMux": False,
                    "poolCount": 3,
                    "heartbeatInterval": 10,
                    "heartbeatTimeout": 30,
                    "dialServerTimeout": 5,
                    "dialServerKeepalive": -1,
                    "connectServerLocalIP": "192.168.1.2",
                    "tcpMuxKeepaliveInterval": 15,
                    "tls": {
                        "enable": True,
                        "disableCustomTLSFirstByte": False,
                        "certFile": "c.pem",
                        "keyFile": "k.pem",
                        "trustedCaFile": "ca.pem",
                        "serverName": "frps.example.com",
                    },
                },
                "log": {"to": "/var/log/frpc.log", "level": "debug", "maxDays": 7},
                "udpPacketSize": 1400,
                "proxies": [
                    tcp(
                        remotePort=6000,
                        localIP="10.0.0.5",
                        enabled=False,
                        metadatas={"a": "b"},
                        annotations={"x/y": "z"},
                    )
                ],
            }
        )
        self.assertEqual(config.wire_name("ssh"), "alice.ssh")
        self.assertEqual(config.auth.additional_scopes, frozenset({"HeartBeats", "NewWorkConns"}))
        self.assertEqual(config.transport.dial_server_keepalive, -1)
        self.assertFalse(config.transport.tls.disable_custom_tls_first_byte)
        self.assertEqual(config.transport.tls.server_name, "frps.example.com")
        self.assertEqual(config.log, LogConfig(to="/var/log/frpc.log", level="debug", max_days=7))
        proxy = config.proxies[0]
        self.assertEqual((proxy.local_ip, proxy.remote_port, proxy.enabled), ("10.0.0.5", 6000, False))
        self.assertEqual(dict(proxy.annotations), {"x/y": "z"})
        self.assertEqual(config.metadatas, {"team": "ops"})


class ModelTests(ConfigTestCase):
    """The dataclasses are immutable values with a few helpers."""

    def test_portRange(self) -> None:
        r = PortRange(6000, 6100)
        self.assertIn(6000, r)
        self.assertIn(6100, r)
        self.assertNotIn(5999, r)
        self.assertNotIn(6101, r)

    def test_portAllowed(self) -> None:
        self.assertTrue(parse_server_config({}).port_allowed(1))
        config = parse_server_config(
            {"allowPorts": [{"start": 6000, "end": 6100}, {"single": 3389}]}
        )
        self.assertEqual(config.allow_ports, (PortRange(6000, 6100), PortRange(3389, 3389)))
        self.assertTrue(config.port_allowed(6050))
        self.assertTrue(config.port_allowed(3389))
        self.assertFalse(config.port_allowed(3390))

    def test_activeProxies(self) -> None:
        """Disabled proxies are skipped; a non-empty start selects by name."""
        config = parse_client_config(
            {"proxies": [tcp("a"), tcp("b", enabled=False), tcp("c")]}
        )
        self.assertEqual([p.name for p in config.active_proxies()], ["a", "c"])
        config = parse_client_config(
            {"start": ["c", "b"], "proxies": [tcp("a"), tcp("b", enabled=False), tcp("c")]}
        )
        self.assertEqual([p.name for p in config.active_proxies()], ["c"])

    def test_wireName(self) -> None:
        self.assertEqual(parse_client_config({}).wire_name("web"), "web")
        self.assertEqual(parse_client_config({"user": "bob"}).wire_name("web"), "bob.web")

    def test_immutable(self) -> None:
        config = parse_client_config({"metadatas": {"a": "b"}, "proxies": [tcp()]})
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, config, "user", "x")
        self.assertRaises(TypeError, operator.setitem, config.metadatas, "a", "c")
        self.assertIsInstance(config.proxies, tuple)
        self.assertIsInstance(config.start, tuple)

    def test_equalAndHashable(self) -> None:
        """Loading the same content twice gives equal, hashable values."""
        data = {"metadatas": {"a": "b"}, "proxies": [tcp(metadatas={"k": "v"})]}
        one, two = parse_client_config(data), parse_client_config(data)
        self.assertEqual(one, two)
        self.assertEqual(one.proxies[0], two.proxies[0])
        self.assertEqual(hash(one.proxies[0]), hash(two.proxies[0]))
        self.assertEqual(len({one, two}), 1)
        changed = parse_client_config({**data, "proxies": [tcp(metadatas={"k": "w"})]})
        self.assertNotEqual(one.proxies[0], changed.proxies[0])

    def test_configErrorShape(self) -> None:
        error = ConfigError([("a.b", "bad"), ("c", "worse")])
        self.assertEqual(error.errors, (("a.b", "bad"), ("c", "worse")))
        self.assertEqual(str(error), "a.b: bad\nc: worse")


class FormatTests(ConfigTestCase):
    """YAML, TOML and JSON files, chosen by extension."""

    def test_examplesLoad(self) -> None:
        """Every shipped example loads, and its three formats agree."""
        for side, load in (("frps", load_server_config), ("frpc", load_client_config)):
            configs = [
                load(os.path.join(examples_dir(), f"{side}.{ext}"), env={})
                for ext in ("yaml", "toml", "json")
            ]
            self.assertEqual(configs[0], configs[1])
            self.assertEqual(configs[0], configs[2])
        shipped = sorted(os.listdir(examples_dir()))
        for name in shipped:
            if name.startswith("frps."):
                load_server_config(os.path.join(examples_dir(), name), env={})
            elif name.startswith("frpc."):
                load_client_config(os.path.join(examples_dir(), name), env={})

    def test_exampleContents(self) -> None:
        server = load_server_config(os.path.join(examples_dir(), "frps.yaml"), env={})
        self.assertEqual((server.bind_addr, server.bind_port), ("127.0.0.1", 7000))
        self.assertEqual(server.auth.token, "change-me")
        self.assertEqual(server.allow_ports, (PortRange(6000, 6100),))
        client = load_client_config(os.path.join(examples_dir(), "frpc.yaml"), env={})
        self.assertEqual(client.auth.token, "change-me")
        self.assertFalse(client.transport.tls.enable)
        self.assertEqual(
            client.proxies,
            (ProxyConfig(name="web", type="tcp", local_port=8000, remote_port=6000),),
        )

    def test_allFormatsEqual(self) -> None:
        yaml_path = self.write(
            "frpc.yml",
            "serverAddr: x.example\nuser: u\nproxies:\n"
            "  - {name: a, type: tcp, localPort: 1, remotePort: 2, metadatas: {k: v}}\n",
        )
        toml_path = self.write(
            "frpc.toml",
            'serverAddr = "x.example"\nuser = "u"\n[[proxies]]\nname = "a"\ntype = "tcp"\n'
            "localPort = 1\nremotePort = 2\nmetadatas = { k = \"v\" }\n",
        )
        json_path = self.write(
            "frpc.json",
            json.dumps(
                {
                    "serverAddr": "x.example",
                    "user": "u",
                    "proxies": [
                        {"name": "a", "type": "tcp", "localPort": 1, "remotePort": 2, "metadatas": {"k": "v"}}
                    ],
                }
            ),
        )
        configs = [load_client_config(p, env={}) for p in (yaml_path, toml_path, json_path)]
        self.assertEqual(configs[0], configs[1])
        self.assertEqual(configs[1], configs[2])
        self.assertEqual(configs[0].proxies[0].metadatas, {"k": "v"})

    def test_unknownExtension(self) -> None:
        path = self.write("frpc.conf", "serverPort: 7000\n")
        self.fails(lambda: load_client_config(path), f"{path}: cannot tell the config format")

    def test_iniRefused(self) -> None:
        path = self.write("frpc.ini", "[common]\nserver_port = 7000\n")
        self.fails(lambda: load_client_config(path), "legacy INI format is not supported", "YAML")

    def test_missingFile(self) -> None:
        path = os.path.join(self.mktemp(), "frps.yaml")
        self.fails(lambda: load_server_config(path), f"{path}: file not found")

    def test_yamlSyntaxError(self) -> None:
        path = self.write("frps.yaml", "bindPort: 7000\nauth:\n  token: [unclosed\n")
        error = self.fails(lambda: load_server_config(path), path, "YAML syntax error")
        self.assertIn("line ", str(error))
        self.assertEqual(error.source, path)

    def test_tomlSyntaxError(self) -> None:
        path = self.write("frps.toml", 'bindPort = 7000\nauth = = "x"\n')
        self.fails(lambda: load_server_config(path), path, "TOML syntax error", "line 2")

    def test_jsonSyntaxError(self) -> None:
        path = self.write("frps.json", '{\n  "bindPort": 7000,\n}\n')
        self.fails(lambda: load_server_config(path), path, "line 3", "JSON syntax error")

    def test_emptyYamlIsDefaults(self) -> None:
        path = self.write("frps.yaml", "# nothing configured\n")
        self.assertEqual(load_server_config(path, env={}), parse_server_config({}))

    def test_topLevelMustBeMapping(self) -> None:
        path = self.write("frps.yaml", "- 1\n- 2\n")
        self.fails(lambda: load_server_config(path), "expected a mapping at the top level")

    def test_yamlDotKeysAndMerge(self) -> None:
        """Top-level keys starting with "." are anchors, ignored like frp does."""
        path = self.write(
            "frpc.yaml",
            ".base: &base\n  type: tcp\n  localIP: 10.0.0.1\n"
            "proxies:\n  - <<: *base\n    name: a\n    localPort: 80\n",
        )
        proxy = load_client_config(path, env={}).proxies[0]
        self.assertEqual((proxy.type, proxy.local_ip, proxy.local_port), ("tcp", "10.0.0.1", 80))

    def test_byteOrderMark(self) -> None:
        path = self.write("frps.json", '\ufeff{"bindPort": 7001}')
        self.assertEqual(load_server_config(path, env={}).bind_port, 7001)


class TemplateTests(ConfigTestCase):
    """frp's {{ .Envs.NAME }} substitution, rendered before parsing."""

    def test_render(self) -> None:
        env = {"A": "1", "B_2": "two"}
        self.assertEqual(render_template("{{ .Envs.A }}-{{.Envs.B_2}}-{{  .Envs.A  }}", env), "1-two-1")

    def test_missingVariableIsEmpty(self) -> None:
        self.assertEqual(render_template('token: "{{ .Envs.NOPE }}"', {}), 'token: ""')

    def test_trimMarkersAndComments(self) -> None:
        self.assertEqual(render_template("a  {{- .Envs.X -}}  b", {"X": "x"}), "axb")
        self.assertEqual(render_template("a{{/* note */}}b", {}), "ab")

    def test_unsupportedAction(self) -> None:
        self.fails(lambda: render_template("x\n{{ .Other }}", {}, "f.yaml"), "f.yaml: line 2", "unsupported template")

    def test_loadWithEnv(self) -> None:
        path = self.write(
            "frpc.yaml",
            "serverAddr: {{ .Envs.FRP_SERVER }}\nserverPort: {{.Envs.FRP_PORT}}\n"
            'auth:\n  token: "{{ .Envs.FRP_TOKEN }}"\n',
        )
        config = load_client_config(path, env={"FRP_SERVER": "frps.example.com", "FRP_PORT": "7100"})
        self.assertEqual(config.server_addr, "frps.example.com")
        self.assertEqual(config.server_port, 7100)
        self.assertEqual(config.auth.token, "")

    def test_envDefaultsToProcessEnvironment(self) -> None:
        path = self.write("frps.toml", 'bindPort = {{ .Envs.FRPTX_TEST_PORT }}\n')
        self.patch(os, "environ", {"FRPTX_TEST_PORT": "7123"})
        self.assertEqual(load_server_config(path).bind_port, 7123)


class KeyTests(ConfigTestCase):
    """Unknown keys are errors with their full path; every frp key is known."""

    def test_unknownTopLevelKey(self) -> None:
        self.server_fails({"bindPrt": 7000}, "bindPrt: unknown key (did you mean 'bindPort'?)")

    def test_unknownProxyKey(self) -> None:
        self.client_fails(
            {"proxies": [tcp("a"), tcp("b", remotePrt=6000)]}, "proxies[1].remotePrt: unknown key"
        )

    def test_unknownNestedKey(self) -> None:
        self.client_fails({"transport": {"tls": {"enabel": False}}}, "transport.tls.enabel: unknown key")
        self.server_fails({"auth": {"oidc": {"isuer": "x"}}}, "auth.oidc.isuer: unknown key")

    def test_keyOfOtherProxyType(self) -> None:
        self.client_fails(
            {"proxies": [tcp(customDomains=["a.example"])]},
            "proxies[0].customDomains: not valid for proxy type 'tcp'",
        )

    def test_caseInsensitiveLikeGoJSON(self) -> None:
        """Go's encoding/json matched keys case-insensitively; frp files rely on it."""
        config = parse_client_config({"proxies": [{"name": "a", "type": "tcp", "localIp": "10.1.1.1", "localPort": 5}]})
        self.assertEqual(config.proxies[0].local_ip, "10.1.1.1")
        self.client_fails(
            {"serverPort": 1, "serverport": 2}, "serverport: duplicate of key 'serverPort'"
        )

    def test_everyFrpKeyKnown(self) -> None:
        """
        Files using (almost) every frp key fail only with "not supported",
        never with "unknown key".
        """
        server = {
            "version": "v1",
            "bindAddr": "0.0.0.0",
            "bindPort": 7000,
            "kcpBindPort": 7000,
            "quicBindPort": 7002,
            "proxyBindAddr": "0.0.0.0",
            "vhostHTTPPort": 80,
            "vhostHTTPTimeout": 60,
            "vhostHTTPSPort": 443,
            "tcpmuxHTTPConnectPort": 1337,
            "tcpmuxPassthrough": False,
            "subDomainHost": "example.com",
            "custom404Page": "/404.html",
            "sshTunnelGateway": {
                "bindPort": 2200,
                "privateKeyFile": "k",
                "autoGenPrivateKeyPath": "a",
                "authorizedKeysFile": "f",
            },
            "webServer": {
                "addr": "0.0.0.0",
                "port": 7500,
                "user": "admin",
                "password": "admin",
                "assetsDir": "./static",
                "pprofEnable": False,
                "tls": {"certFile": "c", "keyFile": "k"},
            },
            "enablePrometheus": True,
            "log": {"to": "console", "level": "info", "maxDays": 3, "disablePrintColor": False},
            "auth": {
                "method": "oidc",
                "additionalScopes": ["HeartBeats"],
                "oidc": {"issuer": "i", "audience": "a", "skipExpiryCheck": False, "skipIssuerCheck": False},
            },
            "transport": {
                "tcpMux": True,
                "tcpMuxKeepaliveInterval": 30,
                "tcpKeepalive": 7200,
                "maxPoolCount": 5,
                "heartbeatTimeout": 90,
                "quic": {"keepalivePeriod": 10, "maxIdleTimeout": 30, "maxIncomingStreams": 100000},
                "tls": {"force": False, "certFile": "c", "keyFile": "k", "trustedCaFile": "ca"},
            },
            "detailedErrorsToClient": True,
            "maxPortsPerClient": 0,
            "userConnTimeout": 10,
            "udpPacketSize": 1500,
            "natholeAnalysisDataReserveHours": 168,
            "allowPorts": [{"start": 2000, "end": 3000}, {"single": 3001}],
            "allowedClientIPs": ["10.0.0.0/8"],
            "httpPlugins": [
                {"name": "p", "addr": "127.0.0.1:9000", "path": "/h", "ops": ["Login"], "tlsVerify": True}
            ],
        }
        error = self.server_fails(server, "kcpBindPort: not supported by frptx yet")
        self.assertEqual([r for _, r in error.errors if "not supported" not in r], [])

        plugin = {"type": "https2http", "localAddr": "127.0.0.1:80", "crtPath": "c", "keyPath": "k",
                  "hostHeaderRewrite": "h", "requestHeaders": {"set": {"x": "y"}}, "enableHTTP2": True}
        base = {
            "transport": {"useEncryption": True, "useCompression": True, "bandwidthLimit": "1MB",
                          "bandwidthLimitMode": "server", "proxyProtocolVersion": "v2"},
            "metadatas": {"a": "b"},
            "annotations": {"c": "d"},
            "loadBalancer": {"group": "g", "groupKey": "k"},
            "healthCheck": {"type": "http", "timeoutSeconds": 3, "maxFailed": 3, "intervalSeconds": 10,
                            "path": "/status", "httpHeaders": [{"name": "x-from-where", "value": "frp"}]},
        }
        client = {
            "version": "v1",
            "user": "u",
            "clientID": "id",
            "serverAddr": "x",
            "serverPort": 7000,
            "natHoleStunServer": "stun.example:3478",
            "dnsServer": "8.8.8.8",
            "loginFailExit": True,
            "start": ["tcp1", "v1"],
            "log": {"to": "console", "level": "trace", "maxDays": 3, "disablePrintColor": True},
            "webServer": {"addr": "127.0.0.1", "port": 7400, "user": "admin", "password": "p",
                          "assetsDir": "", "pprofEnable": True},
            "auth": {
                "method": "oidc",
                "additionalScopes": ["NewWorkConns"],
                "oidc": {"clientID": "c", "clientSecret": "s", "audience": "a", "scope": "sc",
                         "tokenEndpointURL": "https://t", "additionalEndpointParams": {"k": "v"},
                         "trustedCaFile": "ca", "insecureSkipVerify": False, "proxyURL": ""},
            },
            "transport": {
                "protocol": "quic",
                "wireProtocol": "v1",
                "dialServerTimeout": 10,
                "dialServerKeepalive": 7200,
                "connectServerLocalIP": "0.0.0.0",
                "proxyURL": "http://u:p@proxy:8080",
                "poolCount": 5,
                "tcpMux": True,
                "tcpMuxKeepaliveInterval": 30,
                "quic": {"keepalivePeriod": 10, "maxIdleTimeout": 30, "maxIncomingStreams": 100000},
                "heartbeatInterval": 30,
                "heartbeatTimeout": 90,
                "tls": {"enable": True, "disableCustomTLSFirstByte": True, "certFile": "c", "keyFile": "k",
                        "trustedCaFile": "ca", "serverName": "s"},
            },
            "virtualNet": {"address": "100.86.0.1/24"},
            "featureGates": {"VirtualNet": True},
            "udpPacketSize": 1500,
            "metadatas": {"var1": "abc"},
            "includes": ["./confd/*.yaml"],
            "proxies": [
                {"name": "tcp1", "type": "tcp", "localIP": "127.0.0.1", "localPort": 22, "remotePort": 6001,
                 "enabled": True, **base},
                {"name": "udp1", "type": "udp", "localPort": 53, "remotePort": 6002},
                {"name": "web", "type": "http", "localPort": 80, "customDomains": ["a.example"],
                 "subdomain": "web", "locations": ["/"], "httpUser": "u", "httpPassword": "p",
                 "hostHeaderRewrite": "h", "requestHeaders": {"set": {"x": "y"}},
                 "responseHeaders": {"set": {"foo": "bar"}}, "routeByHTTPUser": "u"},
                {"name": "web2", "type": "https", "customDomains": ["b.example"], "plugin": plugin},
                {"name": "mux", "type": "tcpmux", "multiplexer": "httpconnect", "customDomains": ["c"],
                 "localPort": 80, "httpUser": "u", "httpPassword": "p", "routeByHTTPUser": "u"},
                {"name": "s1", "type": "stcp", "secretKey": "k", "allowUsers": ["*"], "localPort": 22},
                {"name": "s2", "type": "sudp", "secretKey": "k", "localPort": 53},
                {"name": "x1", "type": "xtcp", "secretKey": "k", "localPort": 22,
                 "natTraversal": {"disableAssistedAddrs": True}},
                {"name": "sock", "type": "tcp", "remotePort": 6005,
                 "plugin": {"type": "socks5", "username": "a", "password": "b"}},
                {"name": "uds", "type": "tcp", "plugin": {"type": "unix_domain_socket", "unixPath": "/x"}},
                {"name": "hp", "type": "tcp", "plugin": {"type": "http_proxy", "httpUser": "a", "httpPassword": "b"}},
                {"name": "sf", "type": "tcp", "plugin": {"type": "static_file", "localPath": "/d",
                                                         "stripPrefix": "s", "httpUser": "a", "httpPassword": "b"}},
                {"name": "raw", "type": "https", "subdomain": "r",
                 "plugin": {"type": "tls2raw", "localAddr": "a", "crtPath": "c", "keyPath": "k"}},
            ],
            "visitors": [
                {"name": "v1", "type": "stcp", "serverUser": "u", "serverName": "s1", "secretKey": "k",
                 "bindAddr": "127.0.0.1", "bindPort": 9000, "enabled": True,
                 "transport": {"useEncryption": True, "useCompression": False}},
                {"name": "v2", "type": "xtcp", "serverName": "x1", "secretKey": "k", "bindPort": 9001,
                 "protocol": "quic", "keepTunnelOpen": True, "maxRetriesAnHour": 8, "minRetryInterval": 90,
                 "fallbackTo": "v1", "fallbackTimeoutMs": 1000, "natTraversal": {"disableAssistedAddrs": False}},
                {"name": "v3", "type": "sudp", "serverName": "s2", "bindPort": 9002,
                 "plugin": {"type": "virtual_net", "destinationIP": "100.86.0.2"}},
            ],
        }
        error = self.client_fails(client, "proxies[7].type: not supported by frptx yet")
        self.assertEqual([e for e in error.errors if "not supported" not in e[1]], [])


class ValueTests(ConfigTestCase):
    """Bad values are reported with their path and a reason."""

    def test_wrongTypes(self) -> None:
        self.server_fails({"bindPort": "abc"}, "bindPort: expected an integer, got 'abc'")
        self.server_fails({"bindPort": True}, "bindPort: expected an integer, got true")
        self.server_fails({"bindPort": 7000.0}, "bindPort: expected an integer, got 7000.0")
        self.client_fails({"loginFailExit": "yes"}, "loginFailExit: expected a boolean (true/false), got 'yes'")
        self.client_fails({"loginFailExit": 1}, "loginFailExit: expected a boolean")
        self.client_fails({"auth": {"token": 12345}}, "auth.token: expected a string, got 12345 (quote it")
        self.client_fails({"proxies": {"name": "a"}}, "proxies: expected a list, got a mapping")
        self.client_fails({"proxies": ["ssh"]}, "proxies[0]: expected a mapping, got 'ssh'")
        self.client_fails({"metadatas": {"a": 1}}, "metadatas.a: expected a string, got 1")
        self.client_fails({"start": "ssh"}, "start: expected a list")

    def test_nullIsAbsent(self) -> None:
        """As with Go's JSON null, an empty YAML value leaves the default."""
        self.assertEqual(parse_server_config({"bindPort": None, "auth": None}), parse_server_config({}))

    def test_portRanges(self) -> None:
        self.server_fails({"bindPort": 70000}, "bindPort: port must be in 1..65535, got 70000")
        self.server_fails({"bindPort": 0}, "bindPort: port must be in 1..65535, got 0")
        self.client_fails({"serverPort": -1}, "serverPort: port must be in 1..65535")
        self.client_fails(
            {"proxies": [tcp(remotePort=65536)]}, "proxies[0].remotePort: port must be in 0..65535, got 65536"
        )
        self.client_fails({"proxies": [tcp(localPort=0)]}, "proxies[0].localPort: required")
        self.client_fails(
            {"proxies": [tcp(localPort=99999)]}, "proxies[0].localPort: port must be in 1..65535, got 99999"
        )
        self.server_fails({"vhostHTTPPort": 70000}, "vhostHTTPPort: port must be in 0..65535")

    def test_remotePortZeroAllowed(self) -> None:
        """remotePort 0 asks frps to pick a port."""
        self.assertEqual(parse_client_config({"proxies": [tcp(remotePort=0)]}).proxies[0].remote_port, 0)

    def test_requiredProxyKeys(self) -> None:
        self.client_fails(
            {"proxies": [{"type": "tcp", "localPort": 1}, {"name": "b", "localPort": 1},
                         {"name": "c", "type": "tcp"}]},
            "proxies[0].name: required",
            "proxies[1].type: required",
            "proxies[2].localPort: required",
        )

    def test_unknownProxyType(self) -> None:
        self.client_fails(
            {"proxies": [{"name": "a", "type": "ftp", "localPort": 21}]},
            "proxies[0].type: unknown proxy type 'ftp'",
        )

    def test_duplicateNames(self) -> None:
        self.client_fails(
            {"proxies": [tcp("ssh"), tcp("web"), tcp("ssh")]}, "proxies[2].name: duplicate proxy name 'ssh'"
        )
        visitor = {"name": "v", "type": "stcp", "serverName": "s", "bindPort": 9000}
        self.client_fails({"visitors": [visitor, visitor]}, "visitors[1].name: duplicate visitor name 'v'")

    def test_visitorRules(self) -> None:
        self.client_fails(
            {"visitors": [{"type": "stcp"}, {"name": "x", "type": "vpn"}]},
            "visitors[0].name: required",
            "visitors[0].serverName: required",
            "visitors[0].bindPort: required",
            "visitors[1].type: unknown visitor type 'vpn'",
        )

    def test_auth(self) -> None:
        self.server_fails({"auth": {"method": "password"}}, "auth.method: must be one of token, oidc; got 'password'")
        self.client_fails(
            {"auth": {"additionalScopes": ["HeartBeats", "Everything"]}},
            "auth.additionalScopes[1]: must be one of HeartBeats, NewWorkConns; got 'Everything'",
        )

    def test_allowPorts(self) -> None:
        self.server_fails(
            {"allowPorts": [{"start": 7000, "end": 6000}, {"start": 1}, {"single": 0},
                            {"single": 5, "start": 5, "end": 6}, {"begin": 1}, 6000]},
            "allowPorts[0]: start (7000) must not be greater than end (6000)",
            "allowPorts[1].end: required",
            "allowPorts[2].single: port must be in 1..65535, got 0",
            "allowPorts[3]: use either {single} or {start, end}",
            "allowPorts[4].begin: unknown key",
            "allowPorts[5]: expected a mapping, got 6000",
        )

    def test_heartbeats(self) -> None:
        self.client_fails(
            {"transport": {"heartbeatInterval": 60, "heartbeatTimeout": 30}},
            "transport.heartbeatTimeout: must not be less than transport.heartbeatInterval",
        )
        # Negative values disable heartbeats and skip the comparison.
        config = parse_client_config({"transport": {"heartbeatInterval": -1, "heartbeatTimeout": -1}})
        self.assertEqual(config.transport.heartbeat_interval, -1)

    def test_poolCounts(self) -> None:
        self.client_fails({"transport": {"poolCount": -1}}, "transport.poolCount: must be >= 0, got -1")
        self.server_fails({"transport": {"maxPoolCount": -5}}, "transport.maxPoolCount: must be >= 0, got -5")

    def test_logLevel(self) -> None:
        self.server_fails({"log": {"level": "verbose"}}, "log.level: must be one of trace, debug, info, warn, error")

    def test_startNamesUnknownProxy(self) -> None:
        self.client_fails({"start": ["ssh", "nope"], "proxies": [tcp("ssh")]}, "start[1]: no proxy or visitor named 'nope'")

    def test_manyErrorsAtOnce(self) -> None:
        """All problems come back in one ConfigError, one line each, grouped by place."""
        error = self.client_fails(
            {
                "serverPort": "x",
                "bogus": 1,
                "log": {"level": "loud"},
                "proxies": [tcp("a", remotePrt=1), tcp("a", localPort=0)],
            },
        )
        self.assertEqual(
            error.errors,
            (
                ("bogus", "unknown key"),
                ("log.level", "must be one of trace, debug, info, warn, error; got 'loud'"),
                ("proxies[0].remotePrt", "unknown key (did you mean 'remotePort'?)"),
                ("proxies[1].localPort", "required (a port in 1..65535)"),
                ("proxies[1].name", "duplicate proxy name 'a'"),
                ("serverPort", "expected an integer, got 'x'"),
            ),
        )
        self.assertEqual(len(str(error).splitlines()), 6)

    def test_fileErrorsNameTheKeyPath(self) -> None:
        path = self.write("frpc.toml", '[[proxies]]\nname = "a"\ntype = "tcp"\nlocalPort = "22"\n')
        error = self.fails(lambda: load_client_config(path, env={}), "proxies[0].localPort: expected an integer, got '22'")
        self.assertEqual(error.source, path)


class UnsupportedTests(ConfigTestCase):
    """frp features frptx has not built are refused unless left at their default."""

    def test_proxyTypes(self) -> None:
        error = self.client_fails({"proxies": [{"name": "p", "type": "xtcp", "localPort": 53}]},
                                  "proxies[0].type: not supported by frptx yet")
        self.assertEqual(len(error.errors), 1)
        for vtype in ("http", "https", "tcpmux"):
            config = parse_client_config(
                {"proxies": [{"name": "w", "type": vtype, "localPort": 80, "customDomains": ["a.example"],
                              **({"multiplexer": "httpconnect"} if vtype == "tcpmux" else {})}]})
            self.assertEqual(config.proxies[0].type, vtype)
        for ptype in ("udp", "stcp", "sudp"):  # implemented
            config = parse_client_config({"proxies": [{"name": "p", "type": ptype, "localPort": 53}]})
            self.assertEqual(config.proxies[0].type, ptype)

    def test_vhostPort(self) -> None:
        self.server_fails({"quicBindPort": 7002}, "quicBindPort: not supported by frptx yet")
        self.assertEqual(parse_server_config({"tcpmuxHTTPConnectPort": 1337}).tcpmux_http_connect_port, 1337)
        self.assertEqual(parse_server_config({"vhostHTTPSPort": 8443}).vhost_https_port, 8443)
        self.assertEqual(parse_server_config({"vhostHTTPPort": 8080}).vhost_http_port, 8080)
        self.assertEqual(parse_server_config({"vhostHTTPPort": 0}).vhost_http_port, 0)

    def test_proxyEncryption(self) -> None:
        config = parse_client_config({"proxies": [tcp(transport={"useEncryption": True, "useCompression": True})]})
        self.assertTrue(config.proxies[0].transport.use_encryption)
        self.assertTrue(config.proxies[0].transport.use_compression)

    def test_bandwidthLimit(self) -> None:
        config = parse_client_config({"proxies": [tcp(transport={"bandwidthLimit": "1MB"}),
                                                  tcp("b", transport={"bandwidthLimit": "512KB",
                                                                      "bandwidthLimitMode": "server"})]})
        self.assertEqual([(p.transport.bandwidth_limit, p.transport.bandwidth_limit_mode) for p in config.proxies],
                         [("1MB", "client"), ("512KB", "server")])
        self.client_fails({"proxies": [tcp(transport={"bandwidthLimit": "1mb"}),
                                       tcp("b", transport={"bandwidthLimitMode": "both"})]},
                          "proxies[0].transport.bandwidthLimit: unit not support: '1mb'",
                          "proxies[1].transport.bandwidthLimitMode: bandwidth limit mode should be client or server")

    def test_proxyProtocolVersion(self) -> None:
        """v1 and v2 reach the model; anything else is refused at its key path (frp: "not support ...")."""
        for version in ("v1", "v2"):
            config = parse_client_config({"proxies": [tcp(transport={"proxyProtocolVersion": version})]})
            self.assertEqual(config.proxies[0].transport.proxy_protocol_version, version)
        self.assertEqual(parse_client_config({"proxies": [tcp()]}).proxies[0].transport.proxy_protocol_version, "")
        self.client_fails({"proxies": [tcp(transport={"proxyProtocolVersion": "v3"})]},
                          "proxies[0].transport.proxyProtocolVersion: not support proxy protocol version: v3")

    def test_healthCheck(self) -> None:
        check = {"type": "http", "timeoutSeconds": 2, "maxFailed": 4, "intervalSeconds": 5, "path": "/ok",
                 "httpHeaders": [{"name": "Host", "value": "svc"}]}
        hc = parse_client_config({"proxies": [tcp(healthCheck=check)]}).proxies[0].health_check
        self.assertEqual((hc.type, hc.timeout_seconds, hc.max_failed, hc.interval_seconds, hc.path, hc.http_headers),
                         ("http", 2, 4, 5, "/ok", (("Host", "svc"),)))
        self.client_fails({"proxies": [tcp(healthCheck={"type": "udp"}), tcp("b", healthCheck={"type": "http"})]},
                          "proxies[0].healthCheck.type: not support health check type: udp",
                          "proxies[1].healthCheck.path: health check path should not be empty")

    def test_visitors(self) -> None:
        config = parse_client_config({"visitors": [{"name": "v", "type": "stcp", "serverName": "s", "bindPort": 9000}]})
        self.assertEqual(config.visitors[0].server_name, "s")
        self.client_fails(
            {"visitors": [{"name": "v", "type": "xtcp", "serverName": "s", "bindPort": 9000}]},
            "visitors[0].type: not supported by frptx yet",
        )
        self.assertEqual(parse_client_config({"visitors": []}).visitors, ())

    def test_clientWide(self) -> None:
        self.client_fails(
            {"transport": {"protocol": "kcp", "wireProtocol": "v2"}, "auth": {"method": "oidc"}},
            "transport.protocol: not supported by frptx yet",
            "transport.wireProtocol: not supported by frptx yet",
            "auth.method: not supported by frptx yet",
        )
        self.assertEqual(parse_client_config({"webServer": {"port": 7400}}).web_server.port, 7400)
        config = parse_client_config(
            {"transport": {"protocol": "tcp", "wireProtocol": "v1"}, "auth": {"method": "token"},
             "webServer": {"port": 0}, "featureGates": {"VirtualNet": False}, "includes": []}
        )
        self.assertEqual(config.transport.protocol, "tcp")

    def test_httpPlugins(self) -> None:
        """frps's server plugins are typed entries, in order; an unknown op is refused."""
        config = parse_server_config({"httpPlugins": [
            {"name": "p", "addr": "a:1", "path": "/h", "ops": ["Login", "NewProxy"]},
            {"name": "q", "addr": "https://b", "path": "/", "ops": ["Ping"], "tlsVerify": True}]})
        self.assertEqual(config.http_plugins, (
            HTTPPluginConfig("p", "a:1", "/h", ("Login", "NewProxy"), False),
            HTTPPluginConfig("q", "https://b", "/", ("Ping",), True)))
        self.server_fails({"httpPlugins": [{"name": "p", "addr": "a", "ops": ["Login", "Logout"]}]},
                          "httpPlugins[0].ops[1]: must be one of")

    def test_serverWide(self) -> None:
        self.server_fails({"kcpBindPort": 7000}, "kcpBindPort: not supported by frptx yet")
        parse_server_config({"enablePrometheus": False, "httpPlugins": [], "webServer": {"port": 0}})
        web = parse_server_config({"bindPort": 7000, "enablePrometheus": True, "webServer": {
            "port": 7500, "user": "u", "password": "p", "tls": {"certFile": "c.pem", "keyFile": "k.pem"}}})
        self.assertEqual((web.enable_prometheus, web.web_server.port, web.web_server.tls_cert_file,
                          web.web_server.tls_key_file), (True, 7500, "c.pem", "k.pem"))
        self.server_fails({"bindPort": 7500, "webServer": {"port": 7500}},
                          "webServer.port: 7500 is also bindPort; the dashboard needs a port of its own")

    def test_unsupportedAndInvalidTogether(self) -> None:
        """Unsupported features do not hide ordinary errors (or vice versa)."""
        self.client_fails(
            {"dnsServer": "8.8.8.8", "proxies": [tcp(), tcp("b", localPort="x")]},
            "dnsServer: not supported by frptx yet",
            "proxies[1].localPort: expected an integer",
        )

    def test_loadBalancingGroups(self) -> None:
        """Groups load (and reach NewProxy) on tcp and on the vhost-routed types."""
        config = parse_client_config({"proxies": [
            tcp(loadBalancer={"group": "web", "groupKey": "k"}),
            {"name": "h", "type": "http", "customDomains": ["a"], "localPort": 1,
             "loadBalancer": {"group": "g1", "groupKey": "k1"}},
            {"name": "s", "type": "https", "customDomains": ["a"], "localPort": 1,
             "loadBalancer": {"group": "g2", "groupKey": "k2"}},
            {"name": "m", "type": "tcpmux", "multiplexer": "httpconnect", "customDomains": ["a"],
             "localPort": 1, "loadBalancer": {"group": "g3", "groupKey": "k3"}}]})
        self.assertEqual([(p.load_balancer.group, p.load_balancer.group_key) for p in config.proxies],
                         [("web", "k"), ("g1", "k1"), ("g2", "k2"), ("g3", "k3")])

    def test_droppingRowEnablesFeature(self) -> None:
        """Removing a row from UNSUPPORTED_FEATURES is all it takes to accept a feature."""
        data = {"proxies": [{"name": "w", "type": "xtcp", "localPort": 80, "secretKey": "k"}],
                "visitors": [{"name": "v", "type": "xtcp", "serverName": "w", "secretKey": "k", "bindPort": 9001}]}
        self.client_fails(data, "proxies[0].type: not supported", "visitors[0].type: not supported")
        rows = tuple(
            row for row in UNSUPPORTED_FEATURES
            if not (row.pattern == "proxies[*].type" and row.active("xtcp"))
            and not (row.pattern == "visitors[*].type" and row.active("xtcp"))
        )
        self.assertEqual(len(rows), len(UNSUPPORTED_FEATURES) - 2)
        self.patch(schema, "UNSUPPORTED_FEATURES", rows)
        config = parse_client_config(data)
        self.assertEqual((config.proxies[0].type, config.proxies[0].secret_key), ("xtcp", "k"))  # type: ignore[attr-defined]
        self.assertEqual((config.visitors[0].type, config.visitors[0].server_name), ("xtcp", "w"))


class RealisticConfigTests(ConfigTestCase):
    """frp-protocol.md §8.1's example files, with unsupported features removed."""

    FRPS = """\
bindPort: 7000
subDomainHost: frp.example.com
auth:
  method: token
  token: abc
transport:
  tcpMux: true
  maxPoolCount: 5
allowPorts:
  - start: 6000
    end: 6100
  - single: 3389
maxPortsPerClient: 10
webServer:
  addr: 127.0.0.1
  user: admin
  password: admin
"""

    FRPC = """\
serverAddr: 127.0.0.1
serverPort: 7000
loginFailExit: true
auth:
  method: token
  token: abc
transport:
  protocol: tcp
  tcpMux: true
  poolCount: 1
  heartbeatInterval: 30       # needed against v0.31.2 frps
  heartbeatTimeout: 90
  tls:
    enable: false             # or: enable: true + disableCustomTLSFirstByte: false for v0.31.2
proxies:
  - name: ssh
    type: tcp
    localIP: 127.0.0.1
    localPort: 22
    remotePort: 6000
    transport:
      useEncryption: false
      useCompression: false
  - name: rdp
    type: tcp
    localPort: 3389
    remotePort: 3389
    metadatas:
      owner: ops
"""

    def test_server(self) -> None:
        config = load_server_config(self.write("frps.yaml", self.FRPS), env={})
        self.assertEqual(config.bind_port, 7000)
        self.assertEqual(config.auth.token, "abc")
        self.assertEqual(config.allow_ports, (PortRange(6000, 6100), PortRange(3389, 3389)))
        self.assertEqual(config.max_ports_per_client, 10)
        self.assertEqual(config.subdomain_host, "frp.example.com")
        self.assertTrue(config.port_allowed(3389))

    def test_client(self) -> None:
        config = load_client_config(self.write("frpc.yaml", self.FRPC), env={})
        self.assertEqual((config.server_addr, config.server_port), ("127.0.0.1", 7000))
        self.assertFalse(config.transport.tls.enable)
        self.assertEqual([p.name for p in config.active_proxies()], ["ssh", "rdp"])
        self.assertEqual(config.proxies[1].metadatas, {"owner": "ops"})

    def test_fullExampleLoads(self) -> None:
        """The unedited §8.1 frpc example (with its http proxy) loads."""
        text = self.FRPC.replace("useEncryption: false", "useEncryption: true") + """\
  - name: web
    type: http
    localPort: 80
    customDomains: ["www.example.com"]
    subdomain: app
    locations: ["/", "/api"]
    httpUser: u
    httpPassword: p
    hostHeaderRewrite: backend.local
    requestHeaders:
      set:
        x-from-where: frp
  - name: dns
    type: udp
    localIP: 127.0.0.1
    localPort: 53
    remotePort: 6053
  - name: secret-ssh
    type: stcp
    secretKey: s3cret
    localPort: 22
visitors:
  - name: secret-ssh-visitor
    type: stcp
    serverName: secret-ssh
    secretKey: s3cret
    bindAddr: 127.0.0.1
    bindPort: 9000
"""
        path = self.write("frpc.yaml", text)
        config = load_client_config(path, env={})
        web = config.proxies[2]
        self.assertEqual((web.type, web.locations, web.request_headers),  # type: ignore[attr-defined]
                         ("http", ("/", "/api"), {"x-from-where": "frp"}))


class VisitorModelTests(ConfigTestCase):
    """Visitors parse into VisitorConfig once their type is enabled."""

    def test_visitorFields(self) -> None:
        rows = tuple(r for r in UNSUPPORTED_FEATURES if not r.pattern.startswith("visitors"))
        self.patch(schema, "UNSUPPORTED_FEATURES", rows)
        config = parse_client_config(
            {"visitors": [{"name": "v", "type": "stcp", "serverName": "secret-ssh", "secretKey": "k",
                           "bindPort": 9000, "transport": {"useEncryption": True}}]}
        )
        self.assertEqual(
            config.visitors[0],
            VisitorConfig(name="v", type="stcp", server_name="secret-ssh", secret_key="k", bind_port=9000,
                          transport=dataclasses.replace(config.visitors[0].transport, use_encryption=True)),
        )
        self.assertEqual(config.visitors[0].bind_addr, "127.0.0.1")
        self.assertIsInstance(config, ClientConfig)
