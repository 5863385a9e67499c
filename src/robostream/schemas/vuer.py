"""Vuer messages: MessagePack with typed arrays, decoded to numpy and re-encoded faithfully.

An array inside a vuer message is a map::

    {"$dtype": "float32", "shape": [2, 3], "bytes": <raw little-endian C-order bytes>}

(``"data"`` is accepted for ``"bytes"``). Vuer's ZData form for numpy arrays,
``{"ztype": "numpy.ndarray", "dtype": "float32", "shape": [2, 3], "b": <bytes>}``, is accepted
too (other ``ztype`` values are left untouched). Supported dtypes: ``bool``, ``int8`` .. ``int64``,
``uint8`` .. ``uint64``, ``float16``, ``float32``, ``float64`` (numpy names, or their
little-endian type strings such as ``<f4``). Arrays are re-encoded in the canonical ``$dtype``
form (keys in that order; ``style="zdata"`` for vuer's form), so
``encode_vuer(decode_vuer(b)) == b`` for canonical input. Decoded arrays are read-only views on the
message bytes (``np.frombuffer``); copy them to write.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from typing import Any, Literal

import msgpack
import numpy as np

from robostream.schemas.validation import ErrorCode, FieldError, ValidationError, describe

DTYPE_KEY = "$dtype"
ZDATA_KEY = "ztype"
ZDATA_NUMPY = "numpy.ndarray"
MAX_NDIM = 32
MAX_ARRAY_BYTES = 256 * 1024 * 1024

SUPPORTED_DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(name).newbyteorder("<")
    for name in (
        "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
        "float16", "float32", "float64",
    )
}
_BY_NAME: dict[str, np.dtype[Any]] = {
    **SUPPORTED_DTYPES,
    **{dt.str: dt for dt in SUPPORTED_DTYPES.values()},
}
_CANONICAL_KEYS = ({DTYPE_KEY, "shape", "bytes"}, {DTYPE_KEY, "shape", "data"})
_ZDATA_KEYS = {ZDATA_KEY, "dtype", "shape", "b"}
_SUPPORTED_TEXT = ", ".join(SUPPORTED_DTYPES)

Style = Literal["$dtype", "zdata"]


def _dtype_error(expected: str, got: Any, detail: str | None = None) -> FieldError:
    return FieldError(ErrorCode.INVALID_DTYPE, expected, describe(got), detail)


def _resolve_dtype(name: Any) -> np.dtype[Any]:
    dtype = _BY_NAME.get(name) if type(name) is str else None
    if dtype is None:
        raise _dtype_error(f"a dtype among {_SUPPORTED_TEXT}", name, "unsupported $dtype")
    return dtype


def _resolve_shape(shape: Any) -> tuple[int, ...]:
    if type(shape) is not list and type(shape) is not tuple:
        raise _dtype_error("a list of non-negative integers", shape, "bad shape")
    if len(shape) > MAX_NDIM:
        raise _dtype_error(f"at most {MAX_NDIM} dimensions", shape, "bad shape")
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise _dtype_error("a list of non-negative integers", shape, "bad shape")
    return tuple(shape)


def _element_count(shape: tuple[int, ...], itemsize: int) -> int:
    count = 1
    for dim in shape:
        count *= dim
        if count * itemsize > MAX_ARRAY_BYTES:
            raise FieldError(
                ErrorCode.TOO_LARGE,
                f"at most {MAX_ARRAY_BYTES} bytes per array",
                f"shape {list(shape)}",
                "array too large",
            )
    return count


def _raw_bytes(value: Any, json_mode: bool) -> bytes:
    if type(value) is bytes:
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if json_mode and type(value) is str:
        try:
            return binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            pass
    raise _dtype_error("raw array bytes (MessagePack bin)", value, "bad array bytes")


def _array_parts(obj: dict[Any, Any]) -> tuple[Any, Any, Any, str]:
    """(dtype, shape, bytes, bytes-key) of a ``$dtype`` or ZData array map."""
    keys = set(obj)
    if DTYPE_KEY in obj:
        if keys not in _CANONICAL_KEYS:
            raise _dtype_error(
                "keys $dtype, shape and bytes (or data)", sorted(map(str, keys)), "bad $dtype array"
            )
        data_key = "bytes" if "bytes" in obj else "data"
        return obj[DTYPE_KEY], obj["shape"], obj[data_key], data_key
    if keys != _ZDATA_KEYS:
        raise _dtype_error(
            "keys ztype, dtype, shape and b", sorted(map(str, keys)), "bad numpy.ndarray ZData"
        )
    return obj["dtype"], obj["shape"], obj["b"], "b"


def _is_array_map(obj: dict[Any, Any]) -> bool:
    return DTYPE_KEY in obj or obj.get(ZDATA_KEY) == ZDATA_NUMPY


def array_from_dict(obj: dict[Any, Any], *, json_mode: bool = False) -> np.ndarray[Any, Any]:
    """Decode one ``$dtype`` (or ZData numpy) map into a read-only numpy array.

    Raises :class:`FieldError` (internal) on an unknown dtype, a bad shape, a byte length that
    does not match, or an absurd size; :func:`decode_vuer` turns it into ``ValidationError``.
    """
    dtype_name, shape_value, data_value, data_key = _array_parts(obj)
    dtype = _resolve_dtype(dtype_name)
    shape = _resolve_shape(shape_value)
    count = _element_count(shape, dtype.itemsize)
    data = _raw_bytes(data_value, json_mode)
    if len(data) != count * dtype.itemsize:
        raise FieldError(
            ErrorCode.INVALID_DTYPE,
            f"{count * dtype.itemsize} bytes for shape {list(shape)} of {dtype.name}",
            f"{len(data)} bytes",
            "array byte length does not match its shape",
        ).at(data_key)
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    if dtype.kind == "b" and data:
        top = int(np.frombuffer(data, dtype=np.uint8).max())
        if top > 1:
            raise _dtype_error("bool bytes 0 or 1", f"byte {top}", "bad bool array")
    return array


def array_to_dict(array: np.ndarray[Any, Any] | np.generic, style: Style = "$dtype") -> dict[str, Any]:
    """Encode a numpy array (or scalar, as a 0-d array) as a ``$dtype`` map (or vuer ZData)."""
    arr = np.asarray(array)
    dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder != "|" else arr.dtype
    if dtype.name not in SUPPORTED_DTYPES:
        raise _dtype_error(f"a dtype among {_SUPPORTED_TEXT}", str(arr.dtype), "unsupported dtype")
    data = np.ascontiguousarray(arr, dtype=dtype).tobytes()
    shape = list(arr.shape)
    if style == "zdata":
        return {ZDATA_KEY: ZDATA_NUMPY, "b": data, "dtype": dtype.name, "shape": shape}
    return {DTYPE_KEY: dtype.name, "shape": shape, "bytes": data}


def decode_tree(obj: Any, *, json_mode: bool = False) -> Any:
    """Replace every ``$dtype``/ZData array map in a decoded MessagePack tree by a numpy array.

    Raises :class:`FieldError` (internal) with the path of the bad array.
    """
    if isinstance(obj, dict):
        if _is_array_map(obj):
            return array_from_dict(obj, json_mode=json_mode)
        out = {}
        for key, value in obj.items():
            try:
                out[key] = decode_tree(value, json_mode=json_mode)
            except FieldError as exc:
                raise exc.at(str(key)) from None
        return out
    if isinstance(obj, list):
        items = []
        for i, value in enumerate(obj):
            try:
                items.append(decode_tree(value, json_mode=json_mode))
            except FieldError as exc:
                raise exc.at(f"[{i}]") from None
        return items
    return obj


def _default_for(style: Style) -> Callable[[Any], Any]:
    def default(obj: Any) -> Any:
        if isinstance(obj, np.ndarray | np.generic):
            return array_to_dict(obj, style)
        raise TypeError(f"cannot pack {type(obj).__name__} into a vuer message")

    return default


def _wrap(exc: FieldError, root: str) -> ValidationError:
    error = exc.to_validation_error(data_type="vuer_msg")
    return error.located(prefix=root) if root else error


def decode_vuer(data: bytes, *, root: str = "") -> Any:
    """Decode vuer MessagePack bytes into Python objects with numpy arrays.

    Raises :class:`ValidationError` (``malformed_frame`` for bad MessagePack, ``invalid_dtype`` /
    ``too_large`` for bad arrays, with the path inside the message, prefixed by ``root``).
    """
    try:
        tree = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:
        raise ValidationError(
            ErrorCode.MALFORMED_FRAME,
            f"not valid MessagePack ({type(exc).__name__}: {exc})"[:200],
            data_type="vuer_msg",
            path=root,
            expected="a MessagePack document",
            got=describe(data),
        ) from None
    try:
        return decode_tree(tree)
    except FieldError as exc:
        raise _wrap(exc, root) from None
    except RecursionError:
        raise ValidationError(
            ErrorCode.TOO_LARGE, "message nested too deeply", data_type="vuer_msg", path=root
        ) from None


def encode_vuer(obj: Any, *, style: Style = "$dtype") -> bytes:
    """Pack Python objects with numpy arrays into vuer MessagePack bytes.

    Arrays become ``$dtype`` maps (or ZData maps with ``style="zdata"``). Raises
    :class:`ValidationError` for unsupported dtypes or unpackable objects.
    """
    try:
        packed: bytes = msgpack.packb(obj, default=_default_for(style), use_bin_type=True)
    except FieldError as exc:
        raise _wrap(exc, "") from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError(
            ErrorCode.INVALID_FIELD,
            f"cannot encode a vuer message: {exc}"[:200],
            data_type="vuer_msg",
            expected="MessagePack-able values and numpy arrays",
        ) from None
    return packed
