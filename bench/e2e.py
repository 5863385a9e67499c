"""End-to-end benchmark: simulated robots -> gateway -> Kafka -> processors -> sinks -> API.

Starts robostream's four services (gateway, sinks, processors, API) as child processes on the
configured stack, under a topic prefix, MongoDB database, consumer groups and ports of their own,
then for each case (1, 3, 10 robots x telemetry only / with 640x360 media) runs the simulator
(``robostream.simulator``, the seed's rates, through the robot SDK) for ``--duration`` seconds, in
``--sim-processes`` child processes, while the bench's own process follows the live view:

* sustained messages/s and MB/s acked by the gateway (the SDK's counters);
* consumer lag per group when the robots stop, and how long the pipeline took to drain;
* lost messages: acked by the gateway but not in Kafka (per data type), or time_series records
  not in MongoDB's ``telemetry`` once the MongoDB sink caught up -- must be 0 (records the sink
  had not reached when ``--drain-timeout`` ended are reported as ``pending_mongo``, not lost);
* CPU seconds (% of one core) and peak RSS per component (psutil on the service PIDs);
* live latency: robot -> ML-Dash API WebSocket client (``/v1/live``) of EVERY sample the client
  received, from the sample's own time to its arrival (p50/p99/p99.9/max), split into robot ->
  Kafka (the record's Kafka timestamp), Kafka -> Redis publish (the bench's own subscriber),
  publish -> client and Kafka -> client;
* the floor of that path, once per run: raw confluent-kafka produce -> consume -> redis-py
  PUBLISH -> aiohttp WebSocket server (redis.asyncio subscriber) -> client, no robostream code
  (``--floor-records`` at ``--floor-rate``/s, 500 with ``--quick``);
* ceilings in the same run, on the same data: confluent-kafka consuming the case's records and
  producing them again directly; pymongo ``insert_many`` of the telemetry documents the sink
  wrote; boto3 ``put_object`` of the frames the sink wrote.

``--profile SERVICE ...`` runs those services under pyinstrument and saves their profiles as text
in ``bench/results/profiles/``. Prints a table and writes ``bench/results/e2e.json``.

    python bench/e2e.py                     # 6 cases x 60 s (+ drain and ceilings): ~15 min
    python bench/e2e.py --small-duration 30 # 1 and 3 robots for 30 s, 10 robots for 60 s
    python bench/e2e.py --robots 10 --modes telemetry --profile processors gateway
    python bench/e2e.py --quick             # 1 robot, 5 s, telemetry only (the smoke test)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import _common
import aiohttp
import orjson
import psutil
from _common import PROFILES, RESULTS, Service, free_port, latency_ms, write_json
from confluent_kafka import OFFSET_BEGINNING, Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from robostream.config import Settings, load_settings
from robostream.gateway.producer import producer_config
from robostream.processors.columns import TimeSeriesReader
from robostream.schemas import ConfluentSchemaResolver
from robostream.simulator import SimulationOptions
from robostream.simulator.runner import SimulatedRobot, SimulationReport, run_simulation
from robostream.sinks.s3 import UPLOAD_THREADS, s3_client
from robostream.sinks.task import group_id
from robostream.stack.process import ProcessRecord
from robostream.topics import catalogue, create_topics, topic_for

DEFAULT_OUT = RESULTS / "e2e.json"
MB = 1_000_000
SERVICES = ("gateway", "sinks", "sinks-live", "processors", "api")
CEILING_MAX_RECORDS = 200_000


# -- the services ----------------------------------------------------------------------------------


@dataclass
class Pipeline:
    """The four services on a prefix, database, groups and ports of this run."""

    settings: Settings
    folder: Path
    run_id: str
    profile: Sequence[str] = ()
    redis_flush_ms: int | None = None
    sink_layout: str = "split"
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        connectors = [c.model_dump(mode="json") | {"name": f"e2e{self.run_id}-{c.name}"}
                      for c in self.settings.connectors]
        for connector in connectors:
            if self.redis_flush_ms is not None and connector["kind"] == "redis":
                connector["flush_interval_ms"] = self.redis_flush_ms
        return {
            "ROBOSTREAM_TOPICS__PREFIX": self.settings.topics.prefix,
            "ROBOSTREAM_MONGO__DATABASE": self.settings.mongo.database,
            "ROBOSTREAM_PROCESSORS__APP_ID": self.settings.processors.app_id,
            "ROBOSTREAM_CONNECTORS": json.dumps(connectors),
            "ROBOSTREAM_AUTH__ALLOW_UNAUTHENTICATED": "true",
            "ROBOSTREAM_API__ANONYMOUS_READ": "true",
            "ROBOSTREAM_GATEWAY__PORT": str(self.settings.gateway.port),
            "ROBOSTREAM_SINKS__PORT": str(self.settings.sinks.port),
            "ROBOSTREAM_SINKS__LIVE_PORT": str(self.settings.sinks.live_port),
            "ROBOSTREAM_API__PORT": str(self.settings.api.port),
        }

    @property
    def groups(self) -> list[str]:
        return [group_id(f"e2e{self.run_id}-{c.name}") for c in self.settings.connectors] + [
            self.settings.processors.app_id]

    def start(self) -> None:
        s = self.settings
        plan = {
            "gateway": (["gateway"], f"http://127.0.0.1:{s.gateway.port}/healthz"),
            "sinks": (["sink", "run"], f"http://127.0.0.1:{s.sinks.port}/connectors"),
            "processors": (["process"], None),
            "api": (["api"], f"http://127.0.0.1:{s.api.port}/healthz"),
        }
        if self.sink_layout == "split":  # as the stack runs them (sinks.split_live)
            plan["sinks"] = (["sink", "run", "--role", "store"], plan["sinks"][1])
            plan["sinks-live"] = (["sink", "run", "--role", "live"],
                                  f"http://127.0.0.1:{s.sinks.live_port}/connectors")
        for name, (args, health) in plan.items():
            python_args: list[str] = []
            if name in self.profile:
                session = self.folder / f"{name}.pyisession"
                python_args = ["-m", "pyinstrument", "-r", "pyinstrument.renderers.SessionRenderer",
                               "-o", str(session)]
            self.services[name] = Service(name, args, self.folder, self.env, health_url=health, settle_s=8.0,
                                          python_args=python_args).spawn()
        for service in self.services.values():
            service.wait(120)

    def stop(self) -> None:
        """Stop every service side by side (a profiled one gets SIGINT first, to write its profile)."""
        with ThreadPoolExecutor(len(self.services) or 1) as pool:
            list(pool.map(self._stop, self.services))

    def _stop(self, name: str) -> None:
        service = self.services[name]
        if name in self.profile and service.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(service.pid, signal.SIGINT)  # pyinstrument writes its session on exit
            _common.wait_until(lambda: not service.alive(), 60)
        service.stop()


# -- the stack's servers (CPU only: they are shared with whatever else runs) ----------------------


INFRA = ("kafka", "mongo", "s3", "redis", "schema-registry")


def infra_processes(settings: Settings) -> dict[str, psutil.Process]:
    """The stack's server processes, from the records ``stack up`` wrote (missing ones skipped)."""
    out = {}
    for name in INFRA:
        record = ProcessRecord.load(settings.state_dir / "run" / f"{name}.json")
        proc = record.process() if record else None
        if proc is not None:
            out[name] = proc
    return out


