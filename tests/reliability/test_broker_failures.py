"""Broker failures on a real 3-broker Apache Kafka cluster (replication factor 3, min.insync.replicas
2) while three robots stream through the gateway: what Kafka promises, checked the way Kafka's own
system tests and Jepsen do — every record acked to a robot is in Kafka, once, in order.

The cluster is ``robostream stack up --kafka-brokers 3`` on its own ports (tests/reliability/cluster.py),
started in the background while the other reliability tests run (these run last: conftest.py).
"""

from __future__ import annotations

import asyncio
import math
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import aiohttp
import msgpack
import pytest
import redis
from pymongo import MongoClient

from robostream.stack.process import StackError
from tests.reliability.badinput import envelope
from tests.reliability.checks import (
    assert_exactly_once_in_order,
    fault_row,
    kafka_seqs,
    mongo_telemetry,
    redis_ring,
    wait_landed,
)
from tests.reliability.cluster import (
    IMPATIENT_ENV,
    NODES,
    SERVICES_ON_CLUSTER,
    ClusterStack,
    cluster_settings,
    session_id,
)
from tests.reliability.report import FIGURES, FaultRow
from tests.reliability.sizes import FULL, ROWS_PER_ENVELOPE, SIZES
from tests.reliability.stack import TOKENS
from tests.reliability.streaming import Streamer

STREAM_S = SIZES.cluster_stream_s  # how long the robots stream at their fixed rate


@pytest.fixture(scope="module")
def cluster(cluster_in_background: Future[ClusterStack]) -> Iterator[ClusterStack]:
    """The cluster conftest.py started on a thread when the reliability tests began."""
    stack = cluster_in_background.result()
    try:
        yield stack
    finally:
        stack.kill_all()  # every JVM and service of the cluster, whatever the outcome


@pytest.fixture(autouse=True)
def _all_brokers_up(cluster: ClusterStack) -> None:
    cluster.up(NODES)  # a test that left a broker down does not weaken the next one


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Seconds until ``check()`` holds; fails naming ``what`` after ``timeout_s``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout_s, f"{what} not within {timeout_s:.0f} s"
        time.sleep(0.2)
    return time.monotonic() - started


def assert_every_envelope_acked(streamer: Streamer) -> None:
    for run in streamer.runs:
        assert run.rejected == 0, f"{run.robot_id}: {run.rejected} envelopes rejected"
        assert run.counters["lost"] == 0 and run.counters["dropped"] == 0, run.counters
        assert len(run.acked_seqs) == run.sent_envelopes, (
            f"{run.robot_id}: {len(run.acked_seqs)} of {run.sent_envelopes} envelopes acked")


def in_kafka(cluster: ClusterStack, streamer: Streamer) -> dict[str, tuple[set[int], list[int]]]:
    """Per session key: (the seqs acked to the robot, the seqs in Kafka in partition order)."""
    runs = {f"{run.robot_id}/{run.session_id}": run for run in streamer.runs}
    found = kafka_seqs(cluster.settings, "time_series", set(runs))
    return {key: (run.acked_seqs, found.by_key.get(key, [])) for key, run in runs.items()}


def row(fault: str, sent: int, landed: dict[str, tuple[set[int], list[int]]], recovery_s: float,
        note: str) -> FaultRow:
    """Counts in messages (rows); ``sent`` in envelopes; landed = in Kafka, read back from the brokers."""
    acked = sum(len(a) for a, _ in landed.values())
    present = sum(len(a & set(k)) for a, k in landed.values())
    return FaultRow(
        fault=fault, sent=sent * ROWS_PER_ENVELOPE, acked=acked * ROWS_PER_ENVELOPE,
        landed=present * ROWS_PER_ENVELOPE, lost=(acked - present) * ROWS_PER_ENVELOPE,
        duplicated=sum(len(k) - len(set(k)) for _, k in landed.values()) * ROWS_PER_ENVELOPE,
        envelopes=acked, kafka_redelivered=sum(len(k) - len(set(k)) for _, k in landed.values()),
        recovery_s=recovery_s, note=note)


