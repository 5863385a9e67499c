"""The Foxglove messages shared by the live service and the MCAP export (no servers)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import orjson
from mcap.reader import make_reader
from mcap.records import Schema
from mcap_protobuf.decoder import DecoderFactory

from robostream.foxglove import messages
from robostream.processors.compaction.pointcloud import PointCloud, encode_ply
from robostream.replay.export import McapSessionWriter
from robostream.replay.reader import SessionQuery
from robostream.schemas import DataType
from robostream.schemas.examples import example_payload
from tests.unit.replay.test_export_files import T0_US, conforms, record


def decoded(message: messages.Message) -> Any:
    """The protobuf message a Foxglove client decodes from ``message``'s bytes and schema."""
    schema = messages.schema_of(message)
    record = Schema(id=1, name=schema.name, encoding=schema.encoding, data=schema.data)
    decode = DecoderFactory().decoder_for("protobuf", record)
    assert decode is not None
    return decode(message.encode())


def test_a_sample_without_orientation_or_joints_gives_an_upright_pose_and_no_joints() -> None:
    values = {"pose.position.x": 1.0, "pose.position.y": 2.0, "pose.position.z": 3.0, "imu.x": 5.0}
    built = dict(messages.telemetry_messages("r1", T0_US + 7, values))
    assert set(built) == {"/r1/pose", "/r1/tf"}
    pose = decoded(built["/r1/pose"])
    assert (pose.timestamp.seconds, pose.timestamp.nanos) == (T0_US // 1_000_000, 7000)
    assert (pose.frame_id, pose.pose.position.z, pose.pose.orientation.w) == ("world", 3.0, 1.0)
    transform = decoded(built["/r1/tf"])
    assert (transform.parent_frame_id, transform.child_frame_id) == ("world", "r1")
    assert (transform.translation.x, transform.rotation.w) == (1.0, 1.0)
    assert dict(messages.telemetry_messages("r1", 0, {"joints.torque.0": 1.0})).keys() == {"/r1/joints"}


def test_an_inline_point_cloud_is_exported_as_a_foxglove_point_cloud() -> None:
    points = np.arange(12, dtype=np.float32).reshape(4, 3)
    colors = np.full((4, 3), 200, dtype=np.uint8)
    payload = example_payload(DataType.IMAGES)
    ply = encode_ply(PointCloud(points, colors))
    payload.update(kind="pointcloud", blob={"format": "ply", "content": ply})
    out = io.BytesIO()
    writer = McapSessionWriter(out, SessionQuery("robot_001", "s1"))
    assert writer.write(record(DataType.IMAGES, 1, T0_US, payload)) == [
        "/images", "/robot_001/pointcloud/front"]
    writer.finish({})
    out.seek(0)
    reader = make_reader(out, decoder_factories=[DecoderFactory()])
    (schema, _, _, cloud), = reader.iter_decoded_messages(topics=["/robot_001/pointcloud/front"])
    assert schema is not None and schema.name == "foxglove.PointCloud"
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "red", "green", "blue"]
    assert cloud.point_stride == 15 and cloud.frame_id == "front"
    table = np.frombuffer(cloud.data, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "u1", 3)])
    assert table["y"].tolist() == points[:, 1].tolist() and table["rgb"].tolist() == colors.tolist()


def test_imu_force_torque_metrics_and_free_channels_are_json_samples_named_like_their_metrics() -> None:
    values = {"force_torque.force.x": 1.5, "force_torque.torque.z": -0.25, "metrics.cpu_percent": 40.0,
              "imu.angular_velocity.y": 0.1, "channels.gripper_width": 0.04, "pose.position.x": 9.0}
    built = dict(messages.telemetry_messages("r1", T0_US + 7, values))
    assert set(built) == {"/r1/force_torque", "/r1/metrics", "/r1/imu", "/r1/channels"}
    stamp = {"sec": T0_US // 1_000_000, "nsec": 7000}
    as_json = {topic: orjson.loads(message.encode()) for topic, message in built.items()}
    assert as_json == {"/r1/force_torque": {"timestamp": stamp, "force": {"x": 1.5}, "torque": {"z": -0.25}},
                       "/r1/metrics": {"timestamp": stamp, "cpu_percent": 40.0},
                       "/r1/imu": {"timestamp": stamp, "angular_velocity": {"y": 0.1}},
                       "/r1/channels": {"timestamp": stamp, "gripper_width": 0.04}}
    for topic, message in built.items():
        schema = messages.schema_of(message)
        assert (schema.encoding, messages.encoding_of(message)) == ("jsonschema", "json")
        assert not conforms(as_json[topic], orjson.loads(schema.data)), topic
    assert messages.schema_of(built["/r1/force_torque"]).name == "robostream.ForceTorque"
    properties = orjson.loads(messages.schema_of(built["/r1/force_torque"]).data)["properties"]
    assert properties["torque"]["properties"]["z"]["description"] == "unit: N·m"
