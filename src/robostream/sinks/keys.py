"""Deterministic names: MongoDB ``_id`` values, S3 object keys, Redis keys and channels.

Every name is a pure function of the record (robot, session, data type, seq or timestamp), so
a replay or a crash-redelivery writes the same document, object or Redis entry again instead of
a new one. Every id passes :func:`robostream.config.validate_id` before it becomes part of a
name (no ``/``, ``..``, ``:`` surprises in keys, paths or filters).
"""

from __future__ import annotations

import mimetypes
import re

from robostream.config import validate_id

_SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")
METRIC_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,127}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

#: Blob formats -> (file extension, content type); other formats go through ``mimetypes``.
FORMATS: dict[str, tuple[str, str]] = {
    "jpeg": ("jpg", "image/jpeg"),
    "jpg": ("jpg", "image/jpeg"),
    "png": ("png", "image/png"),
    "webp": ("webp", "image/webp"),
    "ply": ("ply", "application/ply"),
    "drc": ("drc", "application/octet-stream"),
    "draco": ("drc", "application/octet-stream"),
    "h264": ("h264", "video/h264"),
    "mp4": ("mp4", "video/mp4"),
    "wav": ("wav", "audio/wav"),
    "opus": ("opus", "audio/opus"),
    "pcm_s16le": ("pcm", "audio/L16"),
    "safetensors": ("safetensors", "application/octet-stream"),
    "msgpack": ("msgpack", "application/msgpack"),
    "zip": ("zip", "application/zip"),
    "tar": ("tar", "application/x-tar"),
    "tar.gz": ("tar.gz", "application/gzip"),
    "tgz": ("tar.gz", "application/gzip"),
    "tar.zst": ("tar.zst", "application/zstd"),
    "application/octet-stream": ("bin", "application/octet-stream"),
}


def validate_metric(value: str) -> str:
    """A metric name (``pose.position.x``, ``joints.angle.3``, ``channels.gripper``) that is safe
    in a Redis key and a Mongo filter; raises ``ValueError``."""
    if not isinstance(value, str) or not METRIC_RE.fullmatch(value) or ".." in value:
        raise ValueError(
            f"invalid metric {value!r}: expected 1-128 characters of letters, digits, '_' or '.', "
            "starting with a letter or '_'"
        )
    return value


def validate_object_key(key: str, robot_id: str, session_id: str) -> str:
    """An S3 key chosen upstream (the processors): under ``raw/`` or ``processed/`` of its own
    robot session, no ``..`` or empty segment, no control characters; raises ``ValueError``."""
    robot, session = _ids(robot_id, session_id)
    allowed = (f"raw/{robot}/{session}/", f"processed/{robot}/{session}/")
    segments = key.split("/")
    if (not 1 <= len(key) <= 1024 or not key.startswith(allowed) or _CONTROL_RE.search(key)
            or any(s in ("", ".", "..") for s in segments)):
        raise ValueError(f"unsafe S3 key {key!r}: expected a key under {allowed[0]} or {allowed[1]}")
    return key


def _ids(robot_id: str, session_id: str) -> tuple[str, str]:
    return validate_id(robot_id, "robot_id"), validate_id(session_id, "session_id")


def extension_and_type(fmt: str) -> tuple[str, str]:
    """File extension and content type of a blob format (``jpeg`` -> ``jpg``, ``image/jpeg``)."""
    known = FORMATS.get(fmt.lower())
    if known is not None:
        return known
    if "/" in fmt:
        ext = (mimetypes.guess_extension(fmt) or ".bin").lstrip(".")
        return ext, fmt
    ext = _SAFE_NAME_RE.sub("_", fmt.lower()).strip("._") or "bin"
    return ext, mimetypes.guess_type(f"x.{ext}")[0] or "application/octet-stream"


def safe_file_name(name: str) -> str:
    """A file name reduced to ``[A-Za-z0-9._-]`` (other characters become ``_``), max 100."""
    cleaned = _SAFE_NAME_RE.sub("_", name).strip("._")[:100]
    return cleaned or "file"


# -- MongoDB _id ---------------------------------------------------------------------------------


def record_doc_id(robot_id: str, session_id: str, data_type: str, seq: int) -> str:
    """``_id`` of the document landed from one record: ``robot/session/data_type/seq``."""
    robot, session = _ids(robot_id, session_id)
    return f"{robot}/{session}/{data_type}/{int(seq)}"


def telemetry_doc_id(robot_id: str, session_id: str, seq: int, bucket_minute_us: int) -> str:
    """``_id`` of a ``telemetry`` document: one record's points in one minute,
    ``robot/session/time_series/seq/minute µs`` (the same from the raw or the derived topic)."""
    robot, session = _ids(robot_id, session_id)
    return f"{robot}/{session}/time_series/{int(seq)}/{int(bucket_minute_us)}"


