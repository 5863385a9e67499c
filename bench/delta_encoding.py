"""Delta encoding between frames: does keyframe + residual beat today's per-frame codecs?

Today the processors compact every depth frame on its own as a 16-bit PNG (``png_level``) and
every point cloud on its own with Draco (14 quantization bits, level 7); RGB goes into H.264
segments (inter-frame already). This script measures, on the simulator's camera
(``robostream.simulator.camera.SceneCamera``, a 2 s burst at 30 fps, as ``robostream simulate``
sends) and on the processors' synthetic scene (``compaction.synthetic``), what a keyframe +
delta scheme would store instead:

* depth (lossless): keyframe every ``--keyframe`` frames as PNG, the frames between as the
  residual to the previous frame or to the keyframe (uint16 wrapping difference, zigzag-mapped),
  coded as PNG or with zstd (bytes split high/low first); per-frame zstd as a control.
* point clouds (same point order, as the simulator's organised grid): Draco per frame at level 7
  (today) and 10; zstd of the raw points per frame; the XOR of float32 bit patterns to the
  previous cloud, zstd-coded (lossless); and points quantized on Draco's 14-bit grid with the
  keyframe coded along the point order and the others as the difference to the previous cloud
  (lossy within Draco's tolerance), zstd-coded.
* rgb: today's H.264 segment (``h264.encode_segment``) against raw rgb24 and the source JPEGs.

Every scheme is decoded back and compared with its input (lossless: bit-identical; lossy:
within Draco's quantization tolerance). Bytes are exact; encode/decode ms per frame are CPU
time of this process on a shared machine: rough.

    python bench/delta_encoding.py            # 640x360 and 1920x1080, a minute or two
    python bench/delta_encoding.py --quick    # small input (smoke test)
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import _common
import numpy as np
import zstandard
from PIL import Image

from robostream.processors.compaction import depth, h264, pointcloud, synthetic
from robostream.processors.compaction.jobs import CompactionParams
from robostream.simulator.camera import SceneCamera

DEFAULT_OUT = _common.RESULTS / "delta_encoding.json"
SEED_SAVED = {"rgb": 0.70, "depth": 0.50, "pointcloud": 0.90}  # the seed's compression goals
FPS = 30.0
PARAMS = CompactionParams()
Array = np.ndarray[Any, Any]


# -- sources ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sequence3:
    """Frames of one scene: RGB, depth (mm) and point clouds, in order."""

    name: str
    rgb: list[Array]
    rgb_jpeg_bytes: int
    depth: list[Array]
    clouds: list[pointcloud.PointCloud]


def simulator_scene(width: int, height: int, frames: int, stride: int = 8) -> Sequence3:
    """A burst of the simulator's front camera: what ``robostream simulate`` sends."""
    camera = SceneCamera("front", width, height, seed=0, pointcloud_stride=stride)
    rgb, depths, clouds, jpeg = [], [], [], 0
    for i in range(frames):
        frame = camera.frame(i / FPS)  # what the robot sends; the processors decode it as here
        with Image.open(io.BytesIO(frame.rgb_jpeg)) as image:
            rgb.append(np.asarray(image.convert("RGB")))
        depths.append(depth.decode_png16(frame.depth_png))
        clouds.append(pointcloud.parse_ply(frame.pointcloud_ply))
        jpeg += len(frame.rgb_jpeg)
    return Sequence3(f"simulator {width}x{height}", rgb, jpeg, depths, clouds)


def synthetic_scene(width: int, height: int, frames: int) -> Sequence3:
    """The processors' synthetic scene (fresh noise and holes in every frame: the hard case)."""
    depths = [synthetic.depth_frame(i, width, height) for i in range(frames)]
    rgb = [synthetic.rgb_frame(i, width, height) for i in range(frames)]
    jpeg = sum(len(synthetic.jpeg_bytes(f)) for f in rgb)
    clouds = [synthetic.depth_to_cloud(d, step=8) for d in depths]  # holes dropped: sizes vary
    return Sequence3(f"synthetic {width}x{height}", rgb, jpeg, depths, clouds)


# -- depth schemes -----------------------------------------------------------------------------------


def _zigzag16(delta: Array) -> Array:
    signed = delta.view(np.int16).astype(np.int32)
    return ((signed << 1) ^ (signed >> 15)).astype(np.uint16)


def _unzigzag16(code: Array) -> Array:
    value = code.astype(np.int32)
    return ((value >> 1) ^ -(value & 1)).astype(np.int16).view(np.uint16)


