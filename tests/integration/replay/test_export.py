"""Export a recorded session to MCAP (read back with the ``mcap`` reader) and JSON Lines."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from mcap.reader import make_reader

from robostream.config import Settings
from robostream.replay import Bound, SessionQuery, export_session
from robostream.schemas import ConfluentSchemaResolver, DataType, Envelope, decode_frame
from tests.integration.replay.helpers import ROBOT, cli, cli_env, produce, recorded_session


@pytest.fixture(scope="module")
def recording(rp_settings: Settings, resolver: ConfluentSchemaResolver, tag: str) -> list[Envelope]:
    """Session ``x-<tag>`` (50 telemetry records, 5 logs, 3 JPEG frames over 5 s) with another
    session interleaved."""
    start = time.time() - 30
    mine = recorded_session(f"x-{tag}", start)
    other = recorded_session(f"y-{tag}", start, telemetry=20, logs=1, images=1)
    interleaved = [e for pair in zip(mine, other, strict=False) for e in pair] + mine[len(other):]
    produce(rp_settings, resolver, interleaved)
    return mine


def test_the_export_command_writes_an_mcap_file_foxglove_can_open(
    rp_settings: Settings, recording: list[Envelope], tag: str, tmp_path: Path,
) -> None:
    target = tmp_path / "session.mcap"
    result = subprocess.run(cli("export_cmd", "--robot", ROBOT, "--session", f"x-{tag}", "-o", str(target)),
                            env=cli_env(rp_settings), capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert f"wrote {target} (mcap" in result.stdout and "58 records" in result.stdout
    assert "offsets" in result.stderr  # the progress bar

    with target.open("rb") as stream:
        reader = make_reader(stream)
        summary = reader.get_summary()
        assert summary is not None and summary.statistics is not None
        channels = {c.id: c for c in summary.channels.values()}
        counts = {channels[cid].topic: n for cid, n in summary.statistics.channel_message_counts.items()}
        foxglove = {f"/{ROBOT}/pose": "foxglove.PoseInFrame", f"/{ROBOT}/tf": "foxglove.FrameTransform",
                    f"/{ROBOT}/joints": "foxglove.JointStates", f"/{ROBOT}/log": "foxglove.Log",
                    f"/{ROBOT}/images/front/rgb": "foxglove.CompressedImage",
                    f"/{ROBOT}/imu": "robostream.Imu", f"/{ROBOT}/force_torque": "robostream.ForceTorque",
                    f"/{ROBOT}/metrics": "robostream.Metrics", f"/{ROBOT}/channels": "robostream.Channels"}
        streams = [f"/{ROBOT}/{s}" for s in ("imu", "force_torque", "metrics", "channels")]
        samples = 50 * 10  # a pose, a transform, joints and each stream's sample per telemetry sample
        assert counts == {"/time_series": 50, "/log": 5, "/images": 3, f"/{ROBOT}/pose": samples,
                          f"/{ROBOT}/tf": samples, f"/{ROBOT}/joints": samples, f"/{ROBOT}/log": 5,
                          f"/{ROBOT}/images/front/rgb": 3, **dict.fromkeys(streams, samples)}
        last_sample_us = max(e.timestamp_us + (e.payload["t"][-1] if e.data_type is DataType.TIME_SERIES
                                               else 0) for e in recording)
        assert summary.statistics.message_start_time == recording[0].timestamp_us * 1000
        assert summary.statistics.message_end_time == last_sample_us * 1000
        schemas = {s.id: s for s in summary.schemas.values()}
        by_topic = {c.topic: schemas[c.schema_id] for c in channels.values()}
        assert {t: by_topic[t].name for t in foxglove} == foxglove  # the live service's topics and schemas
        assert {by_topic[t].name for t in ("/time_series", "/log", "/images")} == {
            "io.robostream.TimeSeries", "io.robostream.Log", "io.robostream.Image"}
        assert {(c.message_encoding, by_topic[c.topic].encoding) for c in channels.values()} == {
            ("json", "jsonschema"), ("protobuf", "protobuf")}
        assert {c.message_encoding for c in channels.values() if c.topic in streams} == {"json"}
        _, _, metrics = next(iter(reader.iter_messages(topics=[f"/{ROBOT}/metrics"], log_time_order=True)))
        sent_metrics = recording[0].payload["metrics"]
        assert orjson.loads(metrics.data) == {
            "timestamp": {"sec": recording[0].timestamp_us // 1_000_000,
                          "nsec": recording[0].timestamp_us % 1_000_000 * 1000},
            **{name: column[0] for name, column in sent_metrics.items()}}
        assert {ci.compression for ci in summary.chunk_indexes} == {"zstd"}
        logs = reader.iter_messages(topics=["/log"], log_time_order=True)
        messages = [orjson.loads(m.data) for _, _, m in logs]
    assert [m["payload"]["message"] for m in messages] == [f"log {i}" for i in range(5)]
    assert {m["session_id"] for m in messages} == {f"x-{tag}"}


def test_a_jsonl_export_of_a_time_window_holds_robot_envelopes(
    rp_settings: Settings, resolver: ConfluentSchemaResolver, recording: list[Envelope], tag: str,
    tmp_path: Path,
) -> None:
    start = Bound.at_time(recording[0].timestamp + timedelta(seconds=2))
    end = Bound.at_time(recording[0].timestamp + timedelta(seconds=3))
    query = SessionQuery(ROBOT, f"x-{tag}", (DataType.TIME_SERIES, DataType.LOG), start, end)
    report = export_session(rp_settings, query, tmp_path / "window.jsonl", resolver, fmt="jsonl")

    expected = [e for e in recording if e.data_type in query.types
                and start.time_us <= e.timestamp_us < end.time_us]  # type: ignore[operator]
    lines = (tmp_path / "window.jsonl").read_bytes().splitlines()
    envelopes = [decode_frame(line.decode()).envelopes[0] for line in lines]
    assert envelopes == expected and report.records == len(expected) >= 10
    assert report.per_channel == Counter({"/time_series": 10, "/log": len(expected) - 10})
    assert not (tmp_path / ".window.jsonl.partial").exists()
