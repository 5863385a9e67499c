"""Synthetic, scene-like camera data for tests and the benchmark (no files, deterministic).

A lit floor and wall with soft shading, a few objects with smooth edges moving across, mild
sensor noise: compresses like a real camera (neither flat colour nor random noise).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from robostream.processors.compaction.pointcloud import PointCloud


def rgb_frame(index: int, width: int = 640, height: int = 360, *, seed: int = 0) -> np.ndarray:
    """Frame ``index`` of a slowly panning scene, (h, w, 3) uint8."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / width, y / height
    pan = index * 0.004
    wall = 150 + 40 * np.sin(2 * np.pi * (u * 1.5 + pan)) * np.cos(2 * np.pi * v)
    floor = 90 + 60 * v + 20 * np.sin(2 * np.pi * (u * 4 + pan * 2))
    base = np.where(v < 0.55, wall, floor)
    image = np.stack([base * 0.9, base * 0.8 + 10, base * 0.6 + 30], axis=-1)
    for k, (cx, cy, r, color) in enumerate(((0.3, 0.6, 0.08, (200, 60, 40)), (0.7, 0.5, 0.12, (40, 120, 200)),
                                            (0.5, 0.75, 0.06, (230, 200, 60)))):
        px = (cx + 0.01 * index * (1 + k) / 3) % 1.0
        d = np.sqrt(((u - px) * width / height) ** 2 + (v - cy) ** 2)
        alpha = np.clip((r - d) / 0.01, 0, 1)[..., None]
        shade = (1 - 0.5 * d / r).clip(0.5, 1)[..., None]
        image = image * (1 - alpha) + np.array(color, np.float32) * shade * alpha
    rng = np.random.default_rng(seed * 100_003 + index)
    image += rng.normal(0, 1.5, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def jpeg_bytes(frame: np.ndarray, quality: int = 90) -> bytes:
    """A frame as JPEG (what robots send for RGB)."""
    out = io.BytesIO()
    Image.fromarray(frame).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def depth_frame(index: int, width: int = 640, height: int = 360) -> np.ndarray:
    """A depth image in millimetres (uint16): floor plane, back wall, two boxes, 0 = no reading."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    v = y / height
    floor = 800 + 3000 * (1 - v) ** 2
    depth = np.where(v > 0.45, floor, 3200 + 40 * np.sin(x / 50 + index * 0.05))
    for cx, cy, half, z in ((0.35, 0.7, 0.1, 1400), (0.65 + 0.002 * index, 0.6, 0.08, 1900)):
        inside = (np.abs(x / width - cx) < half) & (np.abs(v - cy) < half * 1.6)
        depth = np.where(inside, z + 200 * (x / width - cx), depth)
    depth = depth + np.random.default_rng(index).normal(0, 2.0, depth.shape)
    holes = np.random.default_rng(index + 7).random(depth.shape) < 0.01
    return np.where(holes, 0, depth).clip(0, 65535).astype(np.uint16)


def depth_to_cloud(depth: np.ndarray, *, step: int = 1, fx: float = 500.0) -> PointCloud:
    """Back-project a depth image (mm) to a point cloud in metres (pinhole camera), with colours."""
    d = depth[::step, ::step].astype(np.float64) / 1000.0
    h, w = d.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    f = fx / step
    ok = d > 0
    z = d[ok]
    points = np.stack([(x[ok] - w / 2) * z / f, (y[ok] - h / 2) * z / f, z], axis=1)
    shade = (255 * (1 - (z - z.min()) / max(float(np.ptp(z)), 1e-9))).astype(np.uint8)
    return PointCloud(points, np.stack([shade, shade // 2 + 64, 255 - shade], axis=1))


def blur(frame: np.ndarray, radius: float = 1.0) -> np.ndarray:
    """A Gaussian-blurred copy (for tests that want a smoother scene)."""
    return np.asarray(Image.fromarray(frame).filter(ImageFilter.GaussianBlur(radius)))