def _split_bytes(array: Array) -> bytes:
    """Bytes of each significance together (high bytes of residuals are mostly zero)."""
    width = array.dtype.itemsize
    return np.ascontiguousarray(array).view(np.uint8).reshape(-1, width).T.tobytes()


def _join_bytes(data: bytes, dtype: str, shape: tuple[int, ...]) -> Array:
    width = np.dtype(dtype).itemsize
    planes = np.frombuffer(data, np.uint8).reshape(width, -1)
    return np.ascontiguousarray(planes.T).view(dtype).reshape(shape)


def _left(frame: Array) -> Array:
    shifted = np.zeros_like(frame)
    shifted[:, 1:] = frame[:, :-1]
    return shifted


class DepthCodec:
    """One depth scheme: ``encode(frames) -> blobs`` and ``decode(blobs, shape) -> frames``."""

    def __init__(self, name: str, residual: str | None, coder: str, keyframe: int, level: int = 3) -> None:
        self.name, self.residual, self.coder, self.keyframe = name, residual, coder, keyframe
        self._c = zstandard.ZstdCompressor(level=level)
        self._d = zstandard.ZstdDecompressor()

    def _code(self, plane: Array) -> bytes:
        if self.coder == "png":
            return depth.encode_png16(plane, PARAMS.png_level)
        return self._c.compress(_split_bytes(plane))

    def _uncode(self, blob: bytes, shape: tuple[int, int]) -> Array:
        if self.coder == "png":
            return depth.decode_png16(blob)
        return _join_bytes(self._d.decompress(blob), "<u2", shape)

    def _reference(self, frames: Sequence[Array], i: int) -> Array | None:
        if self.residual in (None, "left") or i % self.keyframe == 0:
            return None
        return frames[i - 1] if self.residual == "previous" else frames[i - i % self.keyframe]

    def encode(self, frames: Sequence[Array]) -> list[bytes]:
        out = []
        for i, frame in enumerate(frames):
            if self.residual == "left":  # intra only: each pixel minus its left neighbour
                out.append(self._code(_zigzag16(frame - _left(frame))))
                continue
            ref = self._reference(frames, i)
            if ref is None:  # a keyframe of a delta scheme is a plain PNG
                key = depth.encode_png16(frame, PARAMS.png_level) if self.residual else self._code(frame)
                out.append(key)
            else:
                out.append(self._code(_zigzag16(frame - ref)))  # uint16 wraps: invertible
        return out

    def decode(self, blobs: Sequence[bytes], shape: tuple[int, int]) -> list[Array]:
        out: list[Array] = []
        for i, blob in enumerate(blobs):
            if self.residual == "left":
                out.append(np.cumsum(_unzigzag16(self._uncode(blob, shape)), axis=1, dtype=np.uint16))
                continue
            ref = self._reference(out, i)
            if ref is None:
                out.append(depth.decode_png16(blob) if self.residual else self._uncode(blob, shape))
            else:
                out.append(ref + _unzigzag16(self._uncode(blob, shape)))
        return out


def depth_schemes(keyframe: int) -> list[DepthCodec]:
    """Today's PNG first (the reference), then the alternatives."""
    return [
        DepthCodec("png per frame (today)", None, "png", keyframe),
        DepthCodec("zstd per frame", None, "zstd", keyframe),
        DepthCodec("zstd per frame, left-neighbour delta", "left", "zstd", keyframe),
        DepthCodec(f"png key/{keyframe} + png delta-prev", "previous", "png", keyframe),
        DepthCodec(f"png key/{keyframe} + png delta-key", "keyframe", "png", keyframe),
        DepthCodec(f"png key/{keyframe} + zstd delta-prev", "previous", "zstd", keyframe),
        DepthCodec(f"png key/{keyframe} + zstd-19 delta-prev", "previous", "zstd", keyframe, level=19),
        DepthCodec(f"png key/{keyframe} + zstd delta-key", "keyframe", "zstd", keyframe),
    ]


# -- point-cloud schemes -----------------------------------------------------------------------------


def _columns(cloud: pointcloud.PointCloud) -> Array:
    """xyz float32 bit patterns and rgb as one (n, 4) uint32 table (colours packed in the 4th)."""
    table = np.zeros((len(cloud), 4), np.uint32)
    table[:, :3] = cloud.points.view(np.uint32)
    if cloud.colors is not None:
        c = cloud.colors.astype(np.uint32)
        table[:, 3] = c[:, 0] | c[:, 1] << 8 | c[:, 2] << 16
    return table


