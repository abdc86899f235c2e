# -*- test-case-name: frptx.test.test_web_metrics -*-
"""frps' Prometheus endpoint: frp's families (names, types, labels) and values read from the state at scrape time."""
from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial import unittest

from frptx.test.web_fakes import scenario
from frptx.test.web_support import golden, serve
from frptx.web.metrics import exposition, make_registry
from frptx.web.server import frps_site


def families(text: str) -> dict[str, tuple[str, set[frozenset[str]]]]:
    """frp_* families by name: type and the label-name sets of their samples."""
    return {f.name: (f.type, {frozenset(s.labels) for s in f.samples})
            for f in text_string_to_metric_families(text) if f.name.startswith("frp_")}


def values(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


class MetricsTests(unittest.TestCase):
    def setUp(self) -> None:
        self.state = scenario()
        self.served = serve(self, frps_site(self.state, enable_prometheus=True))

    async def test_same_families_as_frp(self) -> None:
        gold = golden("frps")["metrics"]
        r = await self.served.request("/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["content-type"].startswith("text/plain; version=0.0.4"))
        self.assertEqual(families(r.body.decode()), families(gold["body"]))
        # Go's text: a counter's samples carry the family's own name, no "_total"
        self.assertIn(b'\nfrp_server_traffic_in{name="alice.ssh",type="tcp"} 6000\n', r.body)
        self.assertIn(b"\n# TYPE frp_server_traffic_in counter\n", r.body)
        self.assertIn(b"\nprocess_", r.body)

    async def test_values_follow_state(self) -> None:
        v = values((await self.served.request("/metrics")).body.decode())
        self.assertEqual(v[("frp_server_client_counts", frozenset())], 1)
        self.assertEqual(v[("frp_server_proxy_counts", frozenset({("type", "tcp")}))], 2)
        self.assertEqual(v[("frp_server_proxy_counts_detailed", frozenset({("type", "tcp"), ("name", "gone")}))], 0)
        self.assertEqual(v[("frp_server_connection_counts", frozenset({("type", "tcp"), ("name", "alice.ssh")}))], 1)
        self.assertEqual(v[("frp_server_traffic_out_total", frozenset({("type", "tcp"), ("name", "alice.ssh")}))],
                         71000)
        # a scrape reads the state now: new traffic shows without any per-byte hook
        self.state.add_traffic("alice.ssh", 0, 1, 2)
        v = values((await self.served.request("/metrics")).body.decode())
        self.assertEqual(v[("frp_server_traffic_in_total", frozenset({("type", "tcp"), ("name", "alice.ssh")}))],
                         6001)

    async def test_disabled(self) -> None:
        site = frps_site(scenario())
        served = serve(self, site)
        r = await served.request("/metrics")
        self.assertEqual(r.status, 404)

    def test_label_escaping(self) -> None:
        from frptx.web.state import ProxyConf

        st = scenario()
        st.add_proxy(ProxyConf('we"ird\\n\name', "tcp"))
        text = exposition(make_registry(st, process_metrics=False).collect()).decode()
        names = {s.labels.get("name") for f in text_string_to_metric_families(text) for s in f.samples}
        self.assertIn('we"ird\\n\name', names)
        json.dumps(text)
