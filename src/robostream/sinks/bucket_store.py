"""Writes telemetry as minute buckets and keeps the level-of-detail pyramid up to date.

Each write merges the new samples into their minute documents (samples already stored --
same ``seq`` and ``i`` -- are skipped, so a redelivery or a replay changes nothing) and rewrites
those documents whole, then the pyramid's bins of the touched minutes. The open minute is thus
rewritten on every sink flush: a history query sees samples a flush interval old.

Documents are cached between writes (the open minute is rewritten many times); every stored
document carries a revision ``rev`` and is only replaced if nobody replaced it since it was
read (an insert of a new document fails the same way if another writer created it). On such a
conflict -- another task owned the partition for a while -- the document is read again, the
samples merged again, and the write retried. The cache is bounded (``cache_bytes``).
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from pymongo import InsertOne, ReplaceOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from robostream.errors import RobostreamError
from robostream.processors import TelemetryBucket
from robostream.sinks.buckets import (
    LodSpan,
    Minute,
    combine,
    minute_doc_id,
    minutes_of,
    span_start,
)

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
MAX_ATTEMPTS = 5
TELEMETRY = "telemetry"
LOD = "telemetry_lod"


class WriteConflictError(RobostreamError, RuntimeError):
    """Another writer kept replacing the same documents: give up this write (it is retried)."""


@dataclass(frozen=True)
class Piece:
    """Samples of one record (or bucket) within one minute of one channel group."""

    robot_id: str
    session_id: str
    group: str
    minute_us: int
    times: np.ndarray
    seqs: np.ndarray
    indexes: np.ndarray
    names: list[str]
    values: np.ndarray
    units: dict[str, str]
    joint_names: list[str]

    @property
    def doc_id(self) -> str:
        return minute_doc_id(self.robot_id, self.session_id, self.group, self.minute_us)


def pieces_of(buckets: Iterable[TelemetryBucket]) -> list[Piece]:
    out = []
    for bucket in buckets:
        for group, minute, times, seqs, indexes, names, values in minutes_of(bucket):
            out.append(Piece(bucket.robot_id, bucket.session_id, group, minute, times, seqs, indexes,
                             names, values, dict(bucket.units), list(bucket.joint_names)))
    return out


Cached = TypeVar("Cached", Minute, LodSpan)


class _Cache(OrderedDict[str, Cached]):
    def __init__(self, limit_bytes: int) -> None:
        super().__init__()
        self.limit = limit_bytes

    def keep(self, key: str, value: Cached) -> None:
        self[key] = value
        self.move_to_end(key)
        total = sum(_nbytes(v) for v in self.values())
        while total > self.limit and len(self) > 1:
            _, old = self.popitem(last=False)
            total -= _nbytes(old)


def _nbytes(item: Minute | LodSpan) -> int:
    if isinstance(item, Minute):
        return int(item.values.nbytes + item.times.nbytes * 3)
    return int(item.stats.nbytes)


class BucketStore:
    """Minute buckets and their pyramid in one MongoDB database (one instance per sink task)."""

    def __init__(self, db: Database[dict[str, Any]], *, cache_bytes: int = 128 << 20) -> None:
        self.db = db
        self.minutes: _Cache[Minute] = _Cache(cache_bytes)
        self.spans: _Cache[LodSpan] = _Cache(cache_bytes // 4)

    def forget(self) -> None:
        """Drop the cache (after a failed write the stored state is unknown)."""
        self.minutes.clear()
        self.spans.clear()

    def write(self, new: Iterable[Piece]) -> dict[tuple[str, str], int]:
        """Merge samples into their minutes, store the changed minutes and their pyramid bins.

        Returns the number of samples newly stored per ``(robot, session)`` (0 for a replay).
        """
        pieces: dict[str, list[Piece]] = {}
        for piece in new:
            pieces.setdefault(piece.doc_id, []).append(piece)
        if not pieces:
            return {}
        fresh: dict[tuple[str, str], list[np.ndarray]] = {}
        saved: dict[str, Minute] = {}
        todo = list(pieces)
        for _ in range(MAX_ATTEMPTS):
            minutes = self._load_minutes(todo, pieces)
            news = {doc_id: [minutes[doc_id].merge(p.times, p.seqs, p.indexes, p.names, p.values)
                             for p in pieces[doc_id]] for doc_id in todo}
            for doc_id in todo:
                _describe(minutes[doc_id], pieces[doc_id])
            changed = [minutes[i] for i in todo if any(m.any() for m in news[i]) or not minutes[i].rev]
            conflicts = self._save(self.db[TELEMETRY], changed, self.minutes)
            for doc_id in todo:
                if doc_id in conflicts:
                    continue
                # even with nothing new: a redelivery after a crash between the minute's write and
                # its pyramid's must repair the pyramid (its bins are recomputed from the minute)
                saved[doc_id] = minutes[doc_id]
                for piece, mask in zip(pieces[doc_id], news[doc_id], strict=True):
                    fresh.setdefault((piece.robot_id, piece.session_id), []).append(
                        sample_keys(piece.seqs[mask], piece.indexes[mask]))
            if not conflicts:
                break
            log.info("telemetry: %d minute document(s) changed by another writer; merging again",
                     len(conflicts))
            todo = sorted(conflicts)
        else:
            self.forget()
            raise WriteConflictError(f"{len(todo)} minute document(s) kept changing under this writer")
        if saved:
            self._update_pyramid(list(saved.values()))
        # a sample has a document per channel group: count it once
        return {key: int(np.unique(np.concatenate(keys)).size) for key, keys in fresh.items()}

    # -- minutes -----------------------------------------------------------------------------

    def _load_minutes(self, ids: Sequence[str], pieces: dict[str, list[Piece]]) -> dict[str, Minute]:
        found = {i: self.minutes[i] for i in ids if i in self.minutes}
        missing = [i for i in ids if i not in found]
        if missing:
            for doc in self.db[TELEMETRY].find({"_id": {"$in": missing}}):
                found[doc["_id"]] = Minute.from_document(doc)
        for doc_id in missing:
            if doc_id not in found:
                first = pieces[doc_id][0]
                found[doc_id] = Minute(first.robot_id, first.session_id, first.group, first.minute_us)
        return found

    # -- the pyramid -------------------------------------------------------------------------

    def _update_pyramid(self, minutes: Sequence[Minute]) -> None:
        """Set the touched minutes' bins in their spans (read first when not cached)."""
        for _ in range(MAX_ATTEMPTS):
            spans: dict[str, LodSpan] = {}
            fill_pyramid(minutes, functools.partial(self._span, spans))
            conflicts = self._save(self.db[LOD], list(spans.values()), self.spans)
            if not conflicts:
                return
            for doc_id in conflicts:
                self.spans.pop(doc_id, None)
        self.forget()
        raise WriteConflictError("level-of-detail documents kept changing under this writer")

    def _span(self, spans: dict[str, LodSpan], probe: LodSpan) -> LodSpan:
        doc_id = probe.doc_id
        if doc_id in spans:
            return spans[doc_id]
        span = self.spans.get(doc_id)
        if span is None:
            doc = self.db[LOD].find_one({"_id": doc_id})
            span = LodSpan.from_document(doc) if doc is not None else probe
        spans[doc_id] = span
        return span

    # -- revision-checked writes -------------------------------------------------------------

    def _save(self, collection: Collection[dict[str, Any]], items: Sequence[Minute | LodSpan],
              cache: _Cache[Any]) -> set[str]:
        """Insert new documents, replace stored ones whose revision is unchanged; returns the
        ids of those another writer changed (dropped from the cache)."""
        if not items:
            return set()
        operations: list[Any] = []
        for item in items:
            doc = item.document()
            if item.rev == 0:
                operations.append(InsertOne(doc))
            else:
                operations.append(ReplaceOne({"_id": doc["_id"], "rev": item.rev}, doc))
        conflicts: set[str] = set()
        try:
            result = collection.bulk_write(operations, ordered=False)
            matched = result.matched_count
        except BulkWriteError as exc:
            details = exc.details
            errors = details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            conflicts = {items[e["index"]].doc_id for e in errors}
            matched = int(details.get("nMatched", 0))
        replaced = [i for i in items if i.rev and i.doc_id not in conflicts]
        if matched < len(replaced):
            stored = {d["_id"]: d.get("rev") for d in collection.find(
                {"_id": {"$in": [i.doc_id for i in replaced]}}, {"rev": 1})}
            conflicts |= {i.doc_id for i in replaced if stored.get(i.doc_id) != i.rev + 1}
        for item in items:
            if item.doc_id in conflicts:
                cache.pop(item.doc_id, None)
            else:
                item.rev += 1
                cache.keep(item.doc_id, item)
        return conflicts


