"""Gateway benchmark: messages/s, MB/s and ack latency through ``robostream gateway``, beside
confluent-kafka producing the same records directly (the ceiling), in the same run.

For each workload (``time_series``: 100 Hz telemetry, 10 samples per envelope, packed columns
as the robot SDK sends them; ``time_series_lists``: the same samples as lists of floats;
``images``: 32 KiB blobs) and each number of concurrent robot connections (1, 10, 50):

* ``gateway``: a real gateway (its own process, ``python -m`` the CLI app, plain TCP) on the
  configured Kafka and schema registry; each robot sends 100-envelope MessagePack batches over
  WebSocket with up to ``--window`` unacked batches and times each ack (send -> ack, i.e. after
  Kafka's delivery reports);
* ``direct``: one confluent-kafka producer with the gateway's settings (idempotent, acks=all,
  same compression and linger) producing the very Kafka records the gateway makes (already
  Avro-encoded), timed from the first ``produce`` to the end of ``flush`` — the ceiling;
* ``pipeline``: the gateway's per-frame work in one process without network: ``decode_frame``
  (validation) + ``encode_record`` + ``produce`` — the codec's share of the gap.

Prints a table and writes ``bench/results/gateway.json``. Runs against the Kafka and registry of
the configuration (``ROBOSTREAM_*`` variables, e.g. the test stack's).

    python bench/gateway.py            # a few minutes on 2 shared cores
    python bench/gateway.py --quick    # tiny input, seconds (the smoke test)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import _common
import aiohttp
import msgpack
import yaml
from _common import Service, free_port, percentile, write_json
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from robostream.config import Settings, load_settings
from robostream.gateway import hash_token
from robostream.gateway.producer import producer_config
from robostream.schemas import (
    ConfluentSchemaResolver,
    DataType,
    Envelope,
    KafkaRecord,
    build_envelope,
    decode_frame,
    encode_frame,
    encode_record,
)
from robostream.schemas.examples import time_series_payload
from robostream.schemas.packed import pack_time_series
from robostream.topics import catalogue, create_topics, topic_for

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "gateway.json"
BATCH = 100
POOL = 4  # distinct frames per robot, sent in turn (seq ranges repeat: harmless for throughput)


# -- workloads -------------------------------------------------------------------------------------


def payload_for(workload: str, image_bytes: int) -> tuple[DataType, dict[str, Any]]:
    if workload == "time_series":  # what the robot SDK sends: packed columns
        return DataType.TIME_SERIES, pack_time_series(time_series_payload(10))
    if workload == "time_series_lists":  # columns as MessagePack lists of floats (JSON's shape)
        return DataType.TIME_SERIES, time_series_payload(10)
    blob = {"format": "jpeg", "content": os.urandom(image_bytes)}
    return DataType.IMAGES, {"camera_id": "front", "kind": "rgb", "width": 640, "height": 360, "blob": blob}


def robot_envelopes(
    robot: str, session: str, workload: str, image_bytes: int, count: int, first_seq: int = 0
) -> list[Envelope]:
    data_type, payload = payload_for(workload, image_bytes)
    start = time.time()
    return [
        build_envelope(
            data_type,
            payload,
            robot_id=robot,
            session_id=session,
            seq=first_seq + i,
            timestamp=start + i / 100,
        )
        for i in range(count)
    ]


def robot_frames(robot: str, session: str, workload: str, image_bytes: int, batch: int) -> list[bytes]:
    frames = []
    for k in range(POOL):
        envelopes = robot_envelopes(robot, session, workload, image_bytes, batch, first_seq=k * batch)
        frames.append(encode_frame(envelopes))
    return frames


# -- the gateway process ---------------------------------------------------------------------------


@dataclass
class GatewayProcess:
    """``robostream gateway`` in a child process, on a bench topic prefix, with bench robots."""

    settings: Settings
    prefix: str
    robots: dict[str, str]
    folder: Path
    port: int = field(default_factory=free_port)
    service: Service | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/stream"

    def start(self, timeout: float = 60) -> None:
        tokens = self.folder / "tokens.yaml"
        tokens.write_text(yaml.safe_dump({robot: hash_token(token) for robot, token in self.robots.items()}))
        env = {
            "ROBOSTREAM_TOPICS__PREFIX": self.prefix,
            "ROBOSTREAM_AUTH__TOKENS_FILE": str(tokens),
            "ROBOSTREAM_GATEWAY__PORT": str(self.port),
        }
        self.service = Service("gateway", ["gateway"], self.folder, env,
                               health_url=f"http://127.0.0.1:{self.port}/healthz").start(timeout)

    def cpu_seconds(self) -> float:
        assert self.service is not None
        return self.service.cpu_seconds()

    def loop_metrics(self) -> dict[str, Any]:
        """The gateway's own ingest histograms (cumulative since it started)."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10).read().decode()
        out: dict[str, Any] = {"hold_buckets": {}}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "robostream_gateway_ingest_seconds_sum":
                    out["ingest_seconds"] = sample.value
                elif sample.name == "robostream_gateway_ingest_envelopes_total":
                    out["envelopes"] = sample.value
                elif sample.name == "robostream_gateway_loop_hold_seconds_bucket":
                    out["hold_buckets"][float(sample.labels["le"])] = sample.value
        return out

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()


