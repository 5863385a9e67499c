"""The disk spool: append, ack, rotation by size and age, deletion, the cap, recovery, the lock."""

from __future__ import annotations

import logging
from pathlib import Path

import msgpack
import pytest

from robostream.producers import Spool, SpoolLockedError
from robostream.producers.batcher import Batch, frame_of
from robostream.producers.spool import SpoolEntry


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def batch(first_seq: int, records: int = 4, pad: int = 100, session: str = "s1") -> Batch:
    envelopes = [msgpack.packb({"seq": first_seq + i, "pad": b"x" * pad}) for i in range(records)]
    return Batch(session, frame_of(envelopes), records, records, first_seq, first_seq + records - 1)


def segments(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.seg"))


def test_a_spooled_batch_reads_back_and_leaves_when_acked(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    entry = spool.append(batch(0))
    assert entry is not None
    assert msgpack.unpackb(spool.read(entry))[3]["seq"] == 3
    assert spool.pending() == [entry] and spool.pending_messages == 4
    assert spool.ack(entry.id) is entry
    assert spool.pending() == [] and spool.pending_messages == 0
    assert spool.ack(entry.id) is None
    spool.close()


def test_segments_rotate_at_their_size_limit_and_acked_ones_are_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=2000)
    entries = [spool.append(batch(4 * i, pad=200)) for i in range(12)]
    assert all(e is not None for e in entries)
    names = segments(tmp_path)
    assert len(names) >= 5
    assert all(p.stat().st_size <= 2000 for p in tmp_path.glob("*.seg"))
    for entry in entries[:-1]:
        assert entry is not None
        spool.ack(entry.id)
    # every sealed segment was fully acked: only the active one (holding the last batch) is left
    assert segments(tmp_path) == [names[-1]]
    assert not [p for p in tmp_path.glob("*.acks") if not p.with_suffix(".seg").exists()]
    spool.close()


def test_the_active_segment_is_sealed_when_too_old(tmp_path: Path) -> None:
    clock = FakeClock()
    spool = Spool(tmp_path, segment_age_s=60, clock=clock)
    first = spool.append(batch(0))
    clock.now += 61
    second = spool.append(batch(4))
    assert first is not None and second is not None
    assert first.segment is not second.segment and len(segments(tmp_path)) == 2
    spool.ack(second.id)
    clock.now += 61
    spool.maintain()  # the active segment is old and fully acked: sealed and deleted
    assert len(segments(tmp_path)) == 1
    spool.close()


def test_unacked_batches_survive_a_restart_and_acked_ones_do_not(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=1500)
    entries = [spool.append(batch(4 * i, pad=150)) for i in range(8)]
    for entry in entries[::2]:
        assert entry is not None
        spool.ack(entry.id)
    spool.close()
    again = Spool(tmp_path, segment_bytes=1500)
    pending = again.pending()
    assert [e.first_seq for e in pending] == [4, 12, 20, 28]
    assert all(e.recovered for e in pending)
    assert msgpack.unpackb(again.read(pending[-1]))[0]["seq"] == 28
    newer = again.append(batch(32))
    assert newer is not None and newer.id > max(e.id for e in pending)
    again.close()


def test_a_torn_last_record_is_cut_off_on_recovery(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path)
    spool.append(batch(0))
    spool.append(batch(4))
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    segment.write_bytes(segment.read_bytes()[:-7])  # a crash in the middle of the second write
    with caplog.at_level(logging.WARNING):
        again = Spool(tmp_path)
    assert [e.first_seq for e in again.pending()] == [0]
    assert "torn record" in caplog.text
    again.close()


def test_at_the_cap_the_oldest_segment_is_dropped_with_a_warning(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    dropped: list[SpoolEntry] = []
    spool = Spool(tmp_path, segment_bytes=2000, max_bytes=6000, on_drop=dropped.extend)
    with caplog.at_level(logging.WARNING):
        for i in range(20):
            spool.append(batch(4 * i, pad=200))
    assert spool.size_bytes <= 6000
    assert dropped and dropped[0].first_seq == 0
    assert "reached its cap" in caplog.text and "spool_max_bytes" in caplog.text
    kept = [e.first_seq for e in spool.pending()]
    assert kept == sorted(kept) and kept[-1] == 76
    assert len(kept) + len(dropped) == 20
    spool.close()


def test_one_process_per_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    with pytest.raises(SpoolLockedError, match="in use by another process"):
        Spool(tmp_path)
    spool.close()
    Spool(tmp_path).close()
