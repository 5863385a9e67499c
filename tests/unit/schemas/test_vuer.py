"""Vuer `$dtype` arrays: numpy in, the same bytes out."""

from __future__ import annotations

import contextlib
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robostream.schemas import ValidationError, decode_vuer, encode_vuer
from robostream.schemas.vuer import array_to_dict
from tests.unit.schemas.strategies import VUER_DTYPES, arrays, vuer_trees


def assert_same_tree(a: Any, b: Any) -> None:
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray)
        assert (a.dtype, a.shape) == (b.dtype, b.shape)
        assert a.tobytes() == b.tobytes()  # bit-exact, NaN payloads included
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_tree(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_tree(x, y)
    else:
        assert a == b or (a != a and b != b)


@settings(max_examples=150, deadline=None)
@given(vuer_trees)
def test_round_trip_is_faithful_and_byte_exact(tree: Any) -> None:
    packed = encode_vuer(tree)
    decoded = decode_vuer(packed)
    assert_same_tree(tree, decoded)
    assert encode_vuer(decoded) == packed


@pytest.mark.parametrize("dtype", VUER_DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3), (2, 0, 4), (1, 1, 1, 5)])
def test_every_dtype_and_shape(dtype: str, shape: tuple[int, ...]) -> None:
    array = (np.arange(int(np.prod(shape))) % 2).astype(dtype).reshape(shape)
    wire = msgpack.unpackb(encode_vuer({"a": array}))
    assert wire == {"a": {"$dtype": dtype, "shape": list(shape), "bytes": array.tobytes()}}
    back = decode_vuer(encode_vuer({"a": array}))["a"]
    assert back.dtype == np.dtype(dtype) and back.shape == shape
    np.testing.assert_array_equal(back, array)
    assert not back.flags.writeable


def test_accepts_data_alias_typestr_and_vuer_zdata() -> None:
    values = np.array([[1.5, -2.0]], dtype=np.float32)
    message = msgpack.packb(
        {
            "alias": {"$dtype": "<f4", "shape": [1, 2], "data": values.tobytes()},
            "zdata": {"ztype": "numpy.ndarray", "b": values.tobytes(), "dtype": "float32", "shape": [1, 2]},
            "image": {"ztype": "PIL.Image", "b": b"..."},
        }
    )
    decoded = decode_vuer(message)
    np.testing.assert_array_equal(decoded["alias"], values)
    np.testing.assert_array_equal(decoded["zdata"], values)
    assert decoded["image"] == {"ztype": "PIL.Image", "b": b"..."}  # other ZData types untouched
    assert msgpack.unpackb(encode_vuer(decoded["zdata"], style="zdata")) == {
        "ztype": "numpy.ndarray",
        "b": values.tobytes(),
        "dtype": "float32",
        "shape": [1, 2],
    }


@given(arrays)
@settings(max_examples=50, deadline=None)
def test_big_endian_and_strided_arrays_encode_as_little_endian_c_order(array: np.ndarray) -> None:
    swapped = array.astype(array.dtype.newbyteorder(">"))
    strided = np.asfortranarray(array)
    for variant in (swapped, strided):
        back = decode_vuer(encode_vuer(variant))
        np.testing.assert_array_equal(back, array)
        assert back.tobytes() == np.ascontiguousarray(array).tobytes()


def test_numpy_scalars_become_0d_arrays() -> None:
    back = decode_vuer(encode_vuer({"s": np.float32(1.5)}))["s"]
    assert back.shape == () and back.dtype == np.float32 and float(back) == 1.5
    assert array_to_dict(np.uint8(3)) == {"$dtype": "uint8", "shape": [], "bytes": b"\x03"}


@pytest.mark.parametrize(
    ("array", "code", "path"),
    [
        ({"$dtype": "complex64", "shape": [1], "bytes": bytes(8)}, "invalid_dtype", "a"),
        ({"$dtype": ">f4", "shape": [1], "bytes": bytes(4)}, "invalid_dtype", "a"),
        ({"$dtype": "float32", "shape": [3], "bytes": bytes(8)}, "invalid_dtype", "a.bytes"),
        ({"$dtype": "float32", "shape": [-1], "bytes": bytes(4)}, "invalid_dtype", "a"),
        ({"$dtype": "float32", "shape": [1.0], "bytes": bytes(4)}, "invalid_dtype", "a"),
        ({"$dtype": "float32", "shape": "3", "bytes": bytes(12)}, "invalid_dtype", "a"),
        ({"$dtype": "float32", "shape": [1] * 33, "bytes": bytes(4)}, "invalid_dtype", "a"),
        ({"$dtype": "uint8", "shape": [2**31, 2**31], "bytes": b""}, "too_large", "a"),
        ({"$dtype": "float32", "shape": [1], "bytes": "AAAAAA=="}, "invalid_dtype", "a"),
        ({"$dtype": "float32", "shape": [1]}, "invalid_dtype", "a"),
        ({"$dtype": "bool", "shape": [2], "bytes": b"\x00\x02"}, "invalid_dtype", "a"),
        ({"ztype": "numpy.ndarray", "dtype": "float32", "shape": [1]}, "invalid_dtype", "a"),
    ],
    ids=[
        "complex",
        "big-endian",
        "length",
        "negative",
        "float dim",
        "shape text",
        "ndim",
        "absurd",
        "text bytes",
        "no bytes",
        "bool byte",
        "zdata keys",
    ],
)
def test_bad_arrays(array: dict[str, Any], code: str, path: str) -> None:
    with pytest.raises(ValidationError) as caught:
        decode_vuer(msgpack.packb({"x": [{"a": array}]}))
    assert (caught.value.code, caught.value.path) == (code, f"x[0].{path}")


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x92\x01", msgpack.packb([1]) + b"\x00"])
def test_bad_messagepack(data: bytes) -> None:
    with pytest.raises(ValidationError) as caught:
        decode_vuer(data)
    assert caught.value.code == "malformed_frame"


@given(st.binary(max_size=64))
@settings(max_examples=100)
def test_random_bytes_only_raise_validation_errors(data: bytes) -> None:
    with contextlib.suppress(ValidationError):
        decode_vuer(data)
