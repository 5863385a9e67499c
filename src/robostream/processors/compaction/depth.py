"""Depth frames <-> 16-bit grayscale PNG (zlib), lossless."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from robostream.png16 import encode_png16

__all__ = ["decode_depth", "decode_png16", "encode_png16"]


def decode_png16(data: bytes) -> np.ndarray:
    """A 16-bit (or 8-bit) grayscale PNG as a (h, w) uint16 array."""
    with Image.open(io.BytesIO(data)) as image:
        if image.mode in ("I;16", "I;16B", "I;16L"):
            return np.asarray(image).astype(np.uint16)
        return np.asarray(image.convert("I")).astype(np.uint16)


def decode_depth(data: bytes, fmt: str, width: int, height: int) -> np.ndarray:
    """A source depth blob as (h, w) uint16: PNG/TIFF via Pillow, or raw little-endian 16-bit."""
    if fmt.lower() in ("raw", "u16", "uint16", "depth16", "z16", "raw16"):
        array = np.frombuffer(data, "<u2")
        if array.size != width * height:
            raise ValueError(f"raw depth has {array.size} values, expected {width}x{height}")
        return array.reshape(height, width)
    return decode_png16(data)
