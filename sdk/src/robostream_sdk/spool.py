"""The robot's disk spool: every batch is written here before it is sent, and stays until acked.

Layout of a spool directory (one per robot)::

    .lock                      held (flock) by the one process using the spool
    0000000000000001.seg       append-only segment: "RSSPOOL2", then records
    0000000000000001.acks      append-only ack log of that segment: u64 little-endian batch ids
    0000000000000001.<offset>.corrupt   bytes of a damaged record, set aside by recovery

A record is ``[sync "\\xa5RSZ"][u32 meta length][u32 frame length][u32 crc32 of meta+frame]
[u32 crc32 of the 16 header bytes before it]`` (big-endian), a MessagePack map of metadata
(batch id, session, seqs, counts) and the batch frame as sent. Segments of the first format
(``RSSPOOL1``: ``[u32 meta length][u32 frame length][u32 crc32]``, no sync marker) are still read.

* Rotation: the active segment is sealed when the next record would take it past
  ``segment_bytes`` or when it is older than ``segment_age_s``.
* Deletion: a sealed segment whose records are all acked is deleted (with its ack log).
* Cap: when the spool would grow past ``max_bytes``, its oldest segment is deleted, acked or not;
  the unacked messages in it are *dropped* (counted, and a warning says so).
* Recovery: on open, every segment is read back, acked ids are removed, and what is left is
  pending again, in batch-id order. A torn last record (a crash mid-write: its header or body
  ends early) is cut off. A damaged record anywhere else (checksum mismatch, broken header) is
  corruption: its bytes are moved to a ``.corrupt`` file, it is logged and counted
  (:attr:`Spool.corrupt_batches`), and reading resumes at the next intact record (found by its
  sync marker and checksums), so no intact record after it is lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from robostream_sdk.batcher import Batch
from robostream_sdk.errors import SdkError
from robostream_sdk.wire import FrameFormat

log = logging.getLogger(__name__)

MAGIC = b"RSSPOOL2"
SYNC = b"\xa5RSZ"
RECORD = struct.Struct(">4sIIII")  # sync, meta length, frame length, crc of meta+frame, crc of the 16 before
MAGIC_V1 = b"RSSPOOL1"
RECORD_V1 = struct.Struct(">III")  # meta length, frame length, crc of meta+frame
V1_META_START = b"\x87\xa2id"  # every v1 metadata map: 7 keys, "id" first (v1's only sync point)
MAX_META_BYTES = 4096
ACK = struct.Struct("<Q")


class SpoolLockedError(SdkError, RuntimeError):
    """Another process uses this spool directory."""


@dataclass(eq=False)
class SpoolEntry:
    """One spooled batch. ``attempts``: how often it went on the wire (this process); ``fmt``: JSON
    text or MessagePack binary frame (the spooled frame is MessagePack either way)."""

    id: int
    session_id: str
    first_seq: int
    last_seq: int
    records: int
    messages: int
    size: int
    segment: Segment = field(repr=False)
    offset: int = field(repr=False)
    attempts: int = 0
    recovered: bool = False
    fmt: FrameFormat = "msgpack"


class Segment:
    """One segment file and its ack log."""

    def __init__(self, directory: Path, first_id: int, created: float) -> None:
        self.first_id = first_id
        self.path = directory / f"{first_id:016d}.seg"
        self.ack_path = directory / f"{first_id:016d}.acks"
        self.created = created
        self.size = 0
        self.records = 0
        self.sealed = False
        self.unacked: dict[int, SpoolEntry] = {}
        self._fd: int | None = None
        self._ack_fd: int | None = None
        self._read_fd: int | None = None

    def create(self, fsync: bool) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        _write_all(self._fd, [MAGIC])
        self.size = len(MAGIC)
        if fsync:  # the new file's directory entry too, or a power loss may forget the file
            os.fsync(self._fd)
            _fsync_dir(self.path.parent)

    def append(self, parts: list[bytes], fsync: bool) -> None:
        assert self._fd is not None, "segment is sealed"
        _write_all(self._fd, parts)
        if fsync:
            os.fsync(self._fd)

    def log_ack(self, entry_id: int) -> None:
        if self._ack_fd is None:
            self._ack_fd = os.open(self.ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        _write_all(self._ack_fd, [ACK.pack(entry_id)])

    def read(self, offset: int, size: int) -> bytes:
        if self._read_fd is None:
            self._read_fd = os.open(self.path, os.O_RDONLY)
        data = os.pread(self._read_fd, size, offset)
        if len(data) != size:
            raise OSError(f"spool segment {self.path} is shorter than its index ({offset}+{size})")
        return data

    def seal(self) -> None:
        self.sealed = True
        self._close_fd("_fd")

    def delete(self) -> None:
        self.sealed = True
        for name in ("_fd", "_ack_fd", "_read_fd"):
            self._close_fd(name)
        for path in (self.path, self.ack_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def close(self) -> None:
        for name in ("_fd", "_ack_fd", "_read_fd"):
            self._close_fd(name)

    def _close_fd(self, name: str) -> None:
        fd = getattr(self, name)
        if fd is not None:
            os.close(fd)
            setattr(self, name, None)


def _header(meta: bytes, frame: bytes) -> bytes:
    head = SYNC + struct.pack(">III", len(meta), len(frame), zlib.crc32(frame, zlib.crc32(meta)))
    return head + struct.pack(">I", zlib.crc32(head))


def _unused(path: Path) -> Path:
    """``path``, or ``path`` with ``.1``, ``.2`` ... appended when it exists (never overwrite evidence)."""
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.{number}")
    return candidate


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, parts: list[bytes]) -> None:
    total = sum(len(p) for p in parts)
    written = os.writev(fd, parts)
    if written != total:  # rare on regular files; finish the job
        rest = b"".join(parts)[written:]
        while rest:
            rest = rest[os.write(fd, rest):]


class Spool:
    """Segments on disk plus an in-memory index of the unacked batches (by id, oldest first)."""

    def __init__(self, directory: str | Path, *, segment_bytes: int = 16 * 1024 * 1024,
                 segment_age_s: float = 60.0, max_bytes: int = 1024 * 1024 * 1024, fsync: bool = False,
                 clock: Callable[[], float] = time.time,
                 on_drop: Callable[[list[SpoolEntry]], None] | None = None) -> None:
        if segment_bytes < 1 or segment_age_s <= 0 or max_bytes < 1:
            raise ValueError("expected segment_bytes >= 1, segment_age_s > 0 and max_bytes >= 1")
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.segment_age_s = segment_age_s
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.on_drop = on_drop
        self._clock = clock
        self._segments: list[Segment] = []
        self._pending: dict[int, SpoolEntry] = {}
        self._bytes = 0
        self._messages = 0
        self._next_id = 1
        self._warned_full = False
        #: batches found damaged by recovery (moved to ``.corrupt`` files; their data is not resent)
        self.corrupt_batches = 0
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = self._lock()
        try:
            self._recover()
        except BaseException:
            self.close()
            raise

    # -- state -----------------------------------------------------------------------------------

    @property
    def size_bytes(self) -> int:
        """Bytes of the segment files (acked records of unsealed segments included)."""
        return self._bytes

    @property
    def pending_messages(self) -> int:
        """Messages not yet acked."""
        return self._messages

    @property
    def pending_batches(self) -> int:
        return len(self._pending)

    @property
    def segments(self) -> int:
        return len(self._segments)

    def pending(self) -> list[SpoolEntry]:
        """Unacked batches, oldest first."""
        return list(self._pending.values())

    def get(self, entry_id: int) -> SpoolEntry | None:
        return self._pending.get(entry_id)

    def read(self, entry: SpoolEntry) -> bytes:
        """The frame of a spooled batch."""
        return entry.segment.read(entry.offset, entry.size)

    # -- writing ---------------------------------------------------------------------------------

    def append(self, batch: Batch) -> SpoolEntry | None:
        """Write a batch; None when it alone is larger than the cap (then it is dropped)."""
        fields: dict[str, Any] = {
            "id": self._next_id, "session": batch.session_id, "first": batch.first_seq,
            "last": batch.last_seq, "records": batch.records, "messages": batch.messages,
            "t": self._clock(),
        }
        if batch.fmt == "json":
            fields["fmt"] = "json"  # absent: MessagePack (and every record written before framings)
        meta: bytes = msgpack.packb(fields, use_bin_type=True)
        header = _header(meta, batch.frame)
        size = RECORD.size + len(meta) + len(batch.frame)
        self._rotate_if_needed(size)
        if not self._make_room(size + len(MAGIC)):
            log.warning("spool %s: a batch of %d bytes is larger than spool_max_bytes (%d): dropped "
                        "%d messages", self.directory, size, self.max_bytes, batch.messages)
            return None
        segment = self._active() or self._new_segment()
        offset = segment.size + RECORD.size + len(meta)
        segment.append([header, meta, batch.frame], self.fsync)
        entry = SpoolEntry(self._next_id, batch.session_id, batch.first_seq, batch.last_seq, batch.records,
                           batch.messages, len(batch.frame), segment, offset, fmt=batch.fmt)
        self._next_id += 1
        segment.size += size
        segment.records += 1
        segment.unacked[entry.id] = entry
        self._bytes += size
        self._index(entry)
        self._warn_when_filling()
        return entry

    def ack(self, entry_id: int) -> SpoolEntry | None:
        """Mark a batch acked; its segment goes once sealed and fully acked. None if unknown."""
        entry = self._pending.pop(entry_id, None)
        if entry is None:
            return None
        self._messages -= entry.messages
        segment = entry.segment
        segment.unacked.pop(entry_id, None)
        segment.log_ack(entry_id)
        self._collect(segment)
        return entry

    def maintain(self) -> None:
        """Seal the active segment once it is too old; delete segments fully acked."""
        active = self._active()
        if active is not None and self._clock() - active.created >= self.segment_age_s:
            active.seal()
            self._collect(active)

    def close(self) -> None:
        """Close every file (the data stays for the next process)."""
        for segment in self._segments:
            segment.close()
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- internals -------------------------------------------------------------------------------

    def _index(self, entry: SpoolEntry) -> None:
        self._pending[entry.id] = entry
        self._messages += entry.messages

    def _active(self) -> Segment | None:
        if self._segments and not self._segments[-1].sealed:
            return self._segments[-1]
        return None

    def _new_segment(self) -> Segment:
        segment = Segment(self.directory, self._next_id, self._clock())
        segment.create(self.fsync)
        self._segments.append(segment)
        self._bytes += segment.size
        return segment

    def _rotate_if_needed(self, size: int) -> None:
        active = self._active()
        if active is None:
            return
        too_big = active.records > 0 and active.size + size > self.segment_bytes
        too_old = self._clock() - active.created >= self.segment_age_s
        if too_big or too_old:
            active.seal()
            self._collect(active)

    def _collect(self, segment: Segment) -> None:
        if segment.sealed and not segment.unacked and segment in self._segments:
            self._remove(segment)

    def _remove(self, segment: Segment) -> None:
        self._segments.remove(segment)
        self._bytes -= segment.size
        segment.delete()

    def _make_room(self, size: int) -> bool:
        while self._segments and self._bytes + size > self.max_bytes:
            self._drop_oldest()
        return self._bytes + size <= self.max_bytes

    def _drop_oldest(self) -> None:
        segment = self._segments[0]
        lost = sorted(segment.unacked.values(), key=lambda e: e.id)
        for entry in lost:
            self._pending.pop(entry.id, None)
            self._messages -= entry.messages
        segment.unacked.clear()
        log.warning(
            "spool %s reached its cap (batching.spool_max_bytes = %d bytes): deleted the oldest segment "
            "%s with %d unacked batches (%d messages, seqs %s); they are dropped. The gateway has not "
            "acked for a long time: check the connection, or raise spool_max_bytes.",
            self.directory, self.max_bytes, segment.path.name, len(lost), sum(e.messages for e in lost),
            _seq_ranges(lost),
        )
        self._remove(segment)
        if lost and self.on_drop is not None:
            self.on_drop(lost)

    def _warn_when_filling(self) -> None:
        share = self._bytes / self.max_bytes
        if share >= 0.8 and not self._warned_full:
            self._warned_full = True
            log.warning("spool %s is %.0f%% full (%d of %d bytes, %d unacked batches): at the cap the "
                        "oldest unacked data is dropped", self.directory, share * 100, self._bytes,
                        self.max_bytes, len(self._pending))
        elif share < 0.5:
            self._warned_full = False

    def _lock(self) -> int:
        path = self.directory / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise SpoolLockedError(
                f"spool {self.directory} is in use by another process (pid {owner}); give each robot "
                "process its own spool directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def _recover(self) -> None:
        for leftover in self.directory.glob("*.seg.tmp"):  # a crash while rewriting: the .seg is whole
            leftover.unlink()
        found = 0
        for path in sorted(self.directory.glob("*.seg")):
            segment = self._read_segment(path)
            if segment is None:
                continue
            self._next_id = max(self._next_id, segment.first_id + segment.records)
            if not segment.unacked:
                segment.delete()
                continue
            self._segments.append(segment)
            self._bytes += segment.size
            for entry in segment.unacked.values():
                self._index(entry)
            found += len(segment.unacked)
        for stray in self.directory.glob("*.acks"):
            if not stray.with_suffix(".seg").exists():
                stray.unlink()
        if found:
            log.info("spool %s: %d unacked batches (%d messages) from a previous run will be resent",
                     self.directory, found, self._messages)

    def _read_segment(self, path: Path) -> Segment | None:
        try:
            first_id = int(path.stem)
        except ValueError:
            log.warning("spool %s: ignoring %s (not a segment name)", self.directory, path.name)
            return None
        segment = Segment(self.directory, first_id, path.stat().st_mtime)
        data = path.read_bytes()
        framing = _framing_of(data)
        damaged_magic = framing is None and (framing := _framing_by_records(data)) is not None
        if framing is None:
            log.warning("spool %s: %s is not a spool segment; moved aside", self.directory, path.name)
            path.rename(path.with_suffix(".bad"))
            return None
        if damaged_magic:
            log.warning("spool %s: %s starts with a damaged format marker; read by its records and "
                        "rewritten", self.directory, path.name)
        scan = _scan(framing, data)
        if scan.torn_at is not None:
            log.warning("spool %s: %s ends with %d bytes of a torn record (crash mid-write); cut off",
                        self.directory, path.name, len(data) - scan.torn_at)
        if scan.corrupt or damaged_magic:
            self._set_aside(path, framing, data, scan, first_id)
            data = self._rewrite(path, framing, data, scan)
            scan = _scan(framing, data)
        elif scan.torn_at is not None:
            os.truncate(path, scan.torn_at)
            data = data[:scan.torn_at]
        acked = _read_acks(segment.ack_path)
        segment.size = len(data)
        segment.sealed = True
        max_id = first_id - 1
        for record in scan.records:
            entry = record.entry(segment)
            max_id = max(max_id, entry.id)
            if entry.id not in acked:
                segment.unacked[entry.id] = entry
        segment.records = max_id - first_id + 1
        return segment

    def _set_aside(self, path: Path, framing: _Framing, data: bytes, scan: _Scan, first_id: int) -> None:
        """Copy each damaged region of a segment to a ``.corrupt`` file beside it; log and count it."""
        for start, end in scan.corrupt:
            before = max((r.batch_id for r in scan.records if r.end <= start), default=first_id - 1)
            after = min((r.batch_id for r in scan.records if r.start >= end), default=None)
            lost = framing.starts(data, start, end)  # legible record headers (at least 1)
            if after is not None:  # no more than the ids between its intact neighbours
                lost = max(1, min(lost, after - before - 1))
            aside = _unused(path.with_name(f"{path.stem}.{start:010d}.corrupt"))
            aside.write_bytes(data[start:end])
            self.corrupt_batches += lost
            ids = f"after batch id {before}" + (f", before {after}" if after is not None else "")
            log.warning("spool %s: %s has %d corrupt bytes at offset %d (checksum mismatch; %s, %d "
                        "batch(es)); moved aside to %s, the intact records after them are kept",
                        self.directory, path.name, end - start, start, ids, lost, aside.name)

    def _rewrite(self, path: Path, framing: _Framing, data: bytes, scan: _Scan) -> bytes:
        """The segment without its damaged regions (and torn tail), replaced atomically."""
        kept = framing.magic + b"".join(data[r.start:r.end] for r in scan.records)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, [kept])
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(path)
        _fsync_dir(self.directory)
        return kept


@dataclass(frozen=True)
class _Framing:
    """One segment format: its magic, its record header and how to find a record's start."""

    magic: bytes
    header: struct.Struct
    sync: bytes  # bytes at a fixed place of every record, searched to resynchronise
    sync_at: int  # where they are, from the record's start

    def lengths(self, data: bytes, pos: int) -> tuple[int, int, int] | None:
        """(meta length, frame length, body crc) of a sound header at ``pos``, else None."""
        if pos + self.header.size > len(data):
            return None
        if self.magic == MAGIC_V1:
            meta_len, frame_len, crc = RECORD_V1.unpack_from(data, pos)
            return meta_len, frame_len, crc
        sync, meta_len, frame_len, crc, header_crc = RECORD.unpack_from(data, pos)
        if sync != SYNC or zlib.crc32(data[pos:pos + RECORD.size - 4]) != header_crc:
            return None
        return meta_len, frame_len, crc

    def candidates(self, data: bytes, pos: int) -> Iterator[int]:
        """Positions after ``pos`` where a record may start."""
        at = data.find(self.sync, pos + 1 + self.sync_at)
        while at >= 0:
            yield at - self.sync_at
            at = data.find(self.sync, at + 1)

    def starts(self, data: bytes, start: int, end: int) -> int:
        """Records that seem to start in ``data[start:end]`` (the first one always counts)."""
        return 1 + sum(1 for q in self.candidates(data[:end], start) if self.lengths(data, q) is not None)