def cpu_of(proc: psutil.Process) -> float:
    total = 0.0
    with contextlib.suppress(psutil.Error):
        for p in (proc, *proc.children(recursive=True)):
            times = p.cpu_times()
            total += times.user + times.system
    return total


# -- Kafka bookkeeping -----------------------------------------------------------------------------


def prefix_topics(settings: Settings) -> list[str]:
    return [s.name for s in catalogue(settings) if s.name.startswith(settings.topics.prefix + ".")]


def high_watermarks(admin: AdminClient, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    metadata = admin.list_topics(timeout=10).topics
    request = {TopicPartition(t, p): OffsetSpec.latest() for t in topics if t in metadata
               for p in metadata[t].partitions}
    out = {}
    for tp, future in admin.list_offsets(request, request_timeout=30).items():
        out[(tp.topic, tp.partition)] = future.result().offset
    return out


def group_lag(admin: AdminClient, groups: Sequence[str], hw: dict[tuple[str, int], int]) -> dict[str, int]:
    """Messages each group still has to read: high watermark minus committed offset, summed over
    every partition of the topics it committed on (uncommitted partitions count from 0)."""
    out = {}
    for group in groups:
        future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
        committed = {(tp.topic, tp.partition): tp.offset for tp in future.result().topic_partitions}
        topics = {t for t, _ in committed}
        out[group] = sum(max(0, end - max(0, committed.get((t, p), 0))) for (t, p), end in hw.items()
                         if t in topics)
    return out


def delta(after: dict[tuple[str, int], int], before: dict[tuple[str, int], int]) -> dict[str, int]:
    per_topic: Counter[str] = Counter()
    for (topic, partition), end in after.items():
        per_topic[topic] += end - before.get((topic, partition), 0)
    return dict(per_topic)


# -- one case --------------------------------------------------------------------------------------


@dataclass
class LiveClients:
    """One ``/v1/live`` WebSocket client per robot, in the bench's own process (the robots run in
    processes of their own, so a client's clock is not held up by their work). On the path it only
    reads the clock and keeps the message (``arrivals``: arrival time, session, raw text);
    :func:`live_latency` parses them after the case and times every sample they carry."""

    api_url: str
    arrivals: list[tuple[float, str, str]] = field(default_factory=list)
    reconnects: int = 0
    stopping: bool = False

    async def watch(self, sessions: Any, robots: int) -> None:
        """Follow each ``(robot_id, session_id)`` the robot processes announce on ``sessions``."""
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as http:
            clients = []
            for _ in range(robots):
                robot_id, session = await loop.run_in_executor(None, sessions.get, True, 600)
                clients.append(asyncio.create_task(self._client(http, robot_id, session)))
            try:
                await asyncio.gather(*clients)
            finally:
                for client in clients:
                    client.cancel()
                await asyncio.gather(*clients, return_exceptions=True)

    async def _client(self, http: aiohttp.ClientSession, robot_id: str, session: str) -> None:
        """Follow one robot's live view; reconnect (and count it) when the API drops the socket."""
        url = (f"{self.api_url.replace('http', 'ws', 1)}/v1/live?robot={robot_id}"
               f"&session={session}&types=time_series")
        while not self.stopping:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with http.ws_connect(url) as ws:
                    async for message in ws:
                        self.arrivals.append((time.time(), session, message.data))
            self.reconnects += 1
            await asyncio.sleep(0.2)


class RedisTap:
    """The bench's own Redis subscriber (a thread, pattern ``live:*:time_series``): when it
    receives a sink's publish is the publish time of the split (an upper bound: Redis delivery and
    this thread's wake-up come on top). Messages of other runs on the same Redis are kept too and
    dropped by session when matched."""

    PATTERN = "live:*:time_series"

    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_connect_timeout=5)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.psubscribe(self.PATTERN)
        self._pubsub.get_message(timeout=5.0)  # the psubscribe confirmation: listening from here
        self._stop = threading.Event()
        self.seen: list[tuple[float, bytes]] = []
        self._thread = threading.Thread(target=self._run, name="redis-tap", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.2)
            if message is not None and message["type"] == "pmessage":
                self.seen.append((time.time(), message["data"]))

    def close(self) -> list[tuple[float, bytes]]:
        """Stop listening; returns (receipt time, message) of every publish seen."""
        self._stop.set()
        self._thread.join(5)
        with contextlib.suppress(Exception):
            self._pubsub.close()
            self._client.close()
        return self.seen


