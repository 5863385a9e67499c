"""Everything a robot sends now and then besides telemetry and camera frames.

One builder per data type, each returning a payload as ``docs/schemas.md`` describes it, with
content derived from the robot's state (the joint angles in a CSV, the gripper's clicks in the
audio, the camera's scene in the video), so the files are real files of their formats: WAV via
``wave``, MP4 (H.264) via PyAV, safetensors written by hand (its format is a JSON header and raw
tensors), zip and tar.gz via the standard library.
"""

from __future__ import annotations

import io
import json
import math
import struct
import tarfile
import wave
import zipfile
from collections.abc import Callable
from typing import Any

import av
import msgpack
import numpy as np

from robostream.schemas import DataType, encode_vuer
from robostream.simulator.camera import SceneCamera
from robostream.simulator.robot import JOINT_NAMES, RobotModel

#: The data types sent in turn, one every ``simulator.extras_every_s``.
ROTATION: tuple[DataType, ...] = (
    DataType.PARAMETERS, DataType.MARKDOWN, DataType.CSV, DataType.JSON, DataType.YAML, DataType.TOML,
    DataType.SAFETENSORS, DataType.MSGPACK, DataType.VUER_MSG, DataType.ZIP, DataType.TAR,
    DataType.AUDIO, DataType.VIDEO, DataType.FILE,
)
#: Heavy media the simulator leaves out with ``--no-media`` (like the camera); not the topics'
#: :data:`robostream.topics.MEDIA_TYPES`.
HEAVY_MEDIA: frozenset[DataType] = frozenset({DataType.AUDIO, DataType.VIDEO})

_LOG_LINES: tuple[tuple[str, str, str], ...] = (
    ("info", "arm.controller", "trajectory segment {n} done in {dt:.2f}s"),
    ("info", "planner", "planned path to waypoint {n}: {m} nodes"),
    ("info", "gripper", "grasp {n}: width {w:.3f} m"),
    ("debug", "arm.controller", "joint_3 torque {tau:.2f} N·m"),
    ("debug", "camera.front", "exposure {e:.1f} ms, gain {g:.1f} dB"),
    ("warning", "arm.controller", "joint_1 torque {tau:.1f} N·m near its limit"),
    ("warning", "network", "latency {lat:.1f} ms above target"),
    ("error", "planner", "waypoint {n} unreachable, replanning"),
)
_LOG_WEIGHTS = np.array([0.3, 0.2, 0.15, 0.12, 0.08, 0.07, 0.05, 0.03])


def wav_bytes(samples: np.ndarray[Any, Any], rate_hz: int) -> bytes:
    """Mono 16-bit PCM WAV of float samples in [-1, 1]."""
    pcm = np.clip(samples * 32767, -32768, 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate_hz)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def mp4_bytes(frames: list[np.ndarray[Any, Any]], fps: int, crf: int = 28) -> bytes:
    """An H.264 MP4 of RGB frames (even width and height)."""
    buffer = io.BytesIO()
    height, width = frames[0].shape[:2]
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": str(crf)}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def safetensors_bytes(tensors: dict[str, np.ndarray[Any, Any]], metadata: dict[str, str]) -> bytes:
    """The safetensors format: u64 header size, JSON header (8-byte aligned), raw tensors."""
    codes = {"float32": "F32", "float64": "F64", "int64": "I64", "int32": "I32", "uint8": "U8"}
    header: dict[str, Any] = {"__metadata__": metadata}
    blobs, offset = [], 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": codes[array.dtype.name], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