FRAMINGS = (_Framing(MAGIC, RECORD, SYNC, 0), _Framing(MAGIC_V1, RECORD_V1, V1_META_START, RECORD_V1.size))


@dataclass(frozen=True)
class _Record:
    """An intact record: where its header, metadata and frame are, and its metadata."""

    start: int
    frame_at: int
    end: int
    meta: dict[str, Any]

    @property
    def batch_id(self) -> int:
        return int(self.meta["id"])

    def entry(self, segment: Segment) -> SpoolEntry:
        meta = self.meta
        fmt: FrameFormat = "json" if meta.get("fmt") == "json" else "msgpack"
        return SpoolEntry(int(meta["id"]), str(meta["session"]), int(meta["first"]), int(meta["last"]),
                          int(meta["records"]), int(meta["messages"]), self.end - self.frame_at, segment,
                          self.frame_at, recovered=True, fmt=fmt)


@dataclass
class _Scan:
    """A segment read back: its intact records, its damaged byte ranges, where a torn tail starts."""

    records: list[_Record] = field(default_factory=list)
    corrupt: list[tuple[int, int]] = field(default_factory=list)
    torn_at: int | None = None


def _framing_of(data: bytes) -> _Framing | None:
    return next((f for f in FRAMINGS if data.startswith(f.magic)), None)


