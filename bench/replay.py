"""Replay benchmark: how closely a paced replay keeps the recorded timing, and how fast max is.

A session of ``--seconds`` of 10 Hz telemetry (one time_series record per 100 ms) is written to
the data topics of a prefix of its own (created here, deleted afterwards), then replayed with
``robostream.replay.replay`` into a namespace at 10x and at max speed. Reported: the recorded
span, the paced wall time from the first to the last record and their ratio (1/speed is exact;
what is above it is the overshoot), and the records per second at max.

(tests/integration/replay/test_replay.py asserts that every record comes back, in order, and
never earlier than its time; the figures are here.)

    python bench/replay.py             # 60 s recorded: 6 s at 10x
    python bench/replay.py --quick     # 10 s recorded
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _common
from _common import write_json
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from robostream.config import Settings, load_settings
from robostream.replay import SessionQuery, TopicPublisher, replay
from robostream.schemas import ConfluentSchemaResolver, DataType, build_envelope, encode_record
from robostream.schemas.examples import example_payload
from robostream.topics import create_topics, topic_for

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "replay.json"
ROBOT = "bench-robot"
RATE_HZ = 10


def record_session(settings: Settings, resolver: ConfluentSchemaResolver, session: str,
                   seconds: float) -> int:
    """``seconds`` of 10 Hz telemetry of ``session``, stamped ending now; returns the records."""
    count = int(seconds * RATE_HZ) + 1
    start = time.time() - seconds - 5
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5})
    for seq in range(count):
        envelope = build_envelope(DataType.TIME_SERIES, example_payload(DataType.TIME_SERIES), robot_id=ROBOT,
                                  session_id=session, seq=seq, timestamp=start + seq / RATE_HZ)
        record = encode_record(envelope, resolver, topic_prefix=settings.topics.prefix)
        producer.produce(topic_for(DataType.TIME_SERIES, settings), record.value, record.key,
                         headers=list(record.headers))
        producer.poll(0)
    if producer.flush(30):
        raise RuntimeError("the recorded session did not reach Kafka")
    return count


def replay_once(settings: Settings, resolver: ConfluentSchemaResolver, session: str, namespace: str,
                speed: float | None) -> dict[str, Any]:
    publisher = TopicPublisher(settings, namespace, (DataType.TIME_SERIES,), resolver)
    query = SessionQuery(ROBOT, session, (DataType.TIME_SERIES,))
    report = replay(settings, query, publisher, resolver, speed=speed)
    out: dict[str, Any] = {"speed": speed or "max", "records": report.records, "span_s": report.span_s,
                           "paced_s": report.paced_s, "elapsed_s": report.elapsed_s}
    if speed:
        ideal = report.span_s / speed
        out.update(ratio=report.paced_s / report.span_s if report.span_s else float("nan"),
                   ideal_s=ideal, overshoot_ms=(report.paced_s - ideal) * 1000)
    else:
        out["records_per_s"] = report.records / report.paced_s if report.paced_s else float("nan")
    return out


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s recorded (smoke test)")
    parser.add_argument("--seconds", type=float, default=60.0, help="recorded span of the session")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 10.0
    base = load_settings()
    tag = uuid.uuid4().hex[:8]
    settings = base.model_copy(update={"topics": base.topics.model_copy(update={"prefix": f"benchrp{tag}"})})
    created = create_topics(settings)
    if not created.ok:
        raise RuntimeError(f"cannot create the benchmark's topics: {created}")
    resolver = ConfluentSchemaResolver(settings.schema_registry.url)
    session = f"replay-{tag}"
    try:
        recorded = record_session(settings, resolver, session, args.seconds)
        results = {"10x": replay_once(settings, resolver, session, f"benchrp10x{tag}", 10.0),
                   "max": replay_once(settings, resolver, session, f"benchrpmax{tag}", None)}
    finally:
        admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
        doomed = [name for name in admin.list_topics(timeout=10).topics if "benchrp" in name and tag in name]
        if doomed:
            for future in admin.delete_topics(doomed, operation_timeout=30).values():
                future.result()
    parameters = {"quick": args.quick, "seconds": args.seconds, "records": recorded, "rate_hz": RATE_HZ}
    report = _common.report("replay", parameters, results, _common.versions("robostream", "confluent-kafka"))
    write_json(report, args.out)
    paced = results["10x"]
    print(f"10x: {paced['records']} records, recorded {paced['span_s']:.2f} s, "
          f"paced {paced['paced_s']:.3f} s "
          f"(ratio {paced['ratio']:.4f}, ideal 0.1000, overshoot {paced['overshoot_ms']:.1f} ms)")
    print(f"max: {results['max']['records_per_s']:,.0f} records/s")
    print(f"written: {args.out}")
    return report


if __name__ == "__main__":
    run()