def _message_key(session: str, points: list[dict[str, Any]]) -> tuple[str, int, int]:
    """A live message's identity: its session and newest point's (seq, index) (the API may leave
    out a first message's points that its snapshot already had, never the newest)."""
    last = points[-1]
    return session, int(last["seq"]), int(last["i"])


def live_latency(live: LiveClients, published: list[tuple[float, bytes]], sessions: Sequence[str],
                 kafka_ts: dict[tuple[str, int], float]) -> dict[str, Any]:
    """Latency of EVERY sample a ``/v1/live`` client received (arrival - the sample's own time),
    and its split (each hop counted once per sample it carried, n = samples):

    * ``robot_to_kafka``: sample time -> its record's Kafka timestamp (the gateway's produce
      time, ms resolution), over every sample of the case's records in Kafka;
    * ``kafka_to_publish``: the record's Kafka timestamp -> the bench's Redis subscriber received
      the sink's publish (:class:`RedisTap`);
    * ``publish_to_client``: that receipt -> the WS client's (API fan-out, WebSocket);
    * ``kafka_to_client``: the record's Kafka timestamp -> the WS client's receipt (= total -
      robot_to_kafka, per record).
    """
    wanted = set(sessions)
    seen_at: dict[tuple[str, int, int], float] = {}
    for at, raw in published:
        body = orjson.loads(raw)
        if body.get("session_id") in wanted and body.get("points"):
            seen_at.setdefault(_message_key(body["session_id"], body["points"]), at)
    total: list[float] = []
    slow: list[float] = []  # the 1 Hz metrics stream's samples: no other stream to wait for
    to_publish: list[float] = []
    to_client: list[float] = []
    kafka_to_client: list[float] = []
    messages = 0
    for arrival, session, data in live.arrivals:
        body = orjson.loads(data)
        points = body.get("points")
        if body.get("type") != "time_series" or not points:
            continue
        messages += 1
        total += [arrival - p["ts_us"] / 1e6 for p in points]
        slow += [arrival - p["ts_us"] / 1e6 for p in points
                 if any(name.startswith("metrics.") for name in p.get("values", ()))]
        seen = seen_at.get(_message_key(session, points))
        if seen is not None:
            to_client += [arrival - seen] * len(points)
        for p in points:
            ts = kafka_ts.get((session, int(p["seq"])))
            if ts is not None:
                kafka_to_client.append(arrival - ts)
                if seen is not None:
                    to_publish.append(seen - ts)
    return {**latency_ms(total), "samples": len(total), "messages": messages,
            "reconnects": live.reconnects, "metrics_1hz": latency_ms(slow),
            "kafka_to_publish": latency_ms(to_publish),
            "publish_to_client": latency_ms(to_client), "kafka_to_client": latency_ms(kafka_to_client),
            "basis": "every sample: arrival at the /v1/live client - the sample's own time"}


def simulate(
    settings: Settings, robots: int, media: bool, duration: float, api_url: str, spool: Path, processes: int,
) -> tuple[SimulationReport, LiveClients, list[tuple[float, bytes]], float, float]:
    """Run the robots in ``processes`` child processes (real robots do not share one event loop)
    while this process follows their live views; returns the report, the clients, the publishes
    seen, the robots' CPU seconds and the wall time from their start signal."""
    options = SimulationOptions.from_settings(
        settings, robots=robots, duration_s=duration, media=media, resolution="640x360",
        spool_dir=spool, progress=False)
    parts = [list(range(robots))[k::processes] for k in range(min(processes, robots))]
    spawn = multiprocessing.get_context("spawn")
    sessions, results, ready, start = spawn.Queue(), spawn.Queue(), spawn.Queue(), spawn.Event()
    children = [spawn.Process(target=robots_process, args=(options, part, sessions, results, ready, start),
                              daemon=True) for part in parts]
    live = LiveClients(api_url)

    def collect() -> list[tuple[SimulationReport, float]]:
        return [results.get(True, duration + 600) for _ in children]

    async def main() -> list[tuple[SimulationReport, float]]:
        watch = asyncio.create_task(live.watch(sessions, robots))
        try:
            return await asyncio.get_running_loop().run_in_executor(None, collect)
        finally:
            live.stopping = True
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    for child in children:
        child.start()
    for _ in children:  # every robot process has imported what it needs: start them together
        ready.get(True, 300)
    tap = RedisTap(settings.redis.url)
    start.set()
    started = time.monotonic()
    try:
        done = asyncio.run(main())
    finally:
        wall = time.monotonic() - started
        published = tap.close()
        for child in children:
            child.join(30)
            if child.is_alive():
                child.kill()
    reports = [robot for part, _ in done for robot in part.robots]
    order = {plan.robot_id: index for index, plan in enumerate(options.robots)}
    reports.sort(key=lambda r: order[r.robot_id])
    report = SimulationReport(reports, max(part.wall_s for part, _ in done))
    return report, live, published, sum(cpu for _, cpu in done), wall


