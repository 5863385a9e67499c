"""Foxglove topics and messages of a robot: one definition for ``robostream foxglove`` (live) and
the MCAP export, so a recording opens with the panels of the live view.

Topics are per robot (a live session and its recording use the same names):

============================================  ======================  =================================
topic                                         schema                  from
============================================  ======================  =================================
``/<robot>/pose``                             foxglove.PoseInFrame    ``pose.*`` of time_series, frame
                                                                      ``world``
``/<robot>/tf``                               foxglove.FrameTransform ``world`` -> ``<robot>`` (the pose)
``/<robot>/joints``                           foxglove.JointStates    ``joints.{angle,velocity,torque}``
``/<robot>/images/<camera>/<kind>``           foxglove.CompressedImage JPEG / PNG / WebP camera frames
``/<robot>/pointcloud/<camera>``              foxglove.PointCloud     PLY / Draco point clouds
``/<robot>/log``                              foxglove.Log            log records
``/<robot>/imu``                              robostream.Imu          ``imu.*``
``/<robot>/force_torque``                     robostream.ForceTorque  ``force_torque.*``
``/<robot>/metrics``                          robostream.Metrics      ``metrics.*``
``/<robot>/channels``                         robostream.Channels     ``channels.*`` (free channels)
============================================  ======================  =================================

The well-known ones are foxglove-sdk's protobuf types (message encoding ``protobuf``). The other
telemetry streams (:data:`STREAMS`) have no well-known schema: a :class:`SampleMessage` is JSON
(a JSON Schema per stream) whose fields mirror the metric names, so Foxglove's plot path of
``force_torque.force.x`` is ``/<robot>/force_torque.force.x``. :func:`schema_of` and
:func:`encoding_of` give what a channel or an MCAP file registers. Builders take telemetry as one sample's
flat metrics (``{"pose.position.x": 0.1, "joints.angle.3": 0.2, ...}``), the shape of the live
points and of :func:`robostream.processors.columns.columns_from_payload` rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import orjson
from foxglove import Schema
from foxglove.messages import (
    CompressedImage,
    FrameTransform,
    JointState,
    JointStates,
    Log,
    LogLevel,
    PackedElementField,
    PackedElementFieldNumericType,
    PointCloud,
    Pose,
    PoseInFrame,
    Quaternion,
    Timestamp,
    Vector3,
)

from robostream.processors.columns import GROUP_UNITS, columns_from_payload
from robostream.processors.compaction.pointcloud import decode_source
from robostream.schemas import DataType, Envelope
from robostream.schemas.packed import METRIC_COLUMNS, unpack_time_series

#: The fixed frame poses are given in.
WORLD_FRAME = "world"
MESSAGE_ENCODING = "protobuf"
#: Blob formats Foxglove's CompressedImage shows.
IMAGE_FORMATS = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png", "webp": "webp",
                 "image/jpeg": "jpeg", "image/png": "png", "image/webp": "webp"}
#: Blob formats a point cloud is read from (see ``decode_source``).
POINTCLOUD_FORMATS = frozenset({"ply", "drc", "draco", "xyz", "xyz32f", "raw", "f32"})
JOINT_FIELDS = ("angle", "velocity", "torque")
_LOG_LEVELS = {"debug": LogLevel.Debug, "info": LogLevel.Info, "warning": LogLevel.Warning,
               "error": LogLevel.Error, "critical": LogLevel.Fatal, "fatal": LogLevel.Fatal}

ProtobufMessage = PoseInFrame | FrameTransform | JointStates | CompressedImage | PointCloud | Log
JSON_ENCODING = "json"
_XYZ = ("x", "y", "z")
_XYZW = ("x", "y", "z", "w")


@dataclass(frozen=True)
class Stream:
    """A telemetry stream with a JSON channel: the metrics ``<name>.*`` of a sample.

    ``fields`` maps a group to its axes (``force`` -> x, y, z: ``force_torque.force.x``) or to
    ``()`` for a scalar (``metrics.cpu_percent``); ``None``: free fields, any metric name."""

    name: str
    schema_name: str
    description: str
    fields: Mapping[str, tuple[str, ...]] | None

    @cached_property
    def schema(self) -> Schema:
        """The JSON Schema a channel of this stream registers (encoding ``jsonschema``)."""
        number: dict[str, Any] = {"type": "number"}
        properties: dict[str, Any] = {"timestamp": {
            "type": "object", "description": "the sample's time (UTC)",
            "properties": {"sec": {"type": "integer"}, "nsec": {"type": "integer"}}}}
        for group, axes in (self.fields or {}).items():
            unit = GROUP_UNITS.get(f"{self.name}.{group}")
            described = {**number, "description": f"unit: {unit}"} if unit else number
            properties[group] = ({"type": "object", "properties": {a: described for a in axes}}
                                 if axes else described)
        schema: dict[str, Any] = {"title": self.schema_name, "description": self.description,
                                  "type": "object", "properties": properties}
        if self.fields is None:
            schema["additionalProperties"] = number
        return Schema(name=self.schema_name, encoding="jsonschema", data=orjson.dumps(schema))


#: The telemetry streams beyond pose and joints, each on ``/<robot>/<name>``.
STREAMS = (
    Stream("imu", "robostream.Imu", "IMU: linear acceleration, angular velocity, orientation",
           {"linear_acceleration": _XYZ, "angular_velocity": _XYZ, "orientation": _XYZW}),
    Stream("force_torque", "robostream.ForceTorque", "wrist force and torque in the sensor frame",
           {"force": _XYZ, "torque": _XYZ}),
    Stream("metrics", "robostream.Metrics", "system metrics", {c: () for c in METRIC_COLUMNS}),
    Stream("channels", "robostream.Channels", "the robot's free channels (units in the session)", None),
)


@dataclass(frozen=True)
class SampleMessage:
    """One sample of a :class:`Stream` as JSON: ``timestamp`` and the sample's values."""

    stream: Stream
    data: Mapping[str, Any]

    def encode(self) -> bytes:
        return orjson.dumps(self.data)


