"""Processors benchmark: telemetry messages/s per worker, encode fps per core per tier, and the
compression ratios beside the seed's (RGB 70 %, depth 50 %, point cloud 90 %).

* ``telemetry core``: one process, no Kafka: decode (the fast time_series reader), bucketing,
  1 s / 1 min / 1 h windows and the derived values (``TelemetryProcessor.process`` with a
  producer stub), in ``processors.batch_max`` batches. The CPU ceiling of a worker.
* ``telemetry worker``: a real ``python -m robostream.processors`` worker (Faust,
  ``stream.take()`` batches) on the Kafka of the settings, reading pre-produced messages: wall
  rate, samples/s (rows of ``t``) and messages per CPU-second of the worker process, in four
  scenarios (below). **Ceiling**, measured in the same run on the same pre-produced records: a
  do-nothing Faust agent (``stream.take()`` on the worker's own Faust app settings, counting
  only) -- what Faust alone delivers per worker; the worker's figure is given as a ratio to it.
  Scenarios: ``backlog`` (``processors.batch_max`` batches over 12 sessions) and ``live``
  (live-sized batches: 10 robots streaming 100 Hz give 200 samples per ``batch_within_s`` =
  0.2 s, i.e. 20 records of 10 samples, 2 per session; read from a backlog with ``batch_max`` =
  that size, so the figure is the capacity at that batch size), each with 10-sample records (the
  simulator's shape) and with 100-sample records (1 s per record: bigger records, same samples;
  live-sized there is 2 records per batch).
* ``naive faust agent``: the same messages through a Faust agent written the naive way
  (``async for`` one event at a time, generic Avro decode, per-sample Python statistics, one
  awaited send per message): what users report as "a few hundred per second".
* ``encode``: frames per second on one core for each tier (H.264 original 1920x1080 and preview
  640x360, JPEG thumbnail 120x68, 16-bit PNG depth, Draco point clouds) on synthetic scene-like
  frames, and the measured compression ratios (saved fraction of the source size).

Message: one time_series record of 10 samples at 100 Hz with pose, 7-DOF joints (angle,
velocity, torque), force/torque, IMU and system metrics and two free channels (49 metrics,
3.9 KB of Avro), the shape the simulator sends.

    python bench/processors.py            # a few minutes on 2 shared cores
    python bench/processors.py --quick    # small input (smoke test)
    python bench/processors.py --no-kafka # the in-process figures only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common
import numpy as np

from robostream.config import Settings, load_settings
from robostream.processors.columns import TimeSeriesReader
from robostream.processors.compaction import depth, h264, pointcloud, synthetic
from robostream.processors.compaction.jobs import (
    CompactionJob,
    CompactionParams,
    SourceFrame,
    run_job,
)
from robostream.processors.outputs import Outputs
from robostream.processors.records import DerivedCodec, FrameKind
from robostream.processors.telemetry import TelemetryProcessor
from robostream.processors.throughput import Throughput
from robostream.schemas import InMemorySchemaResolver, build_envelope, encode_record
from robostream.schemas.examples import time_series_payload

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "processors.json"
SEED_RATIOS = {"rgb": 0.70, "depth": 0.50, "pointcloud": 0.90}
GOAL_PER_WORKER = 20_000


# --- telemetry ------------------------------------------------------------------------------------


@dataclass
class _Message:
    value: bytes | None
    partition: int
    topic: str = "bench"
    offset: int = 0
    key: bytes | None = b""
    headers: Any = None


class _Table:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def list_keys(self) -> list[bytes]:
        return list(self.data)


def telemetry_values(
    count: int, sessions: int, resolver: Any, prefix: str = "robot", samples: int = 10
) -> list[tuple[bytes, bytes]]:
    """``count`` (key, value) time_series records of ``samples`` 100 Hz samples, round-robin over
    ``sessions`` sessions."""
    payload = time_series_payload(samples)
    out = []
    for i in range(count):
        session = f"s{i % sessions}"
        envelope = build_envelope("time_series", payload, robot_id="robot_001", session_id=session,
                                  seq=i // sessions,
                                  timestamp=1_800_000_000.0 + (i // sessions) * samples / 100)
        record = encode_record(envelope, resolver, topic_prefix=prefix)
        out.append((record.key, record.value))
    return out


def bench_core(count: int, sessions: int, batch: int) -> dict[str, Any]:
    """Messages/s of the processing core, one process, no Kafka."""
    resolver = InMemorySchemaResolver()
    values = telemetry_values(count, sessions, resolver)
    messages = [_Message(v, i % 4, offset=i // 4) for i, (_, v) in enumerate(values)]  # offsets in order

    async def send(topic: str, key: bytes, value: bytes, headers: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def run() -> tuple[float, float, Throughput]:
        outputs = Outputs(send, DerivedCodec(resolver), "b", {"1s": "s1", "1m": "s2", "1h": "s3"},
                          "f", "d", "bench", 8 << 20)
        metrics = Throughput("bench")
        processor = TelemetryProcessor(reader=TimeSeriesReader(resolver), resolver=resolver,
                                       outputs=outputs, table=_Table(), metrics=metrics,
                                       lateness_us=2_000_000, idle_s=5.0)
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(messages), batch):
            await processor.process(messages[start:start + batch])
        await processor.drain()
        return time.perf_counter() - wall, time.process_time() - cpu, metrics

    wall, cpu, metrics = asyncio.run(run())
    return {"messages": count, "sessions": sessions, "batch": batch, "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 3), "messages_per_s": round(count / wall), "messages_per_cpu_s":
            round(count / cpu), "windows_out": metrics.counters["windows_out"],
            "buckets_out": metrics.counters["buckets_out"], "value_bytes": len(values[0][1])}


# --- telemetry through Kafka ----------------------------------------------------------------------


def _bench_settings(settings: Settings, partitions: int, batch_max: int | None = None) -> Settings:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    tuned = {"app_id": f"bench-{prefix}", "status_interval_s": 0.25, "idle_s": 5.0,
             "batch_max": batch_max or settings.processors.batch_max}
    return settings.model_copy(update={
        "topics": settings.topics.model_copy(update={"prefix": prefix, "partitions": partitions}),
        "processors": settings.processors.model_copy(update=tuned),
    })


def _produce(settings: Settings, values: list[tuple[bytes, bytes]]) -> None:
    from confluent_kafka import Producer

    from robostream.topics import create_topics, topic_for

    assert create_topics(settings).ok
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap, "linger.ms": 20,
                         "compression.type": settings.kafka.compression})
    topic = topic_for("time_series", settings)
    for i, (key, value) in enumerate(values):
        while True:
            try:
                producer.produce(topic, value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 2000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0


def _env(settings: Settings) -> dict[str, str]:
    p = settings.processors
    return {**os.environ, "ROBOSTREAM_KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
            "ROBOSTREAM_SCHEMA_REGISTRY__URL": settings.schema_registry.url,
            "ROBOSTREAM_TOPICS__PREFIX": settings.topics.prefix,
            "ROBOSTREAM_TOPICS__PARTITIONS": str(settings.topics.partitions),
            "ROBOSTREAM_PROCESSORS__APP_ID": p.app_id,
            "ROBOSTREAM_PROCESSORS__STATUS_INTERVAL_S": str(p.status_interval_s),
            "ROBOSTREAM_PROCESSORS__BATCH_MAX": str(p.batch_max),
            "PYTHONPATH": str(ROOT / "src")}


def _cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _run_worker(cmd: list[str], settings: Settings, status: Path, count: int, timeout: float,
                field: str = "telemetry_records") -> dict[str, Any]:
    """Start a worker, time it from its first processed message to the last one."""
    log = status.with_suffix(".log")
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=_env(settings), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        first: tuple[float, float, int] | None = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                done = int(json.loads(status.read_text())["totals"].get(field, 0))
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                done = 0
            now = time.monotonic()
            if done and first is None:
                first = (now, _cpu_seconds(proc.pid), done)
            if first is not None and done >= count:
                wall = now - first[0]
                cpu = _cpu_seconds(proc.pid) - first[1]
                measured = done - first[2]
                return {"messages": count, "measured": measured, "wall_s": round(wall, 3),
                        "cpu_s": round(cpu, 3), "messages_per_s": round(measured / wall) if wall else None,
                        "messages_per_cpu_s": round(measured / cpu) if cpu else None}
            time.sleep(0.1)
        raise RuntimeError(f"timed out after {timeout}s with {done}/{count}: {log.read_text()[-2000:]}")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)


CEILING_AGENT = '''
import json, os, sys
from robostream.config import load_settings
from robostream.processors.app import faust_app
from robostream.schemas import DataType
from robostream.topics import topic_for
settings = load_settings()
p = settings.processors
app = faust_app(settings, settings.topics.partitions)   # the worker's consumer/stream settings
source = app.topic(topic_for(DataType.TIME_SERIES, settings), key_type=bytes, value_type=bytes,
                   key_serializer="raw", value_serializer="raw")
state = {"n": 0}

@app.agent(source)
async def count(stream):
    async for values in stream.take(p.batch_max, within=p.batch_within_s):   # take() acks them
        state["n"] += len(values)

@app.timer(p.status_interval_s)
async def status():
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"totals": {"telemetry_records": state["n"]}}, f)
    os.replace(tmp, sys.argv[1])

if __name__ == "__main__":
    from robostream.processors.worker import faust_worker   # the worker's own Worker settings
    faust_worker(app, "warning").execute_from_commandline()
'''

#: name -> (samples per record, sessions, batch_max or None for processors.batch_max)
SCENARIOS: dict[str, tuple[int, int, int | None]] = {
    "backlog": (10, 12, None),
    "live": (10, 10, 20),  # 10 robots x 100 Hz x 0.2 s = 200 samples: 20 records, 2 per session
    "backlog_100": (100, 12, None),
    "live_100": (100, 10, 2),  # the same 200 samples: 2 records of 100
}


def bench_worker(settings: Settings, count: int, sessions: int, folder: Path, samples: int = 10,
                 batch_max: int | None = None) -> dict[str, Any]:
    """One real worker (Faust) and the do-nothing ``stream.take()`` agent (the ceiling) on the
    same records, produced beforehand: records/s, samples/s, and the worker's ratio to the ceiling."""
    from robostream.schemas import ConfluentSchemaResolver

    run = _bench_settings(settings, partitions=4, batch_max=batch_max)
    resolver = ConfluentSchemaResolver(run.schema_registry.url)
    values = telemetry_values(count, sessions, resolver, run.topics.prefix, samples)
    _produce(run, values)
    timeout = max(120.0, count * samples / 1000)
    script = folder / "ceiling_agent.py"
    script.write_text(CEILING_AGENT)
    status = folder / f"ceiling-{run.topics.prefix}.json"
    alone = run.model_copy(update={"processors": run.processors.model_copy(
        update={"app_id": run.processors.app_id + "-ceiling"})})
    ceiling = _run_worker([sys.executable, str(script), str(status)], alone, status, count, timeout)
    status = folder / f"worker-{run.topics.prefix}.json"
    cmd = [sys.executable, "-m", "robostream.processors", "--name", "bench", "--status-file",
           str(status), "--loglevel", "warning"]
    worker = _run_worker(cmd, run, status, count, timeout)
    for figures in (ceiling, worker):
        figures["samples_per_s"] = figures["messages_per_s"] * samples if figures["messages_per_s"] else None
    ratio = (worker["messages_per_s"] / ceiling["messages_per_s"]
             if worker["messages_per_s"] and ceiling["messages_per_s"] else None)
    return {**worker, "sessions": sessions, "samples_per_record": samples,
            "batch_max": run.processors.batch_max, "value_bytes": len(values[0][1]),
            "ceiling": ceiling, "ratio_to_ceiling": round(ratio, 3) if ratio else None}