def robots_process(options: SimulationOptions, indexes: list[int], sessions: Any, results: Any, ready: Any,
                   start: Any) -> None:
    """A child process: once ``start`` is set, run the robots at ``indexes`` of the plan, announce
    each one's session as it starts, and put ``(report, CPU seconds of the run)`` on ``results``."""

    async def announce(robots: list[SimulatedRobot]) -> None:
        for robot in robots:
            while not robot.session_id:  # noqa: ASYNC110 (set by the robot's task, no event to wait on)
                await asyncio.sleep(0.02)
            sessions.put((robot.plan.robot_id, robot.session_id))

    async def main() -> SimulationReport:
        return await run_simulation(options, robot_indexes=indexes,
                                    on_start=lambda rs: asyncio.get_running_loop().create_task(announce(rs)))

    me = psutil.Process()
    ready.put(me.pid)
    start.wait()
    cpu0 = sum(me.cpu_times()[:2])
    report = asyncio.run(main())
    results.put((report, sum(me.cpu_times()[:2]) - cpu0))


def mongo_landed(settings: Settings, sessions: Sequence[str]) -> int:
    """time_series records (distinct seq per session) in the ``telemetry`` minute buckets."""
    from pymongo import MongoClient

    from robostream.sinks.buckets import I8, unpack

    with MongoClient[dict[str, Any]](settings.mongo.uri, serverSelectionTimeoutMS=5000) as client:
        telemetry = client[settings.mongo.database]["telemetry"]
        return sum(len({int(seq) for doc in telemetry.find({"session_id": s}, {"seq": 1})
                        for seq in set(unpack(doc["seq"], I8).tolist())}) for s in sessions)


def run_case(pipeline: Pipeline, admin: AdminClient, robots: int, media: bool, duration: float,
             drain_timeout: float, folder: Path, sim_processes: int) -> dict[str, Any]:
    settings = pipeline.settings
    topics = prefix_topics(settings)
    before = high_watermarks(admin, topics)
    cpu0 = {n: s.cpu_seconds() for n, s in pipeline.services.items()}
    infra = infra_processes(settings)
    infra0 = {n: cpu_of(p) for n, p in infra.items()}
    for service in pipeline.services.values():
        service.reset_peak()
    api_url = f"http://127.0.0.1:{settings.api.port}"
    report, live, published, robots_cpu, wall = simulate(settings, robots, media, duration, api_url,
                                                         folder / f"spool-{robots}-{media}", sim_processes)
    cpu = {n: s.cpu_seconds() - cpu0[n] for n, s in pipeline.services.items()}
    cpu["simulator"] = robots_cpu  # the robots' processes from their start signal (not their imports)
    infra_cpu = {n: 100 * (cpu_of(p) - infra0[n]) / wall for n, p in infra.items()}
    peak = {n: s.peak_rss for n, s in pipeline.services.items()}
    peak["simulator"] = psutil.Process().memory_info().rss  # this process: the live clients
    end_hw = high_watermarks(admin, topics)
    lag_at_end = group_lag(admin, pipeline.groups, end_hw)
    sessions = [r.session_id for r in report.robots]
    envelopes: Counter[str] = Counter()
    for r in report.robots:
        envelopes.update(r.envelopes)
    drain_started = time.monotonic()
    landed_mongo, lag = 0, lag_at_end
    while True:
        lag = group_lag(admin, pipeline.groups, high_watermarks(admin, topics))
        landed_mongo = mongo_landed(settings, sessions)
        if (sum(lag.values()) == 0 and landed_mongo >= envelopes["time_series"]) or (
                time.monotonic() - drain_started > drain_timeout):
            break
        time.sleep(1.0)
    drain_s = time.monotonic() - drain_started
    # still behind when the wait ended: not lost (uncommitted, redelivered), just not landed yet
    mongo_behind = any(n > 0 for g, n in lag.items() if g.endswith("-mongo"))
    in_kafka = delta(end_hw, before)
    lost_kafka = {dt: n - in_kafka.get(topic_for(dt, settings), 0) for dt, n in envelopes.items()}
    seconds = report.robots[0].duration_s if report.robots else wall
    acked, sent_bytes = report.total("acked"), report.total("bytes_sent")
    return {
        "robots": robots, "media": media, "duration_s": seconds, "wall_s": wall,
        "messages_acked": acked, "messages_created": report.total("created"),
        "envelopes": dict(envelopes), "records_in_kafka": sum(in_kafka.values()),
        "msgs_per_s": acked / seconds, "records_per_s": sum(envelopes.values()) / seconds,
        "mb_per_s": sent_bytes / MB / seconds, "bytes_sent": sent_bytes,
        "sdk_lost": max(0, report.total("created") - acked - report.total("spooled")
                        - report.total("rejected")),
        "rejected": report.total("rejected"), "spooled_at_end": report.total("spooled"),
        "lost_kafka": sum(max(0, v) for v in lost_kafka.values()),
        "lost_kafka_by_type": {k: v for k, v in lost_kafka.items() if v},
        "telemetry_records_acked": envelopes["time_series"], "telemetry_records_in_mongo": landed_mongo,
        "lost_mongo": 0 if mongo_behind else max(0, envelopes["time_series"] - landed_mongo),
        "pending_mongo": max(0, envelopes["time_series"] - landed_mongo) if mongo_behind else 0,
        "lag_at_end": lag_at_end, "lag_after_drain": lag, "drain_s": drain_s,
        "cpu_s": cpu, "cpu_percent": {n: 100 * v / wall for n, v in cpu.items()},
        "peak_rss_mb": {n: v / 2**20 for n, v in peak.items()},
        "infra_cpu_percent": infra_cpu, "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "sessions": sessions,
        "_range": (before, end_hw),
        "_live": (live, published),  # timed in ceilings(), with the Kafka timestamps of its records
        "lost": sum(max(0, v) for v in lost_kafka.values())
        + (0 if mongo_behind else max(0, envelopes["time_series"] - landed_mongo)),
    }


