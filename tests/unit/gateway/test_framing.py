"""Splitting streaming HTTP bodies into frames: any chunking, oversized frames skipped not buffered."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from robostream.gateway.framing import (
    Frame,
    LengthPrefixedSplitter,
    NdjsonSplitter,
    Oversized,
    encode_length_prefixed,
    media_type,
    splitter_for,
)


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def feed_all(
    splitter: LengthPrefixedSplitter | NdjsonSplitter, parts: list[bytes]
) -> list[Frame | Oversized]:
    out = [item for part in parts for item in splitter.feed(part)]
    if isinstance(splitter, NdjsonSplitter):
        out += list(splitter.close())
    return out


@given(st.lists(st.binary(max_size=40), max_size=8), st.lists(st.integers(0, 10_000), max_size=12))
def test_length_prefixed_frames_come_out_whole_whatever_the_chunking(
    frames: list[bytes], cuts: list[int]
) -> None:
    body = b"".join(encode_length_prefixed(f) for f in frames)
    splitter = LengthPrefixedSplitter(max_frame=1000)
    assert feed_all(splitter, chunks(body, cuts)) == [Frame(f) for f in frames]
    assert splitter.idle


@given(
    st.lists(st.binary(max_size=40).filter(lambda b: b"\n" not in b and b.strip()), max_size=8),
    st.lists(st.integers(0, 10_000), max_size=12),
)
def test_ndjson_lines_come_out_whole_whatever_the_chunking(lines: list[bytes], cuts: list[int]) -> None:
    body = b"\n".join(lines)  # no newline after the last line: it still counts at the end
    assert feed_all(NdjsonSplitter(max_frame=1000), chunks(body, cuts)) == [Frame(line) for line in lines]


def test_an_oversized_length_prefixed_frame_is_skipped_and_the_stream_goes_on() -> None:
    big = b"x" * 5000
    body = encode_length_prefixed(b"a") + encode_length_prefixed(big) + encode_length_prefixed(b"b")
    splitter = LengthPrefixedSplitter(max_frame=1000, keep=10)
    out = feed_all(splitter, chunks(body, list(range(0, len(body), 97))))
    assert out == [Frame(b"a"), Oversized(5000, b"x" * 10), Frame(b"b")]
    assert splitter.buffered == 0


def test_an_oversized_ndjson_line_is_skipped_and_the_stream_goes_on() -> None:
    body = b"[1]\n" + b"y" * 3000 + b"\n\n[2]\n"
    out = feed_all(NdjsonSplitter(max_frame=1000, keep=4), chunks(body, list(range(0, len(body), 333))))
    assert out == [Frame(b"[1]"), Oversized(3000, b"yyyy"), Frame(b"[2]")]


def test_a_body_that_ends_inside_a_frame_is_not_idle() -> None:
    splitter = LengthPrefixedSplitter(max_frame=100)
    assert list(splitter.feed(encode_length_prefixed(b"abcdef")[:-2])) == []
    assert not splitter.idle and splitter.buffered == 8


def test_content_types_choose_the_framing() -> None:
    assert media_type("application/x-ndjson; charset=utf-8") == "application/x-ndjson"
    assert isinstance(splitter_for("json", 10), NdjsonSplitter)
    assert isinstance(splitter_for("msgpack", 10), LengthPrefixedSplitter)