def _framing_by_records(data: bytes) -> _Framing | None:
    """For a segment whose magic is damaged: the format whose intact records it holds, if any."""
    return next((f for f in FRAMINGS if _scan(f, data).records), None)


def _record_at(framing: _Framing, data: bytes, pos: int) -> _Record | None:
    """The intact record at ``pos`` (sound header, matching checksum, readable metadata), else None."""
    lengths = framing.lengths(data, pos)
    if lengths is None:
        return None
    meta_len, frame_len, crc = lengths
    meta_at = pos + framing.header.size
    end = meta_at + meta_len + frame_len
    if meta_len > MAX_META_BYTES or end > len(data):
        return None
    view = memoryview(data)
    if zlib.crc32(view[meta_at + meta_len:end], zlib.crc32(view[meta_at:meta_at + meta_len])) != crc:
        return None
    try:
        meta = msgpack.unpackb(view[meta_at:meta_at + meta_len], raw=False)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    return _Record(pos, meta_at + meta_len, end, meta) if _sound_meta(meta) else None


def _sound_meta(meta: Any) -> bool:
    return (isinstance(meta, dict) and isinstance(meta.get("session"), str)
            and all(isinstance(meta.get(k), int) for k in ("id", "first", "last", "records", "messages")))


def _is_torn(framing: _Framing, data: bytes, pos: int) -> bool:
    """The last record at ``pos`` was cut short by a crash: its header or its body ends early."""
    if pos + framing.header.size > len(data) or not data[pos:].strip(b"\0"):
        return True
    lengths = framing.lengths(data, pos)
    return lengths is not None and pos + framing.header.size + lengths[0] + lengths[1] > len(data)


