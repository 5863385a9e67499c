"""Prometheus metrics of one gateway (its own registry, so several gateways fit in a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from robostream.gctuning import GC_PAUSES

PREFIX = "robostream_gateway"
ACK_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
)
LOOP_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)


class GatewayMetrics:
    """Every metric the gateway exports on ``GET /metrics``."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.registry.register(GC_PAUSES)
        r = self.registry
        self.connections = Gauge(f"{PREFIX}_connections", "Open robot connections.",
                                 ["transport"], registry=r)
        self.connections_rejected = Counter(
            f"{PREFIX}_connections_rejected_total", "Connections refused, by reason.",
            ["transport", "reason"], registry=r)
        self.frames = Counter(f"{PREFIX}_frames_total", "Frames (batches) received.",
                              ["transport", "format"], registry=r)
        self.received_bytes = Counter(f"{PREFIX}_received_bytes_total", "Frame bytes received.",
                                      ["transport"], registry=r)
        self.accepted = Counter(f"{PREFIX}_envelopes_accepted_total",
                                "Envelopes Kafka durably took, by data type.", ["data_type"], registry=r)
        self.rejected = Counter(f"{PREFIX}_envelopes_rejected_total",
                                "Envelopes (or whole frames) rejected, by code.", ["code"], registry=r)
        self.dlq_records = Counter(f"{PREFIX}_dlq_records_total", "Records written to the DLQ.",
                                   ["code"], registry=r)
        self.rate_limited = Counter(
            f"{PREFIX}_rate_limited_total",
            "Batches nacked rate_limited (robot over gateway.max_messages_per_s_per_robot).",
            ["robot", "transport"], registry=r)
        self.rate_limited_messages = Counter(
            f"{PREFIX}_rate_limited_messages_total", "Envelopes of the batches nacked rate_limited.",
            ["robot", "transport"], registry=r)
        self.inflight_bytes = Gauge(f"{PREFIX}_inflight_bytes",
                                    "Bytes received and not yet acked (all connections).", registry=r)
        self.inflight_limit = Gauge(f"{PREFIX}_inflight_bytes_limit", "Bound on in-flight bytes.",
                                    registry=r)
        self.slow_downs = Counter(f"{PREFIX}_slow_down_total",
                                  "Times a connection stopped reading (slow_down sent or HTTP 429).",
                                  ["transport", "scope"], registry=r)
        self.ack_latency = Histogram(f"{PREFIX}_ack_latency_seconds",
                                     "Frame received -> ack sent (after Kafka's delivery reports).",
                                     ["transport"], buckets=ACK_LATENCY_BUCKETS, registry=r)
        self.ingest_cpu = Histogram(f"{PREFIX}_ingest_seconds",
                                    "Event-loop time to validate, encode and hand one frame's records "
                                    "to the producer (the frame's CPU cost on the loop).",
                                    buckets=LOOP_BUCKETS, registry=r)
        self.loop_hold = Histogram(f"{PREFIX}_loop_hold_seconds",
                                   "Longest stretch one frame's ingest held the event loop without "
                                   "letting other connections run.", buckets=LOOP_BUCKETS, registry=r)
        self.ingest_envelopes = Counter(f"{PREFIX}_ingest_envelopes_total",
                                        "Envelopes in the frames of robostream_gateway_ingest_seconds.",
                                        registry=r)
        self.claim_checks = Counter(f"{PREFIX}_claim_checks_total", "Payloads moved to S3.", registry=r)
        self.claim_check_bytes = Counter(f"{PREFIX}_claim_check_bytes_total", "Bytes moved to S3.",
                                         registry=r)
        self.kafka_errors = Counter(f"{PREFIX}_kafka_errors_total", "Failed delivery reports.",
                                    ["error"], registry=r)
        self.auth_failures = Counter(f"{PREFIX}_auth_failures_total", "Rejected tokens.",
                                     ["transport"], registry=r)
        self.rpc = Counter(f"{PREFIX}_rpc_total", "RPC requests and responses, by outcome.",
                           ["outcome"], registry=r)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
