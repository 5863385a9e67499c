"""Hypothesis strategies: valid raw payloads per data type, as a robot would send them."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np
import orjson
import yaml
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from robostream.schemas import DataType, encode_vuer
from robostream.schemas.envelope import MAX_TIMESTAMP_S

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,24}", fullmatch=True).filter(lambda s: ".." not in s)
filenames = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_. -]{0,30}", fullmatch=True).filter(
    lambda s: s not in (".", "..")
)
channel_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
finite = st.floats(allow_nan=False, allow_infinity=False)
maybe_nan = st.floats(allow_infinity=False)  # time_series: NaN is a missing sample
int64 = st.integers(-(2**63), 2**63 - 1)
clean_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)
timestamps_us = st.integers(0, MAX_TIMESTAMP_S * 1_000_000 - 1)


def _columns(n: int, names: str) -> st.SearchStrategy[dict[str, list[float]]]:
    return st.fixed_dictionaries({c: st.lists(maybe_nan, min_size=n, max_size=n) for c in names})


@st.composite
def _joints(draw: st.DrawFn, n: int) -> dict[str, Any]:
    dof = draw(st.integers(1, 7))
    rows = st.lists(st.lists(maybe_nan, min_size=dof, max_size=dof), min_size=n, max_size=n)
    joints: dict[str, Any] = {"angle": draw(rows)}
    if draw(st.booleans()):
        joints["names"] = [f"j{i}" for i in range(dof)]
    for field in ("velocity", "torque"):
        if draw(st.booleans()):
            joints[field] = draw(st.just([]) | rows)
    return joints


@st.composite
def time_series(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 5))
    payload: dict[str, Any] = {"t": draw(st.lists(int64, min_size=n, max_size=n))}
    groups: dict[str, st.SearchStrategy[Any]] = {
        "pose": st.fixed_dictionaries({"position": _columns(n, "xyz"), "orientation": _columns(n, "xyzw")}),
        "joints": _joints(n),
        "force_torque": st.fixed_dictionaries({"force": _columns(n, "xyz"), "torque": _columns(n, "xyz")}),
        "imu": st.fixed_dictionaries(
            {"linear_acceleration": _columns(n, "xyz"), "angular_velocity": _columns(n, "xyz")},
            optional={"orientation": st.none() | _columns(n, "xyzw")},
        ),
        "metrics": st.fixed_dictionaries(
            {
                c: st.lists(maybe_nan, min_size=n, max_size=n)
                for c in ("cpu_percent", "memory_mb", "network_latency_ms")
            }
        ),
    }
    for name, strategy in groups.items():
        if draw(st.booleans()):
            payload[name] = draw(strategy)
    channels = draw(st.dictionaries(channel_names, st.lists(maybe_nan, min_size=n, max_size=n), max_size=3))
    send_empty: bool = draw(st.booleans())
    if channels or send_empty:
        payload["channels"] = channels
        keys = draw(st.lists(st.sampled_from(sorted(channels)), unique=True)) if channels else []
        payload["units"] = {k: draw(clean_text) for k in keys}
    return payload


scalars = st.none() | st.booleans() | int64 | finite | clean_text
parameters = st.fixed_dictionaries(
    {
        "values": st.dictionaries(
            st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20),
            scalars | st.lists(scalars, max_size=4),
            max_size=6,
        )
    }
)

hex64 = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)
buckets = st.from_regex(r"[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]", fullmatch=True)
s3_keys = st.from_regex(r"raw/[a-z0-9_]{1,10}/[a-z0-9_]{1,10}/frames/[0-9]{1,16}_rgb\.jpg", fullmatch=True)
formats = st.sampled_from(["jpeg", "png", "ply", "h264", "application/octet-stream", "tar.gz", "wav"])


@st.composite
def blobs(draw: st.DrawFn) -> dict[str, Any]:
    fmt = draw(formats)
    if draw(st.booleans()):
        return {"format": fmt, "content": draw(st.binary(max_size=64))}
    size, digest = draw(st.integers(0, 2**40)), draw(hex64)
    ref = {"bucket": draw(buckets), "key": draw(s3_keys), "size": size, "sha256": digest}
    return {"format": fmt, "size_bytes": size, "sha256": digest, "content": ref}


dims = st.integers(0, 4096)
images = st.fixed_dictionaries(
    {
        "camera_id": ids,
        "kind": st.sampled_from(["rgb", "depth", "pointcloud", "thumbnail", "other"]),
        "width": dims,
        "height": dims,
        "blob": blobs(),
    }
)
video = st.fixed_dictionaries(
    {
        "camera_id": ids,
        "width": dims,
        "height": dims,
        "fps": st.floats(0, 1000, exclude_min=True),
        "frame_count": st.integers(0, 10**6),
        "duration_us": st.integers(0, 2**40),
        "blob": blobs(),
    }
)
audio = st.fixed_dictionaries(
    {
        "source_id": ids,
        "sample_rate_hz": st.integers(1, 192_000),
        "channels": st.integers(1, 8),
        "duration_us": st.integers(0, 2**40),
        "blob": blobs(),
    }
)
log = st.fixed_dictionaries(
    {"level": st.sampled_from(["debug", "info", "warning", "error", "critical"]), "message": st.text()},
    optional={
        "logger": st.text(max_size=20),
        "attributes": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
    },
)
optional_name = {"name": st.none() | filenames}
markdown = st.fixed_dictionaries({"text": st.text()}, optional=optional_name)


@st.composite
def csv_docs(draw: st.DrawFn) -> dict[str, Any]:
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    rows = draw(st.lists(st.lists(clean_text, min_size=1, max_size=4), max_size=4))
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter).writerows(rows)
    doc: dict[str, Any] = {"text": buffer.getvalue(), "delimiter": delimiter, "header": draw(st.booleans())}
    if draw(st.booleans()):
        doc["name"] = draw(filenames)
    return doc


json_values = st.recursive(
    st.none() | st.booleans() | int64 | finite | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
json_docs = st.fixed_dictionaries(
    {"text": json_values.map(lambda v: orjson.dumps(v).decode())}, optional=optional_name
)
yaml_docs = st.fixed_dictionaries(
    {
        "text": st.dictionaries(
            st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.integers() | finite | clean_text, max_size=4
        ).map(lambda d: yaml.safe_dump(d))
    },
    optional=optional_name,
)
toml_docs = st.fixed_dictionaries(
    {
        "text": st.dictionaries(
            st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.integers(-(2**63), 2**63 - 1), max_size=4
        ).map(lambda d: "".join(f"{k} = {v}\n" for k, v in d.items()))
    },
    optional=optional_name,
)


def _named_blob(**extra: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"name": filenames, "blob": blobs(), **extra})


safetensors = st.fixed_dictionaries(
    {"name": filenames, "blob": blobs()},
    optional={"metadata": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)},
)
msgpack_blobs = st.fixed_dictionaries({"blob": blobs()}, optional=optional_name)

VUER_DTYPES = [
    "bool",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float16",
    "float32",
    "float64",
]
arrays = st.sampled_from(VUER_DTYPES).flatmap(
    lambda dt: hnp.arrays(np.dtype(dt), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
)
vuer_trees = st.recursive(
    arrays
    | st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | finite
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(max_size=6).filter(lambda k: k not in ("$dtype", "ztype")), inner, max_size=3
        )
    ),
    max_leaves=6,
)
vuer_msgs = st.fixed_dictionaries(
    {"etype": st.text(min_size=1, max_size=20), "data": vuer_trees.map(encode_vuer)},
    optional={"rtype": st.none() | st.text(max_size=20)},
)

PAYLOADS: dict[DataType, st.SearchStrategy[dict[str, Any]]] = {
    DataType.TIME_SERIES: time_series(),
    DataType.PARAMETERS: parameters,
    DataType.IMAGES: images,
    DataType.VIDEO: video,
    DataType.AUDIO: audio,
    DataType.LOG: log,
    DataType.MARKDOWN: markdown,
    DataType.FILE: _named_blob(),
    DataType.CSV: csv_docs(),
    DataType.SAFETENSORS: safetensors,
    DataType.JSON: json_docs,
    DataType.YAML: yaml_docs,
    DataType.TOML: toml_docs,
    DataType.MSGPACK: msgpack_blobs,
    DataType.VUER_MSG: vuer_msgs,
    DataType.ZIP: _named_blob(),
    DataType.TAR: _named_blob(),
}


def canon(obj: Any) -> Any:
    """Comparable form: every NaN (any sign or payload) becomes the same marker."""
    if isinstance(obj, float) and math.isnan(obj):
        return "<NaN>"
    if isinstance(obj, dict):
        return {k: canon(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [canon(v) for v in obj]
    return obj