def _cloud_of(table: Array) -> pointcloud.PointCloud:
    colors = np.stack([table[:, 3] & 255, table[:, 3] >> 8 & 255, table[:, 3] >> 16 & 255], axis=1)
    return pointcloud.PointCloud(table[:, :3].copy().view(np.float32), colors.astype(np.uint8))


class CloudCodec:
    """One point-cloud scheme over a sequence with the same point order in every cloud."""

    def __init__(self, name: str, kind: str, keyframe: int, draco_level: int = PARAMS.draco_level,
                 bits: int = PARAMS.draco_bits) -> None:
        self.name, self.kind, self.keyframe, self.draco_level = name, kind, keyframe, draco_level
        self.bits = bits
        self.lossless = kind in ("zstd", "xor")
        self._c = zstandard.ZstdCompressor(level=3)
        self._d = zstandard.ZstdDecompressor()
        self._grid: tuple[Array, float] | None = None  # quantization origin and step

    def encode(self, clouds: Sequence[pointcloud.PointCloud]) -> list[bytes]:
        if self.kind == "draco":
            return [pointcloud.encode_draco(c, quantization_bits=self.bits,
                                            compression_level=self.draco_level) for c in clouds]
        tables = [self._table(c, i) for i, c in enumerate(clouds)]
        out = []
        for i, table in enumerate(tables):
            if self.kind == "zstd" or i % self.keyframe == 0:
                ref = np.zeros_like(table)
                if self.kind == "q14":  # keyframe: difference along the point order
                    ref[1:] = table[:-1]
            else:
                ref = tables[i - 1]
            out.append(self._c.compress(_split_bytes(self._residual(table, ref))))
        return out

    def decode(self, blobs: Sequence[bytes], count: int) -> list[pointcloud.PointCloud]:
        if self.kind == "draco":
            return [pointcloud.decode_draco(b) for b in blobs]
        tables: list[Array] = []
        for i, blob in enumerate(blobs):
            residual = _join_bytes(self._d.decompress(blob), "<u4", (count, 4))
            if self.kind == "q14" and i % self.keyframe == 0:
                tables.append(self._unresidual(residual, np.zeros_like(residual), sequential=True))
            elif self.kind == "zstd" or i % self.keyframe == 0:
                tables.append(self._unresidual(residual, np.zeros_like(residual)))
            else:
                tables.append(self._unresidual(residual, tables[i - 1]))
        return [self._cloud(t) for t in tables]

    # quantized tables hold int32 grid positions (as uint32) and packed colours
    def _table(self, cloud: pointcloud.PointCloud, i: int) -> Array:
        table = _columns(cloud)
        if self.kind != "q14":
            return table
        if i % self.keyframe == 0 or self._grid is None:
            origin = cloud.points.min(axis=0)
            extent = float((cloud.points.max(axis=0) - origin).max())
            self._grid = origin, extent / (2**PARAMS.draco_bits - 1)
        origin, step = self._grid
        table[:, :3] = np.rint((cloud.points - origin) / step).astype(np.int32).view(np.uint32)
        return table

    def _cloud(self, table: Array) -> pointcloud.PointCloud:
        if self.kind != "q14":
            return _cloud_of(table)
        assert self._grid is not None
        origin, step = self._grid  # the bench decodes one keyframe interval's grid: see run_clouds
        cloud = _cloud_of(table)
        cloud.points = (table[:, :3].view(np.int32) * step + origin).astype(np.float32)
        return cloud

    def _residual(self, table: Array, ref: Array) -> Array:
        if self.kind in ("xor", "zstd"):
            return table ^ ref
        delta = (table.astype(np.int64) - ref.astype(np.int64)).astype(np.int32)
        return ((delta << 1) ^ (delta >> 31)).view(np.uint32)

    def _unresidual(self, residual: Array, ref: Array, sequential: bool = False) -> Array:
        if self.kind in ("xor", "zstd"):
            return residual ^ ref
        signed = residual.view(np.int32)
        delta = (signed >> 1 & 0x7FFFFFFF) ^ -(signed & 1)
        if sequential:
            return np.cumsum(delta.astype(np.int64), axis=0).astype(np.int32).view(np.uint32)
        return (ref.view(np.int32).astype(np.int64) + delta).astype(np.int32).view(np.uint32)