Message = ProtobufMessage | SampleMessage


# -- topics ----------------------------------------------------------------------------------------


def pose_topic(robot_id: str) -> str:
    return f"/{robot_id}/pose"


def transform_topic(robot_id: str) -> str:
    return f"/{robot_id}/tf"


def joints_topic(robot_id: str) -> str:
    return f"/{robot_id}/joints"


def image_topic(robot_id: str, camera_id: str, kind: str) -> str:
    return f"/{robot_id}/images/{camera_id}/{kind}"


def pointcloud_topic(robot_id: str, camera_id: str) -> str:
    return f"/{robot_id}/pointcloud/{camera_id}"


def log_topic(robot_id: str) -> str:
    return f"/{robot_id}/log"


def stream_topic(robot_id: str, stream: Stream) -> str:
    return f"/{robot_id}/{stream.name}"


def robot_of(topic: str) -> str:
    """The robot a topic belongs to (``/robot_001/pose`` -> ``robot_001``)."""
    return topic.split("/", 2)[1]


def schema_of(message: Message | type[ProtobufMessage]) -> Schema:
    """The Foxglove schema of a message (a JSON Schema, or a protobuf descriptor set) or of a
    protobuf message type."""
    if isinstance(message, SampleMessage):
        return message.stream.schema
    kind = message if isinstance(message, type) else type(message)
    return kind.get_schema()


def encoding_of(message: Message | type[ProtobufMessage]) -> str:
    """The message encoding of a message's channel: ``json`` or ``protobuf``."""
    return JSON_ENCODING if isinstance(message, SampleMessage) else MESSAGE_ENCODING


# -- builders --------------------------------------------------------------------------------------


def timestamp(ts_us: int) -> Timestamp:
    seconds, micros = divmod(int(ts_us), 1_000_000)
    return Timestamp(seconds, micros * 1000)


def _vector(values: Mapping[str, float], prefix: str) -> tuple[float, float, float] | None:
    try:
        return values[f"{prefix}.x"], values[f"{prefix}.y"], values[f"{prefix}.z"]
    except KeyError:
        return None


