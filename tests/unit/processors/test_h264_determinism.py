"""H.264 segments are byte-identical for the same frames: in one process, across processes, whatever
the heap held before (a replay or a restarted worker rewrites a segment under the same S3 key and
``frames_metadata`` entry, so the bytes and sizes it records must not change)."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robostream.processors.compaction import h264, synthetic

#: Sizes where libx264's AVX-512 code changed the output from run to run (``MALLOC_PERTURB_``).
SIZES = [(320, 180), (426, 240), (640, 360)]

#: sha256 of :func:`segment_digest` per size with libx264 pinned to SSE2 (PyAV 18.1, x264 core 165):
#: the bytes every x86-64 machine must produce. A new PyAV/x264 in uv.lock changes them (re-pin).
X86_64_DIGESTS = {
    (320, 180): "5bc30f33665e",
    (426, 240): "f889620536a8",
    (640, 360): "d310a4b4f916",
}

_CHILD = """
import hashlib, sys
import numpy as np
from robostream.processors.compaction import h264
frames = list(np.load(sys.argv[1]))
print(hashlib.sha256(h264.encode_segment(frames, fps=30, gop=30, crf=23)).hexdigest())
"""


@functools.cache
def segment_frames(width: int, height: int) -> tuple[np.ndarray, ...]:
    """The 45 frames of a segment (made once per size: making them costs ~9x encoding them)."""
    return tuple(synthetic.rgb_frame(i, width, height) for i in range(45))


def segment_digest(width: int, height: int) -> str:
    frames = list(segment_frames(width, height))
    return hashlib.sha256(h264.encode_segment(frames, fps=30, gop=30, crf=23)).hexdigest()


def digest_in_child(frames_file: Path, malloc_perturb: int) -> str:
    """The digest computed by a fresh interpreter whose malloc fills new memory with a byte."""
    env = {**os.environ, "MALLOC_PERTURB_": str(malloc_perturb)}
    done = subprocess.run([sys.executable, "-c", _CHILD, str(frames_file)], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip()


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_same_frames_encode_to_the_same_bytes_every_time(width: int, height: int) -> None:
    digests = {segment_digest(width, height) for _ in range(6)}
    assert len(digests) == 1, f"{len(digests)} different segments from the same {width}x{height} frames"


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_processes_with_different_heap_contents_encode_the_same_bytes(
        width: int, height: int, tmp_path: Path) -> None:
    # MALLOC_PERTURB_ makes glibc fill fresh allocations with the given byte: an encoder that reads
    # memory it never wrote then produces different output in each process.
    frames_file = tmp_path / "frames.npy"
    np.save(frames_file, np.stack(segment_frames(width, height)))
    digests = {digest_in_child(frames_file, perturb) for perturb in (1, 170)}
    digests.add(segment_digest(width, height))
    assert len(digests) == 1, f"{width}x{height}: {len(digests)} different segments across processes"


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="the pinned digests are those of libx264's SSE2 code on x86-64")
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_every_x86_64_machine_encodes_the_same_bytes(width: int, height: int) -> None:
    assert segment_digest(width, height)[:12] == X86_64_DIGESTS[(width, height)]