NAIVE_AGENT = '''
import asyncio, json, os, sys, time, statistics
import faust
from robostream.config import load_settings
from robostream.schemas import ConfluentSchemaResolver, decode_record
settings = load_settings()
resolver = ConfluentSchemaResolver(settings.schema_registry.url)
app = faust.App(settings.processors.app_id + "-naive", broker="kafka://" + settings.kafka.bootstrap,
                store="memory://", web_enabled=False, consumer_auto_offset_reset="earliest",
                value_serializer="raw", key_serializer="raw")
source = app.topic(settings.topics.prefix + ".time_series", value_serializer="raw", key_serializer="raw")
out = app.topic(settings.topics.prefix + ".derived.telemetry_bucketed", value_serializer="raw",
                key_serializer="raw")
windows = {}
state = {"n": 0}

@app.agent(source)
async def naive(stream):
    async for event in stream.events():   # one event at a time
        env = decode_record(event.value, resolver)   # generic Avro decode (fastavro)
        for i, dt in enumerate(env.payload["t"]):
            second = (env.timestamp_us + dt) // 1_000_000
            for name, column in env.payload["metrics"].items():
                windows.setdefault((env.key, name, second), []).append(column[i])
        await out.send(key=env.key, value=event.value)   # one awaited send per message
        state["n"] += 1

@app.timer(0.25)
async def status():
    with open(sys.argv[1] + ".tmp", "w") as f:
        json.dump({"totals": {"telemetry_records": state["n"]}}, f)
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])

if __name__ == "__main__":
    from faust.worker import Worker
    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()
'''