def _quaternion(values: Mapping[str, float], prefix: str) -> Quaternion:
    xyzw = [values.get(f"{prefix}.{axis}") for axis in "xyzw"]
    if any(v is None for v in xyzw):
        return Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)
    x, y, z, w = (float(v) for v in xyzw if v is not None)
    return Quaternion(x=x, y=y, z=z, w=w)


def pose_in_frame(ts_us: int, values: Mapping[str, float]) -> PoseInFrame | None:
    """The sample's pose in ``world`` (None without ``pose.position.*``)."""
    position = _vector(values, "pose.position")
    if position is None:
        return None
    x, y, z = position
    pose = Pose(position=Vector3(x=x, y=y, z=z), orientation=_quaternion(values, "pose.orientation"))
    return PoseInFrame(timestamp=timestamp(ts_us), frame_id=WORLD_FRAME, pose=pose)


def frame_transform(robot_id: str, ts_us: int, values: Mapping[str, float]) -> FrameTransform | None:
    """``world`` -> the robot's frame (named after the robot), from the sample's pose."""
    position = _vector(values, "pose.position")
    if position is None:
        return None
    x, y, z = position
    return FrameTransform(timestamp=timestamp(ts_us), parent_frame_id=WORLD_FRAME, child_frame_id=robot_id,
                          translation=Vector3(x=x, y=y, z=z),
                          rotation=_quaternion(values, "pose.orientation"))


def joint_states(ts_us: int, values: Mapping[str, float], names: Sequence[str] = ()) -> JointStates | None:
    """The joints of a sample (``joints.angle.3`` -> ``joints[3].position``; torque is the
    effort); joint ``j`` is ``names[j]``, else ``joint_<j>``. None without joints."""
    count = 0
    while any(f"joints.{f}.{count}" in values for f in JOINT_FIELDS):
        count += 1
    if not count:
        return None
    joints = []
    for j in range(count):
        angle, velocity, torque = (values.get(f"joints.{f}.{j}") for f in JOINT_FIELDS)
        joints.append(JointState(name=names[j] if j < len(names) else f"joint_{j}", position=angle,
                                 velocity=velocity, effort=torque))
    return JointStates(timestamp=timestamp(ts_us), joints=joints)


def _json_timestamp(ts_us: int) -> dict[str, int]:
    seconds, micros = divmod(int(ts_us), 1_000_000)
    return {"sec": seconds, "nsec": micros * 1000}


def sample_message(stream: Stream, ts_us: int, values: Mapping[str, float]) -> SampleMessage | None:
    """The stream's values of a sample (``force_torque.force.x`` -> ``{"force": {"x": ...}}``),
    None when the sample has none."""
    prefix = f"{stream.name}."
    data: dict[str, Any] = {}
    if stream.fields is None:
        data = {name[len(prefix):]: v for name, v in values.items() if name.startswith(prefix)}
    else:
        for group, axes in stream.fields.items():
            if not axes:
                if (value := values.get(f"{prefix}{group}")) is not None:
                    data[group] = value
                continue
            vector = {a: v for a in axes if (v := values.get(f"{prefix}{group}.{a}")) is not None}
            if vector:
                data[group] = vector
    if not data:
        return None
    return SampleMessage(stream, {"timestamp": _json_timestamp(ts_us), **data})


def telemetry_messages(robot_id: str, ts_us: int, values: Mapping[str, float],
                       joint_names: Sequence[str] = ()) -> Iterator[tuple[str, Message]]:
    """``(topic, message)`` of one telemetry sample: pose, transform, joints and each of
    :data:`STREAMS` where present."""
    pose = pose_in_frame(ts_us, values)
    if pose is not None:
        yield pose_topic(robot_id), pose
    transform = frame_transform(robot_id, ts_us, values)
    if transform is not None:
        yield transform_topic(robot_id), transform
    joints = joint_states(ts_us, values, joint_names)
    if joints is not None:
        yield joints_topic(robot_id), joints
    for stream in STREAMS:
        sample = sample_message(stream, ts_us, values)
        if sample is not None:
            yield stream_topic(robot_id, stream), sample