@pytest.mark.timeout(900 if FULL else 300)
def test_kill9_of_the_leading_broker_loses_duplicates_and_reorders_nothing(cluster: ClusterStack) -> None:
    settings = cluster.settings
    node, led = cluster.leaders("time_series").most_common(1)[0]
    victim = f"kafka-{node}"
    per_robot = math.ceil(SIZES.cluster_messages / ROWS_PER_ENVELOPE / 3)
    streamer = Streamer(settings, per_robot, rate_per_robot=per_robot / STREAM_S).start()
    streamer.wait_sent(0.3)

    cluster.kill9(victim)
    killed = time.monotonic()
    # the two survivors elect new leaders for the victim's partitions ...
    failover_s = wait_for(lambda: node not in cluster.leaders("time_series")
                          and -1 not in cluster.leaders("time_series"), 60, "new partition leaders")
    # ... and every robot's session gets acks again while the broker is still down
    before = [len(run.acked_seqs) for run in streamer.runs]
    wait_for(lambda: streamer.finished.is_set() or all(
        len(run.acked_seqs) > n for run, n in zip(streamer.runs, before, strict=True)),
        60, "acks for every robot with one broker down")
    assert cluster.record(victim) is None, f"{victim} came back by itself"
    time.sleep(max(0.0, SIZES.cluster_down_s - (time.monotonic() - killed)))
    down_s = time.monotonic() - killed
    cluster.restart(victim)
    streamer.join(timeout_s=600)
    in_sync_s = cluster.wait_in_sync("time_series")

    assert_every_envelope_acked(streamer)
    landed = in_kafka(cluster, streamer)
    result = row(f"kill -9 of the broker leading most partitions (3 brokers), {down_s:.0f} s down",
                 streamer.sent, landed, failover_s,
                 f"{victim} led {led} of {sum(cluster.leaders('time_series').values())} robot.time_series "
                 f"partitions; new leaders {failover_s:.1f} s after the kill, every robot acked again "
                 f"with 2 of 3 brokers; back in sync {in_sync_s:.1f} s after restart; landed = records "
                 "read back from Kafka")
    FIGURES.faults.append(result)
    assert_once_in_order(landed, resent_by_session(streamer))


def assert_once_in_order(landed: dict[str, tuple[set[int], list[int]]],
                         resent: dict[str, set[int]] | None = None) -> None:
    """Every acked seq is in Kafka, once, in the order the robot sent it (per session).

    ``resent``: per session, seqs the robot sent again after a retriable nack. Kafka may hold
    those twice (a record can be written and still time out at the gateway; the sinks dedupe by
    seq): they are exempt from "once" and "in order", nothing else is."""
    for key, (acked, seqs) in landed.items():
        missing = sorted(acked - set(seqs))
        assert not missing, f"{key}: {len(missing)} acked seqs missing from Kafka, e.g. {missing[:10]}"
        again = (resent or {}).get(key, set())
        twice = sorted(seq for seq, n in Counter(seqs).items() if n > 1 and seq not in again)
        assert not twice, (f"{key}: {len(twice)} records twice in Kafka that the robot sent once, "
                           f"e.g. seqs {twice[:10]} (resent after nacks: {len(again)} seqs)")
        once = [seq for seq in seqs if seq not in again]
        assert once == sorted(once), f"{key}: records out of order in Kafka"


def resent_by_session(streamer: Streamer) -> dict[str, set[int]]:
    return {f"{run.robot_id}/{run.session_id}": run.resent_seqs for run in streamer.runs}


def resend_note(streamer: Streamer, landed: dict[str, tuple[set[int], list[int]]]) -> str:
    """What the robots resent after retriable nacks, and how much of it Kafka then held twice."""
    resent = sum(run.retried for run in streamer.runs)
    if not resent:
        return "no robot was told to resend"
    twice = sum(len(k) - len(set(k)) for _, k in landed.values())
    return (f"robots resent {resent} envelopes after retriable nacks, {twice} of which Kafka then held "
            "twice (the sinks dedupe by seq)")


@pytest.mark.full_size_only  # three broker restarts cost ~1 min: `make reliability` only
@pytest.mark.timeout(900)
def test_a_rolling_restart_of_every_broker_while_robots_stream_loses_duplicates_and_reorders_nothing(
    cluster: ClusterStack,
) -> None:
    """As an operator upgrades a cluster: each broker in turn stopped (SIGTERM: controlled
    shutdown moves its leaderships), started, and back in sync before the next."""
    per_robot = math.ceil(SIZES.cluster_messages / ROWS_PER_ENVELOPE / 3)
    stream_s = 3 * STREAM_S  # three restarts, each while the robots stream
    streamer = Streamer(cluster.settings, per_robot, rate_per_robot=per_robot / stream_s).start()
    streamer.wait_sent(0.1)
    restarts: list[tuple[str, float, float]] = []  # broker, seconds down, seconds until in sync
    for node in NODES:
        assert not streamer.finished.is_set(), f"the robots stopped streaming before {node} restarted"
        down_s = cluster.outage(node, 0)
        restarts.append((node, down_s, cluster.wait_in_sync("time_series")))
    streamer.join(timeout_s=600)

    assert_every_envelope_acked(streamer)
    landed = in_kafka(cluster, streamer)
    recovery_s = max(down + in_sync for _, down, in_sync in restarts)
    FIGURES.faults.append(row(
        "rolling restart of all 3 brokers", streamer.sent, landed, recovery_s,
        "each broker stopped (SIGTERM, controlled shutdown) and started while 3 robots streamed, the "
        "next once every partition had 3 replicas in sync again; "
        + ", ".join(f"{node} down {down:.0f} s, in sync {sync:.1f} s later" for node, down, sync in restarts)
        + f"; {resend_note(streamer, landed)}; landed = records read back from Kafka"))
    assert_once_in_order(landed, resent_by_session(streamer))


