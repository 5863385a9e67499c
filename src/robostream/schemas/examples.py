"""One realistic payload per data type, as a robot sends it (MessagePack form: bytes stay bytes).

Used by the reference page (``docs/schemas.md``), the codec benchmark and tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import msgpack

from robostream.schemas.datatypes import DataType

SAMPLES = 10  # time_series samples per record in the examples (100 Hz -> 0.1 s per record)


def _series(n: int, phase: float, scale: float = 1.0) -> list[float]:
    return [round(scale * math.sin(phase + i / 10), 6) for i in range(n)]


def time_series_payload(n: int = SAMPLES) -> dict[str, Any]:
    """A columnar batch of ``n`` 100 Hz samples with every channel group."""
    return {
        "t": [i * 10_000 for i in range(n)],
        "pose": {
            "position": {"x": _series(n, 0.0, 0.5), "y": _series(n, 1.0, 0.5), "z": [0.4] * n},
            "orientation": {"x": [0.0] * n, "y": [0.0] * n, "z": [0.0] * n, "w": [1.0] * n},
        },
        "joints": {
            "names": [f"joint_{j}" for j in range(7)],
            "angle": [_series(7, i / 10.0) for i in range(n)],
            "velocity": [_series(7, i / 10.0, 0.1) for i in range(n)],
            "torque": [_series(7, i / 10.0, 5.0) for i in range(n)],
        },
        "force_torque": {
            "force": {"x": _series(n, 0.3), "y": _series(n, 0.6), "z": [9.81] * n},
            "torque": {"x": _series(n, 0.1, 0.2), "y": _series(n, 0.2, 0.2), "z": [0.0] * n},
        },
        "imu": {
            "linear_acceleration": {"x": _series(n, 0.0, 0.1), "y": [0.0] * n, "z": [9.81] * n},
            "angular_velocity": {"x": [0.0] * n, "y": [0.0] * n, "z": _series(n, 0.5, 0.05)},
            "orientation": None,
        },
        "metrics": {
            "cpu_percent": [37.5] * n,
            "memory_mb": [812.0] * n,
            "network_latency_ms": [4.2] * n,
        },
        "channels": {"gripper_width": [0.04] * n, "battery_voltage": [24.1] * n},
        "units": {"gripper_width": "m", "battery_voltage": "V"},
    }


def _blob(fmt: str, size: int, seed: int = 7) -> dict[str, Any]:
    content = bytes((seed * i + 13) % 256 for i in range(size))
    return {"format": fmt, "content": content}


def _vuer_body() -> bytes:
    points = bytes(range(24))  # 2 x 3 float32
    body = {
        "key": "pointcloud",
        "vertices": {"$dtype": "float32", "shape": [2, 3], "bytes": points},
        "size": 0.01,
    }
    packed: bytes = msgpack.packb(body, use_bin_type=True)
    return packed


def example_payload(data_type: DataType | str) -> dict[str, Any]:
    """A valid example payload for ``data_type`` (fresh objects on every call)."""
    builders: dict[DataType, Callable[[], dict[str, Any]]] = {
        DataType.TIME_SERIES: time_series_payload,
        DataType.PARAMETERS: lambda: {
            "values": {"optim.lr": 0.0003, "optim.name": "adam", "batch_size": 256,
                       "use_amp": True, "seed": None, "layers": [256, 256, 128]}
        },
        DataType.IMAGES: lambda: {
            "camera_id": "front", "kind": "rgb", "width": 640, "height": 360,
            "blob": _blob("jpeg", 4096),
        },
        DataType.VIDEO: lambda: {
            "camera_id": "front", "width": 640, "height": 360, "fps": 30.0, "frame_count": 60,
            "duration_us": 2_000_000, "blob": _blob("h264", 8192),
        },
        DataType.AUDIO: lambda: {
            "source_id": "mic0", "sample_rate_hz": 16000, "channels": 1,
            "duration_us": 100_000, "blob": _blob("pcm_s16le", 3200),
        },
        DataType.LOG: lambda: {
            "level": "warning", "logger": "arm.controller",
            "message": "joint_3 torque near limit", "attributes": {"joint": "joint_3"},
        },
        DataType.MARKDOWN: lambda: {"name": "notes.md", "text": "# Run 12\n\nGripper slipped twice."},
        DataType.FILE: lambda: {"name": "calibration.bin", "blob": _blob("application/octet-stream", 512)},
        DataType.CSV: lambda: {
            "name": "waypoints.csv", "text": "x,y,z\n0.1,0.2,0.3\n0.4,0.5,0.6\n",
            "delimiter": ",", "header": True,
        },
        DataType.SAFETENSORS: lambda: {
            "name": "policy.safetensors", "metadata": {"step": "1200"},
            "blob": _blob("safetensors", 2048),
        },
        DataType.JSON: lambda: {"name": "task.json", "text": '{"task": "pick", "object": "cube"}'},
        DataType.YAML: lambda: {"name": "robot.yaml", "text": "arm:\n  dof: 7\n  payload_kg: 3.0\n"},
        DataType.TOML: lambda: {"name": "limits.toml", "text": "[joint_3]\nmax_torque = 40.0\n"},
        DataType.MSGPACK: lambda: {"name": "state.msgpack", "blob": {
            "format": "msgpack", "content": msgpack.packb({"mode": "teleop", "speed": 0.5})}},
        DataType.VUER_MSG: lambda: {"etype": "SET", "rtype": None, "data": _vuer_body()},
        DataType.ZIP: lambda: {"name": "logs.zip", "blob": _blob("zip", 1024)},
        DataType.TAR: lambda: {"name": "episode_12.tar.gz", "blob": _blob("tar.gz", 1024)},
    }
    payload: dict[str, Any] = builders[DataType(data_type)]()
    return payload