# -- ceilings --------------------------------------------------------------------------------------


def consume_ceiling(settings: Settings, before: dict[tuple[str, int], int],
                    after: dict[tuple[str, int], int]) -> tuple[dict[str, Any], list[Any]]:
    """confluent-kafka reading the case's records (up to CEILING_MAX_RECORDS) from Kafka."""
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": f"ceiling-{uuid.uuid4()}",
                         "enable.auto.commit": False, "fetch.max.bytes": 64 * MB,
                         "max.partition.fetch.bytes": settings.topics.max_message_bytes})
    wanted = {tp: end for tp, end in after.items() if end > before.get(tp, 0)}
    consumer.assign([TopicPartition(t, p, before.get((t, p), 0)) for t, p in wanted])
    total = min(CEILING_MAX_RECORDS, sum(end - before.get(tp, 0) for tp, end in wanted.items()))
    records: list[Any] = []
    first = consumer.consume(1, 30.0)  # connect and fetch before timing
    records += [(m.topic(), m.key(), m.value(), m.headers(), m.timestamp()[1]) for m in first
                if m.error() is None]
    cpu0, start = time.process_time(), time.perf_counter()
    deadline = time.monotonic() + 120
    while len(records) < total and time.monotonic() < deadline:
        for message in consumer.consume(1000, 1.0):
            if message.error() is None:
                records.append((message.topic(), message.key(), message.value(), message.headers(),
                                message.timestamp()[1]))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    consumer.close()
    nbytes = sum(len(r[2] or b"") for r in records)
    return ({"records": len(records), "records_per_s": len(records) / seconds,
             "mb_per_s": nbytes / MB / seconds, "cpu_s": cpu}, records)


def robot_to_kafka(settings: Settings, records: list[Any]) -> tuple[dict[str, float],
                                                                      dict[tuple[str, int], float]]:
    """Latency split, the robot side (SDK record span and batching, network, gateway): EVERY
    sample's time -> its time_series record's Kafka timestamp (the gateway's produce time, ms).
    Also returns each record's Kafka timestamp in seconds by (session, seq)."""
    reader = TimeSeriesReader(ConfluentSchemaResolver(settings.schema_registry.url))
    topic = topic_for("time_series", settings)
    lags: list[float] = []
    stamps: dict[tuple[str, int], float] = {}
    for t, _, value, _, ts in records:
        if t != topic or ts <= 0:
            continue
        columns = reader.read(value)
        stamps[(columns.session_id, int(columns.seq))] = ts / 1e3
        lags += (ts / 1e3 - columns.times / 1e6).tolist()
    return latency_ms(lags), stamps


def produce_ceiling(settings: Settings, admin: AdminClient, records: list[Any]) -> dict[str, Any]:
    """confluent-kafka producing the same records (gateway's producer settings) to a scratch topic."""
    topic = f"{settings.topics.prefix}.ceiling"
    if topic not in admin.list_topics(timeout=10).topics:
        for future in admin.create_topics([NewTopic(topic, settings.topics.partitions, 1)]).values():
            future.result()
    config = producer_config(settings)
    config.pop("logger", None)
    producer = Producer(config)
    producer.list_topics(timeout=10)
    cpu0, start = time.process_time(), time.perf_counter()
    for _, key, value, headers, _ts in records:
        while True:
            try:
                producer.produce(topic, value, key, headers=cast(Any, headers))
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(120)
    seconds = time.perf_counter() - start
    nbytes = sum(len(r[2] or b"") for r in records)
    return {"records": len(records), "records_per_s": len(records) / seconds,
            "mb_per_s": nbytes / MB / seconds, "cpu_s": time.process_time() - cpu0}


def mongo_ceiling(settings: Settings, sessions: Sequence[str]) -> dict[str, Any]:
    """Bare insert_many (batches of 500, the sink's indexes) of the telemetry documents the sink wrote."""
    from pymongo import MongoClient

    with MongoClient[dict[str, Any]](settings.mongo.uri, serverSelectionTimeoutMS=5000) as client:
        db = client[settings.mongo.database]
        docs = list(db["telemetry"].find({"session_id": {"$in": list(sessions)}}))
        scratch = db["ceiling_telemetry"]
        scratch.drop()
        scratch.create_index([("robot_id", 1), ("session_id", 1), ("timestamp", 1)])
        start = time.perf_counter()
        for i in range(0, len(docs), 500):
            scratch.insert_many(docs[i:i + 500], ordered=False)
        seconds = time.perf_counter() - start
        scratch.drop()
    return {"documents": len(docs), "docs_per_s": len(docs) / seconds if docs else 0.0}


def s3_ceiling(settings: Settings, sessions: Sequence[str], robots: Sequence[str]) -> dict[str, Any]:
    """boto3 put_object (the sink's thread count) of the raw frames the S3 sink wrote."""
    client = s3_client(settings)
    bucket = settings.s3.bucket
    keys = [o["Key"] for robot, session in zip(robots, sessions, strict=True)
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=f"raw/{robot}/{session}/")
            for o in page.get("Contents", [])][:600]
    if not keys:
        return {"objects": 0, "mb_per_s": 0.0, "objects_per_s": 0.0}
    bodies = [client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys]
    prefix = f"bench-ceiling/{uuid.uuid4().hex[:8]}/"

    def put(item: tuple[int, bytes]) -> None:
        client.put_object(Bucket=bucket, Key=f"{prefix}{item[0]}", Body=item[1])

    start = time.perf_counter()
    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        list(pool.map(put, enumerate(bodies)))
    seconds = time.perf_counter() - start
    for i in range(0, len(bodies), 1000):
        client.delete_objects(Bucket=bucket, Delete={"Objects": [
            {"Key": f"{prefix}{j}"} for j in range(i, min(len(bodies), i + 1000))]})
    return {"objects": len(bodies), "objects_per_s": len(bodies) / seconds,
            "mb_per_s": sum(map(len, bodies)) / MB / seconds}