def loop_figures(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Event-loop time per envelope and the longest hold (p99 / max bucket bound) of a scenario."""
    envelopes = after.get("envelopes", 0) - before.get("envelopes", 0)
    seconds = after.get("ingest_seconds", 0) - before.get("ingest_seconds", 0)
    counts = sorted((le, n - before["hold_buckets"].get(le, 0)) for le, n in after["hold_buckets"].items())
    frames = counts[-1][1] if counts else 0
    p99 = next((le for le, n in counts if frames and n >= 0.99 * frames), float("nan"))
    longest = next((le for le, n in counts if frames and n >= frames), float("nan"))
    return {"loop_us_per_envelope": 1e6 * seconds / envelopes if envelopes else float("nan"),
            "loop_hold_p99_ms": 1000 * p99, "loop_hold_max_ms": 1000 * longest}


# -- gateway clients -------------------------------------------------------------------------------


async def run_robot(
    url: str, token: str, frames: list[bytes], count: int, window: int, latencies: list[float]
) -> int:
    """Send ``count`` frames (cycling ``frames``), at most ``window`` unacked; returns envelopes acked."""
    sent_at: dict[int, float] = {}
    slots = asyncio.Semaphore(window)
    done = asyncio.Event()
    acked = 0

    async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
        nonlocal acked
        async for msg in ws:
            message = msgpack.unpackb(msg.data)
            if message["type"] != "ack":
                continue
            latencies.append(time.perf_counter() - sent_at.pop(message["batch"]))
            acked += message["count"]
            slots.release()
            if message["batch"] == count:
                done.set()
                return

    async with (
        aiohttp.ClientSession() as client,
        client.ws_connect(
            url,
            headers={"Authorization": f"Bearer {token}"},
            max_msg_size=0,
            compress=0,
        ) as ws,
    ):
        reader = asyncio.create_task(read(ws))
        for batch in range(1, count + 1):
            await slots.acquire()
            sent_at[batch] = time.perf_counter()
            await ws.send_bytes(frames[(batch - 1) % len(frames)])
        await asyncio.wait_for(done.wait(), 300)
        await reader
    return acked


async def gateway_scenario(
    gateway: GatewayProcess,
    tokens: dict[str, str],
    frames: dict[str, list[bytes]],
    connections: int,
    messages: int,
    batch: int,
    window: int,
) -> dict[str, Any]:
    robots = list(tokens)[:connections]
    per_robot = max(1, messages // batch // connections)
    latencies: list[float] = []
    loop_before = gateway.loop_metrics()
    cpu_before = gateway.cpu_seconds()
    start = time.perf_counter()
    acked = await asyncio.gather(
        *(
            run_robot(gateway.ws_url, tokens[robot], frames[robot], per_robot, window, latencies)
            for robot in robots
        )
    )
    elapsed = time.perf_counter() - start
    total = sum(acked)
    frame_bytes = statistics.mean(len(f) for r in robots for f in frames[r])
    return {
        "connections": connections,
        "messages": total,
        "seconds": elapsed,
        "msgs_per_s": total / elapsed,
        "mb_per_s": frame_bytes * per_robot * len(robots) / elapsed / 1e6,
        "ack_p50_ms": percentile(latencies, 50) * 1000,
        "ack_p99_ms": percentile(latencies, 99) * 1000,
        "gateway_cpu_percent": 100 * (gateway.cpu_seconds() - cpu_before) / elapsed,
        "gateway_cpu_us_per_message": 1e6 * (gateway.cpu_seconds() - cpu_before) / total if total else 0,
        **loop_figures(loop_before, gateway.loop_metrics()),
    }


# -- baselines -------------------------------------------------------------------------------------


def direct_producer(settings: Settings, records: list[tuple[str, KafkaRecord]]) -> dict[str, Any]:
    """confluent-kafka producing pre-encoded records with the gateway's producer settings."""
    config = producer_config(settings)
    config.pop("logger", None)
    producer = Producer(config)
    producer.list_topics(timeout=10)  # connect before timing
    latencies: list[float] = []
    nbytes = sum(len(r.value) for _, r in records)
    start = time.perf_counter()
    for topic, record in records:
        sent = time.perf_counter()
        while True:
            try:
                producer.produce(
                    topic,
                    record.value,
                    record.key,
                    headers=cast(Any, record.headers),
                    on_delivery=partial(_delivered, latencies, sent),
                )
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(120)
    elapsed = time.perf_counter() - start
    return {
        "messages": len(records),
        "seconds": elapsed,
        "msgs_per_s": len(records) / elapsed,
        "mb_per_s": nbytes / elapsed / 1e6,
        "ack_p50_ms": percentile(latencies, 50) * 1000,
        "ack_p99_ms": percentile(latencies, 99) * 1000,
    }


def _delivered(latencies: list[float], sent: float, _err: Any, _msg: Any) -> None:
    latencies.append(time.perf_counter() - sent)


def pipeline(
    settings: Settings, resolver: ConfluentSchemaResolver, frames: list[bytes], count: int
) -> dict[str, Any]:
    """decode_frame + encode_record + produce in one process (no network, no acks to robots)."""
    config = producer_config(settings)
    config.pop("logger", None)
    producer = Producer(config)
    producer.list_topics(timeout=10)
    prefix = settings.topics.prefix
    topics = {str(dt): topic_for(dt, settings) for dt in DataType}
    messages = 0
    start = time.perf_counter()
    for i in range(count):
        for envelope in decode_frame(frames[i % len(frames)], "msgpack").envelopes:
            record = encode_record(envelope, resolver, topic_prefix=prefix)
            while True:
                try:
                    producer.produce(
                        topics[envelope.data_type],
                        record.value,
                        record.key,
                        headers=cast(Any, record.headers),
                    )
                    break
                except BufferError:
                    producer.poll(0.01)
            messages += 1
        producer.poll(0)
    producer.flush(120)
    elapsed = time.perf_counter() - start
    return {"messages": messages, "seconds": elapsed, "msgs_per_s": messages / elapsed}


# -- report ----------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    return _common.versions("robostream", "aiohttp", "confluent-kafka", "fastavro", "msgpack")


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="robostream gateway vs. direct confluent-kafka producer (same records)")
    for name in (
        "workload",
        "conns",
        "msgs",
        "gateway msg/s",
        "gateway MB/s",
        "ack p50 ms",
        "ack p99 ms",
        "gw CPU %",
        "loop us/msg",
        "hold p99/max ms",
        "direct msg/s",
        "direct MB/s",
        "pipeline msg/s",
        "ratio",
    ):
        table.add_column(name, justify="left" if name == "workload" else "right")
    for workload, result in report["results"].items():
        direct, inproc = result["direct"], result["pipeline"]
        for row in result["gateway"]:
            table.add_row(
                workload,
                str(row["connections"]),
                f"{row['messages']:,}",
                f"{row['msgs_per_s']:,.0f}",
                f"{row['mb_per_s']:.1f}",
                f"{row['ack_p50_ms']:.1f}",
                f"{row['ack_p99_ms']:.1f}",
                f"{row['gateway_cpu_percent']:.0f}",
                f"{row['loop_us_per_envelope']:.0f}",
                f"{row['loop_hold_p99_ms']:g}/{row['loop_hold_max_ms']:g}",
                f"{direct['msgs_per_s']:,.0f}",
                f"{direct['mb_per_s']:.1f}",
                f"{inproc['msgs_per_s']:,.0f}",
                f"{row['ratio']:.2f}x",
            )
    Console(width=200).print(table)
    print(
        "ratio = gateway msg/s / direct msg/s (goal >= 0.5x); direct = pre-encoded records, "
        "pipeline = validation + Avro encoding + produce in one process; loop us/msg = the gateway's "
        "event-loop time per envelope to validate, encode and produce; hold = the longest stretch a "
        "frame held the event loop (histogram bucket bound)"
    )
    for workload, result in report["results"].items():
        light = result["light_load"]
        print(
            f"{workload}: ack latency of one {report['parameters']['batch']}-envelope batch at a time "
            f"(no queueing): p50 {light['ack_p50_ms']:.1f} ms, p99 {light['ack_p99_ms']:.1f} ms"
        )


