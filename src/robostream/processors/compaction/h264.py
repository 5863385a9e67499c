"""RGB frames -> H.264 segments (PyAV, libx264) in MP4, a keyframe every ``gop`` frames."""

from __future__ import annotations

import io
import platform
from collections.abc import Sequence
from fractions import Fraction

import av
import numpy as np

#: The instruction sets libx264 may use (its ``asm`` option), pinned instead of detected.
#:
#: libx264's AVX-512 routines (x264 core 165, as shipped in PyAV 18.1) read memory they never
#: initialised: with them, the same frames encode to different bytes from one call to the next
#: (seen with ``MALLOC_PERTURB_``: 320x180 and 426x240 segments changed size, 640x360 did not).
#: libx264 also picks different, equally valid encodings per instruction set (SSE2 and SSSE3
#: segments differ), so a worker on another CPU would rewrite a replayed segment differently.
#: SSE2 is part of every x86-64 CPU, so pinning to it gives one output on every x86-64 machine
#: at ~10 % more encode time than AVX2; elsewhere libx264's plain C code ("0") is used.
X264_ASM = "MMX2,SSE,SSE2" if platform.machine().lower() in ("x86_64", "amd64") else "0"


def compression_label(crf: int, preset: str, gop: int) -> str:
    """How a segment was encoded, for ``FrameTier.compression``."""
    return f"libx264 crf={crf} preset={preset} gop={gop}"


def encode_segment(
    frames: Sequence[np.ndarray], *, fps: float = 30.0, gop: int = 30, crf: int = 23,
    preset: str = "veryfast",
) -> bytes:
    """Encode RGB (h, w, 3) uint8 frames of one size into an MP4 holding one H.264 stream.

    Deterministic for the same input (one encoder thread, pinned instruction set: see
    :data:`X264_ASM`), so a replay or a restarted worker rewrites the same bytes.
    Frame ``i`` has pts ``i`` in a ``1/fps`` time base.
    """
    if not frames:
        raise ValueError("a segment needs at least one frame")
    height, width = frames[0].shape[:2]
    if width % 2 or height % 2:
        raise ValueError(f"H.264 4:2:0 needs even sizes, got {width}x{height}")
    out = io.BytesIO()
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = 1 / rate
        stream.codec_context.gop_size = gop
        stream.codec_context.thread_count = 1
        stream.options = {
            "crf": str(crf), "preset": preset, "threads": "1",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:asm={X264_ASM}",
        }
        for index, frame in enumerate(frames):
            video = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            video.pts = index
            for packet in stream.encode(video):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


def decode_segment(data: bytes) -> list[np.ndarray]:
    """Every frame of an MP4/H.264 segment as RGB (h, w, 3) uint8 arrays, in order."""
    with av.open(io.BytesIO(data), mode="r") as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def keyframe_indexes(data: bytes) -> list[int]:
    """Indexes (decode order) of the keyframes of a segment."""
    with av.open(io.BytesIO(data), mode="r") as container:
        return [i for i, packet in enumerate(p for p in container.demux(video=0) if p.size)
                if packet.is_keyframe]


def psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of 8-bit images (inf when identical)."""
    error = np.mean((reference.astype(np.float64) - decoded.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(255.0**2 / error))
