"""Generators of bad input (hypothesis strategies) and the committed corpus, shared by the
in-process fuzzing and the live-gateway tests. Each case is a frame plus the codes it may get."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
from hypothesis import strategies as st

from robostream.schemas import DataType
from robostream.schemas.examples import example_payload

CORPUS = Path(__file__).parent / "corpus"
NAN, INF = float("nan"), float("inf")
ID_FIELDS = ("robot_id", "session_id")
KNOWN = frozenset(str(dt) for dt in DataType)


@dataclass(frozen=True)
class Case:
    """One bad frame and the error codes that are a right answer (empty: any rejection)."""

    category: str
    frame: bytes
    codes: frozenset[str]


def mp(obj: Any) -> bytes:
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    return packed


@functools.lru_cache(maxsize=64)
def _example(data_type: str) -> dict[str, Any]:
    return example_payload(data_type) if data_type in KNOWN else {"message": "x"}


def envelope(data_type: str = "log", seq: int = 0, robot_id: str = "robot_001",
             session_id: str = "s-fuzz") -> dict[str, Any]:
    """A valid envelope (for a known data type) to spoil; its payload is a fresh copy."""
    payload = copy.deepcopy(_example(data_type))
    return {"timestamp": 1_718_000_000.25, "robot_id": robot_id, "session_id": session_id,
            "data_type": data_type, "seq": seq, "payload": payload}


def vuer(dtype: Any, shape: Any = (2, 3), nbytes: int = 24) -> dict[str, Any]:
    env = envelope("vuer_msg")
    env["payload"]["data"] = mp({"points": {"vertices": {"$dtype": dtype, "shape": list(shape),
                                                         "bytes": bytes(nbytes)}}})
    return env


VALID_BATCH = mp([envelope("time_series", i) for i in range(3)] + [envelope("log", 3)])
MALFORMED = frozenset({"malformed_frame"})
TOO_LARGE = frozenset({"too_large"})

# -- strategies: each draws a list of frames of one category -------------------------------------


def truncated() -> st.SearchStrategy[Case]:
    return st.integers(0, len(VALID_BATCH) - 1).map(
        lambda cut: Case("truncated MessagePack", VALID_BATCH[:cut], MALFORMED))


def deep_nesting() -> st.SearchStrategy[Case]:
    def build(depth: int, as_map: bool) -> Case:
        env = envelope("parameters")
        packed = bytearray(mp({k: v for k, v in env.items() if k != "payload"}))
        packed[0] += 1  # one more key in the fixmap: "payload"
        level = b"\x81\xa1a" if as_map else b"\x91"
        body = mp("payload") + level * depth + mp(1)
        return Case("deep nesting", bytes(packed) + body,
                    frozenset({"malformed_frame", "invalid_field", "missing_field", "unknown_field"}))

    return st.builds(build, st.integers(100, 200_000), st.booleans())


def huge_arrays() -> st.SearchStrategy[Case]:
    def build(claimed: int, kind: int, extra: int) -> Case:
        if kind == 0:  # an array header claiming far more items than the frame holds
            return Case("huge arrays", b"\xdd" + claimed.to_bytes(4, "big") + mp(envelope()), MALFORMED)
        if kind == 1:  # a map header claiming as much
            return Case("huge arrays", b"\xdf" + claimed.to_bytes(4, "big") + b"\xa1a", MALFORMED)
        # a real batch above gateway.max_batch_messages (10,000) of tiny items
        return Case("huge arrays", b"\xdd" + (10_001 + extra).to_bytes(4, "big") + b"\xc0" * (10_001 + extra),
                    TOO_LARGE)

    return st.builds(build, st.integers(2**16, 2**32 - 1), st.integers(0, 2), st.integers(0, 50))


SCALARS = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=8)
           | st.binary(max_size=8))
WRONG_VALUES = (SCALARS | st.lists(SCALARS, max_size=3)
                | st.dictionaries(st.text(max_size=6), SCALARS, max_size=3))


def wrong_types() -> st.SearchStrategy[Case]:
    def build(data_type: DataType, field: str, value: Any) -> Case:
        env = envelope(str(data_type))
        env[field] = value
        return Case("wrong types", mp(env), frozenset())

    fields = st.sampled_from(["timestamp", "robot_id", "session_id", "data_type", "seq", "payload"])
    return st.builds(build, st.sampled_from(list(DataType)), fields, WRONG_VALUES)


def non_finite() -> st.SearchStrategy[Case]:
    def build(where: int, value: float) -> Case:
        if where == 0:
            env = {**envelope(), "timestamp": value}
        elif where == 1:
            env = envelope("parameters")
            env["payload"]["values"] = {"lr": value}
        else:
            env = envelope("video")
            env["payload"]["fps"] = value
        return Case("NaN/Inf", mp(env), frozenset({"non_finite"}))

    return st.builds(build, st.integers(0, 2), st.sampled_from([NAN, INF, -INF]))


def invalid_utf8() -> st.SearchStrategy[Case]:
    def build(junk: bytes, field: str) -> Case:
        env = envelope()
        packed = mp({**env, field: "\x00PLACEHOLDER\x00"})
        raw = b"\xd9" + bytes([len(junk)]) + junk
        return Case("invalid UTF-8", packed.replace(mp("\x00PLACEHOLDER\x00"), raw), MALFORMED)

    bad = st.binary(min_size=1, max_size=40).map(lambda b: b + b"\xff\xfe\xc3")
    return st.builds(build, bad, st.sampled_from(["robot_id", "session_id", "data_type"]))


def unknown_data_type() -> st.SearchStrategy[Case]:
    names = st.text(min_size=1, max_size=20).filter(lambda s: s not in KNOWN)
    return names.map(lambda name: Case("unknown data_type", mp(envelope(name)),
                                       frozenset({"unknown_data_type"})))


def bad_dtype() -> st.SearchStrategy[Case]:
    names = st.sampled_from(["float128", "complex64", "object", "", "f4", "<f8", "int128"])
    dtypes = names | st.integers(-(2**63), 2**63 - 1)
    return dtypes.map(lambda d: Case("bad $dtype", mp(vuer(d)), frozenset({"invalid_dtype"})))


def unsafe_ids() -> st.SearchStrategy[Case]:
    def build(field: str, left: str, sep: str, right: str) -> Case:
        return Case("ids with ../ or /", mp({**envelope(), field: f"{left}{sep}{right}"}),
                    frozenset({"invalid_id"}))

    part = st.text(st.sampled_from("abcxyz_-0123456789."), max_size=8)
    seps = st.sampled_from(["../", "/", "/..", "..\\", "\\", "%2e%2e/", "\x00"])
    return st.builds(build, st.sampled_from(ID_FIELDS), part, seps, part)


STRATEGIES: dict[str, Callable[[], st.SearchStrategy[Case]]] = {
    "truncated MessagePack": truncated,
    "deep nesting": deep_nesting,
    "huge arrays": huge_arrays,
    "wrong types": wrong_types,
    "NaN/Inf": non_finite,
    "invalid UTF-8": invalid_utf8,
    "unknown data_type": unknown_data_type,
    "bad $dtype": bad_dtype,
    "ids with ../ or /": unsafe_ids,
}


def corpus() -> list[Case]:
    """The committed corpus: ``corpus/cases.json`` names each file and the codes it may get."""
    index = json.loads((CORPUS / "cases.json").read_text())
    return [Case(item["category"], (CORPUS / item["file"]).read_bytes(), frozenset(item["codes"]))
            for item in index]