def ceilings(settings: Settings, admin: AdminClient, case: dict[str, Any]) -> dict[str, Any]:
    before, after = case["_range"]
    consume, records = consume_ceiling(settings, before, after)
    live, published = case.pop("_live")
    split, stamps = robot_to_kafka(settings, records)
    case["live"] = live_latency(live, published, case["sessions"], stamps) | {"robot_to_kafka": split}
    out = {"kafka_consume": consume, "kafka_produce": produce_ceiling(settings, admin, records),
           "mongo_insert_many": mongo_ceiling(settings, case["sessions"])}
    if case["media"]:
        robots = [f"robot_{i + 1:03d}" for i in range(case["robots"])]
        out["s3_put"] = s3_ceiling(settings, case["sessions"], robots)
    ours = case["records_per_s"]
    out["ratios"] = {"records/s ours / kafka produce": ours / out["kafka_produce"]["records_per_s"],
                     "records/s ours / kafka consume": ours / consume["records_per_s"]}
    return out


# -- the floor: the same path with no robostream code -------------------------------------------


FLOOR_PAD = 120  # bytes of padding: a record of ~160 bytes


def floor(settings: Settings, admin: AdminClient, run_id: str, count: int, rate: float) -> dict[str, Any]:
    """The live path with nothing of ours on it: a raw confluent-kafka producer (acks=all,
    idempotence, linger.ms=0) writes ``count`` small records at ``rate``/s to a bench-only topic; a
    raw confluent-kafka consumer (a thread) PUBLISHes each value with redis-py; an aiohttp
    WebSocket server in this process (loopback, free port), subscribed with redis.asyncio, forwards
    each message to one WebSocket client, which times send -> arrival. The topic is deleted after."""
    topic = f"{settings.topics.prefix}.floor"
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result()
    try:
        return asyncio.run(_floor(settings, topic, f"bench-floor:{run_id}", count, rate))
    finally:
        for future in admin.delete_topics([topic], operation_timeout=60).values():
            with contextlib.suppress(Exception):
                future.result()


async def _floor(settings: Settings, topic: str, channel: str, count: int, rate: float) -> dict[str, Any]:
    import redis
    import redis.asyncio as aredis
    from aiohttp import WSMsgType, web

    subscriber = aredis.Redis.from_url(settings.redis.url)

    async def forward(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        pubsub = subscriber.pubsub()
        await pubsub.subscribe(channel)

        async def pump() -> None:
            async for message in pubsub.listen():
                if message["type"] == "subscribe":
                    await ws.send_str("ready")
                elif message["type"] == "message":
                    await ws.send_bytes(message["data"])

        task = asyncio.create_task(pump())
        try:
            async for _ in ws:  # until the client closes
                pass
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            await pubsub.aclose()
        return ws

    app = web.Application()
    app.router.add_get("/", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop, warm = threading.Event(), threading.Event()
    bootstrap = settings.kafka.bootstrap

    def produce() -> int:
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                             "linger.ms": 0})
        pad = "x" * FLOOR_PAD
        # warm-up records (i < 0, not timed) until the client got one: every part is connected
        i = -1
        while not warm.wait(0.05):
            producer.produce(topic, orjson.dumps({"i": i, "t": time.time(), "pad": pad}))
            producer.poll(0)
            i -= 1
            if i < -600 or stop.is_set():
                raise RuntimeError("floor: no warm-up record reached the WebSocket client in 30 s")
        start = time.monotonic()
        for k in range(count):
            wait = start + k / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if stop.is_set():
                break
            producer.produce(topic, orjson.dumps({"i": k, "t": time.time(), "pad": pad}))
            producer.poll(0)
        producer.flush(30)
        return len(orjson.dumps({"i": count, "t": time.time(), "pad": pad}))

    def consume() -> None:
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-floor-{uuid.uuid4()}",
                             "enable.auto.commit": False})
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        publisher = redis.Redis.from_url(settings.redis.url)
        try:
            while not stop.is_set():
                message = consumer.poll(0.1)
                if message is not None and message.error() is None:
                    publisher.publish(channel, cast(bytes, message.value()))
        finally:
            consumer.close()
            publisher.close()

    latencies: list[float] = []
    consumer_task: asyncio.Future[None] | None = None
    producer_task: asyncio.Future[int] | None = None
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{port}/") as ws:
            ready = await ws.receive(timeout=10)
            assert ready.type == WSMsgType.TEXT and ready.data == "ready", ready
            loop = asyncio.get_running_loop()
            consumer_task = loop.run_in_executor(None, consume)
            producer_task = loop.run_in_executor(None, produce)
            deadline = time.monotonic() + 30 + count / rate + 30
            while len(latencies) < count and time.monotonic() < deadline:
                if producer_task.done() and producer_task.exception() is not None:
                    break
                try:
                    message = await ws.receive(timeout=1.0)
                except TimeoutError:
                    continue
                arrival = time.time()
                if message.type != WSMsgType.BINARY:
                    break
                body = orjson.loads(message.data)
                if body["i"] >= 0:
                    latencies.append(arrival - body["t"])
                else:
                    warm.set()
    finally:
        stop.set()
        for task in (consumer_task, producer_task):
            if task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 60)
        await runner.cleanup()
        await subscriber.aclose()
    assert producer_task is not None
    record_bytes = producer_task.result()  # raises what the producer raised
    return {**latency_ms(latencies), "records": count, "received": len(latencies),
            "lost": count - len(latencies), "rate_per_s": rate, "record_bytes": record_bytes,
            "path": "confluent-kafka produce (acks=all, idempotent, linger.ms=0) -> Kafka -> "
                    "confluent-kafka consumer thread -> redis-py PUBLISH -> redis.asyncio "
                    "subscriber in an aiohttp WebSocket server -> aiohttp WebSocket client (loopback)"}


