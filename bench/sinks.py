"""Sink benchmark: records/s per sink per task, MB/s to S3, beside bare clients in the same run.

Against the running stack of ``config.yaml`` (or the ``ROBOSTREAM_*`` environment), under a
fresh topic prefix and MongoDB database, it produces telemetry records (10 samples each, 100 Hz)
and camera images, then for each sink runs one connector with one task in this process and
times it from partition assignment to the last record written:

* ``mongo``: ``time_series`` -> ``telemetry`` minute buckets and the ``telemetry_lod`` pyramid
  (decode, merge into the open minute, rewrite it and its pyramid spans on every flush);
* ``redis``: ``time_series`` -> the latest ring + pub/sub (Lua script per record, pipelined);
* ``s3``: ``images`` -> ``raw/.../frames/...`` objects (8 upload threads).

Ceilings, measured in the same run on the same data, with no Kafka and no decoding:

* ``pymongo insert_many`` of the same final documents (the minute buckets and pyramid spans the
  sink ends with, built in memory: what a writer that knew every sample in advance would write);
* ``redis pipeline`` of bare ``ZADD`` + ``ZREMRANGEBYRANK`` + ``PUBLISH`` per record, the members
  built before timing; and the same with building them (a dict and ``canonical_json`` per point);
* ``boto3 put_object`` of the same images with the same 8 threads;
* ``decode`` -- the converter alone (Kafka value -> minute buckets), the CPU cost per record.

Prints a table and writes ``bench/results/sinks.json`` (machine, versions, parameters, figures).

    python bench/sinks.py            # ~2-4 minutes on 2 shared cores
    python bench/sinks.py --quick    # seconds (the smoke test)
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _common
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from robostream.config import ConnectorSettings, Settings, load_settings
from robostream.schemas import (
    DataType,
    Envelope,
    InMemorySchemaResolver,
    build_envelope,
    encode_record,
)
from robostream.schemas.examples import example_payload
from robostream.sinks import SinkRecord, Worker
from robostream.sinks.bucket_store import bucket_documents, pieces_of
from robostream.sinks.convert import Converter
from robostream.sinks.mongo import retention_seconds
from robostream.sinks.points import points
from robostream.sinks.redis import canonical_json
from robostream.sinks.s3 import UPLOAD_THREADS, s3_client
from robostream.topics import catalogue, create_topics, topic_for

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "sinks.json"
ROBOT = "robot_001"
MB = 1_000_000


# -- data ----------------------------------------------------------------------------------------


def telemetry_records(session: str, count: int) -> list[Envelope]:
    payload = build_envelope("time_series", example_payload("time_series"), robot_id=ROBOT,
                             session_id=session, seq=0).payload
    start = int(time.time() * 1_000_000)
    return [Envelope(start + seq * 100_000, ROBOT, session, DataType.TIME_SERIES, seq, payload)
            for seq in range(count)]


def image_records(session: str, count: int, size: int) -> list[Envelope]:
    start = time.time()
    out = []
    for seq in range(count):
        payload = example_payload("images")
        payload["blob"] = {"format": "jpeg", "content": os.urandom(size)}
        out.append(build_envelope("images", payload, robot_id=ROBOT, session_id=session, seq=seq,
                                  timestamp=start + seq / 30))
    return out


def produce(settings: Settings, resolver: InMemorySchemaResolver, envelopes: list[Envelope]) -> list[Any]:
    kafka = Producer({"bootstrap.servers": settings.kafka.bootstrap, "linger.ms": 20,
                      "acks": "all", "message.max.bytes": settings.topics.max_message_bytes})
    encoded = []
    for envelope in envelopes:
        record = encode_record(envelope, resolver, topic_prefix=settings.topics.prefix)
        encoded.append(record)
        headers: list[tuple[str, str | bytes | None]] = list(record.headers)
        kafka.produce(topic_for(envelope.data_type, settings), record.value, record.key,
                      headers=headers)
        kafka.poll(0)
    assert kafka.flush(60) == 0, "produce failed"
    return encoded


# -- one connector -------------------------------------------------------------------------------


def time_connector(settings: Settings, resolver: InMemorySchemaResolver, kind: str, topic: str,
                   expected: int, batch_size: int, timeout: float) -> dict[str, Any]:
    """Run one connector (one task) until it wrote ``expected`` records; time it."""
    name = f"{kind}-bench"
    config = ConnectorSettings.model_validate({"name": name, "kind": kind, "topics": [topic],
                                               "batch_size": batch_size, "flush_interval_ms": 200,
                                               "errors_tolerance": "all"})
    worker = Worker(settings.model_copy(update={"connectors": [config]}), rest=False,
                    resolver_factory=lambda _s: resolver)
    launched = time.perf_counter()
    worker.start()
    try:
        task = worker.connectors[name].tasks[0]
        deadline = time.monotonic() + timeout
        started: float | None = None
        first: tuple[float, int] | None = None  # (time, records) of the first batch written
        while time.monotonic() < deadline:
            snap = task.status.snapshot()
            written = snap["metrics"]["records_written"]
            if started is None and snap["lag"]["partitions"]:
                started = time.perf_counter()
            if first is None and written:
                first = (time.perf_counter(), written)
            if written >= expected:
                break
            if snap["state"] == "FAILED":
                raise RuntimeError(f"{name} failed: {snap.get('trace')}")
            time.sleep(0.02)
        else:
            raise TimeoutError(f"{name}: {task.status.snapshot()['metrics']} after {timeout}s")
        end = time.perf_counter()
        elapsed = end - (started or launched)  # a tiny run may finish before its lag is reported
        result = {"seconds": round(elapsed, 3), "records_per_s": round(expected / elapsed, 1),
                  "batches": task.status.snapshot()["metrics"]["batches"]}
        if first is not None and first[1] < expected and end > first[0]:
            # steady state: after the first batch (start-up, first fetch and flush excluded)
            result["steady_records_per_s"] = round((expected - first[1]) / (end - first[0]), 1)
        return result
    finally:
        worker.stop()


# -- ceilings ------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sink_records(settings: Settings, resolver: InMemorySchemaResolver, encoded: list[Any],
                 data_type: str) -> list[SinkRecord]:
    topic = topic_for(data_type, settings)
    return [SinkRecord(topic, 0, i, r.key, r.value, list(r.headers)) for i, r in enumerate(encoded)]


def decode_ceiling(settings: Settings, resolver: InMemorySchemaResolver,
                   records: list[SinkRecord]) -> tuple[float, list[SinkRecord]]:
    converter = Converter(settings, resolver)
    fresh = [SinkRecord(r.topic, r.partition, r.offset, r.key, r.value, r.headers) for r in records]
    def convert_all() -> None:
        for record in fresh:
            converter.convert(record)

    seconds = timed(convert_all)
    return len(fresh) / seconds, fresh


def mongo_ceiling(settings: Settings, decoded: list[SinkRecord], batch_size: int,
                  indexed: bool) -> float:
    """insert_many of the sink's final documents (built here, timed with the inserts);
    ``indexed``: with the sink's compound + TTL indexes."""
    from pymongo import MongoClient

    def documents() -> list[dict[str, Any]]:
        minutes, spans = bucket_documents(pieces_of([b for r in decoded for b in r.item.buckets]))
        return minutes + spans

    with MongoClient[dict[str, Any]](settings.mongo.uri) as client:
        collection = client[settings.mongo.database][f"ceiling_telemetry_{indexed}"]
        collection.drop()
        if indexed:
            collection.create_index([("robot_id", 1), ("session_id", 1), ("timestamp", 1)])
            collection.create_index("timestamp", expireAfterSeconds=retention_seconds(settings))
        def build_and_insert() -> None:
            docs = documents()
            for i in range(0, len(docs), batch_size):
                collection.insert_many(docs[i:i + batch_size], ordered=False)

        seconds = timed(build_and_insert)
        collection.drop()
    return len(decoded) / seconds


