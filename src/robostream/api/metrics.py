"""Prometheus metrics of the ML-Dash API (``GET /metrics``): live fan-out and query latency.

The live hub's numbers are read at scrape time; requests are counted and timed by
:meth:`ApiMetrics.middleware` per route (its template, e.g. ``/v1/stats/{metric}``). A streamed
answer (``/v1/telemetry``) is timed until its last byte is written. ``/v1/live`` WebSockets,
``/metrics`` and static files are not timed: they are not queries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from robostream.api.errors import Handler
from robostream.api.live import LiveHub
from robostream.gctuning import GC_PAUSES
from robostream.httpserver import measured, route_of

PREFIX = "robostream_api"
QUERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
UNTIMED = frozenset({"/v1/live", "/metrics", "/"})


class _LiveCollector(Collector):
    def __init__(self, hub: Callable[[], LiveHub | None]) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        hub = self.hub()
        yield GaugeMetricFamily(f"{PREFIX}_live_clients", "Live WebSocket clients connected.",
                                value=hub.clients() if hub else 0)
        yield GaugeMetricFamily(f"{PREFIX}_live_channels", "Redis channels the live hub listens to.",
                                value=len(hub.channels) if hub else 0)
        yield CounterMetricFamily(f"{PREFIX}_live_messages_received", "Redis pub/sub messages the live "
                                  "hub received for a subscribed channel.", value=hub.messages if hub else 0)
        yield CounterMetricFamily(f"{PREFIX}_live_messages_forwarded", "Messages queued to live "
                                  "clients (one per client a message fans out to).",
                                  value=hub.forwarded if hub else 0)


class ApiMetrics:
    """Every metric the API exports."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, hub: Callable[[], LiveHub | None]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(GC_PAUSES)
        r = self.registry
        self.requests = Counter(f"{PREFIX}_requests_total", "HTTP requests answered, by route and status.",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram(f"{PREFIX}_query_seconds", "Time to answer a query, by route (streamed "
                                 "answers: until the last byte).", ["route"], buckets=QUERY_BUCKETS,
                                 registry=r)
        r.register(_LiveCollector(hub))

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count every request; time the queries (outermost: sees the final status)."""
        route = route_of(request)
        if route.startswith("/static") or request.method == "OPTIONS":
            return await handler(request)

        def done(status: int, seconds: float) -> None:
            if route != "/metrics":
                self.requests.labels(request.method, route, str(status)).inc()
            if route not in UNTIMED and route != "unmatched":
                self.latency.labels(route).observe(seconds)

        return await measured(request, handler, done)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