def cloud_schemes(keyframe: int) -> list[CloudCodec]:
    """Today's Draco first (the reference), then the alternatives."""
    return [
        CloudCodec(f"draco q{PARAMS.draco_bits} l{PARAMS.draco_level} per frame (today)", "draco", keyframe),
        CloudCodec(f"draco q{PARAMS.draco_bits} l10 per frame", "draco", keyframe, draco_level=10),
        CloudCodec(f"draco q11 l{PARAMS.draco_level} per frame", "draco", keyframe, bits=11),
        CloudCodec(f"draco q10 l{PARAMS.draco_level} per frame", "draco", keyframe, bits=10),
        CloudCodec("zstd per frame (float32)", "zstd", keyframe),
        CloudCodec(f"zstd key/{keyframe} + xor delta-prev (float32)", "xor", keyframe),
        CloudCodec(f"q{PARAMS.draco_bits} grid key/{keyframe} + zstd delta-prev", "q14", keyframe),
    ]


# -- measuring ----------------------------------------------------------------------------------------


def _cpu_ms(action: Callable[[], Any], frames: int) -> tuple[Any, float]:
    start = time.process_time()
    result = action()
    return result, (time.process_time() - start) * 1000 / frames


def _row(scene: str, kind: str, scheme: str, blobs: Sequence[bytes], raw: int, today: float | None,
         enc_ms: float, dec_ms: float, lossless: str) -> dict[str, Any]:
    per_frame = sum(len(b) for b in blobs) / len(blobs)
    return {"scene": scene, "kind": kind, "scheme": scheme, "bytes_per_frame": round(per_frame, 1),
            "raw_bytes_per_frame": raw, "saved_vs_raw": round(1 - per_frame / raw, 4),
            "seed_saved": SEED_SAVED[kind],
            "vs_today": round(per_frame / today, 4) if today else 1.0,
            "encode_ms_per_frame": round(enc_ms, 2), "decode_ms_per_frame": round(dec_ms, 2),
            "lossless": lossless}


def run_depth(seq: Sequence3, keyframe: int) -> list[dict[str, Any]]:
    """Every depth scheme on ``seq``: bytes, CPU, and the decoded frames checked bit for bit."""
    rows, today = [], None
    shape = seq.depth[0].shape
    for codec in depth_schemes(keyframe):
        blobs, enc = _cpu_ms(partial(codec.encode, seq.depth), len(seq.depth))
        decoded, dec = _cpu_ms(partial(codec.decode, blobs, shape), len(blobs))
        exact = all(np.array_equal(a, b) for a, b in zip(seq.depth, decoded, strict=True))
        if not exact:
            raise AssertionError(f"{codec.name} did not round-trip on {seq.name}")
        row = _row(seq.name, "depth", codec.name, blobs, seq.depth[0].size * 2, today, enc, dec, "yes")
        today = today or row["bytes_per_frame"]
        rows.append(row)
    return rows


def run_clouds(seq: Sequence3, keyframe: int) -> list[dict[str, Any]]:
    """Every point-cloud scheme on ``seq`` (one keyframe interval at a time for the grid scheme)."""
    rows, today = [], None
    clouds = seq.clouds
    count = len(clouds[0])
    if any(len(c) != count for c in clouds):  # no common point order: deltas do not apply
        return []
    for codec in cloud_schemes(keyframe):
        tolerance = max(pointcloud.quantization_tolerance(c.points, codec.bits) for c in clouds)
        blobs: list[bytes] = []
        decoded: list[pointcloud.PointCloud] = []
        enc = dec = 0.0
        groups = [clouds[i:i + keyframe] for i in range(0, len(clouds), keyframe)]
        for group in groups:  # a group = one keyframe interval (the grid scheme's grid is per keyframe)
            part, e = _cpu_ms(partial(codec.encode, group), 1)
            back, d = _cpu_ms(partial(codec.decode, part, count), 1)
            blobs += part
            decoded += back
            enc, dec = enc + e, dec + d
        for source, back_cloud in zip(clouds, decoded, strict=True):
            error = float(np.abs(source.points - back_cloud.points).max())
            if (codec.lossless and error) or error > 2.01 * tolerance:  # Draco: within ~a grid step
                raise AssertionError(f"{codec.name}: error {error} on {seq.name}")
        lossless = "yes" if codec.lossless else f"no (<= {2 * tolerance * 1000:.2f} mm)"
        row = _row(seq.name, "pointcloud", codec.name, blobs, count * 15, today,
                   enc / len(clouds), dec / len(clouds), lossless)
        today = today or row["bytes_per_frame"]
        rows.append(row)
    return rows


