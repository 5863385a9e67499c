"""The frame records a compaction job produces: kinds, tiers, stored objects, frame metadata and
bundle parts (nested records of :class:`~robostream.processors.records.FrameBatch`).

Apart from :mod:`robostream.processors.records` because the frame-encoding pool's processes
build them: a spawned pool process imports this module, not the codec, the schema registry
client, the topic catalogue and the settings those need (about a second of CPU per process
start). :mod:`robostream.processors.records` re-exports every name here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from robostream.processors.record_schema import AvroRecord, load_schema, nested_schema, register


class FrameKind(StrEnum):
    RGB = "rgb"
    DEPTH = "depth"
    POINTCLOUD = "pointcloud"


class TierName(StrEnum):
    """Resolution tiers: the source resolution, a 640x360 preview and a 120x68 thumbnail."""

    ORIGINAL = "original"
    PREVIEW = "preview"
    THUMBNAIL = "thumbnail"


FRAME_BATCH_SCHEMA = load_schema("FrameBatch")
STORED_OBJECT_SCHEMA = nested_schema(FRAME_BATCH_SCHEMA, "StoredObject")
FRAME_META_SCHEMA = nested_schema(FRAME_BATCH_SCHEMA, "FrameMeta")
FRAME_TIER_SCHEMA = nested_schema(FRAME_BATCH_SCHEMA, "FrameTier")
BUNDLE_PART_SCHEMA = nested_schema(FRAME_BATCH_SCHEMA, "BundlePart")


@dataclass(frozen=True, slots=True)
class StoredObject(AvroRecord):
    """An object the S3 sink writes: key (in ``s3.bucket``), content type, size, SHA-256, bytes."""

    SCHEMA: ClassVar[dict[str, Any]] = STORED_OBJECT_SCHEMA

    key: str
    content_type: str
    size_bytes: int
    sha256: str
    content: bytes


@dataclass(frozen=True, slots=True)
class FrameTier(AvroRecord):
    """Where one tier of a frame lives and how it was encoded."""

    SCHEMA: ClassVar[dict[str, Any]] = FRAME_TIER_SCHEMA

    tier: str
    key: str
    format: str
    compression: str
    width: int
    height: int
    size_bytes: int
    segment_index: int | None = None
    segment_frames: int | None = None


@dataclass(frozen=True, slots=True)
class FrameMeta(AvroRecord):
    """One source frame after compaction (a ``frames_metadata`` document)."""

    SCHEMA: ClassVar[dict[str, Any]] = FRAME_META_SCHEMA

    frame_id: str
    seq: int
    timestamp: int
    bucket_hour: int
    source_format: str
    source_size_bytes: int
    width: int
    height: int
    compressed_size_bytes: int
    tiers: list[FrameTier]
    thumbnail: bytes | None = None

    @property
    def compression_ratio(self) -> float:
        """Saved fraction of the source size (0.7 = 70 % smaller), on the original tier."""
        if not self.source_size_bytes:
            return 0.0
        return 1.0 - self.compressed_size_bytes / self.source_size_bytes

    def tier(self, name: TierName | str) -> FrameTier | None:
        return next((t for t in self.tiers if t.tier == name), None)


@dataclass(frozen=True, slots=True)
class BundlePart(AvroRecord):
    """A gzip member of whole tar members of the hourly bundle at ``key``."""

    SCHEMA: ClassVar[dict[str, Any]] = BUNDLE_PART_SCHEMA

    key: str
    part: str
    last: bool
    members: list[str]
    content: bytes


register(StoredObject, FrameTier, FrameMeta, BundlePart)