# -- main ------------------------------------------------------------------------------------------


def bench_settings(prefix: str) -> Settings:
    base = load_settings()
    return base.model_copy(update={"topics": base.topics.model_copy(update={"prefix": prefix})})


def delete_topics(settings: Settings) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
    present = admin.list_topics(timeout=10).topics
    doomed = [
        s.name for s in catalogue(settings) if s.name in present and s.name.startswith(settings.topics.prefix)
    ]
    for future in admin.delete_topics(doomed, operation_timeout=60).values():
        future.result()


def run_workload(
    settings: Settings,
    gateway: GatewayProcess,
    resolver: ConfluentSchemaResolver,
    workload: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    session = f"bench-{uuid.uuid4().hex[:6]}"
    frames = {
        robot: robot_frames(robot, session, workload, args.image_bytes, args.batch)
        for robot in gateway.robots
    }
    messages = args.messages if workload.startswith("time_series") else args.image_messages
    rows = []
    for connections in args.connections:
        rows.append(
            asyncio.run(
                gateway_scenario(
                    gateway, gateway.robots, frames, connections, messages, args.batch, args.window
                )
            )
        )
    light = asyncio.run(  # one robot, one batch at a time: the ack latency without queueing
        gateway_scenario(gateway, gateway.robots, frames, 1, args.batch * args.light_batches, args.batch, 1)
    )
    robot = next(iter(gateway.robots))
    envelopes = robot_envelopes(robot, session, workload, args.image_bytes, messages)
    records = [
        (topic_for(e.data_type, settings), encode_record(e, resolver, topic_prefix=settings.topics.prefix))
        for e in envelopes
    ]
    direct = direct_producer(settings, records)
    inproc = pipeline(settings, resolver, frames[robot], max(1, messages // args.batch))
    for row in rows:
        row["ratio"] = row["msgs_per_s"] / direct["msgs_per_s"]
    return {
        "gateway": rows,
        "light_load": light,
        "direct": direct,
        "pipeline": inproc,
        "envelope_bytes": {"msgpack": len(frames[robot][0]) // args.batch, "avro": len(records[0][1].value)},
    }


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; return (and write) the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny input (smoke test)")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--messages", type=int, default=30_000, help="time_series envelopes per scenario")
    parser.add_argument("--image-messages", type=int, default=5_000, help="image envelopes per scenario")
    parser.add_argument("--image-bytes", type=int, default=32 * 1024)
    parser.add_argument("--batch", type=int, default=BATCH, help="envelopes per frame")
    parser.add_argument("--window", type=int, default=4, help="unacked frames per connection")
    parser.add_argument("--light-batches", type=int, default=20, help="batches of the light-load run")
    parser.add_argument("--workloads", nargs="+", default=["time_series", "time_series_lists", "images"],
                        help="time_series: packed columns (the SDK's default); time_series_lists: "
                        "columns as lists; images: 32 KiB blobs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.connections, args.messages, args.image_messages, args.batch = [1, 2], 200, 20, 10
        args.light_batches = 2
    prefix = f"gwbench{uuid.uuid4().hex[:8]}"
    settings = bench_settings(prefix)
    robots = {f"bench_{i:03d}": uuid.uuid4().hex for i in range(max(args.connections))}
    assert create_topics(settings).ok, "cannot create the bench topics"
    resolver = ConfluentSchemaResolver(settings.schema_registry.url)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="robostream-bench-") as folder:
        gateway = GatewayProcess(settings, prefix, robots, Path(folder))
        try:
            gateway.start()
            for workload in args.workloads:
                results[workload] = run_workload(settings, gateway, resolver, workload, args)
        finally:
            gateway.stop()
            delete_topics(settings)
    report = _common.report(
        "gateway",
        {
            "quick": args.quick,
            "connections": args.connections,
            "messages": args.messages,
            "image_messages": args.image_messages,
            "image_bytes": args.image_bytes,
            "batch": args.batch,
            "window": args.window,
            "transport": "WebSocket, MessagePack, no TLS",
            "kafka": {
                "bootstrap": settings.kafka.bootstrap,
                "compression": settings.kafka.compression,
                "linger_ms": settings.kafka.linger_ms,
                "partitions": settings.topics.partitions,
            },
        },
        results,
        versions(),
    )
    write_json(report, args.out)
    print_table(report)
    print(f"written: {args.out}")
    return report


if __name__ == "__main__":
    run()
