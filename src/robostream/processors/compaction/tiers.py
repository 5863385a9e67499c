"""Resolution tiers: the source resolution, a preview (640x360) and a thumbnail (120x68)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from robostream.processors.frame_records import TierName


@dataclass(frozen=True, slots=True)
class TierSize:
    """A tier's name and the box its frames fit in (None: the source size)."""

    name: TierName
    box: tuple[int, int] | None


def parse_size(text: str) -> tuple[int, int]:
    """``"640x360"`` -> ``(640, 360)``."""
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def tier_sizes(preview: str, thumbnail: str) -> tuple[TierSize, ...]:
    """The three tiers, from the ``processors.preview`` / ``processors.thumbnail`` settings."""
    return (
        TierSize(TierName.ORIGINAL, None),
        TierSize(TierName.PREVIEW, parse_size(preview)),
        TierSize(TierName.THUMBNAIL, parse_size(thumbnail)),
    )


def fit(width: int, height: int, box: tuple[int, int] | None, *, even: bool = False) -> tuple[int, int]:
    """The size of a ``width`` x ``height`` frame scaled down to fit ``box`` (aspect kept).

    Never scales up. ``even`` rounds to even sizes (H.264 with 4:2:0 chroma needs them).
    """
    if box is None or (width <= box[0] and height <= box[1]):
        w, h = width, height
    else:
        scale = min(box[0] / width, box[1] / height)
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
    if even:
        w, h = max(2, w - w % 2), max(2, h - h % 2)
    return w, h


def resize_rgb(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An RGB (h, w, 3) uint8 frame resized to ``size`` (w, h), area-averaged."""
    if (frame.shape[1], frame.shape[0]) == size:
        return frame
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BOX))


def resize_depth(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A 16-bit depth image resized to ``size`` (w, h) by nearest neighbour (no invented depths)."""
    if (depth.shape[1], depth.shape[0]) == size:
        return depth
    rows = (np.arange(size[1]) * depth.shape[0] // size[1]).astype(np.intp)
    cols = (np.arange(size[0]) * depth.shape[1] // size[0]).astype(np.intp)
    return depth[rows[:, None], cols[None, :]]


def jpeg(frame: np.ndarray, quality: int = 85) -> bytes:
    """An RGB or grayscale uint8 frame as JPEG bytes (thumbnails)."""
    out = io.BytesIO()
    Image.fromarray(frame).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def depth_preview_8bit(depth: np.ndarray) -> np.ndarray:
    """Depth scaled to 8-bit gray (near bright, far dark; 0 = no reading stays black)."""
    valid = depth > 0
    if not valid.any():
        return np.zeros(depth.shape, np.uint8)
    low, high = float(depth[valid].min()), float(depth[valid].max())
    span = max(high - low, 1.0)
    gray = 255.0 - (depth.astype(np.float64) - low) * (200.0 / span)
    return np.where(valid, gray, 0).clip(0, 255).astype(np.uint8)
