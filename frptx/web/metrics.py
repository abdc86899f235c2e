# -*- test-case-name: frptx.test.test_web_metrics -*-
"""
frps' Prometheus endpoint (C{/metrics}, with C{enablePrometheus = true}).

Same metric names, types and labels as frp (C{pkg/metrics/prometheus/server.go}):

  - C{frp_server_client_counts} gauge
  - C{frp_server_proxy_counts{type}} gauge
  - C{frp_server_proxy_counts_detailed{name,type}} gauge (1 online, 0 offline)
  - C{frp_server_connection_counts{name,type}} gauge
  - C{frp_server_traffic_in{name,type}} / C{frp_server_traffic_out{name,type}} counters

Instead of updating metric objects on every connection and every byte, a
custom collector reads L{FrpsState} when Prometheus scrapes: the data path does
no extra work at all.

frp's counters are exposed by Go's client without the C{_total} suffix, and
dashboards query C{frp_server_traffic_in}; C{prometheus_client}'s own text
writer would rename them C{..._total}.  So we collect with C{prometheus_client}
(families, registry, process metrics) but write the text format ourselves, the
way Go does.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from decimal import Decimal

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from twisted.web import resource, server

from frptx.web.state import FrpsState

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class FrpsCollector:
    """A C{prometheus_client} collector reading frp's metrics from an L{FrpsState} at scrape time."""

    def __init__(self, state: FrpsState) -> None:
        self._state = state

    def describe(self) -> list[Metric]:
        # no describe-time sampling: registering must not call into the server
        return []

    def collect(self) -> Iterator[Metric]:
        stats = self._state.server_stats()
        proxies = sorted(self._state.proxies(), key=lambda p: (p.type, p.name))
        clients = GaugeMetricFamily("frp_server_client_counts", "The current client counts of frps")
        clients.add_metric([], stats.client_counts)
        yield clients
        counts = GaugeMetricFamily("frp_server_proxy_counts", "The current proxy counts", labels=["type"])
        for ptype, n in sorted(stats.proxy_type_counts.items()):
            counts.add_metric([ptype], n)
        yield counts
        detailed = GaugeMetricFamily("frp_server_proxy_counts_detailed",
                                     "The current number of proxies grouped by type and name",
                                     labels=["type", "name"])
        conns = GaugeMetricFamily("frp_server_connection_counts", "The current connection counts",
                                  labels=["name", "type"])
        t_in = CounterMetricFamily("frp_server_traffic_in", "The total in traffic", labels=["name", "type"])
        t_out = CounterMetricFamily("frp_server_traffic_out", "The total out traffic", labels=["name", "type"])
        for p in proxies:
            detailed.add_metric([p.type, p.name], 1 if p.online else 0)
            conns.add_metric([p.name, p.type], p.cur_conns)
            t_in.add_metric([p.name, p.type], p.total_traffic_in)
            t_out.add_metric([p.name, p.type], p.total_traffic_out)
        yield from (detailed, conns, t_in, t_out)


def make_registry(state: FrpsState, process_metrics: bool = True) -> CollectorRegistry:
    """
    A registry of its own (not the global one: two frps in one process, as in the
    tests, must not mix) with frp's metrics and, like Go's default, C{process_*}.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FrpsCollector(state))
    if process_metrics:
        ProcessCollector(registry=registry)
    return registry


def go_float(v: float) -> str:
    """
    A sample value as Go's C{strconv.FormatFloat(v, 'g', -1, 64)} writes it (what frp's
    exporter emits): shortest digits, an exponent from 1e+06 on, so "1000" and not "1000.0".
    """
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "-0" if math.copysign(1, v) < 0 else "0"
    sign, digits, exponent = Decimal(repr(float(v))).normalize().as_tuple()
    assert isinstance(exponent, int)
    mantissa = "".join(map(str, digits))
    exp10 = len(digits) + exponent - 1
    prefix = "-" if sign else ""
    if exp10 < -4 or exp10 >= 6:
        frac = mantissa[1:]
        return f"{prefix}{mantissa[0]}{'.' + frac if frac else ''}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    return prefix + format(Decimal(mantissa).scaleb(exponent), "f")


def _escape_help(s: str) -> str:
    return s.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(s: str) -> str:
    return s.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def exposition(metrics: Iterable[Metric]) -> bytes:
    """
    Prometheus text format 0.0.4 the way Go's client writes it: a counter's
    samples keep the family's own name (no C{_total} added), families sorted by name.
    """
    lines: list[str] = []
    for metric in sorted(metrics, key=lambda m: m.name):
        if not metric.samples:
            continue
        mtype = metric.type if metric.type in ("counter", "gauge", "histogram", "summary") else "untyped"
        lines.append(f"# HELP {metric.name} {_escape_help(metric.documentation)}")
        lines.append(f"# TYPE {metric.name} {mtype}")
        for s in metric.samples:
            name = s.name
            if metric.type == "counter":
                if name.endswith("_created"):
                    continue
                if name.endswith("_total") and not metric.name.endswith("_total"):
                    name = name[: -len("_total")]
            labels = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(s.labels.items()))
            lines.append(f"{name}{{{labels}}} {go_float(s.value)}" if labels
                         else f"{name} {go_float(s.value)}")
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


class MetricsResource(resource.Resource):
    """C{GET /metrics}: scrape the registry now and write the text format."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self._registry = registry

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE)
        return exposition(self._registry.collect())
