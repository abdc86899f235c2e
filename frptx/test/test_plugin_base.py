"""The plugin registry and option checking."""
from __future__ import annotations

from twisted.trial.unittest import TestCase

from frptx.client.plugins import PLUGINS, PluginConfigError, create_plugin


class RegistryTests(TestCase):
    def test_frp_plugin_names(self) -> None:
        """Every frp 0.65.0 plugin type except virtual_net is registered under its frp name."""
        self.assertEqual(sorted(PLUGINS), sorted([
            "unix_domain_socket", "http_proxy", "socks5", "static_file", "http2http", "http2https",
            "https2http", "https2https", "tls2raw"]))
        self.assertEqual(PLUGINS["static_file"].option_names,
                         ("localPath", "stripPrefix", "httpUser", "httpPassword"))
        self.assertIn("enableHTTP2", PLUGINS["https2http"].option_names)
        self.assertNotIn("enableHTTP2", PLUGINS["http2http"].option_names)

    def test_unknown_type(self) -> None:
        with self.assertRaises(PluginConfigError) as e:
            create_plugin({"type": "nope"}, "proxies[0].plugin")
        self.assertEqual(e.exception.path, "proxies[0].plugin.type")

    def test_unknown_key_has_its_path(self) -> None:
        with self.assertRaises(PluginConfigError) as e:
            create_plugin({"type": "socks5", "user": "x"}, "proxies[2].plugin")
        self.assertEqual(e.exception.path, "proxies[2].plugin.user")

    def test_required_key(self) -> None:
        with self.assertRaises(PluginConfigError) as e:
            create_plugin({"type": "unix_domain_socket"})
        self.assertEqual(e.exception.path, "plugin.unixPath")

    def test_bad_local_addr(self) -> None:
        with self.assertRaises(PluginConfigError) as e:
            create_plugin({"type": "http2http", "localAddr": "nohost"})
        self.assertEqual(e.exception.path, "plugin.localAddr")

    def test_bad_request_headers(self) -> None:
        with self.assertRaises(PluginConfigError) as e:
            create_plugin({"type": "http2http", "localAddr": "127.0.0.1:80", "requestHeaders": {"set": {"a": 1}}})
        self.assertEqual(e.exception.path, "plugin.requestHeaders.set")

    def test_missing_certificate_file(self) -> None:
        with self.assertRaises(PluginConfigError) as e:
            create_plugin({"type": "tls2raw", "localAddr": "127.0.0.1:80", "crtPath": "/nonexistent.crt",
                           "keyPath": "/nonexistent.key"})
        self.assertIn("/nonexistent.crt", str(e.exception))

    def test_options_kept(self) -> None:
        plugin = create_plugin({"type": "socks5", "username": "u", "password": "p"})
        self.assertEqual(plugin.options, {"username": "u", "password": "p"})