def redis_ceiling(settings: Settings, decoded: list[SinkRecord], batch_size: int,
                  build_members: bool = False) -> float:
    """A pipeline of bare ``ZADD`` + ``ZREMRANGEBYRANK`` + ``PUBLISH`` per record. The members
    (canonical JSON per point) are built before the clock starts, or, with ``build_members``,
    inside it the plain way (a dict per point, ``canonical_json``): the work any writer of the
    same members from the decoded records does."""
    import redis

    client = redis.Redis.from_url(settings.redis.url)
    key = f"bench:ceiling:{uuid.uuid4().hex[:8]}"
    window = settings.redis.latest_window

    def prepare(record: SinkRecord) -> tuple[dict[bytes, int], bytes]:
        pts = [p for b in record.item.buckets for p in points(b)]
        return {canonical_json(p): p["ts_us"] for p in pts}, canonical_json(pts)

    prepared = [] if build_members else [prepare(record) for record in decoded]

    def run() -> None:
        for start in range(0, len(decoded), batch_size):
            chunk = ([prepare(r) for r in decoded[start:start + batch_size]] if build_members
                     else prepared[start:start + batch_size])
            pipe = client.pipeline(transaction=False)
            for members, message in chunk:
                pipe.zadd(key, members)
                pipe.zremrangebyrank(key, 0, -(window + 1))
                pipe.publish(f"{key}:live", message)
            pipe.execute()

    seconds = timed(run)
    client.delete(key)
    client.close()
    return len(decoded) / seconds