def _scan(framing: _Framing, data: bytes) -> _Scan:
    """Every intact record of a segment; damage between them; a torn tail."""
    scan = _Scan()
    pos = len(framing.magic)
    while pos < len(data):
        record = _record_at(framing, data, pos)
        if record is None:
            record = next((r for q in framing.candidates(data, pos)
                           if (r := _record_at(framing, data, q)) is not None), None)
            if record is None:
                if _is_torn(framing, data, pos):
                    scan.torn_at = pos
                else:
                    scan.corrupt.append((pos, len(data)))
                break
            scan.corrupt.append((pos, record.start))
        scan.records.append(record)
        pos = record.end
    return scan


def _read_acks(path: Path) -> set[int]:
    """The acked ids of an ack log; a torn last id (a crash mid-write) is cut off first."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return set()
    usable = len(data) - len(data) % ACK.size
    if usable != len(data):  # later acks are appended: they must start on an id boundary
        log.warning("ack log %s ends with %d bytes of a torn id; cut off", path, len(data) - usable)
        os.truncate(path, usable)
    return {ACK.unpack_from(data, i)[0] for i in range(0, usable, ACK.size)}


def _seq_ranges(entries: list[SpoolEntry]) -> str:
    by_session: dict[str, list[tuple[int, int]]] = {}
    for entry in entries:
        by_session.setdefault(entry.session_id, []).append((entry.first_seq, entry.last_seq))
    parts = [f"{session} {min(a for a, _ in spans)}..{max(b for _, b in spans)}"
             for session, spans in by_session.items()]
    return ", ".join(parts) if parts else "none"