def run_rgb(seq: Sequence3, keyframe: int) -> list[dict[str, Any]]:
    """Today's H.264 segment of the burst against raw rgb24 (and the source JPEGs)."""
    n = len(seq.rgb)
    segment, enc = _cpu_ms(lambda: h264.encode_segment(seq.rgb, fps=FPS, gop=keyframe, crf=PARAMS.crf,
                                                        preset=PARAMS.preset), n)
    decoded, dec = _cpu_ms(lambda: h264.decode_segment(segment), n)
    psnr = float(np.mean([h264.psnr(a, b) for a, b in zip(seq.rgb, decoded, strict=True)]))
    row = _row(seq.name, "rgb", f"h264 crf{PARAMS.crf} gop{keyframe} (today)", [segment] * 1,
               seq.rgb[0].size, None, enc, dec, f"no (PSNR {psnr:.1f} dB)")
    row["bytes_per_frame"] = round(len(segment) / n, 1)
    row["saved_vs_raw"] = round(1 - len(segment) / n / seq.rgb[0].size, 4)
    row["saved_vs_source_jpeg"] = round(1 - len(segment) / seq.rgb_jpeg_bytes, 4)
    return [row]


# -- report ---------------------------------------------------------------------------------------------


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    """One line per scene and scheme."""
    header = ("scene", "kind", "scheme", "bytes/frame", "saved vs raw", "seed", "x today",
              "enc ms", "dec ms", "lossless")
    table = [(r["scene"], r["kind"], r["scheme"], f"{r['bytes_per_frame']:,.0f}", f"{r['saved_vs_raw']:.1%}",
              f"{r['seed_saved']:.0%}", f"{r['vs_today']:.3f}", f"{r['encode_ms_per_frame']:.1f}",
              f"{r['decode_ms_per_frame']:.1f}", r["lossless"]) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table, strict=True)]
    for line in (header, *table):
        print("  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w)
                        for i, (c, w) in enumerate(zip(line, widths, strict=True))))
    print("x today: bytes/frame over today's per-frame codec (PNG / Draco); < 0.80 would be 20 % fewer bytes")
    for r in rows:
        if r["kind"] == "rgb":
            print(f"rgb {r['scene']}: H.264 saves {r['saved_vs_raw']:.1%} of raw rgb24 (seed 70 %), "
                  f"{r['saved_vs_source_jpeg']:.1%} of the source JPEGs")


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; return (and write) the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny input (smoke test)")
    parser.add_argument("--frames", type=int, default=60, help="frames per 640x360 scene (a 2 s burst)")
    parser.add_argument("--hd-frames", type=int, default=30, help="frames of the 1920x1080 scene (0: skip)")
    parser.add_argument("--keyframe", type=int, default=PARAMS.gop, help="keyframe interval (frames)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report path")
    args = parser.parse_args(argv)
    size = (640, 360)
    if args.quick:
        args.frames, args.hd_frames, args.keyframe, size = 6, 0, 3, (160, 96)
    scenes = [simulator_scene(*size, args.frames), synthetic_scene(*size, args.frames)]
    if args.hd_frames:
        scenes.append(simulator_scene(1920, 1080, args.hd_frames))
    rows: list[dict[str, Any]] = []
    for seq in scenes:
        rows += run_depth(seq, args.keyframe) + run_clouds(seq, args.keyframe) + run_rgb(seq, args.keyframe)
    report = _common.report(
        "delta_encoding",
        {"frames": args.frames, "hd_frames": args.hd_frames, "keyframe": args.keyframe, "fps": FPS,
         "quick": args.quick, "png_level": PARAMS.png_level, "draco_bits": PARAMS.draco_bits,
         "draco_level": PARAMS.draco_level, "zstd_level": 3, "pointcloud_stride": 8,
         "timing": "CPU time of this process per frame on a shared machine: rough",
         "real_depth_sequence": "none found in an installed or PyPI package (see docs/processors.md)"},
        {"rows": rows},
        _common.versions("pillow", "DracoPy", "zstandard", "av", "numpy"),
    )
    _common.write_json(report, args.out)
    print_table(rows)
    print(f"written: {args.out}")
    return report


if __name__ == "__main__":
    run(sys.argv[1:])