def bench_naive(settings: Settings, count: int, sessions: int, folder: Path) -> dict[str, Any]:
    """Messages/s of a naive one-event-at-a-time Faust agent on the same kind of messages."""
    from robostream.schemas import ConfluentSchemaResolver

    run = _bench_settings(settings, partitions=4)
    resolver = ConfluentSchemaResolver(run.schema_registry.url)
    _produce(run, telemetry_values(count, sessions, resolver, run.topics.prefix))
    script = folder / "naive_agent.py"
    script.write_text(NAIVE_AGENT)
    status = folder / "naive.json"
    return _run_worker([sys.executable, str(script), str(status)], run, status, count,
                       timeout=max(120.0, count / 20))


# --- frames ---------------------------------------------------------------------------------------


def _frames(kind: FrameKind, count: int, width: int, height: int) -> tuple[SourceFrame, ...]:
    out = []
    for i in range(count):
        if kind is FrameKind.RGB:
            content, fmt = synthetic.jpeg_bytes(synthetic.rgb_frame(i, width, height)), "jpeg"
        elif kind is FrameKind.DEPTH:
            content, fmt = synthetic.depth_frame(i, width, height).tobytes(), "raw16"
        else:
            cloud = synthetic.depth_to_cloud(synthetic.depth_frame(i, width, height), step=2)
            content, fmt = pointcloud.encode_ply(cloud), "ply"
        out.append(SourceFrame(i, 1_800_000_000_000_000 + i * 33_333, fmt, width, height,
                               len(content), content))
    return tuple(out)