async def exchange(port: int, frame: bytes, timeout_s: float = 60) -> list[dict[str, Any]]:
    """One robot connection: send a batch, return every reply up to and with its ack."""
    robot = "robot_001"
    headers = {"Authorization": f"Bearer {TOKENS[robot]}", "X-Robot-Id": robot}
    replies: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(
            f"ws://127.0.0.1:{port}/v1/stream?format=msgpack", headers=headers) as ws:
        await ws.send_bytes(frame)
        while not replies or replies[-1].get("type") != "ack":
            msg = await ws.receive(timeout=timeout_s)
            assert msg.type == aiohttp.WSMsgType.BINARY, f"gateway closed: {msg.type} {msg.data}"
            replies.append(msgpack.unpackb(msg.data, raw=False))
    return replies


def session_led_by(cluster: ClusterStack, node: int) -> str:
    """A session id whose records go to a partition ``node`` leads (the gateway's producer keeps
    librdkafka's default partitioner: CRC32 of the key ``robot/session``)."""
    partitions = cluster.partitions("time_series")
    while True:
        session = session_id()
        if partitions[zlib.crc32(f"robot_001/{session}".encode()) % len(partitions)].leader == node:
            return session


@pytest.mark.timeout(900 if FULL else 300)
def test_two_brokers_down_nothing_is_acked_robots_get_retriable_nacks_and_keep_every_record(
    cluster: ClusterStack,
) -> None:
    """Below min.insync.replicas Kafka takes no write: the robot gets a retriable ``kafka_error``
    nack (never an ack), keeps the batch, and once one broker is back nothing acked is missing."""
    settings = cluster_settings(**IMPATIENT_ENV)  # robots stream to the gateway with a 6 s delivery timeout
    delivery_timeout_s = settings.gateway.delivery_timeout_s
    per_robot = math.ceil(SIZES.cluster_messages / ROWS_PER_ENVELOPE / 3 / 2)
    streamer = Streamer(settings, per_robot, rate_per_robot=per_robot / (STREAM_S / 2)).start()
    # the survivor leads partitions: with acks=1 it would ack what it alone holds, and this fails
    survivor = cluster.leaders("time_series").most_common(1)[0][0]
    first_back, second = (f"kafka-{n}" for n in (1, 2, 3) if n != survivor)
    session = session_led_by(cluster, survivor)
    streamer.wait_sent(0.3)
    cluster.kill9(first_back)
    cluster.kill9(second)
    killed = time.monotonic()
    time.sleep(1.0)  # acks for records both followers had already taken may still be on the wire
    acked_when_down = streamer.acked

    frame = msgpack.packb([envelope("time_series", seq, "robot_001", session) for seq in range(5)])
    first = asyncio.run(exchange(settings.gateway.port, frame))
    time.sleep(max(0.0, SIZES.cluster_down_s - (time.monotonic() - killed)))
    assert streamer.acked == acked_when_down, "an ack while two of three brokers were down"
    nacks, ack = first[:-1], first[-1]
    assert ack["count"] == 0 and ack["seq"] is None, f"acked with two brokers down: {ack}"
    assert sorted(n["index"] for n in nacks) == list(range(5)), nacks
    assert {(n["code"], n["retriable"], n["dlq"]) for n in nacks} == {("kafka_error", True, False)}
    assert all("Kafka did not take the record" in n["message"] for n in nacks), nacks[0]

    back_s = cluster.restart(first_back)
    retried = 0
    while (replies := asyncio.run(exchange(settings.gateway.port, frame)))[-1]["count"] < 5:
        retried += 1  # as the SDK does: the batch stays in the spool and goes again
        assert retried < 20, f"the batch is still refused with a broker back: {replies}"
    streamer.join(timeout_s=600)

    assert_every_envelope_acked(streamer)
    assert sum(run.retried for run in streamer.runs) > 0, "no robot was told to resend"
    landed = in_kafka(cluster, streamer)
    key = f"robot_001/{session}"
    landed[key] = (set(range(5)), kafka_seqs(cluster.settings, "time_series", {key}).by_key.get(key, []))
    FIGURES.faults.append(row(
        "kill -9 of 2 of 3 brokers (below min.insync.replicas 2)", streamer.sent + 5, landed, back_s,
        f"no ack while both were down; robots got retriable kafka_error nacks after the gateway's "
        f"{delivery_timeout_s:.0f} s delivery timeout ({nacks[0]['message']}) and resent from their "
        f"spool; one broker back in "
        f"{back_s:.0f} s; records sent before a nack may be in Kafka twice (sinks dedupe by seq)"))
    for key, (acked, seqs) in landed.items():
        missing = sorted(acked - set(seqs))
        assert not missing, f"{key}: {len(missing)} acked seqs missing from Kafka, e.g. {missing[:10]}"


