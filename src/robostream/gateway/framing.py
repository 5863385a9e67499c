"""Splitting an HTTP streaming body into batch frames, with the frame size limit applied.

Two framings (chosen by the request's ``Content-Type``):

* length-prefixed MessagePack (``application/vnd.robostream.msgpack-stream``): each frame is a
  4-byte big-endian length, then that many bytes of MessagePack;
* NDJSON (``application/x-ndjson``): each line is one JSON frame; blank lines are skipped.

A frame above the limit is not buffered: its first bytes are kept (for the DLQ) and the rest is
skipped, so the stream goes on with the next frame. The splitters are pure (no I/O): feed them
chunks, they yield :class:`Frame` and :class:`Oversized` items.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from robostream.gateway.protocol import FrameFormat

MSGPACK_STREAM = "application/vnd.robostream.msgpack-stream"
NDJSON = "application/x-ndjson"
#: Content types accepted by ``POST /v1/ingest`` and the framing each selects.
CONTENT_TYPES: dict[str, FrameFormat] = {
    MSGPACK_STREAM: "msgpack",
    "application/x-msgpack-stream": "msgpack",
    NDJSON: "json",
    "application/jsonl": "json",
    "application/x-jsonlines": "json",
}
LENGTH = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete frame."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Oversized:
    """A frame above the limit: its ``size`` and its first ``prefix`` bytes."""

    size: int
    prefix: bytes


class LengthPrefixedSplitter:
    """``[u32 length][frame]...`` -> frames."""

    def __init__(self, max_frame: int, keep: int = 64 * 1024) -> None:
        self.max_frame = max_frame
        self.keep = keep
        self._buffer = bytearray()
        self._skip = 0  # bytes of an oversized frame still to drop
        self._skipped: Oversized | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buffer)

    @property
    def idle(self) -> bool:
        """True between frames (a stream may end here)."""
        return not self._buffer and not self._skip

    def feed(self, chunk: bytes) -> Iterator[Frame | Oversized]:
        """Take the next piece of the body; yield every frame it completes."""
        self._buffer += chunk
        while True:
            if self._skip:
                dropped = min(self._skip, len(self._buffer))
                del self._buffer[:dropped]
                self._skip -= dropped
                if self._skip:
                    return
                assert self._skipped is not None
                yield self._skipped
                self._skipped = None
            if len(self._buffer) < LENGTH.size:
                return
            (size,) = LENGTH.unpack_from(self._buffer)
            if size > self.max_frame:
                prefix = bytes(self._buffer[LENGTH.size : LENGTH.size + min(size, self.keep)])
                del self._buffer[: LENGTH.size]
                self._skip = size
                self._skipped = Oversized(size, prefix)
                continue
            if len(self._buffer) < LENGTH.size + size:
                return
            data = bytes(self._buffer[LENGTH.size : LENGTH.size + size])
            del self._buffer[: LENGTH.size + size]
            yield Frame(data)


class NdjsonSplitter:
    """``frame\\n frame\\n ...`` -> frames (a last line without newline ends at :meth:`close`)."""

    def __init__(self, max_frame: int, keep: int = 64 * 1024) -> None:
        self.max_frame = max_frame
        self.keep = keep
        self._buffer = bytearray()
        self._oversized: bytes | None = None  # prefix of the line being skipped
        self._oversized_size = 0

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def idle(self) -> bool:
        return not self._buffer.strip() and self._oversized is None

    def feed(self, chunk: bytes) -> Iterator[Frame | Oversized]:
        """Take the next piece of the body; yield every line it completes."""
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            yield from self._take(piece, complete=end >= 0)
            if end < 0:
                return
            start = end + 1

    def close(self) -> Iterator[Frame | Oversized]:
        """The body ended: a last line without a newline is still a frame."""
        if self._buffer.strip() or self._oversized is not None:
            yield from self._take(b"", complete=True)

    def _take(self, piece: bytes, *, complete: bool) -> Iterator[Frame | Oversized]:
        if self._oversized is not None:
            self._oversized_size += len(piece)
        elif len(self._buffer) + len(piece) > self.max_frame:
            self._oversized = bytes((self._buffer + piece)[: self.keep])
            self._oversized_size = len(self._buffer) + len(piece)
            self._buffer.clear()
        else:
            self._buffer += piece
        if not complete:
            return
        if self._oversized is not None:
            yield Oversized(self._oversized_size, self._oversized)
            self._oversized = None
            self._oversized_size = 0
            return
        line = bytes(self._buffer)
        self._buffer.clear()
        if line.strip():
            yield Frame(line)


Splitter = LengthPrefixedSplitter | NdjsonSplitter


def splitter_for(fmt: FrameFormat, max_frame: int) -> Splitter:
    """The splitter of a framing: MessagePack -> length-prefixed, JSON -> NDJSON."""
    return LengthPrefixedSplitter(max_frame) if fmt == "msgpack" else NdjsonSplitter(max_frame)


def encode_length_prefixed(frame: bytes) -> bytes:
    """``frame`` with its 4-byte big-endian length in front."""
    return LENGTH.pack(len(frame)) + frame


def media_type(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` header, lower case, without parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()
