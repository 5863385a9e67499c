"""Prometheus metrics of the schema registry (``GET /metrics``): requests and schemas."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from robostream.gctuning import GC_PAUSES
from robostream.httpserver import measured, route_of
from robostream.schemas.registry.state import RegistryState

PREFIX = "robostream_schema_registry"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _StateCollector(Collector):
    def __init__(self, state: RegistryState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        schemas, subjects = self.state.counts()
        yield GaugeMetricFamily(f"{PREFIX}_schemas", "Distinct schemas (ids) the registry holds.",
                                value=schemas)
        yield GaugeMetricFamily(f"{PREFIX}_subjects", "Subjects with a live (not deleted) version.",
                                value=subjects)


class RegistryMetrics:
    """Every metric the registry exports; :meth:`middleware` counts and times the requests."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, state: RegistryState) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(GC_PAUSES)
        r = self.registry
        self.requests = Counter(f"{PREFIX}_requests_total", "HTTP requests answered, by method, route "
                                "and status.", ["method", "route", "status"], registry=r)
        self.latency = Histogram(f"{PREFIX}_request_seconds", "Time to answer a request, by route.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        r.register(_StateCollector(state))

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count and time every request but ``/metrics`` (outermost: sees the final status)."""
        if request.path == "/metrics":
            return await handler(request)
        route = route_of(request)

        def done(status: int, seconds: float) -> None:
            self.requests.labels(request.method, route, str(status)).inc()
            self.latency.labels(route).observe(seconds)

        return await measured(request, handler, done)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
