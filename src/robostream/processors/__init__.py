"""Stream processors (the Faust app ``robostream process``): bucketing, windowed aggregations and
frame compaction, from the raw topics to the derived topics the sinks land.

The public surface the sinks use is the derived records (:mod:`robostream.processors.records`).
"""

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
