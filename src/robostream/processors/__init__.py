"""Stream processors (the Faust app ``robostream process``): bucketing, windowed aggregations and
frame compaction, from the raw topics to the derived topics the sinks land.

The public surface the sinks use is the derived records (:mod:`robostream.processors.records`).
Importing this package loads nothing: each name comes from the records module on first use,
so a frame-encoding pool process (which imports :mod:`robostream.processors.compaction.jobs`)
does not load the codec, the schema registry client and the settings it never uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from robostream.processors.records import (
        HOUR_US,
        MINUTE_US,
        RESOLUTION_US,
        BundlePart,
        DerivedCodec,
        DerivedRecordError,
        FrameBatch,
        FrameKind,
        FrameMeta,
        FrameTier,
        MetricAggregate,
        MetricStats,
        RecordSlice,
        StoredObject,
        TelemetryBucket,
        TelemetryPoint,
        TierName,
        WindowStats,
        record_types,
        schema_str,
        subject_for,
    )

__all__ = [
    "HOUR_US",
    "MINUTE_US",
    "RESOLUTION_US",
    "BundlePart",
    "DerivedCodec",
    "DerivedRecordError",
    "FrameBatch",
    "FrameKind",
    "FrameMeta",
    "FrameTier",
    "MetricAggregate",
    "MetricStats",
    "RecordSlice",
    "StoredObject",
    "TelemetryBucket",
    "TelemetryPoint",
    "TierName",
    "WindowStats",
    "record_types",
    "schema_str",
    "subject_for",
]


def __getattr__(name: str) -> Any:
    """The derived records' names, imported on first use."""
    if name in __all__:
        from robostream.processors import records

        return getattr(records, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
