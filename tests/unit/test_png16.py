"""The depth PNG writer: any uint16 image comes back exactly from a standard PNG reader."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from robostream.png16 import encode_png16
from robostream.processors.compaction import synthetic


def read_with_pillow(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.format == "PNG" and image.mode.startswith("I;16")
        return np.asarray(image).astype(np.uint16)


@settings(max_examples=150, deadline=None)
@given(
    arrays(np.uint16, st.tuples(st.integers(1, 40), st.integers(1, 40))),
    st.integers(0, 9),
)
def test_any_image_decodes_to_the_same_values(image: np.ndarray, level: int) -> None:
    assert np.array_equal(read_with_pillow(encode_png16(image, level)), image)


def test_extreme_values_and_odd_layouts_survive() -> None:
    edges = np.array([[0, 65535, 1, 65534, 256, 255]], np.uint16)
    for image in (edges, edges.T, np.asfortranarray(np.tile(edges, (3, 2))), edges.astype(">u2"),
                  np.tile(edges, (2, 2))[::2, ::3]):
        assert np.array_equal(read_with_pillow(encode_png16(image)), image)


def test_a_depth_frame_is_no_larger_than_pillows_own_png_at_level_6() -> None:
    frame = synthetic.depth_frame(5, 640, 360)
    ours = encode_png16(frame, 4)
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, "PNG", compress_level=6)
    assert np.array_equal(read_with_pillow(ours), frame)
    assert len(ours) <= 1.02 * len(buffer.getvalue())
    assert len(ours) < 0.5 * frame.nbytes  # the seed's "50 % below raw" for depth


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.int32), np.zeros((2, 2, 2), np.uint16),
                                 np.zeros((0, 4), np.uint16)])
def test_other_arrays_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="uint16"):
        encode_png16(bad)
