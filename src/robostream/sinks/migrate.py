"""One-shot migration: per-record ``telemetry`` documents (robostream before minute buckets)
into minute buckets and their pyramid.

The old shape is one document per record and minute, ``_id = robot/session/time_series/seq/
minute``, with list columns (``t`` offsets from ``timestamp_us``, ``indexes``, nested ``values``).
Each batch is merged into the minute buckets exactly as the MongoDB sink merges records (samples
already there are skipped), then its old documents are deleted. Interrupted, it is simply run
again: a batch written but not yet deleted merges to the same documents.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pymongo.database import Database

from robostream.processors import TelemetryBucket
from robostream.sinks.bucket_store import BucketStore, pieces_of
from robostream.sinks.buckets import flatten
from robostream.times import HOUR_US

#: Old documents have no channel group.
OLD_SHAPE: dict[str, Any] = {"group": {"$exists": False}}


@dataclass
class MigrationReport:
    documents: int = 0  # old documents rewritten (and deleted)
    samples: int = 0  # samples newly stored in minute buckets
    sessions: int = 0


def bucket_of_old(doc: Mapping[str, Any]) -> TelemetryBucket:
    """An old per-record document as the processors' bucket (its points, unchanged)."""
    base = int(doc["timestamp_us"])
    stamps = [base + int(t) for t in doc["t"]]
    minute = stamps[0] - stamps[0] % 60_000_000
    return TelemetryBucket(
        robot_id=doc["robot_id"], session_id=doc["session_id"], bucket_hour=minute - minute % HOUR_US,
        bucket_minute=minute, timestamps=stamps, seqs=[int(doc["seq"])] * len(stamps),
        indexes=doc.get("indexes") or list(range(len(stamps))),
        values={name: [float("nan") if v is None else float(v) for v in column]
                for name, column in flatten(doc.get("values") or {}).items()},
        joint_names=list(doc.get("joint_names") or []),
        units={name: str(unit) for name, unit in flatten(doc.get("units") or {}).items()},
    )


def old_documents(db: Database[dict[str, Any]]) -> int:
    """How many per-record documents are left."""
    return db.telemetry.count_documents(OLD_SHAPE)


def migrate_telemetry(db: Database[dict[str, Any]], *, batch: int = 2000,
                      progress: Callable[[MigrationReport], None] | None = None) -> MigrationReport:
    """Rewrite every per-record document into minute buckets, ``batch`` documents at a time."""
    store = BucketStore(db)
    report = MigrationReport()
    sessions: set[tuple[str, str]] = set()
    while True:
        docs = list(db.telemetry.find(OLD_SHAPE).limit(batch))
        if not docs:
            return report
        added = store.write(pieces_of(bucket_of_old(doc) for doc in docs))
        db.telemetry.delete_many({"_id": {"$in": [doc["_id"] for doc in docs]}})
        report.documents += len(docs)
        report.samples += sum(added.values())
        sessions |= {(d["robot_id"], d["session_id"]) for d in docs}
        report.sessions = len(sessions)
        if progress is not None:
            progress(report)