def s3_ceiling(settings: Settings, images: list[Envelope]) -> tuple[float, float]:
    client = s3_client(settings)
    prefix = f"bench-ceiling/{uuid.uuid4().hex[:8]}/"
    bodies = [bytes(e.payload["blob"]["content"]) for e in images]

    def put(item: tuple[int, bytes]) -> None:
        client.put_object(Bucket=settings.s3.bucket, Key=f"{prefix}{item[0]}.jpg", Body=item[1],
                          ContentType="image/jpeg")

    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        seconds = timed(lambda: list(pool.map(put, enumerate(bodies))))
    delete_prefix(client, settings.s3.bucket, prefix)
    return len(bodies) / seconds, sum(map(len, bodies)) / MB / seconds


# -- cleanup, report -----------------------------------------------------------------------------


def delete_prefix(client: Any, bucket: str, prefix: str) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if objects:
            client.delete_objects(Bucket=bucket, Delete={"Objects": objects})


def cleanup(settings: Settings, session: str) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
    mine = [s.name for s in catalogue(settings) if s.name.startswith(settings.topics.prefix + ".")]
    for future in admin.delete_topics(mine, operation_timeout=30).values():
        future.exception()
    from pymongo import MongoClient

    with MongoClient[dict[str, Any]](settings.mongo.uri) as mongo:
        mongo.drop_database(settings.mongo.database)
    delete_prefix(s3_client(settings), settings.s3.bucket, f"raw/{ROBOT}/{session}/")
    import redis

    cache = redis.Redis.from_url(settings.redis.url)
    for key in cache.scan_iter(f"*:{ROBOT}:{session}:*"):
        cache.delete(key)
    cache.close()


def versions(settings: Settings) -> dict[str, str]:
    out = _common.versions("robostream", "confluent-kafka", "pymongo", "boto3", "redis", "fastavro", "numpy")
    import redis
    from pymongo import MongoClient

    with MongoClient[dict[str, Any]](settings.mongo.uri, serverSelectionTimeoutMS=5000) as client:
        info = client.admin.command("buildInfo")
        out["mongodb_server"] = f"{info.get('version')} ({info.get('gitVersion', '')[:40]})"
    client_r = redis.Redis.from_url(settings.redis.url)
    out["redis_server"] = str(client_r.info("server").get("redis_version"))
    client_r.close()
    return out


def machine() -> dict[str, Any]:
    out = _common.machine()
    out["load_avg_at_start"] = out.pop("load_avg")
    return out


def fmt(rate: float) -> str:
    return f"{rate / 1000:,.1f}k" if rate >= 1000 else f"{rate:,.0f}"


