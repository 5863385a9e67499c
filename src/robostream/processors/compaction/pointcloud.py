"""Point clouds: PLY (or raw float32 xyz) -> Draco (DracoPy), with a quantization tolerance."""

from __future__ import annotations

import re

import DracoPy
import numpy as np

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


class PointCloud:
    """Points (n, 3) float32 and optional colors (n, 3) uint8."""

    __slots__ = ("colors", "points")

    def __init__(self, points: np.ndarray, colors: np.ndarray | None = None) -> None:
        self.points = np.ascontiguousarray(points, dtype=np.float32).reshape(-1, 3)
        self.colors = None if colors is None else np.ascontiguousarray(colors, dtype=np.uint8)

    def __len__(self) -> int:
        return int(self.points.shape[0])


def parse_ply(data: bytes) -> PointCloud:
    """Read the ``vertex`` element of an ASCII or binary little/big-endian PLY (x, y, z[, r, g, b])."""
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise ValueError("not a PLY file")
    body_start = data.index(b"\n", end) + 1
    header = data[:end].decode("ascii", "replace").splitlines()
    fmt = next((line.split()[1] for line in header if line.startswith("format")), "ascii")
    count, fields = _vertex_fields(header)
    if fmt == "ascii":
        rows = data[body_start:].split(b"\n", count)[:count]
        table = np.array([r.split()[: len(fields)] for r in rows], dtype=np.float64)
        columns = {name: table[:, i] for i, (name, _) in enumerate(fields)}
    else:
        order = "<" if fmt == "binary_little_endian" else ">"
        dtype = np.dtype([(name, order + kind) for name, kind in fields])
        records = np.frombuffer(data, dtype, count=count, offset=body_start)
        columns = {name: records[name] for name, _ in fields}
    points = np.stack([columns["x"], columns["y"], columns["z"]], axis=1)
    colors = None
    if all(c in columns for c in ("red", "green", "blue")):
        colors = np.stack([columns["red"], columns["green"], columns["blue"]], axis=1)
    return PointCloud(points, colors)


def _vertex_fields(header: list[str]) -> tuple[int, list[tuple[str, str]]]:
    count, fields, in_vertex = 0, [], False
    for line in header:
        parts = line.split()
        if parts[:1] == ["element"]:
            in_vertex = parts[1] == "vertex"
            if in_vertex:
                count = int(parts[2])
        elif parts[:1] == ["property"] and in_vertex:
            if parts[1] == "list":
                raise ValueError("PLY vertex list properties are not supported")
            fields.append((parts[2], _PLY_TYPES[parts[1]]))
    if not re.fullmatch(r"\d+", str(count)) or not fields:
        raise ValueError("PLY has no vertex element")
    return count, fields


def encode_ply(cloud: PointCloud) -> bytes:
    """A binary little-endian PLY (float32 xyz, uchar rgb when colored): test and bench input."""
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if cloud.colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    table = np.empty(len(cloud), dtype=fields)
    table["x"], table["y"], table["z"] = cloud.points.T
    if cloud.colors is not None:
        table["red"], table["green"], table["blue"] = cloud.colors.T
    props = "".join(
        f"property {'float' if kind == '<f4' else 'uchar'} {name}\n" for name, kind in fields
    )
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {len(cloud)}\n{props}end_header\n"
    return header.encode() + table.tobytes()


def decode_source(data: bytes, fmt: str) -> PointCloud:
    """A source point-cloud blob: PLY, Draco, or raw little-endian float32 xyz triples."""
    kind = fmt.lower()
    if kind in ("drc", "draco"):
        return decode_draco(data)
    if kind in ("xyz", "xyz32f", "raw", "f32"):
        return PointCloud(np.frombuffer(data, "<f4"))
    return parse_ply(data)


def encode_draco(cloud: PointCloud, *, quantization_bits: int = 14, compression_level: int = 7) -> bytes:
    """Draco-compressed point cloud (positions quantized to ``quantization_bits`` per axis)."""
    data: bytes = DracoPy.encode(
        cloud.points, quantization_bits=quantization_bits, compression_level=compression_level,
        preserve_order=True, colors=cloud.colors,
    )
    return data


def decode_draco(data: bytes) -> PointCloud:
    """A Draco buffer back to points (and colors when present)."""
    decoded = DracoPy.decode(data)
    colors = getattr(decoded, "colors", None)
    return PointCloud(np.asarray(decoded.points), None if colors is None else np.asarray(colors))


def quantization_tolerance(points: np.ndarray, quantization_bits: int) -> float:
    """Largest per-axis error Draco's quantization allows: half a step of the bounding cube."""
    if not points.size:
        return 0.0
    extent = float((points.max(axis=0) - points.min(axis=0)).max())
    return extent / (2**quantization_bits - 1) / 2
