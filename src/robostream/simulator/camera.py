"""A camera looking at a scene: RGB (JPEG), depth (16-bit PNG, mm) and point clouds (PLY).

The scene (floor tiles, a back wall, a table with boxes, soft texture and shadows) is ray-cast
once per camera into a panorama a little larger than the frame; each frame is a crop of it that
pans smoothly, with a ball moving over the table and sensor noise (fine grain on RGB, noise
growing with distance on depth). Frames therefore compress like real ones rather than like noise
or flat colour.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from robostream.png16 import encode_png16

Array = np.ndarray[Any, Any]

CAMERA_HEIGHT_M = 1.2  # above the floor
WALL_M = 3.6  # distance of the back wall
TABLE_TOP_M = 0.75
_BALL_RADIUS_M = 0.07
DEFAULT_EXPOSURE_MS = 10.0  # frames at this exposure look as the scene was lit; longer: brighter
_TILT = 0.35  # principal point above the image centre: the camera looks down
_DEPTH_NOISE = 0.0008  # depth noise std (m) per m² of distance, like a stereo depth camera
_PLY_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"),
                       ("blue", "u1")])


@dataclass(frozen=True, slots=True)
class CameraFrame:
    """One encoded frame: JPEG, 16-bit PNG depth (mm), PLY point cloud (organised grid)."""

    rgb_jpeg: bytes
    depth_png: bytes
    pointcloud_ply: bytes
    width: int
    height: int
    cloud_width: int
    cloud_height: int


@dataclass(frozen=True)
class _Box:
    x0: float
    x1: float
    y_top: float  # camera frame, y pointing down
    y_bottom: float
    z0: float
    z1: float
    color: tuple[float, float, float]


def parse_resolution(text: str) -> tuple[int, int]:
    """``"640x360"`` -> (640, 360)."""
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def _value_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> Array:
    """Smooth noise in [-1, 1]: a coarse random grid, bilinearly enlarged."""
    coarse = rng.uniform(0, 255, size=(max(2, height // cell), max(2, width // cell))).astype(np.uint8)
    big = Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(big, dtype=np.float32) / 127.5 - 1.0


class _Scene:
    """The ray-cast panorama: colour (float 0..255) and depth (m) per pixel."""

    def __init__(self, width: int, height: int, focal: float, rng: np.random.Generator) -> None:
        self.width, self.height, self.focal = width, height, focal
        v, u = np.mgrid[0:height, 0:width].astype(np.float32)
        self.dx = (u - width / 2) / focal
        self.dy = (v - height / 2 + _TILT * height) / focal  # look down at the table
        self.depth = np.full((height, width), WALL_M, np.float32)
        self.rgb = np.zeros((height, width, 3), np.float32)
        self._wall(rng)
        self._floor(rng)
        table_y = CAMERA_HEIGHT_M - TABLE_TOP_M
        palette = [(200, 60, 50), (60, 120, 200), (230, 180, 40), (70, 160, 90), (150, 90, 170)]
        boxes = [_Box(-0.7, 0.7, table_y, CAMERA_HEIGHT_M, 1.45, 2.25, (140, 95, 60))]
        for i in range(4):
            x0 = float(rng.uniform(-0.6, 0.45))
            z0 = float(rng.uniform(1.5, 2.0))
            size = float(rng.uniform(0.1, 0.22))
            boxes.append(_Box(x0, x0 + size, table_y - float(rng.uniform(0.08, 0.3)), table_y, z0,
                              z0 + size, palette[i % len(palette)]))
        for box in boxes:
            self._box(box)
        grain = _value_noise(rng, height, width, 3)[..., None]
        self.rgb = np.clip(self.rgb * (1 + 0.06 * grain) / (1 + 0.03 * self.depth[..., None] ** 2), 0, 255)

    def _wall(self, rng: np.random.Generator) -> None:
        blotches = _value_noise(rng, self.height, self.width, 24)
        shade = 170 + 25 * blotches - 20 * (self.dy - self.dy.min()) / (np.ptp(self.dy) + 1e-6)
        self.rgb[:] = np.stack([shade * 1.02, shade * 0.98, shade * 0.9], axis=-1)

    def _floor(self, rng: np.random.Generator) -> None:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(self.dy > 0, CAMERA_HEIGHT_M / self.dy, np.inf)
            x = self.dx * z
        hit = z < self.depth
        tiles = (np.floor(x[hit] / 0.5) + np.floor(z[hit] / 0.5)) % 2
        base = np.where(tiles == 0, 120.0, 95.0)
        texture = _value_noise(rng, self.height, self.width, 8)[hit]
        tone = base + 12 * texture
        under_table = (np.abs(x[hit]) < 0.8) & (z[hit] > 1.35) & (z[hit] < 2.35)
        tone = np.where(under_table, tone * 0.55, tone)
        self.rgb[hit] = np.stack([tone, tone * 0.96, tone * 0.9], axis=-1)
        self.depth[hit] = z[hit]

    def _box(self, box: _Box) -> None:
        faces = [
            (box.z0, None, 1.0),  # front face at z0
            (None, box.y_top, 1.25),  # top face at y_top
        ]
        for z_plane, y_plane, light in faces:
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.full_like(self.dx, z_plane) if z_plane is not None else np.where(
                    self.dy > 0, y_plane / self.dy, np.inf)
                x, y = self.dx * z, self.dy * z
            inside = ((x >= box.x0) & (x <= box.x1) & (y >= box.y_top - 1e-6) & (y <= box.y_bottom + 1e-6)
                      & (z >= box.z0 - 1e-6) & (z <= box.z1 + 1e-6) & (z < self.depth))
            self.depth[inside] = z[inside]
            self.rgb[inside] = np.minimum(255.0, np.array(box.color, np.float32) * light)


class SceneCamera:
    """Renders and encodes frames of one camera at session time ``t``; ``exposure_ms`` scales the
    brightness (``DEFAULT_EXPOSURE_MS``: as lit; twice as long: twice as bright, clipped)."""

    def __init__(self, camera_id: str, width: int = 640, height: int = 360, *, seed: int = 0,
                 fov_deg: float = 70.0, jpeg_quality: int = 85, png_level: int = 1,
                 pointcloud_stride: int = 8) -> None:
        self.camera_id = camera_id
        self.width, self.height = width, height
        self.focal = width / (2 * math.tan(math.radians(fov_deg) / 2))
        self.jpeg_quality = jpeg_quality
        self.png_level = png_level
        self.stride = max(1, pointcloud_stride)
        rng = np.random.default_rng(seed)
        self.margin_x, self.margin_y = width // 8, height // 8
        self.scene = _Scene(width + 2 * self.margin_x, height + 2 * self.margin_y, self.focal, rng)
        self.grain = rng.integers(-6, 7, size=(height + 16, width + 16, 3), dtype=np.int16)
        self.depth_grain = rng.standard_normal((height + 16, width + 16)).astype(np.float32)
        self.phase = float(rng.uniform(0, 2 * math.pi))
        self.exposure_ms = DEFAULT_EXPOSURE_MS

    def _pan(self, t: float) -> tuple[int, int]:
        ox = self.margin_x * (1 + 0.8 * math.sin(2 * math.pi * 0.06 * t + self.phase))
        oy = self.margin_y * (1 + 0.5 * math.sin(2 * math.pi * 0.045 * t + 2 * self.phase))
        return round(ox), round(oy)

    def principal_point(self, t: float) -> tuple[float, float]:
        """(cx, cy) of the frame at ``t`` in pixels (the crop moves over the panorama)."""
        ox, oy = self._pan(t)
        scene = self.scene
        return scene.width / 2 - ox, scene.height / 2 - _TILT * scene.height - oy

    def render(self, t: float) -> tuple[Array, Array]:
        """RGB (h, w, 3) uint8 and depth (h, w) uint16 millimetres at session time ``t``."""
        ox, oy = self._pan(t)
        scene = self.scene
        rgb = scene.rgb[oy:oy + self.height, ox:ox + self.width].copy()
        depth = scene.depth[oy:oy + self.height, ox:ox + self.width].copy()
        self._ball(t, rgb, depth, ox, oy)
        if self.exposure_ms != DEFAULT_EXPOSURE_MS:
            rgb *= self.exposure_ms / DEFAULT_EXPOSURE_MS
        k = int(t * 30) % 16
        noisy = rgb.astype(np.int16) + self.grain[k:k + self.height, k:k + self.width]
        rgb8 = np.clip(noisy, 0, 255).astype(np.uint8)
        jitter = self.depth_grain[k:k + self.height, k:k + self.width] * _DEPTH_NOISE * depth ** 2
        depth_mm = np.clip(np.rint((depth + jitter) * 1000), 0, 65535).astype(np.uint16)
        return rgb8, depth_mm

    def _ball(self, t: float, rgb: Array, depth: Array, ox: int, oy: int) -> None:
        cx = 0.35 * math.sin(2 * math.pi * 0.23 * t + self.phase)
        cy = CAMERA_HEIGHT_M - TABLE_TOP_M - 0.15 - 0.1 * abs(math.sin(2 * math.pi * 0.4 * t))
        cz = 1.8 + 0.25 * math.cos(2 * math.pi * 0.17 * t)
        scene = self.scene
        u = scene.width / 2 + self.focal * cx / cz - ox
        v = scene.height / 2 - _TILT * scene.height + self.focal * cy / cz - oy
        r = self.focal * _BALL_RADIUS_M / cz
        u0, u1 = max(0, int(u - r)), min(self.width, int(u + r) + 1)
        v0, v1 = max(0, int(v - r)), min(self.height, int(v + r) + 1)
        if u0 >= u1 or v0 >= v1:
            return
        vv, uu = np.mgrid[v0:v1, u0:u1].astype(np.float32)
        d2 = ((uu - u) ** 2 + (vv - v) ** 2) / (r * r)
        inside = d2 < 1
        nz = np.sqrt(np.clip(1 - d2, 0, 1))
        shade = 0.35 + 0.65 * np.clip(0.5 * nz + 0.5 * (v - vv) / r * 0.7 + 0.3, 0, 1)
        z = cz - _BALL_RADIUS_M * nz
        region_depth = depth[v0:v1, u0:u1]
        mask = inside & (z < region_depth)
        region_depth[mask] = z[mask]
        region = rgb[v0:v1, u0:u1]
        region[mask] = np.stack([225 * shade, 40 * shade, 35 * shade], axis=-1)[mask]

    def frame(self, t: float) -> CameraFrame:
        """The encoded frame at session time ``t``."""
        rgb, depth = self.render(t)
        cloud = self._ply(rgb, depth, self.principal_point(t))
        return CameraFrame(self._jpeg(rgb), self._png16(depth), cloud, self.width,
                           self.height, len(range(0, self.width, self.stride)),
                           len(range(0, self.height, self.stride)))

    def _jpeg(self, rgb: Array) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, "JPEG", quality=self.jpeg_quality)
        return buffer.getvalue()

    def _png16(self, depth: Array) -> bytes:
        return encode_png16(depth, self.png_level)

    def _ply(self, rgb: Array, depth: Array, principal: tuple[float, float]) -> bytes:
        s = self.stride
        cx, cy = principal
        z = depth[::s, ::s].astype(np.float32) / 1000
        v, u = np.mgrid[0:self.height:s, 0:self.width:s].astype(np.float32)
        cloud = np.empty(z.size, _PLY_DTYPE)
        cloud["x"] = ((u - cx) * z / self.focal).ravel()
        cloud["y"] = ((v - cy) * z / self.focal).ravel()
        cloud["z"] = z.ravel()
        colours = rgb[::s, ::s].reshape(-1, 3)
        cloud["red"], cloud["green"], cloud["blue"] = colours[:, 0], colours[:, 1], colours[:, 2]
        header = (
            "ply\nformat binary_little_endian 1.0\n"
            f"comment robostream simulator, organised {z.shape[1]}x{z.shape[0]}\n"
            f"element vertex {z.size}\n"
            "property float x\nproperty float y\nproperty float z\n"
            "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
        )
        return header.encode("ascii") + cloud.tobytes()