def print_table(results: dict[str, Any], parameters: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    samples = parameters["samples_per_record"]
    table = Table(title="robostream sinks: one task per sink vs. a bare client on the same data "
                        "(steady = after the first batch)")
    for column in ("sink", "records", "rec/s steady", "rec/s overall", "points/s", "MB/s",
                   "ceiling", "ceiling rec/s", "ceiling MB/s", "steady / ceiling"):
        table.add_column(column, justify="left" if column in ("sink", "ceiling") else "right")
    for name, r in results["sinks"].items():
        ceiling = results["ceilings"][name]
        steady = r.get("steady_records_per_s", r["records_per_s"])
        table.add_row(
            name, str(r["records"]), fmt(steady), fmt(r["records_per_s"]),
            fmt(steady * samples) if name != "s3" else "-",
            f"{r['mb_per_s']:.1f}" if name == "s3" else "-",
            ceiling["what"], fmt(ceiling["records_per_s"]),
            f"{ceiling['mb_per_s']:.1f}" if name == "s3" else "-",
            f"{steady / ceiling['records_per_s']:.0%}",
        )
    bare = results["ceilings"]["mongo_no_index"]
    mongo = results["sinks"]["mongo"]
    table.add_row("mongo", "", "", "", "", "", bare["what"], fmt(bare["records_per_s"]), "-",
                  f"{mongo.get('steady_records_per_s', mongo['records_per_s']) / bare['records_per_s']:.0%}")
    bare = results["ceilings"].get("redis_build")
    redis_sink = results["sinks"]["redis"]
    if bare:
        steady = redis_sink.get("steady_records_per_s", redis_sink["records_per_s"])
        table.add_row("redis", "", "", "", "", "", bare["what"], fmt(bare["records_per_s"]), "-",
                      f"{steady / bare['records_per_s']:.0%}")
    decode = results["ceilings"]["decode"]
    table.add_row("(decode only)", str(parameters["telemetry_records"]), "-", "-",
                  fmt(decode["records_per_s"] * samples), "-", decode["what"],
                  fmt(decode["records_per_s"]), "-", "-")
    Console(width=170).print(table)


# -- main ----------------------------------------------------------------------------------------


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; return (and write) the report."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny input (smoke test)")
    parser.add_argument("--records", type=int, default=10_000, help="time_series records")
    parser.add_argument("--images", type=int, default=300, help="images for the S3 sink")
    parser.add_argument("--image-kib", type=int, default=256, help="size of each image")
    parser.add_argument("--batch", type=int, default=500, help="connector batch_size")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per sink at most")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report path")
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.images, args.image_kib, args.timeout = 300, 10, 64, 120
    tag = uuid.uuid4().hex[:8]
    base = load_settings()
    settings = base.model_copy(update={
        "topics": base.topics.model_copy(update={"prefix": f"bench{tag}", "partitions": 1}),
        "mongo": base.mongo.model_copy(update={"database": f"bench_{tag}"}),
        "schema_registry": base.schema_registry.model_copy(update={"topic": f"_schemas_bench{tag}"}),
    })
    session = f"bench-{tag}"
    parameters = {"telemetry_records": args.records, "samples_per_record": 10,
                  "images": args.images, "image_bytes": args.image_kib * 1024,
                  "batch_size": args.batch, "s3_batch_size": 50, "tasks_per_sink": 1,
                  "partitions": 1, "upload_threads": UPLOAD_THREADS, "quick": args.quick,
                  "timing": "from partition assignment to the last record written (status metrics)"}
    report: dict[str, Any] = {
        "benchmark": "sinks", "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(), "versions": versions(settings), "parameters": parameters,
    }
    resolver = InMemorySchemaResolver()
    assert create_topics(settings).ok
    try:
        telemetry = telemetry_records(session, args.records)
        images = image_records(session, args.images, args.image_kib * 1024)
        encoded = produce(settings, resolver, telemetry)
        produce(settings, resolver, images)
        image_mb = sum(len(e.payload["blob"]["content"]) for e in images) / MB
        sinks = {
            "mongo": time_connector(settings, resolver, "mongo", "time_series", args.records,
                                    args.batch, args.timeout),
            "redis": time_connector(settings, resolver, "redis", "time_series", args.records,
                                    args.batch, args.timeout),
            "s3": time_connector(settings, resolver, "s3", "images", args.images, 50, args.timeout),
        }
        sinks["mongo"]["records"] = sinks["redis"]["records"] = args.records
        sinks["s3"]["records"] = args.images
        s3_steady = sinks["s3"].get("steady_records_per_s", sinks["s3"]["records_per_s"])
        sinks["s3"]["mb_per_s"] = round(s3_steady * image_mb / args.images, 2)
        decode_rate, decoded = decode_ceiling(settings, resolver,
                                              sink_records(settings, resolver, encoded, "time_series"))
        s3_rate, s3_mb = s3_ceiling(settings, images)
        ceilings = {
            "decode": {"what": "converter only", "records_per_s": round(decode_rate, 1)},
            "mongo": {"what": "insert_many, same indexes", "records_per_s": round(
                mongo_ceiling(settings, decoded, args.batch, indexed=True), 1)},
            "mongo_no_index": {"what": "insert_many, _id only", "records_per_s": round(
                mongo_ceiling(settings, decoded, args.batch, indexed=False), 1)},
            "redis": {"what": "redis-py pipeline", "records_per_s": round(
                redis_ceiling(settings, decoded, args.batch), 1)},
            "redis_build": {"what": "redis-py pipeline + members", "records_per_s": round(
                redis_ceiling(settings, decoded, args.batch, build_members=True), 1)},
            "s3": {"what": f"boto3 put_object x{UPLOAD_THREADS}", "records_per_s": round(s3_rate, 1),
                   "mb_per_s": round(s3_mb, 2)},
        }
        report["results"] = {"sinks": sinks, "ceilings": ceilings}
    finally:
        cleanup(settings, session)
    report["machine"]["load_avg_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _common.write_json(report, args.out)
    print_table(report["results"], parameters)
    print(f"written: {args.out}")
    return report


if __name__ == "__main__":
    run()