def bench_encode(rgb_frames: int, depth_frames: int, clouds: int, size: tuple[int, int]) -> dict[str, Any]:
    """fps per tier on one core, and compression ratios (saved fraction of the source)."""
    params = CompactionParams(bundles=False)
    width, height = size
    results: dict[str, Any] = {"tiers": {}, "ratios": {}}
    for kind, count in ((FrameKind.RGB, rgb_frames), (FrameKind.DEPTH, depth_frames),
                        (FrameKind.POINTCLOUD, clouds)):
        frames = _frames(kind, count, width, height)
        result = run_job(CompactionJob("robot_001", "bench", "front", kind, frames, params))
        for tier, seconds in result.seconds.items():
            results["tiers"][f"{kind.value}.{tier}"] = round(count / seconds, 1) if seconds else None
        compressed = sum(f.compressed_size_bytes for f in result.frames)
        results["ratios"][kind.value] = {
            "source_format": frames[0].fmt, "source_bytes": result.source_bytes,
            "raw_bytes": result.raw_bytes, "compressed_bytes": compressed,
            "vs_source": round(1 - compressed / result.source_bytes, 4),
            "vs_raw": round(1 - compressed / result.raw_bytes, 4),
            "seed": SEED_RATIOS[kind.value],
        }
        if kind is FrameKind.RGB:
            segment = next(o.content for o in result.objects if "/original/" in o.key)
            decoded = h264.decode_segment(segment)
            psnr = [h264.psnr(synthetic.rgb_frame(i, width, height), d) for i, d in enumerate(decoded)]
            results["h264_psnr_db"] = {"min": round(min(psnr), 2), "mean": round(float(np.mean(psnr)), 2)}
        if kind is FrameKind.DEPTH:
            original = next(o.content for o in result.objects if "/original/" in o.key)
            assert np.array_equal(depth.decode_png16(original), synthetic.depth_frame(0, width, height))
    return results


# --- report ---------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    return _common.versions("faust-streaming", "aiokafka", "av", "DracoPy", "pillow", "numpy", "fastavro")


