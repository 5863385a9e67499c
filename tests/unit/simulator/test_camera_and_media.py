"""Camera frames and the other data types are real files of their formats, and look like data."""

from __future__ import annotations

import io
import json
import struct
import tarfile
import wave
import zipfile

import av
import msgpack
import numpy as np
import pytest
from PIL import Image

from robostream.schemas import DataType, build_envelope, decode_vuer
from robostream.simulator.camera import SceneCamera, parse_resolution
from robostream.simulator.media import ROTATION, Extras
from robostream.simulator.robot import RobotModel


@pytest.fixture(scope="module")
def camera() -> SceneCamera:
    return SceneCamera("front", 640, 360, seed=1)


def test_rgb_frames_are_jpegs_of_a_scene(camera: SceneCamera) -> None:
    frame = camera.frame(2.0)
    image = Image.open(io.BytesIO(frame.rgb_jpeg))
    assert image.format == "JPEG" and image.size == (640, 360)
    ratio = 640 * 360 * 3 / len(frame.rgb_jpeg)
    assert 5 < ratio < 100  # compresses like a photo: neither noise (~1) nor a flat colour (>200)
    pixels = np.asarray(image, dtype=np.float32)
    assert pixels.std() > 20  # structure, not a flat frame


def test_depth_frames_are_16_bit_pngs_in_millimetres(camera: SceneCamera) -> None:
    frame = camera.frame(2.0)
    image = Image.open(io.BytesIO(frame.depth_png))
    assert image.format == "PNG" and image.mode in ("I;16", "I")
    depth = np.asarray(image)
    assert depth.min() > 500 and depth.max() < 10_000  # 0.5 m .. 10 m
    assert 1.3 < 640 * 360 * 2 / len(frame.depth_png) < 20


def test_point_clouds_are_binary_ply_matching_the_depth(camera: SceneCamera) -> None:
    frame = camera.frame(2.0)
    header, _, body = frame.pointcloud_ply.partition(b"end_header\n")
    assert header.startswith(b"ply\nformat binary_little_endian 1.0\n")
    count = frame.cloud_width * frame.cloud_height
    assert f"element vertex {count}".encode() in header and len(body) == count * 15
    points = np.frombuffer(body, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "u1", 3)])
    assert points["z"].min() > 0.5 and points["z"].max() < 10


def test_frames_move_over_time(camera: SceneCamera) -> None:
    first, _ = camera.render(0.0)
    later, _ = camera.render(1.5)
    assert np.mean(np.abs(first.astype(int) - later.astype(int))) > 2


def test_resolutions() -> None:
    assert parse_resolution("1920x1080") == (1920, 1080)
    assert SceneCamera("wrist", 192, 108).render(0.0)[0].shape == (108, 192, 3)


@pytest.fixture(scope="module")
def extras() -> Extras:
    return Extras("robot_001", RobotModel(1), seed=1, video_size=(160, 90))


@pytest.mark.parametrize("data_type", [DataType.LOG, *ROTATION])
def test_every_payload_follows_the_wire_contract(extras: Extras, data_type: DataType) -> None:
    payload = extras.payload(data_type, 12.5)
    build_envelope(data_type, payload, robot_id="robot_001", session_id="s1", seq=0)


def test_audio_is_a_wav(extras: Extras) -> None:
    payload = extras.audio(3.0)
    with wave.open(io.BytesIO(payload["blob"]["content"])) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        assert wav.getnframes() == 16000


def test_video_is_an_h264_mp4(extras: Extras) -> None:
    payload = extras.video(3.0)
    with av.open(io.BytesIO(payload["blob"]["content"]), "r") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = list(container.decode(stream))
    assert len(frames) == payload["frame_count"] == 15
    assert (frames[0].width, frames[0].height) == (160, 90)


def test_safetensors_has_its_header_and_tensors(extras: Extras) -> None:
    content = extras.safetensors(3.0)["blob"]["content"]
    (size,) = struct.unpack("<Q", content[:8])
    header = json.loads(content[8:8 + size])
    tensor = header["observation.joint_angle"]
    assert tensor["dtype"] == "F32" and tensor["shape"] == [50, 7]
    begin, end = tensor["data_offsets"]
    angles = np.frombuffer(content[8 + size + begin:8 + size + end], dtype="<f4").reshape(50, 7)
    assert np.all(np.abs(angles) < 4)


def test_archives_open(extras: Extras) -> None:
    with zipfile.ZipFile(io.BytesIO(extras.zip(3.0)["blob"]["content"])) as archive:
        assert set(archive.namelist()) == {"waypoints.csv", "status.md", "task.json"}
    with tarfile.open(fileobj=io.BytesIO(extras.tar(3.0)["blob"]["content"]), mode="r:gz") as archive:
        assert archive.getnames() == ["robot.yaml", "limits.toml"]


def test_vuer_messages_carry_typed_arrays(extras: Extras) -> None:
    body = decode_vuer(extras.vuer_msg(3.0)["data"])
    assert body["points"].dtype == np.float32 and body["points"].shape == (64, 3)
    assert msgpack.unpackb(extras.msgpack(3.0)["blob"]["content"])["mode"] == "autonomous"