def compressed_image(ts_us: int, camera_id: str, fmt: str, data: bytes) -> CompressedImage | None:
    """A camera frame Foxglove can show (JPEG, PNG, WebP), else None."""
    image_format = IMAGE_FORMATS.get(fmt.lower())
    if image_format is None:
        return None
    return CompressedImage(timestamp=timestamp(ts_us), frame_id=camera_id, data=bytes(data),
                           format=image_format)


def point_cloud(ts_us: int, camera_id: str, fmt: str, data: bytes) -> PointCloud:
    """A point cloud blob (PLY, Draco or raw float32 xyz) as packed float32 x, y, z (+ uint8 rgb);
    raises ``ValueError`` on a blob it cannot read."""
    cloud = decode_source(bytes(data), fmt)
    fields = [PackedElementField(name=axis, offset=4 * i, type=PackedElementFieldNumericType.Float32)
              for i, axis in enumerate("xyz")]
    layout: list[tuple[str, str]] = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if cloud.colors is not None:
        fields += [PackedElementField(name=c, offset=12 + i, type=PackedElementFieldNumericType.Uint8)
                   for i, c in enumerate(("red", "green", "blue"))]
        layout += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    table = np.empty(len(cloud), dtype=layout)
    table["x"], table["y"], table["z"] = cloud.points.T
    if cloud.colors is not None:
        table["red"], table["green"], table["blue"] = cloud.colors.T
    return PointCloud(timestamp=timestamp(ts_us), frame_id=camera_id, point_stride=table.dtype.itemsize,
                      fields=fields, data=table.tobytes())


def media_message(robot_id: str, ts_us: int, camera_id: str, kind: str, fmt: str,
                  data: bytes) -> tuple[str, Message] | None:
    """``(topic, message)`` of a camera frame's bytes: a point cloud or an image Foxglove shows."""
    if kind == "pointcloud" or fmt.lower() in POINTCLOUD_FORMATS:
        return pointcloud_topic(robot_id, camera_id), point_cloud(ts_us, camera_id, fmt, data)
    image = compressed_image(ts_us, camera_id, fmt, data)
    return None if image is None else (image_topic(robot_id, camera_id, kind), image)


def sample_values(names: Sequence[str], column: Sequence[float]) -> dict[str, float]:
    """One sample's metrics by name; NaN (a missing sample) is left out."""
    return {name: float(v) for name, v in zip(names, column, strict=True) if v == v}


def envelope_messages(envelope: Envelope) -> Iterator[tuple[int, str, Message]]:
    """``(log time in µs, topic, message)`` of a recorded envelope: a time_series record's samples
    (pose, transform, joints each), an inline camera frame or point cloud, a log record. Frames held
    in S3 (claim-checked) and blobs that cannot be read give nothing."""
    robot_id, payload = envelope.robot_id, envelope.payload
    if envelope.data_type is DataType.TIME_SERIES:
        columns = columns_from_payload(robot_id, envelope.session_id, envelope.seq, envelope.timestamp_us,
                                       unpack_time_series(payload))
        for i, ts_us in enumerate(columns.times.tolist()):
            values = sample_values(columns.names, columns.values[:, i].tolist())
            for topic, message in telemetry_messages(robot_id, ts_us, values, columns.joint_names):
                yield ts_us, topic, message
    elif envelope.data_type is DataType.IMAGES:
        blob = payload["blob"]
        if not isinstance(blob["content"], bytes | bytearray):
            return
        try:
            built = media_message(robot_id, envelope.timestamp_us, str(payload["camera_id"]),
                                  str(payload["kind"]), str(blob["format"]), bytes(blob["content"]))
        except ValueError:
            return
        if built is not None:
            yield envelope.timestamp_us, built[0], built[1]
    elif envelope.data_type is DataType.LOG:
        yield envelope.timestamp_us, log_topic(robot_id), log_message(envelope.timestamp_us, payload)


def log_message(ts_us: int, payload: Mapping[str, Any]) -> Log:
    """A ``log`` record's payload as a Foxglove Log (the logger is its name)."""
    return Log(timestamp=timestamp(ts_us), level=_LOG_LEVELS.get(str(payload.get("level")), LogLevel.Unknown),
               message=str(payload.get("message", "")), name=str(payload.get("logger") or ""))