def fill_pyramid(minutes: Iterable[Minute], span_of: Callable[[LodSpan], LodSpan]) -> None:
    """Set the minutes' bins in the 1 s, 10 s and 1 min spans, then each touched hour's 1 h bin
    (``span_of(empty span)`` returns the span to update: stored, cached or that new one)."""
    hours: dict[str, LodSpan] = {}
    for minute in minutes:
        for level in ("1s", "10s", "1m"):
            span = span_of(LodSpan(minute.robot_id, minute.session_id, minute.group, level,
                                   span_start(level, minute.minute_us)))
            span.put(minute.names, minute.minute_us, minute.lod(level))
            if level == "1m":
                hours[span.doc_id] = span
    for span in hours.values():
        day = span_of(LodSpan(span.robot_id, span.session_id, span.group, "1h",
                              span_start("1h", span.span_start_us)))
        day.put(span.names, span.span_start_us, combine(span.stats, span.bins))


def bucket_documents(pieces: Iterable[Piece]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``telemetry`` and ``telemetry_lod`` documents of these samples alone (no store)."""
    minutes: dict[str, Minute] = {}
    for piece in pieces:
        minute = minutes.setdefault(piece.doc_id, Minute(piece.robot_id, piece.session_id, piece.group,
                                                         piece.minute_us))
        minute.merge(piece.times, piece.seqs, piece.indexes, piece.names, piece.values)
        _describe(minute, [piece])
    spans: dict[str, LodSpan] = {}
    fill_pyramid(minutes.values(), lambda probe: spans.setdefault(probe.doc_id, probe))
    return [m.document() for m in minutes.values()], [s.document() for s in spans.values()]


def sample_keys(seqs: np.ndarray, indexes: np.ndarray) -> np.ndarray:
    """One int64 per sample identity ``(seq, i)`` (records hold fewer than 2**20 samples)."""
    return np.asarray(seqs, dtype=np.int64) * (1 << 20) + np.asarray(indexes, dtype=np.int64)


def _describe(minute: Minute, pieces: Sequence[Piece]) -> None:
    for piece in pieces:
        minute.units.update(piece.units)
        if piece.joint_names:
            minute.joint_names = list(piece.joint_names)
