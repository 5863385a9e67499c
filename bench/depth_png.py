"""Depth PNGs and bundle parts: the CPU the processors spend per camera frame, before and after.

The processors write every depth frame as a 16-bit PNG (``processors.png_level``) and add the
burst's originals to the hour's ``.tar.gz`` bundle. This script times, per frame, on the
simulator's camera (640x360 and 1280x720) and the processors' synthetic scene:

* Pillow's PNG encoder (what the processors used until 2026-12-05: level 6; the simulator: 1);
* ``robostream.png16`` (PNG's Sub filter on every row, one zlib pass) at levels 1, 4 and 6;
* one bundle part of the 640x360 burst's PNGs, gzip level 1 (before) and 0 (stored, after).

Every PNG is decoded back with Pillow and compared with its input. Times are CPU seconds of this
process, best of ``--repeat``.

    python bench/depth_png.py            # ~30 s
    python bench/depth_png.py --quick    # small input (smoke test)
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import _common
import numpy as np
from PIL import Image

from robostream.png16 import encode_png16
from robostream.processors.compaction import bundles, depth, synthetic
from robostream.simulator.camera import SceneCamera

DEFAULT_OUT = _common.RESULTS / "depth_png.json"
Array = np.ndarray[Any, Any]


def pillow_png16(image: Array, level: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, "PNG", compress_level=level)
    return out.getvalue()


ENCODERS: list[tuple[str, int, Callable[[Array, int], bytes]]] = [
    ("pillow", 6, pillow_png16), ("pillow", 1, pillow_png16),
    ("png16 (Sub filter)", 1, encode_png16), ("png16 (Sub filter)", 4, encode_png16),
    ("png16 (Sub filter)", 6, encode_png16),
]


def cpu_ms(action: Callable[[], Any], repeat: int) -> tuple[Any, float]:
    """(result, best CPU ms of ``repeat`` runs)."""
    best = float("inf")
    result = None
    for _ in range(repeat):
        started = time.process_time()
        result = action()
        best = min(best, time.process_time() - started)
    return result, 1000 * best


def scenes(quick: bool, frames: int) -> list[tuple[str, list[Array]]]:
    size = (160, 96) if quick else (640, 360)
    camera = SceneCamera("front", *size)
    out = [(f"simulator {size[0]}x{size[1]}", [camera.render(i / 30)[1] for i in range(frames)]),
           (f"synthetic {size[0]}x{size[1]}", [synthetic.depth_frame(i, *size) for i in range(frames)])]
    if not quick:
        hd = SceneCamera("front", 1280, 720)
        out.append(("simulator 1280x720", [hd.render(i / 30)[1] for i in range(min(frames, 10))]))
    return out


def run_png(name: str, frames: list[Array], repeat: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for encoder, level, encode in ENCODERS:
        blobs: list[bytes] = []
        total = 0.0
        for frame in frames:
            blob, ms = cpu_ms(partial(encode, frame, level), repeat)
            assert np.array_equal(depth.decode_png16(blob), frame), f"{encoder} {level} is not lossless"
            blobs.append(blob)
            total += ms
        rows.append({"scene": name, "encoder": encoder, "level": level,
                     "bytes_per_frame": sum(map(len, blobs)) / len(blobs),
                     "ms_per_frame": total / len(frames), "raw_bytes_per_frame": frames[0].nbytes})
    base = rows[0]
    for row in rows:
        row["bytes_vs_pillow6"] = row["bytes_per_frame"] / base["bytes_per_frame"]
        row["speedup_vs_pillow6"] = base["ms_per_frame"] / row["ms_per_frame"]
    return rows


def run_bundle(frames: list[Array], repeat: int) -> list[dict[str, Any]]:
    members = [(f"front/depth/original/{i}.png", encode_png16(f), 0) for i, f in enumerate(frames)]
    rows = []
    for level in (1, 0):
        part, ms = cpu_ms(partial(bundles.bundle_part, members, level=level), repeat)
        opened = bundles.read_bundle(part + bundles.bundle_part([], last=True))
        assert opened.keys() == {m[0] for m in members}
        rows.append({"gzip_level": level, "frames": len(members), "ms": ms, "bytes": len(part),
                     "member_bytes": sum(len(m[1]) for m in members)})
    return rows


def print_tables(png: Sequence[dict[str, Any]], bundle: Sequence[dict[str, Any]]) -> None:
    print(f"{'scene':22} {'encoder':20} {'level':>5} {'bytes/frame':>12} {'x pillow 6':>10} "
          f"{'ms/frame':>9} {'speedup':>8}")
    for r in png:
        print(f"{r['scene']:22} {r['encoder']:20} {r['level']:>5} {r['bytes_per_frame']:>12,.0f} "
              f"{r['bytes_vs_pillow6']:>10.3f} {r['ms_per_frame']:>9.1f} {r['speedup_vs_pillow6']:>7.1f}x")
    for r in bundle:
        print(f"bundle part of {r['frames']} depth PNGs, gzip level {r['gzip_level']}: {r['ms']:.1f} ms, "
              f"{r['bytes']:,} bytes for {r['member_bytes']:,} of members")


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; return (and write) the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny input (smoke test)")
    parser.add_argument("--frames", type=int, default=30, help="depth frames per scene")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many encodes per frame")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report path")
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.repeat = 3, 1
    png: list[dict[str, Any]] = []
    all_scenes = scenes(args.quick, args.frames)
    for name, frames in all_scenes:
        png += run_png(name, frames, args.repeat)
    bundle = run_bundle(all_scenes[0][1], args.repeat)
    report = _common.report(
        "depth_png", {"frames": args.frames, "repeat": args.repeat, "quick": args.quick,
                      "timing": "CPU time of this process, best of --repeat"},
        {"png": png, "bundle": bundle}, _common.versions("pillow", "numpy"),
    )
    _common.write_json(report, args.out)
    print_tables(png, bundle)
    print(f"written: {args.out}")
    return report


if __name__ == "__main__":
    run(sys.argv[1:])