def print_table(report: dict[str, Any]) -> None:
    """The figures as plain-text tables."""
    r = report["results"]
    lines = ["telemetry (messages = time_series records of 10 samples, 49 metrics)",
             f"{'path':<34}{'messages':>10}{'msg/s wall':>12}{'msg/CPU-s':>12}"]
    for name, key in (("processing core (no Kafka)", "core"), ("core, live-sized batches", "core_live"),
                      ("robostream worker (Faust, take())", "worker"), ("naive Faust agent", "naive")):
        figures = r.get(key)
        if figures:
            lines.append(f"{name:<34}{figures['messages']:>10,}{figures['messages_per_s'] or 0:>12,}"
                         f"{figures['messages_per_cpu_s'] or 0:>12,}")
        else:
            lines.append(f"{name:<34}{'skipped':>10}")
    lines.append(f"goal: >= {GOAL_PER_WORKER:,} messages/s per worker")
    if r.get("telemetry"):
        lines.append("")
        lines.append("worker vs a do-nothing Faust agent (stream.take(), counting only), same records")
        lines.append(f"{'scenario':<14}{'samples':>8}{'batch':>7}{'rec/s':>9}{'samples/s':>11}"
                     f"{'rec/CPU-s':>11}{'ceiling rec/s':>15}{'ratio':>7}")
        for name, t in r["telemetry"].items():
            lines.append(f"{name:<14}{t['samples_per_record']:>8}{t['batch_max']:>7}"
                         f"{t['messages_per_s'] or 0:>9,}{t['samples_per_s'] or 0:>11,}"
                         f"{t['messages_per_cpu_s'] or 0:>11,}{t['ceiling']['messages_per_s'] or 0:>15,}"
                         f"{t['ratio_to_ceiling'] or 0:>7.2f}")
        lines.append("goals: >= 0.5x the do-nothing agent; >= 100,000 samples/s per worker")
    lines.append("")
    lines.append(f"{'encode (one core)':<34}{'fps':>10}")
    for tier, fps in r["encode"]["tiers"].items():
        lines.append(f"{tier:<34}{fps if fps is not None else '-':>10}")
    lines.append("")
    lines.append(f"{'compression':<12}{'source':>8}{'vs source':>11}{'vs raw':>9}{'seed':>7}")
    for kind, ratio in r["encode"]["ratios"].items():
        lines.append(f"{kind:<12}{ratio['source_format']:>8}{ratio['vs_source']:>11.1%}"
                     f"{ratio['vs_raw']:>9.1%}{ratio['seed']:>7.0%}")
    psnr = r["encode"].get("h264_psnr_db")
    if psnr:
        lines.append(f"H.264 PSNR: min {psnr['min']} dB, mean {psnr['mean']} dB")
    print("\n".join(lines))


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small input (smoke test)")
    parser.add_argument("--messages", type=int, default=30_000, help="telemetry messages")
    parser.add_argument("--sessions", type=int, default=12, help="robot sessions they belong to")
    parser.add_argument("--naive-messages", type=int, default=3_000, help="messages for the naive agent")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"worker scenarios, comma-separated (of {', '.join(SCENARIOS)})")
    parser.add_argument("--no-kafka", action="store_true", help="in-process figures only")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report path")
    args = parser.parse_args(argv)
    settings = load_settings()
    rgb, depth_frames, clouds, size = 60, 10, 5, (1920, 1080)
    if args.quick:
        args.messages, args.naive_messages = 2_000, 300
        rgb, depth_frames, clouds, size = 4, 2, 1, (640, 360)
    batch = settings.processors.batch_max
    results: dict[str, Any] = {"core": bench_core(args.messages, args.sessions, batch),
                               "core_live": bench_core(args.messages // 2, 10, 20)}
    if not args.no_kafka:
        with tempfile.TemporaryDirectory() as folder:
            telemetry = {}
            for name in [n for n in args.scenarios.split(",") if n]:
                samples, sessions, batch_max = SCENARIOS[name]
                count = args.messages * 10 // samples // (2 if batch_max else 1)
                telemetry[name] = bench_worker(settings, count, sessions, Path(folder), samples, batch_max)
            results["telemetry"] = telemetry
            if "backlog" in telemetry:
                results["worker"] = telemetry["backlog"]
            results["naive"] = bench_naive(settings, args.naive_messages, args.sessions, Path(folder))
    results["encode"] = bench_encode(rgb, depth_frames, clouds, size)
    report = _common.report(
        "processors",
        {"quick": args.quick, "messages": args.messages, "sessions": args.sessions,
                       "naive_messages": args.naive_messages, "batch_max": settings.processors.batch_max,
                       "frames": {"rgb": rgb, "depth": depth_frames, "pointcloud": clouds, "size": size},
         "kafka": None if args.no_kafka else settings.kafka.bootstrap},
        results,
        _versions(),
    )
    _common.write_json(report, args.out)
    print_table(report)
    return report


if __name__ == "__main__":
    run()