def start_supervised(cluster: ClusterStack, service: str, attempts: int = 5) -> tuple[float, int]:
    """Start ``service`` again as a supervisor does (compose: ``restart: unless-stopped``): once more
    after each exit during start-up. Returns the seconds until it answered and the exits."""
    started = time.monotonic()
    for exits in range(attempts):
        try:
            cluster.up([service])
            return time.monotonic() - started, exits
        except StackError as err:
            if "exited during start-up" not in str(err):
                raise
    raise AssertionError(f"{service} exited during start-up {attempts} times: {cluster.log_path(service)}")


@pytest.mark.full_size_only  # stores, sinks and processors on the cluster: `make reliability` only
@pytest.mark.timeout(1200)
def test_kill9_of_a_processor_worker_and_a_sink_task_during_a_leader_election_loses_and_duplicates_nothing(
    cluster: ClusterStack,
) -> None:
    """The broker leading most partitions is killed; before the controller has moved its
    leaderships (the brokers' 9 s session timeout), the processor worker and the sink worker are
    killed too and started again: they rejoin their groups while partitions change leader."""
    cluster.up(SERVICES_ON_CLUSTER)
    settings = cluster.settings
    per_robot = math.ceil(SIZES.cluster_messages / ROWS_PER_ENVELOPE / 3)
    streamer = Streamer(settings, per_robot, rate_per_robot=per_robot / (2 * STREAM_S)).start()
    node = cluster.leaders("time_series").most_common(1)[0][0]
    victim = f"kafka-{node}"
    streamer.wait_sent(0.3)
    cluster.kill9(victim)
    killed = time.monotonic()
    for service in ("processors", "sinks"):
        cluster.kill9(service)
    assert node in cluster.leaders("time_series"), "the election ended before the services were killed"
    (back_p, exits), (back_s, _) = (start_supervised(cluster, service) for service in ("processors", "sinks"))
    wait_for(lambda: node not in cluster.leaders("time_series") and -1 not in cluster.leaders("time_series"),
             60, "new partition leaders")
    elected_s = time.monotonic() - killed  # at most: the services' restarts came first
    time.sleep(max(0.0, SIZES.cluster_down_s - (time.monotonic() - killed)))
    cluster.restart(victim)
    streamer.join(timeout_s=600)
    assert_every_envelope_acked(streamer)

    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongo.uri)
    cache = redis.Redis.from_url(settings.redis.url)
    try:
        db = client[settings.mongo.database]
        mongo = [(run.acked_seqs, wait_landed(lambda run=run: mongo_telemetry(db, run), run.acked_seqs, 600))
                 for run in streamer.runs]
        ring = [(run.acked_seqs, wait_landed(lambda run=run: redis_ring(cache, run), run.acked_seqs, 600))
                for run in streamer.runs]
    finally:
        client.close()
        cache.close()
    drained_s = time.monotonic() - killed  # every acked point landed: the sinks' lag is gone
    exited = (f" (the processor worker exited during start-up {exits} time(s), its Faust start-up asking "
              "the dead broker; started again as a supervisor would)") if exits else ""
    what = (f"{victim} (leader of most partitions) kill -9; processor worker and sink worker kill -9 "
            f"before new leaders were elected, restarted in {back_p:.0f}/{back_s:.0f} s{exited}; "
            f"new leaders in place {elected_s:.0f} s after the kill; every acked point landed "
            f"{drained_s:.0f} s after it")
    rows = [fault_row("kill -9 processor + sink worker during a leader election (3 brokers)", streamer,
                      mongo, f"{what}; landed = points in MongoDB telemetry (via the processors)", drained_s),
            fault_row("kill -9 sink worker during a leader election (3 brokers), Redis", streamer, ring,
                      f"{what}; landed = points in the Redis ring", drained_s)]
    FIGURES.faults.extend(rows)
    assert_exactly_once_in_order(rows[0], mongo)
    assert rows[1].lost == 0 and rows[1].duplicated == 0, rows[1]