class Extras:
    """Payload builders for one robot; ``payload(data_type, t)`` at session time ``t``."""

    def __init__(self, robot_id: str, model: RobotModel, *, seed: int = 0, camera_id: str = "front",
                 video_size: tuple[int, int] = (320, 180)) -> None:
        self.robot_id = robot_id
        self.model = model
        self.camera_id = camera_id
        self.rng = np.random.default_rng(seed + 7919)
        self.count = 0
        self._video_camera: SceneCamera | None = None
        self._video_size = video_size
        self._seed = seed
        self._builders: dict[DataType, Callable[[float], dict[str, Any]]] = {
            DataType.LOG: self.log, DataType.PARAMETERS: self.parameters, DataType.MARKDOWN: self.markdown,
            DataType.CSV: self.csv, DataType.JSON: self.json, DataType.YAML: self.yaml,
            DataType.TOML: self.toml, DataType.SAFETENSORS: self.safetensors, DataType.MSGPACK: self.msgpack,
            DataType.VUER_MSG: self.vuer_msg, DataType.ZIP: self.zip, DataType.TAR: self.tar,
            DataType.AUDIO: self.audio, DataType.VIDEO: self.video, DataType.FILE: self.file,
        }

    def payload(self, data_type: DataType, t: float) -> dict[str, Any]:
        """A payload of ``data_type`` at session time ``t``."""
        self.count += 1
        return self._builders[data_type](t)

    def _joints(self, t: float, n: int = 1, dt: float = 0.0) -> tuple[Any, Any, Any]:
        return self.model.joint_state(t + dt * np.arange(n))

    # -- text ------------------------------------------------------------------------------------

    def log(self, t: float) -> dict[str, Any]:
        level, logger, template = _LOG_LINES[int(self.rng.choice(len(_LOG_LINES), p=_LOG_WEIGHTS))]
        _, _, torque = self._joints(t)
        cpu, _, latency = self.model.metrics(np.array([t]))
        message = template.format(n=self.count, dt=0.5 + self.rng.random(), m=int(self.rng.integers(20, 400)),
                                  w=float(self.model.gripper_width(np.array([t]))[0]),
                                  tau=float(abs(torque[0, 1])), e=8 + 4 * self.rng.random(),
                                  g=3 * self.rng.random(), lat=float(latency[0]))
        return {"level": level, "logger": logger, "message": message,
                "attributes": {"robot_id": self.robot_id, "t": f"{t:.3f}", "cpu_percent": f"{cpu[0]:.1f}"}}

    def parameters(self, t: float) -> dict[str, Any]:
        kp = [round(float(v), 2) for v in 100 + 20 * np.sin(np.arange(7) + t / 60)]
        return {"values": {
            "controller.kp": kp, "controller.kd": [round(k / 10, 3) for k in kp],
            "controller.rate_hz": 1000, "planner.name": "rrt_connect", "planner.max_time_s": 0.5,
            "safety.max_joint_velocity": 1.5, "safety.collision_check": True, "episode": self.count,
            "operator": None,
        }}

    def markdown(self, t: float) -> dict[str, Any]:
        angle, velocity, torque = self._joints(t)
        rows = "\n".join(f"| {name} | {angle[0, j]:+.3f} | {velocity[0, j]:+.3f} | {torque[0, j]:+.2f} |"
                         for j, name in enumerate(JOINT_NAMES))
        text = (f"# {self.robot_id}: status at t = {t:.1f} s\n\n"
                f"Grasps so far: **{int(t // 8)}**. Everything nominal.\n\n"
                "| joint | angle (rad) | velocity (rad/s) | torque (N·m) |\n"
                "|---|---:|---:|---:|\n" + rows + "\n")
        return {"name": f"status_{int(t):05d}.md", "text": text}

    def csv(self, t: float) -> dict[str, Any]:
        times = t + 0.5 * np.arange(20)
        position, _ = self.model.pose(times)
        lines = ["t_s,x_m,y_m,z_m"] + [f"{s:.2f},{p[0]:.4f},{p[1]:.4f},{p[2]:.4f}"
                                       for s, p in zip(times, position, strict=True)]
        return {"name": f"waypoints_{self.count}.csv", "text": "\n".join(lines) + "\n", "delimiter": ",",
                "header": True}

    def json(self, t: float) -> dict[str, Any]:
        target, _ = self.model.pose(np.array([t + 2.0]))
        task = {"task": "pick_and_place", "object": f"cube_{self.count % 4}", "attempt": self.count,
                "target_m": [round(float(v), 4) for v in target[0]], "deadline_s": round(t + 5, 1)}
        return {"name": f"task_{self.count}.json", "text": json.dumps(task, indent=2)}

    def yaml(self, t: float) -> dict[str, Any]:
        text = (f"robot: {self.robot_id}\narm:\n  dof: 7\n  payload_kg: 3.0\n  joints:\n"
                + "".join(f"    - {{name: {n}, limit_rad: 2.9}}\n" for n in JOINT_NAMES)
                + f"camera:\n  id: {self.camera_id}\n  fps: 30\nuptime_s: {t:.1f}\n")
        return {"name": "robot.yaml", "text": text}

    def toml(self, t: float) -> dict[str, Any]:
        _, _, torque = self._joints(t)
        blocks = [f'[{name}]\nmax_torque = {40.0 - 4 * j:.1f}\nlast_torque = {torque[0, j]:.3f}\n'
                  for j, name in enumerate(JOINT_NAMES)]
        return {"name": "limits.toml", "text": f'robot = "{self.robot_id}"\n\n' + "\n".join(blocks)}

    # -- binary ----------------------------------------------------------------------------------

    def safetensors(self, t: float) -> dict[str, Any]:
        angle, velocity, _ = self._joints(t, 50, 0.02)
        tensors = {"observation.joint_angle": angle.astype(np.float32),
                   "observation.joint_velocity": velocity.astype(np.float32),
                   "policy.gains": np.linspace(0.5, 2.0, 7)}
        step = str(self.count * 100)
        content = safetensors_bytes(tensors, {"step": step, "robot_id": self.robot_id})
        return {"name": f"policy_step_{step}.safetensors", "metadata": {"step": step},
                "blob": {"format": "safetensors", "content": content}}

    def msgpack(self, t: float) -> dict[str, Any]:
        angle, _, _ = self._joints(t)
        state = {"mode": "autonomous", "t": t, "grasping": bool(self.model.grasp(np.array([t]))[0] > 0.5),
                 "joint_angle": [round(float(a), 5) for a in angle[0]]}
        return {"name": "state.msgpack",
                "blob": {"format": "msgpack", "content": msgpack.packb(state, use_bin_type=True)}}

    def vuer_msg(self, t: float) -> dict[str, Any]:
        times = t + 0.1 * np.arange(64)
        position, _ = self.model.pose(times)
        colours = np.stack([np.linspace(0, 255, 64), np.full(64, 80), np.linspace(255, 0, 64)], axis=1)
        body = {"key": "ee_trajectory", "tag": "Trajectory", "t": t,
                "points": position.astype(np.float32), "colors": colours.astype(np.uint8)}
        return {"etype": "UPDATE", "rtype": None, "data": encode_vuer(body)}

    def zip(self, t: float) -> dict[str, Any]:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("waypoints.csv", self.csv(t)["text"])
            archive.writestr("status.md", self.markdown(t)["text"])
            archive.writestr("task.json", self.json(t)["text"])
        return {"name": f"bundle_{self.count}.zip", "blob": {"format": "zip", "content": buffer.getvalue()}}

    def tar(self, t: float) -> dict[str, Any]:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for name, text in (("robot.yaml", self.yaml(t)["text"]), ("limits.toml", self.toml(t)["text"])):
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size, info.mtime = len(data), 1_700_000_000
                archive.addfile(info, io.BytesIO(data))
        return {"name": f"episode_{self.count}.tar.gz",
                "blob": {"format": "tar.gz", "content": buffer.getvalue()}}

    def audio(self, t: float, seconds: float = 1.0, rate_hz: int = 16000) -> dict[str, Any]:
        times = t + np.arange(int(seconds * rate_hz)) / rate_hz
        _, velocity, _ = self.model.joint_state(times[::160])
        speed = np.interp(times, times[::160], np.abs(velocity).sum(axis=1))
        pitch = 110 + 60 * speed  # motor whine rises with joint speed
        phase = 2 * math.pi * np.cumsum(pitch) / rate_hz
        hum = 0.25 * np.sin(phase) + 0.1 * np.sin(2 * phase) + 0.05 * np.sin(3 * phase)
        clicks = self.model.grasp(times) * np.sin(2 * math.pi * 2200 * times) * 0.2
        hiss = 0.01 * self.rng.standard_normal(times.size)
        content = wav_bytes(hum + clicks + hiss, rate_hz)
        return {"source_id": "mic0", "sample_rate_hz": rate_hz, "channels": 1,
                "duration_us": int(seconds * 1_000_000), "blob": {"format": "wav", "content": content}}

    def video(self, t: float, seconds: float = 1.0, fps: int = 15) -> dict[str, Any]:
        if self._video_camera is None:
            width, height = self._video_size
            self._video_camera = SceneCamera(self.camera_id, width, height, seed=self._seed)
        camera = self._video_camera
        frames = [camera.render(t + i / fps)[0] for i in range(int(seconds * fps))]
        return {"camera_id": self.camera_id, "width": camera.width, "height": camera.height,
                "fps": float(fps), "frame_count": len(frames),
                "duration_us": int(len(frames) / fps * 1_000_000),
                "blob": {"format": "mp4", "content": mp4_bytes(frames, fps)}}

    def file(self, t: float) -> dict[str, Any]:
        intrinsics = np.array([[525.0, 0, 320.0], [0, 525.0, 180.0], [0, 0, 1]])
        distortion = np.array([0.08, -0.21, 0.001, 0.0004, 0.1])
        content = b"RSCALIB1" + intrinsics.astype("<f8").tobytes() + distortion.astype("<f8").tobytes()
        return {"name": f"calibration_{self.camera_id}.bin",
                "blob": {"format": "application/octet-stream", "content": content}}
