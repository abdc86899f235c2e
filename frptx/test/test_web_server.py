# -*- test-case-name: frptx.test.test_web_server -*-
"""Building and serving the web sites: static pages, redirects, assetsDir, the config type, TLS."""
from __future__ import annotations

import datetime
import gzip
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import reactor
from twisted.trial import unittest

from frptx.config.model import WebServerConfig
from frptx.test.web_fakes import FakeFrpcState, scenario
from frptx.test.web_support import Served, serve
from frptx.web.server import default_assets_dir, frps_site, listen, site_from_config


class StaticTests(unittest.TestCase):
    def setUp(self) -> None:
        self.served = serve(self, frps_site(scenario()))

    async def test_shipped_pages(self) -> None:
        for kind in ("frps", "frpc"):
            for name in ("index.html", "app.js", "style.css"):
                self.assertTrue(os.path.isfile(os.path.join(default_assets_dir(kind), name)), (kind, name))
        r = await self.served.request("/static/")
        self.assertEqual(r.status, 200)
        self.assertIn(b'<script src="app.js"></script>', r.body)
        r = await self.served.request("/static/app.js")
        self.assertEqual(r.status, 200)
        self.assertIn(b"/api/serverinfo", r.body)

    async def test_gzip(self) -> None:
        r = await self.served.request("/static/app.js", headers={"Accept-Encoding": "gzip"})
        self.assertEqual(r.headers.get("content-encoding"), "gzip")
        self.assertIn(b"/api/serverinfo", gzip.decompress(r.body))

    async def test_missing_static_file(self) -> None:
        r = await self.served.request("/static/nosuch.js")
        self.assertEqual(r.status, 404)

    async def test_assets_dir_overrides(self) -> None:
        assets = self.mktemp()
        os.makedirs(assets)
        with open(os.path.join(assets, "index.html"), "w") as f:
            f.write("<p>custom</p>")
        web = WebServerConfig(port=1, user="", password="", assets_dir=assets)
        served = serve(self, site_from_config("frps", scenario(), web))
        r = await served.request("/static/")
        self.assertEqual(r.body, b"<p>custom</p>")

    async def test_config_auth(self) -> None:
        web = WebServerConfig(port=1, user="u", password="p")
        served = serve(self, site_from_config("frpc", FakeFrpcState(), web))
        self.assertEqual((await served.request("/api/status")).status, 401)
        self.assertEqual((await served.request("/api/status", auth=("u", "p"))).status, 200)
        self.assertEqual((await served.request("/healthz")).status, 200)


def self_signed(directory: str) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_file, key_file = os.path.join(directory, "web.crt"), os.path.join(directory, "web.key")
    with open(cert_file, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_file, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_file, key_file


class ListenTests(unittest.TestCase):
    async def test_plain(self) -> None:
        port = await listen(frps_site(scenario()), reactor, "127.0.0.1", 0)
        self.addCleanup(port.stopListening)
        served = Served(port.getHost().port)  # type: ignore[attr-defined]
        r = await served.request("/healthz")
        self.assertEqual(r.status, 200)

    async def test_tls(self) -> None:
        """webServer.tls.certFile/keyFile: the dashboard over HTTPS."""
        d = self.mktemp()
        os.makedirs(d)
        cert, key = self_signed(d)
        port = await listen(frps_site(scenario()), reactor, "127.0.0.1", 0, cert_file=cert, key_file=key)
        self.addCleanup(port.stopListening)
        served = Served(port.getHost().port, tls=True)  # type: ignore[attr-defined]
        r = await served.request("/api/serverinfo")
        self.assertEqual((r.status, r.json()["version"]), (200, "0.65.0"))