# -- report ----------------------------------------------------------------------------------------


def short(service: str) -> str:
    """A service's name in three letters for the table (``sinks-live`` -> ``liv``)."""
    return "liv" if service == "sinks-live" else service[:3]


def case_name(case: dict[str, Any]) -> str:
    plural = "s" if case["robots"] > 1 else ""
    return f"{case['robots']} robot{plural}, {'media' if case['media'] else 'telemetry'}"


LIVE_HOPS = (("", "robot -> WS client (total)"), ("robot_to_kafka", "robot -> Kafka"),
             ("kafka_to_publish", "Kafka -> Redis publish"), ("publish_to_client", "publish -> WS client"),
             ("kafka_to_client", "Kafka -> WS client"))


def quantiles(stat: dict[str, Any]) -> str:
    """``p50/p99/p99.9/max`` of a :func:`_common.latency_ms` result, in ms."""
    if not stat.get("n"):
        return "-"
    return "/".join(f"{stat[k]:.1f}" if stat[k] < 10 else f"{stat[k]:.0f}"
                    for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms"))


def print_report(report: dict[str, Any]) -> None:
    rows = []
    for case in report["results"]["cases"]:
        c = case["ceilings"]
        rows.append([
            case_name(case), f"{case['msgs_per_s']:,.0f}", f"{case['records_per_s']:,.0f}",
            f"{case['mb_per_s']:.2f}", str(sum(case["lag_at_end"].values())), f"{case['drain_s']:.1f}",
            str(case["lost"]), quantiles(case["live"]),
            " ".join(f"{short(n)} {v:.0f}" for n, v in case["cpu_percent"].items()),
            " ".join(f"{short(n)} {v:.0f}" for n, v in case["peak_rss_mb"].items()),
            f"{c['kafka_produce']['records_per_s']:,.0f}", f"{c['kafka_consume']['records_per_s']:,.0f}",
            f"{c['mongo_insert_many']['docs_per_s']:,.0f}",
            f"{c['s3_put']['mb_per_s']:.1f}" if "s3_put" in c else "-",
        ])
    _common.print_table(
        "robostream end to end (simulator -> gateway -> Kafka -> processors/sinks -> API)",
        ["case", "msg/s", "rec/s", "MB/s", "lag@end", "drain s", "lost", "live p50/p99/p99.9/max ms",
         "CPU % of a core", "peak RSS MB", "ceil produce rec/s", "ceil consume rec/s",
         "ceil insert_many doc/s", "ceil S3 put MB/s"], rows, width=260)
    print("msg = a reading (one telemetry row or one envelope of another type); rec = a Kafka record "
          "(envelope). lost = acked by the gateway but missing in Kafka or MongoDB (must be 0).")
    live_rows = []
    for case in report["results"]["cases"]:
        live = case["live"]
        live_rows += [[f"{case_name(case)}: {label}", quantiles(live.get(key, {}) if key else live),
                       f"{(live.get(key, {}) if key else live).get('n', 0):,}"] for key, label in LIVE_HOPS]
    if "floor" in report["results"]:
        floor_ = report["results"]["floor"]
        live_rows.append([f"floor: raw Kafka -> Redis -> aiohttp WS, {floor_['rate_per_s']:.0f} rec/s",
                          quantiles(floor_), f"{floor_['n']:,} ({floor_['lost']} lost)"])
    _common.print_table("live latency per sample (ms); the floor has no robostream code on the path",
                        ["path", "p50/p99/p99.9/max ms", "n"], live_rows, width=140)
    print("publish = when the bench's own Redis subscriber received the sink's PUBLISH; Kafka times "
          "are the records' Kafka timestamps (the gateway's produce time, ms resolution).")


# -- main ------------------------------------------------------------------------------------------


def bench_settings(run_id: str) -> Settings:
    base = load_settings()
    return base.model_copy(update={
        "topics": base.topics.model_copy(update={"prefix": f"e2e{run_id}"}),
        "mongo": base.mongo.model_copy(update={"database": f"bench_e2e_{run_id}"}),
        "processors": base.processors.model_copy(update={"app_id": f"bench-e2e-{run_id}"}),
        "gateway": base.gateway.model_copy(update={"port": free_port()}),
        "sinks": base.sinks.model_copy(update={"port": free_port(), "live_port": free_port()}),
        "api": base.api.model_copy(update={"port": free_port()}),
    })


def cleanup(settings: Settings, admin: AdminClient) -> None:
    from pymongo import MongoClient

    present = admin.list_topics(timeout=10).topics
    doomed = [t for t in present if t.startswith(settings.topics.prefix + ".")
              or t.startswith(settings.processors.app_id)]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=60).values():
            with contextlib.suppress(Exception):
                future.result()
    with MongoClient[dict[str, Any]](settings.mongo.uri, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(settings.mongo.database)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 robot, 5 s, telemetry only (smoke test)")
    parser.add_argument("--robots", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument("--modes", nargs="+", choices=["telemetry", "media"], default=["telemetry", "media"])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds each case streams")
    parser.add_argument("--small-duration", type=float,
                        help="seconds for cases under 10 robots (default: --duration)")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--profile", nargs="+", choices=SERVICES, default=[],
                        help="run these services under pyinstrument")
    parser.add_argument("--profile-name", default="e2e", help="file name stem of the saved profile")
    parser.add_argument("--sink-layout", choices=["one", "split"],
                        help="split: a store and a live sink worker, as the stack runs them "
                             "(default: sinks.split_live); one: every connector in one worker")
    parser.add_argument("--redis-flush-ms", type=int,
                        help="flush_interval_ms of the Redis connector (default: config.yaml's)")
    parser.add_argument("--floor-records", type=int, default=2000,
                        help="records of the floor (raw Kafka -> Redis -> WebSocket; 0: skip it)")
    parser.add_argument("--floor-rate", type=float, default=100.0, help="records/s of the floor")
    parser.add_argument("--sim-processes", type=int, default=1,
                        help="processes the simulated robots run in, apart from the bench's live clients "
                             "(default 1: ten robot processes on two cores measured worse, each one more "
                             "process queueing for a core)")
    parser.add_argument("--keep", action="store_true", help="keep topics and database")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.robots, args.modes, args.duration, args.drain_timeout = [1], ["telemetry"], 5.0, 60.0
        args.floor_records = min(args.floor_records, 500)
    return args


def save_profile(folder: Path, service: str, stem: str) -> dict[str, str]:
    """Render a service's pyinstrument session as text under bench/results/profiles/ (the HTML
    renderer makes 10-30 MB files: too big to keep; ``pyinstrument --load`` the session for it)."""
    from pyinstrument.renderers import ConsoleRenderer
    from pyinstrument.session import Session

    session_file = folder / f"{service}.pyisession"
    if not session_file.exists():
        return {}
    session = Session.load(str(session_file))
    PROFILES.mkdir(parents=True, exist_ok=True)
    text = PROFILES / f"{stem}-{service}.txt"
    text.write_text(ConsoleRenderer(unicode=True, color=False, show_all=False).render(session))
    return {"text": str(text.relative_to(_common.ROOT))}


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; return (and write) the report."""
    args = parse(argv)
    run_id = uuid.uuid4().hex[:8]
    settings = bench_settings(run_id)
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
    assert create_topics(settings).ok, "cannot create the bench topics"
    cases: list[dict[str, Any]] = []
    profile: dict[str, dict[str, str]] = {}
    results: dict[str, Any] = {}
    if args.floor_records > 0:
        print(f"floor: {args.floor_records} records at {args.floor_rate:.0f}/s, raw Kafka -> Redis -> "
              "WebSocket ...", flush=True)
        results["floor"] = floor(settings, admin, run_id, args.floor_records, args.floor_rate)
        print(f"  floor p50 {results['floor']['p50_ms']:.1f} ms, p99 {results['floor']['p99_ms']:.1f} ms",
              flush=True)
    with tempfile.TemporaryDirectory(prefix="robostream-e2e-") as tmp:
        folder = Path(tmp)
        layout = args.sink_layout or ("split" if settings.sinks.split_live else "one")
        pipeline = Pipeline(settings, folder, run_id, args.profile, args.redis_flush_ms, layout)
        try:
            began = time.monotonic()
            pipeline.start()
            print(f"services up in {time.monotonic() - began:.0f} s", flush=True)
            for robots in args.robots:
                for mode in args.modes:
                    duration = args.duration if robots >= 10 else (args.small_duration or args.duration)
                    print(f"case: {robots} robot(s), {mode}, {duration:.0f} s ...", flush=True)
                    case = run_case(pipeline, admin, robots, mode == "media", duration, args.drain_timeout,
                                    folder, args.sim_processes)
                    case["ceilings"] = ceilings(settings, admin, case)
                    del case["_range"]
                    print(f"  {case['msgs_per_s']:,.0f} msg/s, {case['mb_per_s']:.2f} MB/s, "
                          f"lost {case['lost']}, live p99 {case['live']['p99_ms']:.0f} ms", flush=True)
                    cases.append(case)
        finally:
            pipeline.stop()
            for name in args.profile:
                profile[name] = save_profile(folder, name, args.profile_name)
            if not args.keep:
                cleanup(settings, admin)
    parameters = {
        "quick": args.quick, "robots": args.robots, "modes": args.modes, "duration_s": args.duration,
        "small_duration_s": args.small_duration or args.duration, "resolution": "640x360",
        "drain_timeout_s": args.drain_timeout, "profile": args.profile,
        "redis_flush_ms": args.redis_flush_ms,
        "sink_layout": layout,
        "sim_processes": args.sim_processes,
        "floor_records": args.floor_records, "floor_rate_per_s": args.floor_rate,
        "rates": settings.rates.model_dump(mode="json"),
        "batching": settings.batching.model_dump(mode="json"),
        "kafka": {"bootstrap": settings.kafka.bootstrap, "compression": settings.kafka.compression,
                  "linger_ms": settings.kafka.linger_ms, "partitions": settings.topics.partitions},
        "mongo": "SecantusDB (MongoDB wire protocol)", "s3": "SeaweedFS",
    }
    report = _common.report("e2e", parameters, {"cases": cases, "profile": profile, **results},
                            _common.versions("robostream", "confluent-kafka", "faust-streaming", "aiohttp",
                                             "pymongo", "boto3", "redis", "secantusdb"))
    write_json(report, args.out)
    print_report(report)
    print(f"written: {args.out}")
    return report


if __name__ == "__main__":
    run()
