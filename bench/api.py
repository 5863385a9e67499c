"""ML-Dash API benchmark: time-range queries, aggregations, frames and live latency.

Data: one hour of 100 Hz telemetry of a simulated robot (360,000 points: pose, joints and IMU,
10 samples per record), its 1m aggregations (MongoDB and Redis) and 1h aggregations (MongoDB
only), 60 camera frames (30 recent ones also in Redis, 30 cold ones only in MongoDB + S3), all
landed by the real sinks. ``robostream api`` runs as a child process; the clients are here.

* time-range queries: ``GET /v1/telemetry`` of the hour (every point of the pose channels and of
  every channel, as packed columns and as NDJSON; max_points=4000/1000/60), of one minute, of
  10 s (the viewer's playback chunk), and of a 24-hour session (1 Hz: as many pyramid documents
  as 24 h at 100 Hz) with max_points=4000/1000: p50/p99 of the whole streamed answer and of its
  first bytes, rows and bytes sent, documents read, and a bare pymongo read of the same
  documents (the ceiling);
* aggregations: ``GET /v1/stats/pose.position.x`` at 1m (Redis) and 1h (MongoDB fallback);
* frames: ``GET /v1/frames/{id}`` and the image behind its redirect, recent (Redis) and cold
  (MongoDB + presigning + cache update, each frame asked once), and the newest-100 list;
* live: 10 robots stream 100 Hz telemetry (a record of 10 samples every 100 ms) through the
  Redis sink; one WebSocket client per robot, and a stalled client (handshake, then never
  reads) on the first robot's session; latency from the sink's write to the reading clients:
  a client that stops reading must not slow the others (tests/integration/api/test_live.py
  asserts that they get every message in order; the figures are here).

Prints a table, writes ``bench/results/api.json``. Runs against the stack of the environment
(``ROBOSTREAM_*``), in a database of its own (dropped afterwards unless ``--keep``).

    python bench/api.py             # several minutes: loading 36,000 documents dominates
    python bench/api.py --quick     # 2 minutes of data, seconds of measuring (the smoke test)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import _common
import aiohttp
import numpy as np
import orjson
from _common import Service, free_port, write_json

from robostream.config import Settings, load_settings
from robostream.processors.aggregations import SessionWindows
from robostream.processors.columns import TelemetryColumns, columns_from_payload
from robostream.schemas import build_envelope
from robostream.schemas.examples import example_payload
from robostream.simulator.robot import RobotModel, time_series_payload
from robostream.sinks import SessionEvent, SinkContext, SinkRecord
from robostream.sinks.buckets import LOD_SPAN_US, micros_to_datetime
from robostream.sinks.mongo import MongoSink
from robostream.sinks.points import Telemetry
from robostream.sinks.redis import RedisSink
from robostream.sinks.s3 import S3Sink
from robostream.topics import StatsResolution
from robostream_sdk.session import SessionConfig, session_event

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "api.json"
HOUR_US = 3_600_000_000
STREAMS = ("pose", "joints", "imu")
SEED_GOALS = {  # (seed, goal) in ms, from the issue
    "range": (1000, 250), "aggregations": (200, 10), "recent frame": (500, None),
    "cold frame": (2000, None), "live": (100, 25),
}


def now_us() -> int:
    return time.time_ns() // 1000


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"n": len(ordered), "p50_ms": statistics.median(ordered) * 1000, "p99_ms": p99 * 1000,
            "max_ms": ordered[-1] * 1000}


# -- data ------------------------------------------------------------------------------------------


def records_of(robot: str, session: str, start_us: int, count: int, model: RobotModel,
               first: int = 0, rate_hz: float = 100.0) -> list[TelemetryColumns]:
    """``count`` records of 10 samples at ``rate_hz`` (the SDK's batch), from record ``first`` on."""
    out = []
    for k in range(first, first + count):
        times = (k * 10 + np.arange(10)) / rate_hz
        payload = time_series_payload(model, STREAMS, times)
        out.append(columns_from_payload(robot, session, k, start_us + round(times[0] * 1e6), payload))
    return out


def land_day(settings: Settings, robot: str, session: str, start_us: int) -> str:
    """24 hours of the same channels at 1 Hz: as many pyramid documents as 24 h at 100 Hz."""
    landing = Landing(settings)
    config = SessionConfig(sensors=STREAMS, rates_hz={"pose": 1.0})
    landing.write([SessionEvent(session_event(robot, session, "start", config=config, at=start_us / 1e6))],
                  ("mongo",))
    model = RobotModel(8)
    total = 24 * 360
    for first in range(0, total, 720):
        records = records_of(robot, session, start_us, 720, model, first, rate_hz=1.0)
        landing.write([Telemetry.from_columns(c) for c in records], ("mongo",))
        print(f"  landed {first + 720:,}/{total:,} records of the 24 h session", end="\r", flush=True)
    landing.write([SessionEvent(session_event(robot, session, "end", at=(start_us + 24 * HOUR_US) / 1e6))],
                  ("mongo",))
    landing.close()
    print()
    return session


class Landing:
    """The real sinks, writing what the sink worker would after consuming the records."""

    def __init__(self, settings: Settings) -> None:
        def fail(record: SinkRecord, exc: BaseException) -> None:
            raise RuntimeError(f"a sink rejected a record: {exc}") from exc

        context = SinkContext("api-bench", 0, settings, fail)
        self.mongo, self.redis, self.s3 = MongoSink(settings), RedisSink(settings), S3Sink(settings)
        for sink in (self.mongo, self.redis, self.s3):
            sink.open(context)
        self.offset = 0

    def write(self, items: Sequence[Any], to: Sequence[str]) -> None:
        records = []
        for item in items:
            records.append(SinkRecord("api-bench", 0, self.offset, None, b"\0" * 1500, item=item))
            self.offset += 1
        for name in to:
            getattr(self, name).write(records)

    def close(self) -> None:
        for sink in (self.mongo, self.redis, self.s3):
            sink.close()


def land_session(settings: Settings, robot: str, session: str, start_us: int, minutes: int,
                 frames: int) -> dict[str, Any]:
    """The hour (or ``minutes``) of data of the benchmark; returns what was landed."""
    landing = Landing(settings)
    began = time.monotonic()
    config = SessionConfig(sensors=STREAMS, rates_hz={"pose": 100.0, "joints": 100.0, "imu": 100.0})
    landing.write([SessionEvent(session_event(robot, session, "start", config=config, at=start_us / 1e6))],
                  ("mongo",))
    model = RobotModel(7)
    total = minutes * 600
    windows = SessionWindows(robot, session, 0, (StatsResolution.MINUTE, StatsResolution.HOUR))
    for first in range(0, total, 600):  # a minute of records at a time
        records = records_of(robot, session, start_us, min(600, total - first), model, first)
        landing.write([Telemetry.from_columns(c) for c in records], ("mongo",))
        windows.add(windows.fresh(records))
        print(f"  landed {first + len(records):,}/{total:,} records", end="\r", flush=True)
    landing.write([Telemetry.from_columns(c) for c in records[-100:]], ("redis",))  # the live ring
    closed = [w.to_record() for w in windows.close_idle(1 << 62)]
    landing.write([w for w in closed if w.resolution is StatsResolution.MINUTE], ("mongo", "redis"))
    landing.write([w for w in closed if w.resolution is StatsResolution.HOUR], ("mongo",))
    frame_ids: dict[str, list[str]] = {"recent": [], "cold": []}
    for i in range(frames):
        cold = i < frames // 2
        ts = start_us + (i + 1) * (minutes * 60_000_000 // (frames + 1))
        payload = example_payload("images")
        payload["blob"] = {"format": "jpeg", "content": os.urandom(32 * 1024)}
        envelope = build_envelope("images", payload, robot_id=robot, session_id=session, seq=i,
                                  timestamp=ts / 1e6)
        landing.write([envelope], ("s3", "mongo") if cold else ("s3", "mongo", "redis"))
        frame_ids["cold" if cold else "recent"].append(f"{robot}:{session}:front-{envelope.timestamp_us}")
    landing.write([SessionEvent(session_event(robot, session, "end", at=(start_us + minutes * 60e6) / 1e6))],
                  ("mongo",))
    landing.close()
    print(f"  landed {total * 10:,} points, {len(closed)} windows, {frames} frames "
          f"in {time.monotonic() - began:.0f} s")
    return {"points": total * 10, "documents": total, "frames": frame_ids, "load_s": time.monotonic() - began}


# -- the API process -------------------------------------------------------------------------------


class ApiProcess:
    """``robostream api`` in a child process, reading the benchmark's database."""

    def __init__(self, database: str, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {"ROBOSTREAM_MONGO__DATABASE": database, "ROBOSTREAM_API__ANONYMOUS_READ": "true"}
        self.service = Service("api", ["api", "--port", str(self.port)], folder, env,
                               health_url=f"{self.url}/healthz")
        self.log = self.service.log

    def wait_healthy(self, timeout: float = 60) -> None:
        self.service.start(timeout)

    def cpu_seconds(self) -> float:
        return self.service.cpu_seconds()

    def stop(self) -> None:
        self.service.stop()


# -- measurements ----------------------------------------------------------------------------------


async def timed_get(http: aiohttp.ClientSession, url: str) -> tuple[float, float, int, int]:
    """(seconds to the first bytes, seconds to the end, bytes, status) of one GET, body read."""
    started = time.perf_counter()
    first = None
    size = 0
    async with http.get(url) as response:
        async for chunk in response.content.iter_any():
            first = first if first is not None else time.perf_counter() - started
            size += len(chunk)
        status = response.status
    total = time.perf_counter() - started
    return (first if first is not None else total), total, size, status


async def repeat(times: int, call: Callable[[], Awaitable[tuple[float, float, int, int]]]) -> dict[str, Any]:
    """``times`` calls; failed ones (HTTP >= 400) are counted, not timed."""
    firsts, totals, sizes, failed = [], [], [], 0
    for _ in range(times):
        first, total, size, status = await call()
        if status >= 400:
            failed += 1
            continue
        firsts.append(first)
        totals.append(total)
        sizes.append(size)
    if not totals:
        raise RuntimeError(f"all {times} requests failed")
    return {**percentiles(totals), "first_bytes": percentiles(firsts), "bytes": statistics.median(sizes),
            "failed": failed}


def bare_read(settings: Settings, robot: str, session: str, query: str, source: str,
              level: str | None) -> dict[str, Any]:
    """The same documents the API read for ``query``, read with bare pymongo (the ceiling)."""
    from pymongo import MongoClient

    params = dict(part.split("=", 1) for part in query.lstrip("&").split("&"))
    lo, hi = int(float(params["from"]) * 1e6), int(float(params["to"]) * 1e6)
    fields = [f for f in params.get("fields", "").split(",") if f]
    where: dict[str, Any] = {"robot_id": robot, "session_id": session}
    if source == "raw":
        collection, root, lo = "telemetry", "values", lo - lo % 60_000_000
        head: dict[str, Any] = {"t": 1, "seq": 1, "i": 1}
    else:
        collection, root, head = "telemetry_lod", "stats", {}
        lo -= lo % LOD_SPAN_US[level or "1s"]
        where["level"] = level
    projection = {"_id": 0, "group": 1, "timestamp_us": 1, "channels": 1, **head,
                  **({f"{root}.{f}": 1 for f in fields} if fields else {root: 1})}
    where["timestamp"] = {"$gte": micros_to_datetime(lo), "$lt": micros_to_datetime(hi)}
    groups: list[str | None] = [*sorted({f.split(".", 1)[0] for f in fields})] or [None]
    with MongoClient[dict[str, Any]](settings.mongo.uri, serverSelectionTimeoutMS=5000) as client:
        found = client[settings.mongo.database][collection]
        times = []
        for _ in range(3):
            started = time.perf_counter()
            docs = [d for g in groups for d in found.find(where if g is None else {**where, "group": g},
                                                          projection)]
            times.append(time.perf_counter() - started)
    return {"documents": len(docs), "bare_ms": round(min(times) * 1000, 1)}


async def range_queries(api: ApiProcess, settings: Settings, robot: str, session: str, start_us: int,
                        span_us: int, repeats: int, day_session: str | None) -> dict[str, Any]:
    middle = start_us + span_us // 2
    whole = f"&from={start_us / 1e6}&to={(start_us + span_us) / 1e6}"
    cases: dict[str, tuple[str, str, int]] = {
        "whole range, pose, columns": (session, whole + "&fields=pose&format=columns", repeats),
        "whole range, every channel, columns": (session, whole + "&format=columns", max(1, repeats // 4)),
        "whole range, pose, ndjson": (session, whole + "&fields=pose", max(1, repeats // 10)),
        "whole range, every channel, ndjson": (session, whole, max(1, repeats // 10)),
        "whole range, max_points=4000, columns": (session, whole + "&max_points=4000&format=columns",
                                                  repeats),
        "whole range, max_points=1000": (session, whole + "&max_points=1000", repeats),
        "whole range, max_points=60": (session, whole + "&max_points=60", repeats),
        "1 minute, every point": (session, f"&from={middle / 1e6}&to={(middle + 60_000_000) / 1e6}",
                                  repeats),
        "10 s, pose (viewer chunk)": (session, f"&from={middle / 1e6}&to={(middle + 10_000_000) / 1e6}"
                                      "&fields=pose.position,joints.angle&max_points=2000", repeats),
    }
    if day_session is not None:
        day = f"&from={start_us / 1e6}&to={(start_us + 24 * HOUR_US) / 1e6}"
        cases["24 h, max_points=4000, columns"] = (day_session, day + "&max_points=4000&format=columns",
                                                   repeats)
        cases["24 h, max_points=4000, ndjson"] = (day_session, day + "&max_points=4000", repeats)
        cases["24 h, max_points=1000, columns"] = (day_session, day + "&max_points=1000&format=columns",
                                                   repeats)
    out = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
        for name, (sess, query, times) in cases.items():
            url = f"{api.url}/v1/telemetry?robot={robot}&session={sess}" + query
            out[name] = await repeat(times, partial(timed_get, http, url))
            async with http.get(url) as response:
                body = await response.read()
                source = response.headers.get("X-Robostream-Source", "?")
                level = response.headers.get("X-Robostream-Level")
            out[name].update(source=source, level=level, rows=rows_in(body, "columns" in query),
                             **bare_read(settings, robot, sess, query, source, level))
            print(f"  range: {name}: p50 {out[name]['p50_ms']:.0f} ms ({out[name]['rows']:,} rows, "
                  f"{out[name]['bytes'] / 1e6:.1f} MB, {out[name]['documents']} documents; bare read "
                  f"{out[name]['bare_ms']:.0f} ms)")
    return out


def rows_in(body: bytes, columns: bool) -> int:
    """Points or buckets in an answer (NDJSON lines; the ``n`` of each columns map)."""
    if not columns:
        return body.count(b"\n")
    import msgpack

    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(len(body), 1))
    unpacker.feed(body)
    return sum(block["n"] for block in unpacker)


async def aggregation_queries(api: ApiProcess, robot: str, session: str, repeats: int) -> dict[str, Any]:
    base = f"{api.url}/v1/stats/pose.position.x?robot={robot}&session={session}"
    async with aiohttp.ClientSession() as http:
        return {
            "1m windows (Redis)": await repeat(repeats * 5, lambda: timed_get(http, f"{base}&resolution=1m")),
            "1h windows (MongoDB fallback)": await repeat(repeats * 5,
                                                          lambda: timed_get(http, f"{base}&resolution=1h")),
        }


async def frame_queries(api: ApiProcess, robot: str, session: str, frame_ids: dict[str, list[str]],
                        repeats: int) -> dict[str, Any]:
    async def fetch(http: aiohttp.ClientSession, frame: str) -> tuple[float, float, int, int]:
        started = time.perf_counter()
        async with http.get(f"{api.url}/v1/frames/{frame}", allow_redirects=False) as response:
            redirect = time.perf_counter() - started
            location = response.headers["Location"]
        async with http.get(location) as image:
            size = len(await image.read())
            return redirect, time.perf_counter() - started, size, image.status

    async with aiohttp.ClientSession() as http:
        rounds = max(1, repeats // len(frame_ids["recent"]) + 1)
        recent = [f for _ in range(rounds) for f in frame_ids["recent"]]
        hot = iter(recent)
        cold = iter(frame_ids["cold"])  # each cold frame is cold once: the first read caches it
        listing = f"{api.url}/v1/frames?robot={robot}&session={session}&limit=100"
        return {
            "recent frame (Redis) + image": await repeat(min(len(recent), repeats * 2),
                                                         lambda: fetch(http, next(hot))),
            "cold frame (MongoDB + presign) + image": await repeat(len(frame_ids["cold"]),
                                                                   lambda: fetch(http, next(cold))),
            "newest 100 frames (list)": await repeat(repeats, lambda: timed_get(http, listing)),
        }


async def live_latency(api: ApiProcess, settings: Settings, robots: int, seconds: float,
                       session: str) -> dict[str, Any]:
    """``robots`` robots stream 100 Hz records (10 samples / 100 ms) through the Redis sink."""
    sent: dict[tuple[str, int], float] = {}
    latencies: list[float] = []
    names = [f"live-{i:02d}" for i in range(robots)]
    stop = threading.Event()

    def stream(robot: str) -> None:
        sink = RedisSink(settings)
        sink.open(SinkContext("api-bench", 0, settings, lambda r, e: None))
        model, start, seq = RobotModel(hash(robot) % 100), now_us(), 0
        next_at = time.monotonic()
        while not stop.is_set():
            [record] = records_of(robot, session, start, 1, model, seq)
            sent[(robot, seq)] = time.monotonic()
            sink.write([SinkRecord("api-bench", 0, seq, None, b"", item=Telemetry.from_columns(record))])
            seq += 1
            next_at += 0.1
            time.sleep(max(0.0, next_at - time.monotonic()))
        sink.close()

    async def client(http: aiohttp.ClientSession, robot: str, ready: asyncio.Event) -> None:
        url = f"{api.url.replace('http', 'ws', 1)}/v1/live?robot={robot}&session={session}&types=time_series"
        async with http.ws_connect(url) as ws:
            ready.set()
            async for message in ws:
                body = orjson.loads(message.data)
                if body.get("type") == "time_series":
                    at = sent.get((robot, body["points"][0]["seq"]))
                    if at is not None:
                        latencies.append(time.monotonic() - at)

    stalled = await asyncio.to_thread(
        stalled_client, api.url, f"/v1/live?robot={names[0]}&session={session}&types=time_series")
    async with aiohttp.ClientSession() as http:
        readies = [asyncio.Event() for _ in names]
        clients = [asyncio.create_task(client(http, r, e)) for r, e in zip(names, readies, strict=True)]
        await asyncio.gather(*(e.wait() for e in readies))
        await asyncio.sleep(0.2)
        cpu_before = api.cpu_seconds()
        threads = [threading.Thread(target=stream, args=(r,), daemon=True) for r in names]
        for thread in threads:
            thread.start()
        await asyncio.sleep(seconds)
        stop.set()
        for thread in threads:
            await asyncio.to_thread(thread.join, 5)
        await asyncio.sleep(0.5)
        cpu = api.cpu_seconds() - cpu_before
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
    stalled.close()
    result = percentiles(latencies)
    result.update(robots=robots, seconds=seconds, messages=len(latencies), sent=len(sent),
                  stalled_clients=1, api_cpu_percent=100 * cpu / (seconds + 0.5))
    return result


def stalled_client(url: str, path: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads (tiny receive buffer)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"live endpoint refused the stalled client: {head!r}")
    return sock


# -- report ----------------------------------------------------------------------------------------


def range_goal(measure: str) -> str:
    """The seed's target / the issue's goal (ms) for a time-range query."""
    if "max_points" in measure:
        return "<200 / <50"
    if measure.startswith("whole range, pose"):
        return "<1000 / <250"
    if measure.startswith("whole range"):
        return "<1000 / <1000"
    return "-"


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"robostream ML-Dash API ({report['parameters']['points']:,} points of "
                        f"100 Hz telemetry)")
    columns = ("group", "measure", "n", "first bytes p50 ms", "p50 ms", "p99 ms", "rows / bytes",
               "docs read", "bare read ms", "seed / goal")
    for name in columns:
        table.add_column(name, justify="left" if name in ("group", "measure") else "right")
    results = report["results"]
    for group, key in (("range", "range"), ("aggregations", "aggregations"), ("frames", "frames")):
        for measure, row in results[key].items():
            goal_key = group if group != "frames" else ("cold frame" if "cold" in measure else "recent frame")
            seed, goal = SEED_GOALS.get(goal_key, (None, None)) if "list" not in measure else (None, None)
            target = range_goal(measure) if group == "range" else (
                f"<{seed} / {'<' + str(goal) if goal else '-'}" if seed else "-")
            size = (f"{row['rows']:,} rows, {row['bytes'] / 1e6:.2f} MB" if "rows" in row
                    else f"{row['bytes'] / 1024:.0f} KiB")
            table.add_row(group, measure, str(row["n"]), f"{row['first_bytes']['p50_ms']:.1f}",
                          f"{row['p50_ms']:.1f}", f"{row['p99_ms']:.1f}", size,
                          str(row.get("documents", "-")), str(row.get("bare_ms", "-")), target)
    live = results["live"]
    table.add_row("live", f"{live['robots']} robots, robot -> WS client", str(live["n"]), "-",
                  f"{live['p50_ms']:.1f}", f"{live['p99_ms']:.1f}", f"{live['messages']:,} msgs", "-", "-",
                  "<100 / p99 <25")
    Console(width=200).print(table)
    print(f"live: {live.get('stalled_clients', 0)} stalled client(s) subscribed beside the reading ones")
    print(f"API CPU during the live run: {live['api_cpu_percent']:.0f}% of one core; "
          f"load average {report['machine']['load_avg']}")


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; return (and write) the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 minutes of data, few repeats (smoke test)")
    parser.add_argument("--minutes", type=int, default=60, help="minutes of 100 Hz telemetry to land")
    parser.add_argument("--repeats", type=int, default=20, help="requests per measured query")
    parser.add_argument("--robots", type=int, default=10, help="robots streaming in the live run")
    parser.add_argument("--live-seconds", type=float, default=20.0)
    parser.add_argument("--database", help="reuse this database (landed by an earlier --keep run)")
    parser.add_argument("--keep", action="store_true", help="keep the database (see --database)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.repeats, args.robots, args.live_seconds = 2, 3, 2, 2.0
    base = load_settings()
    database = args.database or f"bench_api_{uuid.uuid4().hex[:8]}"
    settings = base.model_copy(update={"mongo": base.mongo.model_copy(update={"database": database})})
    robot, session = "bench-robot", f"hour-{args.minutes}"
    start = (now_us() // HOUR_US - 2) * HOUR_US
    state_file = Path(tempfile.gettempdir()) / f"{database}.json"
    if args.database and state_file.exists():
        landed = json.loads(state_file.read_text())
        start = landed["start_us"]
        print(f"reusing {database}: {landed['points']:,} points")
    else:
        print(f"landing {args.minutes} min of 100 Hz telemetry into {database} ...")
        frames = 6 if args.quick else 60
        landed = land_session(settings, robot, session, start, args.minutes, frames=frames)
        landed["start_us"] = start
        if not args.quick:
            landed["day_session"] = land_day(settings, robot, "day-1hz", start)
        state_file.write_text(json.dumps(landed))
    live_session = f"live-{uuid.uuid4().hex[:6]}"
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="robostream-api-bench-") as folder:
        api = ApiProcess(database, Path(folder))
        try:
            api.wait_healthy()
            span = args.minutes * 60_000_000
            results["range"] = asyncio.run(range_queries(api, settings, robot, session, start, span,
                                                         args.repeats, landed.get("day_session")))
            results["aggregations"] = asyncio.run(aggregation_queries(api, robot, session, args.repeats))
            results["frames"] = asyncio.run(
                frame_queries(api, robot, session, landed["frames"], args.repeats))
            results["live"] = asyncio.run(
                live_latency(api, settings, args.robots, args.live_seconds, live_session))
        finally:
            api.stop()
            failures = sum(row.get("failed", 0) for group in ("range", "aggregations", "frames")
                           for row in results.get(group, {}).values())
            if failures:
                print(f"{failures} request(s) failed; the API's log ends with:")
                print(api.log.read_text()[-3000:])
            if not args.keep:
                from pymongo import MongoClient

                with MongoClient[dict[str, Any]](settings.mongo.uri, serverSelectionTimeoutMS=5000) as client:
                    client.drop_database(database)
                state_file.unlink(missing_ok=True)
    parameters = {"quick": args.quick, "minutes": args.minutes, "points": landed["points"],
                  "documents": landed["documents"], "repeats": args.repeats, "robots": args.robots,
                  "live_seconds": args.live_seconds, "load_s": landed["load_s"],
                  "mongo": "SecantusDB (MongoDB wire protocol)",
                  "history_slice_s": settings.api.history_slice_s}
    report = _common.report("api", parameters, results,
                            _common.versions("aiohttp", "redis", "pymongo", "orjson", "secantusdb"))
    write_json(report, args.out)
    print_table(report)
    print(f"written: {args.out}")
    return report


if __name__ == "__main__":
    run()