def session_doc_id(robot_id: str, session_id: str) -> str:
    """``_id`` of a ``sessions`` document: ``robot/session``."""
    robot, session = _ids(robot_id, session_id)
    return f"{robot}/{session}"


def frame_id(camera_id: str, timestamp_us: int) -> str:
    """A frame's id within its session: ``<camera>-<timestamp µs>``."""
    return f"{validate_id(camera_id, 'camera_id')}-{int(timestamp_us)}"


def frame_doc_id(robot_id: str, session_id: str, camera_id: str, timestamp_us: int) -> str:
    """``_id`` of a ``frames_metadata`` document: ``robot/session/<frame id>``."""
    robot, session = _ids(robot_id, session_id)
    return f"{robot}/{session}/{frame_id(camera_id, timestamp_us)}"


def aggregation_doc_id(
    robot_id: str, session_id: str, metric: str, resolution: str, window_start_us: int
) -> str:
    """``_id`` of an ``aggregations`` document: one window of one metric."""
    robot, session = _ids(robot_id, session_id)
    return f"{robot}/{session}/{validate_metric(metric)}/{resolution}/{int(window_start_us)}"


# -- S3 keys -------------------------------------------------------------------------------------


def raw_frame_key(
    robot_id: str, session_id: str, camera_id: str, timestamp_us: int, kind: str, fmt: str
) -> str:
    """``raw/{robot}/{session}/frames/{camera}/{ts}_{kind}.{ext}`` (e.g. ``..._rgb.jpg``)."""
    robot, session = _ids(robot_id, session_id)
    camera = validate_id(camera_id, "camera_id")
    ext, _ = extension_and_type(fmt)
    return f"raw/{robot}/{session}/frames/{camera}/{int(timestamp_us)}_{kind}.{ext}"


def raw_object_key(
    robot_id: str, session_id: str, data_type: str, seq: int, timestamp_us: int,
    fmt: str, name: str | None = None,
) -> str:
    """``raw/{robot}/{session}/{data_type}/{ts}_{seq}[_{name}].{ext}`` for other binary types."""
    robot, session = _ids(robot_id, session_id)
    ext, _ = extension_and_type(fmt)
    stem = f"{int(timestamp_us)}_{int(seq)}"
    if name:
        safe = safe_file_name(name)
        return f"raw/{robot}/{session}/{data_type}/{stem}_{safe}"
    return f"raw/{robot}/{session}/{data_type}/{stem}.{ext}"


def s3_uri(bucket: str, key: str) -> str:
    """``s3://bucket/key``: how documents refer to objects (URLs are presigned on read)."""
    return f"s3://{bucket}/{key}"


# -- Redis keys and channels ---------------------------------------------------------------------


def latest_key(robot_id: str, session_id: str) -> str:
    """``telemetry:{robot}:{session}:latest``: the last ``redis.latest_window`` points."""
    robot, session = _ids(robot_id, session_id)
    return f"telemetry:{robot}:{session}:latest"


def frame_key(robot_id: str, session_id: str, camera_id: str, timestamp_us: int) -> str:
    """``frames:{robot}:{session}:{frame}``: presigned URLs and metadata of one frame."""
    robot, session = _ids(robot_id, session_id)
    return f"frames:{robot}:{session}:{frame_id(camera_id, timestamp_us)}"


def log_key(robot_id: str, session_id: str) -> str:
    """``logs:{robot}:{session}:latest``: the last ``redis.latest_window`` log records."""
    robot, session = _ids(robot_id, session_id)
    return f"logs:{robot}:{session}:latest"


def stats_key(robot_id: str, session_id: str, metric: str, resolution: str) -> str:
    """``stats:{robot}:{session}:{metric}:{resolution}``: recent windows of one metric."""
    robot, session = _ids(robot_id, session_id)
    return f"stats:{robot}:{session}:{validate_metric(metric)}:{resolution}"


#: Sessions whose data the Redis sink has seen: a sorted set, member ``{robot}:{session}``, score
#: the session's newest sample seen (µs). The API lists a running session from here before the
#: MongoDB sink has landed its document (that sink may lag seconds behind under load).
LIVE_SESSIONS_KEY = "sessions:live"
#: The newest entries kept in :data:`LIVE_SESSIONS_KEY` (older sessions are in MongoDB long since).
LIVE_SESSIONS_KEEP = 10_000


def live_session_member(robot_id: str, session_id: str) -> str:
    """``{robot}:{session}``, the member of :data:`LIVE_SESSIONS_KEY`."""
    robot, session = _ids(robot_id, session_id)
    return f"{robot}:{session}"


def live_channels(robot_id: str, session_id: str, data_type: str) -> tuple[str, str]:
    """Pub/sub channels of a new item: ``live:{robot}:{session}`` and ``...:{data_type}``."""
    robot, session = _ids(robot_id, session_id)
    return f"live:{robot}:{session}", f"live:{robot}:{session}:{data_type}"
